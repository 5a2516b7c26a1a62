"""Runs an ONNX partition with torch operations on any torch device (CPU, CUDA, Ascend NPU).

Why a converter of our own rather than onnx2torch: onnx2torch (the PyPI package) builds an
nn.Module per node, has had no release since August 2024 (forks exist only to run on newer
Pythons), and cannot answer hal's capability question per (op, opset, dtype). hal needs exactly
that answer, so that placement falls back node by node where this executor has no kernel; here
capability is the table below, and nothing else runs.

Compilation turns the graph into a flat list of closures over slot indices, with every input that
is known at compile time (initializers, Constant nodes, anything computed only from them) folded
and turned into Python values where an op reads it as a shape; a run is one loop under
torch.inference_mode().
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..backend import Executable
from ..dtypes import DType, dtype as dtype_of
from ..errors import UnsupportedOpError
from ..graph.capability import NodeInfo, Support
from ..tensor import DeviceTensor
from ._require import require_torch

if TYPE_CHECKING:
    from ..device import Device, Stream

__all__ = ["torch_supports", "TorchProgram", "TorchExecutable", "torch_view", "SUPPORTED_OPS"]

_FLOAT = frozenset({DType.FLOAT16, DType.BFLOAT16, DType.FLOAT32, DType.FLOAT64})
_INT = frozenset({DType.INT8, DType.UINT8, DType.INT16, DType.INT32, DType.INT64})
_NUMERIC = _FLOAT | _INT
_DATA = _NUMERIC | {DType.BOOL}
_LOGICAL = frozenset({DType.BOOL})
_SHAPE_INDEX = frozenset({DType.INT32, DType.INT64})  # index / shape operands


@dataclass(frozen=True)
class _Op:
    build: Callable[..., Callable]
    dtypes: frozenset[DType]
    """The dtypes of the node's data tensors (index and shape operands are checked apart)."""
    min_opset: int = 1
    check: Callable[[NodeInfo], str | None] | None = None
    """Returns why an attribute combination is not implemented, or None."""
    data_inputs: tuple[int, ...] | None = None
    """Which inputs carry data of `dtypes` (None: all); the others are indices or shapes."""


_TABLE: dict[str, _Op] = {}


def _op(names: str, dtypes: frozenset[DType], **kwargs: Any):
    def register(build: Callable) -> Callable:
        for name in names.split():
            _TABLE[name] = _Op(build, dtypes, **kwargs)
        return build
    return register


def torch_supports(node: NodeInfo) -> Support:
    """Whether this executor runs the node: its op is in the table, at this opset, with these
    dtypes and attributes."""
    if node.domain not in ("", "ai.onnx"):
        return Support.no(f"the torch executor runs only default-domain ONNX ops, not {node.qualified_op}")
    op = _TABLE.get(node.op_type)
    if op is None:
        return Support.no(f"the torch executor has no {node.op_type}")
    if node.opset < op.min_opset:
        return Support.no(f"the torch executor implements {node.op_type} from opset {op.min_opset}; the model uses {node.opset}")
    unknown = [t.name for t in (*node.inputs, *node.outputs) if t is not None and t.name and t.dtype is None]
    if unknown:
        return Support.no(f"the torch executor runs only dtypes hal knows; {', '.join(unknown)} has another (float8, int4, string...)")
    tensors = [t for i, t in enumerate(node.inputs) if op.data_inputs is None or i in op.data_inputs]
    if node.op_type not in _INDEX_OUTPUT_OPS:
        tensors += list(node.outputs)
    for t in tensors:
        if t is not None and t.dtype is not None and t.dtype not in op.dtypes:
            allowed = ", ".join(sorted(str(d) for d in op.dtypes))
            return Support.no(f"the torch executor's {node.op_type} takes {allowed}, not {t.dtype}")
    if op.check is not None:
        reason = op.check(node)
        if reason:
            return Support.no(f"the torch executor's {node.op_type}: {reason}")
    return Support.yes()


_INDEX_OUTPUT_OPS = {"Shape", "Size", "ArgMax", "ArgMin", "Cast", "CastLike", "Equal", "Less", "Greater",
                     "LessOrEqual", "GreaterOrEqual", "Not", "And", "Or", "Xor", "ConstantOfShape"}


# -- the program ------------------------------------------------------------------------------

