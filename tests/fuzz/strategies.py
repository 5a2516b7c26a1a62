"""Hypothesis strategies for the fuzz targets: small valid ONNX models and TensorProtos mutated
field by field and byte by byte, and argument sets for hal.ops and hal._C (shapes with 0 and
sizes near integer limits, every dtype, non-contiguous and read-only layouts).

Arguments are described as JSON-able data (targets.py builds the arrays in the worker), so that an
input that failed is kept in the corpus as a readable file."""
from __future__ import annotations

import functools

import numpy as np
import onnx
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

# Sizes where arithmetic on them overflows a 32- or 64-bit integer, or an allocation cannot fit.
EXTREME_INTS = (0, 1, -1, 2, 3, 7, 2**31 - 1, 2**31, 2**32 + 1, 2**62, 2**63 - 1, -(2**63), -(2**31))
_OPSET = 17


def _vi(name: str, elem: int, shape) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem, shape)


def _model(nodes, inputs, outputs, initializers=(), opset: int = _OPSET, domains=()) -> bytes:
    graph = helper.make_graph(nodes, "fuzz", inputs, outputs, list(initializers))
    opsets = [helper.make_opsetid("", opset)] + [helper.make_opsetid(d, 1) for d in domains]
    return helper.make_model(graph, opset_imports=opsets).SerializeToString()


def _branch(name: str, value: float) -> onnx.GraphProto:
    const = helper.make_node("Constant", [], [name], value=numpy_helper.from_array(np.full((2,), value, np.float32)))
    return helper.make_graph([const], f"{name}_graph", [], [_vi(name, TensorProto.FLOAT, [2])])


@functools.cache
def seed_models() -> tuple[bytes, ...]:
    """One small valid model per kind of node the fuzzers start from (each loads and runs)."""
    f, i64 = TensorProto.FLOAT, TensorProto.INT64
    init = numpy_helper.from_array
    loop_body = helper.make_graph(
        [helper.make_node("Add", ["acc_in", "one"], ["acc_out"]), helper.make_node("Identity", ["cond_in"], ["cond_out"])],
        "body", [_vi("iter", i64, []), _vi("cond_in", TensorProto.BOOL, []), _vi("acc_in", f, [2])],
        [_vi("cond_out", TensorProto.BOOL, []), _vi("acc_out", f, [2])], [init(np.ones(2, np.float32), "one")])
    return (
        _model([helper.make_node("MatMul", ["a", "b"], ["y"])], [_vi("a", f, [2, 3]), _vi("b", f, [3, 4])], [_vi("y", f, [2, 4])]),
        _model([helper.make_node("Add", ["a", "w"], ["y"])], [_vi("a", f, ["n", 3])], [_vi("y", f, ["n", 3])],
               [init(np.arange(3, dtype=np.float32), "w")]),
        _model([helper.make_node("Reshape", ["a", "shape"], ["y"])], [_vi("a", f, [2, 6])], [_vi("y", f, [3, 4])],
               [init(np.array([3, 4], np.int64), "shape")]),
        _model([helper.make_node("Gather", ["table", "ids"], ["y"], axis=0)], [_vi("ids", i64, [3])], [_vi("y", f, [3, 4])],
               [init(np.arange(20, dtype=np.float32).reshape(5, 4), "table")]),
        _model([helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1])],
               [_vi("x", f, [1, 2, 5, 5])], [_vi("y", f, [1, 3, 5, 5])], [init(np.ones((3, 2, 3, 3), np.float32), "w")]),
        _model([helper.make_node("If", ["c"], ["y"], then_branch=_branch("t", 1.0), else_branch=_branch("e", 2.0))],
               [_vi("c", TensorProto.BOOL, [])], [_vi("y", f, [2])]),
        _model([helper.make_node("Loop", ["trips", "", "start"], ["final"], body=loop_body)],
               [_vi("start", f, [2])], [_vi("final", f, [2])], [init(np.array(3, np.int64), "trips")]),
        _model([helper.make_node("Expand", ["a", "shape"], ["y"])], [_vi("a", f, [1, 3])], [_vi("y", f, [4, 3])],
               [init(np.array([4, 3], np.int64), "shape")]),
        _model([helper.make_node("ConstantOfShape", ["shape"], ["y"], value=init(np.array([1.5], np.float32)))],
               [_vi("shape", i64, [2])], [_vi("y", f, None)]),
        _model([helper.make_node("Softmax", ["a"], ["s"], axis=-1), helper.make_node("Cast", ["s"], ["y"], to=TensorProto.FLOAT16)],
               [_vi("a", f, [2, 5])], [_vi("y", TensorProto.FLOAT16, [2, 5])]),
        _model([helper.make_node("RMSNorm", ["a", "w"], ["y"], domain="com.hal", epsilon=1e-6)],
               [_vi("a", f, [2, 8])], [_vi("y", f, [2, 8])], [init(np.ones(8, np.float32), "w")], domains=("com.hal",)),
    )


