"""Rewrites a session makes for the chips it lists: fixed shapes folded into constants, erf-GELU
fused into one kernel for a chip without Erf. Neither changes what the model computes."""
from __future__ import annotations

import math

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import hal
from hal.graph.fold import fold_static_shapes
from hal.graph.fusion import fuse_erf_gelu
from hal.graph.model import load_model
from hal.testing import bert_encoder

F32 = TensorProto.FLOAT


def _model(nodes, inputs, outputs, initializers=(), opset=17):
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _scalar(name, value):
    return helper.make_tensor(name, F32, [], [value])


def _gelu_model(order="x_first", scale_as="div", extra_reader=False):
    """y = gelu(x @ w) written as exporters write it, then Relu."""
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"])]
    if scale_as == "div":
        nodes.append(helper.make_node("Div", ["h", "sqrt2"], ["d"]))
    else:
        nodes.append(helper.make_node("Mul", ["inv_sqrt2", "h"], ["d"]))
    nodes += [helper.make_node("Erf", ["d"], ["e"]), helper.make_node("Add", ["e", "one"], ["a"])]
    if order == "x_first":  # (h * (1 + erf)) * 0.5
        nodes += [helper.make_node("Mul", ["h", "a"], ["m"]), helper.make_node("Mul", ["m", "half"], ["g"])]
    else:  # (h * 0.5) * (1 + erf)
        nodes += [helper.make_node("Mul", ["h", "half"], ["m"]), helper.make_node("Mul", ["m", "a"], ["g"])]
    nodes.append(helper.make_node("Relu", ["g"], ["y"]))
    outputs = [helper.make_tensor_value_info("y", F32, [4, 16])]
    if extra_reader:  # the Erf result is also a graph output: the pattern must stay
        outputs.append(helper.make_tensor_value_info("e", F32, [4, 16]))
    rng = np.random.default_rng(0)
    weights = [onnx.numpy_helper.from_array(rng.standard_normal((8, 16)).astype(np.float32), "w"),
               _scalar("sqrt2", math.sqrt(2.0)), _scalar("inv_sqrt2", 1 / math.sqrt(2.0)), _scalar("one", 1.0),
               _scalar("half", 0.5)]
    return _model(nodes, [helper.make_tensor_value_info("x", F32, [4, 8])], outputs, weights)


@pytest.mark.parametrize("order", ["x_first", "half_first"])
@pytest.mark.parametrize("scale_as", ["div", "mul"])
def test_erf_gelu_patterns_fuse_into_one_node(order, scale_as):
    model = _gelu_model(order, scale_as)
    fused, count = fuse_erf_gelu(model)
    assert count == 1
    ops = [n.op_type for n in fused.graph.node]
    assert ops == ["MatMul", "FusedGelu", "Relu"]
    x = np.random.default_rng(1).standard_normal((4, 8)).astype(np.float32)
    expected = hal.InferenceSession(model, devices=["cpu"]).run(None, {"x": x})[0]
    got = hal.InferenceSession(fused, devices=["cpu"]).run(None, {"x": x})[0]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_a_pattern_whose_middle_is_read_elsewhere_is_left_alone():
    model = _gelu_model(extra_reader=True)
    fused, count = fuse_erf_gelu(model)
    assert count == 0 and fused is model


def test_sessions_fuse_only_for_a_chip_without_erf():
    model = _gelu_model()
    x = np.random.default_rng(2).standard_normal((4, 8)).astype(np.float32)
    cpu = hal.InferenceSession(model, devices=["cpu"])
    assert cpu.plan.fusions == "" and any(n.op == "Erf" for n in cpu.plan.nodes)
    ascend = hal.InferenceSession(model, devices=["ascend:0", "cpu"])  # Ascend has Erf
    assert "GELU" not in ascend.plan.fusions
    kunlun = hal.InferenceSession(model, devices=["kunlun:0", "cpu"])  # Kunlun has gelu, no erf
    assert "1 erf-GELU pattern(s)" in kunlun.plan.fusions
    assert "Rewrote for the listed chips" in kunlun.plan.explain()
    assert {n.device for n in kunlun.plan.nodes} == {"kunlun:0"}
    assert len(kunlun.plan.partitions) == 1
    np.testing.assert_allclose(kunlun.run(None, {"x": x})[0], cpu.run(None, {"x": x})[0], rtol=2e-3, atol=2e-3)


