"""Cutting a model into standalone models (one per partition), built once per model and reused."""
from __future__ import annotations

from collections.abc import Iterable, Sequence

import onnx

from ..capability import NodeInfo

__all__ = ["GraphIndex", "implicit_inputs", "metadata_only_inputs", "with_nodes", "SHAPE_SUFFIX"]

SHAPE_SUFFIX = "::shape"
"""A metadata-only input `t` is fed as the int64 tensor `t::shape`, never as its data."""


def implicit_inputs(node: onnx.NodeProto) -> set[str]:
    """Names a node's subgraphs (If/Loop/Scan bodies) read from the enclosing scope."""
    found: set[str] = set()
    for attribute in node.attribute:
        graphs = [attribute.g] if attribute.type == onnx.AttributeProto.GRAPH else list(attribute.graphs)
        for graph in graphs:
            defined = {i.name for i in graph.input} | {t.name for t in graph.initializer}
            defined |= {o for n in graph.node for o in n.output}
            for inner in graph.node:
                found |= {name for name in inner.input if name and name not in defined}
                found |= implicit_inputs(inner) - defined
    return found


def with_nodes(model: onnx.ModelProto, nodes: Iterable[onnx.NodeProto], gone: Iterable[str] = (),
               initializers: Iterable[onnx.TensorProto] = ()) -> onnx.ModelProto:
    """A copy of `model` whose main graph has `nodes` and these added `initializers`, without the
    value infos of the values in `gone` (computed by nodes the rewrite removed)."""
    result = onnx.ModelProto()
    result.CopyFrom(model)
    graph = result.graph
    del graph.node[:]
    graph.node.extend(nodes)
    graph.initializer.extend(initializers)
    gone = set(gone)
    kept = [v for v in graph.value_info if v.name not in gone]
    del graph.value_info[:]
    graph.value_info.extend(kept)
    return result


def metadata_only_inputs(nodes: Sequence[NodeInfo], inputs: Sequence[str]) -> list[str]:
    """Inputs of a group of nodes that only Shape and Size read: running them needs the tensor's
    shape, not its bytes, so a tensor on a chip need not cross to the host for them."""
    readers: dict[str, set[str]] = {}
    for node in nodes:
        for t in node.inputs:
            if t is not None and t.name:
                readers.setdefault(t.name, set()).add(node.op_type if node.domain in ("", "ai.onnx") else "")
        if node.proto is not None and node.proto.attribute:
            for name in implicit_inputs(node.proto):
                readers.setdefault(name, set()).add("")
    return [name for name in inputs if readers.get(name) and readers[name] <= {"Shape", "Size"}]


def _read_shape_instead(node: onnx.NodeProto, shape_name: str) -> list[onnx.NodeProto]:
    """Shape(t) / Size(t) rewritten to read t's shape vector (same node name and output)."""
    from onnx import helper

    out = node.output[0]
    if node.op_type == "Size":
        return [helper.make_node("ReduceProd", [shape_name], [out], name=node.name, keepdims=0)]
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    if "start" not in attrs and "end" not in attrs:
        return [helper.make_node("Identity", [shape_name], [out], name=node.name)]
    start = helper.make_node("Constant", [], [f"{out}::start"], name=f"{node.name}::start",
                             value=helper.make_tensor("v", onnx.TensorProto.INT64, [1], [attrs.get("start", 0)]))
    end = helper.make_node("Constant", [], [f"{out}::end"], name=f"{node.name}::end",
                           value=helper.make_tensor("v", onnx.TensorProto.INT64, [1], [attrs.get("end", 2**62)]))
    return [start, end, helper.make_node("Slice", [shape_name, f"{out}::start", f"{out}::end"], [out], name=node.name)]


