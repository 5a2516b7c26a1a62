"""Loading and validating an ONNX model: the first step of dispatch.

`load_model` turns a path, bytes or a ModelProto into a LoadedModel: checked by onnx.checker,
every default-domain op known to ONNX, external data read only from inside the model's folder,
nodes uniquely named and topologically sorted, and the dtype and shape of every value inferred,
so that capability queries and per-run feed checks need no further protobuf work.
"""
from __future__ import annotations

import os
import pathlib
import re
import tempfile
from collections import deque
from collections.abc import Iterator, Mapping
from functools import lru_cache
from typing import Any

import numpy as np
import onnx
from google.protobuf.message import DecodeError

from ..dtypes import DType
from ..errors import (
    InvalidArgumentError,
    InvalidInputError,
    InvalidModelError,
    UnsupportedDTypeError,
)
from .capability import Dim, NodeInfo, TensorInfo

__all__ = ["LoadedModel", "load_model", "load_generated", "upgrade_opset", "check_feed", "validate_feeds"]

_DEFAULT_DOMAINS = ("", "ai.onnx")
_EXTERNAL = onnx.TensorProto.EXTERNAL
_GRAPH, _GRAPHS = onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS
_TENSOR, _TENSORS = onnx.AttributeProto.TENSOR, onnx.AttributeProto.TENSORS
_SPARSE_TENSOR, _SPARSE_TENSORS = onnx.AttributeProto.SPARSE_TENSOR, onnx.AttributeProto.SPARSE_TENSORS
# How onnx's shape inference names the node it failed on: "(op_type:MatMul, node name: mm)".
_FAILED_NODE = re.compile(r"\(op_type:([^,)]+)(?:, node name: ([^)]*))?\)")


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
    _name_nodes(proto.graph)
    _check_default_ops(proto.graph, opsets.get(""), source)

    external = [t for t in _all_tensors(proto) if t.data_location == _EXTERNAL]
    # Data files are looked up beside the path as given (a symlinked model finds its data next to
    # the link, as onnx.load does); containment is judged on fully resolved paths.
    folder = None if path is None else path.absolute().parent
    if external:
        if folder is None:
            raise InvalidModelError(
                f"{source} keeps tensor {external[0].name!r} in external data ({_location(external[0])!r}), "
                "which can only be found next to the model file: pass the path of the .onnx file instead"
            )
        for tensor in external:
            _check_external_location(tensor, folder, source)

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
            _load_external_data(proto, folder, source)
        _check(proto, source)
    if by_path:
        proto = _infer(proto, source, path=path)
        _name_nodes(proto.graph)  # the file's order, so the same names as above
        _load_external_data(proto, folder, source)
    else:
        proto = _infer(proto, source)
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


def upgrade_opset(model: onnx.ModelProto, target: int) -> onnx.ModelProto:
    """A copy of `model` converted to ai.onnx opset `target` by onnx's version converter."""
    source = _proto_label(model)
    current = next((o.version for o in model.opset_import if o.domain in _DEFAULT_DOMAINS), None)
    if current is None:
        raise InvalidModelError(f"{source} imports no ai.onnx opset, so there is nothing to convert")
    newest = onnx.defs.onnx_opset_version()
    if not isinstance(target, int) or not 1 <= target <= newest:
        raise InvalidModelError(
            f"cannot convert {source} to ai.onnx opset {target!r}: onnx {onnx.__version__} knows opsets 1 to {newest}"
        )
    if target == current:
        copy = onnx.ModelProto()
        copy.CopyFrom(model)
        return copy
    try:
        return onnx.version_converter.convert_version(model, target)
    except (onnx.version_converter.ConvertError, RuntimeError, ValueError) as e:
        # The converter's message ends with the reason:
        # "...Assertion `false` failed: No Adapter From Version $14 for Relu".
        reason = str(e).rsplit("failed: ", 1)[-1].strip()
        culprits = [n for n in model.graph.node if re.search(rf"\b{re.escape(n.op_type)}\b", reason)]
        which = f"node {culprits[0].name!r} ({culprits[0].op_type}) " if culprits else ""
        raise InvalidModelError(
            f"cannot convert {source} from ai.onnx opset {current} to {target}: {which}could not be converted "
            f"({reason}); export the model at opset {target} instead"
        ) from None


