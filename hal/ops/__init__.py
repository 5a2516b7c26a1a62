"""Extension ops: fused kernels registered per (op, backend, dtype), called directly or from ONNX.

    import hal, numpy as np
    y = hal.ops.rms_norm(x, weight, epsilon=1e-6)   # numpy in, numpy out; DeviceTensors stay on their device
    hal.ops.registry()                              # every (domain, op, backend, dtype) and where it comes from
    hal.ops.load_library("libmykernels.so")         # a user's C++ kernels (include hal.ops.include_dir())

    @hal.kernel("MyScale", domain="com.example", backends=["cpu", "ascend"], dtypes=["float32"])
    def my_scale(x, *, alpha: float):
        return x * np.float32(alpha)

The built-in kernels (domain "com.hal") are C++ in csrc/kernels/, vectorized and threaded
(set_num_threads, HAL_NUM_THREADS); each computes float16 and bfloat16 in float32 registers.
ONNX nodes of a registered domain are placed and run like any other node (hal.InferenceSession).
"""
from __future__ import annotations

from .. import _C
from ..errors import InvalidArgumentError
from .dispatch import call
from .registry import (
    HAL_DOMAIN,
    KernelInfo,
    empty_output_cache,
    PythonKernel,
    find,
    get_num_threads,
    include_dir,
    kernel,
    load_library,
    output_cache_stats,
    registry,
    set_num_threads,
)

__all__ = [
    "rms_norm", "layer_norm", "softmax", "gelu", "swiglu", "rope", "quantized_matmul", "linear", "cached_attention",
    "to_nc1hwc0", "from_nc1hwc0", "to_fractal_nz", "from_fractal_nz",
    "call", "registry", "find", "load_library", "kernel", "include_dir", "set_num_threads", "get_num_threads",
    "empty_output_cache", "output_cache_stats", "KernelInfo", "PythonKernel", "HAL_DOMAIN",
]


def _entry(op: str, *attrs: tuple[str, str], float32_inputs: tuple[int, ...] = ()):
    """The C entry point of a com.hal op: called with the inputs then the values of `attrs`
    ((name, "int" | "float" | "str")) in order; numpy inputs run the CPU kernel without a detour
    through Python, anything else goes to call() (csrc/kernel_bindings.cpp says why). Inputs at
    `float32_inputs` may be numbers, numpy scalars or lists: they become float32 arrays there."""
    return _C.entry_point(HAL_DOMAIN, op, list(attrs), find, call, list(float32_inputs))


_rms_norm = _entry("RMSNorm", ("epsilon", "float"))
_layer_norm = _entry("LayerNorm", ("epsilon", "float"))
_softmax = _entry("FusedSoftmax")
_gelu = _entry("FusedGelu", ("approximate", "str"))
_swiglu = _entry("SwiGLU")
_rope = _entry("RoPE", ("interleaved", "int"))
_quantized_matmul = _entry("QuantizedMatMul", float32_inputs=(2, 3))  # the scales
_linear = _entry("Linear")
_cached_attention = _entry("CachedAttention", ("length", "int"), ("scale", "float"))
_to_nc1hwc0 = _entry("ToNC1HWC0", ("c0", "int"))
_from_nc1hwc0 = _entry("FromNC1HWC0", ("channels", "int"))
_to_fractal_nz = _entry("ToFractalNZ", ("m0", "int"), ("n0", "int"))
_from_fractal_nz = _entry("FromFractalNZ", ("rows", "int"), ("cols", "int"))


def rms_norm(x, weight, *, epsilon: float = 1e-6):
    """x / sqrt(mean(x^2, last axis) + epsilon) * weight; weight has x's last dimension."""
    return _rms_norm(x, weight, epsilon)


def layer_norm(x, gamma, beta=None, *, epsilon: float = 1e-5):
    """(x - mean) / sqrt(var + epsilon) * gamma + beta over the last axis."""
    if beta is None:
        return _layer_norm(x, gamma, epsilon)
    return _layer_norm(x, gamma, beta, epsilon)


