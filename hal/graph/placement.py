"""Placement: which device runs each node.

priority: the first listed device that runs the node natively, like onnxruntime's provider list
(a device that runs it only through a slow path comes after every native one).
cost: the assignment that minimises estimated end-to-end time over all listed devices: each
node's roofline estimate on each device plus every transfer between devices. It starts from the
best device per node given its producers, then improves by moving single nodes and whole
partitions while the total drops.

Shape-only subgraphs (Shape, and the small integer arithmetic on its result) stay on the host, as
real stacks keep them there: moving a handful of int64 values to an accelerator costs more than
computing them.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from ..device import Device
from ..dtypes import DType
from ..errors import UnsupportedOpError
from ..capability import NodeInfo, Support, TensorInfo

__all__ = ["Placement", "shape_only_nodes", "place_priority", "place_cost", "transfer_seconds", "tensor_bytes"]

HOST_SHAPE_REASON = "shape computation stays on the host"
_SHAPE_SOURCES = {"Shape", "Size"}
_SHAPE_ARITHMETIC = {
    "Gather", "Unsqueeze", "Squeeze", "Concat", "Slice", "Cast", "Add", "Sub", "Mul", "Div",
    "Equal", "Where", "Identity", "ReduceProd", "Max", "Min", "Reshape", "Constant",
}
_SHAPE_MAX_ELEMENTS = 64


@dataclass
class Placement:
    assignment: dict[str, str]
    """node name -> device name"""
    reasons: dict[str, str]
    """node name -> why it is not on the first listed device (empty when it is)"""
    fallbacks: list[tuple[str, str, str]]
    """(node, wanted device, reason) for every node that left the first listed device"""


def _small_int(t: TensorInfo | None) -> bool:
    if t is None or t.dtype not in (DType.INT64, DType.INT32):
        return False
    shape = t.static_shape
    if shape is None:
        return t.shape is not None and len(t.shape) <= 1
    size = 1
    for d in shape:
        size *= d
    return size <= _SHAPE_MAX_ELEMENTS


def shape_only_nodes(nodes: Sequence[NodeInfo], initializers: frozenset[str] | set[str]) -> set[str]:
    """Nodes that compute only on shapes: Shape/Size and small integer ops fed by them."""
    shape_values: set[str] = set()
    found: set[str] = set()
    for node in nodes:
        outputs_small = all(_small_int(t) for t in node.outputs)
        if node.op_type in _SHAPE_SOURCES:
            found.add(node.name)
        elif node.op_type in _SHAPE_ARITHMETIC and node.domain in ("", "ai.onnx") and outputs_small:
            reads = [t for t in node.inputs if t is not None and t.name]
            from_shapes = [t for t in reads if t.name not in initializers]
            if node.op_type == "Constant" or (from_shapes and all(t.name in shape_values for t in from_shapes)):
                found.add(node.name)
            else:
                continue
        else:
            continue
        shape_values.update(t.name for t in node.outputs)
    # A Constant is host-only only when a shape node reads it; otherwise it goes with its reader.
    readers_of: dict[str, list[str]] = {}
    for node in nodes:
        for t in node.inputs:
            if t is not None:
                readers_of.setdefault(t.name, []).append(node.name)
    for node in nodes:
        if node.op_type == "Constant" and node.name in found:
            outs = [r for t in node.outputs for r in readers_of.get(t.name, [])]
            if not outs or not all(r in found for r in outs):
                found.discard(node.name)
    return found


def _pick(answers: Sequence[Support]) -> int | None:
    native = next((i for i, s in enumerate(answers) if s.supported and not s.slow), None)
    if native is not None:
        return native
    return next((i for i, s in enumerate(answers) if s.supported), None)


def _unsupported_error(problems: list[tuple[NodeInfo, list[str]]], strict: bool, devices: Sequence[Device]) -> UnsupportedOpError:
    head = (
        f"{devices[0].name} cannot run {len(problems)} node(s) and strict=True allows no fallback"
        if strict
        else f"no listed device ({', '.join(d.name for d in devices)}) runs {len(problems)} node(s)"
    )
    lines = [f"  {node.name} ({node.qualified_op}): {'; '.join(reasons)}" for node, reasons in problems[:50]]
    more = f"\n  ... and {len(problems) - 50} more" if len(problems) > 50 else ""
    hint = (
        "\nRun without strict=True to fall back to other devices, or change the model."
        if strict
        else "\nAdd a device that runs them (\"cpu\" runs every standard ONNX op), or change the model."
    )
    return UnsupportedOpError(head + ":\n" + "\n".join(lines) + more + hint)


def place_priority(
    nodes: Sequence[NodeInfo],
    devices: Sequence[Device],
    answers: Mapping[str, Sequence[Support]],
    host_nodes: set[str],
    host: Device,
    *,
    strict: bool,
) -> Placement:
    assignment: dict[str, str] = {}
    reasons: dict[str, str] = {}
    fallbacks: list[tuple[str, str, str]] = []
    problems: list[tuple[NodeInfo, list[str]]] = []
    first = devices[0].name
    for node in nodes:
        if node.name in host_nodes:
            assignment[node.name] = host.name
            if host.name != first:
                reasons[node.name] = HOST_SHAPE_REASON
            continue
        options = answers[node.name]
        if strict:
            chosen = 0 if options[0].supported and not options[0].slow else None
        else:
            chosen = _pick(options)
        if chosen is None:
            problems.append((node, [f"{d.name}: {s.reason or s.note}" for d, s in zip(devices, options)] if not strict else [options[0].reason or options[0].note]))
            continue
        assignment[node.name] = devices[chosen].name
        if chosen != 0:
            why = options[0].reason or f"{first} runs it only through a slow path ({options[0].note})"
            reasons[node.name] = why
            fallbacks.append((node.name, first, why))
        elif options[0].note:
            reasons[node.name] = options[0].note
    if problems:
        raise _unsupported_error(problems, strict, devices)
    return Placement(assignment, reasons, fallbacks)


def tensor_bytes(t: TensorInfo | None) -> int:
    """Bytes of a tensor from its inferred shape (unknown dimensions count as 1)."""
    if t is None or t.dtype is None or t.shape is None:
        return 0
    size = 1
    for d in t.shape:
        size *= d if isinstance(d, int) else 1
    return size * t.dtype.itemsize


def transfer_seconds(src: Device, dst: Device, nbytes: int) -> float:
    """Estimated time to move nbytes between two devices: the peer link inside one simulated
    family, otherwise down one host link and up the other (the CPU's side costs nothing)."""
    if src is dst or nbytes == 0:
        return 0.0
    src_cost = getattr(src.driver, "copy_cost", None)
    dst_cost = getattr(dst.driver, "copy_cost", None)
    if src.kind == dst.kind and dst_cost is not None:
        return dst_cost.device_to_device(nbytes, False)
    down = src_cost.device_to_host(nbytes) if src_cost is not None else _link(src, nbytes)
    up = dst_cost.host_to_device(nbytes) if dst_cost is not None else _link(dst, nbytes)
    return down + up


def _link(device: Device, nbytes: int) -> float:
    if device.spec.host_addressable or not device.spec.host_link_bandwidth:
        return 0.0
    return nbytes / device.spec.host_link_bandwidth


def place_cost(
    nodes: Sequence[NodeInfo],
    devices: Sequence[Device],
    answers: Mapping[str, Sequence[Support]],
    host_nodes: set[str],
    host: Device,
    node_seconds: Callable[[NodeInfo, Device], float],
    *,
    strict: bool,
    initializers: frozenset[str] | set[str] = frozenset(),
    graph_outputs: Sequence[str] = (),
    max_passes: int = 8,
) -> Placement:
    """The objective is what a run pays: every node's estimate on its device, plus each tensor
    copied once to each other device that reads it (graph inputs start on the host, graph outputs
    end there)."""
    by_name = {d.name: d for d in devices}
    by_name.setdefault(host.name, host)
    candidates: dict[str, list[str]] = {}
    problems: list[tuple[NodeInfo, list[str]]] = []
    for node in nodes:
        if node.name in host_nodes:
            candidates[node.name] = [host.name]
            continue
        ok = [d.name for d, s in zip(devices, answers[node.name]) if s.supported and not (strict and s.slow)]
        if not ok:
            problems.append((node, [f"{d.name}: {s.reason or s.note}" for d, s in zip(devices, answers[node.name])]))
        candidates[node.name] = ok
    if problems:
        raise _unsupported_error(problems, False, devices)

    cost = {n.name: {d: node_seconds(n, by_name[d]) for d in candidates[n.name]} for n in nodes}
    graph = _CostGraph(nodes, initializers, set(graph_outputs), host.name, by_name)

    assignment: dict[str, str] = {}
    for n in nodes:  # greedy start in topological order: consumers are not placed yet
        assignment[n.name] = min(candidates[n.name], key=lambda d: cost[n.name][d] + graph.inputs_cost(n, d, assignment, ()))

    def local_cost(n: NodeInfo, d: str) -> float:
        return cost[n.name][d] + graph.inputs_cost(n, d, assignment, (n.name,)) + graph.outputs_cost(n, d, assignment, (n.name,))

    for _ in range(max_passes):
        moved = False
        for n in nodes:
            if len(candidates[n.name]) < 2:
                continue
            current = assignment[n.name]
            best = min(candidates[n.name], key=lambda d: local_cost(n, d))
            if best != current and local_cost(n, best) < local_cost(n, current) - 1e-12:
                assignment[n.name] = best
                moved = True
        moved |= _move_groups(nodes, assignment, candidates, cost, graph)
        if not moved:
            break

    reasons: dict[str, str] = {}
    fallbacks: list[tuple[str, str, str]] = []
    first = devices[0].name
    for n in nodes:
        chosen = assignment[n.name]
        if n.name in host_nodes:
            if chosen != first:
                reasons[n.name] = HOST_SHAPE_REASON
        elif chosen != first:
            first_answer = answers[n.name][0]
            if not first_answer.supported:
                why = first_answer.reason
                fallbacks.append((n.name, first, why))
            elif first not in cost[n.name]:  # strict: the first device runs it only through a slow path
                why = f"{first} runs it only through a slow path ({first_answer.note}) and strict=True takes none"
                fallbacks.append((n.name, first, why))
            else:
                here, there = cost[n.name][chosen], cost[n.name][first]
                if here < there:
                    why = f"cost: {chosen} is faster here ({here * 1e6:.1f} us vs {there * 1e6:.1f} us on {first})"
                else:
                    why = (f"cost: copies to and from {first} would cost more than they save "
                           f"({here * 1e6:.1f} us here vs {there * 1e6:.1f} us on {first} before copies)")
            reasons[n.name] = why
    return Placement(assignment, reasons, fallbacks)


class _CostGraph:
    """Who produces and who reads each tensor, and what a node's edges cost on a device, counting
    a tensor's copy to a device once however many nodes there read it."""

    def __init__(self, nodes: Sequence[NodeInfo], initializers, graph_outputs: set[str], host: str, by_name: Mapping[str, Device]):
        self.producer: dict[str, str] = {t.name: n.name for n in nodes for t in n.outputs if t.name}
        self.readers: dict[str, list[str]] = {}
        for n in nodes:
            if n.op_type in _SHAPE_SOURCES:
                continue  # Shape and Size read metadata: no bytes move for them (session.py feeds shapes)
            for t in n.inputs:
                if t is not None and t.name and t.name not in initializers:
                    self.readers.setdefault(t.name, []).append(n.name)
        self.initializers = initializers
        self.graph_outputs = graph_outputs
        self.host = host
        self.by_name = by_name
        self._xfer: dict[tuple[str, str, int], float] = {}

    def xfer(self, a: str, b: str, nbytes: int) -> float:
        if a == b:
            return 0.0
        key = (a, b, nbytes)
        if key not in self._xfer:
            self._xfer[key] = transfer_seconds(self.by_name[a], self.by_name[b], nbytes)
        return self._xfer[key]

    def inputs_cost(self, n: NodeInfo, d: str, assignment: Mapping[str, str], moving: Sequence[str] | set[str],
                    charged: set[str] | None = None) -> float:
        """Copies of n's inputs to d that no other reader already on d pays for; `moving` are the
        nodes whose device is being decided (they do not count as already there), `charged` the
        tensors already paid for by other moving nodes."""
        total = 0.0
        if n.op_type in _SHAPE_SOURCES:
            return total
        seen: set[str] = charged if charged is not None else set()
        for t in n.inputs:
            if t is None or not t.name or t.name in self.initializers or t.name in seen:
                continue
            seen.add(t.name)
            source = assignment.get(self.producer[t.name]) if t.name in self.producer else self.host
            if source is None or source == d:
                continue
            if any(assignment.get(r) == d for r in self.readers.get(t.name, ()) if r not in moving):
                continue
            total += self.xfer(source, d, tensor_bytes(t))
        return total

    def outputs_cost(self, n: NodeInfo, d: str, assignment: Mapping[str, str], moving: Sequence[str] | set[str]) -> float:
        """Copies of n's outputs from d to each other device that reads them (once per device),
        and to the host for graph outputs."""
        total = 0.0
        for t in n.outputs:
            if not t.name:
                continue
            destinations = {assignment[r] for r in self.readers.get(t.name, ()) if r not in moving and r in assignment}
            if t.name in self.graph_outputs:
                destinations.add(self.host)
            destinations.discard(d)
            nbytes = tensor_bytes(t)
            total += sum(self.xfer(d, other, nbytes) for other in destinations)
        return total


def _move_groups(nodes, assignment, candidates, cost, graph: _CostGraph) -> bool:
    """Tries moving each same-device connected group as a whole; single-node moves cannot cross
    the transfer cost a chain pays on both ends."""
    group_of: dict[str, int] = {}
    groups: list[list[NodeInfo]] = []
    for n in nodes:
        joined = None
        for t in n.inputs:
            if t is not None and t.name in graph.producer:
                p = graph.producer[t.name]
                if assignment[p] == assignment[n.name]:
                    joined = group_of[p]
                    break
        if joined is None:
            joined = len(groups)
            groups.append([])
        group_of[n.name] = joined
        groups[joined].append(n)
    moved = False
    for members in groups:
        names = [m.name for m in members]
        moving = set(names)
        current = assignment[names[0]]
        shared = set(candidates[names[0]])
        for m in names[1:]:
            shared &= set(candidates[m])
        shared.discard(current)
        if not shared:
            continue

        def group_cost(d: str) -> float:
            # edges inside the group stay on one device whatever d is: only its boundary costs
            charged: set[str] = set()
            return sum(cost[m.name][d] + graph.inputs_cost(m, d, assignment, moving, charged)
                       + graph.outputs_cost(m, d, assignment, moving) for m in members)

        before = group_cost(current)
        best = min(sorted(shared), key=group_cost)
        if group_cost(best) < before - 1e-12:
            for name in names:
                assignment[name] = best
            moved = True
    return moved

