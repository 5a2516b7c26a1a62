"""Errors: every user mistake is a HalError subclass that says what to do; asynchronous failures
surface at the next synchronize and leave the stream usable."""
from __future__ import annotations

import numpy as np
import pytest

import hal


def test_unknown_index_names_available_devices(hal_device):
    with pytest.raises(hal.DeviceNotFoundError, match="available") as caught:
        hal.device(f"{hal_device.kind}:999")
    assert isinstance(caught.value, hal.HalError)


def test_malformed_device_names(hal_device):
    with pytest.raises(hal.InvalidArgumentError, match="index"):
        hal.device(f"{hal_device.kind}:x")
    with pytest.raises(hal.InvalidArgumentError):
        hal.device(3)


def test_stream_of_another_device_is_refused(hal_device):
    t = hal.empty((2,), "float32", device=hal_device)
    other = next((d for d in hal.devices() if d is not hal_device), None)
    if other is None:
        pytest.skip("needs a second device")
    with pytest.raises(hal.InvalidArgumentError, match="does not belong"):
        t.copy_(np.zeros(2, np.float32), stream=other.stream())


def test_unknown_dtype_is_refused(hal_device):
    with pytest.raises(hal.UnsupportedDTypeError, match="float16"):
        hal.empty((2,), "float17", device=hal_device)
    with pytest.raises(hal.HalError):
        hal.tensor(np.array(["text"]), device=hal_device)


@pytest.mark.parametrize("shape", [(-1,), (2.5,), "ab"])
def test_bad_shapes_are_refused(hal_device, shape):
    with pytest.raises(hal.InvalidArgumentError, match="shape"):
        hal.empty(shape, "float32", device=hal_device)


def test_async_failure_surfaces_at_synchronize_and_stream_recovers(hal_device):
    stream = hal_device.stream()

    def broken() -> None:
        raise RuntimeError("boom")

    stream.launch_host_func(broken)  # returns: the failure is asynchronous
    skipped = []
    stream.launch_host_func(lambda: skipped.append(1))
    with pytest.raises(hal.DeviceError, match="boom") as caught:
        stream.synchronize()
    assert "1 later operation" in str(caught.value)
    assert isinstance(caught.value.__cause__, RuntimeError)
    assert skipped == []
    ran = []
    stream.launch_host_func(lambda: ran.append(1))
    stream.synchronize()
    assert ran == [1]


def test_async_failure_surfaces_at_event_synchronize(hal_device):
    stream = hal_device.stream()
    stream.launch_host_func(lambda: 1 / 0)
    event = stream.record_event()
    with pytest.raises(hal.DeviceError, match="division"):
        event.synchronize()
    stream.synchronize()  # reported once


def test_freed_buffer_cannot_be_used(hal_device):
    buffer = hal_device.allocate(64)
    buffer.free()
    buffer.free()  # idempotent
    with pytest.raises(hal.InvalidArgumentError, match="freed"):
        hal_device.default_stream.driver.copy_from_host(buffer, 0, np.zeros(8, np.uint8))


def test_out_of_range_copy_is_refused(hal_device):
    buffer = hal_device.allocate(64)
    with pytest.raises(hal.InvalidArgumentError, match="outside"):
        hal_device.default_stream.driver.copy_from_host(buffer, 60, np.zeros(8, np.uint8))


def _simulated(device: hal.Device) -> None:
    from hal.sim import SimulatedDeviceDriver

    if not isinstance(device.driver, SimulatedDeviceDriver):
        pytest.skip("fault injection is a feature of chips built on hal.sim")


def test_injected_kernel_error(hal_device):
    _simulated(hal_device)
    from hal import sim

    t = hal.empty((4,), "float32", device=hal_device)
    sim.inject_fault(hal_device, "kernel_error")
    t.copy_(np.ones(4, np.float32), non_blocking=True)
    with pytest.raises(hal.DeviceError, match="injected kernel error"):
        hal_device.synchronize()
    t.copy_(np.ones(4, np.float32))  # the device works again
    assert t.numpy().tolist() == [1, 1, 1, 1]


def test_injected_device_loss_until_reset(hal_device):
    _simulated(hal_device)
    from hal import sim

    t = hal.empty((4,), "float32", device=hal_device)
    sim.inject_fault(hal_device, "device_lost")
    try:
        with pytest.raises(hal.DeviceLostError):
            t.copy_(np.ones(4, np.float32))
        with pytest.raises(hal.DeviceLostError):
            hal_device.allocate(16)
        assert hal_device.status == "lost" and hal_device in [d for d in hal.devices() if d.lost]
    finally:
        sim.clear_faults(hal_device)
    assert not hal_device.lost
    t.copy_(np.ones(4, np.float32))


def test_injected_out_of_memory(hal_device):
    _simulated(hal_device)
    from hal import sim

    sim.inject_fault(hal_device, "out_of_memory", after_ops=1)
    hal_device.allocate(16).free()
    with pytest.raises(hal.OutOfMemoryError, match="injected"):
        hal_device.allocate(16)
    hal_device.allocate(16).free()


def test_fault_injection_into_other_devices_is_refused(hal_device):
    from hal import sim

    if isinstance(hal_device.driver, sim.SimulatedDeviceDriver):
        pytest.skip("devices built on hal.sim take injected faults")

    with pytest.raises(hal.InvalidArgumentError, match="not a simulated device"):
        sim.inject_fault(hal_device, "kernel_error")
