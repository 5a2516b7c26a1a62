"""Loading and validating ONNX models: hal.graph.model and the steps it runs (opsets, external data,
node order, shape inference, types), and checking feeds against a loaded model: hal.graph.feeds."""
from __future__ import annotations

import os
import random
import time

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import hal  # noqa: E402
from hal import DType  # noqa: E402
from hal.capability import TensorInfo  # noqa: E402
from hal.graph.feeds import check_feed, validate_feeds  # noqa: E402
from hal.graph.model import LoadedModel, load_model  # noqa: E402
from hal.graph.opsets import upgrade_opset  # noqa: E402

F32 = TensorProto.FLOAT


def _model(nodes, inputs, outputs, initializers=(), *, opsets=(("", 17),), value_info=(), name="g"):
    graph = helper.make_graph(nodes, name, inputs, outputs, list(initializers), value_info=list(value_info))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets])


def _value(name, shape, dtype=F32):
    return helper.make_tensor_value_info(name, dtype, shape)


def _mlp(*, named: bool = True) -> onnx.ModelProto:
    """x[batch, 4] -> MatMul -> Add -> Relu -> MatMul -> Add -> y[batch, 2]."""
    rng = np.random.default_rng(0)
    weights = [
        numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)
        for name, shape in (("w1", (4, 8)), ("b1", (8,)), ("w2", (8, 2)), ("b2", (2,)))
    ]
    spec = [
        ("MatMul", ["x", "w1"], ["h0"], "mm1"),
        ("Add", ["h0", "b1"], ["h1"], "add1"),
        ("Relu", ["h1"], ["h2"], "relu"),
        ("MatMul", ["h2", "w2"], ["h3"], "mm2"),
        ("Add", ["h3", "b2"], ["y"], "add2"),
    ]
    nodes = [helper.make_node(op, i, o, name=n if named else "") for op, i, o, n in spec]
    return _model(
        nodes,
        [helper.make_tensor_value_info("x", F32, ["batch", 4])],
        [helper.make_tensor_value_info("y", F32, ["batch", 2])],
        weights,
        name="mlp",
    )


def _reshape_graph() -> onnx.ModelProto:
    """y = Reshape(x, [Shape(x)[0], 12]): the output shape needs data propagation."""
    nodes = [
        helper.make_node("Shape", ["x"], ["s"], name="shape"),
        helper.make_node("Gather", ["s", "zero"], ["b"], name="gather", axis=0),
        helper.make_node("Unsqueeze", ["b", "zero1d"], ["b1"], name="unsqueeze"),
        helper.make_node("Concat", ["b1", "twelve"], ["target"], name="concat", axis=0),
        helper.make_node("Reshape", ["x", "target"], ["y"], name="reshape"),
    ]
    consts = [
        numpy_helper.from_array(np.array(0, np.int64), "zero"),
        numpy_helper.from_array(np.array([0], np.int64), "zero1d"),
        numpy_helper.from_array(np.array([12], np.int64), "twelve"),
    ]
    return _model(
        nodes,
        [helper.make_tensor_value_info("x", F32, ["batch", 3, 4])],
        [helper.make_tensor_value_info("y", F32, ["batch", None])],
        consts,
    )


def _custom_graph() -> onnx.ModelProto:
    nodes = [
        helper.make_node("FusedGelu", ["x"], ["g"], name="gelu", domain="com.example", approximate=1),
        helper.make_node("Relu", ["g"], ["y"], name="relu"),
    ]
    return _model(
        nodes,
        [helper.make_tensor_value_info("x", F32, [2, 3])],
        [helper.make_tensor_value_info("y", F32, [2, 3])],
        opsets=(("", 17), ("com.example", 1)),
    )


def _two_inputs() -> LoadedModel:
    return load_model(_model(
        [helper.make_node("Add", ["a", "b"], ["y"], name="add")],
        [helper.make_tensor_value_info("a", F32, ["batch", 3]), helper.make_tensor_value_info("b", F32, ["batch", 3])],
        [helper.make_tensor_value_info("y", F32, ["batch", 3])],
    ))


