"""Streams: in-order, really asynchronous, independent of each other, ordered by events."""
from __future__ import annotations

import threading

import numpy as np

import hal

GATE_TIMEOUT_S = 10


def _gate(stream: hal.Stream) -> threading.Event:
    """Blocks the stream until the returned event is set."""
    gate = threading.Event()
    stream.launch_host_func(lambda: gate.wait(GATE_TIMEOUT_S))
    return gate


def test_work_runs_in_submission_order(hal_device):
    stream = hal_device.stream()
    seen: list[int] = []
    for i in range(100):
        stream.launch_host_func(lambda i=i: seen.append(i))
    stream.synchronize()
    assert seen == list(range(100))


def test_submission_returns_before_work_runs(hal_device):
    stream = hal_device.stream()
    gate = _gate(stream)
    ran = threading.Event()
    stream.launch_host_func(ran.set)
    assert not ran.is_set()
    assert not stream.query()
    gate.set()
    stream.synchronize()
    assert ran.is_set() and stream.query()


def test_copies_are_ordered_with_other_work_on_the_stream(hal_device):
    stream = hal_device.stream()
    t = hal.empty((1000,), "float32", device=hal_device)
    gate = _gate(stream)
    host = np.arange(1000, dtype=np.float32)
    t.copy_(host, stream=stream, non_blocking=True)
    out = t.numpy(out=np.zeros(1000, np.float32), stream=stream, non_blocking=True)
    assert not out.any()  # nothing ran yet: the stream is held by the gate
    gate.set()
    stream.synchronize()
    assert np.array_equal(out, host)


def test_streams_run_independently(hal_device):
    blocked, free = hal_device.stream(), hal_device.stream()
    gate = _gate(blocked)
    ran = threading.Event()
    free.launch_host_func(ran.set)
    free.synchronize()
    assert ran.is_set() and not blocked.query()
    gate.set()
    blocked.synchronize()


def test_wait_event_orders_one_stream_after_another(hal_device):
    first, second = hal_device.stream(), hal_device.stream()
    gate = _gate(first)
    event = first.record_event()
    second.wait_event(event)
    ran = threading.Event()
    second.launch_host_func(ran.set)
    assert not ran.wait(0.05)
    gate.set()
    second.synchronize()
    assert ran.is_set() and event.query()


def test_wait_across_devices(hal_device):
    other = hal.device("cpu")
    waiting = hal_device.stream()
    gate = _gate(other.default_stream)
    waiting.wait_stream(other.default_stream)
    ran = threading.Event()
    waiting.launch_host_func(ran.set)
    assert not ran.wait(0.05)
    gate.set()
    waiting.synchronize()
    assert ran.is_set()


def test_device_synchronize_waits_for_every_stream(hal_device):
    streams = [hal_device.stream() for _ in range(3)]
    done = []
    for i, s in enumerate(streams):
        s.launch_host_func(lambda i=i: done.append(i))
    hal_device.synchronize()
    assert sorted(done) == [0, 1, 2]
