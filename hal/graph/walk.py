"""Walking an ONNX model's protobufs: the subgraphs nested in nodes, every tensor that may hold
data, the names a subgraph reads from around it, and how error messages name a model or a node.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import onnx

__all__: list[str] = []

_GRAPH, _GRAPHS = onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS
_TENSOR, _TENSORS = onnx.AttributeProto.TENSOR, onnx.AttributeProto.TENSORS
_SPARSE_TENSOR, _SPARSE_TENSORS = onnx.AttributeProto.SPARSE_TENSOR, onnx.AttributeProto.SPARSE_TENSORS


def _direct_subgraphs(node: onnx.NodeProto) -> list[onnx.GraphProto]:
    """The graphs held in a node's attributes (If branches, Loop and Scan bodies)."""
    subs = []
    for attr in node.attribute:
        if attr.type == _GRAPH:
            subs.append(attr.g)
        elif attr.type == _GRAPHS:
            subs.extend(attr.graphs)
    return subs


def _graphs(graph: onnx.GraphProto) -> Iterator[onnx.GraphProto]:
    """`graph` and every subgraph nested in it, at any depth."""
    yield graph
    for node in graph.node:
        if node.attribute:
            for sub in _direct_subgraphs(node):
                yield from _graphs(sub)


def _subgraph_depth(graph: onnx.GraphProto) -> int:
    """How deep subgraphs nest in `graph` (0: none). Iterative: a ModelProto built in memory can
    nest deeper than Python's recursion limit."""
    deepest, pending = 0, [(graph, 0)]
    while pending:
        current, depth = pending.pop()
        deepest = max(deepest, depth)
        for node in current.node:
            if node.attribute:
                pending.extend((sub, depth + 1) for sub in _direct_subgraphs(node))
    return deepest


def _all_tensors(proto: onnx.ModelProto) -> Iterator[onnx.TensorProto]:
    """Every TensorProto that may hold data: initializers and attribute tensors, at any depth."""
    yield from _graph_tensors(proto.graph)
    for function in proto.functions:
        yield from _attribute_tensors(function.node)


def _graph_tensors(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    yield from _attribute_tensors(graph.node)


def _attribute_tensors(nodes: Any) -> Iterator[onnx.TensorProto]:
    for node in nodes:
        for attr in node.attribute:
            kind = attr.type
            if kind == _TENSOR:
                yield attr.t
            elif kind == _TENSORS:
                yield from attr.tensors
            elif kind == _SPARSE_TENSOR:
                yield attr.sparse_tensor.values
                yield attr.sparse_tensor.indices
            elif kind == _SPARSE_TENSORS:
                for sparse in attr.sparse_tensors:
                    yield sparse.values
                    yield sparse.indices
            elif kind == _GRAPH:
                yield from _graph_tensors(attr.g)
            elif kind == _GRAPHS:
                for sub in attr.graphs:
                    yield from _graph_tensors(sub)


def _outer_names(graph: onnx.GraphProto) -> set[str]:
    """Names a subgraph reads from the scopes around it (its implicit inputs)."""
    defined = {v.name for v in graph.input}
    defined.update(t.name for t in graph.initializer)
    defined.update(s.values.name for s in graph.sparse_initializer)
    used: set[str] = set()
    for node in graph.node:
        used.update(node.input)
        defined.update(node.output)
        for sub in _direct_subgraphs(node):
            used |= _outer_names(sub)
    used.discard("")
    return used - defined


def _proto_label(proto: onnx.ModelProto) -> str:
    return f"model {proto.graph.name!r}" if proto.graph.name else "the given ModelProto"


def _node_label(node: onnx.NodeProto) -> str:
    return f"node {node.name!r} ({node.op_type})" if node.name else f"an unnamed {node.op_type} node in a subgraph"
