"""Loading and validating an ONNX model: the first step of dispatch.

`load_model` turns a path, bytes or a ModelProto into a LoadedModel: checked by onnx.checker,
every default-domain op known to ONNX, external data read only from inside the model's folder,
nodes uniquely named and topologically sorted, and the dtype and shape of every value inferred,
so that capability queries and per-run feed checks need no further protobuf work.

Each step lives in the module named for it: opsets.py, external_data.py, tensor_data.py (each
tensor as long as its dims say), nodes.py (naming and sorting), shape_inference.py,
tensor_types.py (ONNX types read into TensorInfo); feeds.py checks the inputs of each run against
a LoadedModel.
"""
from __future__ import annotations

import os
import pathlib
from typing import Any

import onnx
from google.protobuf.message import DecodeError

from ..errors import InvalidArgumentError, InvalidInputError, InvalidModelError
from ..capability import NodeInfo, TensorInfo
from .external_data import _external_tensors, _load_external_data
from .nodes import _check_text, _name_nodes, _sort_nodes
from .opsets import _DEFAULT_DOMAINS, _check_default_ops, _opsets
from .shape_inference import _infer
from .tensor_data import check_tensor_data
from .tensor_types import _tensor_infos, _unknown
from .walk import _all_tensors, _proto_label, _subgraph_depth

__all__ = ["LoadedModel", "load_model", "load_generated"]

# Subgraph levels protobuf's parser reads (its limit is 100 nested messages; each If/Loop level
# takes three: node, attribute, graph); measured by tests/fuzz/test_limits.py.
_MAX_SUBGRAPH_DEPTH = 32


class LoadedModel:
    """A checked, shape-inferred ONNX model and what hal knows about each of its values.

    Made by `load_model`. `proto`'s main-graph nodes are topologically sorted and carry unique,
    non-empty names; `tensors` maps every value name of the main graph to its TensorInfo.
    """

    proto: onnx.ModelProto
    path: pathlib.Path | None
    opsets: dict[str, int]
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    tensors: dict[str, TensorInfo]
    initializers: frozenset[str]

    def __init__(self, proto: onnx.ModelProto, path: pathlib.Path | None, opsets: dict[str, int]) -> None:
        graph = proto.graph
        self.proto = proto
        self.path = path
        self.opsets = opsets
        self.initializers = frozenset(
            [t.name for t in graph.initializer] + [s.values.name for s in graph.sparse_initializer]
        )
        self.tensors = _tensor_infos(graph)
        self.inputs = [self.tensors[v.name] for v in graph.input if v.name not in self.initializers]
        self.outputs = [self.tensors[v.name] for v in graph.output]
        self._inputs_by_name = {info.name: info for info in self.inputs}
        self._outputs_by_name = {info.name: info for info in self.outputs}
        # What validate_feeds needs on every run, worked out once.
        self._input_names = frozenset(self._inputs_by_name)
        self._feed_specs = tuple(
            (info.name, None if info.dtype is None else info.dtype.numpy, info) for info in self.inputs
        )
        self._node_infos: list[NodeInfo] | None = None

    def node_infos(self) -> list[NodeInfo]:
        """A NodeInfo for every main-graph node, in topological order (computed once)."""
        if self._node_infos is None:
            self._node_infos = [self._node_info(node) for node in self.proto.graph.node]
        return list(self._node_infos)

    def input(self, name: str) -> TensorInfo:
        try:
            return self._inputs_by_name[name]
        except KeyError:
            raise InvalidInputError(
                f"{self._label}: no input named {name!r}; its inputs are {_names(self._inputs_by_name)}"
            ) from None

    def output(self, name: str) -> TensorInfo:
        try:
            return self._outputs_by_name[name]
        except KeyError:
            raise InvalidArgumentError(
                f"{self._label}: no output named {name!r}; its outputs are {_names(self._outputs_by_name)}"
            ) from None

    def __repr__(self) -> str:
        return (
            f"LoadedModel({self._label}, {len(self.proto.graph.node)} nodes, "
            f"inputs={[i.name for i in self.inputs]}, outputs={[o.name for o in self.outputs]})"
        )

    @property
    def _label(self) -> str:
        return str(self.path) if self.path is not None else _proto_label(self.proto)

    def _node_info(self, node: onnx.NodeProto) -> NodeInfo:
        tensors = self.tensors
        domain = "" if node.domain in _DEFAULT_DOMAINS else node.domain
        return NodeInfo(
            name=node.name,
            op_type=node.op_type,
            domain=domain,
            opset=self.opsets[domain],
            inputs=tuple((tensors.get(name) or _unknown(name)) if name else None for name in node.input),
            # A value inference could not type (a custom op's output), or an omitted optional output,
            # keeps its position with nothing known about it.
            outputs=tuple(tensors.get(name) or _unknown(name) for name in node.output),
            attributes={a.name: onnx.helper.get_attribute_value(a) for a in node.attribute},
            proto=node,
        )


