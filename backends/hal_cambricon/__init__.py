"""Cambricon MLUs, simulated from the chip specs in chips/ (MLU370-X8 by default).

Software: Cambricon Neuware (CNRT, CNNL, BANG C; torch_mlu): its own programming model.
ONNX ops: ops.toml, from the vendor's public kernel lists (its header names them).
"""
from __future__ import annotations

from pathlib import Path

from hal.sim import SimulatedBackend

__all__ = ["CambriconBackend"]


class CambriconBackend(SimulatedBackend):
    name = "mlu"
    chips_dir = Path(__file__).parent / "chips"
    op_table_path = Path(__file__).parent / "ops.toml"
    default_model = "MLU370-X8"