def _assert_topological(infos, graph_inputs):
    available = set(graph_inputs)
    for info in infos:
        for tensor in info.inputs:
            assert tensor is None or tensor.name in available, f"{info.name} reads {tensor.name} before it exists"
        available.update(t.name for t in info.outputs)


# --- loading ----------------------------------------------------------------------------------


def test_mlp_loads_with_inferred_shapes():
    model = load_model(_mlp())
    assert model.path is None
    assert model.opsets == {"": 17}
    assert model.inputs == [TensorInfo("x", DType.FLOAT32, ("batch", 4))]
    assert model.outputs == [TensorInfo("y", DType.FLOAT32, ("batch", 2))]
    assert model.initializers == {"w1", "b1", "w2", "b2"}
    assert model.tensors["h2"] == TensorInfo("h2", DType.FLOAT32, ("batch", 8))
    assert model.tensors["w2"] == TensorInfo("w2", DType.FLOAT32, (8, 2))
    assert model.input("x") is model.inputs[0] and model.output("y") is model.outputs[0]
    onnx.checker.check_model(model.proto)


def test_data_propagation_resolves_shape_gather_reshape():
    model = load_model(_reshape_graph())
    assert model.tensors["s"] == TensorInfo("s", DType.INT64, (3,))
    assert model.tensors["y"].shape == ("batch", 12)


def test_path_bytes_and_proto_load_the_same(tmp_path):
    proto = _mlp(named=False)
    path = tmp_path / "mlp.onnx"
    onnx.save_model(proto, path)
    loaded = [load_model(path), load_model(str(path)), load_model(proto.SerializeToString()), load_model(proto)]
    first = loaded[0]
    assert first.path == path and all(m.path is None for m in loaded[2:])
    for other in loaded[1:]:
        assert other.proto == first.proto
        assert other.tensors == first.tensors
        assert (other.inputs, other.outputs, other.opsets) == (first.inputs, first.outputs, first.opsets)
        assert other.node_infos() == first.node_infos()


def test_the_callers_proto_is_not_changed():
    proto = _mlp(named=False)
    nodes = list(proto.graph.node)
    del proto.graph.node[:]
    proto.graph.node.extend(nodes[::-1])  # unsorted and unnamed: load renames and reorders its copy
    before = proto.SerializeToString()
    model = load_model(proto)
    assert proto.SerializeToString() == before
    assert [n.name for n in model.proto.graph.node] != [n.name for n in proto.graph.node]


def test_ai_onnx_domain_is_spelled_empty():
    proto = _mlp()
    proto.opset_import[0].domain = "ai.onnx"
    assert load_model(proto).opsets == {"": 17}


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(hal.InvalidModelError, match="does not exist") as caught:
        load_model(tmp_path / "nope.onnx")
    assert "nope.onnx" in str(caught.value)


def test_directory_is_refused(tmp_path):
    with pytest.raises(hal.InvalidModelError, match="is a directory"):
        load_model(tmp_path)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file_is_refused(tmp_path):
    path = tmp_path / "locked.onnx"
    onnx.save_model(_mlp(), path)
    path.chmod(0)
    with pytest.raises(hal.InvalidModelError, match="cannot read model file .*locked.onnx"):
        load_model(path)


def test_a_read_error_is_an_invalid_model_error(tmp_path, monkeypatch):
    path = tmp_path / "locked.onnx"
    onnx.save_model(_mlp(), path)

    def refuse(self):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(type(path), "read_bytes", refuse)
    with pytest.raises(hal.InvalidModelError, match="cannot read model file .*locked.onnx .Permission denied"):
        load_model(path)


def test_every_truncation_is_an_invalid_model_error(tmp_path):
    data = _mlp().SerializeToString()
    for end in range(len(data)):
        with pytest.raises(hal.InvalidModelError):
            load_model(data[:end])
    path = tmp_path / "cut.onnx"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(hal.InvalidModelError, match="cut.onnx"):
        load_model(path)


