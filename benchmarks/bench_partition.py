"""Session creation time for long graphs: load, capability, placement, partition and compile of
hal.testing.chain(n), next to onnxruntime's own InferenceSession creation for the same file.

    python benchmarks/bench_partition.py [--sizes 1000,10000,50000] [--repeats 3]
                                         [--devices ascend:0,cpu  --devices cpu]

For each size and device list the pieces are timed one by one, called the way
hal.InferenceSession's constructor calls them (hal.graph internals), then the whole constructor,
then onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"]): what a user would
pick instead. Every figure is a median over --repeats, all in one process. The chain has ops the
simulated Ascend lacks (Einsum, CumSum) every ~50 nodes, so ["ascend:0", "cpu"] cuts it into
hundreds of partitions. Time per 1k nodes shows whether creation grows linearly.
Target (dispatch issue): 10k nodes under 2 s for the whole constructor.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import onnxruntime as ort

import hal
from hal.capability import CompileOptions
from hal.graph.extract import GraphIndex
from hal.graph.model import load_model
from hal.graph.partition import partition
from hal.graph.placement import place_priority, shape_only_nodes
from hal.testing import models
from _harness import print_table

TARGET_NODES = 10_000
TARGET_SECONDS = 2.0
PIECES = ("load", "capability", "placement", "partition", "compile")


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def pieces(path: str, names: list[str]) -> tuple[dict[str, float], int]:
    """Seconds of each step of InferenceSession's constructor, called as it calls them; and the
    number of partitions."""
    host = hal.device("cpu")
    listed = list(dict.fromkeys(hal.device(n) for n in names))
    if host not in listed:  # InferenceSession keeps the CPU last unless strict
        listed.append(host)
    seconds: dict[str, float] = {}

    def load():
        model = load_model(path)
        return model, model.node_infos()

    seconds["load"], (model, nodes) = timed(load)
    seconds["capability"], answers = timed(
        lambda: {n.name: [d.backend.supports(n, d.spec) for d in listed] for n in nodes})

    def place():
        host_nodes = shape_only_nodes(nodes, model.initializers)
        return place_priority(nodes, listed, answers, host_nodes, host, strict=False)

    seconds["placement"], placed = timed(place)

    def cut():
        index = GraphIndex(model.proto)
        outputs = [o.name for o in model.outputs]
        return index, partition(nodes, placed.assignment, graph_outputs=outputs, boundary=index.boundary)

    seconds["partition"], (index, parts) = timed(cut)
    by_name = {d.name: d for d in listed}
    options = CompileOptions()

    def compile_all():
        return [by_name[p.device].backend.compile(index.extract(p.nodes, p.outputs, p.name), p.nodes,
                                                  by_name[p.device], options) for p in parts]

    seconds["compile"], _ = timed(compile_all)
    return seconds, len(parts)


def measure(path: str, names: list[str], repeats: int) -> dict[str, float | int]:
    samples: dict[str, list[float]] = {k: [] for k in (*PIECES, "session", "ort")}
    count = 0
    for _ in range(repeats):
        split, count = pieces(path, names)
        for key, value in split.items():
            samples[key].append(value)
        seconds, session = timed(lambda: hal.InferenceSession(path, devices=names))
        samples["session"].append(seconds)
        if len(session.plan.partitions) != count:
            raise SystemExit(f"{path}: the session made {len(session.plan.partitions)} partitions, "
                             f"the pieces {count}: this benchmark no longer mirrors the constructor")
        del session
        seconds, _ = timed(lambda: ort.InferenceSession(path, providers=["CPUExecutionProvider"]))
        samples["ort"].append(seconds)
    result: dict[str, float | int] = {k: statistics.median(v) for k, v in samples.items()}
    result["partitions"] = count
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,50000", help="comma-separated node counts")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--devices", action="append", default=None,
                        help="comma-separated device list, in priority order; may be given several times "
                             "(default: ascend:0,cpu and cpu)")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    device_lists = [d.split(",") for d in (args.devices or ["ascend:0,cpu", "cpu"])]
    print(f"bench_partition: chain sizes {sizes}, devices {[','.join(d) for d in device_lists]}, "
          f"median of {args.repeats}; onnxruntime {ort.__version__}", flush=True)

    results: dict[tuple[str, int], dict[str, float | int]] = {}
    with tempfile.TemporaryDirectory(prefix="hal_bench_partition_") as folder:
        paths = {n: str(models.save(models.chain(n), Path(folder) / f"chain_{n}.onnx")) for n in sizes}
        warm = str(models.save(models.chain(200), Path(folder) / "warm.onnx"))
        for names in device_lists:
            measure(warm, names, 1)  # one-off imports and op tables, which no session pays twice
            for n in sizes:
                label = ",".join(names)
                results[label, n] = r = measure(paths[n], names, args.repeats)
                print(f"  {label:12s} {n:6d} nodes: {r['partitions']} partitions, session {r['session']:.3f} s, "
                      f"ort {r['ort']:.3f} s", flush=True)

    rows = []
    for (label, n), r in results.items():
        rows.append((label, str(n), str(r["partitions"]), *(f"{r[k]:.3f}" for k in PIECES),
                     f"{sum(r[k] for k in PIECES):.3f}", f"{r['session']:.3f}",
                     f"{r['session'] / n * 1000:.3f}", f"{r['ort']:.3f}", f"{r['session'] / r['ort']:.1f}x"))
    print_table("session creation, seconds (median; pieces timed as InferenceSession calls them; "
                "ort = onnxruntime.InferenceSession on the same file)",
                ("devices", "nodes", "partitions", *PIECES, "sum", "session", "s / 1k nodes", "ort", "vs ort"), rows)

    share_rows = []
    for (label, n), r in results.items():
        total = sum(r[k] for k in PIECES)
        share_rows.append((label, str(n), *(f"{100 * r[k] / total:.0f}%" for k in PIECES),
                           *(f"{r[k] / n * 1000 * 1e3:.1f}" for k in PIECES)))
    print_table("where the time goes: share of the sum, and milliseconds per 1k nodes for each piece",
                ("devices", "nodes", *PIECES, *(f"{k} ms/1k" for k in PIECES)), share_rows)

    print()
    for names in device_lists:
        label = ",".join(names)
        per_k = [(n, results[label, n]["session"] / n * 1000) for n in sizes]
        if len(per_k) > 1:
            (n0, first), (n1, last) = per_k[0], per_k[-1]
            print(f"growth {label}: {first * 1e3:.1f} ms per 1k nodes at {n0} -> {last * 1e3:.1f} at {n1} "
                  f"({last / first:.2f}x; 1.00x is linear)")
        if (label, TARGET_NODES) in results:
            s = results[label, TARGET_NODES]["session"]
            print(f"target {label}: {TARGET_NODES} nodes in {s:.2f} s (< {TARGET_SECONDS:g}): "
                  f"{'met' if s < TARGET_SECONDS else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
