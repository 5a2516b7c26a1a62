"""The torch executor's op table. Each family module (elementwise, activations, linalg, nn,
reductions, shape, generators) registers its ONNX ops here; the executor reads the table both to
answer capability and to compile, so what the table holds is exactly what runs.

An op is a builder, called once per node at compile time with what is known then (Context, the
node's attributes, its number of outputs), that returns the function a run calls on the node's
inputs; plus what it accepts (dtypes, opset, attributes), which capability checks without torch.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ...dtypes import DType
from ...capability import NodeInfo

__all__ = [
    "FLOAT", "INT", "NUMERIC", "DATA", "LOGICAL", "TorchOp", "OPS", "register", "torch_function",
    "Context", "as_ints", "node_attr",
]

FLOAT = frozenset({DType.FLOAT16, DType.BFLOAT16, DType.FLOAT32, DType.FLOAT64})
INT = frozenset({DType.INT8, DType.UINT8, DType.INT16, DType.INT32, DType.INT64})
NUMERIC = FLOAT | INT
DATA = NUMERIC | {DType.BOOL}
LOGICAL = frozenset({DType.BOOL})


@dataclass(frozen=True)
class TorchOp:
    build: Callable[..., Callable]
    """(Context, attributes, number of outputs) -> the function a run calls on the node's inputs."""
    dtypes: frozenset[DType]
    """The dtypes of the node's data tensors (index and shape operands are checked apart)."""
    min_opset: int = 1
    check: Callable[[NodeInfo], str | None] | None = None
    """Returns why an attribute combination is not implemented, or None."""
    data_inputs: tuple[int, ...] | None = None
    """Which inputs carry data of `dtypes` (None: all); the others are indices or shapes."""
    typed_outputs: bool = True
    """Whether the outputs carry data of `dtypes`; False where they are indices, shapes, bools or
    a cast's target type, which capability then leaves unchecked."""


OPS: dict[str, TorchOp] = {}
"""ONNX op type (default domain) -> its implementation."""


def register(names: str, dtypes: frozenset[DType], **kwargs: Any) -> Callable[[Callable], Callable]:
    """Decorates a builder as the implementation of the ops `names` (space-separated)."""
    def add(build: Callable) -> Callable:
        for name in names.split():
            OPS[name] = TorchOp(build, dtypes, **kwargs)
        return build
    return add


def torch_function(name: str) -> Callable:
    """The builder of an op that is exactly one torch function, torch.<name>(*inputs)."""
    def build(ctx: Context, attrs: dict, n: int) -> Callable:
        return getattr(ctx.torch, name)
    return build


class Context:
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

    def axes(self, attrs: dict, input_index: int) -> Callable[[Any], list[int] | None]:
        """Axes from the attribute (old opsets) or an input (new ones), resolved once when constant."""
        if "axes" in attrs:
            fixed = list(attrs["axes"])
            return lambda _: fixed
        known = self.ints(input_index)
        if known is not None or input_index >= len(self.known):
            return lambda _: known
        return lambda t: None if t is None else as_ints(t)


def as_ints(t: Any) -> list[int]:
    """A tensor read at run time (a shape, axes, pads) as a list of ints."""
    return [int(v) for v in t.reshape(-1).tolist()]


def node_attr(node: NodeInfo, name: str, default: Any = None) -> Any:
    """A node's attribute for a capability check, strings decoded."""
    value = node.attributes.get(name, default)
    return value.decode() if isinstance(value, bytes) else value
