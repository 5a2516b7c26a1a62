"""Allocation: sizes, accounting, caching, capacity and out-of-memory, on every device."""
from __future__ import annotations

import random

import pytest

import hal


def test_allocate_returns_buffer_of_requested_size(hal_device):
    buffer = hal_device.allocate(1000)
    assert buffer.nbytes == 1000
    assert buffer.device_name == hal_device.name


def test_allocation_is_accounted_and_released(hal_device):
    before = hal_device.memory_stats()
    buffer = hal_device.allocate(1 << 20)
    during = hal_device.memory_stats()
    assert during.allocated_bytes - before.allocated_bytes >= 1 << 20
    assert during.requested_bytes - before.requested_bytes == 1 << 20
    assert during.num_allocs == before.num_allocs + 1
    assert during.peak_bytes >= during.allocated_bytes
    assert during.reserved_bytes >= during.allocated_bytes
    buffer.free()
    after = hal_device.memory_stats()
    assert after.allocated_bytes == before.allocated_bytes
    assert after.requested_bytes == before.requested_bytes


def test_zero_byte_allocation_is_valid(hal_device):
    buffer = hal_device.allocate(0)
    assert buffer.nbytes == 0
    buffer.free()


def test_capacity_matches_spec(hal_device):
    assert hal_device.memory_stats().capacity_bytes == hal_device.spec.memory_bytes


def test_freed_block_is_reused_from_cache(hal_device):
    hal_device.allocate(1 << 20).free()
    reserved = hal_device.memory_stats().reserved_bytes
    for _ in range(50):
        hal_device.allocate(1 << 20).free()
    assert hal_device.memory_stats().reserved_bytes == reserved


def test_empty_cache_returns_unused_blocks(hal_device):
    hal_device.allocate(4 << 20).free()
    released = hal_device.empty_cache()
    stats = hal_device.memory_stats()
    assert released >= 0
    assert stats.reserved_bytes == stats.allocated_bytes


def test_random_alloc_free_sequences_keep_accounting_exact(hal_device):
    rng = random.Random(7)
    baseline = hal_device.memory_stats()
    live = []
    for _ in range(300):
        if live and rng.random() < 0.45:
            live.pop(rng.randrange(len(live))).free()
        else:
            live.append(hal_device.allocate(rng.choice([1, 31, 32, 33, 4096, 65537, 1 << 20])))
        stats = hal_device.memory_stats()
        assert stats.requested_bytes - baseline.requested_bytes == sum(b.nbytes for b in live)
        assert stats.reserved_bytes >= stats.allocated_bytes
        assert stats.reserved_bytes <= stats.capacity_bytes
    for buffer in live:
        buffer.free()
    assert hal_device.memory_stats().allocated_bytes == baseline.allocated_bytes


def test_dropping_a_tensor_frees_its_memory(hal_device):
    before = hal_device.memory_stats().allocated_bytes
    t = hal.empty((256, 256), "float32", device=hal_device)
    assert hal_device.memory_stats().allocated_bytes > before
    del t
    assert hal_device.memory_stats().allocated_bytes == before


def test_out_of_memory_names_device_sizes_and_leaves_device_usable(hal_device):
    stats = hal_device.memory_stats()
    too_big = stats.capacity_bytes + 1
    with pytest.raises(hal.OutOfMemoryError) as caught:
        hal_device.allocate(too_big)
    message = str(caught.value)
    assert hal_device.name in message
    assert "asked" in message and "free" in message and "capacity" in message
    assert isinstance(caught.value, hal.HalError)
    after = hal_device.memory_stats()
    assert after.allocated_bytes == stats.allocated_bytes
    assert after.num_ooms == stats.num_ooms + 1
    hal_device.allocate(1024).free()  # still usable


def test_capacity_is_enforced_by_accounting_not_by_reserving(hal_device):
    # Half the capacity in four blocks, never written: must fit even where the device is larger
    # than this host's RAM (a 64 GiB simulated card on a 24 GiB machine).
    quarter = hal_device.memory_stats().capacity_bytes // 8
    blocks = [hal_device.allocate(quarter) for _ in range(4)]
    assert hal_device.memory_stats().requested_bytes >= 4 * quarter
    for b in blocks:
        b.free()
    hal_device.empty_cache()


@pytest.mark.parametrize("bad", [-1, 1.5, "64", None, True])
def test_invalid_sizes_are_refused(hal_device, bad):
    with pytest.raises(hal.InvalidArgumentError):
        hal_device.allocate(bad)
