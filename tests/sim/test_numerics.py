"""Chip numerics as ONNX rewrites: what onnxruntime computes on the emulated graph is what the chip
computes, checked against references written here from the vendors' rules, independently of
hal.sim.numerics."""
from __future__ import annotations

from pathlib import Path

import hal_ascend
import hal_kunlun
import ml_dtypes
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import hal
from hal.capability import CompileOptions, NodeInfo, TensorInfo
from hal.sim import find_chip_spec
from hal.sim.numerics import (
    ASCEND_PRECISION_MODES, KUNLUN_FC_PRECISIONS, EmulatedGraph, check_overflow, compute_dtype_of, emulate,
)

ASCEND = find_chip_spec(Path(hal_ascend.__file__).parent / "chips", "910B")
ASCEND_310P = find_chip_spec(Path(hal_ascend.__file__).parent / "chips", "310P")
KUNLUN = find_chip_spec(Path(hal_kunlun.__file__).parent / "chips", "R200")
KUNLUN_P800 = find_chip_spec(Path(hal_kunlun.__file__).parent / "chips", "P800")
F32 = np.float32
EPS32 = float(np.finfo(F32).eps)


def _model(nodes, inputs, outputs, initializers=(), opset=17) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes, "partition",
        [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs],
        [helper.make_tensor_value_info(n, t, s) for n, t, s in outputs],
        initializer=[numpy_helper.from_array(v, n) for n, v in initializers],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    return onnx.shape_inference.infer_shapes(model, strict_mode=True)


def _emulate(model, chip, **options) -> EmulatedGraph:
    before = model.SerializeToString()
    emulated = emulate(model, chip, **options)
    assert model.SerializeToString() == before, "emulate changed the caller's model"
    onnx.checker.check_model(emulated.model, full_check=True)
    names = [n.name for n in emulated.model.graph.node]
    assert all(names) and len(names) == len(set(names)), "node names must be unique and non-empty"
    return emulated


def _run(model: onnx.ModelProto, feeds) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))


def _rounded(x: np.ndarray, dtype) -> np.ndarray:
    return x.astype(dtype).astype(F32)


def _half_ulp(x: np.ndarray, dtype) -> np.ndarray:
    """Half the spacing of `dtype` at |x| (the most a round-to-nearest can move x)."""
    info = ml_dtypes.finfo(dtype)
    exponent = np.floor(np.log2(np.maximum(np.abs(x), float(info.smallest_normal))))
    return 0.5 * np.exp2(exponent - info.nmant)


def _assert_rounded_result(out, exact, bound32, dtype):
    """out is `exact` (float64) computed with float32 sums (error <= bound32), then rounded to dtype."""
    assert np.array_equal(out, _rounded(out, dtype)), f"the result is not rounded to {np.dtype(dtype).name}"
    assert np.all(np.abs(out - exact) <= _half_ulp(exact, dtype) + bound32)


def _matmul_model(m=16, k=64, n=8, dtype=TensorProto.FLOAT):
    return _model([helper.make_node("MatMul", ["a", "b"], ["y"], name="mm")],
                  [("a", dtype, [m, k]), ("b", dtype, [k, n])], [("y", dtype, [m, n])])


RNG = np.random.default_rng(20240611)
A = RNG.standard_normal((16, 64)).astype(F32)
B = RNG.standard_normal((64, 8)).astype(F32)


# -- Ascend ----------------------------------------------------------------------------------------
def test_910b_default_precision_mode_is_canns_default():
    assert ASCEND.default_precision_mode == "allow_fp32_to_fp16"
    assert set(ASCEND_PRECISION_MODES) >= {"force_fp16", "allow_fp32_to_fp16", "must_keep_origin_dtype", "force_fp32",
                                           "cube_fp16in_fp32out", "allow_fp32_to_bf16"}


