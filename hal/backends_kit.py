"""Everything a backend package needs, in one import: the contract (hal.backend) and the ready-made
parts built on it.

    from hal.backends_kit import Backend, ArenaAllocator, ArenaDeviceDriver, DeviceSpec, HostProgram

It sits above what it re-exports, so that the contract itself imports nothing built on it (the
import-linter contracts in pyproject.toml keep it so). The parts that need onnx (host execution)
or torch (torch devices) load when a backend first asks for them, not at `import hal.backends_kit`.
"""
from __future__ import annotations

from typing import Any

from .backend import *  # noqa: F403  (the contract, re-exported whole)
from .backend import __all__ as _contract
from .memory import physical_memory_bytes  # a host device's capacity (the CPU's, torch's CPU)
from .streams import ArenaDeviceDriver, ArenaStream, WorkerEvent, WorkerStream

_LAZY = {
    # host execution of ONNX partitions (onnx, onnxruntime)
    "HostProgram": "hal.graph.host", "host_supports": "hal.graph.host", "ort_provider_supports": "hal.graph.host",
    "HostValue": "hal.graph.values", "as_value": "hal.graph.values",
    # chips driven through a torch device (torch, optional)
    "TorchDeviceBackend": "hal.torch.backend", "TorchDeviceDriver": "hal.torch.driver",
    "TorchExecutable": "hal.torch.executor", "torch_view": "hal.torch.tensors",
}

__all__ = [*_contract, "ArenaDeviceDriver", "ArenaStream", "WorkerEvent", "WorkerStream", "physical_memory_bytes", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'hal.backends_kit' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
