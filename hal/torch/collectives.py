"""Collectives between real chips through torch.distributed: one process per rank, each holding a
hal device of a torch device type, the data moved by the vendor's collective library.

    rank = hal.distributed.init_process_group("cuda:0", rank=r, world_size=n, init_method="tcp://10.0.0.1:29500")
    rank.all_reduce(tensor)          # the same per-rank calls as hal.distributed.Communicator.rank(r)

The process group's backend follows the device type: "nccl" on CUDA GPUs (hal's `cuda` and
`torch.cuda` devices), "gloo" on torch's CPU device, and "hccl" on Ascend NPUs: installing torch_npu
registers both the `npu` device type (hal's `torch.npu` devices) and the "hccl" process-group backend,
so `init_process_group("torch.npu:0", ...)` reaches HCCL over HCCS with no change here (torch_npu's
docs: torch.distributed.init_process_group(backend="hccl")). Pass backend= for another vendor's
library (torch_mlu's "cncl", for instance).

Calls block the host until the collective completed on the device: hal's stream is synchronized
first (the tensor's producers finished), then torch.distributed's synchronous call runs. Before
each collective the ranks exchange the call's shape, dtype and kind (one small all_gather), so a
mismatch is a hal.InvalidArgumentError on every rank, not a hang or a crash in the library.
"""
from __future__ import annotations

import datetime
from typing import Any

import numpy as np

from ..device import Device, Stream
from ..dtypes import DType
from ..errors import DeviceError, HalError, InvalidArgumentError, TimeoutError
from ..registry import device as get_device
from ..tensor import DeviceTensor, empty
from ._require import require_torch
from .driver import TorchDeviceDriver
from .tensors import torch_view

__all__ = ["ProcessRank", "PROCESS_GROUP_BACKENDS"]

PROCESS_GROUP_BACKENDS = {"cuda": "nccl", "npu": "hccl", "cpu": "gloo"}
"""torch device type -> the torch.distributed backend of its vendor's collective library."""

_KINDS = ("all_reduce", "all_gather", "reduce_scatter", "broadcast", "send", "recv", "barrier")
_OPS = ("sum", "max", "min", "avg")
_JOIN_S = 120.0
_MAX_DIMS = 8  # the shapes the metadata exchange carries; more dims is refused with a clear error


