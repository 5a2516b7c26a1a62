"""Roofline cost model of a simulated chip: how long the chip would take, in seconds.

Nodes: seconds = launch overhead + max(FLOPs / peak rate of the compute dtype, bytes / memory
bandwidth), with FLOPs and bytes counted from the node's shapes and dtypes. Dimensions that are not
known (symbolic or missing) count as 1 and mark the cost `dynamic`. On Ascend, the activations of
convolution, pooling and batch norm are stored in NC1HWC0, whose channel padding is counted.

Copies: a host link transfer costs the link's latency plus bytes over its bandwidth; a copy inside
device memory reads and writes every byte at the memory bandwidth, after a kernel launch; a copy
between two cards uses their peer link where the chip has one, and bounces through the host where
it has none. Contention between concurrent streams is not modelled.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import InvalidArgumentError
from .spec import ChipSpec

if TYPE_CHECKING:
    from ..capability import NodeInfo, TensorInfo

__all__ = [
    "ChipCost", "NodeCost", "node_cost", "count_flops", "count_bytes", "nc1hwc0_bytes", "transdata_seconds",
    "DATA_MOVEMENT_OPS", "peak_rate",
]

DATA_MOVEMENT_OPS = frozenset({
    "Identity", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Concat", "Split", "Slice",
    "Gather", "GatherElements", "GatherND", "ScatterND", "ScatterElements", "Expand", "Tile", "Pad",
    "DepthToSpace", "SpaceToDepth", "Cast", "CastLike", "Shape", "Size", "Dropout", "Constant",
    "ConstantOfShape", "Compress", "ReverseSequence", "Trilu", "EyeLike",
    # hal's layout kernels (com.hal, csrc/kernels/layout.cpp): their padded output is counted from its shape
    "ToNC1HWC0", "FromNC1HWC0", "ToFractalNZ", "FromFractalNZ",
})
"""Ops that copy, reorder or convert elements without arithmetic: 0 FLOPs, only bytes."""

# FLOPs per output element beyond 1, for ops dearer than one add or multiply (estimates: a
# polynomial or table evaluation of the transcendental, or exp + sum + divide for softmax).
_ELEMENTWISE_FLOPS = {
    "Exp": 4, "Log": 4, "Sqrt": 2, "Reciprocal": 2, "Div": 2, "Pow": 8, "Sigmoid": 4, "HardSigmoid": 3,
    "HardSwish": 4, "Tanh": 6, "Erf": 8, "Gelu": 8, "FastGelu": 8, "Elu": 4, "Selu": 4, "Celu": 4,
    "Softplus": 6, "Mish": 12, "Sin": 6, "Cos": 6, "Softmax": 5, "LogSoftmax": 6, "LeakyRelu": 2,
    "PRelu": 2, "Clip": 2, "Where": 1,
    # hal's kernels (com.hal): SwiGLU = exp + divide + 2 multiplies per output; RoPE = 2 mul + 1 add
    "SwiGLU": 8, "RoPE": 3, "FusedSoftmax": 5, "FusedGelu": 8,
}
# Normalizations, per input element: mean, variance, normalize, scale and shift.
_NORMALIZATION_FLOPS = {
    "LayerNormalization": 8, "SimplifiedLayerNormalization": 6, "RMSNormalization": 6,
    "GroupNormalization": 8, "InstanceNormalization": 8, "BatchNormalization": 5, "LpNormalization": 4,
    "MeanVarianceNormalization": 8, "RMSNorm": 6, "LayerNorm": 8,
}
_REDUCTIONS = frozenset({
    "ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
    "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare", "ArgMax", "ArgMin", "CumSum", "TopK",
})
_POOLING = frozenset({"MaxPool", "AveragePool", "LpPool", "MaxRoiPool"})
_GLOBAL_POOLING = frozenset({"GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool"})
# Ascend ops whose 4-D activations live in NC1HWC0 (convolution, pooling, batch norm).
_NC1HWC0_OPS = frozenset({"Conv", "ConvTranspose", "BatchNormalization"}) | _POOLING | _GLOBAL_POOLING
# Where a spec has no rate for the compute dtype, the rate of the unit that computes it instead.
_PEAK_FALLBACK = {
    "int16": ("float16", "float32"), "bfloat16": ("float16", "float32"), "float16": ("float32",),
    "int8": ("float16", "float32"), "uint8": ("int8", "float16", "float32"), "float64": ("float32",),
}
_C0 = 16


class ChipCost:
    """The CopyCost (hal.backend) of one chip model."""

    def __init__(self, chip: ChipSpec):
        self.chip = chip
        self._link_latency = chip.host_link_latency.value
        self._link_bandwidth = chip.host_link_bandwidth.value
        self._memory_bandwidth = chip.memory_bandwidth.value
        self._launch = chip.launch_overhead.value
        self._peer_bandwidth = chip.peer_link_bandwidth.value if chip.peer_link_bandwidth else None

    def host_to_device(self, nbytes: int) -> float:
        return self._link_latency + nbytes / self._link_bandwidth

    def device_to_host(self, nbytes: int) -> float:
        return self._link_latency + nbytes / self._link_bandwidth

    def device_to_device(self, nbytes: int, same_device: bool) -> float:
        if same_device:
            return self._launch + 2 * nbytes / self._memory_bandwidth
        if self._peer_bandwidth is not None:
            return self._link_latency + nbytes / self._peer_bandwidth
        return self.device_to_host(nbytes) + self.host_to_device(nbytes)


@dataclass(frozen=True)
class NodeCost:
    """One node's roofline: FLOPs, bytes read and written, seconds, and what bounds it."""

    flops: float
    bytes: float
    seconds: float
    bound: str
    """"compute", "memory" or "launch" (the launch overhead exceeds both)."""
    dynamic: bool = False
    """Some dimension was unknown and counted as 1: the figures are a lower bound."""
    compute_dtype: str = "float32"
    """The dtype whose peak rate the FLOPs were counted at."""


