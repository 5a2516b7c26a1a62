"""Nodes the host runs in onnx's reference implementation although onnxruntime's CPU provider has a
kernel for them: cases where that kernel's answer is not the one the ONNX specification (and onnx's
own node tests) define.

Each route names the op, the condition under which it applies (attributes or inputs a node has, so
the routing is decided once, when the session compiles) and why, with the onnx node tests that show
it. The cost is speed: the reference implementation is numpy under a Python interpreter, so a route
is as narrow as the evidence allows, and models that never meet the condition keep onnxruntime's
kernel. `tests/graph/test_reference_routes.py` runs every listed test on onnxruntime directly and
fails when onnxruntime has become right, so the table shrinks as onnxruntime is fixed.

Cases where onnxruntime's kernel refuses an input at run time (ConvInteger with a per-channel weight
zero point, ReduceMax of an empty bool set) are not listed here: a host segment whose kernel fails
re-runs in the reference implementation (hal/graph/host.py).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..capability import NodeInfo

__all__ = ["ReferenceRoute", "ROUTES", "reference_route"]


@dataclass(frozen=True)
class ReferenceRoute:
    op_type: str
    applies: Callable[[NodeInfo], bool]
    reason: str
    evidence: tuple[str, ...]
    """onnx node tests onnxruntime fails (and the reference implementation passes) on this case."""
    domain: str = ""


def _attribute(node: NodeInfo, name: str, default: object = None) -> object:
    value = node.attributes.get(name, default)
    return value.decode() if isinstance(value, bytes) else value


def _given(node: NodeInfo, position: int) -> bool:
    """Whether the node has a (non-omitted) input at `position`."""
    return len(node.inputs) > position and node.inputs[position] is not None and bool(node.inputs[position].name)


def _always(node: NodeInfo) -> bool:
    return True


ROUTES: tuple[ReferenceRoute, ...] = (
    ReferenceRoute(
        "DFT", _always,
        "onnxruntime's float32 DFT leaves rounding residue (up to 1e-4) where the transform is exactly "
        "zero (the imaginary part of a real signal's DC bin); onnx defines the result by numpy's FFT, "
        "which is also fast",
        ("test_dft", "test_dft_axis", "test_dft_inverse", "test_dft_rfft", "test_dft_irfft", "test_dft_opset19"),
    ),
    ReferenceRoute(
        "STFT", _always,
        "onnxruntime's float32 STFT leaves rounding residue where the transform is exactly zero; onnx "
        "defines the result by numpy's FFT",
        ("test_stft", "test_stft_with_window"),
    ),
    ReferenceRoute(
        "Attention", lambda node: _attribute(node, "is_causal", 0) == 1,
        "with is_causal=1 and more keys than queries (a KV cache), onnxruntime aligns the causal mask "
        "differently from the ONNX specification",
        ("test_attention_4d_causal_fp16", "test_attention_4d_with_past_and_present_qk_matmul_bias_3d_mask_causal",
         "test_attention_4d_with_past_and_present_qk_matmul_bias_4d_mask_causal"),
    ),
    ReferenceRoute(
        "Resize",
        lambda node: (_attribute(node, "coordinate_transformation_mode") == "align_corners"
                      and _attribute(node, "mode", "nearest") in ("linear", "cubic") and _given(node, 2)),
        "with align_corners and scales, onnxruntime maps coordinates through the floored output length "
        "where the ONNX specification uses input length times scale; they differ when that product is "
        "not whole",
        ("test_resize_downsample_scales_linear_align_corners", "test_resize_downsample_scales_cubic_align_corners"),
    ),
    ReferenceRoute(
        "MaxUnpool", lambda node: _given(node, 2),
        "with an explicit output_shape, onnxruntime places the values at other positions than the ONNX "
        "specification's indices",
        ("test_maxunpool_export_with_output_shape",),
    ),
    ReferenceRoute(
        "OptionalHasElement", _always,
        "onnxruntime answers true for an empty optional input",
        ("test_optional_has_element_empty_optional_input",),
    ),
    ReferenceRoute(
        "Dropout", lambda node: "seed" in node.attributes and _given(node, 2),
        "a seeded Dropout in training mode: onnx defines its mask by numpy's generator from that seed, "
        "so hal draws it there and one seed gives one mask on every backend (onnxruntime's generator "
        "differs)",
        ("test_training_dropout", "test_training_dropout_default", "test_training_dropout_mask",
         "test_training_dropout_default_mask"),
    ),
)

_BY_OP: dict[tuple[str, str], list[ReferenceRoute]] = {}
for _route in ROUTES:
    _BY_OP.setdefault((_route.domain, _route.op_type), []).append(_route)


def reference_route(node: NodeInfo) -> ReferenceRoute | None:
    """The route that sends this node to onnx's reference implementation, if one applies."""
    for route in _BY_OP.get((node.domain, node.op_type), ()):
        if route.applies(node):
            return route
    return None
