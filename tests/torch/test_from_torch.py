"""hal.from_torch: export through torch.onnx (dynamo exporter, legacy fallback with a warning),
dispatch, torch tensors out when torch tensors went in."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import hal
from hal.torch import ExportError, ExportFallbackWarning, TorchSession


def _small():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4)).eval()


def test_outputs_are_torch_tensors_when_inputs_were():
    module, x = _small(), torch.randn(3, 8)
    sess = hal.from_torch(module, (x,), devices=["ascend:0", "cpu"])
    assert isinstance(sess, hal.InferenceSession) and isinstance(sess, TorchSession)
    y = sess(x)
    assert isinstance(y, torch.Tensor)
    torch.testing.assert_close(y, module(x).detach(), rtol=2e-3, atol=2e-3)  # Ascend: fp16 cube matmul
    (numpy_out,) = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})
    assert isinstance(numpy_out, np.ndarray)


def test_legacy_exporter_is_the_fallback_with_a_warning(monkeypatch):
    real_export = torch.onnx.export

    def dynamo_broken(*args, dynamo=True, **kwargs):
        if dynamo:
            raise RuntimeError("simulated torch.export failure")
        return real_export(*args, dynamo=False, **kwargs)

    monkeypatch.setattr(torch.onnx, "export", dynamo_broken)
    module, x = _small(), torch.randn(2, 8)
    with pytest.warns(ExportFallbackWarning, match="simulated torch.export failure.*legacy"):
        sess = hal.from_torch(module, x)
    torch.testing.assert_close(sess(x), module(x).detach(), rtol=1e-5, atol=1e-5)


def test_both_exporters_failing_is_one_clear_error(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("cannot trace")

    monkeypatch.setattr(torch.onnx, "export", broken)
    with pytest.warns(ExportFallbackWarning), pytest.raises(ExportError, match="dynamo exporter.*legacy exporter") as caught:
        hal.from_torch(_small(), torch.randn(2, 8))
    assert isinstance(caught.value, hal.HalError)
