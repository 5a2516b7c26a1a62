"""Naming and ordering a graph's nodes: every main-graph node gets a unique, non-empty name, and
nodes out of topological order are sorted (Kahn's algorithm), inside subgraphs too.
"""
from __future__ import annotations

from collections import deque
from typing import Any

import onnx

from ..errors import InvalidModelError
from .walk import _all_tensors, _direct_subgraphs, _node_label, _outer_names

__all__: list[str] = []


def _check_text(proto: onnx.ModelProto, source: str) -> None:
    """Every name, op type and external-data entry is text. protobuf hands a string field that is
    not valid UTF-8 over as bytes, which would fail far from here (a schema lookup, a path)."""
    def refuse(text: Any) -> None:
        raise InvalidModelError(f"{source}: {text!r} is not UTF-8 text where a name belongs; the file is damaged: export it again")

    pending = [proto.graph]
    while pending:
        current = pending.pop()
        for value in (*current.input, *current.output, *current.value_info):
            if not isinstance(value.name, str):
                refuse(value.name)
        for node in current.node:
            for text in (node.op_type, node.domain, node.name, *node.input, *node.output):
                if not isinstance(text, str):
                    refuse(text)
            if node.attribute:
                pending.extend(_direct_subgraphs(node))
    for tensor in _all_tensors(proto):
        for text in (tensor.name, *(part for entry in tensor.external_data for part in (entry.key, entry.value))):
            if not isinstance(text, str):
                refuse(text)


def _name_nodes(graph: onnx.GraphProto) -> None:
    """Names every unnamed main-graph node "<op>_<index>", and renames repeats "<name>_<k>"."""
    nodes = graph.node
    names = [node.name for node in nodes]
    taken = set(names)  # every original name, so that no new name steals one a later node has
    seen: set[str] = set()
    for index, name in enumerate(names):
        if name and name not in seen:
            seen.add(name)
            continue
        node = nodes[index]
        base = name or f"{node.op_type}_{index}"
        candidate, k = (f"{name}_1", 2) if name else (base, 1)
        while candidate in taken:
            candidate = f"{base}_{k}"
            k += 1
        node.name = candidate
        taken.add(candidate)
        seen.add(candidate)


def _sort_nodes(graph: onnx.GraphProto, source: str) -> bool:
    """Sorts `graph`'s nodes, and its subgraphs', topologically; True when any order changed."""
    changed = False
    for node in graph.node:
        for sub in _direct_subgraphs(node):
            changed |= _sort_nodes(sub, source)
    order = _topological_order(graph, source)
    if order is None:
        return changed
    nodes = list(graph.node)
    reordered = [nodes[i] for i in order]
    del graph.node[:]
    graph.node.extend(reordered)
    return True


def _topological_order(graph: onnx.GraphProto, source: str) -> list[int] | None:
    """Kahn's algorithm over tensor producers, in time linear in nodes + edges.

    None when the nodes are already in order. Values that no node of this graph produces
    (inputs, initializers, names from enclosing graphs) are available from the start.
    """
    nodes = graph.node
    producer: dict[str, int] = {}
    for i, node in enumerate(nodes):
        for name in node.output:
            producer[name] = i
    producer.pop("", None)
    consumers: list[list[int]] = [[] for _ in nodes]
    indegree = [0] * len(nodes)
    in_order = True
    for i, node in enumerate(nodes):
        needed: Any = node.input
        if node.attribute:
            subs = _direct_subgraphs(node)
            if subs:
                needed = set(needed).union(*map(_outer_names, subs))
        for name in needed:
            j = producer.get(name)
            if j is not None:
                consumers[j].append(i)
                indegree[i] += 1
                in_order = in_order and j < i
    if in_order:
        return None
    ready = deque(i for i, count in enumerate(indegree) if count == 0)
    order = []
    while ready:
        i = ready.popleft()
        order.append(i)
        for k in consumers[i]:
            indegree[k] -= 1
            if indegree[k] == 0:
                ready.append(k)
    if len(order) < len(nodes):
        stuck = [_node_label(nodes[i]) for i, count in enumerate(indegree) if count > 0]
        more = f" and {len(stuck) - 5} more" if len(stuck) > 5 else ""
        raise InvalidModelError(
            f"{source} has a cycle: {', '.join(stuck[:5])}{more} (the nodes in it and after it) wait on "
            "values that can never be computed; an ONNX graph must be acyclic"
        )
    return order