def test_ascend_matmul_default_mode_rounds_operands_and_result_to_fp16():
    emulated = _emulate(_matmul_model(), ASCEND)
    out = _run(emulated.model, {"a": A, "b": B})["y"]
    a16, b16 = _rounded(A, np.float16), _rounded(B, np.float16)
    exact = a16.astype(np.float64) @ b16.astype(np.float64)
    _assert_rounded_result(out, exact, 2 * 64 * EPS32 * (np.abs(a16) @ np.abs(b16)), np.float16)
    plain = A @ B
    assert np.abs(out - plain).max() > 0, "the emulation must differ from float32"
    assert not np.all(np.abs(plain - exact) <= _half_ulp(exact, np.float16)), "float32 must not pass as the chip"
    assert emulated.compute_dtypes == {"mm": "float16"}


@pytest.mark.parametrize("mode", ["force_fp32", "cube_fp16in_fp32out"])
def test_ascend_fp16_in_fp32_out_equals_fp16_operands_with_float32_result(mode):
    out = _run(_emulate(_matmul_model(), ASCEND, precision_mode=mode).model, {"a": A, "b": B})["y"]
    a16, b16 = _rounded(A, np.float16), _rounded(B, np.float16)
    np.testing.assert_allclose(out, a16 @ b16, rtol=0, atol=float((2 * 64 * EPS32 * (np.abs(a16) @ np.abs(b16))).max()))
    difference = np.abs(out - A @ B)
    assert difference.max() > 0 and not np.array_equal(out, _rounded(out, np.float16))
    # the difference is what fp16 operand rounding gives: |a16 b16 - a b| <= (|a16-a||b| + |a16||b16-b|)
    rounding = np.abs(a16 - A) @ np.abs(B) + np.abs(a16) @ np.abs(b16 - B)
    assert np.all(difference <= rounding + 1e-5)


def test_must_keep_origin_dtype_is_plain_float32():
    model = _matmul_model()
    emulated = _emulate(model, ASCEND, precision_mode="must_keep_origin_dtype")
    assert [n.op_type for n in emulated.model.graph.node] == ["MatMul"]
    assert np.array_equal(_run(emulated.model, {"a": A, "b": B})["y"], _run(model, {"a": A, "b": B})["y"])
    assert emulated.compute_dtypes == {"mm": "float32"}


def test_ascend_gemm_with_transb_alpha_beta_follows_the_same_rule():
    a, b, c = RNG.standard_normal((8, 32)).astype(F32), RNG.standard_normal((5, 32)).astype(F32), RNG.standard_normal((5,)).astype(F32)
    model = _model([helper.make_node("Gemm", ["a", "b", "c"], ["y"], name="fc", transB=1, alpha=0.75, beta=1.5)],
                   [("a", TensorProto.FLOAT, [8, 32]), ("b", TensorProto.FLOAT, [5, 32])], [("y", TensorProto.FLOAT, [8, 5])],
                   initializers=[("c", c)])
    out = _run(_emulate(model, ASCEND).model, {"a": a, "b": b})["y"]
    a16, b16, c16 = (_rounded(x, np.float16).astype(np.float64) for x in (a, b, c))
    exact = 0.75 * (a16 @ b16.T) + 1.5 * c16
    _assert_rounded_result(out, exact, 4 * 32 * EPS32 * (np.abs(a16) @ np.abs(b16.T) + np.abs(c16)), np.float16)
    assert np.abs(out - (0.75 * (a @ b.T) + 1.5 * c)).max() > 0


def _conv_reference(x, w, bias, pad):
    padded = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, w.shape[2:], axis=(2, 3))  # N C OH OW KH KW
    return np.einsum("ncijkl,ockl->noij", windows, w) + bias[None, :, None, None]