class TorchProgram:
    """A standalone ONNX model compiled to torch calls on one torch device."""

    def __init__(self, model: Any, device: Any):
        from onnx import numpy_helper

        self.torch = torch = require_torch("the torch executor")
        self.device = torch.device(device)
        graph = model.graph
        opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)
        self.input_names = [i.name for i in graph.input]
        self.output_names = [o.name for o in graph.output]
        slots: dict[str, int] = {"": -1}

        def slot(name: str) -> int:
            if name not in slots:
                slots[name] = len(slots) - 1
            return slots[name]

        constants: dict[int, Any] = {}
        for init in graph.initializer:
            constants[slot(init.name)] = _to_device(torch, numpy_helper.to_array(init), self.device)
        self._input_slots = [slot(n) for n in self.input_names]
        steps: list[tuple[Callable, tuple[int, ...], tuple[int, ...]]] = []
        with torch.inference_mode():
            for node in graph.node:
                op = _TABLE.get(node.op_type)
                if op is None:
                    raise UnsupportedOpError(f"the torch executor has no {node.op_type} (node '{node.name}')")
                attrs = _attributes(node)
                ins = tuple(slot(n) for n in node.input)
                outs = tuple(slot(n) for n in node.output if n)
                known = [constants.get(i) if i >= 0 else None for i in ins]
                ctx = _Context(torch, self.device, opset, known)
                fn = op.build(ctx, attrs, len(outs))
                if all(i < 0 or i in constants for i in ins) and node.op_type not in ("RandomNormal", "RandomUniform"):
                    value = fn(*[constants.get(i) for i in ins])  # folded at compile time
                    for o, v in zip(outs, value if len(outs) > 1 else (value,)):
                        constants[o] = v
                    continue
                steps.append((fn, ins, outs))
        self._output_slots = [slot(n) for n in self.output_names]
        self._env_size = len(slots)
        self._constants = constants
        # drop each intermediate after its last reader, so device memory is reused during a run
        last_use: dict[int, int] = {}
        for k, (_, ins, _) in enumerate(steps):
            for i in ins:
                last_use[i] = k
        keep = set(self._output_slots) | set(constants)
        release: list[tuple[int, ...]] = [() for _ in steps]
        for s, k in last_use.items():
            if s >= 0 and s not in keep:
                release[k] = release[k] + (s,)
        self._steps = [(fn, ins, outs, rel) for (fn, ins, outs), rel in zip(steps, release)]
        template: list[Any] = [None] * (self._env_size + 1)  # slot -1 ("" optional input) is the last
        for s, v in constants.items():
            template[s] = v
        self._template = template

    def run(self, inputs: Sequence[Any]) -> list[Any]:
        """Inputs in input_names order (torch tensors on the device); outputs in output_names order."""
        env = self._template.copy()
        for s, t in zip(self._input_slots, inputs):
            env[s] = t
        with self.torch.inference_mode():
            for fn, ins, outs, release in self._steps:
                value = fn(*[env[i] for i in ins])
                if len(outs) == 1:
                    env[outs[0]] = value
                else:
                    for o, v in zip(outs, value):
                        env[o] = v
                for s in release:
                    env[s] = None
        return [env[s] for s in self._output_slots]


def _to_device(torch: Any, array: np.ndarray, device: Any) -> Any:
    if array.dtype.kind in "biufc" and array.dtype.itemsize and array.dtype.name != "bfloat16":
        return torch.from_numpy(np.array(array, copy=True)).to(device)
    # bfloat16 (ml_dtypes) has no torch.from_numpy path: reinterpret the bits
    bits = torch.from_numpy(np.ascontiguousarray(array).view(np.uint16).copy())
    return bits.view(torch.bfloat16).to(device)


class _Context:
    """What a builder knows at compile time: torch, the device, the opset, constant inputs."""

    def __init__(self, torch: Any, device: Any, opset: int, known: list[Any]):
        self.torch = torch
        self.F = torch.nn.functional
        self.device = device
        self.opset = opset
        self.known = known

    def ints(self, index: int) -> list[int] | None:
        """Input `index` as a list of ints when it is a compile-time constant."""
        if index < len(self.known) and self.known[index] is not None:
            return [int(v) for v in self.known[index].reshape(-1).tolist()]
        return None


def _attributes(node: Any) -> dict[str, Any]:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _attr(node: NodeInfo, name: str, default: Any = None) -> Any:
    value = node.attributes.get(name, default)
    return value.decode() if isinstance(value, bytes) else value


def _as_ints(t: Any) -> list[int]:
    return [int(v) for v in t.reshape(-1).tolist()]


def _axes(ctx: _Context, attrs: dict, input_index: int) -> Callable[[Any], list[int] | None]:
    """Axes from the attribute (old opsets) or an input (new ones), resolved once when constant."""
    if "axes" in attrs:
        fixed = list(attrs["axes"])
        return lambda _: fixed
    known = ctx.ints(input_index)
    if known is not None or input_index >= len(ctx.known):
        return lambda _: known
    return lambda t: None if t is None else _as_ints(t)


