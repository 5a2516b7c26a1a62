"""Priority versus cost placement of one model over two simulated chips and the CPU.

    python examples/04_cost_placement.py

placement="priority" (the default) works like onnxruntime's provider list: each node goes to the
first listed device that runs it, and falls back down the list otherwise. placement="cost"
searches for the assignment with the lowest estimated end-to-end time: each node's roofline
estimate on each chip (from the chip's spec file) plus every copy between devices. The CPU's
rates are measured on this machine, once per process, so the cost plan differs between machines.
Nothing runs here: the plan alone says where each node would run and how long it should take.
"""
from __future__ import annotations

from collections import Counter

import hal
from hal.memory import format_bytes
from hal.testing import transformer_block

DEVICES = ["ascend:0", "kunlun:0", "cpu"]


def summary(plan) -> None:
    """Nodes per device, partitions, bytes crossing devices and the plan's time estimates."""
    per_device = Counter(node.device for node in plan.nodes)
    print(f"  nodes per device:   {', '.join(f'{d} {n}' for d, n in per_device.most_common())}")
    print(f"  partitions:         {len(plan.partitions)} "
          f"({' -> '.join(p.device for p in plan.partitions)})")
    print(f"  crossing devices:   {format_bytes(plan.bytes_crossing)} in {len(plan.transfers)} transfer(s)")
    estimates = ", ".join(f"{d} {s * 1e3:.3f} ms" for d, s in plan.estimated_by_device.items())
    print(f"  estimated compute:  {estimates}")
    print(f"  estimated total:    {plan.estimated_total_s * 1e3:.3f} ms (compute + transfers, one after another)")


def shortened(text: str, head: int = 14, tail: int = 24) -> str:
    """The first and last lines of a long report, with a note of how many were left out."""
    lines = text.splitlines()
    if len(lines) <= head + tail + 1:
        return text
    return "\n".join([*lines[:head], f"  ... {len(lines) - head - tail} more lines ...", *lines[-tail:]])


def main() -> None:
    model = transformer_block(batch=1, seq=64, hidden=256, heads=4)  # one BERT layer, 40 nodes
    print(f"Model: {model.graph.name}, {len(model.graph.node)} nodes; devices in priority order: {DEVICES}")

    plans = {}
    for placement in ("priority", "cost"):
        plans[placement] = hal.InferenceSession(model, devices=DEVICES, placement=placement).plan
        print(f"\nplacement={placement!r}")
        summary(plans[placement])

    # explain() gives the reason for every node not on the first listed device
    print("\nplan.explain() of the cost plan (shortened):\n")
    print(shortened(plans["cost"].explain()))


if __name__ == "__main__":
    main()
