"""Placement: which device runs each node (hal.graph.placement), as a session's plan reports it."""
from __future__ import annotations

import types

import numpy as np
import onnxruntime as ort
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import hal  # noqa: E402
from hal import DType  # noqa: E402
from hal.capability import NodeInfo, Support, TensorInfo  # noqa: E402
from hal.graph.model import load_model  # noqa: E402
from hal.graph.placement import (  # noqa: E402
    HOST_SHAPE_REASON,
    place_priority,
    shape_only_nodes,
    tensor_bytes,
    transfer_seconds,
)
from hal.testing import transformer_block  # noqa: E402

F32 = TensorProto.FLOAT
ASC, KUN, CPU = "ascend:0", "kunlun:0", "cpu:0"


def _value(name, shape, dtype=F32):
    return helper.make_tensor_value_info(name, dtype, shape)


def _model(nodes, inputs, outputs, initializers=()):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _node(name, op="Relu"):
    t = TensorInfo(f"{name}_in", DType.FLOAT32, (2,))
    return NodeInfo(name, op, "", 17, (t,), (TensorInfo(f"{name}_out", DType.FLOAT32, (2,)),))


def _devices(*names):
    return [types.SimpleNamespace(name=n) for n in names]


# -- priority --------------------------------------------------------------------------------------


def test_priority_takes_the_first_device_that_runs_a_node_natively():
    a, b, c = _devices("a:0", "b:0", "c:0")
    node = _node("n")
    answers = {"n": [Support.no("a lacks it"), Support.yes("ref", slow=True), Support.yes()]}
    placed = place_priority([node], [a, b, c], answers, set(), c, strict=False)
    assert placed.assignment == {"n": "c:0"}
    assert placed.fallbacks == [("n", "a:0", "a lacks it")]


def test_priority_takes_a_slow_path_only_when_nothing_runs_the_node_natively():
    a, b = _devices("a:0", "b:0")
    answers = {"n": [Support.no("a lacks it"), Support.yes("reference", slow=True)]}
    placed = place_priority([_node("n")], [a, b], answers, set(), b, strict=False)
    assert placed.assignment == {"n": "b:0"}


def test_priority_prefers_a_native_device_over_a_slow_first_device():
    a, b = _devices("a:0", "b:0")
    answers = {"n": [Support.yes("reference", slow=True), Support.yes()]}
    placed = place_priority([_node("n")], [a, b], answers, set(), a, strict=False)
    assert placed.assignment == {"n": "b:0"}
    (node, wanted, reason), = placed.fallbacks
    assert (node, wanted) == ("n", "a:0")
    assert "slow path" in reason and "reference" in reason


def test_erf_that_kunlun_lacks_goes_to_the_next_listed_chip_not_to_the_cpu():
    model = _model(
        [helper.make_node("Relu", ["x"], ["r"], name="relu"), helper.make_node("Erf", ["r"], ["y"], name="erf")],
        [_value("x", [2, 4])], [_value("y", [2, 4])],
    )
    plan = hal.InferenceSession(model, devices=[KUN, ASC]).plan
    assert plan.assignments == {"relu": KUN, "erf": ASC}
    (node, wanted, reason), = plan.fallbacks
    assert (node, wanted) == ("erf", KUN)
    assert "no Erf" in reason
    assert plan.devices == [KUN, ASC, CPU]


def test_float16_matmul_leaves_a_slow_cpu_for_a_chip_that_runs_it():
    h = TensorProto.FLOAT16
    model = _model([helper.make_node("MatMul", ["a", "b"], ["c"], name="mm")],
                   [_value("a", [2, 3], h), _value("b", [3, 4], h)], [_value("c", [2, 4], h)])
    plan = hal.InferenceSession(model, devices=["cpu", ASC]).plan
    assert plan.assignments == {"mm": ASC}
    (node_plan,) = plan.nodes
    assert "slow path" in node_plan.reason and not node_plan.slow
    # with only the CPU listed, the slow path runs, marked as such
    plan = hal.InferenceSession(model, devices=["cpu"]).plan
    (node_plan,) = plan.nodes
    assert node_plan.device == CPU and node_plan.slow
    assert "reference" in node_plan.reason
    assert plan.fallbacks == []