@pytest.mark.parametrize("junk", [b"", b"\xff" * 64, b"not an onnx model at all"])
def test_junk_bytes_are_an_invalid_model_error(junk):
    with pytest.raises(hal.InvalidModelError, match="model bytes"):
        load_model(junk)


def test_other_argument_types_are_refused():
    with pytest.raises(hal.InvalidArgumentError, match="path, serialized bytes or an onnx.ModelProto"):
        load_model(42)  # type: ignore[arg-type]


def test_checker_errors_carry_the_checkers_message():
    proto = _model(
        [helper.make_node("Relu", ["nowhere"], ["y"], name="relu")],
        [helper.make_tensor_value_info("x", F32, [2])],
        [helper.make_tensor_value_info("y", F32, [2])],
    )
    with pytest.raises(hal.InvalidModelError, match="not a valid ONNX model.*nowhere"):
        load_model(proto)


# --- external data ----------------------------------------------------------------------------


def _save_external(folder, proto=None, location="weights.bin"):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "model.onnx"
    onnx.save_model(proto or _mlp(), path, save_as_external_data=True, location=location, size_threshold=0)
    return path


def _set_location(path, location):
    proto = onnx.load_model(path, load_external_data=False)
    for tensor in proto.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = location
    onnx.save_model(proto, path)


def test_external_data_is_loaded_from_the_models_folder(tmp_path):
    path = _save_external(tmp_path / "m")
    assert (tmp_path / "m" / "weights.bin").stat().st_size > 0
    model = load_model(path)
    expected = {t.name: numpy_helper.to_array(t) for t in _mlp().graph.initializer}
    for tensor in model.proto.graph.initializer:
        assert tensor.data_location == TensorProto.DEFAULT
        np.testing.assert_array_equal(numpy_helper.to_array(tensor), expected[tensor.name])
    assert model.tensors == load_model(_mlp()).tensors


def test_external_data_models_are_checked_and_inferred_by_path(tmp_path, monkeypatch):
    path = _save_external(tmp_path)
    checked = []
    real_check = onnx.checker.check_model
    monkeypatch.setattr(onnx.checker, "check_model", lambda m, *a, **k: (checked.append(m), real_check(m, *a, **k)))

    def in_memory(*args, **kwargs):
        raise AssertionError("an external-data model must not be serialized for shape inference")

    monkeypatch.setattr(onnx.shape_inference, "infer_shapes", in_memory)
    model = load_model(path)
    assert checked == [str(path)]
    assert model.tensors["h2"].shape == ("batch", 8)


def test_unsorted_external_data_model_loads(tmp_path):
    proto = _mlp()
    nodes = list(proto.graph.node)
    del proto.graph.node[:]
    proto.graph.node.extend(nodes[::-1])
    model = load_model(_save_external(tmp_path, proto))
    _assert_topological(model.node_infos(), ["x", *model.initializers])
    assert all(t.data_location == TensorProto.DEFAULT for t in model.proto.graph.initializer)


def test_external_data_without_a_folder_asks_for_the_path(tmp_path):
    path = _save_external(tmp_path)
    unloaded = onnx.load_model(path, load_external_data=False)
    for given in (unloaded, unloaded.SerializeToString()):
        with pytest.raises(hal.InvalidModelError, match="pass the path of the .onnx file") as caught:
            load_model(given)
        assert "weights.bin" in str(caught.value)


def test_absolute_external_location_is_refused(tmp_path):
    path = _save_external(tmp_path)
    _set_location(path, str(tmp_path / "weights.bin"))
    with pytest.raises(hal.InvalidModelError, match="an absolute path") as caught:
        load_model(path)
    assert "tensor 'w1'" in str(caught.value)


@pytest.mark.parametrize("location", ["../weights.bin", "sub/../../weights.bin", "..\\weights.bin"])
def test_external_location_climbing_out_is_refused(tmp_path, location):
    path = _save_external(tmp_path / "model")
    (tmp_path / "model" / "weights.bin").rename(tmp_path / "weights.bin")
    _set_location(path, location)
    with pytest.raises(hal.InvalidModelError, match="climbs out of the model's folder") as caught:
        load_model(path)
    assert location in str(caught.value).replace("\\\\", "\\")


