"""Collectives between simulated cards of one chip model, over the peer link their spec file
describes ([peer_link]: name, bandwidth, and where known topology and how many cards it joins).

The data really moves: every rank's buffer is read and written in its arena, in stream order; the
reduction itself runs with numpy on the emulated memory, because the chip's vector units would
produce the same bits for these element-wise operations and the host has no faster way to do it.
The time on each card's simulated clock comes from the algorithm (hal.distributed.algorithms) over
the link's figures, not from how long the host took.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..backend import PeerGroup
from ..errors import InvalidArgumentError
from .spec import ChipSpec

if TYPE_CHECKING:
    from ..device import Device, Stream
    from ..tensor import DeviceTensor

__all__ = ["SimulatedPeerGroup", "sim_peer_group"]


class SimulatedPeerGroup(PeerGroup):
    """Simulated cards of one chip model joined by the spec's peer link."""

    simulated = True

    def __init__(self, chip: ChipSpec, devices: Sequence[Device]):
        assert chip.peer_link is not None and chip.peer_link_bandwidth is not None
        self.chip = chip
        self.devices = list(devices)
        self.link = chip.peer_link
        self.topology = chip.peer_link_topology or "ring"
        self.bandwidth = chip.peer_link_bandwidth.value
        # The spec files give no per-hop latency of the peer links; a peer copy already costs the
        # host link's latency in the cost model (hal.sim.cost.ChipCost.device_to_device), and a
        # collective step the same, so the two agree.
        self.latency = chip.host_link_latency.value
        known = "" if chip.peer_link_topology else " (the spec gives no topology: modelled as a ring, the conservative choice)"
        self.source = (
            f"{chip.name} spec {chip.path.name}: peer_link.bandwidth {self.bandwidth / 1e9:g} GB/s per link per direction "
            f"({chip.peer_link_bandwidth.confidence} confidence), per-step latency = host_link.latency "
            f"{self.latency * 1e6:g} us ({chip.host_link_latency.confidence}){known}"
        )

    def memory(self, tensor: DeviceTensor) -> np.ndarray:
        return tensor.device.driver.emulation_view(tensor)  # type: ignore[attr-defined]

    def submit(self, stream: Stream, name: str, fn: Callable[[], None], seconds: float) -> None:
        stream.driver.submit(name, fn, seconds, category="collective")  # type: ignore[attr-defined]


def sim_peer_group(chip: ChipSpec, devices: Sequence[Device]) -> SimulatedPeerGroup | None:
    """The peer group of these cards, or None where the chip has no peer link (Kunlun R200,
    Ascend 310P: PCIe through the host, as BKCL_PCIE_RING and HCCL on PCIe cards do) or the group is
    larger than the cards the link joins (an 8-card HCCS mesh)."""
    if len(set(devices)) != len(devices):
        raise InvalidArgumentError(f"a peer group lists a device twice: {[d.name for d in devices]}")
    if chip.peer_link is None or chip.peer_link_bandwidth is None:
        return None
    if chip.peer_link_cards is not None and len(devices) > chip.peer_link_cards.value:
        return None
    return SimulatedPeerGroup(chip, devices)
