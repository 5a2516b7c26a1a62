"""What a simulated chip does to your numbers, as ONNX graph rewrites that onnxruntime's CPU
provider runs: Ascend rounds Cube (matmul/conv) operands to float16 or bfloat16 by CANN precision
mode, Kunlun quantizes both operands of its fully connected layers to int16 as Paddle's XPU backend
does, and int64 tensors of nodes a chip computes in int32 wrap around, with a flag per tensor that
check_overflow turns into a DeviceError, so wrap-around is never silent.

Every rewrite keeps the caller's tensor names and dtypes at node boundaries (a value is rounded, a
node computes in another dtype between Casts), so the emulated graph has the original inputs and
outputs plus the overflow flags, and value_info stays valid. Only nodes of the main graph are
rewritten (not If/Loop/Scan bodies).
"""
from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..dtypes import DType
from ..errors import DeviceError, InvalidArgumentError, InvalidModelError, UnsupportedDTypeError
from .cost import DATA_MOVEMENT_OPS
from .spec import ChipSpec

if TYPE_CHECKING:
    from ..capability import CompileOptions, NodeInfo

__all__ = [
    "ASCEND_PRECISION_MODES", "KUNLUN_FC_PRECISIONS", "CUBE_OPS", "FC_OPS",
    "EmulatedGraph", "Int32Check", "emulate", "check_overflow", "compute_dtype_of", "KernelPrecision", "kernel_precision",
]

_F32, _F16, _BF16 = DType.FLOAT32, DType.FLOAT16, DType.BFLOAT16
_FLOATS = frozenset({_F32, _F16, _BF16})

CUBE_OPS = frozenset({"MatMul", "Gemm", "Conv", "ConvTranspose", "Linear", "CachedAttention"})
"""Ops that Ascend runs on its Cube (matrix) unit; ONNX MatMul covers the batched case; Linear is
hal.ops' fully connected kernel and CachedAttention its attention (com.hal). Kunlun's FC_INT16 path is QuantizedMatMul: a direct
hal.ops.linear call there computes in float."""
FC_OPS = frozenset({"MatMul", "Gemm"})
"""ONNX ops that Paddle's XPU backend runs as fully connected layers (fc_fusion / fc_batched)."""


@dataclass(frozen=True)
class _AscendMode:
    cube_from: frozenset[DType]
    """Float dtypes of Cube ops that the mode lowers."""
    cube_in: DType | None
    """Dtype their operands are rounded to."""
    cube_out: DType | None
    """Dtype their result is rounded to (None: the Cube writes float32)."""
    vector_round: DType | None = None
    """Dtype every float32/bfloat16 op computes in (force_fp16)."""
    vector_upcast: bool = False
    """float16/bfloat16 vector ops compute in float32 (force_fp32)."""


# CANN ACL_PRECISION_MODE / ATC --precision_mode values, as the aclCompileOpt and ATC docs state them
# (https://www.hiascend.com/document/detail/zh/canncommercial/latest/API/ascendgraphapi/aclcppdevg_03_1371.html,
# https://www.hiascend.com/document/detail/en/canncommercial/850/devaids/atctool/atlasatcparam_16_0067.html):
# - force_fp32 = cube_fp16in_fp32out: Cube ops "preferably take float16 input and produce float32 output";
#   vector ops whose original precision is float16/bfloat16 are forced to float32.
# - force_fp16: ops whose original precision is float16, bfloat16 or float32 are forced to float16 (Cube and vector).
# - allow_fp32_to_fp16: matrix ops in float32 are lowered to float16; vector ops keep float32.
# - allow_fp32_to_bf16: the same with bfloat16 (Atlas A2 only).
# - must_keep_origin_dtype: the original precision.
# "Lowered to float16" selects the float16 kernel, so the result is written in float16 too; only
# cube_fp16in_fp32out keeps a float32 result. The Cube accumulates in float32 in every mode (that is
# what makes fp16-in/fp32-out possible), so float16/bfloat16 matmuls are emulated with float32 sums.
_FP16_IN_FP32_OUT = _AscendMode(frozenset({_F32, _F16}), _F16, None, vector_upcast=True)
_ASCEND_MODES: dict[str, _AscendMode] = {
    "force_fp32": _FP16_IN_FP32_OUT,
    "cube_fp16in_fp32out": _FP16_IN_FP32_OUT,
    "force_fp16": _AscendMode(frozenset({_F32, _BF16}), _F16, _F16, vector_round=_F16),
    "allow_fp32_to_fp16": _AscendMode(frozenset({_F32}), _F16, _F16),
    "allow_fp32_to_bf16": _AscendMode(frozenset({_F32}), _BF16, _BF16),
    "must_keep_origin_dtype": _AscendMode(frozenset(), None, None),
}
ASCEND_PRECISION_MODES = tuple(_ASCEND_MODES)
# allow_mix_precision(_fp16/_bf16) lower ops by CANN's per-op lists (precision_reduce in
# aic-<soc>-ops-info.json, with "gray" ops following their predecessor), which are not published
# in a form the simulator could follow; they are refused rather than guessed.
_ASCEND_UNEMULATED = ("allow_mix_precision", "allow_mix_precision_fp16", "allow_mix_precision_bf16")

