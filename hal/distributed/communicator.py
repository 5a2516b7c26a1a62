"""Communicator: collectives over a group of devices, in NCCL's / HCCL's shape.

Every collective is queued on each rank's stream and returns at once; results are ready in stream
order. The ranks meet on the devices, not on the host: each rank's stream first waits for every
other rank's stream to reach the collective (events, so a simulated clock starts the collective at
the latest rank's time, as a real one would wait for the slowest card), then does its part.

Two routes, chosen once per group (describe() says which and why):
  peer link  -- devices of one backend whose Backend.peer_group() models a link (simulated Ascend
                910B's HCCS full mesh, Kunlun P800's XPU link): the data moves between the devices'
                memories and each clock advances by the algorithm's time over the link's figures
                (hal.distributed.algorithms);
  host       -- everything else (the CPU, chips without a peer link, groups mixing vendors): each
                rank copies to host memory over its own host link, the host combines, each rank
                copies its result back; the copies are the devices' own, timed as any copy.
"""
from __future__ import annotations

import numbers
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..backend import PeerGroup
from ..device import Device, Event, Stream
from ..dtypes import DType
from ..errors import DeviceError, DeviceLostError, HalError, InvalidArgumentError, TimeoutError
from ..registry import device as get_device
from ..streams import WorkerStream
from ..tensor import DeviceTensor, empty
from .algorithms import collective_time, link_busbw

__all__ = ["Communicator", "Rank", "REDUCE_OPS"]

REDUCE_OPS = ("sum", "max", "min", "avg")
_REDUCERS = {"sum": np.add, "avg": np.add, "max": np.maximum, "min": np.minimum}
_POLL_S = 0.005  # how often a timed wait on device events looks again (events have no timed wait)


