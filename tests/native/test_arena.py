"""Tests of hal._C.Arena: allocation rule, capacity, cache, stats, copies, threads."""
from __future__ import annotations

import gc
import os
import random
import threading
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hal import _C

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB
SIM_BASE = 1 << 48


def ascend(capacity: int = GiB, **kw) -> _C.Arena:
    """An arena with AscendCL's aclrtMalloc rule (granularity 32, padding 32)."""
    return _C.Arena(capacity, granularity=32, padding=32, base_alignment=512, **kw)


def random_bytes(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8)


def read_back(arena: _C.Arena, address: int, offset: int, n: int) -> np.ndarray:
    out = np.empty(n, np.uint8)
    arena.copy_to_host(address, offset, out)
    return out


# --------------------------------------------------------------------------- rule & config


def test_ascend_rounding_rule():
    a = ascend()
    assert a.rounded_size(0) == 64
    assert a.rounded_size(1) == 64
    assert a.rounded_size(32) == 64
    assert a.rounded_size(33) == 96
    assert a.rounded_size(64) == 96
    assert a.rounded_size(1 << 20) == (1 << 20) + 32
    addr = a.allocate(33)
    assert a.block_size(addr) == 96
    assert a.size_of(addr) == 33
    a.free(addr)


def test_default_rule_is_identity_with_min_one():
    a = _C.Arena(4096)
    assert [a.rounded_size(n) for n in (0, 1, 5, 4096)] == [1, 1, 5, 4096]
    with pytest.raises(ValueError):
        a.rounded_size(-1)


def test_config_properties():
    a = ascend(caching=False)
    assert (a.capacity_bytes, a.granularity, a.padding, a.base_alignment) == (GiB, 32, 32, 512)
    assert a.host_addressable is False and a.caching is False
    assert "Arena" in repr(a)


@pytest.mark.parametrize(
    "kwargs, word",
    [
        (dict(capacity_bytes=0), "capacity_bytes"),
        (dict(capacity_bytes=-5), "capacity_bytes"),
        (dict(capacity_bytes=1024, granularity=0), "granularity"),
        (dict(capacity_bytes=1024, granularity=2048), "granularity"),
        (dict(capacity_bytes=1024, padding=-1), "padding"),
        (dict(capacity_bytes=1024, padding=1024), "padding"),
        (dict(capacity_bytes=1024, base_alignment=4), "base_alignment"),
        (dict(capacity_bytes=1024, base_alignment=96), "base_alignment"),
        (dict(capacity_bytes=1024, base_alignment=1 << 31), "base_alignment"),
    ],
)
def test_constructor_validation(kwargs, word):
    with pytest.raises(ValueError, match=word):
        _C.Arena(**kwargs)


@pytest.mark.parametrize("alignment", [8, 64, 512, 4096, 1 << 21])
@pytest.mark.parametrize("host", [False, True])
def test_base_alignment_of_addresses(alignment, host):
    a = _C.Arena(256 * MiB, granularity=1, padding=0, base_alignment=alignment, host_addressable=host)
    addrs = [a.allocate(n) for n in (1, 3, 100, 777, 4097, 65536 + 5, 0)]
    assert all(x % alignment == 0 for x in addrs)
    assert len(set(addrs)) == len(addrs)
    for x in addrs:
        a.free(x)


def test_simulated_addresses_are_not_host_memory():
    a = ascend()
    addrs = [a.allocate(1000) for _ in range(4)]
    assert all(x >= SIM_BASE for x in addrs)
    for x in addrs:
        with pytest.raises(ValueError, match="not host-addressable"):
            a.host_pointer(x)
        with pytest.raises(ValueError, match="not host-addressable"):
            a.host_buffer(x)
    # Blocks do not overlap in the simulated address space.
    spans = sorted((x, x + a.block_size(x)) for x in addrs)
    assert all(spans[i][1] <= spans[i + 1][0] for i in range(len(spans) - 1))
    for x in addrs:
        a.free(x)


