"""The fuzz targets, run in sandbox.py's worker process: each takes one input (bytes, or a
JSON-able description from strategies.py) and drives one of hal's entry points with it.

A target returns when hal accepted the input; hal's own HalError propagates (a refusal, counted as
such); Refused marks a documented refusal that is not a HalError (hal._C's ValueError and
friends, see native_call); anything else is a finding."""
from __future__ import annotations

import contextlib
import io
import math
import tempfile
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np
import onnx
from google.protobuf.message import DecodeError

import hal
import hal.onnx_backend
from hal import _C

# A feed of more elements than this is not built: the fuzzer looks for crashes, not for the
# host's speed on big inputs (a huge declared shape still reaches hal, with a smaller feed).
_FEED_ELEMENTS = 1 << 16
# Bytes of a file beside the model's folder: external data pointing at it must be refused.
_OUTSIDE_SECRET = b"HAL-FUZZ-OUTSIDE-THE-MODEL-FOLDER" * 16


class Skip(Exception):
    """The input cannot be put to this target (bytes that do not parse, for a target that takes a
    parsed ModelProto): counted as accepted."""


class Refused(Exception):
    """A refusal a target's contract allows that is not a HalError."""


def _feeds(inputs: list) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    feeds = {}
    for info in inputs:
        if not info.is_tensor or info.dtype is None:
            continue
        # unknown and huge sizes become small ones: hal must then refuse the feed's shape, cleanly
        shape = tuple(min(d, 4) if isinstance(d, int) and d >= 0 else 2 for d in (info.shape or ()))
        if math.prod(shape) > _FEED_ELEMENTS:
            continue
        dtype = info.dtype.numpy
        if dtype.kind == "f" or dtype.kind == "V":
            feeds[info.name] = rng.standard_normal(shape).astype(dtype)
        elif dtype.kind == "b":
            feeds[info.name] = rng.integers(0, 2, shape).astype(bool)
        elif dtype.kind in "iu":
            feeds[info.name] = rng.integers(0, 3, shape).astype(dtype)
        elif dtype.kind == "c":
            feeds[info.name] = rng.standard_normal(shape).astype(dtype)
        else:
            feeds[info.name] = np.full(shape, "a", dtype=object)
    return feeds


@contextlib.contextmanager
def _model_folder():
    """(folder, model path) in a fresh temporary folder, with a file just outside the model's
    folder that must stay unread; all removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="hal-fuzz-") as root:
        (Path(root) / "secret.bin").write_bytes(_OUTSIDE_SECRET)
        folder = Path(root) / "model"
        folder.mkdir()
        yield folder, folder / "model.onnx"


def _check_read_nothing_outside(session) -> None:
    for tensor in session.model.proto.graph.initializer:
        if _OUTSIDE_SECRET[:32] in tensor.raw_data:
            raise AssertionError(f"hal read tensor {tensor.name!r} from a file outside the model's folder")


def session_cpu(model: bytes) -> None:
    """hal.InferenceSession on the CPU, loaded from a file (so external data is looked up)."""
    with _model_folder() as (_, path):
        path.write_bytes(model)
        session = hal.InferenceSession(path, devices=["cpu"])
        _check_read_nothing_outside(session)
        session.run(None, _feeds(session.model.inputs))


def session_ascend(model: bytes) -> None:
    """hal.InferenceSession from bytes on a simulated Ascend, falling back to the CPU."""
    session = hal.InferenceSession(model, devices=["ascend:0", "cpu"])
    session.run(None, _feeds(session.model.inputs))


def onnx_backend(model: bytes) -> None:
    """onnx's backend API (hal.onnx_backend) on a simulated Kunlun with fallback."""
    proto = onnx.ModelProto()
    try:
        proto.ParseFromString(model)
    except DecodeError as e:  # the backend API takes a parsed ModelProto: parsing is the caller's
        raise Skip(f"does not parse: {e}") from None
    backend = hal.onnx_backend.for_device("kunlun:0", fallback=True)
    rep = backend.prepare(proto)
    rep.run(_feeds(rep.session.model.inputs))


