"""Running ONNX subgraphs on the host: onnxruntime's CPU provider where it has a kernel, onnx's
reference implementation where it does not (slow, but correct, and marked as such).

The CPU backend runs its partitions with this, and simulated chips run their emulated graphs with
it. onnxruntime's capability is read from its own kernel registry (op, domain, opset range, type
constraints), not guessed.
"""
from __future__ import annotations

import functools
import re
import threading
import time
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import onnx

from .. import profiler
from ..dtypes import DType
from ..errors import ExecutionError, InvalidModelError, OutOfMemoryError, UnsupportedOpError
from ..memory import format_bytes, host_memory_bytes
from ..capability import NodeInfo, Support, TensorInfo
from .reference_routes import reference_route

__all__ = ["kernel_supports", "since_version", "formal_types", "ort_cpu_supports", "ort_provider_supports", "reference_supports", "host_supports", "HostProgram"]

_ONNX_TYPE_NAME = {
    "tensor(float)": DType.FLOAT32, "tensor(double)": DType.FLOAT64, "tensor(float16)": DType.FLOAT16,
    "tensor(bfloat16)": DType.BFLOAT16, "tensor(int8)": DType.INT8, "tensor(int16)": DType.INT16,
    "tensor(int32)": DType.INT32, "tensor(int64)": DType.INT64, "tensor(uint8)": DType.UINT8,
    "tensor(uint16)": DType.UINT16, "tensor(uint32)": DType.UINT32, "tensor(uint64)": DType.UINT64,
    "tensor(bool)": DType.BOOL, "tensor(complex64)": DType.COMPLEX64, "tensor(complex128)": DType.COMPLEX128,
}


def _domain(domain: str) -> str:
    return "" if domain in ("", "ai.onnx") else domain


@functools.lru_cache(maxsize=4096)
def _schema(op_type: str, opset: int, domain: str) -> onnx.defs.OpSchema | None:
    try:
        return onnx.defs.get_schema(op_type, opset, domain)
    except onnx.defs.SchemaError:
        return None


def since_version(node: NodeInfo) -> int | None:
    """The version of the op's definition that the model's opset selects (None: no schema)."""
    schema = _schema(node.op_type, node.opset, _domain(node.domain))
    return schema.since_version if schema is not None else None


def formal_types(node: NodeInfo) -> dict[str, list[DType | None]] | None:
    """Type-constraint name ("T") -> dtypes of the node's tensors bound to it, from the schema."""
    schema = _schema(node.op_type, node.opset, _domain(node.domain))
    if schema is None:
        return None
    bound: dict[str, list[DType | None]] = {}
    for formals, actuals in ((schema.inputs, node.inputs), (schema.outputs, node.outputs)):
        for i, actual in enumerate(actuals):
            if actual is None or not formals:
                continue
            formal = formals[min(i, len(formals) - 1)]  # a variadic last formal binds the rest
            bound.setdefault(formal.type_str, []).append(actual.dtype)
    return bound


@functools.lru_cache(maxsize=4)
def _ort_kernels(provider: str = "CPUExecutionProvider") -> dict[tuple[str, str], list[tuple[int, int, dict[str, frozenset[DType]]]]]:
    """(domain, op) -> [(first version, last version, {constraint: dtypes})] of one ORT provider."""
    from onnxruntime.capi import onnxruntime_pybind11_state as ort_c

    table: dict[tuple[str, str], list[tuple[int, int, dict[str, frozenset[DType]]]]] = {}
    for kernel in ort_c.get_all_opkernel_def():
        if kernel.provider != provider:
            continue
        constraints = {
            name: frozenset(_ONNX_TYPE_NAME[t] for t in types if t in _ONNX_TYPE_NAME)
            for name, types in kernel.type_constraints.items()
        }
        first, last = kernel.version_range
        table.setdefault((_domain(kernel.domain), kernel.op_name), []).append((first, last, constraints))
    return table