def test_external_symlink_resolving_outside_is_refused(tmp_path):
    secret = tmp_path / "outside" / "secret.bin"
    secret.parent.mkdir()
    path = _save_external(tmp_path / "model")
    (tmp_path / "model" / "weights.bin").rename(secret)
    (tmp_path / "model" / "weights.bin").symlink_to(secret)
    with pytest.raises(hal.InvalidModelError, match="outside the model's folder") as caught:
        load_model(path)
    assert "secret.bin" in str(caught.value)


def test_external_symlink_inside_the_folder_is_refused_like_onnx_does(tmp_path):
    path = _save_external(tmp_path)
    (tmp_path / "weights.bin").rename(tmp_path / "real.bin")
    (tmp_path / "weights.bin").symlink_to("real.bin")
    with pytest.raises(hal.InvalidModelError, match="a symbolic link"):
        load_model(path)


def test_missing_and_truncated_external_files_are_refused(tmp_path):
    path = _save_external(tmp_path)
    data = tmp_path / "weights.bin"
    data.write_bytes(data.read_bytes()[:10])
    with pytest.raises(hal.InvalidModelError, match="the file has 10 bytes"):
        load_model(path)
    data.unlink()
    with pytest.raises(hal.InvalidModelError, match="weights.bin.*not a file"):
        load_model(path)


# --- ops, domains, inference --------------------------------------------------------------------


def test_unknown_default_domain_op_names_node_op_and_opset():
    proto = _model(
        [helper.make_node("Frobnicate", ["x"], ["y"], name="frob")],
        [helper.make_tensor_value_info("x", F32, [2])],
        [helper.make_tensor_value_info("y", F32, [2])],
    )
    with pytest.raises(hal.InvalidModelError, match="'frob'.*Frobnicate.*opset 17.*own domain"):
        load_model(proto)


def test_op_newer_than_the_imported_opset_suggests_upgrading():
    proto = _model(
        [helper.make_node("Gelu", ["x"], ["y"])],
        [helper.make_tensor_value_info("x", F32, [2])],
        [helper.make_tensor_value_info("y", F32, [2])],
    )
    with pytest.raises(hal.InvalidModelError, match=r"'Gelu_0'.*opset 17.*opset 20.*upgrade_opset"):
        load_model(proto)


def test_opset_newer_than_onnx_knows_is_refused():
    proto = _mlp()
    proto.opset_import[0].version = 999
    with pytest.raises(hal.InvalidModelError, match="opset 999, newer than"):
        load_model(proto)


def test_custom_domain_nodes_are_accepted():
    model = load_model(_custom_graph())
    assert model.opsets == {"": 17, "com.example": 1}
    gelu, relu = model.node_infos()
    assert (gelu.domain, gelu.opset, gelu.qualified_op) == ("com.example", 1, "com.example::FusedGelu")
    assert gelu.attributes == {"approximate": 1}
    assert gelu.outputs == (TensorInfo("g", None, None),)  # onnx cannot infer a custom op
    assert relu.outputs == (TensorInfo("y", DType.FLOAT32, (2, 3)),)


def test_inference_error_in_the_default_domain_names_the_node():
    w = numpy_helper.from_array(np.ones((3, 4), np.float32), "w")
    nodes = [  # onnx stops reporting errors after the first op it has no schema for, so MatMul comes first
        helper.make_node("MatMul", ["x", "w"], ["y"], name="bad_matmul"),
        helper.make_node("FusedGelu", ["x"], ["g"], name="gelu", domain="com.example"),
    ]
    proto = _model(
        nodes,
        [helper.make_tensor_value_info("x", F32, [2, 5])],
        [helper.make_tensor_value_info("y", F32, [2, 4]), helper.make_tensor_value_info("g", F32, [2, 5])],
        [w],
        opsets=(("", 17), ("com.example", 1)),
    )
    with pytest.raises(hal.InvalidModelError, match="shape inference failed.*bad_matmul"):
        load_model(proto)


