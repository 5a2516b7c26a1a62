"""Toolkit for simulated chips: spec files, arena memory, a roofline cost model, a simulated
clock per stream, and fault injection. A simulated chip is data plus these rules."""
from __future__ import annotations

from pathlib import Path

from ..device import Device
from ..errors import InvalidArgumentError
from .backend import SimulatedBackend, SimulatedDeviceDriver, sim_device_config
from .cost import ChipCost, NodeCost, count_bytes, count_flops, node_cost
from .faults import FAULT_KINDS, FaultInjector
from .spec import ChipSpec, Figure, find_chip_spec, list_chip_specs, load_chip_spec

SHARED_OP_TABLES = Path(__file__).parent / "optables"
"""Op tables several chip families share (optables/*.toml): those whose stacks run one public
kernel set, such as onnxruntime's CUDA execution provider on CUDA-compatible chips."""

__all__ = [
    "SHARED_OP_TABLES",
    "ChipSpec", "Figure", "load_chip_spec", "find_chip_spec", "list_chip_specs",
    "ChipCost", "NodeCost", "node_cost", "count_flops", "count_bytes", "SimulatedBackend", "SimulatedDeviceDriver", "sim_device_config",
    "FAULT_KINDS", "FaultInjector", "inject_fault", "clear_faults",
]


def _faults(device: Device | str) -> FaultInjector:
    from ..registry import device as get_device

    found = get_device(device)
    driver = found.driver
    if not isinstance(driver, SimulatedDeviceDriver):
        raise InvalidArgumentError(f"{found.name} is not a simulated device; faults can only be injected into simulated chips")
    return driver.faults


def inject_fault(device: Device | str, kind: str, *, after_ops: int = 0) -> None:
    """Arms a fault on a simulated device: "kernel_error", "device_lost" or "out_of_memory"."""
    _faults(device).inject(kind, after_ops)


def clear_faults(device: Device | str) -> None:
    """Disarms faults and recovers a lost simulated device."""
    _faults(device).clear()