class GraphIndex:
    """Value infos, initializers and graph outputs of one model by name, for fast extraction."""

    def __init__(self, model: onnx.ModelProto):
        self.model = model
        graph = model.graph
        self.value_info: dict[str, onnx.ValueInfoProto] = {}
        for vi in (*graph.value_info, *graph.input, *graph.output):
            self.value_info[vi.name] = vi
        self.initializers: dict[str, onnx.TensorProto] = {t.name: t for t in graph.initializer}
        self.graph_outputs = [o.name for o in graph.output]

    def boundary(self, nodes: Sequence[NodeInfo]) -> tuple[list[str], list[str]]:
        """(inputs, produced): non-initializer names the nodes read but do not produce, in first-use
        order, and every name they produce."""
        produced: set[str] = set()
        produced_order: list[str] = []
        inputs: list[str] = []
        seen: set[str] = set()
        for node in nodes:
            names = [t.name for t in node.inputs if t is not None]
            if node.proto is not None and any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.proto.attribute):
                names += sorted(implicit_inputs(node.proto))
            for name in names:
                if name and name not in produced and name not in seen and name not in self.initializers:
                    seen.add(name)
                    inputs.append(name)
            for t in node.outputs:
                if t.name:
                    produced.add(t.name)
                    produced_order.append(t.name)
        return inputs, produced_order

    def extract(self, nodes: Sequence[NodeInfo], outputs: Iterable[str], name: str,
                shape_only: Sequence[str] = ()) -> onnx.ModelProto:
        """A standalone model of `nodes` (topologically ordered) producing `outputs`. Inputs in
        `shape_only` (see metadata_only_inputs) become int64 inputs named `<input>::shape`."""
        inputs, produced = self.boundary(nodes)
        outputs = list(outputs)
        graph = self.model.graph
        if (not shape_only and len(nodes) == len(graph.node) and outputs == self.graph_outputs
                and inputs == [i.name for i in graph.input if i.name not in self.initializers]):
            # one partition is the whole model: copying its weights (hundreds of MB for BERT)
            # would only cost time. Backends never change the model they compile.
            graph.name = name
            return self.model
        produced_set = set(produced)
        used_initializers: list[onnx.TensorProto] = []
        seen: set[str] = set()
        for node in nodes:
            for t in node.inputs:
                if t is not None and t.name in self.initializers and t.name not in seen and t.name not in produced_set:
                    seen.add(t.name)
                    used_initializers.append(self.initializers[t.name])
            if node.proto is not None:
                for extra in implicit_inputs(node.proto) if node.proto.attribute else ():
                    if extra in self.initializers and extra not in seen:
                        seen.add(extra)
                        used_initializers.append(self.initializers[extra])
        # built in place inside the model: handing a finished GraphProto to ModelProto would copy
        # every weight a second time
        model = onnx.ModelProto(ir_version=self.model.ir_version)
        model.opset_import.extend(self.model.opset_import)
        graph = model.graph
        graph.name = name
        rewritten = set(shape_only)
        for n in nodes:
            read = n.proto.input[0] if n.proto.input else ""
            if read in rewritten and n.op_type in ("Shape", "Size"):
                graph.node.extend(_read_shape_instead(n.proto, read + SHAPE_SUFFIX))
            else:
                graph.node.append(n.proto)
        for n in inputs:
            if n in rewritten:
                graph.input.append(self._shape_info(n))
            else:
                graph.input.append(self._info(n))
        graph.output.extend(self._info(n) for n in outputs)
        graph.initializer.extend(used_initializers)
        internal = [n for n in produced if n in self.value_info and n not in set(outputs)]
        graph.value_info.extend(self.value_info[n] for n in internal)
        return model

    def _shape_info(self, name: str) -> onnx.ValueInfoProto:
        from onnx import helper

        found = self.value_info.get(name)
        rank = len(found.type.tensor_type.shape.dim) if found is not None and found.type.tensor_type.HasField("shape") else None
        return helper.make_tensor_value_info(name + SHAPE_SUFFIX, onnx.TensorProto.INT64, [rank] if rank is not None else [None])

    def _info(self, name: str) -> onnx.ValueInfoProto:
        found = self.value_info.get(name)
        if found is not None:
            return found
        return onnx.ValueInfoProto(name=name)
