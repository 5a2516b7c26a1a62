"""InferenceSession(..., failover=[...]): a device that fails while a model runs (kernel error,
device lost, out of memory) is left out, the rest of the run is placed again over the failover
devices and finished there, with results identical to a fault-free run, one FailoverWarning, and
no device memory left behind."""
from __future__ import annotations

import gc
import warnings

import numpy as np
import pytest

import hal
from hal import sim
from hal.graph.session import FailoverWarning
from hal.sim import FAULT_KINDS
from hal.testing.models import chain, random_inputs


@pytest.fixture(scope="module")
def model():
    # ascend:0 -> cpu (an op the chips lack) -> ascend:0; elementwise float32 only, which every
    # device computes bit for bit alike, so "identical" can be exact
    return chain(160)


@pytest.fixture(scope="module")
def feeds(model):
    return random_inputs(model)


@pytest.fixture(scope="module")
def expected(model, feeds):
    return hal.InferenceSession(model, devices=["cpu"]).run(None, feeds)[0]


@pytest.fixture(autouse=True)
def no_faults_left():
    yield
    for name in ("ascend:0", "kunlun:0"):
        sim.clear_faults(name)


def _allocated(*names: str) -> list[int]:
    gc.collect()
    return [hal.device(n).memory_stats().allocated_bytes for n in names]


def _run_recording(session, feeds):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = session.run(None, feeds)[0]
    return out, [w for w in caught if issubclass(w.category, FailoverWarning)]


@pytest.mark.parametrize("kind", FAULT_KINDS)
@pytest.mark.parametrize("after_ops", [0, 1, 3])  # a run: 6 stream ops (copies, partitions), 4 allocations
def test_a_fault_fails_over_with_identical_results(model, feeds, expected, kind, after_ops):
    before = _allocated("ascend:0", "kunlun:0")
    session = hal.InferenceSession(model, devices=["ascend:0"], failover=["kunlun:0", "cpu"])
    assert [p.device for p in session.plan.partitions] == ["ascend:0", "cpu:0", "ascend:0"]
    sim.inject_fault("ascend:0", kind, after_ops=after_ops)
    out, warned = _run_recording(session, feeds)
    np.testing.assert_array_equal(out, expected)
    assert len(warned) == 1
    message = str(warned[0].message)
    assert message.startswith("ascend:0 failed while this session ran")
    assert {"kernel_error": "injected kernel error", "device_lost": "was lost",
            "out_of_memory": "out of memory"}[kind] in message
    assert session.failed_devices == [hal.device("ascend:0")]
    assert session.get_providers() == ["kunlun:0", "cpu:0"]
    assert {p.device for p in session.plan.partitions} == {"kunlun:0", "cpu:0"}
    assert hal.device("ascend:0").lost == (kind == "device_lost")
    again, warned_again = _run_recording(session, feeds)  # the new plan, no second warning
    np.testing.assert_array_equal(again, expected)
    assert warned_again == []
    del session, out, again
    assert _allocated("ascend:0", "kunlun:0") == before


def test_device_resident_outputs_free_their_memory_on_both_devices(model, feeds, expected):
    before = _allocated("ascend:0", "kunlun:0")
    session = hal.InferenceSession(model, devices=["ascend:0"], failover=["kunlun:0", "cpu"])
    x = hal.tensor(feeds["x"], device="cpu")
    sim.inject_fault("ascend:0", "device_lost", after_ops=3)
    with pytest.warns(FailoverWarning, match="ascend:0"):
        outputs = session.run_with_tensors({"x": x})
    assert outputs["y"].device is hal.device("kunlun:0")
    np.testing.assert_array_equal(outputs["y"].numpy(), expected)
    assert _allocated("kunlun:0")[0] > before[1]  # the output lives there until dropped
    del outputs, session
    assert _allocated("ascend:0", "kunlun:0") == before


def test_a_failover_device_failing_too_moves_on_again(model, feeds, expected):
    session = hal.InferenceSession(model, devices=["ascend:0"], failover=["kunlun:0", "cpu"])
    sim.inject_fault("ascend:0", "kernel_error", after_ops=1)
    sim.inject_fault("kunlun:0", "device_lost", after_ops=1)
    out, warned = _run_recording(session, feeds)
    np.testing.assert_array_equal(out, expected)
    assert [str(w.message).split()[0] for w in warned] == ["ascend:0", "kunlun:0"]
    assert session.get_providers() == ["cpu:0"]
    assert [d.name for d in session.failed_devices] == ["ascend:0", "kunlun:0"]


@pytest.mark.parametrize("kind, match", [("kernel_error", "injected kernel error"), ("device_lost", "was lost")])
def test_without_failover_the_fault_reaches_the_caller(model, feeds, expected, kind, match):
    session = hal.InferenceSession(model, devices=["ascend:0"])
    sim.inject_fault("ascend:0", kind, after_ops=1)
    with pytest.raises(hal.DeviceError, match=match):
        session.run(None, feeds)
    assert session.get_providers() == ["ascend:0", "cpu:0"]
    sim.clear_faults("ascend:0")
    # the failed run's other errors went with it: the next run on the device is not blamed for them
    np.testing.assert_array_equal(session.run(None, feeds)[0], expected)


def test_with_no_device_left_the_fault_reaches_the_caller(feeds):
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "relu",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])])
    relu = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    session = hal.InferenceSession(relu, devices=["ascend:0"], strict=True, failover=["ascend:0"])
    sim.inject_fault("ascend:0", "device_lost")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no failover happened: no warning either
        with pytest.raises(hal.DeviceLostError, match="ascend:0 was lost"):
            session.run(None, {"x": feeds["x"]})


def test_a_failover_device_that_does_not_exist_is_refused_at_construction(model):
    with pytest.raises(hal.InvalidArgumentError, match="failover names 'kunlun:99'"):
        hal.InferenceSession(model, devices=["ascend:0"], failover=["kunlun:99", "cpu"])
    with pytest.raises(hal.InvalidArgumentError, match="failover names 'npu:0'"):
        hal.InferenceSession(model, devices=["ascend:0"], failover=["npu:0"])


def test_an_input_on_the_lost_device_cannot_fail_over(model, feeds):
    session = hal.InferenceSession(model, devices=["ascend:0"], failover=["kunlun:0", "cpu"])
    x = hal.tensor(feeds["x"], device="ascend:0")
    sim.inject_fault("ascend:0", "device_lost")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing went on elsewhere: no warning saying so
        with pytest.raises(hal.DeviceLostError):
            session.run_with_tensors({"x": x})