def test_ascend_conv_rounds_input_weight_bias_and_result_to_fp16():
    x = RNG.standard_normal((2, 3, 9, 9)).astype(F32)
    w = RNG.standard_normal((4, 3, 3, 3)).astype(F32)
    bias = RNG.standard_normal((4,)).astype(F32)
    model = _model([helper.make_node("Conv", ["x", "w", "bias"], ["y"], name="conv", pads=[1, 1, 1, 1])],
                   [("x", TensorProto.FLOAT, [2, 3, 9, 9])], [("y", TensorProto.FLOAT, [2, 4, 9, 9])],
                   initializers=[("w", w), ("bias", bias)])
    emulated = _emulate(model, ASCEND)
    out = _run(emulated.model, {"x": x})["y"]
    x16, w16, b16 = (_rounded(v, np.float16).astype(np.float64) for v in (x, w, bias))
    exact = _conv_reference(x16, w16, b16, 1)
    bound = 2 * 27 * EPS32 * (_conv_reference(np.abs(x16), np.abs(w16), np.abs(b16), 1))
    _assert_rounded_result(out, exact, bound, np.float16)
    assert np.abs(out - _conv_reference(x.astype(np.float64), w, bias, 1)).max() > 1e-4
    assert emulated.compute_dtypes["conv"] == "float16"


def test_vector_ops_keep_float32_under_allow_fp32_to_fp16_and_compute_in_fp16_under_force_fp16():
    a, b = RNG.standard_normal((64,)).astype(F32), RNG.standard_normal((64,)).astype(F32)
    model = _model([helper.make_node("Add", ["a", "b"], ["s"], name="add"), helper.make_node("Exp", ["s"], ["y"], name="exp")],
                   [("a", TensorProto.FLOAT, [64]), ("b", TensorProto.FLOAT, [64])], [("y", TensorProto.FLOAT, [64])])
    kept = _emulate(model, ASCEND, precision_mode="allow_fp32_to_fp16")
    assert np.array_equal(_run(kept.model, {"a": a, "b": b})["y"], _run(model, {"a": a, "b": b})["y"])
    assert kept.compute_dtypes == {"add": "float32", "exp": "float32"}

    forced = _emulate(model, ASCEND, precision_mode="force_fp16")
    out = _run(forced.model, {"a": a, "b": b})["y"]
    s16 = _rounded(_rounded(a, np.float16) + _rounded(b, np.float16), np.float16)  # fp16 add, correctly rounded
    exact = np.exp(s16.astype(np.float64))
    assert np.array_equal(out, _rounded(out, np.float16))
    assert np.all(np.abs(out - exact) <= _half_ulp(exact, np.float16) + 4 * EPS32 * exact)
    assert forced.compute_dtypes == {"add": "float16", "exp": "float16"}


def test_allow_fp32_to_bf16_rounds_cube_operands_to_bfloat16():
    out = _run(_emulate(_matmul_model(), ASCEND, precision_mode="allow_fp32_to_bf16").model, {"a": A, "b": B})["y"]
    abf, bbf = _rounded(A, ml_dtypes.bfloat16), _rounded(B, ml_dtypes.bfloat16)
    exact = abf.astype(np.float64) @ bbf.astype(np.float64)
    _assert_rounded_result(out, exact, 2 * 64 * EPS32 * (np.abs(abf) @ np.abs(bbf)), ml_dtypes.bfloat16)


def test_fp16_matmul_accumulates_in_float32_on_the_cube():
    a16, b16 = A.astype(np.float16), B.astype(np.float16)
    emulated = _emulate(_matmul_model(dtype=TensorProto.FLOAT16), ASCEND, precision_mode="must_keep_origin_dtype")
    out = _run(emulated.model, {"a": a16, "b": b16})["y"]
    exact = a16.astype(np.float64) @ b16.astype(np.float64)
    assert out.dtype == np.float16
    assert np.all(np.abs(out.astype(np.float64) - exact) <= _half_ulp(exact, np.float16) + 2 * 64 * EPS32 * np.abs(exact).max())


def test_310p_has_no_bfloat16_mode():
    with pytest.raises(hal.InvalidArgumentError, match="bfloat16"):
        emulate(_matmul_model(), ASCEND_310P, precision_mode="allow_fp32_to_bf16")


# -- Kunlun ----------------------------------------------------------------------------------------
def _int16_reference(x: np.ndarray) -> tuple[np.ndarray, np.float32]:
    """Paddle XPU int16: max|x| per tensor, q = round-half-even(x * (32767 / max)) in float32,
    clipped to +-32767; dequantize with max / 32767."""
    peak = np.abs(x).max().astype(F32)
    if peak == 0:
        return np.zeros(x.shape, np.int64), F32(0)
    q = np.rint(x * (F32(32767) / peak)).clip(-32767, 32767).astype(np.int64)
    return q, F32(peak / F32(32767))