def ort_cpu_supports(node: NodeInfo) -> Support:
    """Whether onnxruntime's CPU provider has a kernel for this op, opset and these dtypes, and
    hal runs the node with it: not where that kernel departs from the ONNX specification
    (hal/graph/reference_routes.py)."""
    route = reference_route(node)
    if route is not None:
        return Support.no(f"onnxruntime's CPU kernel is not used for this {node.qualified_op}: {route.reason}")
    return ort_provider_supports(node, "CPUExecutionProvider")


def ort_provider_supports(node: NodeInfo, provider: str) -> Support:
    """Whether one onnxruntime execution provider ("CUDAExecutionProvider") of the installed
    onnxruntime build has a kernel for this op, opset and these dtypes."""
    # The answer depends only on the op, its opset and its tensors' dtypes: graphs repeat those
    # (a transformer's layers, a 10k-node chain), and sessions ask for every node twice.
    signature = (provider, *node.type_signature())
    found = _provider_answers.get(signature)
    if found is None:
        found = _provider_answers[signature] = _ort_provider_supports(node, provider)
    return found


_provider_answers: dict[tuple, Support] = {}


def _ort_provider_supports(node: NodeInfo, provider: str) -> Support:
    who = f"onnxruntime's {provider.removesuffix('ExecutionProvider')} provider"
    if node.op_type == "Constant" and _domain(node.domain) == "":
        return Support.yes()  # no kernel: onnxruntime folds Constant nodes into initializers
    kernels = _ort_kernels(provider).get((_domain(node.domain), node.op_type))
    if not kernels:
        return Support.no(f"{who} has no {node.qualified_op} kernel")
    version = since_version(node) or node.opset
    in_range = [k for k in kernels if k[0] <= version <= k[1]]
    if not in_range:
        return Support.no(f"{who} has no {node.qualified_op} kernel for opset {version}")
    bound = formal_types(node) or {}
    for _, _, constraints in in_range:
        if all(
            dtype is None or name not in constraints or dtype in constraints[name]
            for name, dtypes in bound.items()
            for dtype in dtypes
        ):
            return Support.yes()
    used = sorted({str(d) for ds in bound.values() for d in ds if d is not None})
    return Support.no(f"{who} has no {node.qualified_op} kernel for {', '.join(used)}")


# The reference evaluator's op modules per domain, as ReferenceEvaluator picks them.
_REFERENCE_DOMAINS = {
    "": "onnx.reference.ops", "ai.onnx.ml": "onnx.reference.ops.aionnxml",
    "ai.onnx.preview": "onnx.reference.ops.aionnx_preview",
    "ai.onnx.preview.training": "onnx.reference.ops.aionnx_preview_training",
}


@functools.lru_cache(maxsize=4096)
def _reference_has(domain: str, op_type: str, version: int) -> bool:
    import importlib

    from onnx.reference import ReferenceEvaluator
    from onnx.reference.op_run import RuntimeContextError

    module = _REFERENCE_DOMAINS.get(domain)
    if module is None:
        return False
    load_op = importlib.import_module(module).load_op
    try:
        if domain == "":  # ops defined by a function body run that body
            load_op(domain, op_type, version, evaluator_cls=ReferenceEvaluator)
        else:
            load_op(domain, op_type, version)
    except RuntimeContextError:  # a context-dependent function: built per node when it runs
        return True
    except Exception:  # load_op raises a variety of errors for unknown ops
        return False
    return True


def reference_supports(node: NodeInfo) -> Support:
    if _reference_has(_domain(node.domain), node.op_type, since_version(node) or node.opset):
        return Support.yes("onnx reference implementation (slow)", slow=True)
    if _domain(node.domain) not in _REFERENCE_DOMAINS:
        return Support.no(f"onnx's reference implementation has no {node.qualified_op}")
    return Support.no(f"neither onnxruntime's CPU provider nor onnx's reference implementation runs {node.qualified_op}")


