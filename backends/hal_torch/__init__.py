"""PyTorch's devices as hal devices, one backend per torch device type:

    torch.cpu:0     wherever torch is installed
    torch.cuda:N    a CUDA build of torch and an NVIDIA GPU (the same GPUs as cuda:N, always run by torch)
    torch.npu:N     Ascend NPUs through torch_npu: the path to real Ascend hardware
    torch.mlu:N     Cambricon MLUs through torch_mlu
    torch.musa:N    Moore Threads GPUs through torch_musa
    torch.gcu:N     Enflame GCUs through torch_gcu
    torch.supa:N    Biren GPUs through torch_br
Hygon DCUs (DTK, a ROCm build of torch), Iluvatar CoreX and MetaX GPUs (their vendors' CUDA-named
torch builds) are torch.cuda devices.

A name is the torch device with its type after "torch.": torch.device("npu", 0) is "torch.npu:0".
Memory, copies, streams and events go through torch's device API and ONNX partitions run as torch
operations (hal.torch); torch.cpu:0 runs the very code that serves GPUs and NPUs, which is how CI
proves it without one.
"""
from __future__ import annotations

from hal.backends_kit import TorchDeviceBackend

__all__ = ["TorchCpuBackend", "TorchCudaBackend", "TorchNpuBackend", "TorchMluBackend", "TorchMusaBackend", "TorchGcuBackend", "TorchSupaBackend"]


class TorchCpuBackend(TorchDeviceBackend):
    name = "torch.cpu"
    device_type = "cpu"


class TorchCudaBackend(TorchDeviceBackend):
    name = "torch.cuda"
    device_type = "cuda"


class TorchNpuBackend(TorchDeviceBackend):
    name = "torch.npu"
    device_type = "npu"


class TorchMluBackend(TorchDeviceBackend):
    name = "torch.mlu"
    device_type = "mlu"


class TorchMusaBackend(TorchDeviceBackend):
    name = "torch.musa"
    device_type = "musa"


class TorchGcuBackend(TorchDeviceBackend):
    name = "torch.gcu"
    device_type = "gcu"


class TorchSupaBackend(TorchDeviceBackend):
    name = "torch.supa"
    device_type = "supa"
