"""Baidu Kunlun XPUs, simulated from the chip specs in chips/ (Kunlun P800 by default)."""
from __future__ import annotations

from pathlib import Path

from hal.sim import SimulatedBackend

__all__ = ["KunlunBackend"]


class KunlunBackend(SimulatedBackend):
    name = "kunlun"
    chips_dir = Path(__file__).parent / "chips"
    op_table_path = Path(__file__).parent / "ops.toml"
    default_model = "P800"