def check_feed(
    info: TensorInfo,
    shape: tuple[int, ...],
    dtype: DType,
    *,
    bindings: dict[str, int],
    bound_by: dict[str, str] | None = None,
) -> None:
    """Raises InvalidInputError unless a value of `dtype` and `shape` fits input `info`.

    `bindings` maps each symbolic dimension ("batch") to the size an earlier input gave it and
    gets this input's sizes; `bound_by`, when given, remembers which input bound each name.
    """
    if info.dtype is not None and dtype is not info.dtype:
        raise _dtype_mismatch(info, dtype.value)
    _check_shape(info, shape, bindings, bound_by)


def validate_feeds(model: LoadedModel, feeds: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The feeds as C-contiguous numpy arrays, in input order, once every one fits its input.

    No casts: a dtype that differs from the declared one is an InvalidInputError, as are unknown
    or missing names, a wrong rank, a wrong fixed dimension, or a symbolic dimension ("batch")
    that two inputs give different sizes.
    """
    if type(feeds) is not dict and not isinstance(feeds, Mapping):
        raise InvalidInputError(
            f"feeds must be a mapping of input name to array, got {type(feeds).__name__}; "
            f"{model._label} takes {_names(model._inputs_by_name)}"
        )
    if not model._input_names.issuperset(feeds):
        unknown = [name for name in feeds if name not in model._input_names]
        raise InvalidInputError(
            f"{model._label} has no input named {', '.join(map(repr, unknown))}; "
            f"its inputs are {_names(model._inputs_by_name)}"
        )
    arrays: dict[str, np.ndarray] = {}
    bindings: dict[str, int] = {}
    bound_by: dict[str, str] = {}
    for name, numpy_dtype, info in model._feed_specs:
        try:
            value = feeds[name]
        except KeyError:
            raise InvalidInputError(
                f"input {name!r} ({_describe(info)}) is missing; {model._label} needs "
                f"{_names(model._inputs_by_name)}"
            ) from None
        if info.kind != "tensor":
            arrays[name] = _host_value(info.name, info.kind, value)
            continue
        try:
            array = np.asarray(value)
        except (TypeError, ValueError) as e:
            raise InvalidInputError(
                f"input {name!r} cannot be made a numpy array ({e}); pass a numpy array of {_describe(info)}"
            ) from None
        if numpy_dtype is not None and array.dtype != numpy_dtype:
            raise _dtype_mismatch(info, str(array.dtype))
        _check_shape(info, array.shape, bindings, bound_by)
        if not array.flags.c_contiguous:
            array = np.ascontiguousarray(array)
        arrays[name] = array
    return arrays


# --- reading --------------------------------------------------------------------------------


def _read(model: Any) -> tuple[onnx.ModelProto, pathlib.Path | None, str]:
    """The parsed model, the file it came from, and how messages should name it."""
    if isinstance(model, onnx.ModelProto):
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


def _proto_label(proto: onnx.ModelProto) -> str:
    return f"model {proto.graph.name!r}" if proto.graph.name else "the given ModelProto"


def _parse(data: bytes, source: str) -> onnx.ModelProto:
    proto = onnx.ModelProto()
    try:
        proto.ParseFromString(data)
    except DecodeError as e:
        raise InvalidModelError(
            f"{source} is not a valid ONNX model ({e}); it may be truncated or another kind of file: "
            "export or download it again"
        ) from None
    return proto


def _opsets(proto: onnx.ModelProto, source: str) -> dict[str, int]:
    """Domain -> imported version, with "ai.onnx" spelled ""."""
    opsets: dict[str, int] = {}
    for imported in proto.opset_import:
        domain = "" if imported.domain in _DEFAULT_DOMAINS else imported.domain
        if opsets.get(domain, imported.version) != imported.version:
            raise InvalidModelError(
                f"{source} imports {domain or 'ai.onnx'} twice, at opsets {opsets[domain]} and "
                f"{imported.version}; keep one import per domain"
            )
        opsets[domain] = imported.version
    newest = onnx.defs.onnx_opset_version()
    if opsets.get("", 0) > newest:
        raise InvalidModelError(
            f"{source} imports ai.onnx opset {opsets['']}, newer than the newest onnx {onnx.__version__} "
            f"knows ({newest}); upgrade the onnx package or export the model at opset {newest} or lower"
        )
    return opsets


# --- graph walking --------------------------------------------------------------------------


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


def _node_label(node: onnx.NodeProto) -> str:
    return f"node {node.name!r} ({node.op_type})" if node.name else f"an unnamed {node.op_type} node in a subgraph"


# --- naming and ordering --------------------------------------------------------------------


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


# --- checks ---------------------------------------------------------------------------------


def _check_default_ops(graph: onnx.GraphProto, opset: int | None, source: str) -> None:
    """Every ai.onnx node must have a schema at the imported opset; other domains are left to chips."""
    if opset is None:
        return  # the checker reports default-domain nodes without an ai.onnx import
    known: dict[str, bool] = {}
    for sub in _graphs(graph):
        for node in sub.node:
            if node.domain not in _DEFAULT_DOMAINS:
                continue
            op = node.op_type
            if op not in known:
                known[op] = onnx.defs.has(op, opset, "")
            if known[op]:
                continue
            newest = onnx.defs.onnx_opset_version()
            added = next((v for v in range(opset + 1, newest + 1) if onnx.defs.has(op, v, "")), None)
            if added is not None:
                advice = (
                    f"ONNX added {op} in opset {added}: convert the model with upgrade_opset(model, {added}) "
                    "or export it at that opset"
                )
            else:
                advice = (
                    f"ONNX has no op {op!r}; if it is a custom op, put the node in its own domain "
                    "(domain='com.example') and import that domain"
                )
            raise InvalidModelError(
                f"{source}: {_node_label(node)} is not defined at ai.onnx opset {opset}; {advice}"
            )


def _location(tensor: onnx.TensorProto) -> str:
    return next((e.value for e in tensor.external_data if e.key == "location"), "")


def _check_external_location(tensor: onnx.TensorProto, folder: pathlib.Path, source: str) -> None:
    """External data must be a regular file inside the model's folder, large enough for the tensor."""
    location = _location(tensor)
    what = f"{source}: tensor {tensor.name!r} keeps its data in {location!r}"
    if not location:
        raise InvalidModelError(f"{source}: tensor {tensor.name!r} is marked external but names no file")
    as_posix, as_windows = pathlib.PurePosixPath(location), pathlib.PureWindowsPath(location)
    if as_posix.is_absolute() or as_windows.is_absolute() or as_windows.drive or location.startswith(("/", "\\")):
        raise InvalidModelError(
            f"{what}, an absolute path; hal reads external data only from files next to the model, "
            "named relative to its folder"
        )
    if ".." in as_windows.parts:  # PureWindowsPath splits on both / and \
        raise InvalidModelError(
            f"{what}, which climbs out of the model's folder with '..'; keep external data in the model's folder"
        )
    try:
        data_file, real_folder = (folder / location).resolve(), folder.resolve()
    except (OSError, ValueError) as e:  # a symlink loop, a NUL in the name
        raise InvalidModelError(f"{what}, which cannot be resolved to a file ({e})") from None
    if not data_file.is_relative_to(real_folder):
        raise InvalidModelError(
            f"{what}, which resolves to {data_file}, outside the model's folder {real_folder} "
            "(through a symbolic link); keep external data in the model's folder"
        )
    if (folder / location).is_symlink():
        raise InvalidModelError(
            f"{what}, a symbolic link; onnx reads external data only from regular files, "
            "so put the file itself in the model's folder"
        )
    if not data_file.is_file():
        raise InvalidModelError(f"{what}, but {data_file} is not a file; copy the data file next to the model")
    entries = {e.key: e.value for e in tensor.external_data}
    try:
        offset = int(entries.get("offset", 0))
        length = int(entries.get("length", 0))
    except ValueError:
        raise InvalidModelError(f"{what} at an offset or length that is not a number: {entries}") from None
    size = data_file.stat().st_size
    if offset < 0 or length < 0 or offset + length > size:
        raise InvalidModelError(
            f"{what} at offset {offset}, length {length}, but the file has {size} bytes; "
            "the data file is truncated or belongs to another model"
        )


def _load_external_data(proto: onnx.ModelProto, folder: pathlib.Path | None, source: str) -> None:
    try:
        onnx.external_data_helper.load_external_data_for_model(proto, str(folder))
    except (OSError, ValueError, RuntimeError, onnx.checker.ValidationError) as e:
        raise InvalidModelError(f"{source}: cannot read its external data ({e})") from None


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


# --- values ---------------------------------------------------------------------------------


@lru_cache(maxsize=None)
def _dtype(code: int) -> DType | None:
    """The hal dtype of an ONNX element type; None for those hal has none of (STRING...)."""
    try:
        return DType.from_onnx(code)
    except UnsupportedDTypeError:
        return None


def _dim(dim: onnx.TensorShapeProto.Dimension) -> Dim:
    kind = dim.WhichOneof("value")
    if kind == "dim_value":
        return dim.dim_value
    if kind == "dim_param":
        return dim.dim_param or None
    return None


def _type_info(value_type: onnx.TypeProto) -> tuple[DType | None, tuple[Dim, ...] | None, str]:
    kind = value_type.WhichOneof("value")
    if kind is None:
        return None, None, "tensor"  # no type at all: nothing says it is not a tensor
    if kind not in ("tensor_type", "sparse_tensor_type"):
        return None, None, _type_text(value_type)  # sequences, maps, optionals
    tensor_type = getattr(value_type, kind)
    shape = tuple(_dim(d) for d in tensor_type.shape.dim) if tensor_type.HasField("shape") else None
    return _dtype(tensor_type.elem_type), shape, "tensor"


def _type_text(value_type: onnx.TypeProto) -> str:
    """An ONNX type as onnxruntime's NodeArg.type writes it: "seq(tensor(float))"."""
    kind = value_type.WhichOneof("value")
    if kind in ("tensor_type", "sparse_tensor_type"):
        element = getattr(value_type, kind).elem_type
        name = onnx.TensorProto.DataType.Name(element).lower() if element else "undefined"
        return f"{'sparse_tensor' if kind == 'sparse_tensor_type' else 'tensor'}({name})"
    if kind == "sequence_type":
        return f"seq({_type_text(value_type.sequence_type.elem_type)})"
    if kind == "optional_type":
        return f"optional({_type_text(value_type.optional_type.elem_type)})"
    if kind == "map_type":
        key = onnx.TensorProto.DataType.Name(value_type.map_type.key_type).lower()
        return f"map({key},{_type_text(value_type.map_type.value_type)})"
    return "unknown"


def _unknown(name: str) -> TensorInfo:
    return TensorInfo(name, None, None)


def _tensor_infos(graph: onnx.GraphProto) -> dict[str, TensorInfo]:
    """Every main-graph value with a declared or inferred type; declared inputs and outputs win."""
    # Many values share a type; reading a type field by field costs far more than serializing it.
    types: dict[bytes, tuple[DType | None, tuple[Dim, ...] | None]] = {}

    def info(value: onnx.ValueInfoProto) -> TensorInfo:
        key = value.type.SerializeToString()
        known = types.get(key)
        if known is None:
            known = types[key] = _type_info(value.type)
        return TensorInfo(value.name, *known)

    tensors = {}
    for value in graph.value_info:
        tensors[value.name] = info(value)
    for tensor in graph.initializer:
        tensors[tensor.name] = TensorInfo(tensor.name, _dtype(tensor.data_type), tuple(tensor.dims))
    for sparse in graph.sparse_initializer:
        values = sparse.values
        tensors[values.name] = TensorInfo(values.name, _dtype(values.data_type), tuple(sparse.dims))
    for value in (*graph.output, *graph.input):
        tensors[value.name] = info(value)
    return tensors


# --- feeds ----------------------------------------------------------------------------------


def _names(names: Any) -> str:
    return ", ".join(repr(n) for n in names) or "(none)"


def _format_shape(shape: tuple[Dim, ...]) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"


def _describe(info: TensorInfo) -> str:
    dtype = "any dtype" if info.dtype is None else info.dtype.value
    return f"{dtype} {'of any shape' if info.shape is None else _format_shape(info.shape)}"


def _host_value(name: str, kind: str, value: Any) -> Any:
    """A feed for a sequence, optional or map input, checked against its ONNX type and passed on
    as onnxruntime takes it: a list of C-contiguous arrays, None, a dict."""
    if kind.startswith("optional("):
        return None if value is None else _host_value(name, kind[len("optional("):-1], value)
    if kind.startswith("seq("):
        if isinstance(value, np.ndarray) or not isinstance(value, (list, tuple)):
            raise InvalidInputError(
                f"input {name!r} is a sequence ({kind}): pass a list of numpy arrays, got {type(value).__name__}"
            )
        element = kind[len("seq("):-1]
        return [_host_value(f"{name}[{i}]", element, item) for i, item in enumerate(value)]
    if kind.startswith("map("):
        if not isinstance(value, Mapping):
            raise InvalidInputError(f"input {name!r} is a map ({kind}): pass a dict, got {type(value).__name__}")
        return dict(value)
    if value is None or isinstance(value, (list, tuple, Mapping)):
        raise InvalidInputError(f"{name} must be a {kind}: pass a numpy array, got {type(value).__name__}")
    array = np.ascontiguousarray(value)
    want = _element_numpy_dtype(kind)
    if want is not None and array.dtype != want:
        raise InvalidInputError(f"{name} must be a {kind}, got {array.dtype}; convert it with .astype({str(want)!r})")
    return array


@lru_cache(maxsize=None)
def _element_numpy_dtype(kind: str) -> np.dtype | None:
    """numpy's dtype for "tensor(float)" (None where onnx has none, or the text is not a tensor)."""
    if not (kind.startswith("tensor(") and kind.endswith(")")):
        return None
    try:
        return onnx.helper.tensor_dtype_to_np_dtype(onnx.TensorProto.DataType.Value(kind[len("tensor("):-1].upper()))
    except (ValueError, KeyError, TypeError):
        return None


def _dtype_mismatch(info: TensorInfo, got: str) -> InvalidInputError:
    return InvalidInputError(
        f"input {info.name!r} must be {info.dtype}, got {got}; hal does not cast silently: "
        f"convert it with .astype({str(info.dtype)!r})"
    )


def _check_shape(
    info: TensorInfo, shape: tuple[int, ...], bindings: dict[str, int], bound_by: dict[str, str] | None
) -> None:
    expected = info.shape
    if expected is None:
        return
    if len(shape) != len(expected):
        raise InvalidInputError(
            f"input {info.name!r} must have rank {len(expected)} {_format_shape(expected)}, "
            f"got rank {len(shape)} {list(shape)}"
        )
    for axis, want in enumerate(expected):
        got = shape[axis]
        if want is None or want == got:
            continue
        if type(want) is int:
            raise InvalidInputError(
                f"input {info.name!r} must have dimension {axis} = {want} (shape {_format_shape(expected)}), "
                f"got {got} (shape {list(shape)})"
            )
        bound = bindings.setdefault(want, got)
        if bound == got:
            if bound_by is not None:
                bound_by.setdefault(want, info.name)
            continue
        first = f"input {bound_by[want]!r}" if bound_by and want in bound_by else "an earlier input"
        raise InvalidInputError(
            f"{want} is {bound} in {first} but {got} in input {info.name!r} (dimension {axis}); "
            f"every input must give {want} the same size"
        )
