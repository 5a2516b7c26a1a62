"""Leaks (issue #18, part 5): many runs of a small session on every backend with a device here keep
the process's RSS and each device's memory_stats() flat once warmed up.

CI runs HAL_LEAK_RUNS (default 200) runs per backend; the issue's figure is 10,000, printed as a
table per backend by `HAL_LEAK_RUNS=10000 python3 -m tests.reliability.test_leaks`.
"""
from __future__ import annotations

import gc
import os
import time
from dataclasses import dataclass

import numpy as np
import psutil
import pytest

import hal
from hal.memory import format_bytes
from hal.testing.models import mlp

LEAK_RUNS = int(os.environ.get("HAL_LEAK_RUNS", "200"))
WARMUP_RUNS = 50
# RSS still moves after warm-up (the C library's per-thread heaps, its trim thresholds): 10,000
# runs grew it by 0-0.7 MiB per backend here (the table of main()). A leak of 20 KiB a run, one
# small tensor's buffer, passes 4 MiB within CI's 200 runs; the devices' own accounting below must
# not move at all.
RSS_GROWTH_LIMIT = 4 << 20
# AddressSanitizer (.ci/sanitize) holds freed memory in quarantine, up to 256 MiB, to catch use
# after free: RSS grows by design there, and only the devices' own accounting is checked.
UNDER_ASAN = "libasan" in os.environ.get("LD_PRELOAD", "")


def device_per_backend() -> list[str]:
    """The first device of each backend with a device here (cpu, the simulated chips, torch.cpu...)."""
    return list(dict.fromkeys(f"{d.kind}:0" for d in hal.devices()))


@dataclass(frozen=True)
class Growth:
    """What `runs` more runs added, after warm-up: bytes unless named otherwise."""

    device: str
    runs: int
    rss: int
    allocated: int
    active_allocs: int
    reserved: int


def measure_growth(device_name: str, runs: int, warmup: int = WARMUP_RUNS) -> Growth:
    """Runs a small MLP session on the device, half the runs with numpy in and out (run), half with
    the input resident on the device (run_with_tensors), so that backends whose op table runs
    none of its nodes still move tensors through their memory. The device's stats and the host's
    (partitions that fell back) are summed."""
    device = hal.device(device_name)
    session = hal.InferenceSession(mlp(features=16, hidden=32, classes=8), devices=[device])
    x = np.random.default_rng(0).standard_normal((2, 16)).astype(np.float32)
    devices = list(dict.fromkeys([device, *session.devices]))
    process = psutil.Process()

    def one_run(i: int) -> None:
        if i % 2:
            session.run(None, {"x": x})
        else:
            session.run_with_tensors({"x": hal.tensor(x, device=device)})["logits"].numpy()

    def snapshot() -> tuple[int, int, int, int]:
        for d in devices:
            d.synchronize()
        gc.collect()
        stats = [d.memory_stats() for d in devices]
        return (process.memory_info().rss, sum(s.allocated_bytes for s in stats),
                sum(s.active_allocs for s in stats), sum(s.reserved_bytes for s in stats))

    for i in range(warmup):
        one_run(i)
    before = snapshot()
    for i in range(runs):
        one_run(i)
    after = snapshot()
    return Growth(device_name, runs, *(a - b for a, b in zip(after, before)))


@pytest.mark.parametrize("device_name", device_per_backend())
def test_runs_keep_rss_and_memory_stats_flat(device_name):
    growth = measure_growth(device_name, LEAK_RUNS)
    assert growth.allocated == 0, f"{growth.allocated} device bytes still allocated after {LEAK_RUNS} runs"
    assert growth.active_allocs == 0
    assert growth.reserved == 0, "the same runs again should reuse the allocator's cached blocks"
    if not UNDER_ASAN:
        # A leak grows RSS every time the runs are repeated; a one-off step does not come back (in
        # the whole suite, ascend:0's 200 runs once grew it 5.3 MiB, alone 0-0.7 MiB): a second
        # measure decides before a growth is called a leak.
        grown = [growth.rss]
        if growth.rss >= RSS_GROWTH_LIMIT:
            grown.append(measure_growth(device_name, LEAK_RUNS).rss)
        assert min(grown) < RSS_GROWTH_LIMIT, f"RSS grew {' then '.join(map(format_bytes, grown))} over {LEAK_RUNS} runs, twice"


def test_a_dropped_tensor_is_free_once_its_stream_is_idle():
    """An async copy holds its buffers until it ran, not until the stream's next operation: once
    the stream reports its work done, the memory of a tensor dropped meanwhile is free."""
    device = hal.device("ascend:0")
    stream = device.default_stream
    device.synchronize()
    before = device.memory_stats().allocated_bytes
    target = hal.empty(4096, "uint8", device=device)
    target.copy_(np.ones(4096, np.uint8), non_blocking=True)
    del target
    deadline = time.monotonic() + 60
    while not stream.query():
        assert time.monotonic() < deadline, "the stream did not finish one copy in 60 s"
        time.sleep(0.001)
    assert device.memory_stats().allocated_bytes == before


def main() -> None:
    print(f"{'backend':<12} {'runs':>7} {'RSS growth':>12} {'per run':>9} {'allocated':>10} {'live blocks':>12} {'reserved':>9}")
    for name in device_per_backend():
        g = measure_growth(name, LEAK_RUNS)
        print(f"{name:<12} {g.runs:>7} {format_bytes(g.rss):>12} {g.rss / g.runs:>7.1f} B {g.allocated:>8} B "
              f"{g.active_allocs:>12} {g.reserved:>7} B", flush=True)


if __name__ == "__main__":
    main()
