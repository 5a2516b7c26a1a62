"""A complete backend for an imaginary "Toy NPU", as a vendor would ship it in its own package.

It imports only hal.backends_kit: the contract (hal.backend) and the ready-made parts built on it.
Its memory lives in hal's host arena with the chip's allocation rule (16-byte granularity); a real
chip's package would implement DeviceDriver and StreamDriver over its own runtime (aclrtMalloc /
xpu_malloc, its streams and events) instead.
"""
from __future__ import annotations

from hal.backends_kit import AllocationRule, ArenaAllocator, ArenaDeviceDriver, Backend, DeviceSpec, DType

TOY_DEVICES = 3
TOY_MEMORY_BYTES = 1 << 30
TOY_RULE = AllocationRule(granularity=16, padding=0, base_alignment=64)


class ToyBackend(Backend):
    name = "toy"

    def __init__(self) -> None:
        self._specs = [
            DeviceSpec(kind="toy", index=i, name="Toy NPU", vendor="Example Inc.", simulated=True,
                       memory_bytes=TOY_MEMORY_BYTES, dtypes=(DType.FLOAT32, DType.FLOAT16))
            for i in range(TOY_DEVICES)
        ]

    def devices(self) -> list[DeviceSpec]:
        return list(self._specs)

    def open_device(self, index: int) -> ArenaDeviceDriver:
        spec = self._specs[index]
        return ArenaDeviceDriver(spec, ArenaAllocator(spec.device_name, spec.memory_bytes, TOY_RULE))
