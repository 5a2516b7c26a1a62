"""com.hal::Linear and com.hal::CachedAttention, the decode step's kernels, against float64 numpy:
random shapes (hypothesis), every dtype combination, threads, masked rows, and bad input."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import hal
from hal import ops

from . import references as ref

SETTINGS = settings(max_examples=30, deadline=None)
dtypes = st.sampled_from(ref.FLOAT_DTYPES)


def rand(shape, dtype, seed, scale=1.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(dtype)


def sum_tolerance(k: int, *dtypes) -> dict[str, float]:
    # float32 sums of k products: rounding grows with k; a 16-bit output rounds once more
    out = max(ref.ULP[np.dtype(d)] for d in dtypes[:1])
    return {"rtol": 4 * out + 1e-6 * k, "atol": (4 * out + 1e-6 * k) * np.sqrt(max(k, 1))}


@SETTINGS
@given(st.integers(0, 11), st.integers(0, 70), st.integers(0, 300), dtypes, dtypes, st.booleans(), st.integers(0, 2**16))
def test_linear_equals_float64_matmul(m, k, n, x_dtype, w_dtype, with_bias, seed):
    x, w, b = rand((m, k), x_dtype, seed), rand((k, n), w_dtype, seed + 1), rand((n,), x_dtype, seed + 2)
    got = ops.linear(x, w, b if with_bias else None)
    assert got.dtype == np.dtype(x_dtype) and got.shape == (m, n)
    expected = ref.f64(x) @ ref.f64(w) + (ref.f64(b) if with_bias else 0)
    np.testing.assert_allclose(ref.f64(got), expected, **sum_tolerance(k, x_dtype))


@pytest.mark.parametrize("threads", [1, 2, 4])
@pytest.mark.parametrize("shape", [(1, 768, 4096), (3, 2048, 768), (8, 768, 1000), (1, 5, 70000)])
@pytest.mark.parametrize("w_dtype", [np.float32, np.float16, np.int8])
def test_linear_threads_split_the_weights_and_agree(threads, shape, w_dtype):
    m, k, n = shape
    x, w = rand((m, k), np.float32, 1), rand((k, n), w_dtype, 2) if w_dtype != np.int8 else \
        np.random.default_rng(2).integers(-128, 128, (k, n)).astype(np.int8)
    scale = np.full(n, 1 / 64, np.float32) if w_dtype == np.int8 else None
    before = hal.ops.get_num_threads()
    hal.ops.set_num_threads(threads)
    try:
        got = ops.linear(x, w, w_scale=scale)
    finally:
        hal.ops.set_num_threads(before)
    expected = x.astype(np.float64) @ w.astype(np.float64) * (1 if scale is None else scale)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-3)


def test_linear_batched_rows_and_bad_input():
    x, w = rand((2, 3, 16), np.float32, 3), rand((16, 5), np.float32, 4)
    np.testing.assert_allclose(ops.linear(x, w), x @ w, rtol=1e-5, atol=1e-5)
    with pytest.raises(hal.InvalidArgumentError, match=r"w must have shape \(K, N\) with K = 16"):
        ops.linear(x, rand((15, 5), np.float32, 5))
    with pytest.raises(hal.InvalidArgumentError, match=r"bias must have shape \(5,\)"):
        ops.linear(x, w, np.zeros(4, np.float32))
    with pytest.raises(hal.UnsupportedDTypeError, match=r"w must be float32, float16 or bfloat16 \(or int8 with scales\)"):
        ops.linear(x, w.astype(np.int16))
    with pytest.raises(hal.InvalidArgumentError, match="int8 weights need their scales"):
        ops.linear(x, w.astype(np.int8))
    with pytest.raises(hal.InvalidArgumentError, match=r"w_scale must have shape \(5,\)"):
        ops.linear(x, w.astype(np.int8), w_scale=np.ones(4, np.float32))
    with pytest.raises(hal.InvalidArgumentError, match="w_scale is for int8 weights"):
        ops.linear(x, w, w_scale=np.ones(5, np.float32))


@SETTINGS
@given(st.integers(0, 9), st.integers(0, 70), st.integers(0, 300), dtypes, st.booleans(), st.integers(0, 2**16))
def test_linear_int8_weights_with_column_scales(m, k, n, x_dtype, with_bias, seed):
    rng = np.random.default_rng(seed)
    x, b = rand((m, k), x_dtype, seed), rand((n,), x_dtype, seed + 2)
    w = rng.integers(-128, 128, (k, n)).astype(np.int8)
    scale = (rng.random(n) / 64).astype(np.float32)
    got = ops.linear(x, w, b if with_bias else None, w_scale=scale)
    expected = (ref.f64(x) @ w.astype(np.float64)) * scale + (ref.f64(b) if with_bias else 0)
    np.testing.assert_allclose(ref.f64(got), expected, **sum_tolerance(k, x_dtype))


def attention_reference(q, k, v, bias, length, scale):
    q, k, v = ref.f64(q), ref.f64(k)[:, :, :length], ref.f64(v)[:, :, :length]
    scores = np.einsum("bhrd,bhtd->bhrt", q, k) * scale + ref.f64(bias)[:, None]
    scores -= scores.max(-1, keepdims=True)
    p = np.exp(scores)
    return np.einsum("bhrt,bhtd->bhrd", p / p.sum(-1, keepdims=True), v)


@SETTINGS
@given(st.integers(1, 3), st.integers(1, 4), st.integers(1, 9), st.sampled_from([1, 8, 64, 80]), st.integers(1, 40),
       dtypes, st.booleans(), st.integers(0, 2**16))
def test_cached_attention_equals_float64_softmax(batch, heads, rows, d, length, cache_dtype, bias_per_row, seed):
    tmax = length + 3  # only the first `length` positions are read
    q = rand((batch, heads, rows, d), np.float32, seed)
    k, v = rand((batch, heads, tmax, d), cache_dtype, seed + 1), rand((batch, heads, tmax, d), cache_dtype, seed + 2)
    bias = np.where(np.random.default_rng(seed + 3).random((batch, rows if bias_per_row else 1, length)) < 0.2, -1e30, 0.0)
    bias[..., -1] = 0.0  # every row sees at least one key
    bias = bias.astype(np.float32)
    got = ops.cached_attention(q, k, v, bias, length=length)
    np.testing.assert_allclose(got, attention_reference(q, k, v, bias, length, d**-0.5), rtol=1e-4, atol=1e-5)


def test_cached_attention_fully_masked_row_is_the_mean_value_not_nan():
    q = rand((1, 1, 2, 8), np.float32, 1)
    k, v = rand((1, 1, 5, 8), np.float32, 2), rand((1, 1, 5, 8), np.float32, 3)
    bias = np.array([[[-np.inf] * 5, [0.0] * 5]], np.float32)
    got = ops.cached_attention(q, k, v, bias, length=5)
    np.testing.assert_allclose(got[0, 0, 0], v[0, 0].mean(0), rtol=1e-5)
    assert np.isfinite(got).all()


@pytest.mark.parametrize("change, words", [
    ({"length": 0}, r"length must be in \[1, 6\]"),
    ({"length": 7}, r"length must be in \[1, 6\]"),
    ({"bias": np.zeros((2, 3, 4), np.float32)}, r"bias must have shape \(2, 3 or 1, 5\)"),
    ({"k_cache": np.zeros((2, 2, 6, 4), np.float32)}, "must match q"),
    ({"v_cache": np.zeros((2, 4, 6, 4), np.float16)}, "v_cache must have k_cache's shape and dtype"),
])
def test_cached_attention_bad_input(change, words):
    args = {"q": np.zeros((2, 4, 3, 4), np.float32), "k_cache": np.zeros((2, 4, 6, 4), np.float32),
            "v_cache": np.zeros((2, 4, 6, 4), np.float32), "bias": np.zeros((2, 1, 5), np.float32), "length": 5}
    args.update(change)
    with pytest.raises(hal.InvalidArgumentError, match=words):
        ops.cached_attention(args.pop("q"), args.pop("k_cache"), args.pop("v_cache"), args.pop("bias"), **args)


@pytest.mark.parametrize("device", ["ascend:0", "kunlun:0"])
def test_decode_kernels_run_on_simulated_chips_with_device_tensors(device):
    x, w = rand((1, 32), np.float32, 1), rand((32, 16), np.float32, 2)
    y = ops.linear(hal.tensor(x, device=device), hal.tensor(w, device=device))
    assert isinstance(y, hal.DeviceTensor) and y.device.name == device
    tolerance = 2e-2 if device.startswith("ascend") else 1e-5  # Ascend's Cube: float16 operands by default
    np.testing.assert_allclose(y.numpy(), x @ w, rtol=tolerance, atol=tolerance)
