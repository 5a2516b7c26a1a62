"""How the host runs what onnxruntime gets wrong or cannot hold: cases routed to onnx's reference
implementation, a kernel that fails at run time, sequence and optional values, inputs no node reads,
and function ops whose bodies onnx's strict shape inference rejects."""
from __future__ import annotations

import warnings

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper
from onnx.backend.test.runner import Runner
from onnx.reference import ReferenceEvaluator

import hal
from hal.conformance.onnx_node.cases import node_cases
from hal.graph.host import ort_cpu_supports
from hal.graph.model import load_model
from hal.graph.reference_routes import ROUTES, reference_route

F32 = TensorProto.FLOAT


def _model(nodes, inputs, outputs, opset=21, initializers=()):
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


@pytest.fixture(scope="module")
def cases():
    return {case.name: case for case in node_cases()}


# -- reference routes ---------------------------------------------------------------------------

EVIDENCE = sorted({(route.op_type, test) for route in ROUTES for test in route.evidence})


@pytest.mark.parametrize("op_type, test", EVIDENCE, ids=[t for _, t in EVIDENCE])
def test_each_route_is_still_needed_and_hal_gets_the_case_right(cases, op_type, test):
    case = cases[test]
    node_op = case.model.graph.node[0].op_type
    assert node_op == op_type
    # onnxruntime is still wrong (a different answer, or an error): when this fails, drop the route
    with pytest.raises(Exception):
        session = ort.InferenceSession(case.model.SerializeToString(), providers=["CPUExecutionProvider"])
        feeds = {i.name: np.asarray(v) if isinstance(v, np.generic) else v for i, v in zip(session.get_inputs(), case.inputs)}
        Runner.assert_similar_outputs(list(case.outputs), session.run(None, feeds), rtol=case.rtol, atol=case.atol)
    hal_session = hal.InferenceSession(case.model, devices=["cpu"])
    got = hal_session.run(None, dict(zip([i.name for i in hal_session.get_inputs()], case.inputs)))
    Runner.assert_similar_outputs(list(case.outputs), got, rtol=case.rtol, atol=case.atol)
    # the plan says the node took the slow path, and why
    assert all(node.slow for node in hal_session.plan.nodes)


def _info(model):
    return load_model(model).node_infos()[0]


def _resize(mode, transform, with_scales):
    inputs = ["X", "", "scales"] if with_scales else ["X", "", "", "sizes"]
    node = helper.make_node("Resize", inputs, ["Y"], mode=mode, coordinate_transformation_mode=transform)
    extra = [helper.make_tensor_value_info("scales", F32, [4])] if with_scales else [
        helper.make_tensor_value_info("sizes", TensorProto.INT64, [4])]
    return _model([node], [helper.make_tensor_value_info("X", F32, [1, 1, 4, 4]), *extra],
                  [helper.make_tensor_value_info("Y", F32, [None] * 4)])


def test_routes_are_as_narrow_as_their_evidence():
    # Resize keeps onnxruntime's kernel unless align_corners, linear/cubic and scales meet
    assert reference_route(_info(_resize("linear", "align_corners", True))) is not None
    assert reference_route(_info(_resize("linear", "half_pixel", True))) is None
    assert reference_route(_info(_resize("nearest", "align_corners", True))) is None
    assert reference_route(_info(_resize("linear", "align_corners", False))) is None
    assert ort_cpu_supports(_info(_resize("linear", "half_pixel", True)))
    refused = ort_cpu_supports(_info(_resize("cubic", "align_corners", True)))
    assert not refused and "align_corners" in refused.reason

    def dropout(with_training, seed):
        attrs = {"seed": 3} if seed else {}
        node = helper.make_node("Dropout", ["x", "r", "t"] if with_training else ["x"], ["y"], **attrs)
        ins = [helper.make_tensor_value_info("x", F32, [4])]
        if with_training:
            ins += [helper.make_tensor_value_info("r", F32, []), helper.make_tensor_value_info("t", TensorProto.BOOL, [])]
        return _model([node], ins, [helper.make_tensor_value_info("y", F32, [4])])

    assert reference_route(_info(dropout(True, True))) is not None
    assert reference_route(_info(dropout(True, False))) is None  # unseeded: any generator is right
    assert reference_route(_info(dropout(False, True))) is None  # inference: the identity