def kernel_supports(node: NodeInfo, backend: str) -> Support | None:
    """The answer of hal's kernel registry (hal.ops) for a node of a custom domain: yes when
    `backend` has a kernel for the node's op and the dtype of its first input, no naming the
    backends that do; None when no kernel of that op exists anywhere (not a kernel op)."""
    if _domain(node.domain) == "":
        return None
    from ..ops.schemas import kernel_supports as registry_answer

    first = node.inputs[0] if node.inputs else None
    dtype = str(first.dtype) if first is not None and first.dtype is not None else None
    answer = registry_answer(node.domain, node.op_type, backend, dtype)
    if answer is None:
        return None
    supported, reason = answer
    return Support.yes() if supported else Support.no(reason)


def host_supports(node: NodeInfo, kernel_backend: str = "cpu") -> Support:
    """hal's registered kernels for custom-domain ops; onnxruntime's CPU provider first for the
    others, onnx's reference implementation where it has no kernel."""
    kernel = kernel_supports(node, kernel_backend)
    if kernel is not None:
        return kernel
    native = ort_cpu_supports(node)
    if native:
        return native
    reference = reference_supports(node)
    if reference:
        return Support.yes(f"{native.reason}: onnx reference implementation (slow)", slow=True)
    return Support.no(f"{native.reason}, and onnx's reference implementation has none either")


# ONNX element types onnxruntime's Python API exchanges as numpy arrays (0: not known here).
# Others (bfloat16, float8, int4, float4...) it can neither take as feeds nor return.
_ORT_NUMPY_TYPES = frozenset({0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13})


def _boundary_types(model: onnx.ModelProto) -> set[int]:
    found = set()
    for info in (*model.graph.input, *model.graph.output):
        kind = info.type.WhichOneof("value")
        if kind == "tensor_type":
            found.add(info.type.tensor_type.elem_type)
    return found


class _Segment:
    """A run of consecutive nodes executed by one engine. An onnxruntime segment that onnxruntime
    cannot load, or whose inputs or outputs have a type its Python API cannot pass (bfloat16,
    float8...), runs in the reference evaluator instead when that runs all its nodes; so does a run
    in which one of onnxruntime's kernels fails on the values it got (ConvInteger with a per-channel
    weight zero point, ReduceMax of an empty bool set): the answer comes from the reference."""

    def __init__(self, model: onnx.ModelProto, nodes: Sequence[NodeInfo], slow: bool, threads: int | None, spinning: bool):
        self.input_names = [i.name for i in model.graph.input]
        self.output_names = [o.name for o in model.graph.output]
        self._session = self._reference = None
        reference_runs_all = all(reference_supports(n) for n in nodes)
        if not slow:
            self._session = self._onnxruntime(model, reference_runs_all, threads, spinning)
            if self._session is not None:  # onnxruntime drops inputs no node reads, and refuses them as feeds
                self.input_names = [i.name for i in self._session.get_inputs()]
        self.slow = self._session is None
        # Kept for a run in which an onnxruntime kernel fails; the evaluator is built then.
        self._model = model if reference_runs_all else None
        if self.slow:
            self._reference = self._reference_evaluator()

    def _reference_evaluator(self) -> Any:
        from onnx.reference import ReferenceEvaluator

        return ReferenceEvaluator(self._model)

    @staticmethod
    def _onnxruntime(model: onnx.ModelProto, reference_runs_all: bool, threads: int | None, spinning: bool) -> Any | None:
        import onnxruntime as ort

        if reference_runs_all and not _boundary_types(model) <= _ORT_NUMPY_TYPES:
            return None
        options = ort.SessionOptions()
        # A kernel failure reaches the caller as an exception (or a re-run in the reference
        # implementation); onnxruntime's own error log would print it a second time.
        options.log_severity_level = 4
        if threads:
            options.intra_op_num_threads = threads
        if not spinning:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
            if reference_runs_all:
                return None
            raise UnsupportedOpError(f"onnxruntime's CPU provider cannot load this subgraph: {exc}") from None

    def run(self, output_names: Sequence[str] | None, feeds: Mapping[str, Any]) -> list[Any]:
        """onnxruntime's signature: the segment's inputs by name, outputs in the order asked."""
        if self._session is None:
            return self._reference.run(output_names, feeds)
        try:
            return self._session.run(output_names, feeds)
        except _ort_kernel_failures() as exc:
            too_big = _ORT_ALLOCATION_FAILURE.search(str(exc))
            if too_big:  # the reference implementation would allocate as much: say so at once
                asked = f"{format_bytes(int(too_big[1]))}" if too_big[1] else "more than 2**63 bytes"
                raise OutOfMemoryError(
                    f"a node's output needs {asked} of host memory, which cannot be allocated "
                    f"(the host has {format_bytes(host_memory_bytes())}); check the sizes the inputs make "
                    f"(onnxruntime: {str(exc).strip()})"
                ) from None
            if self._model is None:
                raise ExecutionError(f"onnxruntime's CPU provider failed: {exc}") from None
            if self._reference is None:
                warnings.warn(f"onnxruntime's CPU provider failed on these inputs ({exc}); hal re-ran this part "
                              "of the model in onnx's reference implementation (slow), as it will whenever that "
                              "kernel fails",
                              RuntimeWarning, stacklevel=2)
                self._reference = self._reference_evaluator()
            try:
                return self._reference.run(output_names, feeds)
            except Exception as reference_exc:
                raise ExecutionError(
                    f"onnxruntime's CPU provider failed ({exc}), and onnx's reference implementation too "
                    f"({type(reference_exc).__name__}: {reference_exc}); check the inputs' values and shapes"
                ) from None
        except ValueError as exc:  # numpy refused an output's shape (2**31 x 2**31 x 0: no elements, yet too big)
            raise ExecutionError(
                f"onnxruntime's CPU provider made an output numpy cannot hold ({exc}); check the sizes the inputs make"
            ) from None
        except _ort_invalid_argument() as exc:  # feeds are checked before: a kernel refused the values it got
            raise ExecutionError(
                f"onnxruntime's CPU provider refused the values it got ({str(exc).strip()}); check the inputs' "
                "values (indices in range?) and shapes"
            ) from None

    def update(self, env: dict[str, Any]) -> None:
        feeds = {name: env[name] for name in self.input_names}
        env.update(zip(self.output_names, self.run(self.output_names, feeds)))