def _kunlun_reference(a, b, alpha=1.0, bias=None):
    """(the int16 FC result with an exact integer sum, the float32 rounding bound around it): the
    levels' products summed in float32 round by at most K * 2**-24 of sum |products| (Higham's
    gamma_K), dequantized and biased in float32 (a few ulps more)."""
    qa, sa = _int16_reference(a)
    qb, sb = _int16_reference(b)
    k = a.shape[-1]
    scale = F32(sa * sb) * F32(alpha)
    exact = (qa @ qb).astype(F32) * scale
    bound = (k * 2.0**-24) * (np.abs(qa) @ np.abs(qb)).astype(np.float64) * float(scale)
    if bias is not None:
        exact = exact + bias
    return exact, bound + 4 * np.spacing(np.abs(exact)).astype(np.float64)


def _assert_int16_fc(out, expected_and_bound, float_result):
    expected, bound = expected_and_bound
    assert out.dtype == expected.dtype == F32
    error = np.abs(out.astype(np.float64) - expected)
    assert np.all(error <= bound), (error - bound).max()
    # what a user sees is the int16 quantization, not the accumulator: its error is far larger
    assert np.abs(expected - float_result).max() > 10 * error.max()


def test_kunlun_matmul_is_int16_quantized_by_default():
    assert KUNLUN.default_precision_mode == "int16"
    emulated = _emulate(_matmul_model(), KUNLUN)
    out = _run(emulated.model, {"a": A, "b": B})["y"]
    _assert_int16_fc(out, _kunlun_reference(A, B), A @ B)
    assert emulated.compute_dtypes["mm"] == "int16"


def test_kunlun_batched_matmul_quantizes_each_operand_per_tensor():
    a = (RNG.standard_normal((3, 4, 20)) * np.array([1, 10, 100])[:, None, None]).astype(F32)
    model = _model([helper.make_node("MatMul", ["a", "b"], ["y"], name="bmm")],
                   [("a", TensorProto.FLOAT, [3, 4, 20]), ("b", TensorProto.FLOAT, [20, 6])], [("y", TensorProto.FLOAT, [3, 4, 6])])
    b = RNG.standard_normal((20, 6)).astype(F32)
    out = _run(_emulate(model, KUNLUN_P800).model, {"a": a, "b": b})["y"]
    _assert_int16_fc(out, _kunlun_reference(a, b), a @ b)


def test_kunlun_gemm_with_transposes_alpha_beta_and_bias():
    a, b, c = RNG.standard_normal((12, 7)).astype(F32), RNG.standard_normal((9, 12)).astype(F32), RNG.standard_normal((7, 9)).astype(F32)
    model = _model([helper.make_node("Gemm", ["a", "b", "c"], ["y"], name="fc", transA=1, transB=1, alpha=0.5, beta=2.0)],
                   [("a", TensorProto.FLOAT, [12, 7]), ("b", TensorProto.FLOAT, [9, 12]), ("c", TensorProto.FLOAT, [7, 9])],
                   [("y", TensorProto.FLOAT, [7, 9])])
    out = _run(_emulate(model, KUNLUN).model, {"a": a, "b": b, "c": c})["y"]
    _assert_int16_fc(out, _kunlun_reference(a.T, b.T, alpha=0.5, bias=c * F32(2.0)), 0.5 * a.T @ b.T + 2 * c)


@pytest.mark.parametrize("precision", ["float", "int31"])
def test_kunlun_float_and_int31_fc_are_float32_math(precision):
    model = _matmul_model()
    emulated = _emulate(model, KUNLUN, fc_precision=precision)
    assert np.array_equal(_run(emulated.model, {"a": A, "b": B})["y"], _run(model, {"a": A, "b": B})["y"])


