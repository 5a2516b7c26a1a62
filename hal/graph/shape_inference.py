"""onnx's shape inference as load_model runs it: on a copy without the big weights (their types and
shapes suffice), strict first, then lenient when the failure lies in a node of another domain or
in the function body of an ONNX op, whose inference onnx may only partly know.
"""
from __future__ import annotations

import os
import pathlib
import re
import tempfile

import onnx

from ..errors import InvalidModelError
from .opsets import _DEFAULT_DOMAINS
from .walk import _graphs

__all__: list[str] = []

# How onnx's shape inference names the node it failed on: "(op_type:MatMul, node name: mm)".
_FAILED_NODE = re.compile(r"\(op_type:([^,)]+)(?:, node name: ([^)]*))?\)")


def _infer(proto: onnx.ModelProto, source: str, *, path: pathlib.Path | None = None) -> onnx.ModelProto:
    """The model with inferred types and shapes (by path when `path` is given).

    Strict first, so that errors in ai.onnx ops are reported; a failure in a node of another
    domain (whose inference onnx may only partly know) retries without strict mode.
    """

    def run(strict: bool) -> onnx.ModelProto:
        if path is None:
            skeleton = _without_weights(proto)
            inferred = onnx.shape_inference.infer_shapes(skeleton, check_type=True, strict_mode=strict, data_prop=True)
            if skeleton is proto:
                return inferred
            # what inference adds: value types (main graph and, inside nodes, subgraphs) and outputs
            graph = proto.graph
            for field in ("value_info", "node", "output"):
                del getattr(graph, field)[:]
                getattr(graph, field).extend(getattr(inferred.graph, field))
            return proto
        with tempfile.TemporaryDirectory(prefix="hal-infer-") as folder:
            inferred = os.path.join(folder, "inferred.onnx")
            onnx.shape_inference.infer_shapes_path(str(path), inferred, True, strict, True)
            return onnx.load_model(inferred, load_external_data=False)

    failure = ""
    for strict in (True, False):
        try:
            return run(strict)
        except Exception as e:  # noqa: BLE001 - inference runs op schemas' callbacks, which may raise anything
            failure = str(e).strip() or type(e).__name__
        if not (_blames_other_domain(failure, proto.graph) or _blames_function_body(failure)):
            break
    raise InvalidModelError(f"{source}: shape inference failed: {failure}")


_WEIGHT_ELEMENTS = 4096
"""Initializers above this many elements are declared, not sent, to onnx's shape inference: it
needs their types and shapes, and the values only of the small integer tensors that shapes are
computed from."""


def _without_weights(proto: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of `proto` whose big initializers are graph inputs of the same type and shape (no
    data), or `proto` itself when it holds no big ones. onnx's shape inference serializes the
    model it is given: for BERT-base that is 440 MB and three seconds per call, a session makes
    several (load, rewrites, each simulated partition), and the weights change no inferred type."""
    graph = proto.graph
    big = [t for t in graph.initializer if _element_count(t) > _WEIGHT_ELEMENTS]
    if not big:
        return proto
    skeleton = onnx.ModelProto()
    for field in ("ir_version", "producer_name", "producer_version", "domain", "model_version", "doc_string"):
        setattr(skeleton, field, getattr(proto, field))
    skeleton.opset_import.extend(proto.opset_import)
    skeleton.functions.extend(proto.functions)
    target = skeleton.graph
    target.name = graph.name
    target.node.extend(graph.node)
    target.input.extend(graph.input)
    target.output.extend(graph.output)
    target.value_info.extend(graph.value_info)
    target.sparse_initializer.extend(graph.sparse_initializer)
    moved = {t.name for t in big}
    target.initializer.extend(t for t in graph.initializer if t.name not in moved)
    declared = {i.name for i in graph.input}
    target.input.extend(
        onnx.helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)) for t in big if t.name not in declared
    )
    return skeleton


def _element_count(tensor: onnx.TensorProto) -> int:
    count = 1
    for d in tensor.dims:
        count *= d
    return count


def _blames_other_domain(message: str, graph: onnx.GraphProto) -> bool:
    """Whether an inference error names a node outside the default domain."""
    others = [node for sub in _graphs(graph) for node in sub.node if node.domain not in _DEFAULT_DOMAINS]
    names = {node.name for node in others}
    op_types = {node.op_type for node in others}
    return any(
        (name in names) if name else (op in op_types) for op, name in _FAILED_NODE.findall(message)
    )


def _blames_function_body(message: str) -> bool:
    """Whether an inference error is about a node inside the function body of an ONNX op
    (MeanVarianceNormalization's body holds Constant nodes strict inference rejects): onnx's
    schema, not the model, is at fault, and onnxruntime and the reference run such models."""
    blamed = _FAILED_NODE.findall(message)
    if len(blamed) < 2:
        return False
    outer = blamed[0][0]
    try:
        schema = onnx.defs.get_schema(outer)
    except onnx.defs.SchemaError:
        return False
    return schema.has_function or schema.has_context_dependent_function