class Communicator:
    """A group of distinct devices; rank r is devices[r].

    timeout: seconds any blocking call (barrier, a per-rank collective waiting for its peers)
    waits before it raises hal.TimeoutError naming the ranks that did not arrive.
    """

    def __init__(self, devices: Sequence[str | Device], *, timeout: float = 60.0):
        if isinstance(devices, (str, Device)) or not isinstance(devices, Sequence) or not devices:
            raise InvalidArgumentError(f"a Communicator takes a non-empty list of devices, e.g. ['ascend:0', 'ascend:1'], got {devices!r}")
        resolved = [get_device(d) for d in devices]
        seen: dict[str, int] = {}
        for rank, dev in enumerate(resolved):
            if dev.name in seen:
                raise InvalidArgumentError(
                    f"{dev.name} is listed twice in the group (ranks {seen[dev.name]} and {rank}); each rank needs its own device"
                )
            seen[dev.name] = rank
        self.timeout = _check_timeout(timeout)
        self.devices: list[Device] = resolved
        self.size = len(resolved)
        self._peer_group, self._route_reason = _choose_route(resolved)
        self._rendezvous = _Rendezvous(self.size)
        self._ranks = [Rank(self, r) for r in range(self.size)]

    def __repr__(self) -> str:
        return f"<hal.distributed.Communicator [{', '.join(d.name for d in self.devices)}]>"

    # -- what it is --------------------------------------------------------------------------------
    @property
    def route(self) -> str:
        """"peer_link", "host" or "local" (one device: nothing to move)."""
        if self.size == 1:
            return "local"
        return "peer_link" if self._peer_group is not None else "host"

    def describe(self) -> str:
        """How the group communicates: the link, the algorithm, and why."""
        names = ", ".join(d.name for d in self.devices)
        if self.size == 1:
            return f"{names}: one device, nothing to communicate (collectives copy in place)"
        group = self._peer_group
        if group is None:
            return (f"{names}: PCIe through the host -- {self._route_reason}; each rank copies to host memory over "
                    "its own host link, the host combines the data (numpy), and each rank copies its result back")
        topology = "full mesh" if group.topology == "full_mesh" else "ring"
        algorithms = ("all_reduce as reduce-scatter + all-gather, one step each over the mesh's direct links"
                      if group.topology == "full_mesh" else
                      "all_reduce by ring (large messages) or binary tree (small ones, fewer steps), whichever the model "
                      "says is faster; all_gather, reduce_scatter and broadcast by ring")
        busbw = link_busbw("all_reduce", group.topology, group.bandwidth, self.size)
        return (f"{names}: {group.link} {topology} -- {self._route_reason}; {algorithms}; all_reduce bus bandwidth "
                f"{busbw / 1e9:g} GB/s for large messages; figures: {group.source}")

    def estimate_seconds(self, collective: str, nbytes: int) -> float:
        """The modelled device time of `collective` (a name of hal.distributed.algorithms) for
        nbytes per rank on this group, for planning (whether overlapping it with compute pays): the
        peer link's algorithm over its figures, or, through the host, each rank's copy down and back
        up over its host link (the slowest rank's); 0 for one device or devices without host-link
        figures."""
        if self.size < 2:
            return 0.0
        group = self._peer_group
        if group is not None:
            return collective_time(collective, nbytes, self.size, group.topology, group.bandwidth, group.latency).seconds
        links = [d.spec.host_link_bandwidth for d in self.devices]
        return 2 * nbytes / min(links) if all(links) else 0.0  # type: ignore[type-var]

    def rank(self, rank: int) -> Rank:
        """The per-rank handle of `rank`, for code written one thread per rank, as HCCL/NCCL programs are."""
        if not isinstance(rank, numbers.Integral) or isinstance(rank, bool) or not 0 <= rank < self.size:
            raise InvalidArgumentError(f"rank must be an int in 0..{self.size - 1}, got {rank!r}")
        return self._ranks[int(rank)]

    # -- single-controller collectives: one tensor per rank, in rank order -------------------------
    def all_reduce(self, tensors: Sequence[DeviceTensor], op: str = "sum", *, streams: Sequence[Stream] | None = None) -> list[DeviceTensor]:
        """Every rank's tensor becomes the element-wise op (sum, max, min, avg) over all ranks, in place."""
        tensors = self._check_tensors("all_reduce", tensors)
        _check_op(op, tensors[0].dtype)
        reduce = _reducer(op, self.size)
        return self._start("all_reduce", f"all_reduce({op})", tensors, list(tensors), self._streams("all_reduce", streams),
                           lambda arrays: [reduce(arrays)] * len(arrays), tensors[0].nbytes)

    def all_gather(self, tensors: Sequence[DeviceTensor], *, axis: int = 0, streams: Sequence[Stream] | None = None) -> list[DeviceTensor]:
        """New tensors: all ranks' inputs concatenated along `axis`, on every rank."""
        tensors = self._check_tensors("all_gather", tensors)
        axis = _check_axis("all_gather", axis, tensors[0].shape)
        shape = list(tensors[0].shape)
        shape[axis] *= self.size
        outputs = [empty(tuple(shape), t.dtype, device=t.device) for t in tensors]

        def gather(arrays: list[np.ndarray]) -> list[np.ndarray]:
            return [np.concatenate(arrays, axis=axis)] * len(arrays)

        return self._start("all_gather", "all_gather", tensors, outputs, self._streams("all_gather", streams), gather, tensors[0].nbytes)

    def reduce_scatter(self, tensors: Sequence[DeviceTensor], op: str = "sum", *, axis: int = 0,
                       streams: Sequence[Stream] | None = None) -> list[DeviceTensor]:
        """New tensors: rank r gets the r-th of `size` equal slices (along `axis`) of the op over all ranks."""
        tensors = self._check_tensors("reduce_scatter", tensors)
        _check_op(op, tensors[0].dtype)
        axis = _check_axis("reduce_scatter", axis, tensors[0].shape)
        length = tensors[0].shape[axis]
        if length % self.size:
            raise InvalidArgumentError(
                f"reduce_scatter: axis {axis} has length {length}, which does not split into {self.size} equal parts; "
                f"pad it to a multiple of {self.size}"
            )
        shape = list(tensors[0].shape)
        shape[axis] //= self.size
        outputs = [empty(tuple(shape), t.dtype, device=t.device) for t in tensors]
        reduce = _reducer(op, self.size)

        def scatter(arrays: list[np.ndarray]) -> list[np.ndarray]:
            return np.split(reduce(arrays), self.size, axis=axis)

        return self._start("reduce_scatter", f"reduce_scatter({op})", tensors, outputs, self._streams("reduce_scatter", streams),
                           scatter, tensors[0].nbytes)

    def broadcast(self, tensors: Sequence[DeviceTensor], root: int = 0, *, streams: Sequence[Stream] | None = None) -> list[DeviceTensor]:
        """Every rank's tensor becomes a copy of rank `root`'s, in place."""
        tensors = self._check_tensors("broadcast", tensors)
        root = self.rank(root).rank

        def copy_root(arrays: list[np.ndarray]) -> list[np.ndarray]:
            return [arrays[root].copy()] * len(arrays)

        return self._start("broadcast", f"broadcast(root={root})", tensors, list(tensors), self._streams("broadcast", streams),
                           copy_root, tensors[0].nbytes, skip_write={root})

    def barrier(self, timeout: float | None = None) -> None:
        """Waits until every rank's default stream finished the work queued so far (and orders later
        work on each after all of it); raises hal.TimeoutError naming the ranks still busy."""
        limit = self.timeout if timeout is None else _check_timeout(timeout)
        events = _order_after_each_other([d.default_stream for d in self.devices])
        deadline = time.monotonic() + limit
        while not all(e.query() for e in events):
            if time.monotonic() >= deadline:
                busy = [r for r, e in enumerate(events) if not e.query()]
                raise TimeoutError(f"barrier: {_ranks_text(self, busy)} did not reach the barrier within {limit:g} s "
                                   "(their streams are still running earlier work)")
            time.sleep(_POLL_S)
        for event in events:
            event.synchronize()

    # -- the machinery ------------------------------------------------------------------------------
    def _check_tensors(self, what: str, tensors: Any) -> list[DeviceTensor]:
        if isinstance(tensors, DeviceTensor) or not isinstance(tensors, Sequence):
            raise InvalidArgumentError(f"{what}: pass one DeviceTensor per rank, in rank order (a list of {self.size})")
        tensors = list(tensors)
        if len(tensors) != self.size:
            raise InvalidArgumentError(f"{what}: got {len(tensors)} tensors for a group of {self.size} ranks; pass one per rank, in rank order")
        for rank, (t, dev) in enumerate(zip(tensors, self.devices)):
            if not isinstance(t, DeviceTensor):
                raise InvalidArgumentError(f"{what}: rank {rank}'s tensor must be a hal.DeviceTensor, got {type(t).__name__}")
            if t.device is not dev:
                raise InvalidArgumentError(f"{what}: rank {rank}'s tensor is on {t.device.name}, but rank {rank} is {dev.name}; "
                                           f"copy it there with .to('{dev.name}')")
        _check_same_layout(what, [(t.shape, t.dtype) for t in tensors])
        return tensors

    def _streams(self, what: str, streams: Sequence[Stream] | None) -> list[Stream]:
        if streams is None:
            return [d.default_stream for d in self.devices]
        if isinstance(streams, Stream) or not isinstance(streams, Sequence) or len(streams) != self.size:
            raise InvalidArgumentError(f"{what}: streams must be None or a list of {self.size} hal.Streams, one per rank")
        for rank, (s, dev) in enumerate(zip(streams, self.devices)):
            if not isinstance(s, Stream) or s.device is not dev:
                raise InvalidArgumentError(f"{what}: rank {rank}'s stream must be a hal.Stream of {dev.name}, got {s!r}")
        return list(streams)

    def _check_alive(self, what: str) -> None:
        for rank, dev in enumerate(self.devices):
            if dev.driver.device_lost():
                raise DeviceLostError(f"{what}: rank {rank} ({dev.name}) was lost; the collective cannot run on this group. "
                                      "Reset the device (hal.sim.clear_faults for a simulated one) or build a group without it")

    def _start(self, collective: str, name: str, inputs: list[DeviceTensor], outputs: list[DeviceTensor], streams: list[Stream],
               combine: Callable[[list[np.ndarray]], list[np.ndarray]], nbytes: int, skip_write: set[int] = frozenset()) -> list[DeviceTensor]:
        self._check_alive(name)
        exchange = _Exchange(self, name, combine)
        if self._peer_group is not None:
            self._start_on_link(self._peer_group, exchange, collective, inputs, outputs, streams, nbytes, skip_write)
        else:
            self._start_through_host(exchange, inputs, outputs, streams, skip_write)
        return outputs

    def _start_on_link(self, group: PeerGroup, exchange: _Exchange, collective: str, inputs: list[DeviceTensor],
                       outputs: list[DeviceTensor], streams: list[Stream], nbytes: int, skip_write: set[int]) -> None:
        timing = collective_time(collective, nbytes, self.size, group.topology, group.bandwidth, group.latency)
        for rank, stream in enumerate(streams):
            stream.launch_host_func(exchange.arrival(rank))
        _order_after_each_other(streams)

        def read_all() -> list[np.ndarray]:
            return [group.memory(t) for t in inputs]

        for rank, stream in enumerate(streams):
            def part(rank: int = rank) -> None:
                results = exchange.results(rank, read_all)
                if rank not in skip_write:
                    group.memory(outputs[rank])[...] = results[rank]

            group.submit(stream, f"{exchange.name} [{timing.algorithm}]", part, timing.seconds)

    def _start_through_host(self, exchange: _Exchange, inputs: list[DeviceTensor], outputs: list[DeviceTensor],
                            streams: list[Stream], skip_write: set[int]) -> None:
        staged = [np.empty(t.shape, t.dtype.numpy) for t in inputs]
        for rank, (tensor, stream) in enumerate(zip(inputs, streams)):
            tensor.numpy(out=staged[rank], stream=stream, non_blocking=True)
            stream.launch_host_func(exchange.arrival(rank))
        _order_after_each_other(streams)
        # The copies back read host arrays that must exist when they are queued: each rank fills
        # its own on its stream, before its copy.
        results = [np.empty(t.shape, t.dtype.numpy) for t in outputs]

        def combine_into_results(rank: int) -> Callable[[], None]:
            def run() -> None:
                results[rank][...] = exchange.results(rank, lambda: staged)[rank]
            run.__name__ = exchange.name
            return run

        for rank, (tensor, stream) in enumerate(zip(outputs, streams)):
            if isinstance(stream.driver, WorkerStream):  # a profile shows it as the collective it is
                stream.driver.submit(exchange.name, combine_into_results(rank), category="collective")
            else:
                stream.launch_host_func(combine_into_results(rank))
            if rank not in skip_write:
                tensor.copy_(results[rank], stream=stream, non_blocking=True)


