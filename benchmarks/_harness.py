"""Shared timing for the benchmarks: medians over repeats, ratios side by side, one process.

This machine is small and noisy: every figure is a median, and comparisons are ratios measured in
the same run, never absolute times from another day.
"""
from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable


def median_seconds(fn: Callable[[], object], *, repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def median_per_call(fn: Callable[[], object], *, calls: int, repeats: int = 15) -> float:
    """Median over `repeats` batches of the mean time of one call in a batch of `calls`."""
    def batch() -> None:
        for _ in range(calls):
            fn()
    return median_seconds(batch, repeats=repeats) / calls


def pin_to_one_core() -> str:
    """Pins this process to one core (the benchmark targets say 'on one core')."""
    if hasattr(os, "sched_setaffinity"):
        core = sorted(os.sched_getaffinity(0))[0]
        os.sched_setaffinity(0, {core})
        return f"pinned to core {core}"
    return "not pinned (no sched_setaffinity here)"


def print_table(title: str, header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    print(f"\n{title}")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  " + "  ".join(str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(row, widths))))