def test_float64_nodes_fall_back_with_the_reason():
    d = TensorProto.DOUBLE
    model = _model(
        [helper.make_node("Add", ["a", "b"], ["c"], name="add64"),
         helper.make_node("Cast", ["c"], ["c32"], to=F32, name="cast"),
         helper.make_node("Relu", ["c32"], ["y"], name="relu")],
        [_value("a", [3], d), _value("b", [3], d)], [_value("y", [3])],
    )
    sess = hal.InferenceSession(model, devices=[ASC])
    plan = sess.plan
    assert plan.assignments == {"add64": CPU, "cast": CPU, "relu": ASC}
    reasons = {node: (wanted, reason) for node, wanted, reason in plan.fallbacks}
    assert set(reasons) == {"add64", "cast"}
    for wanted, reason in reasons.values():
        assert wanted == ASC
        assert reason.startswith("float64 is not supported on Ascend 910B")
    out = sess.run(None, {"a": np.arange(3.0), "b": np.array([-5.0, 0.5, 1.0])})[0]
    np.testing.assert_array_equal(out, np.array([0.0, 1.5, 3.0], np.float32))


# -- strict ----------------------------------------------------------------------------------------


def _many_ops_model():
    """Einsum, HardSigmoid and float32 Exp (Ascend lacks them); Erf, Selu, Celu (Kunlun lacks them)."""
    nodes = [
        helper.make_node("Einsum", ["x", "w"], ["e"], equation="ij,jk->ik", name="einsum"),
        helper.make_node("Erf", ["e"], ["f"], name="erf"),
        helper.make_node("Selu", ["f"], ["g"], name="selu"),
        helper.make_node("Celu", ["g"], ["h"], name="celu"),
        helper.make_node("HardSigmoid", ["h"], ["i"], name="hardsigmoid"),
        helper.make_node("Exp", ["i"], ["j"], name="exp"),
        helper.make_node("Relu", ["j"], ["y"], name="relu"),
    ]
    return _model(nodes, [_value("x", [2, 3]), _value("w", [3, 2])], [_value("y", [2, 2])])


@pytest.mark.parametrize("device, missing", [
    (ASC, {"einsum": "has no Einsum", "hardsigmoid": "has no HardSigmoid", "exp": "computes Exp in float16, not float32"}),
    (KUN, {"erf": "has no Erf", "selu": "has no Selu", "celu": "has no Celu"}),
])
def test_strict_load_lists_every_node_the_device_cannot_run(device, missing):
    with pytest.raises(hal.UnsupportedOpError) as caught:
        hal.InferenceSession(_many_ops_model(), devices=[device], strict=True)
    message = str(caught.value)
    assert f"{device} cannot run {len(missing)} node(s)" in message
    lines = {line.strip().split(" ", 1)[0]: line for line in message.splitlines() if line.startswith("  ")}
    assert set(lines) == set(missing)
    for node, why in missing.items():
        assert why in lines[node]


def test_strict_session_that_fits_uses_only_the_listed_device():
    model = _model([helper.make_node("Relu", ["x"], ["y"], name="relu")], [_value("x", [2])], [_value("y", [2])])
    sess = hal.InferenceSession(model, devices=[ASC], strict=True)
    assert sess.plan.devices == [ASC]
    assert sess.plan.assignments == {"relu": ASC}
    assert sess.plan.fallbacks == []


# -- shape computations ----------------------------------------------------------------------------


def _shape_model():
    """x -> MatMul -> h; Shape(h) -> Gather -> Unsqueeze -> Concat -> the target of Reshape(h)."""
    inits = [
        numpy_helper.from_array(np.full((8, 8), 0.1, np.float32), "w"),
        numpy_helper.from_array(np.array(0, np.int64), "zero"),
        numpy_helper.from_array(np.array([0], np.int64), "axes"),
        numpy_helper.from_array(np.array([-1], np.int64), "rest"),
    ]
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["h"], name="mm"),
        helper.make_node("Shape", ["x"], ["shape"], name="shape"),
        helper.make_node("Gather", ["shape", "zero"], ["n"], axis=0, name="gather"),
        helper.make_node("Unsqueeze", ["n", "axes"], ["n1"], name="unsqueeze"),
        helper.make_node("Concat", ["n1", "rest"], ["target"], axis=0, name="concat"),
        helper.make_node("Reshape", ["h", "target"], ["y"], name="reshape"),
    ]
    return _model(nodes, [_value("x", ["batch", 4, 8])], [_value("y", ["batch", 32])], inits)


def test_shape_subgraph_stays_on_the_host_and_the_reshape_goes_to_the_chip():
    plan = hal.InferenceSession(_shape_model(), devices=[ASC]).plan
    by_name = {n.name: n for n in plan.nodes}
    for name in ("shape", "gather", "unsqueeze", "concat"):
        assert by_name[name].device == CPU
        assert by_name[name].reason == HOST_SHAPE_REASON
    assert by_name["mm"].device == ASC and by_name["reshape"].device == ASC
    # staying on the host is a choice, not a fallback
    assert plan.fallbacks == []


