"""The time of each collective per algorithm (ring, tree, full mesh) over a link of bandwidth B
bytes/s per direction and latency L seconds per step, and nccl-tests' algbw / busbw.

The models are the textbook ones NCCL and HCCL are built on (Thakur, Rabenseifner and Gropp,
"Optimization of Collective Communication Operations in MPICH", 2005; NCCL's
doc/PERFORMANCE.md in nccl-tests for the bus bandwidth). S is the bytes one rank contributes,
n the ranks:

  ring all_reduce       2(n-1) steps of S/n   (reduce-scatter, then all-gather, around the ring)
  full-mesh all_reduce  2 steps of S/n        (every card sends a slice to each peer at once over
                                               its own link; HCCL's mesh algorithm on 8 x 910B)
  tree all_reduce       2 ceil(log2 n) steps of S (reduce up a binary tree, broadcast down): fewer
                                               steps, so it wins at small sizes on a ring
  all_gather / reduce_scatter: the ring's (n-1) steps of the piece, or one step on a full mesh
  broadcast             pipelined ring: (n-1) L + S/B; full mesh: L + S/B (root to all at once)
  send / recv           L + S/B

The reduction's own arithmetic runs at memory speed and is left out, as in the busbw formula.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["COLLECTIVES", "BUS_FACTOR", "Timing", "collective_time", "algbw", "busbw", "bus_factor", "link_busbw"]

COLLECTIVES = ("all_reduce", "all_gather", "reduce_scatter", "broadcast", "send_recv")

BUS_FACTOR = {
    "all_reduce": lambda n: 2 * (n - 1) / n,
    "all_gather": lambda n: (n - 1) / n,
    "reduce_scatter": lambda n: (n - 1) / n,
    "broadcast": lambda n: 1.0,
    "send_recv": lambda n: 1.0,
}
"""nccl-tests' busbw = algbw x factor(n): what each link carries, comparable across n."""


@dataclass(frozen=True)
class Timing:
    """A collective's modelled seconds and the algorithm that gives them."""

    seconds: float
    algorithm: str


def collective_time(collective: str, nbytes: int, ranks: int, topology: str, bandwidth: float, latency: float) -> Timing:
    """Seconds for `collective` of `nbytes` per rank (the input of one rank; for all_gather its
    piece) on `ranks` devices linked as `topology` ("full_mesh" or "ring"). On a ring the faster
    of ring and tree is taken, as NCCL's tuner does."""
    if collective not in BUS_FACTOR:
        raise ValueError(f"unknown collective {collective!r}")
    n, S, B, L = ranks, float(nbytes), bandwidth, latency
    if n <= 1:
        return Timing(0.0, "none")
    if collective == "send_recv":
        return Timing(L + S / B, "direct")
    if topology == "full_mesh":
        if collective == "all_reduce":
            return Timing(2 * (L + S / n / B), "full_mesh")
        if collective == "all_gather":
            return Timing(L + S / B, "full_mesh")
        if collective == "reduce_scatter":
            return Timing(L + S / n / B, "full_mesh")
        return Timing(L + S / B, "full_mesh")
    if topology != "ring":
        raise ValueError(f"unknown topology {topology!r}")
    if collective == "all_reduce":
        ring = 2 * (n - 1) * (L + S / n / B)
        tree = 2 * math.ceil(math.log2(n)) * (L + S / B)
        return Timing(ring, "ring") if ring <= tree else Timing(tree, "tree")
    if collective == "all_gather":
        return Timing((n - 1) * (L + S / B), "ring")
    if collective == "reduce_scatter":
        return Timing((n - 1) * (L + S / n / B), "ring")
    return Timing((n - 1) * L + S / B, "ring")


def bus_factor(collective: str, ranks: int) -> float:
    return BUS_FACTOR[collective](ranks)


def algbw(nbytes: float, seconds: float) -> float:
    """nccl-tests' algorithm bandwidth: bytes / seconds, with nccl-tests' size (all_reduce and
    broadcast: the buffer; all_gather: the gathered output; reduce_scatter: the input)."""
    return nbytes / seconds if seconds > 0 else math.inf


def busbw(collective: str, nbytes: float, seconds: float, ranks: int) -> float:
    """nccl-tests' bus bandwidth: algbw x the collective's factor for `ranks`."""
    return algbw(nbytes, seconds) * bus_factor(collective, ranks)


def link_busbw(collective: str, topology: str, bandwidth: float, ranks: int) -> float:
    """The busbw the formula gives for large messages, latency aside: one link's bandwidth on a
    ring; on a full mesh (n-1) links' for all_reduce, all_gather and reduce_scatter (every card
    drives its n-1 links at once), one link's for broadcast and send/recv."""
    if topology == "full_mesh" and collective in ("all_reduce", "all_gather", "reduce_scatter"):
        return bandwidth * (ranks - 1)
    return bandwidth
