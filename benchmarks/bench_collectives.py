"""all_reduce on 2, 4 and 8 simulated Ascend 910B cards (HCCS full mesh), 1 KiB to 256 MiB.

    python benchmarks/bench_collectives.py [--ranks 2,4,8] [--sizes 1K,16K,256K,4M,64M,256M] [--repeats 5]

Prints, as nccl-tests does, each size's simulated time, algbw and busbw (from the cards' simulated
clocks, events around the collective) beside the busbw of the link formula (one HCCS link's
bandwidth x (n-1) on the full mesh, latency aside) and their ratio; then the host's wall time per
collective beside what a user would otherwise do with the same arrays in host memory (numpy: sum
them, copy the sum to each), as a ratio. Target (issue #17): simulated busbw within 15% of the
formula; small messages are latency-bound (two steps of the link latency), as on the real card.
"""
from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("HAL_SIM_DEVICES", "ascend=8")  # read when hal first lists devices

import numpy as np

import hal
import hal.distributed as hd
from _harness import median_seconds, print_table

UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def parse_size(text: str) -> int:
    text = text.strip().upper().removesuffix("IB").removesuffix("B")
    return int(text[:-1]) * UNITS[text[-1]] if text[-1] in UNITS else int(text)


def label(nbytes: int) -> str:
    for unit in ("G", "M", "K"):
        if nbytes >= UNITS[unit] and nbytes % UNITS[unit] == 0:
            return f"{nbytes // UNITS[unit]}{unit}"
    return str(nbytes)


def measure(comm: hd.Communicator, nbytes: int, repeats: int) -> tuple[tuple[str, ...], float]:
    n = comm.size
    count = nbytes // 4
    rng = np.random.default_rng(n)
    host = [rng.standard_normal(count, dtype=np.float32) for _ in range(n)]
    tensors = [hal.empty((count,), "float32", device=d) for d in comm.devices]
    for tensor, array in zip(tensors, host):
        tensor.copy_(array)
    streams = [d.default_stream for d in comm.devices]

    def hal_all_reduce() -> None:
        comm.all_reduce(tensors)
        for stream in streams:
            stream.synchronize()

    start = streams[0].record_event()
    hal_all_reduce()
    end = streams[0].record_event()
    simulated = start.elapsed_time(end) / 1e3
    expected = np.sum(host, axis=0, dtype=np.float32)
    np.testing.assert_allclose(tensors[n - 1].numpy(), expected, rtol=1e-4, atol=1e-4)

    def numpy_all_reduce() -> None:
        """What a user does without collectives: sum the ranks' arrays on the host, copy the sum
        back to each (in place, as all_reduce is, so 8 x 256 MiB needs no second set of arrays)."""
        total = host[0].copy()
        for array in host[1:]:
            np.add(total, array, out=total)
        for array in host:
            np.copyto(array, total)

    hal_wall = median_seconds(hal_all_reduce, repeats=repeats, warmup=1)
    numpy_wall = median_seconds(numpy_all_reduce, repeats=repeats, warmup=1)
    group = comm._peer_group
    timing = hd.collective_time("all_reduce", nbytes, n, group.topology, group.bandwidth, group.latency)
    algbw = hd.algbw(nbytes, simulated)
    busbw = hd.busbw("all_reduce", nbytes, simulated, n)
    formula = hd.link_busbw("all_reduce", group.topology, group.bandwidth, n)
    # The same formula with the link's per-step latency (the alpha-beta model the simulator times
    # the collective by): a gap to it is time the streams lost waiting on each other.
    with_latency = hd.busbw("all_reduce", nbytes, timing.seconds, n)
    row = (str(n), label(nbytes), timing.algorithm, f"{simulated * 1e6:.1f}", f"{algbw / 1e9:.2f}", f"{busbw / 1e9:.2f}",
           f"{formula / 1e9:.1f}", f"{busbw / formula:.3f}", f"{with_latency / 1e9:.2f}", f"{busbw / with_latency:.3f}",
           f"{hal_wall * 1e3:.3f}", f"{numpy_wall * 1e3:.3f}", f"{hal_wall / numpy_wall:.2f}x")
    tensors.clear()  # the device memory goes back before the next size
    for d in comm.devices:
        d.empty_cache()
    return row, busbw / formula


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranks", default="2,4,8")
    parser.add_argument("--sizes", default="1K,16K,256K,4M,64M,256M")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    ranks = [int(r) for r in args.ranks.split(",")]
    sizes = [parse_size(s) for s in args.sizes.split(",")]
    print(f"bench_collectives: all_reduce(sum) float32, numpy {np.__version__}, {os.cpu_count()} cores")
    rows, ratios = [], []
    for n in ranks:
        comm = hd.Communicator([f"ascend:{i}" for i in range(n)])
        if n == ranks[0]:
            print(comm.describe())
        for nbytes in sizes:
            row, ratio = measure(comm, nbytes, args.repeats)
            rows.append(row)
            ratios.append((n, nbytes, ratio))
    print_table("all_reduce on simulated Ascend 910B (sim: the cards' simulated clocks; wall: this host)",
                ("ranks", "size", "algorithm", "sim us", "algbw GB/s", "busbw GB/s", "formula busbw GB/s", "busbw/formula",
                 "with latency GB/s", "busbw/with latency", "hal wall ms", "numpy wall ms", "hal/numpy"), rows)
    within = [(n, s) for n, s, r in ratios if abs(r - 1) <= 0.15]
    smallest = {n: min((s for m, s in within if m == n), default=None) for n in ranks}
    print("\ntargets")
    for n in ranks:
        met = all(abs(r - 1) <= 0.15 for m, s, r in ratios if m == n and smallest[n] is not None and s >= smallest[n])
        sizes_text = f"from {label(smallest[n])} up" if smallest[n] is not None else "at no size"
        print(f"  {n} cards: simulated busbw within 15% of the link formula {sizes_text} "
              f"(smaller messages are latency-bound)  {'met' if smallest[n] is not None and met else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
