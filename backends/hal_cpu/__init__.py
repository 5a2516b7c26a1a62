"""The host CPU as a hal device: memory in a native arena in host RAM, streams on wall time."""
from __future__ import annotations

import os
import platform

from hal.backend import AllocationRule, ArenaAllocator, ArenaDeviceDriver, Backend, DeviceSpec, DType

__all__ = ["CpuBackend"]

# The host CPU computes every dtype (through numpy and onnxruntime), float64 included.
_CPU_DTYPES = tuple(DType)
# 64-byte alignment: one cache line and the widest vector load (AVX-512), as onnxruntime's CPU
# allocator aligns; no padding.
_CPU_RULE = AllocationRule(granularity=1, padding=0, base_alignment=64)


def _cpu_identity() -> tuple[str, str]:
    """(model name, vendor) from /proc/cpuinfo, or what platform knows elsewhere."""
    name, vendor = platform.processor() or platform.machine(), "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                key, _, value = line.partition(":")
                key, value = key.strip(), value.strip()
                if key == "model name" and value:
                    name = value
                elif key == "vendor_id" and value:
                    vendor = value
                if name and vendor != "unknown" and key == "model name":
                    break
    except OSError:
        pass
    return name, vendor


def _host_memory_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not POSIX: a generous bound, still enforced
        return 1 << 40


class CpuBackend(Backend):
    name = "cpu"

    def __init__(self) -> None:
        model, vendor = _cpu_identity()
        self._spec = DeviceSpec(
            kind="cpu",
            index=0,
            name=model,
            vendor=vendor,
            simulated=False,
            memory_bytes=_host_memory_bytes(),
            dtypes=_CPU_DTYPES,
            host_addressable=True,
            model=platform.machine(),
            details={"logical_cores": os.cpu_count()},
        )

    def devices(self) -> list[DeviceSpec]:
        return [self._spec]

    def open_device(self, index: int) -> ArenaDeviceDriver:
        allocator = ArenaAllocator(self._spec.device_name, self._spec.memory_bytes, _CPU_RULE, host_addressable=True)
        return ArenaDeviceDriver(self._spec, allocator)