def softmax(x):
    """Softmax over the last axis, numerically stable (the row maximum is subtracted first)."""
    return _softmax(x)


def gelu(x, *, approximate: str = "none"):
    """GELU: "none" is the exact erf form, "tanh" the tanh approximation (as torch and ONNX name them)."""
    return _gelu(x, approximate)


def swiglu(x):
    """silu(a) * b, where a and b are the two halves of x's last axis (LLaMA's gated feed-forward)."""
    return _swiglu(x)


def rope(x, cos, sin, *, interleaved: bool = False):
    """Rotary position embedding of x [..., S, D] by angles given as cos, sin [S, D/2]; pairs
    (i, i + D/2) by default (LLaMA's rotate_half), (2i, 2i + 1) with interleaved=True."""
    return _rope(x, cos, sin, 1 if interleaved else 0)


def quantized_matmul(a, b, a_scale, b_scale):
    """float32(a @ b) * (a_scale * b_scale) for symmetric int8 or int16 a [..., K] and b [K, N]:
    exact integer products summed without overflow; a_scale per tensor or per row of a, b_scale
    per tensor or per column (output channel) of b."""
    return _quantized_matmul(a, b, a_scale, b_scale)


def linear(x, w, bias=None, *, w_scale=None):
    """x [..., K] @ w [K, N] (+ bias [N]), summed in float32, for the few rows of a decode step:
    w (float32, float16 or bfloat16, whatever x is; or int8 levels with w_scale, one float32 per
    output column: weight-only quantization) is read once, in place, at memory speed.
    Each four rows of x sweep w again: run prefill-sized products on a BLAS GEMM (x @ w)."""
    operands = (x, w) if bias is None else (x, w, bias)
    if w_scale is None:
        return _linear(*operands)
    if str(getattr(w, "dtype", "")) != "int8":  # the kernel would read the scales as a bias
        raise InvalidArgumentError(f"linear: w_scale is for int8 weights; w is {getattr(w, 'dtype', type(w).__name__)}")
    return _linear(*operands, w_scale)


def cached_attention(q, k_cache, v_cache, bias, *, length: int, scale: float | None = None):
    """softmax(q . k^T * scale + bias) . v over the first `length` positions of a static KV cache,
    grouped-query: q [B, Hkv, R, D] (R = query heads per key/value head x positions), k_cache and
    v_cache [B, Hkv, Tmax, D] (float32, float16 or bfloat16, read in place), bias [B, R or 1,
    length] (0, or very negative for a masked key). scale defaults to 1 / sqrt(D)."""
    if scale is None:
        shape = getattr(k_cache, "shape", None)
        if not shape:
            raise InvalidArgumentError(
                f"cached_attention: k_cache must be an array [B, Hkv, Tmax, D] (its D sets the default scale), got "
                f"{type(k_cache).__name__}{'' if shape is None else ' of shape ' + str(tuple(shape))}; or pass scale=")
        d = shape[-1]
        scale = float(d) ** -0.5 if d > 0 else 1.0  # a head size of 0 has nothing to scale: the kernel judges the shapes
    return _cached_attention(q, k_cache, v_cache, bias, length, scale)


def to_nc1hwc0(x, *, c0: int = 16):
    """NCHW -> Ascend's NC1HWC0 (N, ceil(C / c0), H, W, c0), the channel padding zero."""
    return _to_nc1hwc0(x, c0)


def from_nc1hwc0(x, *, channels: int):
    """NC1HWC0 -> NCHW with the original channel count."""
    return _from_nc1hwc0(x, channels)


def to_fractal_nz(x, *, m0: int = 16, n0: int = 16):
    """(..., M, N) -> Ascend's FRACTAL_NZ (..., ceil(N / n0), ceil(M / m0), m0, n0), padding zero."""
    return _to_fractal_nz(x, m0, n0)


def from_fractal_nz(x, *, rows: int, cols: int):
    """FRACTAL_NZ -> (..., rows, cols), the original matrix size."""
    return _from_fractal_nz(x, rows, cols)