# onnxruntime's words for an output it could not allocate, or whose byte count overflowed.
_ORT_ALLOCATION_FAILURE = re.compile(r"Failed to allocate memory for requested buffer of size (\d+)|storage size overflowed")


@functools.lru_cache(maxsize=1)
def _ort_invalid_argument() -> type[BaseException]:
    from onnxruntime.capi import onnxruntime_pybind11_state as ort_c

    return ort_c.InvalidArgument


@functools.lru_cache(maxsize=1)
def _ort_kernel_failures() -> tuple[type[BaseException], ...]:
    """onnxruntime's errors for a kernel that fails on its inputs (not for bad feed names or types,
    which InvalidArgument reports and the reference would reject too)."""
    from onnxruntime.capi import onnxruntime_pybind11_state as ort_c

    return (ort_c.Fail, ort_c.RuntimeException, ort_c.NotImplemented)


class _KernelSegment:
    """Consecutive nodes of custom domains, each run by the kernel hal's registry has for
    (domain, op, kernel_backend, dtype of its first input), on the host arrays in place."""

    slow = False
    _session = None

    def __init__(self, model: onnx.ModelProto, nodes: Sequence[NodeInfo], kernel_backend: str):
        from onnx import numpy_helper

        self.kernel_backend = kernel_backend
        read = {t.name for n in nodes for t in n.inputs if t is not None}
        self._weights = {w.name: np.ascontiguousarray(numpy_helper.to_array(w)) for w in model.graph.initializer if w.name in read}
        self._calls = [
            (n.domain, n.op_type, [t.name if t is not None else "" for t in n.inputs], [t.name for t in n.outputs],
             {k: v.decode() if isinstance(v, bytes) else v for k, v in n.attributes.items()})
            for n in nodes
        ]

    def update(self, env: dict[str, np.ndarray]) -> None:
        from ..dtypes import dtype as as_dtype
        from ..ops.registry import find

        for domain, op, inputs, outputs, attrs in self._calls:
            arrays = [np.ascontiguousarray(env[name] if name in env else self._weights[name]) for name in inputs if name]
            kernel = find(domain, op, self.kernel_backend, str(as_dtype(arrays[0].dtype)))
            env.update(zip(outputs, kernel.run(arrays, attrs)))