def test_kunlun_float16_fc_rounds_operands_only():
    out = _run(_emulate(_matmul_model(), KUNLUN, fc_precision="float16").model, {"a": A, "b": B})["y"]
    a16, b16 = _rounded(A, np.float16), _rounded(B, np.float16)
    np.testing.assert_allclose(out, a16 @ b16, rtol=0, atol=float((2 * 64 * EPS32 * (np.abs(a16) @ np.abs(b16))).max()))


def test_kunlun_int16_rounds_ties_to_even():
    # max|a| = 32767 makes the quantization factor exactly 1, so a's levels are round(a)
    a = np.array([[32767.0, 0.5, 1.5, 2.5, -2.5, 3.5]], F32)
    out = _run(_emulate(_matmul_model(1, 6, 6), KUNLUN).model, {"a": a, "b": np.eye(6, dtype=F32)})["y"]
    levels = np.rint(out[0]).astype(int)  # b = I quantizes to 32767 * I with scale 1/32767
    assert levels.tolist() == [32767, 0, 2, 2, -2, 4]  # half away from zero would give 1, 2, 3, -3, 4


def test_kunlun_all_zero_operand_gives_zeros_not_nan():
    out = _run(_emulate(_matmul_model(), KUNLUN).model, {"a": np.zeros_like(A), "b": B})["y"]
    assert np.array_equal(out, np.zeros((16, 8), F32))


def test_kunlun_leaves_vector_ops_alone():
    model = _model([helper.make_node("Tanh", ["a"], ["y"], name="t")], [("a", TensorProto.FLOAT, [16, 64])], [("y", TensorProto.FLOAT, [16, 64])])
    emulated = _emulate(model, KUNLUN)
    assert [n.op_type for n in emulated.model.graph.node] == ["Tanh"]
    assert np.array_equal(_run(emulated.model, {"a": A})["y"], _run(model, {"a": A})["y"])


# -- int64 narrowing -------------------------------------------------------------------------------
def _index_model():
    return _model([helper.make_node("Add", ["idx", "offset"], ["shifted"], name="shift"),
                   helper.make_node("Reshape", ["shifted", "shape"], ["y"], name="flat")],
                  [("idx", TensorProto.INT64, [4])], [("y", TensorProto.INT64, [2, 2])],
                  initializers=[("offset", np.array(1, np.int64)), ("shape", np.array([2, 2], np.int64))])


def test_int64_in_range_passes_through_unchanged():
    emulated = _emulate(_index_model(), KUNLUN, narrow_int64={"shift", "flat"})
    idx = np.array([-5, 0, 7, 2**31 - 2], np.int64)
    values = _run(emulated.model, {"idx": idx})
    assert np.array_equal(values["y"], (idx + 1).reshape(2, 2))
    check_overflow(emulated, values, "kunlun:0")
    assert emulated.compute_dtypes["shift"] == "int32"
    # Reshape's shape is a host-side parameter, not narrowed: only its data input and output are checked
    assert {tensor for _, tensor in emulated.overflow_checks} == {"idx", "offset", "shifted", "y"}


@pytest.mark.parametrize("value, tensor", [(2**31, "idx"), (-(2**63), "idx"), (2**31 - 1, "shifted")])
def test_int64_that_does_not_fit_int32_raises_device_error(value, tensor):
    emulated = _emulate(_index_model(), KUNLUN, narrow_int64={"shift"})
    values = _run(emulated.model, {"idx": np.array([0, 1, 2, value], np.int64)})
    assert values["y"].dtype == np.int64  # the wrapped-around value, as the chip would compute it
    shown = value if tensor == "idx" else value + 1
    with pytest.raises(hal.DeviceError, match=rf"kunlun:0: tensor '{tensor}' holds {shown}.*int32.*Kunlun R200 computes Add"):
        check_overflow(emulated, values, "kunlun:0")


def test_check_overflow_needs_the_flags():
    emulated = _emulate(_index_model(), KUNLUN, narrow_int64={"shift"})
    with pytest.raises(hal.InvalidArgumentError, match="flag"):
        check_overflow(emulated, {"y": np.zeros((2, 2), np.int64)}, "kunlun:0")


