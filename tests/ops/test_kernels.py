"""The com.hal kernels against numpy references: random shapes (hypothesis), edge sizes (0, 1,
odd, unaligned), float16/bfloat16 and non-finite values."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import hal
from hal import ops

from . import references as ref

SETTINGS = settings(max_examples=25, deadline=None)
shapes = st.tuples(st.integers(0, 5), st.sampled_from([1, 2, 3, 7, 8, 15, 16, 17, 33, 64, 100, 257]))
float_dtypes = st.sampled_from(ref.FLOAT_DTYPES)


def rand(shape, dtype, seed=0, scale=1.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(dtype)


def close(actual, expected, dtype, scale=1.0):
    assert actual.dtype == np.dtype(dtype)
    np.testing.assert_allclose(ref.f64(actual), expected, **ref.tolerance(dtype, scale))


@SETTINGS
@given(shapes, float_dtypes, st.integers(0, 2**16))
def test_rms_norm(shape, dtype, seed):
    x, w = rand(shape, dtype, seed), rand(shape[-1:], dtype, seed + 1)
    close(ops.rms_norm(x, w, epsilon=1e-5), ref.rms_norm(x, w, 1e-5), dtype, scale=4)


@SETTINGS
@given(shapes, float_dtypes, st.integers(0, 2**16), st.booleans())
def test_layer_norm(shape, dtype, seed, shifted):
    x, g, b = rand(shape, dtype, seed, 3.0), rand(shape[-1:], dtype, seed + 1), rand(shape[-1:], dtype, seed + 2)
    got = ops.layer_norm(x, g, b if shifted else None)
    close(got, ref.layer_norm(x, g, b if shifted else None), dtype, scale=8)


@SETTINGS
@given(shapes, float_dtypes, st.integers(0, 2**16))
def test_softmax(shape, dtype, seed):
    x = rand(shape, dtype, seed, 5.0)
    close(ops.softmax(x), ref.softmax(x), dtype)


@SETTINGS
@given(shapes, float_dtypes, st.integers(0, 2**16), st.sampled_from(["none", "tanh"]))
def test_gelu(shape, dtype, seed, approximate):
    x = rand(shape, dtype, seed, 3.0)
    close(ops.gelu(x, approximate=approximate), ref.gelu(x, approximate), dtype, scale=2)


def test_gelu_large_tensor_uses_blocks_and_tail():
    x = rand((3, 4096 * 2 + 5), np.float32, 1, 4.0)  # whole 4096-element blocks plus a tail
    close(ops.gelu(x), ref.gelu(x), np.float32, scale=2)


@SETTINGS
@given(shapes, float_dtypes, st.integers(0, 2**16))
def test_swiglu(shape, dtype, seed):
    shape = (shape[0], 2 * shape[1])
    x = rand(shape, dtype, seed, 3.0)
    close(ops.swiglu(x), ref.swiglu(x), dtype, scale=4)


@SETTINGS
@given(st.integers(0, 3), st.integers(1, 9), st.sampled_from([2, 6, 8, 64, 128]), float_dtypes, st.booleans(), st.integers(0, 99))
def test_rope(heads, positions, width, dtype, interleaved, seed):
    x = rand((heads, positions, width), dtype, seed)
    angles = np.random.default_rng(seed).uniform(0, 6, (positions, width // 2))
    cos, sin = np.cos(angles).astype(dtype), np.sin(angles).astype(dtype)
    close(ops.rope(x, cos, sin, interleaved=interleaved), ref.rope(x, cos, sin, interleaved), dtype, scale=4)


@SETTINGS
@given(st.integers(0, 9), st.integers(1, 70), st.integers(0, 40), st.sampled_from([np.int8, np.int16]),
       st.booleans(), st.booleans(), st.integers(0, 99))
def test_quantized_matmul(m, k, n, dtype, per_row, per_channel, seed):
    rng = np.random.default_rng(seed)
    info = np.iinfo(dtype)
    a = rng.integers(info.min, info.max, (m, k), endpoint=True).astype(dtype)  # the full range, -128 / -32768 included
    b = rng.integers(info.min, info.max, (k, n), endpoint=True).astype(dtype)
    sa = rng.uniform(1e-4, 1e-2, m if per_row else 1).astype(np.float32)
    sb = rng.uniform(1e-4, 1e-2, n if per_channel else 1).astype(np.float32)
    got = ops.quantized_matmul(a, b, sa, sb)
    np.testing.assert_array_equal(got, ref.quantized_matmul(a, b, sa, sb))  # the same float32 ops: bit-exact


def test_quantized_matmul_int16_extremes_do_not_overflow():
    k = 4099  # odd, and long enough that int32 partial sums of int16 products would overflow
    a = np.full((5, k), -32768, np.int16)
    b = np.full((k, 3), -32768, np.int16)
    got = ops.quantized_matmul(a, b, 1.0, 1.0)
    assert np.all(got == np.float32(k * 2**30))


def _full_range(rng, dtype, shape):
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, shape, endpoint=True).astype(dtype)


@pytest.mark.parametrize("dtype", [np.int8, np.int16])
@pytest.mark.parametrize("threads", [1, 2, 4])
@pytest.mark.parametrize("m, k, n", [
    (41, 3001, 70),   # odd K over several cache blocks of a and of b; M, N not multiples of the 6 x 16 / 6 x 8 tile
    (100, 3000, 20),  # too few column slivers to share: two threads split the rows
    (13, 257, 530),   # more than one 128-pair int32 chunk per int16 tile
    (9, 300, 40),     # nine rows: the fewest for which b is packed
    (7, 2, 33),       # up to eight rows, b is read in place (kInPlaceRows), threads sharing its rows:
    (1, 4097, 1000),  # a decode step (odd K; N past a multiple of 16)
    (2, 1200, 130),
    (3, 777, 64),
    (4, 2, 17),
    (5, 300, 1),      # a sweep of four rows, then one of one
    (8, 513, 300),    # two sweeps of four
    (6, 2050, 300),   # two sweeps, each shared by threads (b over 256 KiB)
    (5, 0, 20),       # K = 0: zeros
    (1, 0, 20),
])
def test_quantized_matmul_shapes_and_threads(dtype, threads, m, k, n):
    """Exact against the reference over the full range, per channel and per tensor, batched a
    included, for both ways through the kernel: b packed in slivers, or read in place."""
    rng = np.random.default_rng(m * k + n)
    a, b = _full_range(rng, dtype, (m, k)), _full_range(rng, dtype, (k, n))
    sa = rng.uniform(1e-4, 1e-2, m).astype(np.float32)
    sb = rng.uniform(1e-4, 1e-2, n).astype(np.float32)
    before = ops.get_num_threads()
    try:
        ops.set_num_threads(threads)
        per_channel = ops.quantized_matmul(a, b, sa, sb)
        per_tensor = ops.quantized_matmul(a, b, sa[:1], sb[:1])
        batched = ops.quantized_matmul(a.reshape(1, m, 1, k), b, sa[:1], sb)
    finally:
        ops.set_num_threads(before)
    np.testing.assert_array_equal(per_channel, ref.quantized_matmul(a, b, sa, sb))
    np.testing.assert_array_equal(per_tensor, ref.quantized_matmul(a, b, sa[:1], sb[:1]))
    np.testing.assert_array_equal(batched.reshape(m, n), ref.quantized_matmul(a, b, sa[:1], sb))


def test_quantized_matmul_in_place_int32_sums_at_their_limit():
    """K = 65536 is the longest K read in place (32768 pairs, each at most 2^15, in one int32 sum):
    -128 everywhere sums to 2^30 exactly; one more k goes the packed way, in int64."""
    for k in (65536, 65537):
        a, b = np.full((2, k), -128, np.int8), np.full((k, 19), -128, np.int8)
        assert np.all(ops.quantized_matmul(a, b, 1.0, 1.0) == np.float32(k * 128.0**2)), k


@pytest.mark.parametrize("dtype", [np.int8, np.int16])
@pytest.mark.parametrize("k", [70001, 140000])
def test_quantized_matmul_long_k_is_exact(dtype, k):
    """Long K: int8 sums 32768 pairs at a time in int32 (140000 * 128^2 would overflow one int32
    sum), int16 128 at a time; the extremes of the range everywhere, and random values, against
    exact int64 sums."""
    low = np.iinfo(dtype).min
    a, b = np.full((3, k), low, dtype), np.full((k, 5), low, dtype)
    got = ops.quantized_matmul(a, b, 1.0, 1.0)
    assert np.all(got == np.float32(k * float(low) ** 2))
    np.testing.assert_array_equal(got, ref.quantized_matmul(a, b, 1.0, 1.0))
    rng = np.random.default_rng(k)
    a, b = _full_range(rng, dtype, (7, k)), _full_range(rng, dtype, (k, 17))
    sa, sb = np.float32(3e-3), rng.uniform(1e-4, 1e-2, 17).astype(np.float32)
    np.testing.assert_array_equal(ops.quantized_matmul(a, b, sa, sb), ref.quantized_matmul(a, b, sa, sb))


def test_quantized_matmul_int16_sums_beyond_2_to_the_51():
    """Past K = 2^20 an int16 sum can leave double's exact integers' range (2^53 with margin): such
    tiles convert their int64 totals one by one, still exactly as the reference."""
    k = (1 << 20) + 3
    a = np.full((1, k), -32768, np.int16)
    b = np.full((k, 2), -32768, np.int16)
    b[::2, 1] = 32767
    got = ops.quantized_matmul(a, b, 1.0, 1.0)
    np.testing.assert_array_equal(got, ref.quantized_matmul(a, b, 1.0, 1.0))
    assert got[0, 0] == np.float32(k * 2.0**30)


def test_quantized_matmul_batched_and_agrees_with_kunlun_fc_emulation():
    """The kernel (int32 accumulation) computes what hal.sim.numerics' Kunlun int16 FC emulation
    computes, within the emulation's float32 summing of the same int16 products."""
    from hal.sim.numerics import _INT16_MAX  # the emulation's quantization constant

    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 40)).astype(np.float32)
    w = rng.standard_normal((40, 24)).astype(np.float32)

    def quantize(t):
        peak = np.float32(np.abs(t).max())
        q = np.clip(np.round(t * (np.float32(_INT16_MAX) / peak)), -_INT16_MAX, _INT16_MAX).astype(np.int16)
        return q, np.float32(peak / np.float32(_INT16_MAX))

    (qx, sx), (qw, sw) = quantize(x), quantize(w)
    got = ops.quantized_matmul(qx, qw, sx, sw)
    sess = hal.InferenceSession(_matmul_model(w), devices=["kunlun:0"], strict=True)
    emulated, = sess.run(None, {"x": x})
    magnitude = (np.abs(qx.astype(np.float64)) @ np.abs(qw.astype(np.float64))) * float(sx * sw)
    bound = 40 * 2.0**-24 * magnitude + 4 * np.spacing(np.abs(got))
    assert np.all(np.abs(got.astype(np.float64) - emulated) <= bound)