def _cli(args: list[str]) -> None:
    import hal.cli

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = hal.cli.main(args)
    if code:
        message = err.getvalue().strip()
        if "Traceback" in message or "error:" not in message:
            raise AssertionError(f"hal {' '.join(args)} exited {code} without a one-line error: {message!r}")
        raise Refused(message.splitlines()[-1])


def cli_run(model: bytes) -> None:
    """`hal run MODEL` (in this process: the command's main(), its output captured)."""
    with _model_folder() as (_, path):
        path.write_bytes(model)
        _cli(["run", str(path), "--devices", "cpu"])


def tensor_proto(tensor: bytes) -> None:
    """A serialized TensorProto, as `hal run --input NAME=FILE.pb` reads it, and as the
    initializer of a model run by hal.InferenceSession."""
    parsed = onnx.TensorProto()
    try:
        parsed.ParseFromString(tensor)
    except DecodeError:
        parsed = None
    dtype = parsed.data_type if parsed is not None else onnx.TensorProto.FLOAT
    shape = [f"d{i}" for i in range(len(parsed.dims))] if parsed is not None else ["n"]
    with _model_folder() as (folder, path):
        if parsed is not None:
            parsed.name = "t"
            graph = onnx.helper.make_graph([onnx.helper.make_node("Identity", ["t"], ["y"])], "g", [],
                                           [onnx.helper.make_tensor_value_info("y", dtype, shape)], [parsed])
            path.write_bytes(onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)]).SerializeToString())
            with contextlib.suppress(hal.HalError):
                session = hal.InferenceSession(path, devices=["cpu"])
                _check_read_nothing_outside(session)
                session.run(None, {})
        identity = onnx.helper.make_graph(
            [onnx.helper.make_node("Identity", ["x"], ["y"])], "g", [onnx.helper.make_tensor_value_info("x", dtype, shape)],
            [onnx.helper.make_tensor_value_info("y", dtype, shape)])
        path.write_bytes(onnx.helper.make_model(identity, opset_imports=[onnx.helper.make_opsetid("", 17)]).SerializeToString())
        (folder / "x.pb").write_bytes(tensor)
        _cli(["run", str(path), "--devices", "cpu", "--input", f"x={folder / 'x.pb'}"])


# --- hal.ops and hal._C --------------------------------------------------------------------


def _dtype(name: str) -> np.dtype:
    return np.dtype(ml_dtypes.bfloat16) if name == "bfloat16" else np.dtype(name)


def build_array(spec: dict) -> Any:
    """The argument an array spec (strategies.array_specs) describes."""
    layout, shape, dtype = spec["layout"], tuple(spec["shape"]), _dtype(spec["dtype"])
    if layout == "none":
        return None
    if layout == "scalar":
        return 1.5 if dtype.kind == "f" else 3
    if layout == "broadcast":
        try:
            return np.broadcast_to(np.zeros((), dtype), shape)  # read-only, zero strides, no memory
        except ValueError as e:  # numpy's own limit on sizes
            raise Skip(str(e)) from None
    fill = spec["fill"]
    if fill == "zero":
        base = np.zeros(shape, dtype)
    elif fill == "huge":
        limit = np.finfo(dtype).max if dtype.kind == "f" else (np.iinfo(dtype).max if dtype.kind in "iu" else 1)
        base = np.full(shape, limit, dtype)
    elif fill == "nan" and dtype.kind in "fcV":
        base = np.full(shape, np.nan, dtype)
    else:
        base = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    if layout == "list":
        return base.astype(np.float32).tolist() if dtype.kind == "V" else base.tolist()
    if layout == "transposed":
        return base.T
    if layout == "strided":
        return np.repeat(base, 2, axis=-1)[..., ::2] if base.ndim else base
    if layout == "readonly":
        base.setflags(write=False)
    return base