def test_a_seeded_training_dropout_draws_the_same_mask_on_every_backend():
    node = helper.make_node("Dropout", ["x", "r", "t"], ["y", "mask"], seed=7)
    model = _model([node], [helper.make_tensor_value_info("x", F32, [64]), helper.make_tensor_value_info("r", F32, []),
                            helper.make_tensor_value_info("t", TensorProto.BOOL, [])],
                   [helper.make_tensor_value_info("y", F32, [64]), helper.make_tensor_value_info("mask", TensorProto.BOOL, [64])])
    feeds = {"x": np.arange(64, dtype=np.float32), "r": np.array(0.5, np.float32), "t": np.array(True)}
    expected = ReferenceEvaluator(model).run(None, feeds)
    for devices in (["cpu"], ["ascend:0", "cpu"], ["kunlun:0", "cpu"]):
        got = hal.InferenceSession(model, devices=devices).run(None, feeds)
        np.testing.assert_array_equal(got[1], expected[1])
        np.testing.assert_array_equal(got[0], expected[0])


# -- a kernel that fails at run time ------------------------------------------------------------


def _conv_integer(w_zero_point):
    node = helper.make_node("ConvInteger", ["x", "w", "", "wz"], ["y"])
    inputs = [helper.make_tensor_value_info("x", TensorProto.UINT8, [1, 1, 3, 3])]
    weights = [helper.make_tensor("w", TensorProto.UINT8, [2, 1, 2, 2], [1, 2, 3, 4, 5, 6, 7, 8]),
               helper.make_tensor("wz", TensorProto.UINT8, [len(w_zero_point)], w_zero_point)]
    return _model([node], inputs, [helper.make_tensor_value_info("y", TensorProto.INT32, [1, 2, 2, 2])], initializers=weights)


def test_a_kernel_that_fails_on_its_inputs_reruns_in_the_reference_with_a_warning():
    model = _conv_integer([1, 2])  # a per-channel weight zero point: onnxruntime's kernel refuses it
    x = np.arange(9, dtype=np.uint8).reshape(1, 1, 3, 3)
    expected = ReferenceEvaluator(model).run(None, {"x": x})[0]
    session = hal.InferenceSession(model, devices=["cpu"])
    with pytest.warns(RuntimeWarning, match="reference implementation"):
        got = session.run(None, {"x": x})[0]
    np.testing.assert_array_equal(got, expected)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once per part of the model, not once per run
        np.testing.assert_array_equal(session.run(None, {"x": x})[0], expected)
    # the per-tensor case keeps onnxruntime's kernel and never warns
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        hal.InferenceSession(_conv_integer([1]), devices=["cpu"]).run(None, {"x": x})


def test_a_node_that_fails_in_both_engines_is_an_execution_error():
    node = helper.make_node("Reshape", ["x", "s"], ["y"])
    model = _model([node], [helper.make_tensor_value_info("x", F32, [None]), helper.make_tensor_value_info("s", TensorProto.INT64, [2])],
                   [helper.make_tensor_value_info("y", F32, [None, None])])
    session = hal.InferenceSession(model, devices=["cpu"])
    with pytest.warns(RuntimeWarning), pytest.raises(hal.ExecutionError, match="reference implementation too"):
        session.run(None, {"x": np.zeros(6, np.float32), "s": np.array([4, 4], np.int64)})
    assert issubclass(hal.ExecutionError, hal.HalError)


# -- sequences and optionals --------------------------------------------------------------------

SEQ = helper.make_sequence_type_proto(helper.make_tensor_type_proto(F32, [2, 3]))


def _sequence_model():
    """y = the sequence fed with x appended; first = y[0] + 1; last = Identity(x) (tensors only)."""
    nodes = [
        helper.make_node("SequenceInsert", ["seq", "x"], ["y"]),
        helper.make_node("SequenceAt", ["y", "zero"], ["item"]),
        helper.make_node("Add", ["item", "one"], ["first"]),
        helper.make_node("Relu", ["x"], ["last"]),
    ]
    inputs = [helper.make_value_info("seq", SEQ), helper.make_tensor_value_info("x", F32, [2, 3])]
    outputs = [helper.make_value_info("y", SEQ), helper.make_tensor_value_info("first", F32, [2, 3]),
               helper.make_tensor_value_info("last", F32, [2, 3])]
    weights = [helper.make_tensor("zero", TensorProto.INT64, [], [0]), helper.make_tensor("one", F32, [], [1.0])]
    return _model(nodes, inputs, outputs, initializers=weights)


@pytest.mark.parametrize("devices", [["cpu"], ["ascend:0", "cpu"], ["kunlun:0", "cpu"]])
def test_sequences_flow_in_and_out_of_a_session(devices):
    session = hal.InferenceSession(_sequence_model(), devices=devices)
    assert session.get_inputs()[0].type == "seq(tensor(float))"
    assert session.get_outputs()[0].type == "seq(tensor(float))"
    a, x = np.ones((2, 3), np.float32), np.full((2, 3), -2.0, np.float32)
    y, first, last = session.run(None, {"seq": [a], "x": x})
    assert isinstance(y, list) and len(y) == 2
    np.testing.assert_array_equal(y[1], x)
    np.testing.assert_array_equal(first, a + 1)
    np.testing.assert_array_equal(last, np.zeros_like(x))
    placed = {n.name: n.device for n in session.plan.nodes}
    sequence_nodes = [n.name for n in session.model.node_infos() if n.op_type.startswith("Sequence")]
    assert all(placed[name] == "cpu:0" for name in sequence_nodes)
    if devices[0] != "cpu":  # the tensor-only Relu still goes to the chip
        relu = next(n.name for n in session.model.node_infos() if n.op_type == "Relu")
        assert placed[relu] == devices[0]


