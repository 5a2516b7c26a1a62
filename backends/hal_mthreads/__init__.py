"""Moore Threads GPUs, simulated from the chip specs in chips/ (S4000 by default).

Software: MUSA, CUDA-compatible at source level (torch_musa: torch.musa devices).
ONNX ops: the CUDA execution provider's kernels of onnxruntime, taken as the stack's (none publishes
an ONNX op list: backends/SOURCES.md; hal/sim/optables/onnxruntime_cuda.toml says how it was
transcribed).
"""
from __future__ import annotations

from pathlib import Path

from hal.sim import SHARED_OP_TABLES, SimulatedBackend

__all__ = ["MthreadsBackend"]


class MthreadsBackend(SimulatedBackend):
    name = "musa"
    chips_dir = Path(__file__).parent / "chips"
    op_table_path = SHARED_OP_TABLES / "onnxruntime_cuda.toml"
    default_model = "S4000"