# -- elementwise --------------------------------------------------------------------------------

def _binary(fn_name: str):
    def build(ctx: _Context, attrs: dict, n: int):
        return getattr(ctx.torch, fn_name)
    return build


_op("Add", _NUMERIC)(_binary("add"))
_op("Sub", _NUMERIC)(_binary("sub"))
_op("Mul", _NUMERIC)(_binary("mul"))
_op("Equal", _DATA, data_inputs=(0, 1))(_binary("eq"))
_op("Less", _NUMERIC, data_inputs=(0, 1))(_binary("lt"))
_op("Greater", _NUMERIC, data_inputs=(0, 1))(_binary("gt"))
_op("LessOrEqual", _NUMERIC, data_inputs=(0, 1))(_binary("le"))
_op("GreaterOrEqual", _NUMERIC, data_inputs=(0, 1))(_binary("ge"))
_op("And", _LOGICAL)(_binary("logical_and"))
_op("Or", _LOGICAL)(_binary("logical_or"))
_op("Xor", _LOGICAL)(_binary("logical_xor"))


@_op("Div", _NUMERIC)
def _div(ctx, attrs, n):
    torch = ctx.torch

    def div(a, b):  # ONNX integer division truncates toward zero
        if a.is_floating_point():
            return torch.div(a, b)
        return torch.div(a, b, rounding_mode="trunc")
    return div


@_op("Pow", _NUMERIC)
def _pow(ctx, attrs, n):
    torch = ctx.torch
    return lambda a, b: torch.pow(a, b).to(a.dtype)  # ONNX: the result has the base's type


@_op("Mod", _NUMERIC)
def _mod(ctx, attrs, n):
    return ctx.torch.fmod if attrs.get("fmod", 0) else ctx.torch.remainder


def _variadic(fn_name: str):
    def build(ctx, attrs, n):
        fn = getattr(ctx.torch, fn_name)

        def reduce(*xs):
            out = xs[0]
            for x in xs[1:]:
                out = fn(out, x)
            return out
        return reduce
    return build


_op("Max", _NUMERIC)(_variadic("maximum"))
_op("Min", _NUMERIC)(_variadic("minimum"))
_op("Sum", _NUMERIC)(_variadic("add"))


def _unary(fn_name: str):
    def build(ctx, attrs, n):
        return getattr(ctx.torch, fn_name)
    return build


for _name, _fn in {"Sigmoid": "sigmoid", "Tanh": "tanh", "Exp": "exp", "Log": "log", "Sqrt": "sqrt",
                   "Reciprocal": "reciprocal", "Erf": "erf", "Sin": "sin", "Cos": "cos",
                   "Floor": "floor", "Ceil": "ceil", "Round": "round"}.items():
    _op(_name, _FLOAT)(_unary(_fn))
_op("Relu", _NUMERIC)(_unary("relu"))
_op("Neg", _NUMERIC)(_unary("neg"))
_op("Abs", _NUMERIC)(_unary("abs"))
_op("Sign", _NUMERIC)(_unary("sign"))
_op("Not", _LOGICAL)(_unary("logical_not"))


@_op("Identity", _DATA)
def _identity(ctx, attrs, n):
    return lambda x: x


@_op("Gelu", _FLOAT, min_opset=20,
     check=lambda node: None if _attr(node, "approximate", "none") in ("none", "tanh") else "approximate must be 'none' or 'tanh'")
def _gelu(ctx, attrs, n):
    approximate = attrs.get("approximate", b"none")
    approximate = approximate.decode() if isinstance(approximate, bytes) else approximate
    F = ctx.F
    return lambda x: F.gelu(x, approximate=approximate)


@_op("LeakyRelu", _FLOAT)
def _leaky_relu(ctx, attrs, n):
    alpha = attrs.get("alpha", 0.01)
    return lambda x: ctx.F.leaky_relu(x, alpha)


@_op("Elu", _FLOAT)
def _elu(ctx, attrs, n):
    alpha = attrs.get("alpha", 1.0)
    return lambda x: ctx.F.elu(x, alpha)


@_op("Softplus", _FLOAT)
def _softplus(ctx, attrs, n):
    return ctx.F.softplus


@_op("HardSigmoid", _FLOAT)
def _hard_sigmoid(ctx, attrs, n):
    alpha, beta = attrs.get("alpha", 0.2), attrs.get("beta", 0.5)
    return lambda x: (x * alpha + beta).clamp(0, 1)


@_op("Clip", _NUMERIC, min_opset=11)
def _clip(ctx, attrs, n):
    torch = ctx.torch

    def clip(x, low=None, high=None):
        return x if low is None and high is None else torch.clamp(x, low, high)
    return clip