def test_transformer_block_shape_nodes_stay_on_the_host():
    # a dynamic batch: with every size fixed, the session folds the shape arithmetic away
    plan = hal.InferenceSession(transformer_block(batch="batch", seq=4, hidden=16, heads=2), devices=[ASC]).plan
    host = {n.name for n in plan.nodes if n.device == CPU}
    assert host and {plan_node.op for plan_node in plan.nodes if plan_node.name in host} <= {"Shape", "Gather", "Unsqueeze", "Concat"}
    assert all(n.reason == HOST_SHAPE_REASON for n in plan.nodes if n.name in host)
    assert {n.op for n in plan.nodes if n.device == ASC} >= {"MatMul", "Reshape", "Softmax", "LayerNormalization"}


def test_shape_only_nodes_excludes_float_work_and_constants_read_by_float_work():
    loaded = load_model(_shape_model())
    found = shape_only_nodes(loaded.node_infos(), loaded.initializers)
    assert found == {"shape", "gather", "unsqueeze", "concat"}
    const = helper.make_node("Constant", [], ["c"], value=numpy_helper.from_array(np.array([2], np.int64)), name="const")
    tile = helper.make_node("Tile", ["x", "c"], ["y"], name="tile")
    loaded = load_model(_model([const, tile], [_value("x", [3])], [_value("y", [6])]))
    assert shape_only_nodes(loaded.node_infos(), loaded.initializers) == set()


def test_shape_of_a_chip_tensor_moves_no_data_to_the_host():
    model = _shape_model()
    model.graph.node[1].input[0] = "h"  # Shape(h): h is computed on the chip
    sess = hal.InferenceSession(model, devices=[ASC])
    assert [t.tensor for t in sess.plan.transfers if t.destination == CPU] == []
    x = np.random.default_rng(0).standard_normal((3, 4, 8)).astype(np.float32)
    expected = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    (got,) = sess.run(None, {"x": x})
    assert got.shape == expected.shape == (3, 32)
    np.testing.assert_allclose(got, expected, rtol=1e-2, atol=1e-3)  # Ascend's MatMul rounds inputs to fp16
    with hal.profiler.profile() as prof:  # and no copy of h to the host happens at run time either
        sess.run_with_tensors({"x": hal.tensor(x, device=ASC)})
    assert [e.name for e in prof.events if e.category == "copy"] == ["copy_h2d", "copy_h2d"]  # x, then the target shape


# -- cost ------------------------------------------------------------------------------------------


def _big_and_tiny_model():
    """A 256x1024 @ 1024x1024 MatMul (+ Relu) next to a chain of three ops on 8 floats."""
    w = numpy_helper.from_array(np.zeros((1024, 1024), np.float32), "w")
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["h"], name="big_matmul"),
        helper.make_node("Relu", ["h"], ["y"], name="big_relu"),
        helper.make_node("Add", ["s", "s"], ["s1"], name="tiny_add"),
        helper.make_node("Sigmoid", ["s1"], ["s2"], name="tiny_sigmoid"),
        helper.make_node("Mul", ["s2", "s"], ["t"], name="tiny_mul"),
    ]
    return _model(nodes, [_value("x", [256, 1024]), _value("s", [1, 8])], [_value("y", [256, 1024]), _value("t", [1, 8])], [w])


def test_cost_puts_the_big_matmul_on_the_chip_and_the_tiny_chain_on_the_cpu():
    model = _big_and_tiny_model()
    cost = hal.InferenceSession(model, devices=[ASC, "cpu"], placement="cost").plan
    priority = hal.InferenceSession(model, devices=[ASC, "cpu"], placement="priority").plan
    assert cost.placement == "cost" and priority.placement == "priority"
    assert cost.assignments["big_matmul"] == ASC
    assert {cost.assignments[n] for n in ("tiny_add", "tiny_sigmoid", "tiny_mul")} == {CPU}
    assert set(priority.assignments.values()) == {ASC}
    assert cost.estimated_total_s <= priority.estimated_total_s
    # a node moved for speed is no fallback: the chip could run it
    assert cost.fallbacks == []
    assert all(n.reason.startswith("cost: cpu:0 is faster") for n in cost.nodes if n.device == CPU)


def test_cost_keeps_fallbacks_for_nodes_the_first_device_cannot_run():
    model = _model([helper.make_node("Relu", ["x"], ["r"], name="relu"), helper.make_node("Erf", ["r"], ["y"], name="erf")],
                   [_value("x", [2, 4])], [_value("y", [2, 4])])
    plan = hal.InferenceSession(model, devices=[KUN], placement="cost").plan
    assert plan.assignments["erf"] == CPU
    assert [(n, w) for n, w, _ in plan.fallbacks] == [("erf", KUN)]


def _runtime_total(plan):
    """Estimated time as a run spends it: compute, plus each tensor moved once per destination."""
    moves = {(t.tensor, t.destination): t.estimated_s for t in plan.transfers}
    return sum(plan.estimated_by_device.values()) + sum(moves.values())