def _matmul_model(w):
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "mm",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 40])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3, 24])],
                              [numpy_helper.from_array(w, "w")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@SETTINGS
@given(st.integers(0, 3), st.integers(0, 40), st.integers(0, 5), st.integers(0, 6),
       st.sampled_from([np.float32, np.float16, ref.BF16, np.int8]), st.sampled_from([16, 8, 32]))
def test_nc1hwc0_round_trip(n, c, h, w, dtype, c0):
    x = np.random.default_rng(c).integers(-100, 100, (n, c, h, w)).astype(dtype)
    blocked = ops.to_nc1hwc0(x, c0=c0)
    np.testing.assert_array_equal(blocked, ref.to_nc1hwc0(x, c0))
    np.testing.assert_array_equal(ops.from_nc1hwc0(blocked, channels=c), x)


@SETTINGS
@given(st.lists(st.integers(1, 3), max_size=2), st.integers(0, 40), st.integers(0, 40),
       st.sampled_from([np.float32, np.float16, ref.BF16, np.int8]))
def test_fractal_nz_round_trip(batch, m, n, dtype):
    x = np.random.default_rng(m * 41 + n).integers(-100, 100, (*batch, m, n)).astype(dtype)
    blocked = ops.to_fractal_nz(x)
    np.testing.assert_array_equal(blocked, ref.to_fractal_nz(x))
    np.testing.assert_array_equal(ops.from_fractal_nz(blocked, rows=m, cols=n), x)


# The layout kernels move 8 x 8 (float32), 8 x 16 (16-bit) or 16 x 32 (int8) tiles of channels x
# positions through vector registers, 512 positions per work item, fractals in bands of 4 row
# blocks and tiles of 4 (to) or 8 (from) fractals, and stream outputs of 16 MiB or more: the
# shapes below put the edges of each of those where the tiles do not divide them.
LAYOUT_DTYPES = (np.dtype(np.float32), np.dtype(np.float16), ref.BF16, np.dtype(np.int8))


def layout_input(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    if np.dtype(dtype) == np.int8:
        return rng.integers(-128, 128, shape).astype(np.int8)
    return rng.standard_normal(shape).astype(dtype)


def run_into(op, inputs, attrs, out):
    """Runs a com.hal kernel into a given output array, as a caller that reuses buffers does."""
    ops.find("com.hal", op, "cpu", str(inputs[0].dtype)).run(inputs, attrs, [out])
    return out


def dirty_array(shape, dtype, offset=0):
    """An array whose bytes start `offset` bytes past a 64-byte boundary, filled with nonzero
    garbage (so that padding the kernel fails to write shows up)."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape)) * dtype.itemsize
    raw = np.empty(nbytes + 128, np.uint8)
    start = (-raw.ctypes.data) % 64 + offset
    view = raw[start:start + nbytes].view(dtype).reshape(shape)
    view.view(np.uint8)[...] = 0x7B
    return view


NC1HWC0_SHAPES = [(1, 48, 36, 37), (2, 17, 5, 7), (3, 33, 1, 1), (1, 1, 1, 1), (2, 40, 33, 65), (1, 64, 8, 64), (1, 5, 1, 1023)]


@pytest.mark.parametrize("shape", NC1HWC0_SHAPES, ids=str)
@pytest.mark.parametrize("dtype", LAYOUT_DTYPES, ids=str)
def test_nc1hwc0_tile_edges(shape, dtype):
    x = layout_input(shape, dtype, seed=sum(shape))
    for c0 in (16, 8, 32, 24, 48, 128, 4, 3, 1):
        blocked = ops.to_nc1hwc0(x, c0=c0)
        np.testing.assert_array_equal(blocked, ref.to_nc1hwc0(x, c0), err_msg=f"c0={c0}")
        np.testing.assert_array_equal(ops.from_nc1hwc0(blocked, channels=shape[1]), x, err_msg=f"c0={c0}")
        # Into a dirty output the padding channels are still written (zeros); the inverse reads
        # only the real channels, whatever the padding holds.
        out = run_into("ToNC1HWC0", [x], {"c0": c0}, dirty_array(blocked.shape, dtype))
        np.testing.assert_array_equal(out, blocked, err_msg=f"c0={c0}")
        out.view(np.uint8).reshape(*out.shape, -1)[:, -1, ..., shape[1] % c0 or c0:, :] = 0x55
        np.testing.assert_array_equal(ops.from_nc1hwc0(out, channels=shape[1]), x, err_msg=f"c0={c0}")


@pytest.mark.parametrize("shape", [(0, 3, 4, 4), (2, 0, 4, 4), (2, 3, 0, 4), (2, 3, 4, 0)], ids=str)
@pytest.mark.parametrize("dtype", LAYOUT_DTYPES, ids=str)
def test_nc1hwc0_empty(shape, dtype):
    x = layout_input(shape, dtype)
    blocked = ops.to_nc1hwc0(x)
    assert blocked.shape == ref.to_nc1hwc0(x).shape and blocked.dtype == x.dtype
    back = ops.from_nc1hwc0(blocked, channels=shape[1])
    assert back.shape == shape and back.dtype == x.dtype


FRACTAL_SHAPES = [(64, 1024), (3, 17, 33), (2, 2, 40, 300), (1, 1), (100, 257), (70, 129), (5, 16, 16), (2, 4096)]


@pytest.mark.parametrize("shape", FRACTAL_SHAPES, ids=str)
@pytest.mark.parametrize("dtype", LAYOUT_DTYPES, ids=str)
def test_fractal_nz_tile_edges(shape, dtype):
    x = layout_input(shape, dtype, seed=sum(shape))
    m, n = shape[-2:]
    for m0, n0 in ((16, 16), (8, 8), (16, 32), (32, 8), (3, 5), (1, 1), (16, 4), (4, 64)):
        blocked = ops.to_fractal_nz(x, m0=m0, n0=n0)
        np.testing.assert_array_equal(blocked, ref.to_fractal_nz(x, m0, n0), err_msg=f"m0={m0} n0={n0}")
        np.testing.assert_array_equal(ops.from_fractal_nz(blocked, rows=m, cols=n), x, err_msg=f"m0={m0} n0={n0}")
        out = run_into("ToFractalNZ", [x], {"m0": m0, "n0": n0}, dirty_array(blocked.shape, dtype))
        np.testing.assert_array_equal(out, blocked, err_msg=f"m0={m0} n0={n0}")
        # Garbage in the padding (the last fractal row and column) does not reach the matrix.
        out[..., -1, :, :, n % n0 or n0:] = 1  # padding columns: the last strip of fractals
        out[..., -1, m % m0 or m0:, :] = 1  # padding rows: the last fractal of each strip
        np.testing.assert_array_equal(ops.from_fractal_nz(out, rows=m, cols=n), x, err_msg=f"m0={m0} n0={n0}")


@pytest.mark.parametrize("shape", [(0, 16, 16), (2, 0, 5), (2, 5, 0), (0, 0), (3, 0, 0, 7)], ids=str)
@pytest.mark.parametrize("dtype", LAYOUT_DTYPES, ids=str)
def test_fractal_nz_empty(shape, dtype):
    x = layout_input(shape, dtype)
    blocked = ops.to_fractal_nz(x)
    assert blocked.shape == ref.to_fractal_nz(x).shape and blocked.dtype == x.dtype
    back = ops.from_fractal_nz(blocked, rows=shape[-2], cols=shape[-1])
    assert back.shape == shape and back.dtype == x.dtype


def test_from_fractal_nz_rejects_empty_fractals():
    # (..., N1, M1, 0, N0) holds no data for rows > 0: an error, not a division by zero.
    with pytest.raises(hal.InvalidArgumentError, match="M0 and N0 must be positive"):
        ops.from_fractal_nz(np.ones((1, 2, 0, 16), np.float32), rows=2, cols=3)
    with pytest.raises(hal.InvalidArgumentError, match="M0 and N0 must be positive"):
        ops.from_fractal_nz(np.ones((0, 2, 16, 0), np.float32), rows=20, cols=0)


@pytest.mark.parametrize("dtype", LAYOUT_DTYPES, ids=str)
def test_layouts_split_across_threads_like_one_thread(dtype):
    # Large enough that the work is split between threads, in pieces that end mid-block.
    img = layout_input((2, 40, 33, 65), dtype, 1)
    mat = layout_input((3, 100, 700), dtype, 2)
    before = ops.get_num_threads()
    results = []
    try:
        for threads in (1, 2, 3):
            ops.set_num_threads(threads)
            blocked, nz = ops.to_nc1hwc0(img), ops.to_fractal_nz(mat)
            results.append((blocked, ops.from_nc1hwc0(blocked, channels=40), nz, ops.from_fractal_nz(nz, rows=100, cols=700)))
    finally:
        ops.set_num_threads(before)
    for blocked, back, nz, mat_back in results:
        np.testing.assert_array_equal(blocked, ref.to_nc1hwc0(img))
        np.testing.assert_array_equal(back, img)
        np.testing.assert_array_equal(nz, ref.to_fractal_nz(mat))
        np.testing.assert_array_equal(mat_back, mat)


@pytest.mark.parametrize("offset", [0, 16], ids=["aligned32", "aligned16"])
@pytest.mark.parametrize("dtype", [np.dtype(np.float32), np.dtype(np.float16), np.dtype(np.int8)], ids=str)
def test_layouts_into_large_reused_outputs(dtype, offset):
    # Outputs of 16 MiB or more that are already in memory are written with streaming stores
    # (32- or 16-byte aligned ones); each must still hold exactly the reference, padding included.
    scale = 4 // dtype.itemsize
    img = layout_input((1, 20, 512 * scale, 260), dtype, 3)  # C1 * C0 = 32 channels: >= 16 MiB blocked
    blocked = run_into("ToNC1HWC0", [img], {"c0": 16}, dirty_array((1, 2, 512 * scale, 260, 16), dtype, offset))
    np.testing.assert_array_equal(blocked, ref.to_nc1hwc0(img))
    back = run_into("FromNC1HWC0", [blocked], {"channels": 20}, dirty_array(img.shape, dtype, offset))
    np.testing.assert_array_equal(back, img)
    mat = layout_input((2, 1000 * scale, 2100), dtype, 4)  # >= 16 MiB both ways, N not a multiple of 16
    expected = ref.to_fractal_nz(mat)
    nz = run_into("ToFractalNZ", [mat], {"m0": 16, "n0": 16}, dirty_array(expected.shape, dtype, offset))
    np.testing.assert_array_equal(nz, expected)
    mat_back = run_into("FromFractalNZ", [nz], {"rows": 1000 * scale, "cols": 2100}, dirty_array(mat.shape, dtype, offset))
    np.testing.assert_array_equal(mat_back, mat)


@pytest.mark.parametrize("dtype", ref.FLOAT_DTYPES, ids=str)
def test_non_finite_values_propagate_like_numpy(dtype):
    x = np.array([[1.0, np.nan, 2.0, 0.5], [np.inf, 1.0, 2.0, 3.0], [-np.inf, 0.0, 1.0, 2.0], [-np.inf] * 4], dtype)
    with np.errstate(invalid="ignore"):
        np.testing.assert_array_equal(np.isnan(ops.softmax(x)), np.isnan(ref.softmax(x)))
        np.testing.assert_allclose(ref.f64(ops.softmax(x))[2], ref.softmax(x)[2], **ref.tolerance(dtype))
        np.testing.assert_array_equal(np.isnan(ops.rms_norm(x, np.ones(4, dtype))), np.isnan(ref.rms_norm(x, np.ones(4))))
        np.testing.assert_array_equal(np.isnan(ops.gelu(x)), np.isnan(ref.gelu(x)))
        np.testing.assert_array_equal(np.isinf(ops.gelu(x)), np.isinf(ref.gelu(x)))
        np.testing.assert_array_equal(np.isnan(ops.swiglu(x)), np.isnan(ref.swiglu(x)))


def test_extreme_softmax_inputs_stay_finite():
    x = np.array([[1e30, -1e30, 0.0], [88.0, 89.0, 90.0], [-200.0, -100.0, -150.0]], np.float32)
    close(ops.softmax(x), ref.softmax(x), np.float32)


def test_threads_give_the_same_result():
    x = rand((512, 1024), np.float32, 5)
    w = rand((1024,), np.float32, 6)
    before = ops.get_num_threads()
    try:
        ops.set_num_threads(1)
        one = ops.rms_norm(x, w)
        ops.set_num_threads(4)
        many = ops.rms_norm(x, w)
    finally:
        ops.set_num_threads(before)
    np.testing.assert_array_equal(one, many)


@pytest.mark.parametrize("device", ["cpu", "ascend:0", "kunlun:0"])
def test_device_tensors_in_device_tensors_out(device):
    x, w = rand((6, 32), np.float32, 1), rand((32,), np.float32, 2)
    t = hal.tensor(x, device=device)
    y = ops.rms_norm(t, w)  # weight given as numpy: copied to x's device
    assert isinstance(y, hal.DeviceTensor) and y.device is t.device and y.shape == (6, 32)
    close(y.numpy(), ref.rms_norm(x, w), np.float32, scale=4)


def test_cpu_tensors_are_read_and_written_in_place():
    x = hal.tensor(rand((4, 8), np.float32, 1), device="cpu")
    y = ops.softmax(x)
    assert y.device.name == "cpu:0"
    np.testing.assert_allclose(y.host_view().sum(-1), 1.0, rtol=1e-6)


def test_ascend_force_fp16_rounds_a_float32_kernel_through_float16():
    from hal.sim.numerics import kernel_precision
    from hal.ops.dispatch import kernel_node

    x = rand((2, 16), np.float32, 3)
    node = kernel_node("com.hal", "RMSNorm", [x, x[0]], {}, [("float32", (2, 16))])
    chip = hal.device("ascend:0").backend.chip

    class Options:
        precision_mode, fc_precision = "force_fp16", None

    precision = kernel_precision(node, chip, Options())
    assert precision.compute == "float16"
    rounded = precision.inputs([x])[0]
    np.testing.assert_array_equal(rounded, x.astype(np.float16).astype(np.float32))
    assert kernel_precision(node, chip).plan.rewrites is False  # the default mode keeps vector ops in float32