@_op("Where", _DATA, data_inputs=(1, 2))
def _where(ctx, attrs, n):
    return ctx.torch.where


@_op("Cast", _DATA, data_inputs=(0,),
     check=lambda node: None if int(node.attributes.get("to", 1)) in {d.onnx for d in _DATA} else "only casts between bool, integer and float16/bfloat16/float32/float64 types")
def _cast(ctx, attrs, n):
    from ..dtypes import DType as D

    target = getattr(ctx.torch, D.from_onnx(int(attrs["to"])).torch_name)
    return lambda x: x.to(target)


@_op("CastLike", _DATA)
def _cast_like(ctx, attrs, n):
    return lambda x, like: x.to(like.dtype)


# -- linear algebra, convolution, normalization ---------------------------------------------------

@_op("MatMul", _FLOAT)
def _matmul(ctx, attrs, n):
    return ctx.torch.matmul


@_op("Gemm", _FLOAT)
def _gemm(ctx, attrs, n):
    alpha, beta = float(attrs.get("alpha", 1.0)), float(attrs.get("beta", 1.0))
    trans_a, trans_b = attrs.get("transA", 0), attrs.get("transB", 0)
    torch = ctx.torch
    weight = ctx.known[1] if len(ctx.known) > 1 else None
    if weight is not None and trans_b:
        weight = weight.t().contiguous()  # transposed once, at compile time

    def gemm(a, b, c=None):
        if trans_a:
            a = a.t()
        if weight is not None:
            b = weight
        elif trans_b:
            b = b.t()
        if c is not None and alpha == 1.0 and beta == 1.0:
            return torch.addmm(c, a, b) if c.dim() <= 2 else torch.matmul(a, b) + c
        out = torch.matmul(a, b)
        if alpha != 1.0:
            out = out * alpha
        if c is not None:
            out = out + (c * beta if beta != 1.0 else c)
        return out
    return gemm


def _pads_symmetric(node: NodeInfo) -> str | None:
    pad_mode = _attr(node, "auto_pad", "NOTSET")
    if pad_mode not in ("NOTSET", "VALID"):
        return f"auto_pad={pad_mode} is not implemented (export with explicit pads)"
    return None


def _torch_pad_list(pads: list[int], rank: int) -> list[int]:
    """ONNX pads [b1, b2, ..., e1, e2, ...] in F.pad's order (last dimension first)."""
    flat: list[int] = []
    for b, e in zip(reversed(pads[:rank]), reversed(pads[rank:])):
        flat += [b, e]
    return flat


def _split_pads(pads: list[int], rank: int) -> tuple[list[int], list[int] | None]:
    """ONNX pads [b1, b2, ..., e1, e2, ...] -> (symmetric per-dim pads, or F.pad's list when asymmetric)."""
    if pads[:rank] == pads[rank:]:
        return pads[:rank], None
    return [0] * rank, _torch_pad_list(pads, rank)


@_op("Conv", _FLOAT, check=_pads_symmetric, data_inputs=(0, 1, 2))
def _conv(ctx, attrs, n):
    F = ctx.F
    weight = ctx.known[1]
    rank = len(attrs["kernel_shape"]) if "kernel_shape" in attrs else (weight.dim() - 2 if weight is not None else None)
    if rank is None:  # no kernel_shape and a weight fed at run time: the weight's rank decides
        return lambda x, w, b=None: _conv_fn(F, attrs, w.dim() - 2)(x, w, b)
    return _conv_fn(F, attrs, rank)


def _conv_fn(F, attrs, rank):
    strides = list(attrs.get("strides", [1] * rank))
    dilations = list(attrs.get("dilations", [1] * rank))
    groups = int(attrs.get("group", 1))
    padding, extra = _split_pads(list(attrs.get("pads", [0] * 2 * rank)), rank)
    conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[rank]

    def run(x, w, b=None):
        if extra is not None:
            x = F.pad(x, extra)
        return conv(x, w, b, strides, padding, dilations, groups)
    return run


@_op("BatchNormalization", _FLOAT,
     check=lambda node: "training mode is not implemented" if node.attributes.get("training_mode", 0) or len(node.outputs) > 1 else None)
def _batch_norm(ctx, attrs, n):
    F = ctx.F
    eps = float(attrs.get("epsilon", 1e-5))
    return lambda x, scale, bias, mean, var: F.batch_norm(x, mean, var, scale, bias, False, 0.0, eps)


@_op("LayerNormalization", _FLOAT, min_opset=17,
     check=lambda node: "only the normalized output is implemented (not Mean, InvStdDev)" if len(node.outputs) > 1 else None)
