"""Hygon DCUs, simulated from the chip specs in chips/ (K100_AI by default).

Software: DTK, a ROCm/HIP-compatible stack (a ROCm build of torch: torch.cuda devices).
ONNX ops: the ROCm execution provider's kernels of onnxruntime, taken as the stack's (none publishes
an ONNX op list: backends/SOURCES.md; hal/sim/optables/onnxruntime_rocm.toml says how it was
transcribed).
"""
from __future__ import annotations

from pathlib import Path

from hal.sim import SHARED_OP_TABLES, SimulatedBackend

__all__ = ["HygonBackend"]


class HygonBackend(SimulatedBackend):
    name = "dcu"
    chips_dir = Path(__file__).parent / "chips"
    op_table_path = SHARED_OP_TABLES / "onnxruntime_rocm.toml"
    default_model = "K100_AI"
