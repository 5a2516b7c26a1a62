"""Fault campaign: every fault kind injected at every operation of a multi-partition model's run on
a simulated chip, with failover to the other chip and the CPU.

    python benchmarks/bench_failover.py [--chips ascend:0,kunlun:0] [--nodes 160] [--repeats 5]

For each chip, kind (kernel_error, device_lost, out_of_memory) and N (the fault hits after N
operations: stream ops for the first two, allocations for the third) it counts faults injected,
runs survived (results identical to a fault-free run, exactly one FailoverWarning) and device
bytes still allocated on either chip once the session and its outputs are dropped. Then the time
of a run that fails over, next to what a user would do without failover: catch the error, build a
new session on the other devices and run again (medians, one process).
"""
from __future__ import annotations

import argparse
import gc
import time
import warnings

import numpy as np

import hal
from _harness import print_table
from hal import sim
from hal.graph.session import FailoverWarning
from hal.testing.models import chain, random_inputs


def _allocated(devices: list[hal.Device]) -> int:
    gc.collect()
    return sum(d.memory_stats().allocated_bytes for d in devices)


def campaign(model, feeds, expected, chip: hal.Device, failover: list[str]) -> tuple[list[tuple], list[str]]:
    """One row per fault kind: (chip, kind, injected, survived, leaked bytes, op indices tried),
    and what went wrong in each run that did not survive."""
    watched = [chip, *(hal.device(d) for d in failover if d != "cpu")]
    rows, failures = [], []
    for kind in sim.FAULT_KINDS:
        injected = survived = leaked = tried = 0
        while True:  # N = 0, 1, ... until a run no longer reaches the Nth operation
            before = _allocated(watched)
            hits_before = chip.driver.faults.injected
            session = hal.InferenceSession(model, devices=[chip], failover=failover)
            sim.inject_fault(chip, kind, after_ops=tried)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    out = session.run(None, feeds)[0]
                except hal.HalError as exc:
                    out, error = None, f"{type(exc).__name__}: {exc}"
            sim.clear_faults(chip)
            hit = chip.driver.faults.injected > hits_before
            if not hit:
                break
            injected += 1
            failovers = [w for w in caught if issubclass(w.category, FailoverWarning)]
            if out is not None and np.array_equal(out, expected) and len(failovers) == 1:
                survived += 1
            else:
                why = error if out is None else f"equal={np.array_equal(out, expected)}, warnings: {[str(w.message) for w in failovers]}"
                failures.append(f"{chip.name} {kind}@{tried}: {why}")
            del session, out
            leaked += _allocated(watched) - before
            tried += 1
        rows.append((chip.name, kind, injected, survived, leaked, tried))
    return rows, failures


def _median_ms(fn, repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return float(np.median(samples)) * 1e3


def recovery_times(model, feeds, chip: hal.Device, failover: list[str], repeats: int) -> list[tuple[str, str]]:
    """Median ms of a run whose chip is lost at its first kernel: hal's failover, and a user's
    catch + new session + run; and a fault-free run for scale."""
    def hal_failover() -> None:
        session = sessions.pop()
        sim.inject_fault(chip, "device_lost", after_ops=1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FailoverWarning)
            session.run(None, feeds)
        sim.clear_faults(chip)

    def rebuild_by_hand() -> None:
        session = sessions.pop()
        sim.inject_fault(chip, "device_lost", after_ops=1)
        try:
            session.run(None, feeds)
        except hal.DeviceError:
            sim.clear_faults(chip)
            hal.InferenceSession(model, devices=failover).run(None, feeds)

    healthy = hal.InferenceSession(model, devices=[chip])
    rows = [("fault-free run", f"{_median_ms(lambda: healthy.run(None, feeds), repeats):.1f}")]
    # sessions are built outside the timed part: both start from a session that was running
    sessions = [hal.InferenceSession(model, devices=[chip], failover=failover) for _ in range(repeats)]
    rows.append(("hal failover=[...] (re-plan + finish)", f"{_median_ms(hal_failover, repeats):.1f}"))
    sessions = [hal.InferenceSession(model, devices=[chip]) for _ in range(repeats)]
    rows.append(("catch, new InferenceSession, run", f"{_median_ms(rebuild_by_hand, repeats):.1f}"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chips", default="ascend:0,kunlun:0", help="simulated chips to fail, comma-separated")
    parser.add_argument("--nodes", type=int, default=160, help="nodes of hal.testing.models.chain")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    chips = [hal.device(name) for name in args.chips.split(",")]
    model = chain(args.nodes)
    feeds = random_inputs(model)
    expected = hal.InferenceSession(model, devices=["cpu"]).run(None, feeds)[0]
    rows, failures, timing = [], [], []
    for chip in chips:
        other = next((c.name for c in chips if c is not chip), None)
        failover = [other, "cpu"] if other else ["cpu"]
        plan = hal.InferenceSession(model, devices=[chip]).plan
        print(f"{chip.name}: partitions {[p.device for p in plan.partitions]}, failover {failover}")
        chip_rows, chip_failures = campaign(model, feeds, expected, chip, failover)
        rows, failures = rows + chip_rows, failures + chip_failures
        timing += [(f"{chip.name} {what}", ms) for what, ms in recovery_times(model, feeds, chip, failover, args.repeats)]
    print_table(f"Fault campaign: chain({args.nodes}), each fault at every operation index N of one run",
                ("chip", "fault", "injected", "survived", "leaked bytes", "N tried"),
                [(c, k, str(i), str(s), str(b), f"0..{n - 1}") for c, k, i, s, b, n in rows])
    total_injected, total_survived = sum(r[2] for r in rows), sum(r[3] for r in rows)
    print(f"\n  total: {total_injected} faults injected, {total_survived} survived, "
          f"{sum(r[4] for r in rows)} bytes leaked")
    for failure in failures:
        print(f"  not survived: {failure}")
    print_table(f"Recovery time, median of {args.repeats} (ms)", ("run", "ms"), timing)


if __name__ == "__main__":
    main()
