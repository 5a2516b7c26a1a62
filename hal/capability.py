"""What a backend is asked about each node, and how it answers.

NodeInfo carries everything a chip's op library keys on: op type, domain, the opset the model
imports for that domain, input and output dtypes and shapes, attributes. Support is yes, or no
with a reason a person can read ("Kunlun P800 has no Einsum").
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .dtypes import DType

if TYPE_CHECKING:
    import onnx

__all__ = ["TensorInfo", "NodeInfo", "Support", "CompileOptions"]

Dim = int | str | None
"""A dimension: a size, a symbolic name ("batch"), or unknown."""


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dtype: DType | None
    shape: tuple[Dim, ...] | None
    """None when even the rank is unknown."""
    kind: str = "tensor"
    """"tensor", or the ONNX type of a value that is not one, as onnxruntime writes it:
    "seq(tensor(float))", "optional(tensor(int64))", "map(int64,tensor(float))". Such values are
    Python objects (lists, None, dicts) that only the host holds; dtype and shape are None then."""

    @property
    def is_tensor(self) -> bool:
        return self.kind == "tensor"

    @property
    def static_shape(self) -> tuple[int, ...] | None:
        """The shape when every dimension is a known size."""
        if self.shape is None or not all(isinstance(d, int) for d in self.shape):
            return None
        return self.shape  # type: ignore[return-value]

    def describe(self) -> str:
        """"float32[1,64]", "float32[batch,64]" ("?": a size or rank not known), or the kind of
        a value that is not a tensor."""
        if not self.is_tensor:
            return self.kind
        dims = "?" if self.shape is None else ",".join("?" if d is None else str(d) for d in self.shape)
        return f"{self.dtype if self.dtype is not None else '?'}[{dims}]"


@dataclass(frozen=True)
class NodeInfo:
    name: str
    op_type: str
    domain: str
    """"" for the default ONNX domain (ai.onnx)."""
    opset: int
    """The version the model imports for this node's domain."""
    inputs: tuple[TensorInfo | None, ...]
    """None where an optional input is omitted."""
    outputs: tuple[TensorInfo, ...]
    attributes: Mapping[str, Any] = field(default_factory=dict)
    proto: onnx.NodeProto | None = field(default=None, compare=False, repr=False)

    def type_signature(self) -> tuple:
        """What a capability answer from an op table or kernel registry depends on: the op, its
        opset and the dtype at each input and output position (names, shapes and attributes
        aside). Graphs repeat signatures, so answers are memoized on it."""
        return (
            self.domain, self.op_type, self.opset,
            tuple(None if t is None else t.dtype for t in self.inputs),
            tuple(None if t is None else t.dtype for t in self.outputs),
        )

    @property
    def dtypes(self) -> set[DType]:
        """Every known dtype among inputs and outputs."""
        return {t.dtype for t in (*self.inputs, *self.outputs) if t is not None and t.dtype is not None}

    @property
    def qualified_op(self) -> str:
        return f"{self.domain}::{self.op_type}" if self.domain not in ("", "ai.onnx") else self.op_type

    @property
    def label(self) -> str:
        """"MatMul (proj)": the op and the node's name, as a profile names the node's slice."""
        return f"{self.qualified_op} ({self.name})" if self.name else self.qualified_op


@dataclass(frozen=True)
class Support:
    """A backend's answer for one node. `note` qualifies a yes ("int64 narrowed to int32",
    "onnx reference implementation: slow")."""

    supported: bool
    reason: str = ""
    note: str = ""
    slow: bool = False
    needs_opset: int | None = None
    """With a no: the ai.onnx opset from which the backend runs this op (an older model's node
    would run after conversion with onnx's version converter, which the session tries)."""
    source: str = ""
    """Where the answer comes from (an op table's row and its citation): the plan's JSON keeps it
    beside the short reason, plan.explain() leaves it out."""

    @classmethod
    def yes(cls, note: str = "", *, slow: bool = False, source: str = "") -> Support:
        return cls(True, "", note, slow, source=source)

    @classmethod
    def no(cls, reason: str, *, needs_opset: int | None = None, source: str = "") -> Support:
        return cls(False, reason, needs_opset=needs_opset, source=source)

    def __bool__(self) -> bool:
        return self.supported


@dataclass(frozen=True)
class CompileOptions:
    """Session-wide choices a backend compiles with; each backend uses those that apply to it.

    precision_mode: Ascend's CANN precision_mode (None: the chip's documented default).
    fc_precision: Kunlun's fully connected compute type ("int16" default, as Paddle's XPU backend).
    intra_op_threads: host threads for CPU work (None: onnxruntime's default).
    intra_op_spinning: whether onnxruntime's host thread pools spin-wait for work after a run.
        Spinning saves microseconds for one session; a session of several partitions holds one
        pool per partition, and their spinning workers would take the cores the next partition
        needs, so sessions turn it off there.
    """

    precision_mode: str | None = None
    fc_precision: str | None = None
    intra_op_threads: int | None = None
    intra_op_spinning: bool = True
