"""hal on Ray, on loopback clusters started here: what a remote partition call adds, and what
fanning `hal conformance` out over two nodes saves.

    python benchmarks/bench_ray.py [--sizes 32B,1M] [--repeats 50] [--ops Relu,Add,MatMul,Conv,Softmax]
                                   [--cpus-per-node 1] [--skip-conformance]

1. Per partition call: RaySession.run on a model that is one partition on the CPU actor, and on
   chain(110) over ascend:0 + kunlun:0 (three partitions on two actors), next to the same model in
   a local hal.InferenceSession, a plain Ray task round trip and a plain Ray actor call of the same
   payload (what a user writes with Ray alone). Overhead per partition call = (RaySession.run -
   local run) / partitions; hal's share of it = that minus the plain actor call (Ray's own round
   trip). Target: <= 2 ms per call with a small payload (32 B); the 1 MiB row shows what moving
   the payload through the object store costs, with and without hal.
2. `hal conformance ascend kunlun --suite onnx --ops ... --ray` on one node that declares both
   chips vs two nodes that declare one each (each node offers --cpus-per-node CPUs, so two nodes
   run twice the tasks at once; on one machine they share its cores), beside the local run without
   Ray. onnx's node cases are built on the driver before timing (the same for every contender),
   and each contender runs once untimed first, so that every node's workers have hal imported.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

from _harness import median_seconds, print_table

OVERHEAD_TARGET_S = 2e-3
CHIPS = {"hal_sim_ascend": 1, "hal_sim_kunlun": 1}


def parse_size(text: str) -> int:
    units = {"B": 1, "K": 1024, "M": 1024**2}
    text = text.strip().upper()
    return int(float(text[:-1]) * units[text[-1]]) if text[-1] in units else int(text)


def _relu_model(elements: int):
    from onnx import TensorProto, helper

    value = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, elements]) for n in ("x", "y")]
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"], name="relu")], "relu", value[:1], value[1:])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def measure_calls(ray, sizes: list[int], repeats: int) -> tuple[list[tuple[str, ...]], list[float]]:
    import hal
    from hal.distributed.ray import RaySession
    from hal.testing import chain

    @ray.remote(num_cpus=0)
    def relu_task(x):
        return np.maximum(x, 0)

    @ray.remote(num_cpus=0)
    class Relu:
        def run(self, x):
            return np.maximum(x, 0)

    actor = Relu.remote()
    rows, overheads = [], []
    cases = [(f"Relu on cpu, {size} B", _relu_model(max(size // 4, 1)), ["cpu"], "x") for size in sizes]
    cases.append(("chain(110) on ascend:0 + kunlun:0, 32 B", chain(110), ["ascend:0", "kunlun:0"], "x"))
    for label, model, devices, input_name in cases:
        local = hal.InferenceSession(model, devices=devices)
        shape = [d if isinstance(d, int) else 1 for d in local.get_inputs()[0].shape]
        feeds = {input_name: np.random.default_rng(0).standard_normal(shape).astype(np.float32)}
        with RaySession(model, devices=devices) as remote:
            np.testing.assert_array_equal(remote.run(None, feeds)[0], local.run(None, feeds)[0])
            parts = len(remote.plan.partitions)
            hal_remote = median_seconds(lambda: remote.run(None, feeds), repeats=repeats, warmup=3)  # noqa: B023 (timed here)
        hal_local = median_seconds(lambda: local.run(None, feeds), repeats=repeats, warmup=3)  # noqa: B023
        x = feeds[input_name]
        task = median_seconds(lambda: ray.get(relu_task.remote(x)), repeats=repeats, warmup=3)  # noqa: B023
        call = median_seconds(lambda: ray.get(actor.run.remote(x)), repeats=repeats, warmup=3)  # noqa: B023
        overhead = (hal_remote - hal_local) / parts
        if x.nbytes <= 64:
            overheads.append(overhead)
        rows.append((label, str(parts), f"{hal_remote * 1e3:.2f}", f"{hal_local * 1e3:.2f}", f"{overhead * 1e3:.2f}",
                     f"{task * 1e3:.2f}", f"{call * 1e3:.2f}", f"{(overhead - call) * 1e3:.2f}", f"{overhead / task:.2f}x"))
    ray.kill(actor)
    return rows, overheads


def measure_conformance(address: str, ops: list[str], repeats: int) -> float:
    from hal.conformance.ray_runner import run_conformance_on_ray
    from hal.conformance.runner import RunOptions

    options = RunOptions(backends=["ascend", "kunlun"], suite="onnx", ops=ops)
    report = None

    def run() -> None:
        nonlocal report
        report = run_conformance_on_ray(options, address)

    seconds = median_seconds(run, repeats=repeats, warmup=1)
    if not report.ok:
        raise SystemExit(f"conformance failed on the cluster at {address}: {len(report.regressions())} regression(s)")
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="32B,1M", help="payloads of the one-partition model (default 32B,1M)")
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--ops", default="Add,Mul,Sub,Div,Relu,Conv,MatMul,Gemm,Softmax,Cast,Reshape,Transpose,Concat,"
                                          "Slice,Gather,ReduceMean,ReduceSum,Pad,Where,Resize")
    parser.add_argument("--conformance-repeats", type=int, default=1)
    parser.add_argument("--cpus-per-node", type=int, default=1)
    parser.add_argument("--skip-conformance", action="store_true")
    args = parser.parse_args(argv)

    import ray

    from hal.conformance.onnx_node.cases import node_cases
    from hal.conformance.runner import RunOptions, run_conformance
    from hal.distributed.ray import connect
    from hal.testing.ray_cluster import RAY_ENV, LoopbackCluster

    os.environ.update(RAY_ENV)
    print(f"bench_ray: Ray {ray.__version__}, numpy {np.__version__}, {os.cpu_count()} cores; loopback clusters of "
          f"{args.cpus_per_node} CPU(s) per node")
    ops = [op for op in args.ops.split(",") if op]
    timings: dict[str, float] = {}
    with LoopbackCluster([CHIPS], num_cpus=args.cpus_per_node) as cluster:
        connect(cluster.address)
        rows, overheads = measure_calls(ray, [parse_size(s) for s in args.sizes.split(",")], args.repeats)
        if not args.skip_conformance:
            node_cases()  # built once, for every contender
            timings["1 node (both chips)"] = measure_conformance(cluster.address, ops, args.conformance_repeats)
        ray.shutdown()
    print_table("Per partition call, one node on loopback (medians, ms)",
                ("model", "partitions", "RaySession.run", "local run", "overhead/partition", "plain Ray task",
                 "plain actor call", "hal's share/partition", "overhead/task"), rows)
    if not args.skip_conformance:
        with LoopbackCluster([{"hal_sim_ascend": 1}, {"hal_sim_kunlun": 1}], num_cpus=args.cpus_per_node) as cluster:
            connect(cluster.address)
            timings["2 nodes (one chip each)"] = measure_conformance(cluster.address, ops, args.conformance_repeats)
            ray.shutdown()
        options = RunOptions(backends=["ascend", "kunlun"], suite="onnx", ops=ops)
        timings["local, no Ray (1 process)"] = median_seconds(lambda: run_conformance(options), repeats=args.conformance_repeats, warmup=1)
        one = timings["1 node (both chips)"]
        print_table(f"hal conformance ascend kunlun --suite onnx --ops {','.join(ops)} (wall s)",
                    ("where", "wall s", "vs 1 node"), [(k, f"{v:.2f}", f"{v / one:.2f}x") for k, v in timings.items()])
    worst = max(overheads)
    print(f"\ntargets\n  overhead per remote partition call (32 B payload) <= {OVERHEAD_TARGET_S * 1e3:.0f} ms on loopback: "
          f"worst {worst * 1e3:.2f} ms  {'met' if worst <= OVERHEAD_TARGET_S else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