def _layer_norm(ctx, attrs, n):
    F = ctx.F
    axis = int(attrs.get("axis", -1))
    eps = float(attrs.get("epsilon", 1e-5))

    def run(x, scale, bias=None):
        shape = x.shape[axis:] if axis >= 0 else x.shape[x.dim() + axis:]
        return F.layer_norm(x, shape, scale, bias, eps)
    return run


def _softmax_fn(F, attrs, opset, log):
    fn = F.log_softmax if log else F.softmax
    if opset >= 13:
        axis = int(attrs.get("axis", -1))
        return lambda x: fn(x, axis)
    axis = int(attrs.get("axis", 1))

    def coerced(x):  # before opset 13: softmax over the input flattened from `axis` on
        a = axis if axis >= 0 else x.dim() + axis
        return fn(x.reshape(math.prod(x.shape[:a]), -1), -1).reshape(x.shape)
    return coerced


_TABLE["Softmax"] = _Op(lambda ctx, attrs, n: _softmax_fn(ctx.F, attrs, ctx.opset, False), _FLOAT)
_TABLE["LogSoftmax"] = _Op(lambda ctx, attrs, n: _softmax_fn(ctx.F, attrs, ctx.opset, True), _FLOAT)


# -- pooling --------------------------------------------------------------------------------------

def _pool_check(node: NodeInfo) -> str | None:
    reason = _pads_symmetric(node)
    if reason:
        return reason
    if len(node.outputs) > 1:
        return "the Indices output is not implemented"
    if int(node.attributes.get("storage_order", 0)):
        return "storage_order=1 is not implemented"
    return None


@_op("MaxPool", _FLOAT, check=_pool_check)
def _max_pool(ctx, attrs, n):
    F = ctx.F
    kernel = list(attrs["kernel_shape"])
    rank = len(kernel)
    strides = list(attrs.get("strides", [1] * rank))
    dilations = list(attrs.get("dilations", [1] * rank))
    ceil = bool(attrs.get("ceil_mode", 0))
    pads = list(attrs.get("pads", [0] * 2 * rank))
    padding, extra = _split_pads(pads, rank)
    if any(p > ((k - 1) * d + 1) // 2 for p, k, d in zip(pads, kernel * 2, dilations * 2)):
        padding, extra = [0] * rank, _split_pads(pads, rank)[1] or _torch_pad_list(pads, rank)
    pool = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}[rank]

    def run(x):
        if extra is not None:
            x = F.pad(x, extra, value=float("-inf"))
        return pool(x, kernel, strides, padding, dilations, ceil_mode=ceil)
    return run


def _average_pool_check(node: NodeInfo) -> str | None:
    kernel = list(node.attributes.get("kernel_shape", []))
    pads = list(node.attributes.get("pads", [0] * 2 * len(kernel)))
    if any(d != 1 for d in node.attributes.get("dilations", [])):
        return "dilations are not implemented (torch's avg_pool has none)"
    if pads[: len(kernel)] != pads[len(kernel):]:
        return "asymmetric pads are not implemented"
    if any(p > k // 2 for p, k in zip(pads, kernel)):
        return "pads over half the kernel are not implemented (torch's limit)"
    return _pool_check(node)


@_op("AveragePool", _FLOAT, check=_average_pool_check)
def _average_pool(ctx, attrs, n):
    F = ctx.F
    kernel = list(attrs["kernel_shape"])
    rank = len(kernel)
    strides = list(attrs.get("strides", [1] * rank))
    padding = list(attrs.get("pads", [0] * 2 * rank))[:rank]
    ceil = bool(attrs.get("ceil_mode", 0))
    include = bool(attrs.get("count_include_pad", 0))
    pool = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}[rank]
    return lambda x: pool(x, kernel, strides, padding, ceil_mode=ceil, count_include_pad=include)


@_op("GlobalAveragePool", _FLOAT)
def _global_average_pool(ctx, attrs, n):
    return lambda x: x.mean(dim=tuple(range(2, x.dim())), keepdim=True)


@_op("GlobalMaxPool", _FLOAT)
def _global_max_pool(ctx, attrs, n):
    return lambda x: x.amax(dim=tuple(range(2, x.dim())), keepdim=True)


# -- reductions -----------------------------------------------------------------------------------

