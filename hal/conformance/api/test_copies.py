"""Copies: host <-> device bit-exact for every dtype and shape, device <-> device to every other
device, into existing tensors, blocking and not."""
from __future__ import annotations

import numpy as np
import pytest

import hal

SHAPES = [(), (0,), (1,), (7, 3), (3, 0, 5), (129, 257)]


def _random_bits(shape, dtype: hal.DType, seed: int = 0) -> np.ndarray:
    """Random bit patterns, NaN payloads and signed zeros included: a copy must move bits, not values."""
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape)) * dtype.itemsize
    raw = rng.integers(0, 256, size=n, dtype=np.uint8)
    if dtype is hal.DType.BOOL:
        raw = raw % 2
    return raw.view(dtype.numpy).reshape(shape)


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


@pytest.mark.parametrize("dtype", list(hal.DType), ids=str)
def test_round_trip_is_bit_exact_for_every_dtype(hal_device, dtype):
    host = _random_bits((33, 17), dtype)
    t = hal.tensor(host, device=hal_device)
    assert t.shape == host.shape and t.dtype is dtype and t.device is hal_device
    assert _same_bits(t.numpy(), host)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_round_trip_every_shape(hal_device, shape):
    host = _random_bits(shape, hal.DType.FLOAT32, seed=1)
    assert _same_bits(hal.tensor(host, device=hal_device).numpy(), host)


def test_round_trip_64_mib(hal_device):
    host = _random_bits((16 << 20,), hal.DType.FLOAT32, seed=2)
    assert _same_bits(hal.tensor(host, device=hal_device).numpy(), host)


def test_non_contiguous_and_list_sources(hal_device):
    base = np.arange(60, dtype=np.int32).reshape(6, 10)
    assert _same_bits(hal.tensor(base[:, ::3], device=hal_device).numpy(), np.ascontiguousarray(base[:, ::3]))
    assert hal.tensor([[1.5, 2.5]], device=hal_device).numpy().tolist() == [[1.5, 2.5]]
    assert hal.tensor(3, dtype="int16", device=hal_device).numpy().dtype == np.int16


def test_copy_to_every_other_device_is_bit_exact(hal_device):
    host = _random_bits((1000, 3), hal.DType.BFLOAT16, seed=3)
    source = hal.tensor(host, device=hal_device)
    for other in hal.devices():
        moved = source.to(other)
        assert moved.device is other
        assert _same_bits(moved.numpy(), host), f"{hal_device.name} -> {other.name}"
        assert _same_bits(moved.to(hal_device).numpy(), host), f"{other.name} -> {hal_device.name}"


def test_to_same_device_returns_same_tensor(hal_device):
    t = hal.tensor(np.ones(3), device=hal_device)
    assert t.to(hal_device) is t


def test_copy_into_existing_tensor(hal_device):
    t = hal.empty((4, 5), "int64", device=hal_device)
    host = np.arange(20, dtype=np.int64).reshape(4, 5)
    t.copy_(host)
    assert _same_bits(t.numpy(), host)
    u = hal.empty((4, 5), "int64", device=hal_device).copy_(t)
    assert _same_bits(u.numpy(), host)


def test_non_blocking_copies_complete_at_synchronize(hal_device):
    host = _random_bits((1 << 16,), hal.DType.FLOAT16, seed=4)
    stream = hal_device.stream()
    t = hal.empty(host.shape, "float16", device=hal_device)
    t.copy_(host, stream=stream, non_blocking=True)
    stream.synchronize()
    assert _same_bits(t.numpy(), host)


def test_copy_with_mismatched_layout_is_refused(hal_device):
    t = hal.empty((2, 3), "float32", device=hal_device)
    with pytest.raises(hal.InvalidArgumentError, match="shape"):
        t.copy_(np.zeros((3, 2), np.float32))
    with pytest.raises(hal.InvalidArgumentError, match="astype"):
        t.copy_(np.zeros((2, 3), np.float64))


def test_reshape_shares_memory(hal_device):
    host = np.arange(24, dtype=np.float32)
    t = hal.tensor(host, device=hal_device)
    v = t.reshape(2, -1, 4)
    assert v.shape == (2, 3, 4) and v.buffer is t.buffer
    assert _same_bits(v.numpy(), host.reshape(2, 3, 4))
    with pytest.raises(hal.InvalidArgumentError):
        t.reshape(5, 5)


def test_empty_has_shape_dtype_and_device(hal_device):
    e = hal.empty((1024, 1024), "float16", device=hal_device)
    assert (e.shape, e.dtype, e.nbytes, e.device) == ((1024, 1024), hal.DType.FLOAT16, 2 << 20, hal_device)


def test_numpy_into_existing_array(hal_device):
    host = np.arange(12, dtype=np.int32).reshape(3, 4)
    t = hal.tensor(host, device=hal_device)
    out = np.zeros((3, 4), np.int32)
    assert t.numpy(out=out) is out and np.array_equal(out, host)
    with pytest.raises(hal.InvalidArgumentError, match="out must be"):
        t.numpy(out=np.zeros((4, 3), np.int32))