def test_cost_plan_is_no_slower_than_priority_plan_when_inputs_must_cross():
    size = 262144  # 1 MiB of float32
    model = _model([helper.make_node("Relu", ["x"], ["a"], name="relu"), helper.make_node("Erf", ["x"], ["b"], name="erf")],
                   [_value("x", [1, size])], [_value("a", [1, size]), _value("b", [1, size])])
    devices = [ASC, KUN]  # strict: chips only, so the estimates come from the spec files alone
    cost = hal.InferenceSession(model, devices=devices, placement="cost", strict=True).plan
    priority = hal.InferenceSession(model, devices=devices, placement="priority", strict=True).plan
    assert _runtime_total(cost) <= _runtime_total(priority)


def test_cost_strict_with_a_slow_first_device_places_the_node_elsewhere():
    h = TensorProto.FLOAT16
    model = _model([helper.make_node("MatMul", ["a", "b"], ["c"], name="mm")],
                   [_value("a", [2, 3], h), _value("b", [3, 4], h)], [_value("c", [2, 4], h)])
    plan = hal.InferenceSession(model, devices=["cpu", ASC], placement="cost", strict=True).plan
    assert plan.assignments == {"mm": ASC}


def test_unknown_placement_is_an_invalid_argument():
    model = _model([helper.make_node("Relu", ["x"], ["y"], name="relu")], [_value("x", [2])], [_value("y", [2])])
    with pytest.raises(hal.InvalidArgumentError, match="placement must be one of"):
        hal.InferenceSession(model, devices=[ASC], placement="fastest")


# -- helpers -------------------------------------------------------------------------------------


def test_transfer_estimates_follow_the_chip_links():
    cpu, ascend, kunlun = hal.device(CPU), hal.device(ASC), hal.device(KUN)
    nbytes = 1 << 20
    assert transfer_seconds(ascend, ascend, nbytes) == 0.0
    assert transfer_seconds(cpu, ascend, 0) == 0.0
    up = transfer_seconds(cpu, ascend, nbytes)
    assert up == ascend.driver.copy_cost.host_to_device(nbytes) > 0
    assert transfer_seconds(ascend, cpu, nbytes) == ascend.driver.copy_cost.device_to_host(nbytes)
    # no direct link between an Ascend and a Kunlun card: down one host link and up the other
    across = transfer_seconds(ascend, kunlun, nbytes)
    assert across == pytest.approx(ascend.driver.copy_cost.device_to_host(nbytes) + kunlun.driver.copy_cost.host_to_device(nbytes))


def test_tensor_bytes_counts_unknown_dimensions_as_one():
    assert tensor_bytes(TensorInfo("t", DType.FLOAT32, ("batch", 4, 8))) == 4 * 8 * 4
    assert tensor_bytes(TensorInfo("t", DType.INT64, ())) == 8
    assert tensor_bytes(TensorInfo("t", None, (4,))) == 0
    assert tensor_bytes(None) == 0


# -- opset conversion ----------------------------------------------------------------------------


def _gemm_model(opset: int):
    w = numpy_helper.from_array(np.full((4, 3), 0.5, np.float32), "w")
    c = numpy_helper.from_array(np.ones(3, np.float32), "c")  # Gemm before opset 11 requires C
    node = helper.make_node("Gemm", ["x", "w", "c"], ["y"], name="gemm")
    graph = helper.make_graph([node], "g", [_value("x", [2, 4])], [_value("y", [2, 3])], [w, c])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)


def test_a_model_older_than_a_chip_needs_is_converted_and_runs_there():
    model = _gemm_model(6)  # Gemm-6: the Kunlun table starts at Gemm-7 (Paddle maps ONNX Gemm from opset 7)
    assert "opset 6" in hal.device(KUN).backend.supports(
        hal.graph.model.load_model(model).node_infos()[0], hal.device(KUN).spec).reason
    sess = hal.InferenceSession(model, devices=[KUN, "cpu"])
    assert sess.plan.assignments == {"gemm": KUN} and sess.plan.fallbacks == []
    assert sess.plan.opset_conversion == "converted from ai.onnx opset 6 to 7"
    assert "converted from ai.onnx opset 6 to 7" in sess.plan.explain()
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    np.testing.assert_allclose(sess.run(None, {"x": x})[0], x @ np.full((4, 3), 0.5, np.float32) + 1, rtol=1e-3)


def test_a_model_the_chips_take_as_it_is_is_not_converted():
    sess = hal.InferenceSession(_gemm_model(13), devices=[KUN, "cpu"])
    assert sess.plan.opset_conversion == "" and sess.model.opsets[""] == 13
