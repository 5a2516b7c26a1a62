"""Run latency of hal.InferenceSession next to onnxruntime.InferenceSession on the same model file.

    python benchmarks/bench_dispatch.py [--models mlp,resnet50,bert] [--repeats 15]
                                        [--mlp-repeats 2000] [--threads N] [--quick]

Every hal path is timed against its own onnxruntime CPU runs, interleaved one run each in one
process (the order flips every pair, so warm caches and noise hit both sides equally); the figures
are medians and ratios of that same run. Both sides use the same intra-op thread count:
onnxruntime's default unless --threads is given.
Targets (dispatch issue): devices=["cpu"] within 1.03x of onnxruntime on ResNet-50 and BERT-base
(batch 1, seq 128), and at most 10 us added per run on a tiny MLP; a simulated chip
(devices=["ascend:0"] or ["kunlun:0"]) within 1.5x of onnxruntime's CPU wall time.
--quick runs smaller members of the same model families (a smoke run for CI, under a minute);
its targets are printed for reference only, they are defined for the full-size models.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

import hal
from hal.testing import models
from _harness import print_table

CPU_RATIO_TARGET = 1.03
MLP_ADDED_US_TARGET = 10.0
SIMULATED_RATIO_TARGET = 1.5
SIMULATED_DEVICES = ("ascend:0", "kunlun:0")


@dataclass(frozen=True)
class Workload:
    name: str
    build: Callable[[], object]
    small: bool
    """a tiny model: timed with --mlp-repeats and judged on added microseconds, not on a ratio"""


def workloads(quick: bool) -> dict[str, Workload]:
    if quick:
        return {
            "mlp": Workload("mlp (batch 1)", lambda: models.mlp(batch=1), True),
            "resnet50": Workload("resnet50 @64x64 (quick)", lambda: models.resnet50(batch=1, size=64), False),
            "bert": Workload("bert 2 layers, h256, seq 32 (quick)",
                             lambda: models.bert_encoder(batch=1, seq=32, hidden=256, heads=4, layers=2,
                                                         intermediate=1024, vocab=1000), False),
        }
    return {
        "mlp": Workload("mlp (batch 1)", lambda: models.mlp(batch=1), True),
        "resnet50": Workload("resnet50 (batch 1, 224)", lambda: models.resnet50(batch=1), False),
        "bert": Workload("bert-base (batch 1, seq 128)", lambda: models.bert_encoder(batch=1, seq=128), False),
    }


def interleaved(hal_run: Callable[[], object], ort_run: Callable[[], object], repeats: int, *,
                settle: float = 0.0, warmup: int = 2) -> tuple[list[float], list[float]]:
    """Seconds of each hal run and each onnxruntime run, alternating, the order flipped every pair.

    settle: seconds of sleep before each timed run. Every onnxruntime session owns an intra-op
    thread pool whose workers spin for about 40 ms of CPU after a run; on a machine with few cores
    that tail slows whichever session runs next (up to 2x here), so without a pause each side would
    be timed under the other's spin.
    """
    for _ in range(warmup):
        hal_run()
        ort_run()
    hal_samples, ort_samples = [], []
    clock = time.perf_counter
    for i in range(repeats):
        pair = ((hal_run, hal_samples), (ort_run, ort_samples))
        for fn, samples in (pair if i % 2 == 0 else pair[::-1]):
            if settle:
                time.sleep(settle)
            start = clock()
            fn()
            samples.append(clock() - start)
    return hal_samples, ort_samples


def max_abs_diff(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    return max(float(np.max(np.abs(x.astype(np.float64) - y.astype(np.float64)))) if x.size else 0.0
               for x, y in zip(a, b))


def judge(work: Workload, path: str, ratio: float, added_us: float) -> tuple[str, bool | None]:
    if path == "ort control":
        return "noise floor", None
    if path == "hal cpu" and work.small:
        return f"<= {MLP_ADDED_US_TARGET:g} us added", added_us <= MLP_ADDED_US_TARGET
    if path == "hal cpu":
        return f"<= {CPU_RATIO_TARGET}x", ratio <= CPU_RATIO_TARGET
    if work.small:  # the issue sets the simulated-chip ratio on realistic models; here the per-run
        return "none (stream round trips)", None  # stream hand-offs dominate a 20 us model
    return f"<= {SIMULATED_RATIO_TARGET}x", ratio <= SIMULATED_RATIO_TARGET


def bench_model(key: str, work: Workload, folder: Path, repeats: int, threads: int | None,
                settle: float) -> list[tuple[str, ...]]:
    proto = work.build()
    path = str(models.save(proto, folder / f"{key}.onnx"))
    feeds = models.random_inputs(proto)
    del proto
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads

    def ort_session() -> ort.InferenceSession:
        return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])

    def hal_session(devices: list[str]) -> hal.InferenceSession:
        return hal.InferenceSession(path, devices=devices, intra_op_threads=threads)

    start = time.perf_counter()
    reference = ort_session()
    ort_built = time.perf_counter() - start
    expected = reference.run(None, feeds)
    # The control times a second onnxruntime session against the first: the spread any ratio
    # below has to beat before it means anything on this machine.
    contenders = [("ort control", ort_session), ("hal cpu", lambda: hal_session(["cpu"]))]
    contenders += [(f"hal {d}", lambda d=d: hal_session([d])) for d in SIMULATED_DEVICES]
    rows = []
    for label, make in contenders:
        start = time.perf_counter()
        session = make()
        built = time.perf_counter() - start
        got = session.run(None, feeds)
        diff = max_abs_diff(got, expected)
        if label in ("ort control", "hal cpu") and diff > 1e-4:
            raise SystemExit(f"{key}: {label} differs from onnxruntime by {diff:g}; its timings would be meaningless")
        hal_s, ort_s = interleaved(lambda: session.run(None, feeds), lambda: reference.run(None, feeds), repeats,
                                   settle=0.0 if work.small else settle)
        hal_med, ort_med = statistics.median(hal_s), statistics.median(ort_s)
        ratio = hal_med / ort_med
        added_us = statistics.median(h - o for h, o in zip(hal_s, ort_s)) * 1e6
        partitions = str(len(session.plan.partitions)) if isinstance(session, hal.InferenceSession) else "-"
        target, met = judge(work, label, ratio, added_us)
        result = "-" if met is None else "met" if met else "NOT met"
        rows.append((work.name, label, f"{hal_med * 1e3:.3f}", f"{ort_med * 1e3:.3f}", f"{ratio:.3f}x",
                     f"{added_us:+.1f}", target, result, partitions, f"{built:.2f} / {ort_built:.2f}", f"{diff:.1e}"))
        print(f"  {key:9s} {label:13s} median {hal_med * 1e3:9.3f} ms vs ort {ort_med * 1e3:9.3f} ms "
              f"({ratio:.3f}x, {added_us:+.1f} us, {partitions} partitions, session {built:.2f} s) {result}", flush=True)
        del session
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="mlp,resnet50,bert", help="comma-separated subset of mlp,resnet50,bert")
    parser.add_argument("--repeats", type=int, default=15, help="interleaved pairs per path for resnet50 and bert")
    parser.add_argument("--mlp-repeats", type=int, default=2000, help="interleaved pairs per path for the MLP")
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads for both (default: onnxruntime's)")
    parser.add_argument("--settle", type=float, default=0.1,
                        help="seconds of pause before each timed run of resnet50 and bert (see interleaved())")
    parser.add_argument("--quick", action="store_true", help="smaller models and repeats: a CI smoke run")
    args = parser.parse_args(argv)
    available = workloads(args.quick)
    chosen = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in chosen if m not in available]
    if unknown or not chosen:
        parser.error(f"--models takes a comma-separated subset of {','.join(available)}, got {args.models!r}")
    repeats, mlp_repeats = (min(args.repeats, 9), min(args.mlp_repeats, 300)) if args.quick else (args.repeats, args.mlp_repeats)
    threads = f"{args.threads}" if args.threads else "onnxruntime's default for both"
    print(f"bench_dispatch: onnxruntime {ort.__version__}, {os.cpu_count()} logical cores, intra-op threads: "
          f"{threads}; {repeats} pairs per path ({mlp_repeats} for the MLP), {args.settle:g} s settle before each "
          f"big-model run{', quick' if args.quick else ''}", flush=True)

    rows = []
    with tempfile.TemporaryDirectory(prefix="hal_bench_dispatch_") as folder:
        for key in chosen:
            work = available[key]
            rows += bench_model(key, work, Path(folder), mlp_repeats if work.small else repeats, args.threads,
                                args.settle)

    print_table("run latency vs onnxruntime CPU on the same file (medians of interleaved runs; ratio = path / ort; "
                "added = median of paired differences; session s = path's / ort's creation)",
                ("model", "path", "path ms", "ort ms", "ratio", "added us", "target", "result",
                 "partitions", "session s", "max |diff|"), rows)
    judged = [r for r in rows if r[7] != "-"]
    missed = [r for r in judged if r[7] != "met"]
    note = " (quick: smaller models, targets for reference only)" if args.quick else ""
    print(f"\ntargets: {len(judged) - len(missed)} of {len(judged)} met{note}")
    for r in missed:
        print(f"  NOT met: {r[0]}, {r[1]}: {r[4]} ({r[5]} us), target {r[6]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
