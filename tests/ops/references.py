"""numpy (float64) references for the com.hal kernels, and inputs for them."""
from __future__ import annotations

import math

import ml_dtypes
import numpy as np

BF16 = np.dtype(ml_dtypes.bfloat16)
FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float16), BF16)

# One unit in the last place of each dtype at 1.0: the kernels compute in float32 and round once
# into the output dtype, so a 16-bit result is within half an ulp of the float32 result, and that
# within a few float32 ulps of the exact value. Tolerances are 2 ulps of the output dtype (rtol),
# plus an absolute floor where outputs pass near zero (a difference of two rounded values).
ULP = {np.dtype(np.float32): 2.0**-23, np.dtype(np.float16): 2.0**-10, BF16: 2.0**-7}


def tolerance(dtype: np.dtype, scale: float = 1.0) -> dict[str, float]:
    ulp = ULP[np.dtype(dtype)]
    if np.dtype(dtype) == np.float32:
        return {"rtol": 2e-5, "atol": 2e-6 * scale}
    return {"rtol": 2 * ulp, "atol": 2 * ulp * scale}


def f64(a: np.ndarray) -> np.ndarray:
    return np.asarray(a).astype(np.float64)


def rms_norm(x, w, epsilon=1e-6):
    x, w = f64(x), f64(w)
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + epsilon) * w


def layer_norm(x, g, b=None, epsilon=1e-5):
    x = f64(x)
    mean = x.mean(-1, keepdims=True)
    y = (x - mean) / np.sqrt(((x - mean) ** 2).mean(-1, keepdims=True) + epsilon) * f64(g)
    return y if b is None else y + f64(b)


def softmax(x):
    x = f64(x)
    with np.errstate(invalid="ignore", over="ignore"):
        e = np.exp(x - x.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)


_erf = np.vectorize(math.erf, otypes=[np.float64])


def gelu(x, approximate="none"):
    x = f64(x)
    with np.errstate(invalid="ignore", over="ignore"):
        if approximate == "tanh":
            return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
        return 0.5 * x * (1 + _erf(x / math.sqrt(2)))


def swiglu(x):
    x = f64(x)
    a, b = np.split(x, 2, axis=-1)
    with np.errstate(over="ignore", invalid="ignore"):
        return a / (1 + np.exp(-a)) * b


def rope(x, cos, sin, interleaved=False):
    x, c, s = f64(x), f64(cos), f64(sin)
    half = x.shape[-1] // 2
    if interleaved:
        a, b = x[..., 0::2], x[..., 1::2]
        out = np.empty_like(x)
        out[..., 0::2] = a * c - b * s
        out[..., 1::2] = b * c + a * s
        return out
    a, b = x[..., :half], x[..., half:]
    return np.concatenate([a * c - b * s, b * c + a * s], axis=-1)


def quantized_matmul(a, b, sa, sb):
    sums = a.astype(np.int64) @ b.astype(np.int64)  # exact
    scale = (np.asarray(sa, np.float32).reshape(-1, 1) * np.asarray(sb, np.float32).reshape(1, -1)).astype(np.float32)
    return sums.astype(np.float32) * scale  # a is 2-D here


def to_nc1hwc0(x, c0=16):
    n, c, h, w = x.shape
    c1 = -(-c // c0)
    padded = np.zeros((n, c1 * c0, h, w), x.dtype)
    padded[:, :c] = x
    return padded.reshape(n, c1, c0, h, w).transpose(0, 1, 3, 4, 2).copy()


def to_fractal_nz(x, m0=16, n0=16):
    *batch, m, n = x.shape
    m1, n1 = -(-m // m0), -(-n // n0)
    padded = np.zeros((*batch, m1 * m0, n1 * n0), x.dtype)
    padded[..., :m, :n] = x
    blocks = padded.reshape(*batch, m1, m0, n1, n0)
    nb = len(batch)
    return np.moveaxis(blocks, nb + 2, nb).copy()  # (..., n1, m1, m0, n0)
