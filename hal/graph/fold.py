"""Static shape folding: Shape of a tensor whose shape inference knows every dimension is a
constant, and so is the small integer arithmetic computed from it.

Exporters write reshapes as Shape -> Gather -> Unsqueeze -> Concat -> Reshape even when every size
is fixed (BERT's attention heads). Placement keeps that arithmetic on the host, so without folding
each layer's Shape reads a chip tensor mid-model and cuts the chip's work into two partitions
with a host step between. onnxruntime folds these constants when it builds a session; hal does the
same before placement when a chip is listed, so the Reshape gets its shape as a weight and the
chip runs the layers as one partition. Dynamic dimensions ("batch") keep their Shape nodes.

The arithmetic runs once, in onnx's reference implementation, on a graph of only the folded nodes
(a few int64 values each); no third-party simplifier is needed for this one job, and onnxruntime's
own optimizer would also rewrite the float graph a chip is meant to see.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..errors import HalError
from ..capability import NodeInfo
from .extract import implicit_inputs, with_nodes
from .model import LoadedModel, load_generated
from .placement import shape_only_nodes

__all__ = ["fold_static_shapes", "fold_until_stable"]


def fold_static_shapes(model: onnx.ModelProto, nodes: Sequence[NodeInfo], initializers: frozenset[str]) -> tuple[onnx.ModelProto, int]:
    """A copy of `model` whose statically known shape computations are initializers, and how many
    nodes that removed (0: the model itself, unchanged). `nodes`: the model's NodeInfos in order."""
    candidates = shape_only_nodes(nodes, initializers)
    known: dict[str, np.ndarray] = {}  # values fixed at load time: Shape/Size results
    constant = set(initializers)
    folded: list[NodeInfo] = []
    for node in nodes:
        if node.name not in candidates:
            continue
        if node.op_type in ("Shape", "Size"):
            source = node.inputs[0]
            shape = source.static_shape if source is not None else None
            if shape is None:
                continue
            known[node.outputs[0].name] = _shape_value(node, shape)
        elif not all(t is None or not t.name or t.name in constant for t in node.inputs):
            continue
        folded.append(node)
        constant.update(t.name for t in node.outputs)
    if not folded:
        return model, 0
    folded_names = {n.name for n in folded}
    read_later = set()
    for n in nodes:
        if n.name not in folded_names:
            read_later.update(t.name for t in n.inputs if t is not None)
            if n.proto is not None and n.proto.attribute:  # If/Loop/Scan bodies read outer names
                read_later.update(implicit_inputs(n.proto))
    read_later |= {o.name for o in model.graph.output}
    wanted = [t.name for n in folded for t in n.outputs if t.name in read_later]
    values = dict(known)
    arithmetic = [n for n in folded if n.op_type not in ("Shape", "Size")]
    if arithmetic:
        try:
            values.update(_evaluate(model, arithmetic, known, [w for w in wanted if w not in known]))
        except Exception:  # noqa: BLE001 - an op the reference cannot fold: keep the model as it is
            return model, 0
    result = with_nodes(
        model, (n for n in model.graph.node if n.name not in folded_names),
        gone=(t.name for n in folded for t in n.outputs),
        initializers=(numpy_helper.from_array(np.asarray(values[name]), name) for name in wanted),
    )
    return result, len(folded)


def fold_until_stable(loaded: LoadedModel) -> tuple[LoadedModel, int]:
    """`loaded` with every fixed shape computation folded, and how many nodes that removed. A
    fold can fix shapes inference left unknown (a Reshape whose shape input it made constant), so
    it folds again over the re-inferred model until nothing changes. Folding is an optimisation:
    a rewrite that does not load again stops it, and the model as it was still runs."""
    folded = 0
    while True:
        proto, count = fold_static_shapes(loaded.proto, loaded.node_infos(), loaded.initializers)
        if not count:
            return loaded, folded
        try:
            loaded = load_generated(proto)
        except HalError:
            return loaded, folded
        folded += count


def _shape_value(node: NodeInfo, shape: tuple[int, ...]) -> np.ndarray:
    if node.op_type == "Size":
        return np.array(int(np.prod(shape, dtype=np.int64)), dtype=np.int64)
    rank = len(shape)
    start = int(node.attributes.get("start", 0))
    end = int(node.attributes.get("end", rank))
    start, end = (max(0, min(rank, i + rank if i < 0 else i)) for i in (start, end))
    return np.array(shape[start:end], dtype=np.int64)


def _evaluate(model: onnx.ModelProto, arithmetic: list[NodeInfo], known: dict[str, np.ndarray], wanted: list[str]) -> dict[str, np.ndarray]:
    """The `wanted` outputs of the folded arithmetic nodes, computed once in onnx's reference
    implementation from the Shape results and the weights they read."""
    from onnx.reference import ReferenceEvaluator

    if not wanted:
        return {}
    produced = {t.name for n in arithmetic for t in n.outputs}
    reads = {t.name for n in arithmetic for t in n.inputs if t is not None and t.name and t.name not in produced}
    weights = [w for w in model.graph.initializer if w.name in reads]
    feeds = {name: value for name, value in known.items() if name in reads}
    graph = helper.make_graph(
        [n.proto for n in arithmetic], "shape_folding",
        [helper.make_tensor_value_info(name, onnx.TensorProto.INT64, list(value.shape)) for name, value in feeds.items()],
        [helper.make_value_info(name, onnx.TypeProto()) for name in wanted],
        initializer=weights,
    )
    folding = helper.make_model(graph, opset_imports=list(model.opset_import), ir_version=model.ir_version)
    outputs = ReferenceEvaluator(folding).run(None, feeds)
    return dict(zip(wanted, outputs))
