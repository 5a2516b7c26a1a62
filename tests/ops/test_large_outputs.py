"""Large kernel outputs: the streaming-store path (outputs of 16 MiB and more, written through an
L1 scratch row) and the output cache (numpy outputs of 1 MiB and more come from a caching arena).
Values must match the references exactly as the small-tensor tests do, live outputs must never
share memory, and a dead output's memory must be reused."""
from __future__ import annotations

import gc

import numpy as np
import pytest

from hal import ops

from . import references as ref

F32 = np.dtype(np.float32)


def close(actual, expected, scale=1.0):
    assert actual.dtype == F32
    np.testing.assert_allclose(ref.f64(actual), expected, **ref.tolerance(F32, scale))


@pytest.fixture(scope="module")
def big():
    # 4100 x 1025 float32 = 16.8 MB: over the 16 MiB streaming threshold; an odd width puts
    # most rows at addresses that are not 16-byte aligned, so the aligned-head code runs too.
    rng = np.random.default_rng(7)
    return rng.standard_normal((4100, 1025), dtype=np.float32)


KERNELS = {
    "rms_norm": lambda x, w, b: ops.rms_norm(x, w),
    "layer_norm": lambda x, w, b: ops.layer_norm(x, w, b),
    "softmax": lambda x, w, b: ops.softmax(x),
    "gelu": lambda x, w, b: ops.gelu(x),
    "gelu_tanh": lambda x, w, b: ops.gelu(x, approximate="tanh"),
    "swiglu": lambda x, w, b: ops.swiglu(np.ascontiguousarray(x[:, :1024])),
}


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("name", sorted(KERNELS))
def test_streamed_outputs_equal_small_calls_bit_for_bit(big, name, threads):
    """The whole tensor takes the streaming path; slices of 64 rows (256 KiB) do not. Every element
    is computed by the same code either way, so the two must agree exactly."""
    before = ops.get_num_threads()
    ops.set_num_threads(threads)
    try:
        w = np.linspace(-2, 2, big.shape[1], dtype=np.float32)
        b = np.linspace(1, -1, big.shape[1], dtype=np.float32)
        run = KERNELS[name]
        whole = run(big, w, b)
        pieces = np.concatenate([run(big[r:r + 64], w, b) for r in range(0, big.shape[0], 64)])
        np.testing.assert_array_equal(whole, pieces)
    finally:
        ops.set_num_threads(before)


def test_streamed_outputs_match_the_references(big):
    w = np.linspace(-2, 2, big.shape[1], dtype=np.float32)
    rows = big[::97]  # references in float64 on a sample of rows of the streamed results
    close(ops.rms_norm(big, w)[::97], ref.rms_norm(rows, w), scale=4)
    close(ops.softmax(big)[::97], ref.softmax(rows), scale=4)
    close(ops.gelu(big, approximate="tanh")[::97], ref.gelu(rows, "tanh"), scale=4)


def test_streamed_output_keeps_non_finite_values(big):
    x = big.copy()
    x[17, 3] = np.nan
    x[4000, 0] = np.inf
    y = ops.gelu(x)
    assert np.isnan(y[17, 3]) and y[4000, 0] == np.inf
    s = ops.softmax(x)
    assert np.isnan(s[17]).all() and np.isnan(s[4000]).all()
    assert np.isfinite(s[18]).all()


def test_dead_output_memory_is_reused():
    x = np.ones((512, 1024), np.float32)  # 2 MiB outputs: over the 1 MiB cache threshold
    gc.collect()
    ops.empty_output_cache()  # so that the block freed below is the only one cached
    first = ops.softmax(x)
    address = first.ctypes.data
    hits = ops.output_cache_stats()["cache_hits"]
    del first
    gc.collect()
    second = ops.softmax(x)
    assert second.ctypes.data == address
    assert ops.output_cache_stats()["cache_hits"] == hits + 1
    np.testing.assert_allclose(second, np.full_like(x, 1 / 1024), rtol=1e-6)


def test_live_outputs_never_share_memory():
    rng = np.random.default_rng(3)
    xs = [rng.standard_normal((512, 1024), dtype=np.float32) for _ in range(3)]
    outs = [ops.softmax(x) for x in xs]
    kept = [o.copy() for o in outs]
    assert len({o.ctypes.data for o in outs}) == 3
    for _ in range(3):  # more calls while the first outputs are alive must not overwrite them
        ops.softmax(xs[0])
    for out, snapshot in zip(outs, kept):
        np.testing.assert_array_equal(out, snapshot)
    assert all(o.flags.writeable and o.flags.c_contiguous for o in outs)


def test_a_view_keeps_the_block_alive():
    x = np.random.default_rng(4).standard_normal((512, 1024), dtype=np.float32)
    view = ops.softmax(x)[100:200]
    expected = view.copy()
    gc.collect()
    for _ in range(3):
        ops.softmax(x * 2)
    np.testing.assert_array_equal(view, expected)


def test_small_outputs_bypass_the_cache_and_empty_cache_releases():
    small = ops.softmax(np.ones((4, 1024), np.float32))
    assert small.flags.owndata
    gc.collect()
    ops.softmax(np.ones((512, 1024), np.float32))  # a dead 2 MiB output: cached
    stats = ops.output_cache_stats()
    assert stats["cached_bytes"] >= 2 << 20 and stats["capacity_bytes"] >= stats["live_bytes"] + stats["cached_bytes"]
    released = ops.empty_output_cache()
    assert released >= 2 << 20
    assert ops.output_cache_stats()["cached_bytes"] == 0
