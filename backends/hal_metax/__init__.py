"""MetaX GPUs, simulated from the chip specs in chips/ (C500 by default).

Software: MXMACA, CUDA-compatible (MetaX's torch build: torch.cuda devices).
ONNX ops: the CUDA execution provider's kernels of onnxruntime, taken as the stack's (none publishes
an ONNX op list: backends/SOURCES.md; hal/sim/optables/onnxruntime_cuda.toml says how it was
transcribed).
"""
from __future__ import annotations

from pathlib import Path

from hal.sim import SHARED_OP_TABLES, SimulatedBackend

__all__ = ["MetaxBackend"]


class MetaxBackend(SimulatedBackend):
    name = "metax"
    chips_dir = Path(__file__).parent / "chips"
    op_table_path = SHARED_OP_TABLES / "onnxruntime_cuda.toml"
    default_model = "C500"