# Paddle's XPU FC compute types: paddle/phi/kernels/xpu/xpu_api_wrapper.h, enum XPUFCCalcType
# {FC_INT16, FC_INT32, FC_FLOAT, FC_INT32_WITH_LL, FC_TF32, FC_FLOAT16}; FCCalcType<T>() returns
# FC_INT16 for float and float16 unless an environment variable (XPU_PADDLE_FC_INT32,
# XPU_PADDLE_FC_LOCAL_INT16 -> FC_FLOAT, XPU_PADDLE_FC_FLOAT16, XPU_PADDLE_FC_TF32) overrides it.
# There is no int8 FC compute type (int8 FC exists only for models quantized ahead of time).
#  int16:   both operands quantized per tensor to int16 (emulated exactly); the products summed in
#           float32. XDNN's accumulator width is not published; float32 sums (FC_FLOAT's accumulator)
#           round by at most K * 2**-24 of the sum of |products|, far below the 2**-15 quantization
#           step every operand already carries, so the error a user sees is the quantization's.
#  int31:   FC_INT32 (fc_fusion<..., int32_t>; Paddle's quant_utils.cc calls float weights "int31").
#           31-bit quantization steps are finer than float32's 24-bit mantissa, so it is emulated
#           as plain float32 math.
#  float:   FC_FLOAT (fc_fusion<..., float>). Paddle selects it with XPU_PADDLE_FC_LOCAL_INT16,
#           i.e. XDNN quantizes per local block; the block size is not public, so it is emulated as
#           float32 math, which is at least as accurate as the chip.
#  float16: FC_FLOAT16: operands rounded to float16, float32 result.
KUNLUN_FC_PRECISIONS = ("int16", "int31", "float", "float16")
_FC_COMPUTE_DTYPE = {"int16": "int16", "int31": "int32", "float": "float32", "float16": "float16"}
_INT16_MAX = 32767.0

# Inputs that are host-side parameters (shapes, axes, scales), not data the chip computes on: they
# are neither rounded nor narrowed.
_PARAMETER_INPUTS: dict[str, tuple[int, ...]] = {
    "Reshape": (1,), "Expand": (1,), "Tile": (1,), "Slice": (1, 2, 3, 4), "Pad": (1, 3),
    "Squeeze": (1,), "Unsqueeze": (1,), "Split": (1,), "ConstantOfShape": (0,), "TopK": (1,),
    "OneHot": (1,), "CumSum": (1,), "Resize": (1, 2, 3), "Upsample": (1,),
}
# Ops whose float outputs copy input values: rounding their inputs is enough.
_VALUE_COPYING = DATA_MOVEMENT_OPS - {"Cast", "CastLike"}
# Ops whose output dtype is not their input's: they cannot be moved to float32 compute.
_TYPED_OUTPUT = frozenset({"Cast", "CastLike", "EyeLike", "RandomNormalLike", "RandomUniformLike", "Bernoulli", "Multinomial"})
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1
_MIN_OPSET = 13


@dataclass(frozen=True)
class Int32Check:
    """An int64 tensor the chip computes in int32, and the outputs that report whether it fits."""

    tensor: str
    node: str
    op_type: str
    flag: str
    """bool scalar output: True when the int64 value did not fit int32."""
    max_output: str
    min_output: str
    """int64 scalar outputs: the largest and smallest value of the tensor."""