def test_inference_failing_on_another_domain_falls_back_to_non_strict():
    # onnx's strict inference refuses a 3-D input to ai.onnx.ml's LinearClassifier.
    node = helper.make_node(
        "LinearClassifier", ["x"], ["label", "scores"], name="classifier", domain="ai.onnx.ml",
        coefficients=[1.0, 2.0, 3.0, 4.0], classlabels_ints=[0, 1],
    )
    proto = _model(
        [node],
        [helper.make_tensor_value_info("x", F32, [2, 1, 2])],
        [helper.make_tensor_value_info("label", TensorProto.INT64, [2]),
         helper.make_tensor_value_info("scores", F32, [2, 2])],
        opsets=(("", 17), ("ai.onnx.ml", 1)),
    )
    with pytest.raises(onnx.shape_inference.InferenceError):
        onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True)
    model = load_model(proto)
    assert model.node_infos()[0].domain == "ai.onnx.ml"


def test_dtypes_and_dims_of_every_kind():
    nodes = [
        helper.make_node("Identity", ["s"], ["s2"], name="id_s"),
        helper.make_node("Custom", ["x"], ["c"], name="custom", domain="com.example"),
        helper.make_node("Relu", ["c"], ["y"], name="relu"),
    ]
    proto = _model(
        nodes,
        [_value("s", [2], TensorProto.STRING), _value("x", ["n", None, 3])],
        [_value("s2", [2], TensorProto.STRING), _value("y", ["n", None, 3])],
        opsets=(("", 17), ("com.example", 1)),
        value_info=[helper.make_tensor_value_info("c", F32, None)],
    )
    model = load_model(proto)
    assert model.input("s") == TensorInfo("s", None, (2,))  # STRING has no hal dtype
    assert model.input("x").shape == ("n", None, 3)
    assert model.tensors["c"] == TensorInfo("c", DType.FLOAT32, None)


# --- names and order --------------------------------------------------------------------------


def test_unnamed_nodes_get_unique_names_that_avoid_existing_ones():
    nodes = [
        helper.make_node("Relu", ["x"], ["a"]),
        helper.make_node("Relu", ["a"], ["b"]),  # would be Relu_1, which the next node already has
        helper.make_node("Relu", ["b"], ["c"], name="Relu_1"),
        helper.make_node("Neg", ["c"], ["y"]),
    ]
    proto = _model(nodes, [_value("x", [2])], [_value("y", [2])])
    names = [n.name for n in load_model(proto).proto.graph.node]
    assert names == ["Relu_0", "Relu_1_1", "Relu_1", "Neg_3"]


def test_duplicate_node_names_get_a_suffix():
    nodes = [
        helper.make_node("Relu", ["x"], ["a"], name="n"),
        helper.make_node("Relu", ["a"], ["b"], name="n"),
        helper.make_node("Relu", ["b"], ["c"], name="n_1"),
        helper.make_node("Relu", ["c"], ["y"], name="n"),
    ]
    proto = _model(nodes, [_value("x", [2])], [_value("y", [2])])
    names = [info.name for info in load_model(proto).node_infos()]
    assert names == ["n", "n_2", "n_1", "n_3"]
    assert len(set(names)) == len(names)


def test_shuffled_nodes_come_back_in_topological_order():
    proto = _reshape_graph()
    nodes = list(proto.graph.node)
    random.Random(3).shuffle(nodes)
    del proto.graph.node[:]
    proto.graph.node.extend(nodes)
    model = load_model(proto)
    infos = model.node_infos()
    assert sorted(i.name for i in infos) == sorted(n.name for n in nodes)
    _assert_topological(infos, ["x", *model.initializers])
    assert [n.name for n in model.proto.graph.node] == [i.name for i in infos]
    assert model.tensors["y"].shape == ("batch", 12)