class _Exchange:
    """One collective's shared state across its ranks' streams: who arrived, and the combined
    result, worked out once by the first rank to need it."""

    def __init__(self, comm: Communicator, name: str, combine: Callable[[list[np.ndarray]], list[np.ndarray]]):
        self.comm = comm
        self.name = name
        self._combine = combine
        self._arrived = [False] * comm.size
        self._lock = threading.Lock()
        self._results: list[np.ndarray] | None = None

    def arrival(self, rank: int) -> Callable[[], None]:
        def arrived() -> None:
            self._arrived[rank] = True
        arrived.__name__ = f"{self.name} arrival"
        return arrived

    def results(self, rank: int, read: Callable[[], list[np.ndarray]]) -> list[np.ndarray]:
        """Every rank's result; raises on `rank`'s stream when another rank failed before the
        collective (its arrival was skipped: lost, or an earlier error on its stream)."""
        missing = [r for r, ok in enumerate(self._arrived) if not ok]
        if missing:
            devices = self.comm.devices
            lost = [r for r in missing if devices[r].driver.device_lost()]
            if lost:
                raise DeviceLostError(f"{self.name}: {_ranks_text(self.comm, lost)} of the group was lost; "
                                      f"rank {rank} ({devices[rank].name}) did not take part either and its data is unchanged")
            raise DeviceError(f"{self.name}: {_ranks_text(self.comm, missing)} failed before the collective (synchronize "
                              f"its stream to see why); rank {rank} ({devices[rank].name}) did not take part either")
        with self._lock:
            if self._results is None:
                self._results = self._combine(read())
            return self._results