def _reshape_by_shape_model(batch):
    """y = Reshape(Relu(x), [Shape(x)[0], -1]): the exporters' way to flatten."""
    nodes = [
        helper.make_node("Relu", ["x"], ["r"]),
        helper.make_node("Shape", ["r"], ["s"]),
        helper.make_node("Gather", ["s", "zero"], ["n"], axis=0),
        helper.make_node("Unsqueeze", ["n", "axes"], ["n1"]),
        helper.make_node("Concat", ["n1", "minus_one"], ["target"], axis=0),
        helper.make_node("Reshape", ["r", "target"], ["f"]),
        helper.make_node("Tanh", ["f"], ["y"]),
    ]
    weights = [helper.make_tensor("zero", TensorProto.INT64, [], [0]), helper.make_tensor("axes", TensorProto.INT64, [1], [0]),
               helper.make_tensor("minus_one", TensorProto.INT64, [1], [-1])]
    return _model(nodes, [helper.make_tensor_value_info("x", F32, [batch, 3, 4])],
                  [helper.make_tensor_value_info("y", F32, [batch, 12])], weights)


def test_fixed_shapes_fold_into_constants_and_dynamic_ones_stay():
    static = load_model(_reshape_by_shape_model(2))
    folded, count = fold_static_shapes(static.proto, static.node_infos(), static.initializers)
    assert count == 4  # Shape, Gather, Unsqueeze, Concat
    assert [n.op_type for n in folded.graph.node] == ["Relu", "Reshape", "Tanh"]
    target = next(t for t in folded.graph.initializer if t.name == "target")
    assert onnx.numpy_helper.to_array(target).tolist() == [2, -1]
    dynamic = load_model(_reshape_by_shape_model("batch"))
    unchanged, count = fold_static_shapes(dynamic.proto, dynamic.node_infos(), dynamic.initializers)
    assert count == 0 and unchanged is dynamic.proto


@pytest.mark.parametrize("batch", [2, "batch"])
def test_a_chip_session_runs_a_fixed_reshape_in_one_partition(batch):
    model = _reshape_by_shape_model(batch)
    x = np.random.default_rng(3).standard_normal((2, 3, 4)).astype(np.float32)
    session = hal.InferenceSession(model, devices=["ascend:0", "cpu"])
    expected = np.tanh(np.maximum(x, 0).reshape(2, 12))
    np.testing.assert_allclose(session.run(None, {"x": x})[0], expected, rtol=2e-3, atol=2e-3)
    chip_partitions = [p for p in session.plan.partitions if p.device == "ascend:0"]
    if batch == 2:
        assert len(session.plan.partitions) == 1 and "4 shape computation node(s)" in session.plan.fusions
    else:  # the batch is known only at run time: Shape stays, on the host, between two chip parts
        assert session.plan.fusions == "" and len(chip_partitions) == 2


def test_bert_on_kunlun_is_one_chip_partition():
    model = bert_encoder(batch=1, seq=16, hidden=64, heads=2, layers=2, intermediate=128, vocab=100)
    session = hal.InferenceSession(model, devices=["kunlun:0", "cpu"])
    assert len(session.plan.partitions) == 1
    assert {n.device for n in session.plan.nodes} == {"kunlun:0"}
    assert "2 erf-GELU pattern(s)" in session.plan.fusions
    feeds = {"input_ids": np.arange(16, dtype=np.int64).reshape(1, 16) % 100, "attention_mask": np.ones((1, 16), np.int64)}
    expected = hal.InferenceSession(model, devices=["cpu"]).run(None, feeds)[0]
    np.testing.assert_allclose(session.run(None, feeds)[0], expected, rtol=1e-2, atol=1e-2)


def test_kernel_ops_keep_symbolic_dims_through_shape_inference():
    # a FusedGelu between chip partitions of a dynamic-batch model must still be typed
    from hal.graph.model import load_generated

    model = _model([helper.make_node("FusedGelu", ["x"], ["y"], domain="com.hal", approximate="none"),
                    helper.make_node("ToNC1HWC0", ["y"], ["z"], domain="com.hal", c0=16)],
                   [helper.make_tensor_value_info("x", F32, ["batch", 20, None, 7])],
                   [helper.make_tensor_value_info("z", F32, None)])
    model.opset_import.append(helper.make_opsetid("com.hal", 1))
    tensors = load_generated(model).tensors
    batch, channels, height, width = tensors["y"].shape
    assert (batch, channels, width) == ("batch", 20, 7) and not isinstance(height, int)
    assert tensors["z"].dtype == hal.DType.FLOAT32
    assert tensors["z"].shape[:2] == ("batch", 2) and tensors["z"].shape[3:] == (7, 16)  # C1 = ceil(20 / 16)
    assert not isinstance(tensors["z"].shape[2], int)  # the unknown height stays unknown
