"""PyTorch's devices as hal devices, one backend per torch device type:

    torch.cpu:0     wherever torch is installed
    torch.cuda:N    a CUDA build of torch and an NVIDIA GPU (the same GPUs as cuda:N, always run by torch)
    torch.npu:N     Ascend NPUs through torch_npu: the path to real Ascend hardware

A name is the torch device with its type after "torch.": torch.device("npu", 0) is "torch.npu:0".
Memory, copies, streams and events go through torch's device API and ONNX partitions run as torch
operations (hal.torch); torch.cpu:0 runs the very code that serves GPUs and NPUs, which is how CI
proves it without one.
"""
from __future__ import annotations

from hal.backend import TorchDeviceBackend

__all__ = ["TorchCpuBackend", "TorchCudaBackend", "TorchNpuBackend"]


class TorchCpuBackend(TorchDeviceBackend):
    name = "torch.cpu"
    device_type = "cpu"


class TorchCudaBackend(TorchDeviceBackend):
    name = "torch.cuda"
    device_type = "cuda"


class TorchNpuBackend(TorchDeviceBackend):
    name = "torch.npu"
    device_type = "npu"