def _order_after_each_other(streams: list[Stream]) -> list[Event]:
    """Each stream's later work waits until every stream reached this point (and a simulated
    clock jumps to the latest of them); returns the events marking that point on each."""
    events = [s.record_event() for s in streams]
    # Through rank 0's stream: 2(n-1) waits instead of n(n-1), the same order and clocks.
    hub = streams[0]
    for event in events[1:]:
        hub.wait_event(event)
    everyone = hub.record_event()
    for stream in streams[1:]:
        stream.wait_event(everyone)
    return events


# -- per-rank form ----------------------------------------------------------------------------------
class Rank:
    """One rank of a Communicator, for code that runs one thread per rank: every rank calls the
    same collectives in the same order; the last to arrive queues the collective on every rank's
    stream, and each call returns with its rank's result (ready in stream order). A rank that does
    not arrive within the timeout makes every waiting rank raise hal.TimeoutError naming it."""

    def __init__(self, comm: Communicator, rank: int):
        self.comm = comm
        self.rank = rank
        self.device = comm.devices[rank]

    def __repr__(self) -> str:
        return f"<hal.distributed.Rank {self.rank} of {self.comm.size} on {self.device.name}>"

    def all_reduce(self, tensor: DeviceTensor, op: str = "sum", stream: Stream | None = None, *, timeout: float | None = None) -> DeviceTensor:
        return self._collective("all_reduce", (op,), tensor, stream, timeout,
                                lambda ts, ss: self.comm.all_reduce(ts, op, streams=ss))

    def all_gather(self, tensor: DeviceTensor, axis: int = 0, stream: Stream | None = None, *, timeout: float | None = None) -> DeviceTensor:
        return self._collective("all_gather", (axis,), tensor, stream, timeout,
                                lambda ts, ss: self.comm.all_gather(ts, axis=axis, streams=ss))

    def reduce_scatter(self, tensor: DeviceTensor, op: str = "sum", axis: int = 0, stream: Stream | None = None, *,
                       timeout: float | None = None) -> DeviceTensor:
        return self._collective("reduce_scatter", (op, axis), tensor, stream, timeout,
                                lambda ts, ss: self.comm.reduce_scatter(ts, op, axis=axis, streams=ss))

    def broadcast(self, tensor: DeviceTensor, root: int = 0, stream: Stream | None = None, *, timeout: float | None = None) -> DeviceTensor:
        return self._collective("broadcast", (root,), tensor, stream, timeout,
                                lambda ts, ss: self.comm.broadcast(ts, root, streams=ss))

    def barrier(self, timeout: float | None = None) -> None:
        """Returns when every rank called barrier (and orders each rank's later device work after
        all ranks' earlier work)."""
        def meet(calls: dict[int, _Call]) -> list[None]:
            _order_after_each_other([d.default_stream for d in self.comm.devices])
            return [None] * self.comm.size

        self.comm._rendezvous.collective(self.rank, _Call("barrier", (), None, None), self._timeout(timeout), meet, self.comm)

    def send(self, tensor: DeviceTensor, dst: int, stream: Stream | None = None, *, timeout: float | None = None) -> None:
        """Sends the tensor to rank `dst`, which calls recv with a tensor of the same shape and
        dtype; returns once the copy is queued (the tensor must not change before it ran: later
        work on `stream` is ordered after it)."""
        dst = self._peer("send", dst)
        call = _Call("send", (), self._own_tensor("send", tensor), self._own_stream("send", stream))
        self.comm._rendezvous.pair(self.rank, dst, self.rank, call, self._timeout(timeout), self._transfer, self.comm)

    def recv(self, tensor: DeviceTensor, src: int, stream: Stream | None = None, *, timeout: float | None = None) -> DeviceTensor:
        """Fills the preallocated `tensor` with what rank `src` sends; the data is there in `stream`'s order."""
        src = self._peer("recv", src)
        call = _Call("recv", (), self._own_tensor("recv", tensor), self._own_stream("recv", stream))
        self.comm._rendezvous.pair(src, self.rank, self.rank, call, self._timeout(timeout), self._transfer, self.comm)
        return tensor

    # -- machinery --
    def _collective(self, kind: str, params: tuple, tensor: DeviceTensor, stream: Stream | None, timeout: float | None,
                    run: Callable[[list[DeviceTensor], list[Stream]], list[DeviceTensor]]) -> DeviceTensor:
        call = _Call(kind, params, self._own_tensor(kind, tensor), self._own_stream(kind, stream))

        def start(calls: dict[int, _Call]) -> list[DeviceTensor]:
            ordered = [calls[r] for r in range(self.comm.size)]
            return run([c.tensor for c in ordered], [c.stream for c in ordered])

        return self.comm._rendezvous.collective(self.rank, call, self._timeout(timeout), start, self.comm)

    def _transfer(self, calls: dict[int, _Call]) -> None:
        """Queues one send/recv pair: the receiver's stream copies once the sender's reached the send."""
        send = next(c for c in calls.values() if c.kind == "send")
        recv = next(c for c in calls.values() if c.kind == "recv")
        src_rank = next(r for r, c in calls.items() if c.kind == "send")
        _check_same_layout("send/recv", [(send.tensor.shape, send.tensor.dtype), (recv.tensor.shape, recv.tensor.dtype)],
                           ranks=[src_rank, next(r for r, c in calls.items() if c.kind == "recv")])
        self.comm._check_alive("send/recv")
        recv.stream.wait_event(send.stream.record_event())
        group = self.comm._peer_group
        if group is not None:
            seconds = collective_time("send_recv", send.tensor.nbytes, 2, group.topology, group.bandwidth, group.latency).seconds
            source, target = send.tensor, recv.tensor

            def copy() -> None:
                group.memory(target)[...] = group.memory(source)

            group.submit(recv.stream, f"recv from rank {src_rank}", copy, seconds)
        else:
            recv.tensor.copy_(send.tensor, stream=recv.stream, non_blocking=True)
        send.stream.wait_event(recv.stream.record_event())  # the sender's later writes wait for the copy

    def _peer(self, what: str, other: int) -> int:
        peer = self.comm.rank(other).rank
        if peer == self.rank:
            raise InvalidArgumentError(f"{what}: rank {self.rank} cannot {what} to itself; name another rank of the {self.comm.size}")
        return peer

    def _own_tensor(self, what: str, tensor: Any) -> DeviceTensor:
        if not isinstance(tensor, DeviceTensor):
            raise InvalidArgumentError(f"{what} on rank {self.rank}: takes a hal.DeviceTensor, got {type(tensor).__name__}")
        if tensor.device is not self.device:
            raise InvalidArgumentError(f"{what} on rank {self.rank}: the tensor is on {tensor.device.name}, but rank {self.rank} "
                                       f"is {self.device.name}; copy it there with .to('{self.device.name}')")
        return tensor

    def _own_stream(self, what: str, stream: Any) -> Stream:
        if stream is None:
            return self.device.default_stream
        if not isinstance(stream, Stream) or stream.device is not self.device:
            raise InvalidArgumentError(f"{what} on rank {self.rank}: stream must be None or a hal.Stream of {self.device.name}, got {stream!r}")
        return stream

    def _timeout(self, timeout: float | None) -> float:
        return self.comm.timeout if timeout is None else _check_timeout(timeout)


