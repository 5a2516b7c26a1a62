"""hal: one device API for many AI chips (CPU, CUDA, Ascend, Kunlun, and seven more simulated families).

    import hal, numpy as np
    x = hal.tensor(np.ones((3, 4), np.float32), device="ascend:0")
    y = x.to("kunlun:0").numpy()

Layers, each importing only those below it (pyproject.toml's [tool.importlinter] checks it):
    hal.cli                                  the command
    hal.llm | hal.conformance                LLMs; the conformance suite
    hal.distributed                          collectives over a group of devices; Ray
    hal.cli_options                          options the subcommands share
    hal.onnx_backend | hal.backends_kit      onnx's backend API; everything a plugin imports
    hal.torch                                PyTorch devices, executor and torch.compile
    hal.sim                                  simulated chips: specs, op tables, numerics, cost
    hal.graph                                ONNX models, placement, sessions, host execution
    hal.ops                                  extension kernels
    hal.tensor, hal.streams, hal.profiler    device tensors; in-order streams; the trace
    hal.registry                             the backends found through entry points
    hal.backend                              the contract a backend implements
    hal.capability, hal.device, hal.memory   nodes and answers; devices; memory
    hal.dtypes, hal.errors
This module gathers the public API from all of them.
"""
from __future__ import annotations

from .device import Device, DeviceSpec, Event, Stream
from .dtypes import DType, dtype
from .errors import (
    BackendError,
    DeviceError,
    DeviceLostError,
    DeviceNotFoundError,
    ExecutionError,
    HalError,
    InvalidArgumentError,
    InvalidInputError,
    InvalidModelError,
    InvalidSpecError,
    KernelLibraryError,
    KernelNotFoundError,
    MissingDependencyError,
    OutOfMemoryError,
    TimeoutError,
    UnsupportedDTypeError,
    UnsupportedModelError,
    UnsupportedOpError,
)
from .memory import Buffer, MemoryStats
from .registry import BackendLoadWarning, default_device, device, devices
from .tensor import DeviceTensor, as_tensor, empty, from_dlpack, tensor

__version__ = "0.1.0"

__all__ = [
    "Device", "DeviceSpec", "Stream", "Event", "DType", "dtype", "Buffer", "MemoryStats",
    "DeviceTensor", "tensor", "empty", "as_tensor", "from_dlpack",
    "devices", "device", "default_device", "synchronize", "BackendLoadWarning",
    "HalError", "BackendError", "DeviceError", "DeviceLostError", "DeviceNotFoundError",
    "InvalidArgumentError", "InvalidInputError", "InvalidModelError", "InvalidSpecError", "OutOfMemoryError", "TimeoutError",
    "UnsupportedDTypeError", "UnsupportedOpError", "UnsupportedModelError", "ExecutionError", "InferenceSession",
    "KernelNotFoundError", "KernelLibraryError", "ops", "kernel", "FailoverWarning",
    "MissingDependencyError", "from_torch",
]


def __getattr__(name: str):
    # The ONNX side needs onnx and onnxruntime; they load on first use, keeping `import hal` fast.
    if name == "InferenceSession":
        from .graph.session import InferenceSession

        return InferenceSession
    if name == "FailoverWarning":  # hal.graph loads onnx: it waits for first use like InferenceSession
        from .graph.session import FailoverWarning

        return FailoverWarning
    if name == "from_torch":  # torch is optional: it loads here, with a clear error when missing
        from .torch.export import from_torch

        return from_torch
    # Extension ops (hal.ops, and its @hal.kernel decorator) and LLM generation (hal.llm) load on
    # first use too.
    if name in ("ops", "kernel", "llm", "distributed"):
        import importlib

        module = importlib.import_module({"llm": ".llm", "distributed": ".distributed"}.get(name, ".ops"), __name__)
        return module.kernel if name == "kernel" else module
    raise AttributeError(f"module 'hal' has no attribute {name!r}")


def synchronize(device_name: str | Device | None = None) -> None:
    """Waits for every stream of one device, or of every device that has been used."""
    targets = [device(device_name)] if device_name is not None else devices()
    for target in targets:
        if target._driver is not None:
            target.synchronize()
