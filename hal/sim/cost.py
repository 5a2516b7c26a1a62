"""Roofline cost model of a simulated chip: how long the chip would take, in seconds.

Copies: a host link transfer costs the link's latency plus bytes over its bandwidth; a copy inside
device memory reads and writes every byte at the memory bandwidth, after a kernel launch; a copy
between two cards uses their peer link where the chip has one, and bounces through the host where
it has none. Contention between concurrent streams is not modelled.
"""
from __future__ import annotations

from .spec import ChipSpec

__all__ = ["ChipCost"]


class ChipCost:
    """The CopyCost (hal.backend) of one chip model."""

    def __init__(self, chip: ChipSpec):
        self.chip = chip
        self._link_latency = chip.host_link_latency.value
        self._link_bandwidth = chip.host_link_bandwidth.value
        self._memory_bandwidth = chip.memory_bandwidth.value
        self._launch = chip.launch_overhead.value
        self._peer_bandwidth = chip.peer_link_bandwidth.value if chip.peer_link_bandwidth else None

    def host_to_device(self, nbytes: int) -> float:
        return self._link_latency + nbytes / self._link_bandwidth

    def device_to_host(self, nbytes: int) -> float:
        return self._link_latency + nbytes / self._link_bandwidth

    def device_to_device(self, nbytes: int, same_device: bool) -> float:
        if same_device:
            return self._launch + 2 * nbytes / self._memory_bandwidth
        if self._peer_bandwidth is not None:
            return self._link_latency + nbytes / self._peer_bandwidth
        return self.device_to_host(nbytes) + self.host_to_device(nbytes)