def _reduce(fn_name: str, axes_input_from: int):
    def build(ctx, attrs, n):
        keep = bool(attrs.get("keepdims", 1))
        noop = bool(attrs.get("noop_with_empty_axes", 0))
        axes_of = _axes(ctx, attrs, 1) if ctx.opset >= axes_input_from or "axes" in attrs else (lambda _: None)
        torch = ctx.torch

        def run(x, axes_tensor=None):
            axes = axes_of(axes_tensor)
            if not axes:
                if noop:
                    return x
                axes = list(range(x.dim()))
            dims = tuple(axes)
            if x.numel() == 0 and fn_name in ("amax", "amin"):  # ONNX: the identity of an empty max/min
                shape = [1 if i in {a % x.dim() for a in dims} else n for i, n in enumerate(x.shape)]
                if not keep:
                    shape = [n for i, n in enumerate(x.shape) if i not in {a % x.dim() for a in dims}]
                fill = float("-inf") if fn_name == "amax" else float("inf")
                if not x.is_floating_point():
                    info = torch.iinfo(x.dtype)
                    fill = info.min if fn_name == "amax" else info.max
                return torch.full(shape, fill, dtype=x.dtype, device=x.device)
            if fn_name == "mean":
                return x.mean(dim=dims, keepdim=keep)
            if fn_name == "sum":
                return x.sum(dim=dims, keepdim=keep)
            if fn_name == "amax":
                return x.amax(dim=dims, keepdim=keep)
            if fn_name == "amin":
                return x.amin(dim=dims, keepdim=keep)
            out = x
            for d in sorted((a % x.dim() for a in dims), reverse=True):
                out = torch.prod(out, d, keepdim=keep)
            return out
        return run
    return build


_op("ReduceMean", _FLOAT)(_reduce("mean", 18))
_op("ReduceSum", _NUMERIC)(_reduce("sum", 13))
_op("ReduceMax", _NUMERIC)(_reduce("amax", 18))
_op("ReduceMin", _NUMERIC)(_reduce("amin", 18))
_op("ReduceProd", _NUMERIC)(_reduce("prod", 18))


def _arg_fn(fn_name: str):
    def build(ctx, attrs, n):
        axis, keep = int(attrs.get("axis", 0)), bool(attrs.get("keepdims", 1))
        fn = getattr(ctx.torch, fn_name)
        return lambda x: fn(x, dim=axis, keepdim=keep)
    return build


def _arg_check(node: NodeInfo) -> str | None:
    return "select_last_index=1 is not implemented" if node.attributes.get("select_last_index", 0) else None


_TABLE["ArgMax"] = _Op(_arg_fn("argmax"), _NUMERIC, check=_arg_check, data_inputs=(0,))
_TABLE["ArgMin"] = _Op(_arg_fn("argmin"), _NUMERIC, check=_arg_check, data_inputs=(0,))


# -- shapes and data movement -------------------------------------------------------------------

@_op("Shape", _DATA | {DType.COMPLEX64})
def _shape(ctx, attrs, n):
    torch, device = ctx.torch, ctx.device
    start, end = attrs.get("start", 0), attrs.get("end")
    return lambda x: torch.tensor(list(x.shape)[start:end], dtype=torch.int64, device=device)


@_op("Size", _DATA)
def _size(ctx, attrs, n):
    torch, device = ctx.torch, ctx.device
    return lambda x: torch.tensor(x.numel(), dtype=torch.int64, device=device)


@_op("Reshape", _DATA, data_inputs=(0,), min_opset=5)
def _reshape(ctx, attrs, n):
    allow_zero = bool(attrs.get("allowzero", 0))
    fixed = ctx.ints(1)

    def target(x, dims):
        if allow_zero:
            return dims
        return [x.shape[i] if d == 0 else d for i, d in enumerate(dims)]

    if fixed is not None and (allow_zero or 0 not in fixed):
        return lambda x, _shape: x.reshape(fixed)
    return lambda x, shape: x.reshape(target(x, fixed if fixed is not None else _as_ints(shape)))


@_op("Flatten", _DATA)
def _flatten(ctx, attrs, n):
    axis = int(attrs.get("axis", 1))

    def run(x):
        a = axis if axis >= 0 else x.dim() + axis
        return x.reshape(math.prod(x.shape[:a]), -1) if x.numel() else x.reshape(math.prod(x.shape[:a]), math.prod(x.shape[a:]))
    return run


@_op("Transpose", _DATA)
def _transpose(ctx, attrs, n):
    perm = attrs.get("perm")
    if perm is None:
        return lambda x: x.permute(*reversed(range(x.dim())))
    perm = list(perm)
    return lambda x: x.permute(perm)


@_op("Concat", _DATA)
def _concat(ctx, attrs, n):
    axis = int(attrs["axis"])
    torch = ctx.torch
    return lambda *xs: torch.cat(xs, axis)


