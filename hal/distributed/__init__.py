"""Collectives over a group of devices, in NCCL's / HCCL's shape (issue #17).

    comm = hal.distributed.Communicator(["ascend:0", "ascend:1", "ascend:2", "ascend:3"])
    comm.all_reduce(tensors)           # one DeviceTensor per rank; queued on each rank's stream
    comm.rank(0).all_reduce(tensor)    # the same, written one thread per rank

Simulated chips communicate over the peer link their spec describes (hal.sim.collectives), with the
time of the algorithm on each card's clock; other groups go through the host. Real chips in
separate processes use torch.distributed (NCCL on GPUs, HCCL through torch_npu):
init_process_group() gives a rank with the same calls.
"""
from __future__ import annotations

from typing import Any

from .algorithms import algbw, bus_factor, busbw, collective_time, link_busbw
from .communicator import REDUCE_OPS, Communicator, Rank
from .tensor_parallel import ColumnParallelLinear, RowParallelLinear, TensorParallelBlock

__all__ = [
    "Communicator", "Rank", "REDUCE_OPS", "init_process_group",
    "collective_time", "algbw", "busbw", "bus_factor", "link_busbw",
    "ColumnParallelLinear", "RowParallelLinear", "TensorParallelBlock",
]


def init_process_group(device: Any, *, rank: int, world_size: int, init_method: str, backend: str | None = None,
                       timeout: float = 60.0) -> Any:
    """This process's rank of a torch.distributed process group over a hal torch device
    ("torch.cuda:0", "cuda:0", "torch.npu:0", "torch.cpu:0"): hal.torch.collectives.ProcessRank,
    with the per-rank calls of Communicator.rank(r)."""
    from ..torch.collectives import ProcessRank

    return ProcessRank(device, rank=rank, world_size=world_size, init_method=init_method, backend=backend, timeout=timeout)