class HostProgram:
    """A standalone ONNX model compiled for the host: consecutive nodes onnxruntime can run become
    one onnxruntime session, the others run in onnx's reference evaluator, and nodes of custom
    domains run hal's registered kernels (those of `kernel_backend`), in topological order."""

    def __init__(self, model: onnx.ModelProto, nodes: Sequence[NodeInfo], *, threads: int | None = None,
                 spinning: bool = True, kernel_backend: str = "cpu"):
        self.input_names = [i.name for i in model.graph.input]
        self.output_names = [o.name for o in model.graph.output]
        self._engines = [_engine(n, kernel_backend) for n in nodes]
        self._model, self._nodes, self._threads, self._kernel_backend = model, list(nodes), threads, kernel_backend
        if not self.output_names:  # dead nodes: nothing reads what they compute
            self._segments = []
        elif all(engine == "onnxruntime" for engine in self._engines):
            self._segments = [_Segment(model, nodes, False, threads, spinning)]
        else:
            self._segments = [segment for _, segment in self._split(per_node=False)]
        self.slow = any(segment.slow for segment in self._segments)
        self._lock = threading.Lock()
        self._node_steps: list[tuple[NodeInfo, _Segment | _KernelSegment, dict[str, str]]] | None = None

    def _split(self, *, per_node: bool) -> list[tuple[list[NodeInfo], _Segment | _KernelSegment]]:
        # Each onnxruntime segment has its own thread pool; spinning workers of one would take
        # the cores the next segment needs (CompileOptions.intra_op_spinning), so they wait.
        return [
            (members, _KernelSegment(sub, members, self._kernel_backend) if engine == "kernel"
             else _Segment(sub, members, engine == "reference", self._threads, False))
            for sub, members, engine in _split_by_engine(self._model, self._nodes, self._engines, per_node=per_node)
        ]

    @property
    def single_session(self) -> Any:
        """Runs the whole program on numpy arrays with onnxruntime's `run(output_names, feeds)`:
        the one segment itself when one engine runs everything (the fast path: one Python call
        over onnxruntime's). Values of dtypes hal has no DType for (float8, int4) pass through, as
        they do between segments."""
        only = self._segments[0] if len(self._segments) == 1 else None
        if isinstance(only, _Segment) and only.input_names == self.input_names:
            return only
        return _ProgramSession(self)

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Runs the program. Inside a profiler's span (the partition's slice) it runs node by node
        and records each node's wall time as a slice nested in that span."""
        env = dict(feeds)
        recorder = profiler.active()
        span = recorder.open_span() if recorder is not None else None
        steps = self._by_node(recorder, span) if recorder is not None and span is not None else None
        if recorder is None or span is None or steps is None:
            for segment in self._segments:
                segment.update(env)
            return {name: env[name] for name in self.output_names}
        for node, segment, args in steps:
            start = time.perf_counter()
            segment.update(env)
            end = time.perf_counter()
            recorder.record(profiler.TraceEvent(node.label, span.category, span.device, span.track, start, end, args={
                **args,
                "inputs": [_value_text(env.get(t.name), t) for t in node.inputs if t is not None],
                "outputs": [_value_text(env.get(t.name), t) for t in node.outputs],
            }))
        return {name: env[name] for name in self.output_names}

    def _by_node(self, recorder: profiler.Profiler, span: profiler.OpenSpan) -> list[tuple[NodeInfo, _Segment | _KernelSegment, dict[str, str]]] | None:
        """The program as one segment per live node, built at the first profiled run (an
        onnxruntime session per node: the nodes' own times, without fusions across nodes) and shown
        as a slice of its own; None when there is nothing to run, or some node cannot run on its
        own (a warning says so, and the profile shows the partition whole)."""
        with self._lock:
            if self._node_steps is None:
                if len(self._segments) == 1 and len(self._nodes) == 1:
                    split = [(self._nodes, self._segments[0])]
                else:
                    start = time.perf_counter()
                    try:
                        split = self._split(per_node=True)
                    except Exception as exc:  # onnxruntime's load errors share no base below Exception
                        warnings.warn(f"the profile shows partition '{self._model.graph.name}' as one slice: its nodes "
                                      f"cannot run one at a time ({type(exc).__name__}: {exc})", RuntimeWarning, stacklevel=3)
                        split = []
                    recorder.record(profiler.TraceEvent("prepare the node-by-node run (once)", "host", span.device, span.track,
                                                        start, time.perf_counter(), args={"nodes": len(split)}))
                self._node_steps = [
                    (members[0], segment, {"op": members[0].qualified_op, "node": members[0].name, "engine": _engine_text(segment)})
                    for members, segment in split
                ]
            return self._node_steps or None