@_op("Split", _DATA, data_inputs=(0,))
def _split(ctx, attrs, n):
    axis = int(attrs.get("axis", 0))
    torch = ctx.torch
    sizes = list(attrs["split"]) if "split" in attrs else ctx.ints(1)

    def run(x, split=None):
        parts = sizes if sizes is not None else (_as_ints(split) if split is not None else None)
        if parts is None:
            dim = x.shape[axis]
            chunk = -(-dim // n)
            parts = [chunk] * (dim // chunk) + ([dim % chunk] if dim % chunk else [])
        return tuple(torch.split(x, parts, axis))
    return run


@_op("Unsqueeze", _DATA, data_inputs=(0,))
def _unsqueeze(ctx, attrs, n):
    axes_of = _axes(ctx, attrs, 1)

    def run(x, axes_tensor=None):
        axes = axes_of(axes_tensor)
        rank = x.dim() + len(axes)
        for a in sorted(a % rank for a in axes):
            x = x.unsqueeze(a)
        return x
    return run


@_op("Squeeze", _DATA, data_inputs=(0,))
def _squeeze(ctx, attrs, n):
    axes_of = _axes(ctx, attrs, 1)

    def run(x, axes_tensor=None):
        axes = axes_of(axes_tensor)
        if axes is None:
            return x.squeeze()
        return x.squeeze(tuple(a % x.dim() for a in axes)) if axes else x
    return run


@_op("Gather", _DATA, data_inputs=(0,))
def _gather(ctx, attrs, n):
    axis = int(attrs.get("axis", 0))
    torch = ctx.torch
    fixed = ctx.known[1] if len(ctx.known) > 1 else None

    def run(x, indices):
        if fixed is not None:  # constant indices: the compile-time tensor, already on the device
            indices = fixed
        a = axis % x.dim()
        positive = torch.where(indices < 0, indices + x.shape[a], indices)
        flat = torch.index_select(x, a, positive.reshape(-1).long())
        return flat.reshape(x.shape[:a] + indices.shape + x.shape[a + 1:])
    return run


@_op("Slice", _DATA, data_inputs=(0,), min_opset=10)
def _slice(ctx, attrs, n):
    consts = [ctx.ints(i) for i in range(1, 5)]

    def run(x, starts, ends, axes=None, steps=None):
        s = consts[0] if consts[0] is not None else _as_ints(starts)
        e = consts[1] if consts[1] is not None else _as_ints(ends)
        ax = consts[2] if consts[2] is not None else (_as_ints(axes) if axes is not None else list(range(len(s))))
        st = consts[3] if consts[3] is not None else (_as_ints(steps) if steps is not None else [1] * len(s))
        index: list[Any] = [slice(None)] * x.dim()
        flips = []
        for start, end, axis, step in zip(s, e, ax, st):
            dim = x.shape[axis % x.dim()]
            if step > 0:
                lo = max(0, min(dim, start + dim if start < 0 else start))
                hi = max(0, min(dim, end + dim if end < 0 else end))
                index[axis % x.dim()] = slice(lo, max(lo, hi), step)
            else:  # negative step: torch slices forward only, so flip then slice
                lo = max(-1, min(dim - 1, start + dim if start < 0 else start))
                hi = max(-1, min(dim - 1, end + dim if end < 0 else end))
                flips.append(axis % x.dim())
                index[axis % x.dim()] = slice(dim - 1 - lo, max(dim - 1 - lo, dim - 1 - hi), -step)
        if flips:
            x = x.flip(flips)
        return x[tuple(index)]
    return run


@_op("Expand", _DATA, data_inputs=(0,))
def _expand(ctx, attrs, n):
    torch = ctx.torch
    fixed = ctx.ints(1)

    def run(x, shape):
        dims = fixed if fixed is not None else _as_ints(shape)
        return x.expand(torch.broadcast_shapes(x.shape, tuple(dims)))
    return run


@_op("Tile", _DATA, data_inputs=(0,))
def _tile(ctx, attrs, n):
    fixed = ctx.ints(1)
    return lambda x, reps: x.repeat(fixed if fixed is not None else _as_ints(reps))


@_op("ConstantOfShape", _DATA, data_inputs=())
def _constant_of_shape(ctx, attrs, n):
    from onnx import numpy_helper

    torch, device = ctx.torch, ctx.device
    value = attrs.get("value")
    fill = _to_device(torch, numpy_helper.to_array(value), device).reshape(()) if value is not None else torch.tensor(0.0, device=device)
    return lambda shape: fill.expand(_as_ints(shape)).clone()


@_op("Constant", _DATA)
def _constant(ctx, attrs, n):
    from onnx import numpy_helper

    torch, device = ctx.torch, ctx.device
    if "value" in attrs:
        value = _to_device(torch, numpy_helper.to_array(attrs["value"]), device)
    elif "value_float" in attrs:
        value = torch.tensor(attrs["value_float"], dtype=torch.float32, device=device)
    elif "value_floats" in attrs:
        value = torch.tensor(list(attrs["value_floats"]), dtype=torch.float32, device=device)
    elif "value_int" in attrs:
        value = torch.tensor(attrs["value_int"], dtype=torch.int64, device=device)
    elif "value_ints" in attrs:
        value = torch.tensor(list(attrs["value_ints"]), dtype=torch.int64, device=device)
    else:
        raise UnsupportedOpError(f"the torch executor's Constant takes value, value_float(s) or value_int(s), got {sorted(attrs)}")
    return lambda: value


@_op("Range", _NUMERIC)
def _range(ctx, attrs, n):
    torch, device = ctx.torch, ctx.device
    return lambda start, limit, delta: torch.arange(start.item(), limit.item(), delta.item(), dtype=start.dtype, device=device)


@_op("Einsum", _FLOAT)
def _einsum(ctx, attrs, n):
    equation = attrs["equation"]
    equation = equation.decode() if isinstance(equation, bytes) else equation
    torch = ctx.torch
    return lambda *xs: torch.einsum(equation, *xs)


@_op("Pad", _NUMERIC, data_inputs=(0,), min_opset=11,
     check=lambda node: None if _attr(node, "mode", "constant") in ("constant", "reflect", "edge") and len(node.inputs) < 4 else "only constant, reflect and edge modes over all axes")
def _pad(ctx, attrs, n):
    F = ctx.F
    mode = attrs.get("mode", b"constant")
    mode = {"constant": "constant", "reflect": "reflect", "edge": "replicate"}[mode.decode() if isinstance(mode, bytes) else mode]
    fixed = ctx.ints(1)

    def run(x, pads, value=None):
        p = fixed if fixed is not None else _as_ints(pads)
        rank = x.dim()
        flat: list[int] = []
        for b, e in zip(reversed(p[:rank]), reversed(p[rank:])):
            flat += [b, e]
        while len(flat) > 2 and flat[-2:] == [0, 0]:  # torch pads the trailing dims only
            flat = flat[:-2]
        if mode == "constant":
            return F.pad(x, flat, value=float(value.item()) if value is not None else 0.0)
        return F.pad(x, flat, mode=mode)
    return run


SUPPORTED_OPS = tuple(sorted(_TABLE))
"""Every ONNX op (default domain) the torch executor implements."""



class TorchExecutable(Executable):
    """A partition on a torch device: issued from the calling thread to the stream's torch stream,
    after whatever the stream's worker still had to issue, so the device sees one order."""

    def __init__(self, model: Any, device: Device):
        self.device = device
        self.driver = device.driver
        self.program = TorchProgram(model, self.driver.torch_device)
        self.input_names = self.program.input_names
        self.output_names = self.program.output_names
        self._constant_storage = {
            t.untyped_storage().data_ptr() for t in self.program._constants.values() if t is not None
        }

    def run(self, inputs: Mapping[str, DeviceTensor], stream: Stream) -> dict[str, DeviceTensor]:
        driver, stream_driver = self.driver, stream.driver
        stream_driver.drain()
        tensors = [torch_view(inputs[name], driver) for name in self.input_names]
        protected = self._constant_storage | {t.untyped_storage().data_ptr() for t in tensors}
        torch_stream = stream_driver.torch_stream
        if torch_stream is None:
            outputs = self.program.run(tensors)
        else:
            with driver.module.stream(torch_stream):
                outputs = self.program.run(tensors)
                for t in tensors:
                    stream_driver.uses(t)
        results = {}
        for name, out in zip(self.output_names, outputs):
            if not out.is_contiguous():
                out = out.contiguous()
            elif out.untyped_storage().data_ptr() in protected:
                out = out.clone()  # an output is a new tensor, never a view of an input or weight
            results[name] = DeviceTensor(driver.adopt(out), tuple(out.shape), dtype_of(out.dtype), self.device)
        return results


def torch_view(tensor: DeviceTensor, driver: Any) -> Any:
    """A DeviceTensor of a torch device as a torch tensor sharing its memory."""
    from .driver import TorchBuffer, torch_dtype

    if not isinstance(tensor.buffer, TorchBuffer):
        raise UnsupportedOpError(f"{driver.spec.device_name}: partition input on {tensor.device.name} must be copied here first")
    raw = tensor.buffer.view(tensor.offset, tensor.nbytes)
    return raw.view(torch_dtype(tensor.dtype)).reshape(tensor.shape)
