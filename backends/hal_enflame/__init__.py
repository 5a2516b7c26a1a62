"""Enflame GCUs, simulated from the chip specs in chips/ (S60 by default).

Software: TopsRider, its own programming model (torch_gcu: torch.gcu devices).
ONNX ops: ops.toml, from the vendor's public kernel lists (its header names them).
"""
from __future__ import annotations

from pathlib import Path

from hal.sim import SimulatedBackend

__all__ = ["EnflameBackend"]


class EnflameBackend(SimulatedBackend):
    name = "gcu"
    chips_dir = Path(__file__).parent / "chips"
    op_table_path = Path(__file__).parent / "ops.toml"
    default_model = "S60"