def op_call(call: dict) -> None:
    """One public hal.ops function (hal/ops/__init__.py's __all__) on fuzzed arrays and values."""
    args = [build_array(a) for a in call["args"]]
    kwargs = {k: build_array(v) if isinstance(v, dict) else v for k, v in call["kwargs"].items()}
    getattr(hal.ops, call["op"])(*args, **kwargs)


def native_call(call: dict) -> None:
    """One hal._C function with fuzzed integers and buffers, called directly.

    hal._C is hal's private native layer: its contract (hal/_C.pyi) is to refuse bad arguments
    with ValueError, TypeError (pybind11's argument conversion), OverflowError, BufferError or
    Arena's ArenaOutOfMemory, which the public layer above it turns into HalErrors; those count as
    refusals here. A crash, a hang, any other exception or a plain MemoryError (an allocation
    made before checking its size) is a finding. to_dlpack is left out: it takes a raw pointer
    and trusts its caller (like ctypes), so no argument check can make it safe."""
    ints, arrays, names, flags = call["ints"], [build_array(a) for a in call["arrays"]], call["names"], call["flags"]
    try:
        _NATIVE[call["function"]](ints, arrays, names, flags)
    except _C.ArenaOutOfMemory as e:
        raise Refused(str(e)) from None
    except (ValueError, TypeError, OverflowError, BufferError) as e:
        if isinstance(e, hal.HalError):
            raise
        raise Refused(f"{type(e).__name__}: {e}") from None


def _arena(ints, arrays, names, flags) -> None:
    _C.Arena(ints[0], ints[1], ints[2], ints[3], flags[0], flags[1]).allocate(ints[4])


def _arena_ops(ints, arrays, names, flags) -> None:
    arena = _C.Arena(1 << 20, 512, 0, 64, flags[0], flags[1])
    address = arena.allocate(ints[0] if 0 <= ints[0] <= 1 << 20 else 256)
    source = arrays[0] if isinstance(arrays[0], np.ndarray) else np.zeros(8, np.uint8)
    steps = [
        lambda: arena.copy_from_host(address, ints[1], source),
        lambda: arena.copy_to_host(address, ints[2], source),
        lambda: arena.copy_within(address, ints[3], address, ints[4], ints[5]),
        lambda: arena.rounded_size(ints[6]),
        lambda: arena.size_of(ints[7]),
        lambda: np.frombuffer(arena.host_buffer(address), np.uint8).sum(),
        lambda: np.frombuffer(arena.emulation_buffer(address), np.uint8).sum(),
        lambda: arena.allocate(ints[6]),
        lambda: arena.free(ints[7] if flags[2] else address),
    ]
    for step in steps:
        with contextlib.suppress(ValueError, TypeError, OverflowError, BufferError, _C.ArenaOutOfMemory):
            step()


def _memcpy_host(ints, arrays, names, flags) -> None:
    _C.memcpy_host(arrays[0], arrays[-1])


def _copy_between(ints, arrays, names, flags) -> None:
    first, second = _C.Arena(1 << 16), _C.Arena(1 << 16, 1, 0, 64, True)
    a, b = first.allocate(1024), second.allocate(2048)
    _C.copy_between(first, a if flags[0] else ints[0], ints[1], second, b if flags[1] else ints[2], ints[3], ints[4])


def _kernel(names, arrays):
    dtype = arrays[0].dtype.name if isinstance(arrays[0], np.ndarray) else names[3]
    return _C.find_kernel("com.hal", names[1], "cpu", dtype)


def _kernel_infer(ints, arrays, names, flags) -> None:
    shapes = [tuple(int(d) for d in a.shape) for a in arrays if isinstance(a, np.ndarray)]
    shapes.append(tuple(ints[:3]))
    kernel = _kernel(names, arrays)
    kernel.infer([(names[3], s) for s in shapes], {"epsilon": 1e-6, "c0": ints[3], "channels": ints[4], "m0": ints[5],
                                                   "n0": ints[6], "rows": ints[7], "cols": ints[0]})