def test_host_addressable_arena_exposes_host_memory():
    a = _C.Arena(MiB, host_addressable=True)
    x = a.allocate(100)
    assert a.host_pointer(x) == x
    mv = a.host_buffer(x)
    assert len(mv) == 100 and not mv.readonly
    arr = np.frombuffer(mv, np.uint8)
    arr[:] = np.arange(100, dtype=np.uint8)
    assert np.array_equal(read_back(a, x, 0, 100), np.arange(100, dtype=np.uint8))
    del arr, mv
    a.free(x)


def test_host_view_defers_recycling_of_freed_block():
    a = _C.Arena(MiB, host_addressable=True)
    x = a.allocate(4096)
    view = np.frombuffer(a.host_buffer(x), np.uint8)
    view[:] = 1
    a.free(x)  # the view still points at the block
    s = a.stats()
    assert s["allocated_bytes"] == 0 and s["active_allocs"] == 0
    assert s["reserved_bytes"] == s["cached_bytes"] == 4096
    y = a.allocate(4096)
    assert y != x  # not recycled while viewed
    assert a.empty_cache() == 0  # still viewed: nothing to give back
    view[:] = 2  # still valid memory
    del view
    gc.collect()
    z = a.allocate(4096)
    assert z == x  # recycled after the view died
    a.free(y)
    a.free(z)
    a.empty_cache()
    assert a.stats()["reserved_bytes"] == 0


def test_host_view_keeps_arena_alive():
    a = _C.Arena(MiB, host_addressable=True)
    x = a.allocate(64)
    view = np.frombuffer(a.host_buffer(x), np.uint8)
    del a
    gc.collect()
    view[:] = 9  # must not crash: the view holds the arena
    assert view.sum() == 9 * 64


# --------------------------------------------------------------------------- capacity


