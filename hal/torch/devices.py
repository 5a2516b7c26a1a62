"""Which torch devices are present, as DeviceSpecs, found without paying for `import torch` where
no accelerator can be present (importing torch takes about a second).

torch device types hal drives: "cpu" (always, where torch is installed), "cuda" (a GPU driver and a
CUDA or ROCm build of torch: NVIDIA, and the chips whose stacks take CUDA's or ROCm's name, Hygon's
DCU, Iluvatar's CoreX, MetaX's MACA), and the device types vendors' torch plugins add (TORCH_PLUGINS).
"""
from __future__ import annotations

import importlib.util
import os
import platform

from dataclasses import dataclass

from ..device import DeviceSpec
from ..dtypes import DType
from ..memory import AllocationRule, physical_memory_bytes
from ._require import require_torch, torch_installed

__all__ = ["TORCH_DTYPES", "CPU_RULE", "CUDA_RULE", "TORCH_PLUGINS", "TorchPlugin", "host_spec", "accelerator_specs",
           "nvidia_driver_present", "gpu_driver_present"]


@dataclass(frozen=True)
class TorchPlugin:
    package: str
    """Importing it registers torch.<device type> (PyTorch's PrivateUse1 mechanism)."""
    vendor: str


TORCH_PLUGINS = {
    "npu": TorchPlugin("torch_npu", "Huawei"),
    "mlu": TorchPlugin("torch_mlu", "Cambricon"),
    "musa": TorchPlugin("torch_musa", "Moore Threads"),
    "gcu": TorchPlugin("torch_gcu", "Enflame"),
    "supa": TorchPlugin("torch_br", "Biren"),
}
"""The device types vendors' PyTorch plugins add, with the plugin that adds them: the [software]
tables of the simulated chips' spec files (backends/hal_*/chips/) give each with its source. Chips
whose stack takes CUDA's name ("cuda": Hygon DCU, Iluvatar, MetaX) need no plugin, only their
vendor's torch build, and are torch.cuda devices."""

# Every dtype torch stores; unsigned 16/32/64-bit ones have few kernels, which the executor's
# capability answers per op.
TORCH_DTYPES = tuple(DType)
# torch's CPU allocator aligns to 64 bytes (c10::alignment) and adds nothing.
CPU_RULE = AllocationRule(granularity=1, padding=0, base_alignment=64)
# torch's CUDA caching allocator rounds every block to 512 bytes (kMinBlockSize); torch_npu's
# NPU caching allocator is derived from it and rounds the same way.
CUDA_RULE = AllocationRule(granularity=512, padding=0, base_alignment=512)


def nvidia_driver_present() -> bool:
    """Whether an NVIDIA kernel driver is loaded: checked before importing torch to ask it."""
    return os.path.exists("/proc/driver/nvidia/version") or os.path.exists("/dev/nvidiactl") or (
        platform.system() == "Windows" and os.path.exists(os.path.join(os.environ.get("SystemRoot", r"C:\Windows"), "System32", "nvcuda.dll"))
    )


def gpu_driver_present() -> bool:
    """A driver torch's "cuda" device type can run on: NVIDIA's, or ROCm's kernel fusion driver
    (/dev/kfd, which ROCm builds of torch, Hygon's DTK included, open)."""
    return nvidia_driver_present() or os.path.exists("/dev/kfd")


def _package_present(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def host_spec(kind: str) -> DeviceSpec | None:
    """torch's CPU device as hal device `kind:0`, or None without torch."""
    if not torch_installed():
        return None
    return DeviceSpec(
        kind=kind, index=0, name=f"PyTorch CPU device ({platform.machine()})", vendor="PyTorch",
        simulated=False, memory_bytes=physical_memory_bytes(), dtypes=TORCH_DTYPES, host_addressable=True,
        model="torch.device('cpu')", details={"torch_device": "cpu"},
    )


def accelerator_specs(device_type: str, kind: str) -> list[DeviceSpec]:
    """The devices of one torch device type ("cuda", "npu") as hal devices `kind:N`; empty (no
    error, no warning) when torch, its driver, or the device is missing."""
    if not torch_installed():
        return []
    if device_type == "cuda" and not gpu_driver_present():
        return []
    plugin = TORCH_PLUGINS.get(device_type)
    if plugin is not None and not _package_present(plugin.package):
        return []
    torch = require_torch(f"{kind} devices")
    if plugin is not None:
        importlib.import_module(plugin.package)  # registers torch.<device_type>
    module = getattr(torch, device_type, None)
    if module is None or not module.is_available():
        return []
    specs = []
    for index in range(module.device_count()):
        props = module.get_device_properties(index)
        details = {"torch_device": f"{device_type}:{index}"}
        for name in ("major", "minor", "multi_processor_count"):
            if hasattr(props, name):
                details[name] = getattr(props, name)
        vendor = plugin.vendor if plugin is not None else "NVIDIA" if getattr(torch.version, "hip", None) is None else "AMD/ROCm"
        specs.append(DeviceSpec(
            kind=kind, index=index, name=props.name, vendor=vendor, simulated=False,
            memory_bytes=int(props.total_memory), dtypes=TORCH_DTYPES, host_addressable=False,
            model=f"torch.device('{device_type}', {index})", details=details,
        ))
    return specs