def _kernel_run(ints, arrays, names, flags) -> None:
    kernel = _kernel(names, arrays)
    attrs = {"epsilon": 1e-6, "approximate": "none", "interleaved": 0, "c0": ints[3], "channels": ints[4], "m0": ints[5],
             "n0": ints[6], "rows": ints[7], "cols": ints[0], "length": ints[1], "scale": 0.5}
    kernel.run(arrays, attrs, arrays[-1:] if flags[0] else None)


def _find_kernel(ints, arrays, names, flags) -> None:
    _C.find_kernel(*names)


def _set_num_threads(ints, arrays, names, flags) -> None:
    before = _C.get_num_threads()
    try:
        _C.set_num_threads(ints[0])
        kernel = _C.find_kernel("com.hal", "FusedSoftmax", "cpu", "float32")
        kernel.run([np.ones((64, 1024), np.float32)], {})
    finally:
        _C.set_num_threads(before)


def _dlpack_roundtrip(ints, arrays, names, flags) -> None:
    for array in arrays:
        if not isinstance(array, np.ndarray):
            continue
        with contextlib.suppress(hal.HalError):
            hal.from_dlpack(array).numpy()
        try:
            imported = _C.from_dlpack_capsule(array.__dlpack__())
        except (BufferError, TypeError) as e:  # numpy's own refusals (bfloat16, read-only on old protocol)
            raise Skip(str(e)) from None
        np.frombuffer(imported.host_buffer(), np.uint8).sum()
        imported.release()


_NATIVE = {
    "Arena": _arena, "arena_ops": _arena_ops, "memcpy_host": _memcpy_host, "copy_between": _copy_between,
    "kernel_infer": _kernel_infer, "kernel_run": _kernel_run, "find_kernel": _find_kernel,
    "set_num_threads": _set_num_threads, "dlpack_roundtrip": _dlpack_roundtrip,
}


# --- limits (test_limits.py): absurd sizes and shapes, each a whole model -------------------


def _save_and_run(graph: onnx.GraphProto, feeds: dict, devices: list[str]) -> None:
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])
    session = hal.InferenceSession(model, devices=devices)
    session.run(None, feeds)


def limit_absurd_output(case: dict) -> None:
    """A node whose output would hold `case["dims"]` elements (Expand, ConstantOfShape, Reshape of
    a ConstantOfShape), the sizes given as an initializer or fed at run time."""
    f32, i64 = onnx.TensorProto.FLOAT, onnx.TensorProto.INT64
    dims = np.array(case["dims"], np.int64)
    shape_in = [onnx.helper.make_tensor_value_info("shape", i64, [len(dims)])] if case["fed"] else []
    inits = [] if case["fed"] else [onnx.numpy_helper.from_array(dims, "shape")]
    if case["op"] == "Expand":
        nodes = [onnx.helper.make_node("Expand", ["x", "shape"], ["y"])]
        inputs = [onnx.helper.make_tensor_value_info("x", f32, [1])] + shape_in
        feeds = {"x": np.ones(1, np.float32)}
    elif case["op"] == "ConstantOfShape":
        nodes = [onnx.helper.make_node("ConstantOfShape", ["shape"], ["y"])]
        inputs, feeds = shape_in, {}
    else:  # Reshape of what ConstantOfShape made to 2**62 elements in one dimension
        inits.append(onnx.numpy_helper.from_array(np.array([int(np.prod(dims, dtype=object))], np.int64), "flat"))
        nodes = [onnx.helper.make_node("ConstantOfShape", ["shape"], ["c"]), onnx.helper.make_node("Reshape", ["c", "flat"], ["y"])]
        inputs, feeds = shape_in, {}
    if case["fed"]:
        feeds["shape"] = dims
    rank = 1 if case["op"] == "Reshape" else len(dims)
    output = onnx.helper.make_tensor_value_info("y", f32, [f"d{i}" for i in range(rank)])
    graph = onnx.helper.make_graph(nodes, "absurd", inputs, [output], inits)
    _save_and_run(graph, feeds, case["devices"])