def _engine_text(segment: _Segment | _KernelSegment) -> str:
    if isinstance(segment, _KernelSegment):
        return f"hal kernel ({segment.kernel_backend})"
    return "onnx reference implementation (slow)" if segment.slow else "onnxruntime"


def _value_text(value: Any, info: TensorInfo) -> str:
    """"float32[2,64]" for an array the program holds, else what the model says of the tensor (a
    weight, a value that is not a tensor)."""
    if isinstance(value, np.ndarray):
        return f"{value.dtype}[{','.join(map(str, value.shape))}]"
    return info.describe()


def _engine(node: NodeInfo, kernel_backend: str) -> str:
    """"kernel" (hal's registry), "onnxruntime" or "reference" (onnx's evaluator)."""
    if kernel_supports(node, kernel_backend) is not None:
        return "kernel"
    return "onnxruntime" if ort_cpu_supports(node) else "reference"


class _ProgramSession:
    """A HostProgram behind onnxruntime's run(output_names, feeds) signature."""

    def __init__(self, program: HostProgram):
        self.program = program

    def run(self, output_names: Sequence[str] | None, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        results = self.program.run(feeds)
        return [results[name] for name in (output_names or self.program.output_names)]


def _split_by_engine(model: onnx.ModelProto, nodes: Sequence[NodeInfo], engines: list[str], *, per_node: bool = False):
    """Consecutive runs (in topological order) of nodes with the same engine (per_node: each node
    a run of its own), each as a model with its nodes; a run none of whose results is read later
    (dead nodes) is left out."""
    from .extract import GraphIndex, implicit_inputs

    index = GraphIndex(model)
    graph_outputs = {o.name for o in model.graph.output}
    runs: list[tuple[list[int], str]] = []
    for i, engine in enumerate(engines):
        if runs and runs[-1][1] == engine and not per_node:
            runs[-1][0].append(i)
        else:
            runs.append(([i], engine))
    consumers_after: dict[str, int] = {}
    for position, node in enumerate(nodes):
        for t in node.inputs:
            if t is not None:
                consumers_after[t.name] = position
        if node.proto is not None and node.proto.attribute:  # If/Loop/Scan bodies read outer names
            for name in implicit_inputs(node.proto):
                consumers_after[name] = position
    for indices, engine in runs:
        members = [nodes[i] for i in indices]
        last = indices[-1]
        produced = [t.name for n in members for t in n.outputs]
        needed_later = [name for name in produced if consumers_after.get(name, -1) > last or name in graph_outputs]
        if needed_later:
            yield index.extract(members, needed_later, f"{model.graph.name}_{indices[0]}"), members, engine


def check_model_loadable(model: onnx.ModelProto) -> None:
    """Raises InvalidModelError when onnx's checker rejects a partition hal built (a hal bug)."""
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        raise InvalidModelError(f"internal partition is invalid: {exc}") from None