_OPS = ("Add", "MatMul", "Reshape", "Gather", "Conv", "Relu", "Concat", "Slice", "Transpose", "Expand", "Tile",
        "ConstantOfShape", "Range", "Resize", "TopK", "Einsum", "Pad", "NonZero", "Where", "Split", "RMSNorm", "NoSuchOp")


def _graphs(graph: onnx.GraphProto) -> list[onnx.GraphProto]:
    found = [graph]
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                found += _graphs(attr.g)
    return found


def _values(graph: onnx.GraphProto) -> list[onnx.ValueInfoProto]:
    return [*graph.input, *graph.output, *graph.value_info]


def _mutate_field(model: onnx.ModelProto, data: st.DataObject) -> None:
    """One structural change: the kind of damage an exporter bug or a hostile file does."""
    graph = data.draw(st.sampled_from(_graphs(model.graph)))
    kind = data.draw(st.sampled_from(("dim", "elem_type", "init_dims", "init_type", "init_data", "init_external",
                                      "attribute", "node_input", "op_type", "opset", "drop_node", "copy_node")))
    extreme = st.sampled_from(EXTREME_INTS)
    values = [v for v in _values(graph) if v.type.HasField("tensor_type")]
    if kind in ("dim", "elem_type") and values:
        value = data.draw(st.sampled_from(values)).type.tensor_type
        if kind == "elem_type":
            value.elem_type = data.draw(st.integers(0, 25))
        elif value.shape.dim:
            dim = value.shape.dim[data.draw(st.integers(0, len(value.shape.dim) - 1))]
            if data.draw(st.booleans()):
                dim.dim_value = data.draw(extreme)
            else:
                dim.dim_param = data.draw(st.sampled_from(("n", "", "m")))
        else:
            value.shape.dim.add().dim_value = data.draw(extreme)
    elif kind.startswith("init") and graph.initializer:
        tensor = graph.initializer[data.draw(st.integers(0, len(graph.initializer) - 1))]
        _mutate_tensor(tensor, kind[5:], data)
    elif kind == "attribute":
        attrs = [a for node in graph.node for a in node.attribute if a.type != onnx.AttributeProto.GRAPH]
        if attrs:
            attr = data.draw(st.sampled_from(attrs))
            if attr.type == onnx.AttributeProto.INT:
                attr.i = data.draw(extreme)
            elif attr.type == onnx.AttributeProto.INTS and attr.ints:
                attr.ints[data.draw(st.integers(0, len(attr.ints) - 1))] = data.draw(extreme)
            elif attr.type == onnx.AttributeProto.FLOAT:
                attr.f = data.draw(st.sampled_from((float("nan"), float("inf"), -1.0, 0.0, 1e38)))
            elif attr.type == onnx.AttributeProto.TENSOR:
                _mutate_tensor(attr.t, data.draw(st.sampled_from(("dims", "type", "data"))), data)
            else:
                attr.type = data.draw(st.integers(0, 14))
    elif kind == "node_input" and graph.node:
        node = data.draw(st.sampled_from(list(graph.node)))
        names = [v.name for v in _values(graph)] + [t.name for t in graph.initializer] + ["", "missing"]
        if node.input:
            node.input[data.draw(st.integers(0, len(node.input) - 1))] = data.draw(st.sampled_from(names))
        else:
            node.input.append(data.draw(st.sampled_from(names)))
    elif kind == "op_type" and graph.node:
        data.draw(st.sampled_from(list(graph.node))).op_type = data.draw(st.sampled_from(_OPS))
    elif kind == "opset":
        model.opset_import[0].version = data.draw(st.sampled_from((1, 6, 7, 11, 13, 18, 21, 23, 99, 2**31 - 1)))
    elif kind == "drop_node" and graph.node:
        del graph.node[data.draw(st.integers(0, len(graph.node) - 1))]
    elif kind == "copy_node" and graph.node:
        graph.node.append(data.draw(st.sampled_from(list(graph.node))))