def test_narrowing_a_node_the_model_lacks_is_an_error():
    with pytest.raises(hal.InvalidArgumentError, match="nope"):
        emulate(_index_model(), KUNLUN, narrow_int64={"nope"})


# -- arguments and graph hygiene -------------------------------------------------------------------
def test_invalid_modes_list_the_valid_ones():
    with pytest.raises(hal.InvalidArgumentError) as caught:
        emulate(_matmul_model(), ASCEND, precision_mode="fp16")
    assert all(mode in str(caught.value) for mode in ASCEND_PRECISION_MODES)
    with pytest.raises(hal.InvalidArgumentError) as caught:
        emulate(_matmul_model(), KUNLUN, fc_precision="int8")
    assert all(p in str(caught.value) for p in KUNLUN_FC_PRECISIONS)
    with pytest.raises(hal.InvalidArgumentError, match="not emulated"):
        emulate(_matmul_model(), ASCEND, precision_mode="allow_mix_precision")


@pytest.mark.parametrize("opset", [13, 17, 21])
def test_rewrites_hold_across_opsets(opset):
    model = _model([helper.make_node("MatMul", ["a", "b"], ["y"], name="mm"), helper.make_node("Add", ["i", "j"], ["k"], name="add")],
                   [("a", TensorProto.FLOAT, [16, 64]), ("b", TensorProto.FLOAT, [64, 8]), ("i", TensorProto.INT64, [2]),
                    ("j", TensorProto.INT64, [2])], [("y", TensorProto.FLOAT, [16, 8]), ("k", TensorProto.INT64, [2])], opset=opset)
    emulated = _emulate(model, KUNLUN, narrow_int64={"add"})
    values = _run(emulated.model, {"a": A, "b": B, "i": np.array([1, 2**40], np.int64), "j": np.array([1, 1], np.int64)})
    _assert_int16_fc(values["y"], _kunlun_reference(A, B), A @ B)
    with pytest.raises(hal.DeviceError, match="'i' holds 1099511627776"):
        check_overflow(emulated, values, "kunlun:0")


def test_old_opsets_are_converted_to_the_opset_the_rewrites_emit():
    old = helper.make_model(_matmul_model().graph, opset_imports=[helper.make_opsetid("", 11)])
    current = _matmul_model()
    for chip in (ASCEND, KUNLUN):
        emulated, reference = emulate(old, chip), emulate(current, chip)
        assert [o.version for o in emulated.model.opset_import if o.domain == ""] == [13]
        assert [n.op_type for n in emulated.model.graph.node] == [n.op_type for n in reference.model.graph.node]
        assert emulated.compute_dtypes == reference.compute_dtypes


def test_unnamed_nodes_are_named_and_the_input_model_is_untouched():
    model = _model([helper.make_node("MatMul", ["a", "b"], ["m"]), helper.make_node("Relu", ["m"], ["y"])],
                   [("a", TensorProto.FLOAT, [16, 64]), ("b", TensorProto.FLOAT, [64, 8])], [("y", TensorProto.FLOAT, [16, 8])])
    for chip in (ASCEND, KUNLUN):
        emulated = _emulate(model, chip, precision_mode="force_fp16")
        assert set(emulated.compute_dtypes) == {"MatMul_0", "Relu_1"}
        assert [o.name for o in emulated.model.graph.output] == ["y"]


def test_compute_dtype_of_agrees_with_emulate():
    def info(name, dtype, shape):
        return TensorInfo(name, hal.dtype(dtype), shape)

    node = NodeInfo("mm", "MatMul", "", 17, (info("a", "float32", (16, 64)), info("b", "float32", (64, 8))), (info("y", "float32", (16, 8)),))
    assert compute_dtype_of(node, ASCEND, CompileOptions()) == "float16"
    assert compute_dtype_of(node, ASCEND, CompileOptions(precision_mode="must_keep_origin_dtype")) == "float32"
    assert compute_dtype_of(node, KUNLUN, CompileOptions()) == "int16"
    assert compute_dtype_of(node, KUNLUN, CompileOptions(fc_precision="float")) == "float32"