def _elements(tensor: TensorInfo | None) -> tuple[int, bool]:
    """Element count, and whether an unknown dimension (or rank) was counted as 1."""
    if tensor is None:
        return 0, False
    if tensor.shape is None:
        return 1, True
    count, dynamic = 1, False
    for dim in tensor.shape:
        if isinstance(dim, int) and dim >= 0:
            count *= dim
        else:
            dynamic = True
    return count, dynamic


def _dim(tensor: TensorInfo | None, axis: int) -> tuple[int, bool]:
    if tensor is None or tensor.shape is None or not -len(tensor.shape) <= axis < len(tensor.shape):
        return 1, True
    dim = tensor.shape[axis]
    return (dim, False) if isinstance(dim, int) and dim >= 0 else (1, True)


def _tail(tensor: TensorInfo | None, start: int) -> tuple[int, bool]:
    """Product of the dimensions from `start` on."""
    if tensor is None or tensor.shape is None:
        return 1, True
    count, dynamic = 1, False
    for axis in range(start, len(tensor.shape)):
        size, unknown = _dim(tensor, axis)
        count, dynamic = count * size, dynamic or unknown
    return count, dynamic


def _flops(node: NodeInfo) -> tuple[float, bool]:
    op = node.op_type
    first = node.inputs[0] if node.inputs else None
    out = node.outputs[0] if node.outputs else None
    if op in DATA_MOVEMENT_OPS:
        return 0.0, False
    if op in ("MatMul", "QuantizedMatMul", "Linear"):  # out = batch x M x N, each a K-long dot product
        elements, d1 = _elements(out)
        k, d2 = _dim(first, -1)
        return 2.0 * elements * k, d1 or d2
    if op == "Gemm":
        elements, d1 = _elements(out)
        k, d2 = _dim(first, 0 if node.attributes.get("transA", 0) else 1)
        return 2.0 * elements * k, d1 or d2
    if op == "Conv":  # W = (Cout, Cin/group, *kernel): each output element is one such dot product
        elements, d1 = _elements(out)
        per_output, d2 = _tail(node.inputs[1] if len(node.inputs) > 1 else None, 1)
        return 2.0 * elements * per_output, d1 or d2
    if op == "ConvTranspose":  # W = (Cin, Cout/group, *kernel): each input element scatters into it
        elements, d1 = _elements(first)
        per_input, d2 = _tail(node.inputs[1] if len(node.inputs) > 1 else None, 1)
        return 2.0 * elements * per_input, d1 or d2
    if op == "Attention":  # q [B, Hq, S, D] against k, v [B, Hkv, T, D]: q.k^T and p.v, 2*S*T*D each per head
        elements, d1 = _elements(first)
        keys, d2 = _dim(node.inputs[1] if len(node.inputs) > 1 else None, -2)
        return 4.0 * elements * keys, d1 or d2
    if op == "CachedAttention":  # the same products over the `length` positions of the cache it reads
        elements, dynamic = _elements(first)
        return 4.0 * elements * int(node.attributes.get("length", 1)), dynamic
    if op in _POOLING:
        elements, dynamic = _elements(out)
        return float(elements * math.prod(node.attributes.get("kernel_shape", ()) or (1,))), dynamic
    if op in _GLOBAL_POOLING or op in _REDUCTIONS:
        elements, dynamic = _elements(first)
        return float(elements), dynamic
    if op in _NORMALIZATION_FLOPS:
        elements, dynamic = _elements(first)
        return float(elements * _NORMALIZATION_FLOPS[op]), dynamic
    elements, dynamic = _elements(out)
    return float(elements * _ELEMENTWISE_FLOPS.get(op, 1)), dynamic