def _mutate_tensor(tensor: onnx.TensorProto, kind: str, data: st.DataObject) -> None:
    if kind == "dims":
        if tensor.dims and data.draw(st.booleans()):
            tensor.dims[data.draw(st.integers(0, len(tensor.dims) - 1))] = data.draw(st.sampled_from(EXTREME_INTS))
        else:
            tensor.dims.append(data.draw(st.sampled_from(EXTREME_INTS)))
    elif kind == "type":
        tensor.data_type = data.draw(st.integers(0, 25))
    elif kind == "data":
        if tensor.raw_data:
            cut = data.draw(st.integers(0, len(tensor.raw_data) + 8))
            tensor.raw_data = tensor.raw_data[:cut] + data.draw(st.binary(max_size=8))
        else:
            tensor.raw_data = data.draw(st.binary(max_size=64))
    elif kind == "external":
        del tensor.external_data[:]
        tensor.data_location = TensorProto.EXTERNAL
        for key, value in (("location", data.draw(st.sampled_from(("../secret.bin", "../../../../etc/passwd", "/etc/passwd",
                                                                      "missing.bin", ".", "", "a/../../b")))),
                           ("offset", str(data.draw(st.sampled_from(EXTREME_INTS)))),
                           ("length", str(data.draw(st.sampled_from(EXTREME_INTS))))):
            if data.draw(st.booleans()) or key == "location":
                entry = tensor.external_data.add()
                entry.key, entry.value = key, value


def _mutate_bytes(blob: bytes, data: st.DataObject) -> bytes:
    """Flips, truncations and splices: what a damaged download or disk does to a file."""
    if not blob:
        return data.draw(st.binary(max_size=32))
    where = data.draw(st.integers(0, len(blob) - 1))
    kind = data.draw(st.sampled_from(("flip", "truncate", "insert", "overwrite")))
    if kind == "flip":
        return blob[:where] + bytes([blob[where] ^ data.draw(st.integers(1, 255))]) + blob[where + 1:]
    if kind == "truncate":
        return blob[:where]
    extra = data.draw(st.binary(min_size=1, max_size=16))
    return blob[:where] + extra + blob[where + (len(extra) if kind == "overwrite" else 0):]


@st.composite
def mutated_models(draw) -> bytes:
    """A seed model with one to three field mutations, then sometimes byte damage on top."""
    data = draw(st.data())
    model = onnx.ModelProto()
    model.ParseFromString(draw(st.sampled_from(seed_models())))
    for _ in range(draw(st.integers(0, 3))):
        _mutate_field(model, data)
    blob = model.SerializeToString()
    return _mutate_bytes(blob, data) if draw(st.integers(0, 3)) == 0 else blob


@functools.cache
def seed_tensors() -> tuple[bytes, ...]:
    return tuple(t.SerializeToString() for t in (
        numpy_helper.from_array(np.arange(6, dtype=np.float32).reshape(2, 3), "t"),
        helper.make_tensor("t", TensorProto.INT64, [3], [1, 2, 3]),
        helper.make_tensor("t", TensorProto.FLOAT16, [2], np.array([1, 2], np.float16).view(np.uint16).tolist()),
        helper.make_tensor("t", TensorProto.BOOL, [2, 2], [True, False, True, True]),
        helper.make_tensor("t", TensorProto.STRING, [2], [b"a", b"bc"]),
        helper.make_tensor("t", TensorProto.DOUBLE, [], [2.5]),
        numpy_helper.from_array(np.zeros((0, 4), np.int32), "t"),
    ))


@st.composite
def mutated_tensors(draw) -> bytes:
    data = draw(st.data())
    tensor = onnx.TensorProto()
    tensor.ParseFromString(draw(st.sampled_from(seed_tensors())))
    for _ in range(draw(st.integers(1, 3))):
        _mutate_tensor(tensor, data.draw(st.sampled_from(("dims", "type", "data", "external"))), data)
    blob = tensor.SerializeToString()
    return _mutate_bytes(blob, data) if draw(st.integers(0, 3)) == 0 else blob