@dataclass
class _Call:
    kind: str
    params: tuple
    tensor: DeviceTensor | None
    stream: Stream | None


@dataclass
class _Slot:
    expected: frozenset[int]
    what: str
    calls: dict[int, _Call] = field(default_factory=dict)
    done: bool = False
    result: Any = None
    error: Exception | None = None
    abandoned: str | None = None
    left: set[int] = field(default_factory=set)


class _Rendezvous:
    """Where the ranks' threads meet, one slot per call. A threading.Condition with a deadline is
    all it takes: the ranks are threads of one process, and a distributed store (torch's
    TCPStore, Ray) would add a dependency and a server for what one lock does."""

    def __init__(self, size: int):
        self._cond = threading.Condition()
        self._slots: dict[tuple, _Slot] = {}
        self._collective_count = [0] * size
        self._pair_count: dict[tuple[int, int, int], int] = {}

    def collective(self, rank: int, call: _Call, timeout: float, start: Callable[[dict[int, _Call]], list], comm: Communicator) -> Any:
        with self._cond:
            seq = self._collective_count[rank]
            self._collective_count[rank] += 1
        key = ("collective", seq)
        results = self._meet(key, frozenset(range(comm.size)), f"{call.kind} (collective call #{seq + 1})", rank, call,
                             timeout, lambda calls: start(_check_same_calls(calls, comm)), comm)
        return results[rank]

    def pair(self, src: int, dst: int, rank: int, call: _Call, timeout: float, transfer: Callable[[dict[int, _Call]], None],
             comm: Communicator) -> None:
        with self._cond:
            counter = (src, dst, rank)
            seq = self._pair_count.get(counter, 0)
            self._pair_count[counter] = seq + 1
        self._meet(("pair", src, dst, seq), frozenset((src, dst)), f"send/recv from rank {src} to rank {dst} (#{seq + 1})",
                   rank, call, timeout, transfer, comm)

    def _meet(self, key: tuple, expected: frozenset[int], what: str, rank: int, call: _Call, timeout: float,
              act: Callable[[dict[int, _Call]], Any], comm: Communicator) -> Any:
        deadline = time.monotonic() + timeout
        with self._cond:
            slot = self._slots.setdefault(key, _Slot(expected, what))
            try:
                if slot.abandoned is not None:
                    raise TimeoutError(f"{what}: rank {rank} ({comm.devices[rank].name}) arrived after the other ranks gave up "
                                       f"waiting ({slot.abandoned}); the group is out of step: rebuild it")
                slot.calls[rank] = call
                if len(slot.calls) == len(expected):
                    try:
                        slot.result = act(slot.calls)
                    except Exception as exc:  # every rank raises it, not only the one that queued the work
                        slot.error = exc
                    slot.done = True
                    self._cond.notify_all()
                while not slot.done:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        missing = sorted(expected - set(slot.calls))
                        slot.abandoned = f"rank {rank} waited {timeout:g} s"
                        raise TimeoutError(f"{what}: {_ranks_text(comm, missing)} did not arrive within {timeout:g} s "
                                           f"(rank {rank}, {comm.devices[rank].name}, waited); every rank must call the same "
                                           "collectives in the same order")
                    self._cond.wait(remaining)
                if slot.error is not None:
                    error = slot.error
                    raise (type(error) if isinstance(error, HalError) else HalError)(f"{what}: {error}") from error
                return slot.result
            finally:
                slot.left.add(rank)
                if slot.left >= expected:
                    self._slots.pop(key, None)


