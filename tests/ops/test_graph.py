"""Custom-domain nodes in ONNX graphs: placed by capability like any other node, run inside their
neighbours' partition (no extra host round trips), shown on the simulated timeline."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import hal
from hal import profiler

from . import references as ref

RNG = np.random.default_rng(7)
W = RNG.standard_normal((16, 32)).astype(np.float32)
GAMMA = RNG.standard_normal(16).astype(np.float32)


def block_model(custom_domain: str = "com.hal", custom_op: str = "RMSNorm"):
    """MatMul -> RMSNorm (com.hal) -> SwiGLU (com.hal) -> Relu, the custom op in the middle."""
    nodes = [
        helper.make_node(custom_op, ["x", "gamma"], ["n"], domain=custom_domain, epsilon=1e-6),
        helper.make_node("MatMul", ["n", "w"], ["h"]),
        helper.make_node("SwiGLU", ["h"], ["s"], domain="com.hal"),
        helper.make_node("Relu", ["s"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes, "block", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 16])],
        [numpy_helper.from_array(W, "w"), numpy_helper.from_array(GAMMA, "gamma")],
    )
    imports = [helper.make_opsetid("", 17), helper.make_opsetid("com.hal", 1)]
    if custom_domain != "com.hal":
        imports.append(helper.make_opsetid(custom_domain, 1))
    return helper.make_model(graph, opset_imports=imports)


def expected(x):
    return np.maximum(ref.swiglu(ref.rms_norm(x, GAMMA) @ W), 0)


@pytest.mark.parametrize("devices", [["cpu"], ["ascend:0"], ["kunlun:0"], ["ascend:0", "kunlun:0", "cpu"]])
def test_custom_nodes_run_on_the_listed_chip_without_extra_transfers(devices):
    sess = hal.InferenceSession(block_model(), devices=devices)
    x = RNG.standard_normal((4, 16)).astype(np.float32)
    y, = sess.run(None, {"x": x})
    # Ascend rounds MatMul operands to float16, Kunlun quantizes them to int16 (their default numerics)
    np.testing.assert_allclose(y, expected(x), rtol=2e-2, atol=2e-2)
    first = hal.device(devices[0]).name
    assert {n.device for n in sess.plan.nodes} == {first}
    assert len(sess.plan.partitions) == 1
    crossing = [(t.tensor, t.destination) for t in sess.plan.transfers]
    assert crossing == ([] if first == "cpu:0" else [("x", first)])  # only the graph input crosses


def test_a_kernel_only_some_chips_have_falls_back_with_a_reason():
    @hal.kernel("HalfNorm", domain="com.example.graph", backends=["cpu", "ascend"], dtypes=["float32"],
                infer=lambda x, g, **_: [x])
    def half_norm(x, g, *, epsilon: float):
        return (ref.rms_norm(x, g, epsilon) * 0.5).astype(np.float32)

    model = block_model("com.example.graph", "HalfNorm")
    x = RNG.standard_normal((4, 16)).astype(np.float32)
    want = np.maximum(ref.swiglu(ref.rms_norm(x, GAMMA) * 0.5 @ W), 0)
    on_ascend = hal.InferenceSession(model, devices=["ascend:0"])
    assert on_ascend.plan.nodes[0].device == "ascend:0"
    np.testing.assert_allclose(on_ascend.run(None, {"x": x})[0], want, rtol=2e-2, atol=2e-2)
    on_kunlun = hal.InferenceSession(model, devices=["kunlun:0"])
    node, wanted, reason = on_kunlun.plan.fallbacks[0]
    assert (wanted, on_kunlun.plan.nodes[0].device) == ("kunlun:0", "cpu:0")
    assert "no kernel com.example.graph::HalfNorm for kunlun/float32; registered for ascend (float32), cpu (float32)" in reason
    np.testing.assert_allclose(on_kunlun.run(None, {"x": x})[0], want, rtol=2e-2, atol=2e-2)
    with pytest.raises(hal.UnsupportedOpError, match="HalfNorm"):
        hal.InferenceSession(model, devices=["kunlun:0"], strict=True)


def test_float64_has_no_kernel_anywhere_but_the_reason_is_given():
    from hal.capability import NodeInfo, TensorInfo

    node = NodeInfo("n", "RMSNorm", "com.hal", 1, (TensorInfo("x", hal.DType.FLOAT64, (2, 3)),), ())
    answer = hal.device("kunlun:0").backend.supports(node, hal.device("kunlun:0").spec)
    assert not answer and "no kernel com.hal::RMSNorm for kunlun/float64; registered for ascend" in answer.reason


def test_profile_shows_kernels_on_the_simulated_timeline():
    sess = hal.InferenceSession(block_model(), devices=["ascend:0"])
    x = RNG.standard_normal((4, 16)).astype(np.float32)
    with profiler.profile() as prof:
        sess.run(None, {"x": x})
        hal.ops.softmax(hal.tensor(x, device="kunlun:0")).numpy()
    direct = [e for e in prof.events if e.name == "com.hal::FusedSoftmax"]
    assert len(direct) == 1 and direct[0].simulated and direct[0].device_end > direct[0].device_start
    partitions = [e for e in prof.events if e.device == "ascend:0" and e.category == "compute"]
    assert partitions and all(e.device_end is not None for e in partitions)
    names = {ev["name"] for ev in prof.chrome_trace()["traceEvents"]}
    assert "com.hal::FusedSoftmax" in names


def test_cost_model_counts_kernel_work():
    from hal.ops.dispatch import kernel_node
    from hal.sim.cost import node_cost

    chip = hal.device("kunlun:0").backend.chip
    a = np.zeros((256, 1024), np.int16)
    b = np.zeros((1024, 512), np.int16)
    node = kernel_node("com.hal", "QuantizedMatMul", [a, b, np.float32(1), np.float32(1)], {}, [("float32", (256, 512))])
    assert node_cost(node, chip, "int16").flops == 2 * 256 * 1024 * 512
    norm = kernel_node("com.hal", "RMSNorm", [a.astype(np.float32), b[0].astype(np.float32)], {}, [("float32", (256, 1024))])
    assert node_cost(norm, chip).flops == 6 * 256 * 1024
