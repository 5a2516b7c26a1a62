"""Tensor-parallel decode on simulated Ascend 910B cards: hal.llm's parallel="tensor" over 2 and 4
cards against one card and against the pipeline split (parallel="pipeline", what hal offered
before), on the same random-weight model, in one process.

    python3 benchmarks/bench_tensor_parallel.py [--config llama-100m] [--cards 2,4] [--prompt 32] [--new-tokens 16] [--repeats 3]

Prints, per contender, the decode time per token on the simulated clock (a pipeline's cards one
after another, a tensor-parallel group's cards at once: the slowest card) and on the wall clock,
each as a ratio to one card; then, from a profiled run per tensor-parallel group at batch 1 and at
batch 2 with and without the split into two overlapping halves, the simulated decode step, the
share of each card's step spent in all-reduces / all-gathers, how much of that time compute on the
same card overlaps, and the share of kernel launch overhead (the part splitting the weights cannot
shrink). Figures are medians over the repeats of each run's median decode step.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ["HAL_SIM_DEVICES"] = "ascend=4"  # read when hal first lists its devices

import numpy as np  # noqa: E402

import hal  # noqa: E402
import hal.llm  # noqa: E402
from _harness import print_table  # noqa: E402
from hal import profiler  # noqa: E402
from hal.distributed.communicator import Communicator  # noqa: E402
from hal.distributed.tensor_parallel import overlap_pays  # noqa: E402
from hal.llm.config import RANDOM_MODEL_CONFIGS, DecoderConfig  # noqa: E402

THREADS = 2
CARDS = [f"ascend:{i}" for i in range(4)]


class Contender:
    def __init__(self, name: str, model: hal.llm.DecoderModel):
        self.name, self.model = name, model
        self.simulated: list[float] = []
        self.wall: list[float] = []

    def measure(self, ids: np.ndarray, new_tokens: int) -> None:
        result = self.model.generate(ids, new_tokens, eos_token_id=None)
        self.wall.append(statistics.median(result.decode_step_s))
        self.simulated.append(1.0 / result.simulated_decode_tokens_per_s())


def _merged(intervals: list[tuple[float, float]]) -> list[tuple[float, float]]:
    merged: list[tuple[float, float]] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _covered(interval: tuple[float, float], union: list[tuple[float, float]]) -> float:
    return sum(max(0.0, min(interval[1], e) - max(interval[0], s)) for s, e in union)


def communication_profile(model: hal.llm.DecoderModel, ids: np.ndarray, new_tokens: int,
                          overlap: bool | None) -> tuple[float, list[tuple[float, float, float]]]:
    """The median decode step on the simulated clock (seconds) and, per card, over the decode steps
    of one profiled generation: (collective seconds / step seconds, the fraction of collective time
    that compute on the card overlaps, kernel launch overhead / step seconds)."""
    group = model.tensor_parallel
    group.overlap = overlap
    with profiler.profile() as prof:
        result = model.generate(ids, new_tokens, eos_token_id=None)
    group.overlap = None
    shares = []
    for kernels, comm_stream in zip(group.kernels, group.comm_streams.streams):
        card = kernels.device.name
        events = [e for e in prof.events if e.device == card and e.simulated and e.device_start is not None]
        steps = [(e.device_start, e.device_end) for e in prof.events
                 if e.device == card and e.track == "generate" and e.name.startswith("decode step")]
        in_steps = [e for e in events if any(s <= e.device_start and e.device_end <= t for s, t in steps)]
        comm = [(e.device_start, e.device_end) for e in in_steps
                if e.track == f"stream {comm_stream.driver.stream_id}" and e.category == "collective"]
        compute = [(e.device_start, e.device_end) for e in in_steps
                   if e.track == f"stream {kernels.stream.driver.stream_id}" and e.category == "compute"]
        step_seconds = sum(t - s for s, t in steps)
        comm_seconds = sum(t - s for s, t in comm)
        overlapped = sum(_covered(c, _merged(compute)) for c in comm)
        launches = len(compute) * kernels.device.spec.launch_overhead_s
        shares.append((comm_seconds / step_seconds, overlapped / comm_seconds if comm_seconds else 0.0, launches / step_seconds))
    return 1.0 / result.simulated_decode_tokens_per_s(), shares


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="llama-100m", help=f"one of {', '.join(RANDOM_MODEL_CONFIGS)}")
    parser.add_argument("--cards", default="2,4", help="group sizes to split over (at most 4)")
    parser.add_argument("--prompt", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    raw = RANDOM_MODEL_CONFIGS[args.config]
    config = DecoderConfig.from_dict(raw)
    hal.ops.set_num_threads(THREADS)
    weights = hal.llm.random_weights(config, seed=0)
    ids = np.random.default_rng(0).integers(0, config.vocab_size, (1, args.prompt))
    sizes = [int(n) for n in args.cards.split(",")]
    print(f"model {args.config}: {config.parameter_count() / 1e6:.0f}M parameters, batch 1, prompt {args.prompt}, "
          f"{args.new_tokens} new tokens, simulated {hal.device('ascend:0').spec.name}; "
          f"{Communicator(CARDS[:max(sizes)]).describe()}")

    def build(name: str, cards: int, parallel: str) -> Contender:
        return Contender(name, hal.llm.DecoderModel(config, weights, devices=CARDS[:cards], parallel=parallel))

    one = build("1 card", 1, "pipeline")
    contenders = [one]
    for parallel in ("pipeline", "tensor"):
        for cards in sizes:
            try:
                contenders.append(build(f"{parallel} x{cards}", cards, parallel))
            except hal.InvalidArgumentError as exc:  # heads that do not divide by the cards
                print(f"{parallel} x{cards}: not run: {exc}")
    for contender in contenders:  # warm-up: first touch of the cards' memory
        contender.model.generate(ids, 2, eos_token_id=None)
    for _ in range(args.repeats):
        for contender in contenders:  # in turn, so that a noisy minute hits every contender alike
            time.sleep(0.05)
            contender.measure(ids, args.new_tokens)

    base_sim, base_wall = statistics.median(one.simulated), statistics.median(one.wall)
    rows = []
    for c in contenders:
        sim, wall = statistics.median(c.simulated), statistics.median(c.wall)
        rows.append((c.name, f"{sim * 1e3:.3f}", f"{base_sim / sim:.2f}x", f"{wall * 1e3:.1f}", f"{wall / base_wall:.2f}x"))
    print_table("decode per token (medians)", ("contender", "simulated ms", "speed-up vs 1 card", "wall ms",
                                                "wall vs 1 card"), rows)

    profile_rows = []
    for c in contenders:
        if c.model.parallel != "tensor":
            continue
        for batch, overlap in ((1, None), (2, None), (2, True)):
            step, per_card = communication_profile(c.model, np.repeat(ids, batch, axis=0), 4, overlap)
            comm, overlapped, launches = (statistics.median(s[i] for s in per_card) for i in range(3))
            split = "halves (forced)" if overlap else "auto: " + ("halves" if overlap_pays(
                c.model.tensor_parallel.blocks[0], batch, 1) else "whole batch")
            profile_rows.append((c.name, str(batch), split, f"{step * 1e3:.3f}", f"{comm:.1%}", f"{overlapped:.1%}",
                                 f"{launches:.1%}"))
    print_table("tensor-parallel decode step per card (simulated clock, median card)",
                ("contender", "batch", "schedule", "step ms", "collectives", "of which overlapped", "launch overhead"),
                profile_rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