def test_subgraph_reads_count_as_dependencies():
    then_branch = helper.make_graph(
        [helper.make_node("Identity", ["hidden"], ["out_then"])], "then", [],
        [helper.make_tensor_value_info("out_then", F32, [2])],
    )
    else_branch = helper.make_graph(
        [helper.make_node("Neg", ["hidden"], ["out_else"])], "else", [],
        [helper.make_tensor_value_info("out_else", F32, [2])],
    )
    nodes = [  # the If reads `hidden` only inside its branches, and comes first
        helper.make_node("If", ["cond"], ["y"], name="if", then_branch=then_branch, else_branch=else_branch),
        helper.make_node("Relu", ["x"], ["hidden"], name="make_hidden"),
    ]
    proto = _model(
        nodes,
        [helper.make_tensor_value_info("cond", TensorProto.BOOL, []), helper.make_tensor_value_info("x", F32, [2])],
        [helper.make_tensor_value_info("y", F32, [2])],
    )
    infos = load_model(proto).node_infos()
    assert [i.name for i in infos] == ["make_hidden", "if"]
    assert isinstance(infos[1].attributes["then_branch"], onnx.GraphProto)


def test_a_cycle_is_an_invalid_model_error_naming_its_nodes():
    nodes = [
        helper.make_node("Add", ["x", "b"], ["a"], name="first"),
        helper.make_node("Relu", ["a"], ["b"], name="second"),
        helper.make_node("Identity", ["b"], ["y"], name="third"),
    ]
    proto = _model(nodes, [_value("x", [2])], [_value("y", [2])])
    with pytest.raises(hal.InvalidModelError, match="cycle.*'first'.*'second'"):
        load_model(proto)


def test_node_infos_decode_attributes_and_are_cached():
    model = load_model(_reshape_graph())
    infos = model.node_infos()
    gather = next(i for i in infos if i.op_type == "Gather")
    assert gather.attributes == {"axis": 0}
    assert gather.opset == 17 and gather.proto is model.proto.graph.node[1]
    assert gather.inputs[1] == TensorInfo("zero", DType.INT64, ())
    second = model.node_infos()
    assert second == infos and all(a is b for a, b in zip(second, infos))


def test_lookups_of_unknown_names_list_the_real_ones():
    model = load_model(_mlp())
    with pytest.raises(hal.InvalidInputError, match="no input named 'z'.*'x'"):
        model.input("z")
    with pytest.raises(hal.InvalidArgumentError, match="no output named 'z'.*'y'"):
        model.output("z")


# --- opset conversion ---------------------------------------------------------------------------


def test_upgrade_opset_converts_and_leaves_the_original():
    proto = _mlp()
    proto.opset_import[0].version = 11
    before = proto.SerializeToString()
    upgraded = upgrade_opset(proto, 17)
    assert proto.SerializeToString() == before
    assert load_model(upgraded).opsets[""] == 17
    assert upgrade_opset(proto, 11) == proto


def test_upgrade_opset_failure_names_the_op():
    expected = r"opset 17 to 1: node 'add1' \(Add\) could not be converted.*for Add"
    with pytest.raises(hal.InvalidModelError, match=expected):
        upgrade_opset(_mlp(), 1)


def test_upgrade_opset_refuses_unknown_targets():
    with pytest.raises(hal.InvalidModelError, match="knows opsets 1 to"):
        upgrade_opset(_mlp(), 10_000)


# --- feeds ------------------------------------------------------------------------------------


def test_validate_feeds_returns_contiguous_arrays_and_is_fast():
    model = load_model(_mlp())
    x = np.ones((3, 4), np.float32)
    assert validate_feeds(model, {"x": x})["x"] is x
    strided = np.ones((4, 3), np.float32).T
    fixed = validate_feeds(model, {"x": strided})["x"]
    assert fixed.flags.c_contiguous and np.array_equal(fixed, strided)
    runs = 20_000
    feeds = {"x": x}
    start = time.perf_counter()
    for _ in range(runs):
        validate_feeds(model, feeds)
    print(f"\nvalidate_feeds, one input: {(time.perf_counter() - start) / runs * 1e6:.2f} us per call")


