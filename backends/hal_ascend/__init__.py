"""Huawei Ascend NPUs, simulated from the chip specs in chips/ (Ascend 910B by default)."""
from __future__ import annotations

from pathlib import Path

from hal.sim import SimulatedBackend

__all__ = ["AscendBackend"]


class AscendBackend(SimulatedBackend):
    name = "ascend"
    chips_dir = Path(__file__).parent / "chips"
    op_table_path = Path(__file__).parent / "ops.toml"
    default_model = "910B"