def _check_same_calls(calls: dict[int, _Call], comm: Communicator) -> dict[int, _Call]:
    first = calls[0]
    for rank in sorted(calls):
        call = calls[rank]
        if (call.kind, call.params) != (first.kind, first.params):
            raise InvalidArgumentError(
                f"rank {rank} called {call.kind}{call.params} while rank 0 called {first.kind}{first.params}; every rank must "
                "call the same collective with the same arguments, in the same order"
            )
    return calls


# -- checks -----------------------------------------------------------------------------------------
def _check_same_layout(what: str, layouts: list[tuple[tuple[int, ...], DType]], ranks: list[int] | None = None) -> None:
    ranks = ranks if ranks is not None else list(range(len(layouts)))
    shape, dtype = layouts[0]
    for rank, (other_shape, other_dtype) in zip(ranks[1:], layouts[1:]):
        if other_shape != shape or other_dtype is not dtype:
            raise InvalidArgumentError(
                f"{what}: rank {rank} has shape {other_shape} {other_dtype} but rank {ranks[0]} has {shape} {dtype}; every rank "
                "passes a tensor of the same shape and dtype"
            )


def _check_op(op: Any, dtype: DType) -> None:
    if op not in REDUCE_OPS:
        raise InvalidArgumentError(f"unknown reduction op {op!r}; choose one of {', '.join(REDUCE_OPS)}")
    if op == "avg" and np.dtype(dtype.numpy).kind not in "fc":
        raise InvalidArgumentError(f"avg of {dtype} would truncate; use op='sum' and divide, or a floating-point dtype")


