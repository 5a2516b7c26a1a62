"""Graph fusions a session applies when a listed chip needs them.

Exporters write GELU as five ONNX nodes around Erf (PyTorch's and Paddle2ONNX's exports of BERT
and its kin). A chip whose op library runs GELU as one kernel but has no Erf (Kunlun's XPU kernel
lists have gelu and no erf) would otherwise leave every layer's Erf on the host and cut the model
into dozens of partitions with a round trip each. Vendors' inference stacks fuse the pattern
before placement for that reason (onnxruntime's GeluFusion, Paddle's gelu fuse pass); so does hal,
into `com.hal::FusedGelu`, which every backend has a kernel for (hal.ops), and only when a listed
device lacks Erf: a CPU-only session keeps the model as written (onnxruntime fuses it itself).
"""
from __future__ import annotations

import math

import onnx
from onnx import helper, numpy_helper

from .extract import with_nodes

__all__ = ["fuse_erf_gelu"]

_DEFAULT = ("", "ai.onnx")


class _Graph:
    """Producers, consumers and constant values of a graph's main values."""

    def __init__(self, graph: onnx.GraphProto):
        self.producer = {out: node for node in graph.node for out in node.output}
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        for node in graph.node:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)
        self.outputs = {o.name for o in graph.output}
        self.initializers = {t.name: t for t in graph.initializer}

    def scalar(self, name: str) -> float | None:
        """The value of a one-element constant (an initializer or a Constant node's value)."""
        tensor = self.initializers.get(name)
        if tensor is None:
            node = self.producer.get(name)
            if node is None or node.op_type != "Constant" or node.domain not in _DEFAULT:
                return None
            tensor = next((a.t for a in node.attribute if a.name == "value"), None)
            if tensor is None:
                return None
        array = numpy_helper.to_array(tensor)
        return float(array.reshape(-1)[0]) if array.size == 1 else None

    def only_reader(self, name: str) -> onnx.NodeProto | None:
        """The one node that reads `name`, when nothing else does (the graph's outputs included)."""
        readers = self.consumers.get(name, [])
        return readers[0] if len(readers) == 1 and name not in self.outputs else None


def _is(node: onnx.NodeProto | None, op: str) -> bool:
    return node is not None and node.op_type == op and node.domain in _DEFAULT


def _other(node: onnx.NodeProto, name: str) -> str:
    """The input of a binary node that is not `name`."""
    return node.input[1] if node.input[0] == name else node.input[0]


def _near(value: float | None, target: float) -> bool:
    return value is not None and math.isclose(value, target, rel_tol=1e-3)


def _match(g: _Graph, erf: onnx.NodeProto) -> tuple[str, list[onnx.NodeProto], str] | None:
    """(x, the pattern's nodes, y) for 0.5 * x * (1 + erf(x / sqrt(2))) in either order of the
    multiplications, x / sqrt(2) written as a Div or a Mul by 1/sqrt(2)."""
    scale = g.producer.get(erf.input[0])
    if _is(scale, "Div") and _near(g.scalar(scale.input[1]), math.sqrt(2.0)):
        x = scale.input[0]
    elif _is(scale, "Mul") and _near(g.scalar(scale.input[1]), 1 / math.sqrt(2.0)):
        x = scale.input[0]
    elif _is(scale, "Mul") and _near(g.scalar(scale.input[0]), 1 / math.sqrt(2.0)):
        x = scale.input[1]
    else:
        return None
    if g.only_reader(scale.output[0]) is not erf:
        return None
    plus_one = g.only_reader(erf.output[0])
    if not _is(plus_one, "Add") or not _near(g.scalar(_other(plus_one, erf.output[0])), 1.0):
        return None
    first = g.only_reader(plus_one.output[0])
    if not _is(first, "Mul"):
        return None
    partner = _other(first, plus_one.output[0])
    if partner == x:  # (x * (1 + erf)) * 0.5
        last = g.only_reader(first.output[0])
        if not _is(last, "Mul") or not _near(g.scalar(_other(last, first.output[0])), 0.5):
            return None
        return x, [scale, erf, plus_one, first, last], last.output[0]
    half = g.producer.get(partner)  # (x * 0.5) * (1 + erf)
    if _is(half, "Mul") and x in half.input and _near(g.scalar(_other(half, x)), 0.5) and g.only_reader(partner) is first:
        return x, [scale, erf, plus_one, half, first], first.output[0]
    return None


def fuse_erf_gelu(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """A copy of `model` whose erf-GELU patterns are single com.hal::FusedGelu nodes, and how
    many it fused (0: the model itself, unchanged)."""
    g = _Graph(model.graph)
    fused: list[tuple[str, list[onnx.NodeProto], str]] = []
    taken: set[int] = set()
    for node in model.graph.node:
        if _is(node, "Erf"):
            found = _match(g, node)
            if found is not None and not any(id(n) in taken for n in found[1]):
                fused.append(found)
                taken.update(id(n) for n in found[1])
    if not fused:
        return model, 0
    replacement = {id(nodes[-1]): (x, nodes, y) for x, nodes, y in fused}
    kept = []
    for node in model.graph.node:
        if id(node) in replacement:
            x, nodes, y = replacement[id(node)]
            kept.append(helper.make_node(
                "FusedGelu", [x], [y], name=f"{nodes[1].name or y}/FusedGelu", domain="com.hal", approximate="none"))
        elif id(node) not in taken:
            kept.append(node)
    result = with_nodes(model, kept, gone=(n.output[0] for _, nodes, _ in fused for n in nodes[:-1]))
    if not any(o.domain == "com.hal" for o in result.opset_import):
        result.opset_import.append(helper.make_opsetid("com.hal", 1))
    return result, len(fused)
