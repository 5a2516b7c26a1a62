"""Biren GPUs, simulated from the chip specs in chips/ (BR100 by default).

Software: BIRENSUPA, its own programming model (torch_br: torch.supa devices).
ONNX ops: ops.toml, from the vendor's public kernel lists (its header names them).
"""
from __future__ import annotations

from pathlib import Path

from hal.sim import SimulatedBackend

__all__ = ["BirenBackend"]


class BirenBackend(SimulatedBackend):
    name = "biren"
    chips_dir = Path(__file__).parent / "chips"
    op_table_path = Path(__file__).parent / "ops.toml"
    default_model = "BR100"