@dataclass(frozen=True)
class EmulatedGraph:
    """The chip's numerics as a model onnxruntime's CPU provider runs."""

    model: onnx.ModelProto
    overflow_checks: tuple[tuple[str, str], ...]
    """(flag output name, tensor name) per int64 tensor narrowed to int32."""
    compute_dtypes: dict[str, str]
    """Node name -> the dtype the chip computes it in ("float16", "int16"...)."""
    chip_name: str = ""
    int32_checks: tuple[Int32Check, ...] = ()

    @property
    def added_outputs(self) -> tuple[str, ...]:
        """Outputs the emulation added to the caller's (overflow flags and extremes)."""
        return tuple(name for c in self.int32_checks for name in (c.flag, c.max_output, c.min_output))


@dataclass(frozen=True)
class _Plan:
    """How one float node is emulated: its float inputs rounded through in_round, its float
    outputs through out_round; upcast: float16/bfloat16 tensors computed in float32."""

    compute: str | None
    in_round: DType | None = None
    out_round: DType | None = None
    upcast: bool = False
    fc: str | None = None

    @property
    def rewrites(self) -> bool:
        return self.in_round is not None or self.out_round is not None or self.upcast or self.fc == "int16"


def _choose(value: str | None, default: str, valid: tuple[str, ...], what: str, unemulated: tuple[str, ...] = ()) -> str:
    chosen = default if value is None else value
    if chosen in unemulated:
        raise InvalidArgumentError(
            f"{what} '{chosen}' is not emulated: CANN lowers ops in that mode by per-op lists the simulator "
            f"does not have; choose one of {', '.join(valid)}"
        )
    if chosen not in valid:
        raise InvalidArgumentError(f"unknown {what} '{chosen}'; valid: {', '.join(valid)}")
    return chosen


def _modes(chip: ChipSpec, precision_mode: str | None, fc_precision: str | None) -> tuple[_AscendMode | None, str | None]:
    """The chip's Ascend mode and Kunlun FC precision; a knob for the other chip is validated but unused."""
    ascend_default = chip.default_precision_mode if chip.kind == "ascend" else "must_keep_origin_dtype"
    kunlun_default = chip.default_precision_mode if chip.kind == "kunlun" else "int16"
    mode_name = _choose(precision_mode, ascend_default, ASCEND_PRECISION_MODES, "Ascend precision_mode", _ASCEND_UNEMULATED)
    fc = _choose(fc_precision, kunlun_default, KUNLUN_FC_PRECISIONS, "Kunlun fc_precision")
    if chip.kind == "ascend":
        mode = _ASCEND_MODES[mode_name]
        lowered = {mode.cube_in, mode.cube_out, mode.vector_round} - {None}
        missing = [d for d in lowered if d not in chip.dtypes]
        if missing:
            raise InvalidArgumentError(
                f"precision_mode '{mode_name}' computes in {missing[0]}, which {chip.name} does not have; "
                f"choose another of {', '.join(ASCEND_PRECISION_MODES)}"
            )
        return mode, None
    if chip.kind == "kunlun":
        return None, fc
    return None, None


def _plan(op_type: str, domain: str, dtypes: list[DType | None], mode: _AscendMode | None, fc: str | None) -> _Plan:
    """The emulation plan of one node from its op and the dtypes of its inputs then outputs."""
    floats = [d for d in dtypes if d in _FLOATS]
    known = [d for d in dtypes if d is not None]
    if not floats:
        return _Plan(known[0].value if known else None)
    own = floats[0]
    if domain not in ("", "ai.onnx"):
        if not _is_kernel_op(domain, op_type):
            return _Plan(own.value)
        if op_type in _INTEGER_KERNELS:  # integer operands; the float scales are parameters
            return _Plan(known[0].value)
        # hal's kernels (hal.ops) follow the chip's rules for vector ops, like any ONNX node
    if op_type in ("Shape", "Size"):  # read the shape only
        return _Plan(own.value)
    if fc is not None and op_type in FC_OPS:
        if own == _BF16:  # FCCalcType<bfloat16> is FC_TF32 whatever the setting: not emulated
            return _Plan(own.value)
        if fc == "int16":
            return _Plan("int16", fc="int16")
        if fc == "float16":
            return _Plan("float16", in_round=_F16, fc=fc)
        return _Plan(_FC_COMPUTE_DTYPE[fc] if own == _F32 else own.value, fc=fc)
    if mode is None:
        return _Plan(own.value)
    if op_type in CUBE_OPS:
        lowered = own in mode.cube_from
        in_round = mode.cube_in if lowered else None
        return _Plan((in_round or own).value, in_round, mode.cube_out if lowered else None, upcast=own != _F32)
    can_upcast = op_type not in _VALUE_COPYING and op_type not in _TYPED_OUTPUT
    if mode.vector_round is not None:
        copies = op_type in _VALUE_COPYING
        return _Plan(mode.vector_round.value, mode.vector_round, None if copies else mode.vector_round,
                     upcast=can_upcast and any(d != _F32 for d in floats))
    if mode.vector_upcast and can_upcast and any(d != _F32 for d in floats):
        return _Plan("float32", upcast=True)
    return _Plan(own.value)


