"""How one device runs the decoder's kernels: the kernel route of hal.llm.

A decoder step is a fixed sequence of kernels (DECODER_KERNELS_PER_LAYER per layer, then
DECODER_KERNELS_PER_STEP): hal.ops' rms_norm, rope, swiglu and softmax, quantized_matmul for
quantized fully connected layers, BLAS for float ones. Their operands are the device's own memory:

- on the CPU (host-addressable), numpy views of cpu:0 tensors: the kernels run in place;
- on a simulated chip, views of its arena taken through the driver's emulation_view: the chip's
  kernels run on this host, in device memory, as the chip's cores read HBM. Each kernel applies the
  chip's numerics (hal.sim.numerics' rules for the same ONNX op: Ascend's Cube ops under
  precision_mode, Kunlun's int16 fully connected layers) and advances the device's simulated clock
  by its roofline cost (hal.sim.cost), submitted to the device's stream, so events, `hal profile`
  and memory accounting see the chip. Kernels compute when they are issued (the stream holds only
  their time), which is exact because a decoder step issues all of its work, in order, on one
  stream, and reads a result only through a copy that waits for that stream.

On the CPU, which applies no numerics between kernels and whose clock is the wall clock, a decode
step's layers run as one C++ call (fused_decoder: hal._C.DecoderLayers, csrc/llm/decoder_layers.h)
through the same kernels in the same order; prefill runs kernel by kernel everywhere.

Weights are uploaded once, in the layout and dtype the chip keeps them: [in, out] so that a row of
activations sweeps them in order; float16 on Ascend when precision_mode lowers the Cube ops (CANN
converts weights so; its FlashAttention kernels take float16 / bfloat16 only, so the KV cache is
float16 there too); int16 levels with one scale on Kunlun under fc_precision="int16" (Paddle's XPU
quantization pass stores them so); int8 levels with a scale per output channel under
quantization="int8" (weight-only) or "w8a8" (the activations quantized too).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import ops as hal_ops
from .. import profiler
from ..device import Device
from ..dtypes import DType
from ..errors import InvalidArgumentError, UnsupportedOpError
from ..capability import CompileOptions, NodeInfo, TensorInfo
from ..tensor import DeviceTensor, as_tensor, empty

__all__ = [
    "DeviceKernels", "LinearWeights", "QUANTIZATIONS", "DECODER_KERNELS_PER_LAYER", "DECODER_KERNELS_PER_STEP",
    "quantize_per_tensor_int16", "quantize_int8",
]

DECODER_KERNELS_PER_LAYER = 12
"""rms_norm, qkv linear, rope (q and k in one call), KV-cache write, attention, o linear, residual
add, rms_norm, gate_up linear, swiglu, down linear, residual add."""
DECODER_KERNELS_PER_STEP = 4
"""embedding gather, final rms_norm, lm_head linear, sampling."""

QUANTIZATIONS = ("none", "int8", "w8a8")
"""int8: weight-only, int8 levels per output channel read by hal.ops.linear, activations float (as
CANN's WeightQuantBatchMatmul); w8a8: int8 weights and int8 activations quantized per row at run
time, multiplied by hal.ops.quantized_matmul (the chips' int8 matrix path)."""
DECODE_ROWS = 8
"""Up to this many rows of activations (a decode step's batch), fully connected layers run on
hal.ops.linear / quantized_matmul, which read the weights in place; more rows (a prefill) are a GEMM."""
_F32, _F16 = np.dtype(np.float32), np.dtype(np.float16)
_INT16_MAX = 32767.0


def quantize_per_tensor_int16(x: np.ndarray) -> tuple[np.ndarray, np.float32]:
    """Paddle's XPU int16 quantization (the numpy twin of hal.sim.numerics' ONNX rewrite): one
    scale max|x| / 32767 for the tensor, levels RoundHalfToEven(x * 32767 / max) clipped to
    +-32767, in float32 arithmetic; a zero tensor quantizes to zeros with scale 0."""
    x = np.asarray(x, np.float32)
    peak = np.float32(np.abs(x).max()) if x.size else np.float32(0)
    factor = np.float32(_INT16_MAX) / (peak if peak > 0 else np.float32(1))
    levels = np.clip(np.rint(x * factor), -_INT16_MAX, _INT16_MAX).astype(np.int16)
    return levels, np.float32(peak / np.float32(_INT16_MAX))


def quantize_int8(x: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 levels of x with one float32 scale per slice along `axis`: max|x| / 127 over
    that axis (a zero slice gets scale 0). axis=0 of a [in, out] weight: a scale per output channel;
    axis=1 of activations [rows, K]: a scale per row (quantized_matmul multiplies int8 by int8, so
    under w8a8 the activations are quantized at run time)."""
    peak = np.abs(x).max(axis=axis, keepdims=True).astype(np.float32)
    scale = (peak / np.float32(127)).astype(np.float32)
    safe = np.where(scale > 0, scale, np.float32(1))
    return np.clip(np.rint(x / safe), -127, 127).astype(np.int8), scale.reshape(-1)


@dataclass
class LinearWeights:
    """One fully connected layer as a device keeps it."""

    kind: str
    """"float32", "float16" / "bfloat16" (operands rounded so, float32 sums), "int16" (Kunlun
    FC_INT16), "int8" (weight-only, per output channel) or "w8a8" (int8 weights and activations)."""
    weight: np.ndarray
    """[in, out] operand the kernels read: a view of the device's memory."""
    scale: np.ndarray | np.float32 | None
    bias: np.ndarray | None
    tensors: tuple[DeviceTensor, ...]
    """What the device holds (keeps the memory alive and accounted)."""
    round_input: np.dtype | None = None
    """The chip rounds the activations so before the product (Ascend's Cube: float16)."""
    round_output: np.dtype | None = None


def _noop() -> None:
    pass


class DeviceKernels:
    """The decoder's kernels on one device, with that device's memory, numerics and clock."""

    def __init__(self, device: Device, *, precision_mode: str | None = None, fc_precision: str | None = None,
                 quantization: str = "none"):
        if quantization not in QUANTIZATIONS:
            raise InvalidArgumentError(f"quantization must be one of {', '.join(QUANTIZATIONS)}, got {quantization!r}")
        self.device = device
        self.quantization = quantization
        driver = device.driver
        self.chip = getattr(driver, "chip", None) if device.spec.simulated else None
        if device.spec.host_addressable:
            self._view: Callable[[DeviceTensor], np.ndarray] = lambda t: t.host_view()
        elif self.chip is not None and hasattr(driver, "emulation_view"):
            self._view = driver.emulation_view
        else:
            raise UnsupportedOpError(
                f"{device.name}: hal.llm's kernel route runs on host-addressable devices and simulated chips; "
                f"load the model with route='onnx' (or 'auto') to run its ONNX export on {device.spec.kind} devices"
            )
        self.stream = device.default_stream
        self.options = CompileOptions(precision_mode=precision_mode, fc_precision=fc_precision)
        self._cost_cache: dict[tuple, float] = {}
        self._pending_seconds = 0.0
        self._pending_kernels = 0
        self.linear_kind, self.linear_in_round, self.linear_out_round, self.attention_round, self.vector_round = self._numerics()
        self.kv_dtype = DType.FLOAT16 if self.attention_round == _F16 else DType.FLOAT32

    # -- numerics ----------------------------------------------------------------------------------
    def _numerics(self) -> tuple[str, np.dtype | None, np.dtype | None, np.dtype | None, np.dtype | None]:
        """(linear kind, its operand rounding, its result rounding, attention operand rounding,
        vector rounding) from the chip's rule for an ONNX MatMul and for a vector kernel, as
        hal.sim.numerics decides them, and the quantization asked for."""
        if self.chip is None:
            return ("float32" if self.quantization == "none" else self.quantization), None, None, None, None
        from ..sim.numerics import kernel_precision

        def plan(op: str, domain: str = ""):
            f32 = TensorInfo("x", DType.FLOAT32, (1, 1))
            return kernel_precision(NodeInfo(op, op, domain, 17, (f32, f32), (f32,)), self.chip, self.options).plan

        matmul, vector = plan("MatMul"), plan("RMSNorm", "com.hal")
        as_np = lambda d: None if d is None else np.dtype(d.numpy)  # noqa: E731
        in_round, out_round = as_np(matmul.in_round), as_np(matmul.out_round)
        attention_round = in_round if matmul.fc is None else None
        if self.quantization == "w8a8":  # the chip's int8 path: integer operands, no float rounding
            return "w8a8", None, None, attention_round, as_np(vector.in_round)
        if self.quantization == "int8":  # weight-only: the activations as the chip's matmuls take them
            return "int8", in_round, out_round, attention_round, as_np(vector.in_round)
        if matmul.fc == "int16":
            return "int16", None, None, attention_round, as_np(vector.in_round)
        if in_round is not None:
            return ("float16" if in_round == _F16 else "bfloat16"), in_round, out_round, attention_round, as_np(vector.in_round)
        return "float32", None, None, attention_round, as_np(vector.in_round)

    # -- memory ------------------------------------------------------------------------------------
    def upload(self, array: np.ndarray) -> tuple[DeviceTensor, np.ndarray]:
        """array in this device's memory (one host -> device copy; on the CPU, no copy), and the
        view kernels read it through."""
        array = np.ascontiguousarray(array)
        if self.device.spec.host_addressable and self.device.name == "cpu:0":
            tensor = as_tensor(array)
            return tensor, array
        tensor = empty(array.shape, array.dtype, device=self.device)
        tensor.copy_(array)
        return tensor, self._view(tensor)

    def allocate(self, shape: tuple[int, ...], dtype: DType | str) -> tuple[DeviceTensor, np.ndarray]:
        """A new device tensor and its view. No stream work can touch it: a block still used by a
        queued copy is not handed out again until that copy ran (the copy holds its buffer)."""
        tensor = empty(shape, dtype, device=self.device)
        return tensor, self._view(tensor)

    def view(self, tensor: DeviceTensor) -> np.ndarray:
        return self._view(tensor)

    def upload_ids(self, ids: np.ndarray) -> np.ndarray:
        """A step's token ids: one small host -> device copy (none on the CPU, whose memory the
        host reads: a copy through its stream would only add a thread hand-off per token)."""
        if self.device.spec.host_addressable:
            return ids
        tensor, view = self.allocate(ids.shape, "int64")
        tensor.copy_(ids)
        return view

    def download_tokens(self, tokens: np.ndarray) -> np.ndarray:
        """The sampled ids, written on the device, then one small device -> host copy (none on the CPU)."""
        if self.device.spec.host_addressable:
            return tokens
        tensor, view = self.allocate(tokens.shape, "int64")
        view[...] = tokens
        return tensor.numpy()

    def linear_weights(self, w_out_in: np.ndarray, bias: np.ndarray | None) -> LinearWeights:
        """A transformers Linear weight [out, in] (and bias) as this device keeps and computes it."""
        w = np.ascontiguousarray(w_out_in.T, dtype=np.float32)
        bias_tensors: tuple[DeviceTensor, ...] = ()
        bias_view = None
        if bias is not None:
            bias_tensor, bias_view = self.upload(np.asarray(bias, np.float32))
            bias_tensors = (bias_tensor,)
        kind = self.linear_kind
        if kind in ("int8", "w8a8"):
            levels, scale = quantize_int8(w, axis=0)
            lt, lv = self.upload(levels)
            st, sv = self.upload(scale)
            return LinearWeights(kind, lv, sv, bias_view, (lt, st, *bias_tensors), self.linear_in_round, self.linear_out_round)
        if kind == "int16":
            levels, scale = quantize_per_tensor_int16(w)
            lt, lv = self.upload(levels)
            return LinearWeights(kind, lv, scale, bias_view, (lt, *bias_tensors))
        if kind in ("float16", "bfloat16"):
            # the device keeps float16 weights; hal.ops.linear reads them as they are, summing in
            # float32 as the Cube does
            lt, lv = self.upload(w.astype(DType(kind).numpy))
            return LinearWeights(kind, lv, None, bias_view, (lt, *bias_tensors), self.linear_in_round, self.linear_out_round)
        wt, wv = self.upload(w)
        return LinearWeights("float32", wv, None, bias_view, (wt, *bias_tensors))

    # -- the clock ---------------------------------------------------------------------------------
    def account(self, name: str, op: str, domain: str, inputs: tuple, outputs: tuple, compute: str | None = None) -> None:
        """Advances a simulated device's clock by the roofline time of one kernel described by
        (dtype, shape) pairs (callers skip it on the CPU, whose clock is the wall clock).

        Under a profiler each kernel is its own stream op (a slice in the trace); otherwise the
        kernels' times add up until flush() submits them as one op: waking the stream's thread per
        kernel cost more wall time than a small model's kernels themselves."""
        key = (op, inputs, outputs, compute)
        seconds = self._cost_cache.get(key)
        if seconds is None:
            from ..sim.cost import node_cost

            node = NodeInfo(name, op, domain, 17,
                            tuple(TensorInfo(f"i{i}", DType(d), s) for i, (d, s) in enumerate(inputs)),
                            tuple(TensorInfo(f"o{i}", DType(d), s) for i, (d, s) in enumerate(outputs)))
            seconds = self._cost_cache[key] = node_cost(node, self.chip, compute).seconds
        if profiler.active() is None:
            self._pending_seconds += seconds
            self._pending_kernels += 1
            return
        self.flush()
        self.stream.driver.submit(name, _noop, seconds)

    def flush(self) -> None:
        """Submits the time of the kernels issued since the last flush (see account)."""
        if self._pending_kernels:
            self.stream.driver.submit(f"{self._pending_kernels} decoder kernels", _noop, self._pending_seconds)
            self._pending_seconds, self._pending_kernels = 0.0, 0

    # -- kernels -----------------------------------------------------------------------------------
    def _round(self, x: np.ndarray, dtype: np.dtype | None) -> np.ndarray:
        return x if dtype is None else x.astype(dtype).astype(np.float32)

    def linear(self, x: np.ndarray, lw: LinearWeights, name: str) -> np.ndarray:
        """x [rows, in] float32 @ weight -> [rows, out] float32, with the chip's FC numerics."""
        rows = x.shape[0]
        if lw.kind == "w8a8":
            levels, scale = quantize_int8(x, axis=1)
            y = hal_ops.quantized_matmul(levels, lw.weight, scale, lw.scale)
            op, wdtype, compute = "QuantizedMatMul", "int8", "int8"
        elif lw.kind == "int16":
            levels, scale = quantize_per_tensor_int16(x)
            y = hal_ops.quantized_matmul(levels, lw.weight, scale, lw.scale)
            op, wdtype, compute = "QuantizedMatMul", "int16", "int16"
        else:
            x = self._round(x, lw.round_input)
            if rows <= DECODE_ROWS:  # a decode step: the weights read once, in place, by hal's kernel
                y = hal_ops.linear(x, lw.weight) if lw.scale is None else hal_ops.linear(x, lw.weight, w_scale=lw.scale)
            elif lw.kind == "int8":  # prefill: a GEMM, BLAS's job, on the weights' float values
                y = x @ (lw.weight.astype(np.float32) * lw.scale)
            else:
                y = x @ (lw.weight if lw.weight.dtype == _F32 else lw.weight.astype(np.float32))
            y = self._round(y, lw.round_output)
            op, wdtype = "MatMul", lw.kind  # the weights' dtype (reading dtype.name costs numpy ~10 us)
            compute = {"int8": str(lw.round_input or "float32")}.get(lw.kind, lw.kind)
        if lw.bias is not None:
            y += lw.bias
        if self.chip is not None:  # the simulated clock; the CPU's is the wall clock
            self.account(name, op, "", (("float32", x.shape), (wdtype, lw.weight.shape)), (("float32", y.shape),), compute)
        return y

    def fused_decoder(self, layers: list, config) -> Any:
        """The CPU's fused decode step over these layers' weights (hal._C.DecoderLayers,
        csrc/llm/decoder_layers.h: the same kernels in the same order, run from C++), or None where
        the kernels must run one by one from Python: on a simulated chip (its numerics round and its
        clock advances between kernels) and for w8a8 fully connected layers (their activations are
        quantized here, for quantized_matmul)."""
        if self.chip is not None or self.linear_kind not in ("float32", "int8"):
            return None
        from .. import _C

        def fc(lw: LinearWeights) -> tuple:
            return lw.weight, lw.scale, lw.bias

        return _C.DecoderLayers(
            [(w.input_norm, fc(w.qkv), fc(w.o), w.post_norm, fc(w.gate_up), fc(w.down)) for w in layers],
            hidden_size=config.hidden_size, num_heads=config.num_attention_heads, num_kv_heads=config.num_key_value_heads,
            head_dim=config.head_dim, intermediate_size=config.intermediate_size, eps=config.rms_norm_eps,
        )

    def rms_norm(self, x: np.ndarray, weight: np.ndarray, eps: float, name: str) -> np.ndarray:
        x = self._round(x, self.vector_round)
        y = self._round(hal_ops.rms_norm(x, weight, epsilon=eps), self.vector_round)
        if self.chip is not None:
            self.account(name, "RMSNorm", "com.hal", (("float32", x.shape), ("float32", weight.shape)), (("float32", y.shape),))
        return y

    def rope(self, x: np.ndarray, cos: np.ndarray, sin: np.ndarray, name: str) -> np.ndarray:
        y = self._round(hal_ops.rope(x, cos, sin), self.vector_round)
        if self.chip is not None:
            self.account(name, "RoPE", "com.hal", (("float32", x.shape), ("float32", cos.shape), ("float32", sin.shape)),
                         (("float32", y.shape),))
        return y

    def swiglu(self, x: np.ndarray, name: str) -> np.ndarray:
        y = self._round(hal_ops.swiglu(x), self.vector_round)
        if self.chip is not None:
            self.account(name, "SwiGLU", "com.hal", (("float32", x.shape),), (("float32", y.shape),))
        return y

    def add_(self, x: np.ndarray, y: np.ndarray, name: str) -> np.ndarray:
        np.add(x, y, out=x)
        if self.vector_round is not None:
            x[...] = self._round(x, self.vector_round)
        if self.chip is not None:
            self.account(name, "Add", "", (("float32", x.shape), ("float32", y.shape)), (("float32", x.shape),))
        return x

    def embed(self, table: np.ndarray, ids: np.ndarray, name: str) -> np.ndarray:
        rows = np.take(table, ids.reshape(-1), axis=0)
        if self.chip is not None:
            self.account(name, "Gather", "", (("int64", ids.shape), ("float32", rows.shape)), (("float32", rows.shape),))
        return rows

    def write_cache(self, cache: np.ndarray, keys: np.ndarray, values: np.ndarray, start: int, name: str) -> None:
        """One layer's cache [2, B, Hkv, Tmax, D] (device memory) <- keys and values [B, Hkv, S, D]
        at positions start.. (one kernel writes both, as CANN's ScatterUpdate of a KV pair)."""
        length = keys.shape[2]
        cache[0][:, :, start : start + length, :] = keys
        cache[1][:, :, start : start + length, :] = values
        shape = keys.shape  # the time counts the keys' bytes only: the values' equal share is missing (noted on #15)
        if self.chip is not None:
            self.account(name, "ScatterND", "", ((str(self.kv_dtype), shape),), ((str(self.kv_dtype), shape),))

    def self_attention(self, qkv: np.ndarray, cache: np.ndarray, cos: np.ndarray, sin: np.ndarray, bias: np.ndarray,
                       heads: int, kv_heads: int, batch: int, length: int, past: int, tag: str) -> np.ndarray:
        """A layer's attention between its qkv projection and o_proj, for every head in `qkv`
        [B*S, (heads + 2*kv_heads) * D]: rope on q and k, the step's keys and values written to
        `cache` [2, B, kv_heads, Tmax, D] at `past`, grouped-query attention over the cache.
        Returns [B*S, heads * D]. One card's whole layer and a tensor-parallel rank's share of the
        heads (hal.distributed.TensorParallelBlock) both run it."""
        d = cache.shape[-1]
        g, rows = heads // kv_heads, batch * length
        rotated = self.rope(np.ascontiguousarray(qkv[:, : (heads + kv_heads) * d]).reshape(rows * (heads + kv_heads), d), cos, sin, tag + "rope")
        rotated = rotated.reshape(batch, length, heads + kv_heads, d)
        q = rotated[:, :, :heads].reshape(batch, length, kv_heads, g, d).transpose(0, 2, 3, 1, 4).reshape(batch, kv_heads, g * length, d)
        keys = rotated[:, :, heads:].transpose(0, 2, 1, 3)
        values = qkv[:, (heads + kv_heads) * d :].reshape(batch, length, kv_heads, d).transpose(0, 2, 1, 3)
        self.write_cache(cache, keys, values, past, tag + "kv_write")
        attended = self.attention(q, cache[0], cache[1], past + length, bias, tag + "attention")
        return np.ascontiguousarray(attended.reshape(batch, kv_heads, g, length, d).transpose(0, 3, 1, 2, 4).reshape(rows, heads * d))

    def attention(self, q: np.ndarray, k_cache: np.ndarray, v_cache: np.ndarray, length: int, bias: np.ndarray,
                  name: str) -> np.ndarray:
        """softmax(q k^T / sqrt(D) + bias) v over the first `length` cache positions, grouped-query.
        q [B, Hkv, G*S, D]; k_cache, v_cache [B, Hkv, Tmax, D] (device memory, read in place);
        bias [B, G*S or 1, length] (0, or _MASKED). Returns [B, Hkv, G*S, D] float32.

        A decode step's few rows run hal.ops.cached_attention over the cache (as Ascend's
        IncreFlashAttention does); a prefill's many rows, two BLAS batched products (its
        PromptFlashAttention counterpart). Either way the chip's Cube rounding applies to q, K, V
        and the output; the softmax and its probabilities stay float32, as FlashAttention-style
        kernels keep them on the vector unit."""
        rounding = self.attention_round
        b, hkv, rows, d = q.shape
        q = self._round(q, rounding)
        if rows <= DECODE_ROWS:
            out = hal_ops.cached_attention(np.ascontiguousarray(q), k_cache, v_cache, bias, length=length)
        else:
            k = k_cache[:, :, :length].astype(np.float32, copy=False)
            v = v_cache[:, :, :length].astype(np.float32, copy=False)
            scores = np.matmul(q, k.transpose(0, 1, 3, 2))
            scores *= np.float32(1.0 / math.sqrt(d))
            scores += bias[:, None]
            out = np.matmul(hal_ops.softmax(np.ascontiguousarray(scores, dtype=np.float32)), v)
        out = self._round(out, rounding)
        if self.chip is not None:
            kdt, cached = str(self.kv_dtype), (b, hkv, length, d)
            self.account(name, "Attention", "", (("float32", q.shape), (kdt, cached), (kdt, cached)), (("float32", out.shape),),
                         "float16" if rounding is not None else None)
        return out

    def sample(self, logits: np.ndarray, pick: Callable[[np.ndarray], np.ndarray], name: str) -> np.ndarray:
        tokens = pick(logits)
        if self.chip is not None:
            self.account(name, "TopK", "", (("float32", logits.shape),), (("int64", tokens.shape),))
        return tokens

    def describe(self) -> dict[str, Any]:
        return {"device": self.device.name, "linear": self.linear_kind, "kv_cache": str(self.kv_dtype),
                "attention_operands": str(self.attention_round) if self.attention_round is not None else "float32"}
