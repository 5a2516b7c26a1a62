"""DLPack: zero-copy exchange with numpy and torch on host-addressable devices; a clear refusal on
devices whose memory the host cannot reach."""
from __future__ import annotations

import numpy as np
import pytest

import hal

DLPACK_CPU = 1


def _host_addressable(device: hal.Device) -> None:
    if not device.spec.host_addressable:
        pytest.skip(f"{device.name} memory is not host-addressable")


def test_export_to_numpy_shares_memory(hal_device):
    _host_addressable(hal_device)
    t = hal.tensor(np.arange(12, dtype=np.float32).reshape(3, 4), device=hal_device)
    assert t.__dlpack_device__() == (DLPACK_CPU, 0)
    view = np.from_dlpack(t)
    assert view.shape == (3, 4) and view.dtype == np.float32
    view[1, 2] = -7.0
    assert t.numpy()[1, 2] == -7.0


def test_export_keeps_memory_alive_after_tensor_is_dropped(hal_device):
    _host_addressable(hal_device)
    t = hal.tensor(np.arange(1000, dtype=np.int64), device=hal_device)
    view = np.from_dlpack(t)
    del t
    assert view.sum() == sum(range(1000))


@pytest.mark.parametrize("dtype", ["int8", "uint16", "int32", "int64", "float16", "float32", "float64", "bool"])
def test_import_from_numpy_without_copy(hal_device, dtype):
    _host_addressable(hal_device)
    host = np.arange(10).astype(dtype)
    t = hal.from_dlpack(host)
    assert t.device is hal.device("cpu") and t.dtype is hal.dtype(dtype) and t.shape == (10,)
    host[3] = 0
    assert t.numpy()[3] == 0
    moved = t.to(hal_device)
    assert moved.numpy().tobytes() == host.tobytes()


def test_import_writes_through_to_the_producer(hal_device):
    _host_addressable(hal_device)
    host = np.zeros(4, np.float32)
    hal.from_dlpack(host).copy_(np.ones(4, np.float32))
    assert host.tolist() == [1, 1, 1, 1]
    source = hal.tensor(np.full(4, 2, np.float32), device=hal_device)
    hal.from_dlpack(host).copy_(source)
    assert host.tolist() == [2, 2, 2, 2]


def test_import_of_non_contiguous_is_refused(hal_device):
    _host_addressable(hal_device)
    with pytest.raises(hal.InvalidArgumentError, match="contiguous"):
        hal.from_dlpack(np.arange(20, dtype=np.float32).reshape(4, 5)[:, ::2])


def test_import_of_read_only_memory_is_not_writable(hal_device):
    _host_addressable(hal_device)
    host = np.arange(4, dtype=np.float32)
    host.flags.writeable = False
    t = hal.from_dlpack(host)
    assert t.numpy().tolist() == [0, 1, 2, 3]
    with pytest.raises(hal.InvalidArgumentError, match="read-only"):
        t.copy_(np.zeros(4, np.float32))


def test_import_of_non_dlpack_objects_is_refused(hal_device):
    with pytest.raises(hal.InvalidArgumentError, match="__dlpack__"):
        hal.from_dlpack([1, 2, 3])


def test_torch_round_trip_without_copy(hal_device):
    _host_addressable(hal_device)
    torch = pytest.importorskip("torch")
    source = torch.arange(6, dtype=torch.bfloat16).reshape(2, 3)
    t = hal.from_dlpack(source)
    assert t.dtype is hal.DType.BFLOAT16 and t.shape == (2, 3)
    source[0, 0] = 9
    assert float(t.numpy()[0, 0]) == 9.0
    exported = torch.from_dlpack(hal.tensor(np.arange(4, dtype=np.float32), device=hal_device))
    assert exported.tolist() == [0, 1, 2, 3]


def test_export_from_unreachable_memory_is_refused(hal_device):
    if hal_device.spec.host_addressable:
        pytest.skip("host-addressable device")
    t = hal.tensor(np.ones(3, np.float32), device=hal_device)
    assert t.__dlpack_device__()[0] != DLPACK_CPU
    with pytest.raises(BufferError, match="to\\('cpu'\\)"):
        t.__dlpack__()
    assert np.from_dlpack(t.to("cpu")).tolist() == [1, 1, 1]