def _phys_bytes() -> int:
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def _rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def test_capacity_is_accounting_only_not_reserved():
    try:
        with open("/proc/sys/vm/overcommit_memory") as f:
            if f.read().strip() == "2":
                pytest.skip("strict overcommit: untouched memory is still charged")
    except OSError:
        pass
    phys = _phys_bytes()
    block = min(16 * GiB, (phys * 6 // 10) // GiB * GiB)  # 3 blocks together exceed host RAM
    capacity = 4 * block
    a = _C.Arena(capacity, granularity=32, padding=32)
    rss0 = _rss_bytes()
    blocks = [a.allocate(block) for _ in range(3)]
    assert 3 * block > phys
    assert _rss_bytes() - rss0 < 256 * MiB  # nothing touched
    assert a.stats()["allocated_bytes"] == 3 * (block + 32)
    with pytest.raises(_C.ArenaOutOfMemory):
        a.allocate(block)  # 4 * (block + 32) > capacity
    # Writing a little is fine.
    a.copy_from_host(blocks[0], block - 10, b"0123456789")
    assert bytes(read_back(a, blocks[0], block - 10, 10)) == b"0123456789"
    for b in blocks:
        a.free(b)
    a.empty_cache()
    s = a.stats()
    assert s["allocated_bytes"] == s["reserved_bytes"] == s["active_allocs"] == 0


def test_oom_message_and_recovery():
    a = _C.Arena(MiB, granularity=32, padding=32)
    with pytest.raises(_C.ArenaOutOfMemory) as ei:
        a.allocate(MiB)  # occupies 1 MiB + 32 > capacity
    msg = str(ei.value)
    assert isinstance(ei.value, MemoryError)
    assert "requested 1048576 bytes" in msg and "1048608" in msg
    assert "capacity" in msg and str(MiB) in msg and "held in cache" in msg

    x = a.allocate(700 * KiB)
    with pytest.raises(_C.ArenaOutOfMemory) as ei:
        a.allocate(400 * KiB)
    free_now = MiB - a.rounded_size(700 * KiB)
    assert f"{free_now} bytes free" in str(ei.value)
    s = a.stats()
    assert s["num_ooms"] == 2 and s["active_allocs"] == 1
    a.free(x)
    y = a.allocate(400 * KiB)  # usable after OOM
    a.free(y)
    a.empty_cache()
    s = a.stats()
    assert s["allocated_bytes"] == s["requested_bytes"] == s["reserved_bytes"] == s["cached_bytes"] == 0
    assert s["num_allocs"] == s["num_frees"] == 2


def test_cache_is_released_before_oom():
    a = _C.Arena(MiB)
    x = a.allocate(600 * KiB)
    a.free(x)
    assert a.stats()["cached_bytes"] == 600 * KiB
    y = a.allocate(700 * KiB)  # miss (too big for the cached block) and would not fit beside it
    s = a.stats()
    assert s["cached_bytes"] == 0 and s["reserved_bytes"] == 700 * KiB and s["num_ooms"] == 0
    a.free(y)


def test_host_out_of_memory_is_reported_and_recoverable():
    a = _C.Arena(1 << 60)
    with pytest.raises(_C.ArenaOutOfMemory, match="host ran out of memory"):
        a.allocate(1 << 58)  # beyond any host's address space
    s = a.stats()
    assert s["reserved_bytes"] == 0 and s["num_ooms"] == 1
    x = a.allocate(1000)
    a.free(x)
    assert a.stats()["allocated_bytes"] == 0


def test_request_beyond_capacity_and_negative():
    a = _C.Arena(MiB)
    with pytest.raises(_C.ArenaOutOfMemory):
        a.allocate(1 << 62)
    with pytest.raises(ValueError):
        a.allocate(-1)
    assert a.stats()["reserved_bytes"] == 0


# --------------------------------------------------------------------------- cache & stats


def test_cache_hit_reuses_block():
    a = ascend()
    x = a.allocate(MiB)
    a.free(x)
    y = a.allocate(MiB)
    assert y == x
    a.free(y)
    z = a.allocate(MiB - 100 * KiB)  # within 25%: reuses the larger block
    assert z == x and a.block_size(z) == MiB + 32 and a.size_of(z) == MiB - 100 * KiB
    assert a.stats()["allocated_bytes"] == MiB + 32
    a.free(z)
    w = a.allocate(MiB // 2)  # too small to take the 1 MiB block
    assert w != x
    s = a.stats()
    assert s["cache_hits"] == 2 and s["cache_misses"] == 2
    a.free(w)


def test_best_fit_picks_smallest_fitting_block():
    a = _C.Arena(MiB)
    big, mid, small = a.allocate(1200), a.allocate(1100), a.allocate(1000)
    for x in (big, mid, small):
        a.free(x)
    assert a.allocate(1000) == small
    assert a.allocate(1000) == mid
    assert a.allocate(1000) == big


def test_empty_cache_and_non_caching_arena():
    a = ascend()
    xs = [a.allocate(10 * KiB) for _ in range(5)]
    for x in xs:
        a.free(x)
    s = a.stats()
    assert s["cached_bytes"] == s["reserved_bytes"] == 5 * a.rounded_size(10 * KiB)
    assert a.empty_cache() == 5 * a.rounded_size(10 * KiB)
    assert a.empty_cache() == 0
    assert a.stats()["reserved_bytes"] == 0

    b = ascend(caching=False)
    x = b.allocate(10 * KiB)
    b.free(x)
    s = b.stats()
    assert s["reserved_bytes"] == s["cached_bytes"] == 0
    y = b.allocate(10 * KiB)
    assert b.stats()["cache_hits"] == 0
    b.free(y)


def test_stats_fields_and_peaks():
    a = ascend()
    s = a.stats()
    assert set(s) == {
        "allocated_bytes", "requested_bytes", "reserved_bytes", "cached_bytes",
        "peak_allocated_bytes", "peak_reserved_bytes", "capacity_bytes", "num_allocs",
        "num_frees", "active_allocs", "cache_hits", "cache_misses", "num_ooms",
    }
    assert all(isinstance(v, int) for v in s.values())
    assert s["capacity_bytes"] == GiB
    x, y = a.allocate(100), a.allocate(1000)
    s = a.stats()
    assert s["allocated_bytes"] == 160 + 1056 and s["requested_bytes"] == 1100
    assert s["active_allocs"] == 2 and s["num_allocs"] == 2
    a.free(y)
    s = a.stats()
    assert s["peak_allocated_bytes"] == 1216 and s["allocated_bytes"] == 160
    assert s["reserved_bytes"] == 1216 and s["cached_bytes"] == 1056
    a.reset_peak_stats()
    s = a.stats()
    assert s["peak_allocated_bytes"] == 160 and s["peak_reserved_bytes"] == 1216
    a.free(x)
    s = a.stats()
    assert s["num_frees"] == 2 and s["active_allocs"] == 0


def test_double_free_and_unknown_addresses():
    a = ascend()
    x = a.allocate(10)
    a.free(x)
    with pytest.raises(ValueError, match="double free"):
        a.free(x)
    with pytest.raises(ValueError, match=hex(x)):
        a.free(x)
    for fn in (a.size_of, a.block_size):
        with pytest.raises(ValueError):
            fn(x)
    with pytest.raises(ValueError):
        a.free(12345)
    assert not a.is_live(x)
    other = ascend()
    y = other.allocate(10)
    if not a.is_live(y):
        with pytest.raises(ValueError):
            a.free(y)
    other.free(y)


# --------------------------------------------------------------------------- copies


@pytest.mark.parametrize("host", [False, True])
def test_copies_are_bit_exact(host):
    a = _C.Arena(64 * MiB, granularity=32, padding=32, host_addressable=host)
    n = 3 * MiB + 17
    data = random_bytes(n, seed=1)
    x = a.allocate(n)
    a.copy_from_host(x, 0, data)
    assert np.array_equal(read_back(a, x, 0, n), data)
    patch = random_bytes(1000, seed=2)
    a.copy_from_host(x, 12345, patch)
    expect = data.copy()
    expect[12345:13345] = patch
    assert np.array_equal(read_back(a, x, 0, n), expect)
    assert np.array_equal(read_back(a, x, 12345, 1000), patch)
    # Any C-contiguous buffer works: bytes, bytearray, memoryview, typed arrays.
    a.copy_from_host(x, 0, b"abc")
    a.copy_from_host(x, 3, bytearray(b"def"))
    a.copy_from_host(x, 6, memoryview(b"ghi"))
    f = np.arange(4, dtype=np.float64)
    a.copy_from_host(x, 16, f)
    out = bytearray(9)
    a.copy_to_host(x, 0, out)
    assert out == b"abcdefghi"
    g = np.zeros(4, np.float64)
    a.copy_to_host(x, 16, g)
    assert np.array_equal(f, g)
    a.copy_from_host(x, n, b"")  # empty copy at the end is fine
    a.free(x)


def test_copy_bounds_are_checked():
    a = ascend()
    x = a.allocate(100)  # block is 160 bytes, but bounds use the requested 100
    with pytest.raises(ValueError) as ei:
        a.copy_from_host(x, 90, bytes(20))
    msg = str(ei.value)
    assert hex(x) in msg and "90" in msg and "20" in msg and "100" in msg
    with pytest.raises(ValueError):
        a.copy_from_host(x, -1, bytes(1))
    with pytest.raises(ValueError):
        a.copy_to_host(x, 0, bytearray(101))
    with pytest.raises(ValueError):
        a.copy_to_host(x, 101, bytearray(0))
    y = a.allocate(50)
    with pytest.raises(ValueError):
        a.copy_within(y, 0, x, 0, 51)
    with pytest.raises(ValueError):
        a.copy_within(x, 0, y, 10, 41)
    with pytest.raises(ValueError):
        a.copy_within(x, 0, y, 0, -1)
    a.free(y)
    with pytest.raises(ValueError):
        a.copy_within(x, 0, y, 0, 1)  # y is no longer live
    with pytest.raises(ValueError):
        a.copy_from_host(y, 0, b"x")
    a.free(x)


def test_non_contiguous_and_readonly_buffers_are_rejected():
    a = ascend()
    x = a.allocate(1000)
    strided = np.arange(100, dtype=np.uint8)[::2]
    with pytest.raises(ValueError, match="contiguous"):
        a.copy_from_host(x, 0, strided)
    with pytest.raises(ValueError, match="contiguous"):
        a.copy_to_host(x, 0, np.zeros((10, 10), np.uint8).T)
    ro = np.zeros(10, np.uint8)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        a.copy_to_host(x, 0, ro)
    with pytest.raises(ValueError, match="read-only"):
        a.copy_to_host(x, 0, b"0123456789")
    a.copy_from_host(x, 0, ro)  # read-only source is fine
    with pytest.raises(TypeError):
        a.copy_from_host(x, 0, "not a buffer")
    a.free(x)


@pytest.mark.parametrize("src_off, dst_off, n", [(0, 10, 500), (10, 0, 500), (0, 0, 300), (100, 400, 300)])
def test_copy_within_handles_overlap(src_off, dst_off, n):
    a = ascend()
    x = a.allocate(1000)
    data = random_bytes(1000, seed=3)
    a.copy_from_host(x, 0, data)
    a.copy_within(x, dst_off, x, src_off, n)
    expect = data.copy()
    expect[dst_off:dst_off + n] = data[src_off:src_off + n]
    assert np.array_equal(read_back(a, x, 0, 1000), expect)
    a.free(x)


def test_copy_within_two_blocks():
    a = ascend()
    x, y = a.allocate(4096), a.allocate(4096)
    data = random_bytes(4096, seed=4)
    a.copy_from_host(x, 0, data)
    a.copy_within(y, 100, x, 200, 1000)
    assert np.array_equal(read_back(a, y, 100, 1000), data[200:1200])
    a.free(x)
    a.free(y)


def test_copy_between_arenas():
    sim = ascend()
    cpu = _C.Arena(16 * MiB, host_addressable=True)
    n = 2 * MiB + 3
    data = random_bytes(n, seed=5)
    x = cpu.allocate(n)
    cpu.copy_from_host(x, 0, data)
    y = sim.allocate(n)
    _C.copy_between(sim, y, 0, cpu, x, 0, n)
    assert np.array_equal(read_back(sim, y, 0, n), data)
    _C.copy_between(cpu, x, 1, sim, y, 0, 100)
    assert np.array_equal(read_back(cpu, x, 1, 100), data[:100])
    with pytest.raises(ValueError):
        _C.copy_between(cpu, x, 0, sim, y, 1, n)
    with pytest.raises(ValueError):
        _C.copy_between(cpu, y, 0, sim, y, 0, 1)  # y does not belong to cpu
    sim.free(y)
    cpu.free(x)


def test_memcpy_host():
    src = random_bytes(MiB, seed=6)
    dst = np.zeros(MiB, np.uint8)
    _C.memcpy_host(dst, src)
    assert np.array_equal(dst, src)
    f = np.zeros(MiB // 4, np.float32)
    _C.memcpy_host(f, src)  # byte lengths equal, item types may differ
    assert f.tobytes() == src.tobytes()
    with pytest.raises(ValueError, match="bytes"):
        _C.memcpy_host(np.zeros(10, np.uint8), np.zeros(11, np.uint8))
    with pytest.raises(ValueError):
        _C.memcpy_host(b"0123456789", np.zeros(10, np.uint8))
    with pytest.raises(ValueError):
        _C.memcpy_host(np.zeros(5, np.uint8), np.arange(10, dtype=np.uint8)[::2])


def test_gil_is_released_during_large_copy():
    a = _C.Arena(GiB)
    n = 256 * MiB
    x = a.allocate(n)
    src = np.ones(n, np.uint8)
    a.copy_from_host(x, 0, src)  # fault the pages in first
    ticks: list[float] = []
    done = threading.Event()

    def spin():
        while not done.is_set():
            ticks.append(time.perf_counter())

    t = threading.Thread(target=spin)
    t.start()
    while not ticks:
        time.sleep(0.001)
    spans = []
    for _ in range(3):
        t0 = time.perf_counter()
        a.copy_from_host(x, 0, src)
        t1 = time.perf_counter()
        spans.append((t0, t1))
    done.set()
    t.join()
    a.free(x)
    # With the GIL held no Python code could run in the middle of a copy.
    middle_ticks = 0
    for t0, t1 in spans:
        lo, hi = t0 + (t1 - t0) * 0.25, t1 - (t1 - t0) * 0.25
        middle_ticks += sum(1 for s in ticks if lo <= s <= hi)
    assert middle_ticks > 0


# --------------------------------------------------------------------------- threads


def test_concurrent_allocate_free_copy():
    a = _C.Arena(64 * MiB, granularity=32, padding=32)
    errors: list[BaseException] = []
    stop = time.perf_counter() + 2.0

    def worker(seed: int):
        rng = random.Random(seed)
        live: list[tuple[int, bytes]] = []
        try:
            while time.perf_counter() < stop:
                if live and (len(live) > 20 or rng.random() < 0.45):
                    addr, payload = live.pop(rng.randrange(len(live)))
                    out = bytearray(len(payload))
                    a.copy_to_host(addr, 0, out)
                    assert out == payload
                    a.free(addr)
                else:
                    n = rng.choice([1, 100, 4096, 65536, 300_000])
                    try:
                        addr = a.allocate(n)
                    except _C.ArenaOutOfMemory:
                        continue
                    payload = os.urandom(n)
                    a.copy_from_host(addr, 0, payload)
                    live.append((addr, payload))
            for addr, payload in live:
                out = bytearray(len(payload))
                a.copy_to_host(addr, 0, out)
                assert out == payload
                a.free(addr)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    s = a.stats()
    assert s["active_allocs"] == 0 and s["allocated_bytes"] == 0 and s["requested_bytes"] == 0
    assert s["num_allocs"] == s["num_frees"] > 0
    assert s["reserved_bytes"] == s["cached_bytes"] <= s["capacity_bytes"]
    assert s["cache_hits"] + s["cache_misses"] >= s["num_allocs"]
    a.empty_cache()
    assert a.stats()["reserved_bytes"] == 0


@pytest.mark.parametrize("caching", [True, False])
def test_free_during_inflight_copy_is_safe(caching):
    a = _C.Arena(GiB, caching=caching)
    n = 32 * MiB
    dst = np.empty(n, np.uint8)
    for _ in range(5):
        x = a.allocate(n)
        a.copy_from_host(x, 0, np.full(n, 3, np.uint8))
        outcomes: list[str] = []
        started = threading.Event()

        def reader():
            started.set()
            while True:
                try:
                    a.copy_to_host(x, 0, dst)
                except ValueError:
                    outcomes.append("freed")
                    return
                outcomes.append("ok")

        t = threading.Thread(target=reader)
        t.start()
        started.wait()
        time.sleep(0.01)
        a.free(x)  # possibly while a copy of x runs on the reader thread
        t.join()
        assert outcomes[-1] == "freed"
    s = a.stats()
    assert s["allocated_bytes"] == 0 and s["active_allocs"] == 0
    assert s["reserved_bytes"] == s["cached_bytes"]
    a.empty_cache()
    assert a.stats()["reserved_bytes"] == 0


# --------------------------------------------------------------------------- accounting invariants


@settings(max_examples=200, deadline=None)
@given(
    ops=st.lists(st.tuples(st.booleans(), st.integers(0, 12_000), st.integers(0, 1000)), max_size=80),
    caching=st.booleans(),
    granularity=st.sampled_from([1, 32, 512]),
    padding=st.sampled_from([0, 32]),
)
def test_random_alloc_free_keeps_accounting(ops, caching, granularity, padding):
    capacity = 48 * KiB
    a = _C.Arena(capacity, granularity=granularity, padding=padding, caching=caching)
    live: dict[int, int] = {}
    ooms = 0
    for do_alloc, nbytes, pick in ops:
        if do_alloc or not live:
            before = a.stats()
            try:
                addr = a.allocate(nbytes)
            except _C.ArenaOutOfMemory:
                ooms += 1
                # Only an OOM if live blocks plus this one exceed capacity (cache was drained).
                assert before["allocated_bytes"] + a.rounded_size(nbytes) > capacity
                if a.rounded_size(nbytes) <= capacity:
                    assert a.stats()["cached_bytes"] == 0
            else:
                assert addr not in live
                assert a.block_size(addr) >= a.rounded_size(nbytes)
                assert a.block_size(addr) <= a.rounded_size(nbytes) * 5 // 4
                live[addr] = nbytes
        else:
            addr = sorted(live)[pick % len(live)]
            del live[addr]
            a.free(addr)
        s = a.stats()
        assert s["allocated_bytes"] == sum(a.block_size(x) for x in live)
        assert s["requested_bytes"] == sum(live.values())
        assert s["active_allocs"] == len(live)
        assert s["allocated_bytes"] <= s["reserved_bytes"] <= capacity
        assert s["reserved_bytes"] == s["allocated_bytes"] + s["cached_bytes"]
        assert s["peak_allocated_bytes"] >= s["allocated_bytes"]
        assert s["peak_reserved_bytes"] >= s["reserved_bytes"]
        assert s["num_ooms"] == ooms
        if not caching:
            assert s["cached_bytes"] == 0
    for addr in list(live):
        a.free(addr)
    a.empty_cache()
    s = a.stats()
    assert s["allocated_bytes"] == s["reserved_bytes"] == s["active_allocs"] == 0


# Large copies take the streaming-store path (csrc/memory/bulk_copy.cpp): check its edges, the
# unaligned heads and tails and the overlap fallback, byte for byte.
@pytest.mark.parametrize("nbytes", [(1 << 20) - 1, 1 << 20, (1 << 20) + 77, (3 << 20) + 31])
@pytest.mark.parametrize("offset", [0, 1, 31, 33])
def test_large_copies_are_exact_at_every_alignment(nbytes, offset):
    arena = _C.Arena(1 << 30)
    address = arena.allocate(nbytes + 64)
    src = np.random.default_rng(nbytes + offset).integers(0, 256, nbytes, dtype=np.uint8)
    arena.copy_from_host(address, offset, src)
    back = np.zeros(nbytes + 3, np.uint8)
    arena.copy_to_host(address, offset, back[3:])
    assert np.array_equal(back[3:], src) and not back[:3].any()
    arena.free(address)


def test_large_overlapping_copy_within_keeps_memmove_semantics():
    arena = _C.Arena(1 << 30)
    nbytes = 4 << 20
    address = arena.allocate(nbytes + 4096)
    src = np.random.default_rng(1).integers(0, 256, nbytes + 4096, dtype=np.uint8)
    arena.copy_from_host(address, 0, src)
    arena.copy_within(address, 4096, address, 0, nbytes)  # forward overlap
    out = np.empty(nbytes + 4096, np.uint8)
    arena.copy_to_host(address, 0, out)
    expected = src.copy()
    expected[4096:] = src[:nbytes]
    assert np.array_equal(out, expected)