_INTEGER_KERNELS = frozenset({"QuantizedMatMul"})
"""Kernel ops (hal.ops) that compute on their integer inputs."""


def _is_kernel_op(domain: str, op_type: str) -> bool:
    from ..ops.schemas import kernel_supports

    return kernel_supports(domain, op_type, "", None) is not None


@dataclass(frozen=True)
class KernelPrecision:
    """How a chip rounds one direct kernel call (hal.ops on a simulated device): the same plan
    emulate() applies to that node in a graph, applied to host arrays."""

    plan: _Plan

    @property
    def compute(self) -> str | None:
        return self.plan.compute

    def inputs(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        """Float inputs rounded through the chip's input dtype, in the dtype the kernel computes in."""
        out = []
        for array in arrays:
            own = DType(str(array.dtype)) if str(array.dtype) in _FLOAT_NAMES else None
            if own is None or not self.plan.rewrites:
                out.append(array)
                continue
            if self.plan.in_round not in (None, own):
                array = array.astype(self.plan.in_round.numpy)
            out.append(np.ascontiguousarray(array.astype((_F32 if self.plan.upcast else own).numpy, copy=False)))
        return out

    def outputs(self, arrays: list[np.ndarray], declared: list[DType]) -> list[np.ndarray]:
        """Float outputs rounded through the chip's output dtype into their declared dtype."""
        out = []
        for array, want in zip(arrays, declared):
            if want in _FLOATS and self.plan.rewrites:
                if self.plan.out_round is not None:
                    array = array.astype(self.plan.out_round.numpy)
                array = array.astype(want.numpy, copy=False)
            out.append(array)
        return out


_FLOAT_NAMES = frozenset(d.value for d in _FLOATS)


def kernel_precision(node: NodeInfo, chip: ChipSpec, options: CompileOptions | None = None) -> KernelPrecision:
    """The rounding `chip` applies to a kernel call described by `node` (inputs then outputs)."""
    mode, fc = _modes(chip, getattr(options, "precision_mode", None), getattr(options, "fc_precision", None))
    dtypes = [t.dtype if t is not None else None for t in (*node.inputs, *node.outputs)]
    return KernelPrecision(_plan(node.op_type, node.domain, dtypes, mode, fc))


def compute_dtype_of(node: NodeInfo, chip: ChipSpec, options: CompileOptions | None = None) -> str | None:
    """The dtype `chip` computes `node` in under the session's options (the same rule as emulate)."""
    mode, fc = _modes(chip, getattr(options, "precision_mode", None), getattr(options, "fc_precision", None))
    dtypes = [t.dtype if t is not None else None for t in (*node.inputs, *node.outputs)]
    return _plan(node.op_type, node.domain, dtypes, mode, fc).compute


def emulate(
    model: onnx.ModelProto,
    chip: ChipSpec,
    *,
    precision_mode: str | None = None,
    fc_precision: str | None = None,
    narrow_int64: Collection[str] = (),
) -> EmulatedGraph:
    """The model rewritten to compute what `chip` computes; `model` (standalone and shape-inferred)
    is not changed. precision_mode applies to Ascend (None: the chip's default_precision_mode),
    fc_precision to Kunlun (None: the chip's default, "int16"); narrow_int64 names nodes whose int64
    inputs and outputs the chip computes in int32. Nodes without a name are named "<op>_<index>"."""
    mode, fc = _modes(chip, precision_mode, fc_precision)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), _MIN_OPSET)
    if opset < _MIN_OPSET:  # the rewrites emit opset-13 forms (Cast-13, ReduceMax with axes...)
        from ..graph.opsets import upgrade_opset

        model = onnx.shape_inference.infer_shapes(upgrade_opset(model, _MIN_OPSET))
    rewriter = _Rewriter(model, chip)
    missing = sorted(set(narrow_int64) - {n.name for n in rewriter.source_nodes})
    if missing:
        raise InvalidArgumentError(f"narrow_int64 names nodes the model does not have: {', '.join(missing)}")
    compute_dtypes: dict[str, str] = {}
    for node in rewriter.source_nodes:
        dtypes = [rewriter.dtype(t) for t in (*node.input, *node.output)]
        plan = _plan(node.op_type, node.domain, dtypes, mode, fc)
        narrowed = node.name in narrow_int64
        rewriter.rewrite(node, plan, narrowed)
        compute = "int32" if narrowed and DType.INT64 in dtypes and plan.compute == "int64" else plan.compute
        if compute is not None:
            compute_dtypes[node.name] = compute
    out = rewriter.finish()
    checks = tuple(rewriter.checks)
    return EmulatedGraph(out, tuple((c.flag, c.tensor) for c in checks), compute_dtypes, chip.name, checks)