def test_unknown_feed_name_lists_the_inputs():
    with pytest.raises(hal.InvalidInputError, match="no input named 'X'.*inputs are 'x'"):
        validate_feeds(load_model(_mlp()), {"X": np.ones((1, 4), np.float32)})


def test_missing_feed_names_input_dtype_and_shape():
    with pytest.raises(hal.InvalidInputError, match=r"input 'b' \(float32 \[batch, 3\]\) is missing"):
        validate_feeds(_two_inputs(), {"a": np.ones((2, 3), np.float32)})


def test_dtype_must_match_exactly():
    with pytest.raises(hal.InvalidInputError, match=r"'x' must be float32, got float64.*astype\('float32'\)"):
        validate_feeds(load_model(_mlp()), {"x": np.ones((2, 4))})
    with pytest.raises(hal.InvalidInputError, match="got int64"):
        validate_feeds(load_model(_mlp()), {"x": [[1, 2, 3, 4]]})


def test_rank_and_fixed_dims_must_match():
    model = load_model(_mlp())
    with pytest.raises(hal.InvalidInputError, match=r"'x' must have rank 2 \[batch, 4\], got rank 1"):
        validate_feeds(model, {"x": np.ones(4, np.float32)})
    with pytest.raises(hal.InvalidInputError, match="dimension 1 = 4.*got 5"):
        validate_feeds(model, {"x": np.ones((2, 5), np.float32)})


def test_symbolic_dims_must_agree_across_inputs():
    model = _two_inputs()
    ok = validate_feeds(model, {"a": np.ones((4, 3), np.float32), "b": np.ones((4, 3), np.float32)})
    assert list(ok) == ["a", "b"]
    with pytest.raises(hal.InvalidInputError, match="batch is 4 in input 'a' but 3 in input 'b'"):
        validate_feeds(model, {"a": np.ones((4, 3), np.float32), "b": np.ones((3, 3), np.float32)})


def test_a_symbol_repeated_in_one_input_must_agree():
    info = TensorInfo("square", DType.FLOAT32, ("n", "n"))
    check_feed(info, (3, 3), DType.FLOAT32, bindings={})
    with pytest.raises(hal.InvalidInputError, match="n is 3 in an earlier input but 4 in input 'square'"):
        check_feed(info, (3, 4), DType.FLOAT32, bindings={})


def test_check_feed_records_bindings():
    bindings: dict[str, int] = {}
    check_feed(TensorInfo("a", DType.FLOAT16, ("batch", 8)), (5, 8), DType.FLOAT16, bindings=bindings)
    assert bindings == {"batch": 5}
    with pytest.raises(hal.InvalidInputError, match="must be float16, got bfloat16"):
        check_feed(TensorInfo("a", DType.FLOAT16, None), (5,), DType.BFLOAT16, bindings=bindings)


def test_feeds_must_be_a_mapping():
    with pytest.raises(hal.InvalidInputError, match="mapping of input name to array, got list"):
        validate_feeds(load_model(_mlp()), [np.ones((1, 4), np.float32)])  # type: ignore[arg-type]


# --- size -------------------------------------------------------------------------------------


def test_a_20k_node_chain_loads_quickly():
    nodes, previous = [], "x"
    for i in range(20_000):
        op = ("Add", "Relu", "Mul")[i % 3]
        nodes.append(helper.make_node(op, [previous] if op == "Relu" else [previous, "x"], [f"t{i}"]))
        previous = f"t{i}"
    proto = _model(nodes, [_value("x", ["n", 8])], [_value(previous, ["n", 8])])
    start = time.perf_counter()
    model = load_model(proto)
    loaded = time.perf_counter() - start
    start = time.perf_counter()
    infos = model.node_infos()
    described = time.perf_counter() - start
    print(f"\n20,000-node chain: load_model {loaded:.3f} s, node_infos {described:.3f} s")
    assert len(infos) == 20_000 and infos[-1].outputs[0] == TensorInfo(previous, DType.FLOAT32, ("n", 8))
