"""The torch driver: torch.cpu:0 is listed wherever torch is, shares memory with torch, and copies
to and from other devices; CUDA devices are listed only where a GPU is visible."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import hal

CUDA = torch.cuda.is_available()
needs_gpu = pytest.mark.skipif(not CUDA, reason="no CUDA GPU visible")


def test_torch_cpu_device_is_listed_and_real():
    device = hal.device("torch.cpu:0")
    assert device.spec.host_addressable and not device.spec.simulated
    assert device.backend.name == "torch.cpu"


def test_cuda_devices_appear_only_with_a_gpu():
    names = [d.name for d in hal.devices()]
    assert any(n.startswith("cuda:") for n in names) == CUDA
    if not CUDA:
        with pytest.raises(hal.DeviceNotFoundError):
            hal.device("cuda:0")


def test_zero_copy_with_torch_both_ways():
    t = hal.tensor(np.arange(6, dtype=np.float32).reshape(2, 3), device="torch.cpu:0")
    shared = torch.from_dlpack(t)
    shared[1, 2] = -1
    assert t.numpy()[1, 2] == -1
    assert shared.data_ptr() == hal.device("torch.cpu:0").driver.host_pointer(t.buffer)


def test_copies_between_torch_and_other_devices():
    host = np.random.default_rng(0).standard_normal((64, 64)).astype(np.float32)
    t = hal.tensor(host, device="torch.cpu:0").to("ascend:0").to("cpu").to("torch.cpu:0")
    assert t.numpy().tobytes() == host.tobytes()


def test_allocation_rule_and_out_of_memory_message():
    device = hal.device("torch.cpu:0")
    with pytest.raises(hal.OutOfMemoryError, match="torch.cpu:0: out of memory: asked"):
        device.allocate(device.spec.memory_bytes + 1)


@needs_gpu
def test_cuda_round_trip_timing_and_zero_copy():
    device = hal.device("cuda:0")
    host = np.arange(1 << 20, dtype=np.float32)
    stream = device.stream()
    start = stream.record_event()
    t = hal.empty(host.shape, "float32", device=device).copy_(host, stream=stream)
    end = stream.record_event()
    end.synchronize()
    assert start.elapsed_time(end) > 0 and t.numpy().tobytes() == host.tobytes()
    shared = torch.from_dlpack(t)
    assert shared.is_cuda and shared.data_ptr() == t.buffer.tensor.data_ptr()
    back = hal.from_dlpack(shared)
    assert back.device is device and back.buffer.tensor.data_ptr() == shared.data_ptr()


@needs_gpu
def test_cuda_session_matches_onnxruntime_cpu():
    from hal.testing import models

    model = models.transformer_block(seq=16, hidden=64, heads=4)
    feeds = models.random_inputs(model)
    want = hal.InferenceSession(model, devices=["cpu"]).run(None, feeds)
    got = hal.InferenceSession(model, devices=["cuda:0", "cpu"]).run(None, feeds)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-3, atol=1e-3)
