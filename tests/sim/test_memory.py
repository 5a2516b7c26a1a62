"""Simulated device memory: the chip's allocation rule, capacity beyond host RAM, no host view."""
from __future__ import annotations

import numpy as np
import pytest

import hal


def test_ascend_accounts_with_the_aclrtmalloc_rule():
    d = hal.device("ascend:0")
    d.synchronize()
    d.empty_cache()  # a cached block may serve a smaller request whole; start with none
    before = d.memory_stats()
    buffers = [d.allocate(n) for n in (1, 32, 33, 1000)]
    stats = d.memory_stats()
    assert stats.allocated_bytes - before.allocated_bytes == 64 + 64 + 96 + 1056
    assert stats.requested_bytes - before.requested_bytes == 1 + 32 + 33 + 1000
    for b in buffers:
        assert b.address % 64 == 0
        b.free()


def test_sixty_four_gib_card_allocates_beyond_host_ram():
    d = hal.device("ascend:0")
    assert d.spec.memory_bytes == 64 << 30
    blocks = [d.allocate(15 << 30) for _ in range(4)]  # 60 GiB on a 24 GiB host: accounting only
    with pytest.raises(hal.OutOfMemoryError, match="ascend:0") as caught:
        d.allocate(8 << 30)
    assert "8.0 GiB" in str(caught.value) and "64.0 GiB" in str(caught.value)
    for b in blocks:
        b.free()
    d.empty_cache()
    assert d.memory_stats().reserved_bytes == d.memory_stats().allocated_bytes


def test_device_memory_is_not_reachable_from_the_host():
    d = hal.device("kunlun:0")
    t = hal.tensor(np.ones(8, np.float32), device=d)
    assert d.driver.host_pointer(t.buffer) is None
    with pytest.raises(BufferError):
        np.from_dlpack(t)
    with pytest.raises(ValueError, match="host-addressable"):
        d.driver.allocator.arena.host_buffer(t.buffer.address)


def test_out_of_memory_leaks_nothing():
    d = hal.device("kunlun:1")
    before = d.memory_stats()
    for _ in range(20):
        with pytest.raises(hal.OutOfMemoryError):
            d.allocate(d.spec.memory_bytes + 1)
    after = d.memory_stats()
    assert (after.allocated_bytes, after.reserved_bytes) == (before.allocated_bytes, before.reserved_bytes)


def test_peer_copy_time_uses_the_peer_link_where_the_chip_has_one():
    a0, a1 = hal.device("ascend:0"), hal.device("ascend:1")
    chip = a0.driver.chip
    nbytes = 8 << 20
    src = hal.tensor(np.ones(nbytes, np.uint8), device=a0)
    stream = a1.stream()
    dst = hal.empty((nbytes,), "uint8", device=a1)
    stream.wait_stream(a0.default_stream)  # line the clocks up first: the copy then waits for nothing
    start = stream.record_event()
    dst.copy_(src, stream=stream)
    end = stream.record_event()
    expected = chip.host_link_latency.value + nbytes / chip.peer_link_bandwidth.value
    assert start.elapsed_time(end) == pytest.approx(expected * 1e3, rel=1e-9)


def test_copy_between_different_chips_goes_through_the_host():
    a, k = hal.device("ascend:0"), hal.device("kunlun:0")
    nbytes = 8 << 20
    src = hal.tensor(np.arange(nbytes, dtype=np.uint8), device=a)
    stream = k.stream()
    start = stream.record_event()
    dst = hal.empty((nbytes,), "uint8", device=k).copy_(src, stream=stream)
    end = stream.record_event()
    assert np.array_equal(dst.numpy(), np.arange(nbytes, dtype=np.uint8))
    k_chip = k.driver.chip
    h2d = k_chip.host_link_latency.value + nbytes / k_chip.host_link_bandwidth.value
    # the Kunlun stream waited for the Ascend d2h, then ran its own h2d
    assert start.elapsed_time(end) >= h2d * 1e3
