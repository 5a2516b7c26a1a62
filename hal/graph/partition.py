"""Partitions: maximal connected groups of nodes placed on one device, acyclic by construction.

Each node gets a stage such that every edge u -> v has stage(v) >= stage(u), and stage(v) >
stage(u) where u and v sit on different devices. Every edge between different groups then runs
from a lower stage to a higher one, so grouping nodes by (device, stage) and splitting each group
into connected components can never make a cycle between partitions, and ordering partitions by
stage is a valid execution order.

Any stages that keep that rule are correct; good ones give a node the stage of a producer on its
own device, so they merge. Each node may take any stage between the earliest its producers allow
and the latest its consumers allow (as late as possible, ALAP); it takes a same-device producer's
stage where one fits, otherwise the latest, so that a node with no same-device producer (a query
MatMul reading the graph input) waits for its same-device consumers instead of being cut off
from them by an unrelated host node (the shape arithmetic its consumer Reshape also reads).
The whole pass is linear in nodes and edges.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ..capability import NodeInfo

__all__ = ["Partition", "partition"]


@dataclass
class Partition:
    name: str
    device: str
    nodes: list[NodeInfo]
    inputs: list[str] = field(default_factory=list)
    """Tensors it reads that come from outside (graph inputs or other partitions), not weights."""
    outputs: list[str] = field(default_factory=list)
    """Tensors it produces that other partitions or the graph's outputs read."""
    stage: int = 0


def partition(
    nodes: Sequence[NodeInfo],
    assignment: Mapping[str, str],
    *,
    graph_outputs: Sequence[str],
    boundary,
) -> list[Partition]:
    """Groups topologically ordered `nodes` by device. `boundary(nodes) -> (inputs, produced)` is
    hal.graph.extract.GraphIndex.boundary (it knows weights and subgraph captures)."""
    producer: dict[str, int] = {}
    for i, node in enumerate(nodes):
        for t in node.outputs:
            if t.name:
                producer[t.name] = i
    device_of = [assignment[node.name] for node in nodes]
    preds: list[list[int]] = [[] for _ in nodes]
    succs: list[list[int]] = [[] for _ in nodes]
    earliest = [0] * len(nodes)
    for i, node in enumerate(nodes):
        for name in _reads(node):
            j = producer.get(name)
            if j is None or j == i:
                continue
            preds[i].append(j)
            succs[j].append(i)
            earliest[i] = max(earliest[i], earliest[j] + (device_of[j] != device_of[i]))
    horizon = max(earliest, default=0)
    latest = [horizon] * len(nodes)
    for i in range(len(nodes) - 1, -1, -1):
        for k in succs[i]:
            latest[i] = min(latest[i], latest[k] - (device_of[k] != device_of[i]))

    stage = [0] * len(nodes)
    for i in range(len(nodes)):
        low = 0
        for j in preds[i]:
            low = max(low, stage[j] + (device_of[j] != device_of[i]))
        # stage[j] <= latest[j] <= latest[i] for a same-device producer, so any that is >= low fits
        joinable = [stage[j] for j in preds[i] if device_of[j] == device_of[i] and stage[j] >= low]
        stage[i] = max(joinable) if joinable else latest[i]

    # union-find over same-(device, stage) edges: the connected components of each group
    parent = list(range(len(nodes)))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for i in range(len(nodes)):
        for j in preds[i]:
            if stage[j] == stage[i] and device_of[j] == device_of[i]:
                parent[find(i)] = find(j)

    groups: dict[int, list[int]] = {}
    for i in range(len(nodes)):
        groups.setdefault(find(i), []).append(i)
    ordered = sorted(groups.values(), key=lambda members: (stage[members[0]], members[0]))

    partitions: list[Partition] = []
    for index, members in enumerate(ordered):
        members.sort()
        device = assignment[nodes[members[0]].name]
        part = Partition(
            name=f"p{index}_{device.replace(':', '')}",
            device=device,
            nodes=[nodes[i] for i in members],
            stage=stage[members[0]],
        )
        part.inputs, _ = boundary(part.nodes)
        partitions.append(part)

    # outputs: produced here and read by another partition, or a graph output. A partition with
    # none computes nothing anyone reads (dead nodes): it is dropped, which can leave its producers
    # dead in turn, so this repeats until every partition has an output.
    wanted = set(graph_outputs)
    while True:
        readers: dict[str, set[int]] = {}
        for index, part in enumerate(partitions):
            for name in part.inputs:
                readers.setdefault(name, set()).add(index)
        for index, part in enumerate(partitions):
            part.outputs = [
                t.name for node in part.nodes for t in node.outputs
                if t.name and (t.name in wanted or readers.get(t.name, set()) - {index})
            ]
        live = [part for part in partitions if part.outputs]
        if len(live) == len(partitions):
            break
        partitions = live
    for index, part in enumerate(partitions):
        part.name = f"p{index}_{part.device.replace(':', '')}"
    return partitions


def _reads(node: NodeInfo) -> list[str]:
    names = [t.name for t in node.inputs if t is not None and t.name]
    if node.proto is not None and node.proto.attribute:
        from .extract import implicit_inputs

        names.extend(sorted(implicit_inputs(node.proto)))
    return names
