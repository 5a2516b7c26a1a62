"""hal.ops kernels vs the best plain-numpy formulation vs torch's CPU eager equivalent.

    python benchmarks/bench_ops.py [--sizes 4K,256K,4M,64M] [--threads 1,2] [--ops rms_norm,...]

One process, float32 inputs of each size (bytes of the main input; QuantizedMatMul: square int8
GEMMs whose A has that many bytes, up to 1 MiB, and one row of a times a square int8 b of that
many bytes, a decode step), each kernel run with 1 and 2 threads (hal's
set_num_threads, torch.set_num_threads, BLAS through threadpoolctl when installed). Prints medians
(calls under 1 MiB timed in batches, each contender after a short pause: see timed()),
speedups (hal's time divided into the others') and hal's GB/s next to this machine's memcpy
bandwidth at the same size (np.copyto), or GFLOP/s next to its sgemm rate (np.matmul, float32).
Targets (issue #4): >= 3x numpy and >= 1.0x torch for every kernel, size and thread count.
The "ceiling" column is numpy's time over a plain copy of the output's bytes into a new array: the
most a kernel writing fresh pages could gain on this machine's memory (hal's output cache reuses
pages already mapped, which is how it passes that at 64 MiB). For QuantizedMatMul it is numpy's
time over that of the GEMM's multiply-adds at this machine's int16 multiply-add peak (probes/,
vpmaddwd + vpaddd, measured on as many threads): the most any exact int8 GEMM could gain here.
BLAS is held to the thread count only with threadpoolctl installed (pip install -e ".[test]").
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import math
import os
import sys
import time

# OpenBLAS's idle workers busy-wait for about 0.1 s after each BLAS call (numpy's einsum and
# matmul here), holding the second core while hal or torch is timed next; a short timeout makes
# them sleep. Set before numpy loads OpenBLAS; it changes no computed figure, only who waits.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

import numpy as np  # noqa: E402

import hal  # noqa: E402
from hal import ops  # noqa: E402
from _harness import median_per_call, median_seconds, print_table  # noqa: E402
from probes import int16_madd_rate  # noqa: E402

SIZES = {"4K": 4 << 10, "256K": 256 << 10, "4M": 4 << 20, "64M": 64 << 20}
WIDTH = 1024  # row length of the row-wise kernels (a hidden size)


def _erf(x):
    """erf in plain numpy (numpy has none): Abramowitz & Stegun 7.1.26, |error| < 1.5e-7."""
    t = 1.0 / (1.0 + 0.3275911 * np.abs(x))
    y = 1.0 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * np.exp(-x * x)
    return np.copysign(y, x)


def cases(nbytes: int, torch):
    """(name, hal fn, numpy fn, torch fn or None, bytes moved, flops) per kernel at this size."""
    rng = np.random.default_rng(0)
    n = nbytes // 4
    rows, width = max(1, n // WIDTH), min(WIDTH, n)
    x = rng.standard_normal((rows, width), dtype=np.float32)
    w = rng.standard_normal(width, dtype=np.float32)
    b = rng.standard_normal(width, dtype=np.float32)
    tx, tw, tb = (torch.from_numpy(v) for v in (x, w, b)) if torch else (None, None, None)
    F = torch.nn.functional if torch else None
    moved = 2 * x.nbytes
    half = width // 2

    def np_rms():
        return x * (1.0 / np.sqrt(np.einsum("ij,ij->i", x, x)[:, None] / width + 1e-6)) * w

    def np_layer():
        d = x - x.mean(-1, keepdims=True)
        return d * (1.0 / np.sqrt(np.einsum("ij,ij->i", d, d)[:, None] / width + 1e-5)) * w + b

    def np_softmax():
        e = np.exp(x - x.max(-1, keepdims=True))
        e /= e.sum(-1, keepdims=True)
        return e

    def np_swiglu():
        a, g = x[:, :half], x[:, half:]
        return a / (1.0 + np.exp(-a)) * g

    positions = rows
    angles = rng.uniform(0, 6, (positions, half)).astype(np.float32)
    cos, sin = np.cos(angles), np.sin(angles)
    xr = x.reshape(1, positions, width)

    def np_rope():
        a, g = xr[..., :half], xr[..., half:]
        return np.concatenate([a * cos - g * sin, g * cos + a * sin], axis=-1)

    yield "rms_norm", lambda: ops.rms_norm(x, w), np_rms, (lambda: F.rms_norm(tx, (width,), tw, 1e-6)) if torch else None, moved, 0
    yield "layer_norm", lambda: ops.layer_norm(x, w, b), np_layer, (lambda: F.layer_norm(tx, (width,), tw, tb)) if torch else None, moved, 0
    yield "softmax", lambda: ops.softmax(x), np_softmax, (lambda: torch.softmax(tx, -1)) if torch else None, moved, 0
    yield ("gelu (erf)", lambda: ops.gelu(x), lambda: 0.5 * x * (1.0 + _erf(x * np.float32(0.70710678))),
           (lambda: F.gelu(tx)) if torch else None, moved, 0)
    yield ("gelu (tanh)", lambda: ops.gelu(x, approximate="tanh"),
           lambda: 0.5 * x * (1.0 + np.tanh(np.float32(0.7978845608) * (x + np.float32(0.044715) * x * x * x))),
           (lambda: F.gelu(tx, approximate="tanh")) if torch else None, moved, 0)
    if torch:
        ta, tg = tx[:, :half], tx[:, half:]
        trx, tcos, tsin = torch.from_numpy(xr), torch.from_numpy(cos), torch.from_numpy(sin)
    yield "swiglu", lambda: ops.swiglu(x), np_swiglu, (lambda: F.silu(ta) * tg) if torch else None, x.nbytes * 3 // 2, 0
    yield ("rope", lambda: ops.rope(xr, cos, sin), np_rope,
           (lambda: torch.cat([trx[..., :half] * tcos - trx[..., half:] * tsin,
                               trx[..., half:] * tcos + trx[..., :half] * tsin], -1)) if torch else None,
           moved + cos.nbytes * 2, 0)
    c = 48 if n >= 48 * 16 else 3
    hw = max(1, n // c)
    side = max(1, int(math.sqrt(hw)))
    img = rng.standard_normal((1, c, side, hw // side), dtype=np.float32)
    timg = torch.from_numpy(img) if torch else None
    c1 = -(-c // 16)

    def np_nc1hwc0():
        padded = np.zeros((1, c1 * 16, *img.shape[2:]), np.float32)
        padded[:, :c] = img
        return padded.reshape(1, c1, 16, *img.shape[2:]).transpose(0, 1, 3, 4, 2).copy()

    def torch_nc1hwc0():
        padded = F.pad(timg, (0, 0, 0, 0, 0, c1 * 16 - c))
        return padded.reshape(1, c1, 16, *img.shape[2:]).permute(0, 1, 3, 4, 2).contiguous()

    yield ("to_nc1hwc0", lambda: ops.to_nc1hwc0(img), np_nc1hwc0, torch_nc1hwc0 if torch else None,
           img.nbytes + c1 * 16 * img[0, 0].size * 4, 0)
    m = x.shape[0]

    def np_nz():
        m1, n1 = -(-m // 16), -(-width // 16)
        padded = np.zeros((m1 * 16, n1 * 16), np.float32)
        padded[:m, :width] = x
        return padded.reshape(m1, 16, n1, 16).transpose(2, 0, 1, 3).copy()

    def torch_nz():
        m1, n1 = -(-m // 16), -(-width // 16)
        padded = F.pad(tx, (0, n1 * 16 - width, 0, m1 * 16 - m))
        return padded.reshape(m1, 16, n1, 16).permute(2, 0, 1, 3).contiguous()

    yield "to_fractal_nz", lambda: ops.to_fractal_nz(x), np_nz, torch_nz if torch else None, moved, 0
    if nbytes <= 1 << 20:  # square int8 GEMM whose A has nbytes bytes
        side = int(math.sqrt(nbytes))
        qa = rng.integers(-127, 128, (side, side), dtype=np.int8)
        qb = rng.integers(-127, 128, (side, side), dtype=np.int8)
        yield ("quantized_matmul int8", *quantized_matmul_case(qa, qb, rng, torch), 0, 2.0 * side**3)
    # A decode step: one row of activations times int8 or int16 (Kunlun's FC_INT16) weights of
    # nbytes bytes, read in place (memory-bound, so its rate is printed in GB/s of b beside memcpy's).
    for dtype in (np.int8, np.int16):
        side = int(math.sqrt(nbytes // np.dtype(dtype).itemsize))
        peak = np.iinfo(dtype).max
        qa = rng.integers(-peak, peak + 1, (1, side), dtype=dtype)
        qb = rng.integers(-peak, peak + 1, (side, side), dtype=dtype)
        yield (f"quantized_matmul {np.dtype(dtype).name} 1 row", *quantized_matmul_case(qa, qb, rng, torch), qb.nbytes + 4 * side, 0)
    yield from decode_cases(nbytes, rng, torch)


def decode_cases(nbytes: int, rng, torch):
    """A decode step's kernels at this size of weights: hal.ops.linear on one row of activations
    (float32, and weight-only int8 with column scales) against numpy's and torch's GEMV on the same
    weights, and cached_attention of 4 key/value heads x 3 query rows against numpy's batched products."""
    F = torch.nn.functional if torch else None
    side = int(math.sqrt(nbytes // 4))
    x = rng.standard_normal((1, side), dtype=np.float32)
    w = rng.standard_normal((side, side), dtype=np.float32)
    tx, tw = (torch.from_numpy(x), torch.from_numpy(np.ascontiguousarray(w.T))) if torch else (None, None)
    yield ("linear float32 1 row", lambda: ops.linear(x, w), lambda: np.dot(x[0], w),
           (lambda: F.linear(tx, tw)) if torch else None, w.nbytes, 0)
    side8 = int(math.sqrt(nbytes))
    x8 = rng.standard_normal((1, side8), dtype=np.float32)
    w8 = rng.integers(-127, 128, (side8, side8), dtype=np.int8)
    scale = rng.uniform(0.001, 0.01, side8).astype(np.float32)
    t8 = (torch.from_numpy(x8), torch.from_numpy(np.ascontiguousarray(w8.T)), torch.from_numpy(scale)) if torch else None
    yield ("linear int8 1 row", lambda: ops.linear(x8, w8, w_scale=scale), lambda: (x8[0] @ w8.astype(np.float32)) * scale,
           (lambda: F.linear(t8[0], t8[1].to(torch.float32)) * t8[2]) if torch else None, w8.nbytes, 0)
    heads, rows, d = 4, 3, 64
    length = max(1, nbytes // (2 * heads * d * 4))  # the cache's keys and values hold nbytes
    q = rng.standard_normal((1, heads, rows, d), dtype=np.float32)
    k = rng.standard_normal((1, heads, length, d), dtype=np.float32)
    v = rng.standard_normal((1, heads, length, d), dtype=np.float32)
    bias = np.zeros((1, 1, length), np.float32)

    def np_attention():
        scores = (q @ k.transpose(0, 1, 3, 2)) * np.float32(d**-0.5) + bias[:, None]
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        return (scores / scores.sum(-1, keepdims=True)) @ v

    torch_attention = None
    if torch:
        tq, tk, tv = (torch.from_numpy(a) for a in (q, k, v))

        def torch_attention():
            return F.scaled_dot_product_attention(tq, tk, tv)

    yield ("cached_attention", lambda: ops.cached_attention(q, k, v, bias, length=length), np_attention, torch_attention,
           k.nbytes + v.nbytes, 0)


DECODE_TARGET = 1.0
"""A decode step's kernels read every weight (or cached key and value) once: numpy's and torch's
GEMV do too, at the same memory speed, so the bar for them is parity, not the fused kernels' 3x."""


def quantized_matmul_case(qa, qb, rng, torch):
    """hal, numpy and torch computing QuantizedMatMul(qa, qb, per-tensor, per-channel scales)
    from the same integer operands: numpy and torch convert them and multiply in float32 (exact
    while K * |a| * |b| < 2^24) or float64, then scale."""
    k, n = qb.shape
    sa, sb = np.float32(0.01), rng.uniform(0.001, 0.01, n).astype(np.float32)
    peak = int(np.iinfo(qa.dtype).max) + 1
    exact32 = k * peak * peak < 2**24
    cast = np.float32 if exact32 else np.float64

    def np_qmm():  # no copy when the product is float32 already; the scaling in place
        y = (qa.astype(cast) @ qb.astype(cast)).astype(np.float32, copy=False)
        y *= sa * sb
        return y

    torch_qmm = None
    if torch:
        tcast = torch.float32 if exact32 else torch.float64
        tqa, tqb, tscale = torch.from_numpy(qa), torch.from_numpy(qb), torch.from_numpy(sa * sb)

        def torch_qmm():
            return (tqa.to(tcast) @ tqb.to(tcast)).to(torch.float32) * tscale

    return (lambda: ops.quantized_matmul(qa, qb, sa, sb)), np_qmm, torch_qmm


def fresh_copy_seconds(moved: int) -> float:
    """The floor for a kernel that returns a new array: numpy copying moved / 2 bytes into a freshly
    allocated array (one read stream, one write stream, and the page faults of the new memory)."""
    src = np.ones(max(moved // 2, 1), np.uint8)
    return median_seconds(lambda: src.copy(), repeats=_repeats(moved // 2))


def memcpy_rate(nbytes: int) -> float:
    src = np.ones(nbytes, np.uint8)
    dst = np.empty_like(src)
    return 2 * nbytes / median_seconds(lambda: np.copyto(dst, src), repeats=_repeats(nbytes))


def sgemm_rate() -> float:
    a = np.random.default_rng(0).standard_normal((512, 512), dtype=np.float32)
    return 2 * 512**3 / median_seconds(lambda: a @ a, repeats=10)


def timed(fn, work_bytes: int) -> float:
    """Median seconds of one call. Calls on under 1 MiB are timed in batches (about 1 MiB of work
    each), since a clock read costs a noticeable part of a microsecond call. Every contender
    starts after a 5 ms pause: thread pools that spin after a call (torch's libgomp workers for
    a few milliseconds, hal's for 50 us, BLAS's) hold the other core for a while, and the previous
    contender's must not slow the next one's first samples; each still warms its own up before it
    is timed. (A longer pause lets this VM's idle vCPU be descheduled, which slows 2-thread calls.)"""
    time.sleep(0.005)
    calls = max(1, (1 << 20) // max(work_bytes, 1))
    if calls == 1:
        return median_seconds(fn, repeats=_repeats(work_bytes))
    return median_per_call(fn, calls=calls, repeats=15)


def _repeats(nbytes: int) -> int:
    return int(min(50, max(3, (32 << 20) // max(nbytes, 1))))


@contextlib.contextmanager
def threads(count: int, torch):
    ops.set_num_threads(count)
    if torch:
        torch.set_num_threads(count)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(count):
        yield


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="4K,256K,4M,64M")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--ops", default="", help="comma-separated kernel names (default: all)")
    args = parser.parse_args(argv)
    try:
        import torch
    except ImportError:
        torch = None
    wanted = {o.strip() for o in args.ops.split(",") if o.strip()}
    print(f"bench_ops: numpy {np.__version__}, torch {torch.__version__ if torch else 'not installed'}, "
          f"{len(os.sched_getaffinity(0))} cores available")
    if importlib.util.find_spec("threadpoolctl") is None:
        print("warning: threadpoolctl is not installed, so numpy's BLAS uses every core in the 1-thread rows")
    rows, misses = [], []
    for count in (int(t) for t in args.threads.split(",")):
        with threads(count, torch):
            # Measured first, before any library's thread pool has run: the workers that some
            # pools leave spinning after a call would take the other core from the probe.
            madd = (int16_madd_rate(count) or float("nan")) if not wanted or "quantized_matmul" in wanted else float("nan")
            sgemm = sgemm_rate()
            for label in args.sizes.split(","):
                nbytes = SIZES[label]
                memcpy = memcpy_rate(nbytes)
                for name, hal_fn, np_fn, torch_fn, moved, flops in cases(nbytes, torch):
                    if wanted and name.split(" ")[0] not in wanted:
                        continue
                    work = nbytes if not flops else int(flops / 64)
                    t_hal = timed(hal_fn, work)
                    t_np = timed(np_fn, work)
                    t_torch = timed(torch_fn, work) if torch_fn else float("nan")
                    # How far ahead of numpy a kernel could be here: writing fresh pages at the
                    # memory's speed, or doing a GEMM's multiply-adds at the int16 peak.
                    if flops:
                        rate, limit = f"{flops / t_hal / 1e9:.1f} GFLOP/s", f"sgemm {sgemm / 1e9:.1f}, int16 madd {madd / 1e9:.1f}"
                        ceiling, floor = t_np * madd / flops, "int16 multiply-add"
                    else:
                        rate, limit = f"{moved / t_hal / 1e9:.1f} GB/s", f"memcpy {memcpy / 1e9:.1f}"
                        ceiling, floor = t_np / fresh_copy_seconds(moved), "copy-floor"
                    vs_np, vs_torch = t_np / t_hal, t_torch / t_hal
                    rows.append((name, label, str(count), f"{t_hal * 1e3:.3f}", f"{t_np * 1e3:.3f}", f"{t_torch * 1e3:.3f}",
                                 f"{vs_np:.2f}x", f"{vs_torch:.2f}x", f"{ceiling:.2f}x", rate, limit))
                    bar = DECODE_TARGET if name.startswith(("linear", "cached_attention")) else 3
                    if vs_np < bar or (torch_fn and vs_torch < 1.0):
                        misses.append(f"{name} {label} {count}t: {vs_np:.2f}x numpy, {vs_torch:.2f}x torch"
                                      f" ({floor} ceiling {ceiling:.2f}x)")
    print_table("median ms per call; speedup = other / hal", ("kernel", "size", "thr", "hal ms", "numpy ms", "torch ms",
                                                             "vs numpy", "vs torch", "ceiling", "hal rate", "machine"), rows)
    print("ceiling: numpy's time over that of copying the output's bytes into a new array (np.copy): the most a kernel "
          "writing fresh pages could gain over numpy (hal's output cache reuses pages already mapped, so it can pass it); "
          "for a GEMM, numpy's time over that of its multiply-adds at the int16 multiply-add peak (vpmaddwd + vpaddd, "
          "benchmarks/probes/): the most an exact int8 GEMM could gain over numpy on this CPU")
    print(f"\ntargets (>= 3x numpy, >= 1.0x torch; linear and cached_attention >= {DECODE_TARGET}x both): "
          f"{'met everywhere' if not misses else f'{len(misses)} missed'}")
    for miss in misses:
        print("  missed: " + miss)
    return 0


if __name__ == "__main__":
    sys.exit(main())