class ProcessRank:
    """This process's rank of a torch.distributed process group, with hal's per-rank calls
    (all_reduce, all_gather, reduce_scatter, broadcast, send, recv, barrier) on DeviceTensors."""

    def __init__(self, device: str | Device, *, rank: int, world_size: int, init_method: str, backend: str | None = None,
                 timeout: float = 60.0):
        self._torch = require_torch("hal.distributed.init_process_group")
        import torch.distributed as dist

        self._dist = dist
        self.device = get_device(device)
        driver = self.device.driver
        if not isinstance(driver, TorchDeviceDriver):
            raise InvalidArgumentError(
                f"{self.device.name} is not a torch device; torch.distributed needs one (cuda:0, torch.npu:0, torch.cpu:0). "
                "Simulated chips communicate through hal.distributed.Communicator in one process"
            )
        if not isinstance(world_size, int) or world_size < 1 or not isinstance(rank, int) or not 0 <= rank < world_size:
            raise InvalidArgumentError(f"rank must be an int in 0..world_size-1 and world_size >= 1, got rank={rank!r}, world_size={world_size!r}")
        if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout <= 0:
            raise InvalidArgumentError(f"timeout must be a number of seconds > 0, got {timeout!r}")
        self._driver = driver
        torch_type = driver.torch_device.type
        self.backend = backend or PROCESS_GROUP_BACKENDS.get(torch_type)
        if self.backend is None:
            raise InvalidArgumentError(f"no known torch.distributed backend for torch device type '{torch_type}'; pass backend= "
                                       "(the name the vendor's torch plugin registers)")
        self.rank, self.size, self.timeout = rank, world_size, float(timeout)
        if dist.is_initialized():
            raise InvalidArgumentError("torch.distributed is already initialised in this process; one ProcessRank per process "
                                       "(call close() on the previous one)")
        if driver.accelerated:
            driver.module.set_device(driver.torch_device)
        try:
            # Joining waits for processes that start at different times: it gets at least _JOIN_S;
            # the collectives get `timeout`, through a group of all ranks made with it.
            dist.init_process_group(self.backend, init_method=init_method, rank=rank, world_size=world_size,
                                    timeout=datetime.timedelta(seconds=max(timeout, _JOIN_S)))
            self._group = dist.new_group(list(range(world_size)), timeout=datetime.timedelta(seconds=timeout))
        except Exception as exc:
            raise self._error("init_process_group", exc) from exc

    def __repr__(self) -> str:
        return f"<hal.torch.collectives.ProcessRank {self.rank} of {self.size} on {self.device.name} ({self.backend})>"

    def close(self) -> None:
        """Leaves the process group."""
        if self._dist.is_initialized():
            self._dist.destroy_process_group()

    # -- collectives ---------------------------------------------------------------------------------
    def all_reduce(self, tensor: DeviceTensor, op: str = "sum", stream: Stream | None = None) -> DeviceTensor:
        view = self._begin("all_reduce", tensor, stream, op=op)
        self._all_reduce(view, op)
        return tensor

    def all_gather(self, tensor: DeviceTensor, axis: int = 0, stream: Stream | None = None) -> DeviceTensor:
        view = self._begin("all_gather", tensor, stream, axis=axis)
        axis = _axis(axis, tensor.shape)
        shape = list(tensor.shape)
        shape[axis] *= self.size
        out = empty(tuple(shape), tensor.dtype, device=self.device)
        pieces = [self._torch.empty_like(view) for _ in range(self.size)]
        self._call("all_gather", lambda: self._dist.all_gather(pieces, view.contiguous(), group=self._group))
        torch_view(out, self._driver).copy_(self._torch.cat(pieces, dim=axis))
        return out

    def reduce_scatter(self, tensor: DeviceTensor, op: str = "sum", axis: int = 0, stream: Stream | None = None) -> DeviceTensor:
        view = self._begin("reduce_scatter", tensor, stream, op=op, axis=axis)
        axis = _axis(axis, tensor.shape)
        if tensor.shape[axis] % self.size:
            raise InvalidArgumentError(f"reduce_scatter: axis {axis} has length {tensor.shape[axis]}, which does not split "
                                       f"into {self.size} equal parts; pad it to a multiple of {self.size}")
        shape = list(tensor.shape)
        shape[axis] //= self.size
        out = empty(tuple(shape), tensor.dtype, device=self.device)
        target = torch_view(out, self._driver)
        if self.backend == "nccl" and op != "avg" and axis == 0:
            self._call("reduce_scatter", lambda: self._dist.reduce_scatter_tensor(target, view.contiguous(), op=self._op(op), group=self._group))
        else:  # gloo has no reduce_scatter: all-reduce a copy and keep this rank's slice
            total = view.clone()
            self._all_reduce(total, op)
            target.copy_(total.chunk(self.size, dim=axis)[self.rank])
        return out

    def broadcast(self, tensor: DeviceTensor, root: int = 0, stream: Stream | None = None) -> DeviceTensor:
        self._check_rank("broadcast root", root)
        view = self._begin("broadcast", tensor, stream, root=root)
        self._call("broadcast", lambda: self._dist.broadcast(view, src=root, group=self._group))
        return tensor

    def send(self, tensor: DeviceTensor, dst: int, stream: Stream | None = None) -> None:
        self._check_rank("send destination", dst)
        view = self._prepare("send", tensor, stream)
        self._call("send", lambda: self._dist.send(view.contiguous(), dst, group=self._group))

    def recv(self, tensor: DeviceTensor, src: int, stream: Stream | None = None) -> DeviceTensor:
        self._check_rank("recv source", src)
        view = self._prepare("recv", tensor, stream)
        self._call("recv", lambda: self._dist.recv(view, src, group=self._group))
        return tensor

    def barrier(self, timeout: float | None = None) -> None:
        """Returns when every rank called barrier; gloo's monitored barrier names a rank that did not."""
        wait = datetime.timedelta(seconds=self.timeout if timeout is None else timeout)
        if self.backend == "gloo":
            self._call("barrier", lambda: self._dist.monitored_barrier(group=self._group, timeout=wait))
        else:
            self._call("barrier", lambda: self._dist.barrier(group=self._group))

    # -- machinery -------------------------------------------------------------------------------------
    def _prepare(self, what: str, tensor: Any, stream: Stream | None) -> Any:
        if not isinstance(tensor, DeviceTensor) or tensor.device is not self.device:
            raise InvalidArgumentError(f"{what} on rank {self.rank}: takes a hal.DeviceTensor on {self.device.name}, got {tensor!r}")
        if stream is not None and (not isinstance(stream, Stream) or stream.device is not self.device):
            raise InvalidArgumentError(f"{what} on rank {self.rank}: stream must be None or a hal.Stream of {self.device.name}")
        (stream or self.device.default_stream).synchronize()  # the tensor's producers finished
        return torch_view(tensor, self._driver)

    def _begin(self, kind: str, tensor: DeviceTensor, stream: Stream | None, *, op: str = "sum", axis: int = 0, root: int = 0) -> Any:
        if op not in _OPS:
            raise InvalidArgumentError(f"unknown reduction op {op!r}; choose one of {', '.join(_OPS)}")
        if op == "avg" and np.dtype(tensor.dtype.numpy).kind not in "fc":
            raise InvalidArgumentError(f"avg of {tensor.dtype} would truncate; use op='sum' and divide, or a floating-point dtype")
        view = self._prepare(kind, tensor, stream)
        self._agree(kind, tensor, op, axis, root)
        return view

    def _agree(self, kind: str, tensor: DeviceTensor, op: str, axis: int, root: int) -> None:
        """Every rank learns every rank's call (kind, op, axis, root, dtype, shape) and raises the
        same InvalidArgumentError where they differ."""
        if len(tensor.shape) > _MAX_DIMS:
            raise InvalidArgumentError(f"{kind}: tensors of more than {_MAX_DIMS} dims; reshape it first")
        dtypes = list(DType)
        row = [_KINDS.index(kind), _OPS.index(op), axis, root, dtypes.index(tensor.dtype), len(tensor.shape),
               *tensor.shape, *[0] * (_MAX_DIMS - len(tensor.shape))]
        torch = self._torch
        mine = torch.tensor(row, dtype=torch.int64, device=self._driver.torch_device)
        rows = [torch.empty_like(mine) for _ in range(self.size)]
        self._call(kind, lambda: self._dist.all_gather(rows, mine, group=self._group))
        calls = [r.tolist() for r in rows]
        for rank, call in enumerate(calls):
            if call[:4] != calls[0][:4]:
                raise InvalidArgumentError(
                    f"{kind}: rank {rank} called {_KINDS[call[0]]}(op={_OPS[call[1]]}, axis={call[2]}, root={call[3]}) while rank 0 "
                    f"called {_KINDS[calls[0][0]]}(op={_OPS[calls[0][1]]}, axis={calls[0][2]}, root={calls[0][3]}); every rank must "
                    "call the same collective with the same arguments, in the same order"
                )
            if call[4:] != calls[0][4:]:
                shape, first = tuple(call[6:6 + call[5]]), tuple(calls[0][6:6 + calls[0][5]])
                raise InvalidArgumentError(
                    f"{kind}: rank {rank} has shape {shape} {dtypes[call[4]]} but rank 0 has {first} {dtypes[calls[0][4]]}; "
                    "every rank passes a tensor of the same shape and dtype"
                )

    def _all_reduce(self, view: Any, op: str) -> None:
        if op == "avg" and self.backend != "nccl":  # ReduceOp.AVG is NCCL's only
            self._call("all_reduce", lambda: self._dist.all_reduce(view, op=self._op("sum"), group=self._group))
            view.div_(self.size)
        else:
            self._call("all_reduce", lambda: self._dist.all_reduce(view, op=self._op(op), group=self._group))

    def _op(self, op: str) -> Any:
        ops = self._dist.ReduceOp
        return {"sum": ops.SUM, "max": ops.MAX, "min": ops.MIN, "avg": getattr(ops, "AVG", ops.SUM)}[op]

    def _check_rank(self, what: str, other: Any) -> None:
        if not isinstance(other, int) or isinstance(other, bool) or not 0 <= other < self.size:
            raise InvalidArgumentError(f"{what} must be a rank in 0..{self.size - 1}, got {other!r}")

    def _call(self, what: str, fn: Any) -> Any:
        try:
            return fn()
        except HalError:
            raise
        except Exception as exc:
            raise self._error(what, exc) from exc

    def _error(self, what: str, exc: Exception) -> HalError:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "timed out" in str(exc).lower() or "timeout" in type(exc).__name__.lower():
            others = [r for r in range(self.size) if r != self.rank]
            who = f"rank {others[0]}" if len(others) == 1 else "a rank"
            return TimeoutError(f"{what} on rank {self.rank} ({self.device.name}): {who} did not arrive within {self.timeout:g} s "
                                f"({self.backend}: {text}); every rank must call the same collectives in the same order")
        return DeviceError(f"{what} on rank {self.rank} ({self.device.name}) failed in torch.distributed's {self.backend}: {text}")


def _axis(axis: Any, shape: tuple[int, ...]) -> int:
    if not shape or not isinstance(axis, int) or isinstance(axis, bool) or not -len(shape) <= axis < len(shape):
        raise InvalidArgumentError(f"axis must be an int in {-len(shape)}..{len(shape) - 1} for shape {shape}, got {axis!r}")
    return axis % len(shape)