# --- arguments of hal.ops and hal._C ---------------------------------------------------------

DTYPES = ("float32", "float16", "bfloat16", "float64", "int8", "int16", "int32", "int64", "uint8", "bool", "complex64")
# contiguous: a C-contiguous array; transposed / strided: views that are not; readonly: a
# contiguous array marked read-only; broadcast: a zero-stride view whose shape may be near 2**63
# elements without using memory; list / scalar / none: not arrays at all.
LAYOUTS = ("contiguous", "contiguous", "contiguous", "transposed", "strided", "readonly", "broadcast", "list", "scalar", "none")
_SMALL_DIM = st.integers(0, 9)
_HUGE_DIM = st.sampled_from((2**31 - 1, 2**31, 2**32 + 1, 2**62, 2**63 - 1))


@st.composite
def array_specs(draw) -> dict:
    layout = draw(st.sampled_from(LAYOUTS))
    shape = draw(st.lists(_SMALL_DIM, max_size=4))
    if layout == "broadcast" and shape:
        shape[draw(st.integers(0, len(shape) - 1))] = draw(_HUGE_DIM)
    return {"shape": shape, "dtype": draw(st.sampled_from(DTYPES)), "layout": layout,
            "fill": draw(st.sampled_from(("normal", "zero", "nan", "huge")))}


def _attr_value():
    return st.one_of(st.sampled_from(EXTREME_INTS), st.sampled_from((0.0, -1.0, 1e-6, float("nan"), float("inf"))),
                     st.sampled_from(("none", "tanh", "", "x" * 300)), st.none())


# Each public op (hal/ops/__init__.py's __all__): (fewest, most) positional arrays, its required
# keywords, its optional ones. Calls always match the signature: a wrong argument count is
# Python's own TypeError, not something hal decides.
OP_SIGNATURES = {
    "rms_norm": (2, 2, (), ("epsilon",)), "layer_norm": (2, 3, (), ("epsilon",)), "softmax": (1, 1, (), ()),
    "gelu": (1, 1, (), ("approximate",)), "swiglu": (1, 1, (), ()), "rope": (3, 3, (), ("interleaved",)),
    "quantized_matmul": (4, 4, (), ()), "linear": (2, 3, (), ("w_scale",)),
    "cached_attention": (4, 4, ("length",), ("scale",)), "to_nc1hwc0": (1, 1, (), ("c0",)),
    "from_nc1hwc0": (1, 1, ("channels",), ()), "to_fractal_nz": (1, 1, (), ("m0", "n0")),
    "from_fractal_nz": (1, 1, ("rows", "cols"), ()),
}


@st.composite
def op_calls(draw) -> dict:
    """A call of one public hal.ops function: its positional arrays and keyword values."""
    op = draw(st.sampled_from(sorted(OP_SIGNATURES)))
    fewest, most, required, optional = OP_SIGNATURES[op]
    args = draw(st.lists(array_specs(), min_size=fewest, max_size=most))
    kwargs = {}
    for name in required + tuple(n for n in optional if draw(st.booleans())):
        kwargs[name] = draw(array_specs()) if name == "w_scale" and draw(st.booleans()) else draw(_attr_value())
    return {"op": op, "args": args, "kwargs": kwargs}


_INT = st.one_of(st.sampled_from(EXTREME_INTS), st.integers(-8, 4096), st.sampled_from((2**64, -(2**64))))


@st.composite
def native_calls(draw) -> dict:
    """One call of a hal._C function with integer arguments near their limits and buffers of
    odd kinds (targets.native_call says what each function receives)."""
    function = draw(st.sampled_from(("Arena", "arena_ops", "memcpy_host", "copy_between", "kernel_infer",
                                     "kernel_run", "find_kernel", "set_num_threads", "dlpack_roundtrip")))
    return {"function": function, "ints": draw(st.lists(_INT, min_size=8, max_size=8)),
            "arrays": draw(st.lists(array_specs(), min_size=1, max_size=4)),
            "names": draw(st.lists(st.sampled_from(("", "com.hal", "RMSNorm", "cpu", "ascend", "float32", "int8", "\x00",
                                                     "SwiGLU", "Linear", "ToNC1HWC0", "x" * 1000)), min_size=4, max_size=4)),
            "flags": draw(st.lists(st.booleans(), min_size=4, max_size=4))}