def load_model(model: str | os.PathLike | bytes | onnx.ModelProto) -> LoadedModel:
    """Loads, checks and shape-infers a model given as a path, serialized bytes or a ModelProto.

    A ModelProto is copied, never changed. External data is read from the model's folder only.
    Every problem is an InvalidModelError that names the file, node or tensor at fault.
    """
    proto, path, source = _read(model)
    if not proto.HasField("graph"):
        raise InvalidModelError(
            f"{source} has no graph: it is empty, truncated or not an ONNX model; export or download it again"
        )
    opsets = _opsets(proto, source)
    if any(domain not in (*_DEFAULT_DOMAINS, "ai.onnx.ml") for domain in opsets):
        # kernel ops (hal.ops): onnx checks and infers them from the schemas hal registers
        from ..ops.schemas import ensure_registered

        ensure_registered()
    _check_text(proto, source)
    _name_nodes(proto.graph)
    _check_default_ops(proto.graph, opsets.get(""), source)

    external, data_files = _external_tensors(proto, path, source)
    check_tensor_data(_all_tensors(proto), source)  # before anything reads a tensor the size its dims claim

    # With external data, check and infer by path, so that weights beyond protobuf's 2 GiB are never
    # serialized; the data is read in afterwards.
    by_path = bool(external) or path is not None  # onnx reads the file itself: no 2nd copy in Python
    try:
        _check(str(path) if by_path else proto, source)
    except InvalidModelError:
        # onnx refuses nodes out of topological order; hal sorts them instead (Kahn's algorithm,
        # run only here, as a valid graph is already sorted) and checks again.
        if not _sort_nodes(proto.graph, source):
            raise
        if by_path:  # the file holds the unsorted order, so the sorted graph is checked in memory
            by_path = False
            _load_external_data(proto, data_files, source)
        _check(proto, source)
    if by_path:
        proto = _infer(proto, source, path=path)
        _name_nodes(proto.graph)  # the file's order, so the same names as above
        _load_external_data(proto, data_files, source)
    else:
        proto = _infer(proto, source)
    # External tensors were held to their dims as they were read (external_data.py reads exactly
    # dims x itemsize bytes), so they are not checked again: len(raw_data) would copy each of them.
    return LoadedModel(proto, path, opsets)


def load_generated(proto: onnx.ModelProto) -> LoadedModel:
    """A model hal built itself (a partition, a numerics rewrite of one): shape-inferred but not
    checked. Its nodes come from a model load_model already checked, and its boundary may hold
    values of unknown rank, which onnx's checker refuses on graph inputs and outputs although
    every runtime takes them."""
    source = _proto_label(proto)
    opsets = _opsets(proto, source)
    if any(domain not in (*_DEFAULT_DOMAINS, "ai.onnx.ml") for domain in opsets):
        from ..ops.schemas import ensure_registered

        ensure_registered()
    return LoadedModel(_infer(proto, source), None, opsets)


# --- reading --------------------------------------------------------------------------------


def _read(model: Any) -> tuple[onnx.ModelProto, pathlib.Path | None, str]:
    """The parsed model, the file it came from, and how messages should name it."""
    if isinstance(model, onnx.ModelProto):
        # A file cannot nest deeper (protobuf's parser refuses it: _parse), but a ModelProto built in
        # memory can, and onnx.checker would then fail to read its own serialization.
        depth = _subgraph_depth(model.graph)
        if depth > _MAX_SUBGRAPH_DEPTH:
            raise InvalidModelError(
                f"{_proto_label(model)} nests subgraphs (If/Loop/Scan bodies) {depth} levels deep; protobuf parses at "
                f"most 100 nested messages, about {_MAX_SUBGRAPH_DEPTH} levels of subgraphs: flatten the nesting"
            )
        proto = onnx.ModelProto()
        proto.CopyFrom(model)
        return proto, None, _proto_label(model)
    if isinstance(model, (bytes, bytearray, memoryview)):
        data = bytes(model)
        source = f"the model bytes ({len(data)} bytes)"
        return _parse(data, source), None, source
    if isinstance(model, (str, os.PathLike)):
        path = pathlib.Path(model)
        source = str(path)
        if path.is_dir():
            raise InvalidModelError(f"{source} is a directory, not an ONNX file; pass the .onnx file inside it")
        if not path.exists():
            raise InvalidModelError(f"model file {source} does not exist; check the path")
        if not path.is_file():
            raise InvalidModelError(f"{source} is not a regular file; pass the path of an .onnx file")
        try:
            data = path.read_bytes()
        except OSError as e:
            raise InvalidModelError(
                f"cannot read model file {source} ({e.strerror or e}); check that it is a readable file"
            ) from None
        return _parse(data, source), path, source
    raise InvalidArgumentError(
        f"load_model takes a path, serialized bytes or an onnx.ModelProto, got {type(model).__name__}"
    )


def _parse(data: bytes, source: str) -> onnx.ModelProto:
    proto = onnx.ModelProto()
    try:
        proto.ParseFromString(data)
    except DecodeError as e:
        if "MaxDepth" in str(e):  # upb's limit on nested messages, not damage
            raise InvalidModelError(
                f"{source} nests subgraphs (If/Loop/Scan bodies) deeper than protobuf parses (100 nested messages, "
                f"about {_MAX_SUBGRAPH_DEPTH} levels of subgraphs): flatten the nesting"
            ) from None
        raise InvalidModelError(
            f"{source} is not a valid ONNX model ({e}); it may be truncated or another kind of file: "
            "export or download it again"
        ) from None
    return proto


def _check(model: onnx.ModelProto | str, source: str) -> None:
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as e:
        raise InvalidModelError(f"{source} is not a valid ONNX model: {str(e).strip()}") from None
    except ValueError as e:  # onnx refuses to serialize a model over protobuf's 2 GiB limit
        raise InvalidModelError(
            f"{source} cannot be checked in memory ({e}); save it with "
            "onnx.save_model(model, path, save_as_external_data=True) and load it from that path"
        ) from None


def _names(names: Any) -> str:
    return ", ".join(repr(n) for n in names) or "(none)"
