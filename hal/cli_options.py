"""Command-line options every `hal` subcommand spells the same way (hal.cli, hal.llm.cli and
hal.conformance.cli build their parsers with them), and the targets of the two `fit` commands."""
from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .device import DeviceSpec
    from .sim import ChipSpec, SimulatedBackend

__all__ = ["add_device_option", "device_list", "simulated_chip_models", "fit_targets"]


def add_device_option(parser: argparse.ArgumentParser, *, default: str | None, help: str) -> None:
    """--device and --devices, one option under two spellings: a device or a comma-separated list
    (args.devices, a string; device_list splits it)."""
    parser.add_argument("--device", "--devices", dest="devices", default=default, metavar="DEVICE[,DEVICE...]", help=help)


def device_list(text: str | None) -> list[str]:
    """'ascend:0, cpu' -> ['ascend:0', 'cpu']"""
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def simulated_chip_models() -> list[tuple[SimulatedBackend, ChipSpec]]:
    """Every chip model every simulated backend ships a spec file for (not only the default
    model, whose devices are listed), with its backend."""
    from . import registry
    from .sim import SimulatedBackend

    return [(backend, chip) for backend in registry.backends().values() if isinstance(backend, SimulatedBackend)
            for chip in backend.chip_models()]


def fit_targets(names: list[str]) -> list[ChipSpec | DeviceSpec]:
    """What `hal fit` and `hal llm fit` size a model against: 'all' (every simulated chip model
    and the CPU), else each name as a chip model ("910B", "r200") or a device ("ascend:0", "cpu"),
    one per chip model."""
    from . import registry

    chips = [chip for _, chip in simulated_chip_models()]
    if names == ["all"]:
        return [*chips, registry.device("cpu:0").spec]
    found: dict[tuple[str, str], ChipSpec | DeviceSpec] = {}
    for name in names:
        target = next((c for c in chips if c.model.lower() == name.lower()), None) or registry.device(name).spec
        found.setdefault((target.kind, target.model), target)
    return list(found.values())
