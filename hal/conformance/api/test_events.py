"""Events: completion, device-clock elapsed time (simulated on simulated chips) and wall time."""
from __future__ import annotations

import numpy as np
import pytest

import hal


def _timed_copy(device: hal.Device, nbytes: int) -> tuple[float, float]:
    stream = device.stream()
    t = hal.empty((nbytes,), "uint8", device=device)
    host = np.ones(nbytes, np.uint8)
    start = stream.record_event()
    t.copy_(host, stream=stream, non_blocking=True)
    end = stream.record_event()
    end.synchronize()
    return start.elapsed_time(end), start.wall_elapsed_time(end)


def test_recorded_event_completes(hal_device):
    stream = hal_device.stream()
    event = stream.record_event()
    event.synchronize()
    assert event.query()
    assert event.device is hal_device


def test_elapsed_time_is_non_negative_and_ordered(hal_device):
    stream = hal_device.stream()
    events = [stream.record_event()]
    for _ in range(3):
        hal.tensor(np.ones(1 << 16, np.float32), device=hal_device).copy_(np.zeros(1 << 16, np.float32), stream=stream)
        events.append(stream.record_event())
    times = [events[0].elapsed_time(e) for e in events]
    assert times[0] == 0.0
    assert all(b >= a for a, b in zip(times, times[1:]))
    assert times[-1] > 0
    assert events[0].wall_elapsed_time(events[-1]) >= 0


def _simulated_clock(device: hal.Device) -> bool:
    return device.stream().record_event().driver.simulated


def test_simulated_copy_time_is_the_chips(hal_device):
    from hal.sim import SimulatedDeviceDriver

    if not isinstance(hal_device.driver, SimulatedDeviceDriver):
        pytest.skip("the copy cost model of chips built on hal.sim")
    nbytes = 64 << 20
    device_ms, _ = _timed_copy(hal_device, nbytes)
    expected_ms = hal_device.driver.copy_cost.host_to_device(nbytes) * 1e3
    chip = hal_device.driver.chip
    assert expected_ms == pytest.approx((chip.host_link_latency.value + nbytes / chip.host_link_bandwidth.value) * 1e3)
    assert device_ms == pytest.approx(expected_ms, rel=1e-9)
    # deterministic: the simulated clock does not depend on this host's load
    assert _timed_copy(hal_device, nbytes)[0] == device_ms


def test_wall_clock_device_time_is_wall_time(hal_device):
    if _simulated_clock(hal_device):
        pytest.skip("this device reports simulated time")
    device_ms, wall_ms = _timed_copy(hal_device, 16 << 20)
    assert device_ms == pytest.approx(wall_ms, rel=1e-6, abs=1e-6)


def test_wait_on_later_event_advances_simulated_clock(hal_device):
    if not _simulated_clock(hal_device):
        pytest.skip("simulated clocks only")
    busy, idle = hal_device.stream(), hal_device.stream()
    start = idle.record_event()
    _ = hal.empty((32 << 20,), "uint8", device=hal_device).copy_(np.ones(32 << 20, np.uint8), stream=busy)
    idle.wait_event(busy.record_event())
    end = idle.record_event()
    assert start.elapsed_time(end) > 0


def test_elapsed_time_across_devices_is_refused(hal_device):
    other = next((d for d in hal.devices() if d is not hal_device), None)
    if other is None:
        pytest.skip("needs a second device")
    a = hal_device.stream().record_event()
    b = other.stream().record_event()
    with pytest.raises(hal.InvalidArgumentError, match="wall_elapsed_time"):
        a.elapsed_time(b)
    assert a.wall_elapsed_time(b) == pytest.approx(a.wall_elapsed_time(b))
