"""SimulatedBackend: a chip described by spec files, run on this host with the chip's memory
rules, dtypes and speed. hal_ascend and hal_kunlun are subclasses that name their chips/ folder."""
from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar

from ..backend import ArenaDeviceDriver, Backend
from ..device import DeviceSpec
from ..errors import BackendError
from ..memory import ArenaAllocator, Buffer
from .cost import ChipCost
from .faults import FaultInjector
from .spec import ChipSpec, find_chip_spec, list_chip_specs

__all__ = ["SimulatedBackend", "SimulatedDeviceDriver", "sim_device_config", "DEFAULT_SIM_DEVICE_COUNT"]

DEFAULT_SIM_DEVICE_COUNT = 2


def sim_device_config(kind: str, default_model: str) -> tuple[int, str]:
    """How many simulated `kind` devices to show and of which model, from HAL_SIM_DEVICES.

    HAL_SIM_DEVICES="ascend=4,kunlun=1:R200": four Ascend devices of the default model and one
    Kunlun R200; a model may also be a path to a spec file. Kinds not named keep the default (2).
    """
    raw = os.environ.get("HAL_SIM_DEVICES", "").strip()
    count, model = DEFAULT_SIM_DEVICE_COUNT, default_model
    for entry in filter(None, (part.strip() for part in raw.split(","))):
        name, sep, value = entry.partition("=")
        if not sep:
            raise BackendError(f"HAL_SIM_DEVICES entry '{entry}' must look like '{kind}=2' or '{kind}=2:MODEL'")
        if name.strip() != kind:
            continue
        number, _, chosen = value.partition(":")
        if not number.strip().isdigit():
            raise BackendError(f"HAL_SIM_DEVICES entry '{entry}': the count must be a whole number >= 0")
        count = int(number)
        model = chosen.strip() or default_model
    return count, model


class SimulatedDeviceDriver(ArenaDeviceDriver):
    """One simulated card: an arena with the chip's allocation rule and capacity, streams on a
    simulated clock, and a fault injector."""

    def __init__(self, spec: DeviceSpec, chip: ChipSpec):
        self.chip = chip
        self.faults = FaultInjector(spec.device_name)
        allocator = ArenaAllocator(spec.device_name, spec.memory_bytes, chip.allocation)
        super().__init__(spec, allocator, copy_cost=ChipCost(chip), before_op=self.faults.before_op)

    def allocate(self, nbytes: int) -> Buffer:
        self.faults.before_allocate(nbytes)
        return super().allocate(nbytes)


class SimulatedBackend(Backend):
    """Base of a simulated chip family. Subclasses set name, chips_dir and default_model."""

    chips_dir: ClassVar[Path]
    default_model: ClassVar[str]

    def __init__(self) -> None:
        count, model = sim_device_config(self.name, self.default_model)
        self.chip = find_chip_spec(self.chips_dir, model)
        if self.chip.kind != self.name:
            raise BackendError(f"chip spec {self.chip.path} describes a '{self.chip.kind}' chip, not '{self.name}'")
        self._specs = [self.chip.device_spec(i) for i in range(count)]

    def devices(self) -> list[DeviceSpec]:
        return list(self._specs)

    def open_device(self, index: int) -> SimulatedDeviceDriver:
        return SimulatedDeviceDriver(self._specs[index], self.chip)

    def chip_models(self) -> list[ChipSpec]:
        """Every chip model this backend ships a spec for."""
        return list_chip_specs(self.chips_dir)