def _reducer(op: str, ranks: int) -> Callable[[list[np.ndarray]], np.ndarray]:
    """The element-wise reduction over ranks, in rank order, in the tensors' dtype (as NCCL and
    HCCL accumulate), into a new array (the inputs may be the devices' memory, written next)."""
    ufunc = _REDUCERS[op]

    def reduce(arrays: list[np.ndarray]) -> np.ndarray:
        total = arrays[0].copy()
        for array in arrays[1:]:
            ufunc(total, array, out=total)
        if op == "avg":
            np.divide(total, np.asarray(ranks, dtype=total.dtype), out=total)
        return total

    return reduce


def _check_axis(what: str, axis: Any, shape: tuple[int, ...]) -> int:
    if not shape:
        raise InvalidArgumentError(f"{what}: the tensors are 0-d; give them at least one axis to gather or split along")
    if not isinstance(axis, numbers.Integral) or isinstance(axis, bool) or not -len(shape) <= axis < len(shape):
        raise InvalidArgumentError(f"{what}: axis must be an int in {-len(shape)}..{len(shape) - 1} for shape {shape}, got {axis!r}")
    return int(axis) % len(shape)


def _check_timeout(timeout: Any) -> float:
    if isinstance(timeout, bool) or not isinstance(timeout, numbers.Real) or not timeout > 0:
        raise InvalidArgumentError(f"timeout must be a number of seconds > 0, got {timeout!r}")
    return float(timeout)


