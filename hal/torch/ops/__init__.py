"""The ONNX ops hal's torch executor implements, one module per op family (as onnx's reference
implementation keeps one module per op): elementwise, activations, linalg, nn (convolution,
normalization, pooling), reductions, shape (shapes and data movement), generators (Constant,
Range...). Each family registers its ops into the table in .registry, which the executor reads;
importing this package registers them all.

A new op goes into the family module it belongs to, registered with the dtypes, opset and
attributes it accepts: capability (which nodes the torch devices take) follows from the table.
"""
from __future__ import annotations

from . import activations, elementwise, generators, linalg, nn, reductions, shape  # noqa: F401  (they register)
from .registry import OPS, Context, TorchOp

__all__ = ["OPS", "Context", "TorchOp"]