def check_overflow(emulated: EmulatedGraph, outputs: Mapping[str, np.ndarray], chip_name: str) -> None:
    """Raises DeviceError when an int64 tensor narrowed to int32 held a value int32 cannot hold;
    `outputs` are the emulated model's outputs, flags included."""
    details = {c.flag: c for c in emulated.int32_checks}
    for flag, tensor in emulated.overflow_checks:
        if flag not in outputs:
            raise InvalidArgumentError(
                f"{chip_name}: the outputs lack overflow flag '{flag}' for tensor '{tensor}'; "
                "run the emulated model with all its outputs"
            )
        if not bool(np.asarray(outputs[flag])):
            continue
        check = details.get(flag)
        where = f"{check.op_type} (node '{check.node}')" if check else "it"
        value = ""
        if check and check.max_output in outputs and check.min_output in outputs:
            hi, lo = int(np.asarray(outputs[check.max_output])), int(np.asarray(outputs[check.min_output]))
            value = f" holds {hi if hi > _INT32_MAX else lo}, which"
        chip = emulated.chip_name or "the chip"
        raise DeviceError(
            f"{chip_name}: tensor '{tensor}'{value} does not fit int32: {chip} computes {where} in int32, "
            f"so the value would wrap around. Keep the values within [{_INT32_MIN}, {_INT32_MAX}], "
            "or run that node on a device that computes int64 (for example cpu)."
        )