def _ranks_text(comm: Communicator, ranks: Sequence[int]) -> str:
    named = ", ".join(f"{r} ({comm.devices[r].name})" for r in ranks)
    return f"rank {named}" if len(ranks) == 1 else f"ranks {named}"


def _choose_route(devices: list[Device]) -> tuple[PeerGroup | None, str]:
    """The peer group of the devices, or None (through the host), and the reason either way."""
    if len(devices) == 1:
        return None, "one device"
    kinds = sorted({d.kind for d in devices})
    if len(kinds) > 1 or len({id(d.backend) for d in devices}) > 1:
        return None, (f"the group mixes {', '.join(kinds)}: chips of different backends share no link, so the data "
                      "goes through host memory")
    backend = devices[0].backend
    group = backend.peer_group(devices)
    spec = devices[0].spec
    if group is not None:
        return group, f"{spec.name} devices, linked by {group.link}"
    if "peer_link" in spec.details and spec.details["peer_link"] is None:
        return None, f"{spec.name} has no peer link (its spec lists none), so cards talk over PCIe through the host"
    cards = spec.details.get("peer_link_cards")
    if cards is not None and len(devices) > cards:
        return None, (f"{spec.name}'s {spec.details.get('peer_link')} joins {cards} cards, and a group of {len(devices)} "
                      "leaves it (the next server's cards are reached through the host here)")
    return None, f"the {backend.name} backend models no link between these {len(devices)} devices"