def limit_huge_initializer(dims: list[int]) -> None:
    """An initializer whose dims claim far more than the 4 bytes it holds (built field by field:
    onnx.helper refuses to make one)."""
    tensor = onnx.TensorProto(name="w", data_type=onnx.TensorProto.FLOAT, dims=dims, raw_data=b"\0\0\0\0")
    graph = onnx.helper.make_graph([onnx.helper.make_node("Identity", ["w"], ["y"])], "huge", [],
                                   [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)], [tensor])
    _save_and_run(graph, {}, ["cpu"])


def limit_long_chain(case: dict) -> None:
    """A chain of case["nodes"] Add nodes: it loads and runs (time grows with the count, memory
    stays bounded: each value is a few floats)."""
    f32 = onnx.TensorProto.FLOAT
    count = case["nodes"]
    nodes = [onnx.helper.make_node("Add", [f"v{i}", "x"], [f"v{i + 1}"]) for i in range(count)]
    graph = onnx.helper.make_graph(nodes, "chain", [onnx.helper.make_tensor_value_info("v0", f32, [4]),
                                                    onnx.helper.make_tensor_value_info("x", f32, [4])],
                                   [onnx.helper.make_tensor_value_info(f"v{count}", f32, [4])])
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])
    session = hal.InferenceSession(model, devices=case["devices"])
    (out,) = session.run(None, {"v0": np.zeros(4, np.float32), "x": np.ones(4, np.float32)})
    if not np.array_equal(out, np.full(4, count, np.float32)):
        raise AssertionError(f"a chain of {count} Adds of 1 gave {out}")


def limit_nested_if(case: dict) -> None:
    """If nodes nested case["depth"] deep, each then-branch holding the next, the innermost
    yielding 1; given as a ModelProto or its bytes. Built in place: onnx.helper copies each
    subgraph through protobuf's parser, which stops at 100 nested messages."""
    f32 = onnx.TensorProto.FLOAT
    model = onnx.helper.make_model(onnx.helper.make_graph(
        [], "nested", [onnx.helper.make_tensor_value_info("c", onnx.TensorProto.BOOL, [])],
        [onnx.helper.make_tensor_value_info("r", f32, [1])]), opset_imports=[onnx.helper.make_opsetid("", 17)])
    graph = model.graph
    for level in range(case["depth"]):
        node = graph.node.add(op_type="If", input=["c"], output=["r"], name=f"if{level}")
        for branch, value in (("else_branch", 0.0), ("then_branch", None)):
            attr = node.attribute.add(name=branch, type=onnx.AttributeProto.GRAPH)
            attr.g.name = f"{branch}{level}"
            attr.g.output.append(onnx.helper.make_tensor_value_info("r", f32, [1]))
            if value is not None:
                attr.g.node.append(onnx.helper.make_node(
                    "Constant", [], ["r"], value=onnx.numpy_helper.from_array(np.full(1, value, np.float32))))
        graph = attr.g
    graph.node.append(onnx.helper.make_node("Constant", [], ["r"], value=onnx.numpy_helper.from_array(np.ones(1, np.float32))))
    source = model.SerializeToString() if case["as_bytes"] else model
    (out,) = hal.InferenceSession(source, devices=["cpu"]).run(None, {"c": np.array(True)})
    if out.tolist() != [1.0]:
        raise AssertionError(f"{case['depth']} nested Ifs, all true, gave {out}")


def limit_empty(case: dict) -> None:
    """hal.empty of case["shape"] float32 elements on case["device"]."""
    hal.empty(case["shape"], "float32", device=case["device"])
