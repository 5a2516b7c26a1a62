"""The ONNX-to-torch executor on torch's CPU device (the code that serves CUDA and NPUs):
hal.testing's models match onnxruntime, capability is exactly the op table."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

import hal
from hal.capability import NodeInfo, TensorInfo
from hal.testing import models
from hal.torch.executor import SUPPORTED_OPS, torch_supports

DEVICE = "torch.cpu:0"


def _ort(model, feeds):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


@pytest.mark.parametrize("build", [
    lambda: models.small_cnn(batch=2),
    lambda: models.transformer_block(seq=16, hidden=64, heads=4),
    lambda: models.bert_encoder(layers=1, hidden=64, heads=2, seq=8),
    lambda: models.mlp(batch=3),
], ids=["small_cnn", "transformer_block", "bert_layer", "mlp"])
def test_models_match_onnxruntime(build):
    model = build()
    feeds = models.random_inputs(model, batch=2)
    session = hal.InferenceSession(model, devices=[DEVICE])
    chip_nodes = [n for n in session.plan.nodes if n.device == DEVICE]
    assert chip_nodes and not session.plan.fallbacks, session.plan.explain()
    for got, want in zip(session.run(None, feeds), _ort(model, feeds)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_device_resident_outputs_are_accounted_and_fresh():
    model = models.mlp(batch=2)
    feeds = models.random_inputs(model)
    device = hal.device(DEVICE)
    before = device.memory_stats().allocated_bytes
    session = hal.InferenceSession(model, devices=[DEVICE], strict=True)
    out = session.run_with_tensors({k: hal.tensor(v, device=DEVICE) for k, v in feeds.items()})
    (result,) = out.values()
    assert result.device is device and device.memory_stats().allocated_bytes > before
    np.testing.assert_allclose(result.numpy(), _ort(model, feeds)[0], rtol=1e-5, atol=1e-5)


def _node(op: str, dtype: hal.DType, **attrs) -> NodeInfo:
    t = TensorInfo("x", dtype, (2, 3))
    return NodeInfo("n", op, "", 17, (t, t), (TensorInfo("y", dtype, (2, 3)),), attrs)


def test_capability_is_the_op_table_with_reasons():
    assert torch_supports(_node("MatMul", hal.DType.FLOAT32))
    assert "no NonMaxSuppression" in torch_supports(_node("NonMaxSuppression", hal.DType.FLOAT32)).reason
    assert "not int32" in torch_supports(_node("MatMul", hal.DType.INT32)).reason
    assert "training mode" in torch_supports(_node("BatchNormalization", hal.DType.FLOAT32, training_mode=1)).reason
    assert {"MatMul", "Gemm", "Conv", "LayerNormalization", "Softmax", "Gelu", "Reshape", "Gather"} <= set(SUPPORTED_OPS)


def test_unsupported_nodes_fall_back_to_the_cpu():
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Hardmax", ["r"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    session = hal.InferenceSession(model, devices=[DEVICE])
    assert [n.device for n in session.plan.nodes] == [DEVICE, "cpu:0"]
    assert any("no Hardmax" in f[2] for f in session.plan.fallbacks)
    x = np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)
    np.testing.assert_allclose(session.run(None, {"x": x})[0], _ort(model, {"x": x})[0])