def _bytes(node: NodeInfo, nc1hwc0: bool) -> tuple[float, bool]:
    """Bytes of every input and output; with nc1hwc0, the 4-D activations (first input, first
    output) count their NC1HWC0 channel padding."""
    total, dynamic = 0.0, False
    for position, tensor in (*enumerate(node.inputs), *enumerate(node.outputs)):
        if tensor is None:
            continue
        itemsize = tensor.dtype.itemsize if tensor.dtype is not None else 4
        elements, unknown = _elements(tensor)
        dynamic = dynamic or unknown
        if nc1hwc0 and position == 0 and tensor.shape is not None and len(tensor.shape) == 4:
            total += nc1hwc0_bytes(tuple(d if isinstance(d, int) and d >= 0 else 1 for d in tensor.shape), itemsize)
        else:
            total += elements * itemsize
    return total, dynamic


def count_flops(node: NodeInfo) -> float:
    """Floating-point (or integer) operations of one node, from its shapes; chip-independent."""
    return _flops(node)[0]


def count_bytes(node: NodeInfo) -> float:
    """Bytes the node reads and writes (every input, initializers included, and every output), in
    the tensors' own (ND) layout."""
    return _bytes(node, nc1hwc0=False)[0]


def nc1hwc0_bytes(shape: tuple[int, ...], itemsize: int, c0: int = _C0) -> int:
    """Bytes of an NCHW tensor stored in Ascend's 5-D NC1HWC0 layout: C split into C1 blocks of C0
    channels, the last block padded to C0 (CANN aclFormat: "NC1HWC0: C0 equals the cube unit size,
    e.g. 16; C1 = C/C0, and when it does not divide, the last block is padded to C0";
    https://www.hiascend.com/document/detail/zh/canncommercial/850/API/appdevgapi/aclcppdevg_03_1348.html)."""
    if len(shape) != 4 or c0 <= 0 or itemsize <= 0 or any(d < 0 for d in shape):
        raise InvalidArgumentError(f"NC1HWC0 needs an NCHW shape of 4 sizes >= 0, C0 > 0 and itemsize > 0; got {shape}, {c0}, {itemsize}")
    n, c, h, w = shape
    return n * -(-c // c0) * h * w * c0 * itemsize


def peak_rate(chip: ChipSpec, dtype: str) -> float:
    """FLOP/s for `dtype`: the spec's figure, else that of the unit that computes it instead
    (integers and unknown dtypes: float32)."""
    for name in (dtype, *_PEAK_FALLBACK.get(dtype, ("float32",))):
        figure = chip.peak_flops.get(name)
        if figure is not None and figure.value > 0:
            return figure.value
    rates = [f.value for f in chip.peak_flops.values() if f.value > 0]
    return min(rates) if rates else math.inf


def _dominant_dtype(node: NodeInfo) -> str:
    for tensor in node.inputs:
        if tensor is not None and tensor.dtype is not None and tensor.dtype.is_floating:
            return tensor.dtype.value
    return "float32"


def node_cost(node: NodeInfo, chip: ChipSpec, compute_dtype: str | None = None, *, layout_bytes: float | None = None) -> NodeCost:
    """Roofline time of one node on `chip`. compute_dtype: what the chip computes it in (see
    hal.sim.numerics.compute_dtype_of; None: the node's first float input dtype, else float32).
    layout_bytes overrides the bytes counted from shapes (a caller that knows the tensors' layout)."""
    flops, dynamic = _flops(node)
    counted, unknown = _bytes(node, nc1hwc0=chip.kind == "ascend" and node.op_type in _NC1HWC0_OPS)
    moved = counted if layout_bytes is None else float(layout_bytes)
    compute_dtype = compute_dtype or _dominant_dtype(node)
    compute_s = flops / peak_rate(chip, compute_dtype)
    memory_s = moved / chip.memory_bandwidth.value
    launch = chip.launch_overhead.value
    if launch >= max(compute_s, memory_s):
        bound = "launch"
    else:
        bound = "compute" if compute_s >= memory_s else "memory"
    return NodeCost(flops, moved, launch + max(compute_s, memory_s), bound, dynamic or unknown, compute_dtype)


def transdata_seconds(shape: tuple[int, ...], itemsize: int, chip: ChipSpec) -> float:
    """Seconds of a TransData from ND (NCHW) to NC1HWC0 (or back) at a partition boundary: one
    kernel launch, reading the ND bytes and writing the padded NC1HWC0 bytes at memory bandwidth."""
    nd = math.prod(shape) * itemsize
    return chip.launch_overhead.value + (nd + nc1hwc0_bytes(tuple(shape), itemsize)) / chip.memory_bandwidth.value