def test_a_strict_chip_session_names_the_sequence_node_it_cannot_hold():
    # Ascend runs Identity on tensors, not on a sequence
    model = _model([helper.make_node("Identity", ["seq"], ["out"])], [helper.make_value_info("seq", SEQ)],
                   [helper.make_value_info("out", SEQ)])
    with pytest.raises(hal.UnsupportedOpError, match=r"Identity reads or writes seq\(tensor\(float\)\), which only the host holds"):
        hal.InferenceSession(model, devices=["ascend:0"], strict=True)
    items = [np.ones((2, 3), np.float32)]
    out = hal.InferenceSession(model, devices=["ascend:0", "cpu"]).run(None, {"seq": items})[0]
    np.testing.assert_array_equal(out[0], items[0])


def test_bad_sequence_and_optional_feeds_are_clear_errors():
    session = hal.InferenceSession(_sequence_model(), devices=["cpu"])
    x = np.zeros((2, 3), np.float32)
    with pytest.raises(hal.InvalidInputError, match="sequence.*list of numpy arrays"):
        session.run(None, {"seq": np.zeros((1, 2, 3), np.float32), "x": x})
    with pytest.raises(hal.InvalidInputError, match=r"seq\[0\] must be a tensor\(float\), got int64"):
        session.run(None, {"seq": [np.zeros((2, 3), np.int64)], "x": x})
    optional = helper.make_optional_type_proto(helper.make_tensor_type_proto(F32, [2]))
    model = _model([helper.make_node("OptionalHasElement", ["o"], ["has"])], [helper.make_value_info("o", optional)],
                   [helper.make_tensor_value_info("has", TensorProto.BOOL, [])], opset=18)
    has = hal.InferenceSession(model, devices=["cpu"])
    assert has.get_inputs()[0].type == "optional(tensor(float))"
    assert bool(has.run(None, {"o": None})[0]) is False
    assert bool(has.run(None, {"o": np.zeros(2, np.float32)})[0]) is True
    with pytest.raises(hal.InvalidInputError, match="pass a numpy array"):
        has.run(None, {"o": [np.zeros(2, np.float32)]})


# -- inputs no node reads, function bodies --------------------------------------------------------


def test_an_input_no_node_reads_may_be_fed():
    model = _model([helper.make_node("Relu", ["x"], ["y"])],
                   [helper.make_tensor_value_info("x", F32, [2]), helper.make_tensor_value_info("unused", F32, [2])],
                   [helper.make_tensor_value_info("y", F32, [2])])
    session = hal.InferenceSession(model, devices=["cpu"])
    assert [i.name for i in session.get_inputs()] == ["x", "unused"]
    y = session.run(None, {"x": np.array([-1, 2], np.float32), "unused": np.zeros(2, np.float32)})[0]
    np.testing.assert_array_equal(y, [0, 2])


def test_a_function_op_whose_body_strict_inference_rejects_still_loads():
    model = _model([helper.make_node("MeanVarianceNormalization", ["x"], ["y"])],
                   [helper.make_tensor_value_info("x", F32, [1, 2, 3, 3])], [helper.make_tensor_value_info("y", F32, [1, 2, 3, 3])],
                   opset=13)
    x = np.random.default_rng(0).standard_normal((1, 2, 3, 3)).astype(np.float32)
    y = hal.InferenceSession(model, devices=["cpu"]).run(None, {"x": x})[0]
    mean = x.mean(axis=(0, 2, 3), keepdims=True)
    np.testing.assert_allclose(y, (x - mean) / np.sqrt(((x - mean) ** 2).mean(axis=(0, 2, 3), keepdims=True)), rtol=1e-4, atol=1e-5)
    # a genuinely wrong model still fails to load, naming the node
    bad = _model([helper.make_node("MatMul", ["a", "b"], ["c"])],
                 [helper.make_tensor_value_info("a", F32, [2, 3]), helper.make_tensor_value_info("b", F32, [4, 5])],
                 [helper.make_tensor_value_info("c", F32, [2, 5])])
    with pytest.raises(hal.InvalidModelError, match="MatMul"):
        load_model(bad)