class _Rewriter:
    """Builds the emulated graph node by node, in the original topological order."""

    def __init__(self, model: onnx.ModelProto, chip: ChipSpec):
        self.model = onnx.ModelProto()
        self.model.CopyFrom(model)
        self.chip = chip
        self.graph = self.model.graph
        self.opset = next((o.version for o in self.model.opset_import if o.domain in ("", "ai.onnx")), 0)
        self.types: dict[str, onnx.TypeProto] = {}
        for info in (*self.graph.input, *self.graph.value_info, *self.graph.output):
            if info.type.HasField("tensor_type") and info.type.tensor_type.elem_type:
                self.types[info.name] = info.type
        for init in self.graph.initializer:
            self.types.setdefault(init.name, helper.make_tensor_type_proto(init.data_type, list(init.dims)))
        self.taken: set[str] = set(self.types)
        self.node_names: set[str] = set()
        _collect_names(self.graph, self.taken, self.node_names)
        self.source_nodes: list[onnx.NodeProto] = []
        """Copies of the model's nodes, each with a name of its own, that rewrite() edits."""
        named: set[str] = set()
        for index, original in enumerate(self.graph.node):
            node = onnx.NodeProto()
            node.CopyFrom(original)
            if not node.name or node.name in named:
                node.name = self.fresh_node(f"{node.name or node.op_type}_{index}")
            named.add(node.name)
            self.source_nodes.append(node)
        self.nodes: list[onnx.NodeProto] = []
        self.casts: dict[tuple[str, tuple[DType, ...]], str] = {}
        self.quantized: dict[str, tuple[str, str]] = {}
        self.consts: dict[tuple[int, float], str] = {}
        self.checked: set[str] = set()
        self.checks: list[Int32Check] = []

    # -- names, types, constants -------------------------------------------------------------
    def fresh(self, base: str) -> str:
        return _unused_name(base, self.taken)

    def fresh_node(self, base: str) -> str:
        return _unused_name(base, self.node_names)

    def dtype(self, tensor: str) -> DType | None:
        found = self.types.get(tensor)
        if not tensor or found is None:
            return None
        try:
            return DType.from_onnx(found.tensor_type.elem_type)
        except UnsupportedDTypeError:  # an ONNX type hal has no DType for (float8, string): never rewritten
            return None

    def declare(self, tensor: str, dtype: DType, like: str | None = None, shape: list[int] | None = None) -> None:
        """value_info for a new tensor: its dtype, and the shape of `like` (or `shape`) when known."""
        info = onnx.ValueInfoProto(name=tensor)
        info.type.tensor_type.elem_type = dtype.onnx
        source = self.types.get(like) if like else None
        if source is not None and source.tensor_type.HasField("shape"):
            info.type.tensor_type.shape.CopyFrom(source.tensor_type.shape)
        elif shape is not None:
            info.type.tensor_type.shape.SetInParent()
            for size in shape:
                info.type.tensor_type.shape.dim.add().dim_value = size
        self.graph.value_info.append(info)
        self.types[tensor] = info.type

    def emit(self, op: str, inputs: list[str], output: str, owner: onnx.NodeProto, purpose: str, dtype: DType,
             like: str | None = None, shape: list[int] | None = None, **attrs) -> str:
        if self.opset < _MIN_OPSET:
            raise InvalidModelError(
                f"emulating {self.chip.name} needs ONNX opset >= {_MIN_OPSET}, the model imports {self.opset}; "
                "upgrade it with onnx.version_converter.convert_version"
            )
        self.nodes.append(helper.make_node(op, inputs, [output], name=self.fresh_node(f"{owner.name}/hal_{purpose}"), **attrs))
        if output not in self.types:
            self.declare(output, dtype, like, shape)
        return output

    def const(self, value: float | int, dtype: DType) -> str:
        key = (dtype.onnx, value)
        if key not in self.consts:
            name = self.fresh(f"hal_const_{dtype.value}_{value}")
            self.graph.initializer.append(numpy_helper.from_array(np.array(value, dtype.numpy), name))
            self.types[name] = helper.make_tensor_type_proto(dtype.onnx, [])
            self.consts[key] = name
        return self.consts[key]

    def cast_chain(self, tensor: str, chain: list[DType], owner: onnx.NodeProto) -> str:
        """`tensor` cast through each dtype of chain in turn (shared by every consumer)."""
        current = tensor
        for i, step in enumerate(chain):
            prefix = (tensor, tuple(chain[: i + 1]))
            if prefix not in self.casts:
                self.casts[prefix] = self.emit("Cast", [current], self.fresh(f"{tensor}__{step.value}"), owner,
                                               f"to_{step.value}", step, like=tensor, to=step.onnx)
            current = self.casts[prefix]
        return current

    def cast_into(self, source: str, chain: list[DType], target: str, owner: onnx.NodeProto) -> None:
        """Writes `source` cast through chain into the existing tensor name `target`."""
        current = source
        for i, step in enumerate(chain):
            out = target if i == len(chain) - 1 else self.fresh(f"{target}__{step.value}")
            current = self.emit("Cast", [current], out, owner, f"to_{step.value}", step, like=source, to=step.onnx)

    # -- rewrites ------------------------------------------------------------------------------
    def rewrite(self, node: onnx.NodeProto, plan: _Plan, narrowed: bool) -> None:
        """Appends `node`, edited to follow the plan, with the Casts and checks around it."""
        after: list[tuple[str, list[DType], str, bool]] = []  # (raw output, casts, tensor, check int32)
        skip = _PARAMETER_INPUTS.get(node.op_type, ())
        if node.op_type.startswith("Reduce"):
            skip = (1,)  # axes, as an input since opset 13 (ReduceSum) / 18 (the others)
        if plan.fc == "int16":
            self._fc_int16(node)
            return
        if narrowed:
            for i, tensor in enumerate(node.input):
                if i not in skip and self.dtype(tensor) == DType.INT64:
                    self._check_int32(tensor, tensor, node)
                    node.input[i] = self.cast_chain(tensor, [DType.INT32, DType.INT64], node)
            for j, tensor in enumerate(node.output):
                if self.dtype(tensor) == DType.INT64:
                    raw = self.fresh(f"{tensor}__int64")
                    self.declare(raw, DType.INT64, like=tensor)
                    node.output[j] = raw
                    after.append((raw, [DType.INT32, DType.INT64], tensor, True))
        if plan.rewrites:
            for i, tensor in enumerate(node.input):
                dtype = self.dtype(tensor)
                if i in skip or dtype not in _FLOATS:
                    continue
                compute = _F32 if plan.upcast else dtype
                chain = [plan.in_round] if plan.in_round not in (None, dtype) else []
                if (chain[-1] if chain else dtype) != compute:
                    chain.append(compute)
                if chain:
                    node.input[i] = self.cast_chain(tensor, chain, node)
            for j, tensor in enumerate(node.output):
                dtype = self.dtype(tensor)
                if dtype not in _FLOATS:
                    continue
                produced = _F32 if plan.upcast else dtype
                chain = [plan.out_round] if plan.out_round not in (None, produced) else []
                if (chain[-1] if chain else produced) != dtype:
                    chain.append(dtype)
                if chain:
                    raw = self.fresh(f"{tensor}__{produced.value}")
                    self.declare(raw, produced, like=tensor)
                    node.output[j] = raw
                    after.append((raw, chain, tensor, False))
        self.nodes.append(node)
        for raw, chain, tensor, check in after:
            if check:
                self._check_int32(raw, tensor, node)
            self.cast_into(raw, chain, tensor, node)

    def _check_int32(self, tensor: str, reported: str, node: onnx.NodeProto) -> None:
        """Outputs whether the int64 value of `tensor` fits int32 (min/max comparisons: no Abs,
        which overflows on INT64_MIN; an empty tensor reduces to the extremes and passes)."""
        if reported in self.checked:
            return
        self.checked.add(reported)
        i64 = DType.INT64
        hi = self.emit("ReduceMax", [tensor], self.fresh(f"{reported}__max"), node, "int32_max", i64, shape=[], keepdims=0)
        lo = self.emit("ReduceMin", [tensor], self.fresh(f"{reported}__min"), node, "int32_min", i64, shape=[], keepdims=0)
        above = self.emit("Greater", [hi, self.const(_INT32_MAX, i64)], self.fresh(f"{reported}__above_int32"), node,
                          "above_int32", DType.BOOL, shape=[])
        below = self.emit("Less", [lo, self.const(_INT32_MIN, i64)], self.fresh(f"{reported}__below_int32"), node,
                          "below_int32", DType.BOOL, shape=[])
        flag = self.emit("Or", [above, below], self.fresh(f"{reported}__exceeds_int32"), node, "exceeds_int32",
                         DType.BOOL, shape=[])
        for name, dtype in ((flag, DType.BOOL), (hi, i64), (lo, i64)):
            self.graph.output.append(helper.make_tensor_value_info(name, dtype.onnx, []))
        self.checks.append(Int32Check(reported, node.name, node.op_type, flag, hi, lo))

    def _quantize_int16(self, tensor: str, owner: onnx.NodeProto) -> tuple[str, str]:
        """(float32 tensor of int16 levels, float32 scale) as Paddle's XPU int16 quantization:
        max = max|x| per tensor; q = RoundHalfToEven(x * (32767 / max)) clipped to +-32767, in
        float32 arithmetic (paddle/fluid/framework/ir/xpu/quant_utils.cc: FindMaxAbs, Fp32ToIntx,
        RoundHalfToEven). ONNX Round rounds half to even. A zero tensor quantizes to zeros with
        scale 0 (Paddle's 32767 / 0 = inf branch dequantizes to 0 as well)."""
        if tensor in self.quantized:
            return self.quantized[tensor]
        f32 = _F32
        x = tensor if self.dtype(tensor) == f32 else self.cast_chain(tensor, [f32], owner)
        absolute = self.emit("Abs", [x], self.fresh(f"{tensor}__abs"), owner, "abs", f32, like=tensor)
        peak = self.emit("ReduceMax", [absolute], self.fresh(f"{tensor}__absmax"), owner, "absmax", f32, shape=[], keepdims=0)
        positive = self.emit("Greater", [peak, self.const(0.0, f32)], self.fresh(f"{tensor}__nonzero"), owner, "nonzero",
                             DType.BOOL, shape=[])
        divisor = self.emit("Where", [positive, peak, self.const(1.0, f32)], self.fresh(f"{tensor}__divisor"), owner,
                            "divisor", f32, shape=[])
        factor = self.emit("Div", [self.const(_INT16_MAX, f32), divisor], self.fresh(f"{tensor}__q_factor"), owner,
                           "q_factor", f32, shape=[])
        scaled = self.emit("Mul", [x, factor], self.fresh(f"{tensor}__scaled"), owner, "scaled", f32, like=tensor)
        rounded = self.emit("Round", [scaled], self.fresh(f"{tensor}__rounded"), owner, "round", f32, like=tensor)
        clipped = self.emit("Clip", [rounded, self.const(-_INT16_MAX, f32), self.const(_INT16_MAX, f32)],
                            self.fresh(f"{tensor}__int16"), owner, "clip", f32, like=tensor)
        levels = clipped  # whole numbers within +-32767: exact in float32
        scale = self.emit("Div", [peak, self.const(_INT16_MAX, f32)], self.fresh(f"{tensor}__scale"), owner, "scale",
                          f32, shape=[])
        self.quantized[tensor] = levels, scale
        return levels, scale

    def _fc_int16(self, node: onnx.NodeProto) -> None:
        """MatMul/Gemm on int16 levels, dequantized in float32:
        y = (qa @ qb) * (scale_a * scale_b) [* alpha] [+ beta * C].
        The levels are exact; their products are summed by a float32 GEMM (see the int16 row of
        KUNLUN_FC_PRECISIONS above). An exact integer sum needs float64 GEMMs, which made a
        simulated BERT-base 2.9x slower than onnxruntime on the host instead of about the same
        cost as the float32 model."""
        f32 = _F32
        out = node.output[0]
        out_dtype = self.dtype(out) or f32
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        gemm = node.op_type == "Gemm"
        alpha, beta = float(attrs.get("alpha", 1.0)), float(attrs.get("beta", 1.0))
        bias = node.input[2] if gemm and len(node.input) > 2 and node.input[2] else None
        scale_alpha = gemm and alpha != 1.0
        result = out if out_dtype == f32 else self.fresh(f"{out}__float32")

        def target(step: str, last: bool) -> str:
            return result if last else self.fresh(f"{out}__{step}")

        (qa, sa), (qb, sb) = (self._quantize_int16(t, node) for t in node.input[:2])
        summed = self.fresh(f"{out}__level_products")
        if gemm:  # the transposes stay GEMM flags: no transposed copy of either operand
            self.nodes.append(helper.make_node("Gemm", [qa, qb], [summed], name=node.name,
                                               transA=int(attrs.get("transA", 0)), transB=int(attrs.get("transB", 0))))
        else:
            self.nodes.append(helper.make_node("MatMul", [qa, qb], [summed], name=node.name))
        self.declare(summed, f32, like=out)
        scale = self.emit("Mul", [sa, sb], self.fresh(f"{out}__scale"), node, "scale", f32, shape=[])
        y = self.emit("Mul", [summed, scale], target("dequantized", not (scale_alpha or bias)), node, "dequantize", f32, like=out)
        if scale_alpha:
            y = self.emit("Mul", [y, self.const(alpha, f32)], target("alpha", not bias), node, "alpha", f32, like=out)
        if bias:
            c = bias if self.dtype(bias) == f32 else self.cast_chain(bias, [f32], node)
            if beta != 1.0:
                c = self.emit("Mul", [c, self.const(beta, f32)], self.fresh(f"{bias}__beta"), node, "beta", f32, like=bias)
            y = self.emit("Add", [y, c], result, node, "bias", f32, like=out)
        if result != out:
            self.cast_into(result, [out_dtype], out, node)

    def finish(self) -> onnx.ModelProto:
        del self.graph.node[:]
        self.graph.node.extend(self.nodes)
        return self.model


def _unused_name(base: str, taken: set[str]) -> str:
    """`base`, or `base_1`, `base_2`... : the first not in `taken`, which then holds it."""
    name, n = base, 1
    while name in taken:
        name, n = f"{base}_{n}", n + 1
    taken.add(name)
    return name


def _collect_names(graph: onnx.GraphProto, tensors: set[str], nodes: set[str]) -> None:
    """Every tensor and node name of the graph and its subgraphs (names are global in ONNX)."""
    tensors.update(i.name for i in (*graph.input, *graph.output, *graph.value_info, *graph.initializer))
    for node in graph.node:
        tensors.update((*node.input, *node.output))
        if node.name:
            nodes.add(node.name)
        for attribute in node.attribute:
            for sub in (*([attribute.g] if attribute.HasField("g") else []), *attribute.graphs):
                _collect_names(sub, tensors, nodes)
