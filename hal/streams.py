"""The in-order executor behind a stream: one worker thread per stream, device clock, async errors.

Work submitted to a stream runs in submission order on the stream's own thread, so it is really
asynchronous to the caller. A failure is held and raised by the next synchronize (of the stream or
of an event after it), as CUDA and AscendCL report async errors; work queued behind a failure is
skipped, because it may depend on the failed result.

Each stream has a device clock. On a real device it is wall time. On a simulated chip every op
carries its modelled duration and the clock is the sum of durations along the stream (plus waits on
other streams' events), so elapsed times are the chip's, not this host's.
"""
from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Sequence
from queue import SimpleQueue

import numpy as np

from . import _C, profiler
from .backend import CopyCost, DeviceDriver, EventDriver, StreamDriver
from .device import DeviceSpec
from .errors import DeviceError, InvalidArgumentError
from .memory import ArenaAllocator, Buffer, MemoryStats

__all__ = ["WorkerEvent", "WorkerStream", "ArenaStream", "ArenaDeviceDriver"]

_STOP = object()
_stream_ids = itertools.count()


class WorkerEvent(EventDriver):
    __slots__ = ("_stream", "_done", "_device_time", "_wall_time", "simulated")

    def __init__(self, stream: _StreamState, device_time: float | None, simulated: bool):
        self._stream = stream
        self._done = threading.Event()
        self._device_time = device_time
        self._wall_time = 0.0
        self.simulated = simulated

    def _complete(self) -> None:
        self._wall_time = time.perf_counter()
        if self._device_time is None:  # wall-clock device: the device time is when it ran
            self._device_time = self._wall_time
        self._done.set()

    def wait_done(self) -> None:
        self._done.wait()

    def synchronize(self) -> None:
        self._done.wait()
        self._stream.raise_pending_error()

    def query(self) -> bool:
        return self._done.is_set()

    def device_time_s(self) -> float:
        self._done.wait()
        return self._device_time  # type: ignore[return-value]

    def wall_time_s(self) -> float:
        self._done.wait()
        return self._wall_time


class _StreamState:
    """What the worker thread shares with the stream; the thread holds no reference to the
    WorkerStream itself, so dropping the stream stops its thread."""

    def __init__(self, label: str, before_op: Callable[[str], None] | None):
        self.label = label
        self.before_op = before_op
        self.queue: SimpleQueue = SimpleQueue()
        self.lock = threading.Lock()
        self.error: tuple[str, BaseException] | None = None
        self.skipped = 0
        self.submitted = 0
        self.completed = itertools.count(1)
        self.completed_count = 0

    def run(self) -> None:
        queue = self.queue
        while True:
            op = queue.get()
            if op is _STOP:
                return
            name, fn, always_run = op
            if self.error is not None and not always_run:
                with self.lock:  # raise_pending_error takes the count from another thread
                    self.skipped += 1
            else:
                try:
                    if self.before_op is not None and not always_run:
                        self.before_op(name)
                    fn()
                except BaseException as exc:  # held for the next synchronize
                    with self.lock:
                        if self.error is None:
                            self.error = (name, exc)
                        else:
                            self.skipped += 1
            # The op's closure holds its buffers: drop it now, not when the next op arrives, so
            # that memory a caller freed is back in memory_stats() once the stream is idle.
            del op, fn
            self.completed_count = next(self.completed)

    def raise_pending_error(self) -> None:
        with self.lock:
            pending, self.error = self.error, None
            skipped, self.skipped = self.skipped, 0
        if pending is None:
            return
        name, exc = pending
        later = f"; {skipped} later operation(s) on the stream were skipped" if skipped else ""
        message = (
            f"{self.label}: asynchronous '{name}' failed: {exc}{later}. "
            "The stream is usable again; re-run the work that failed."
        )
        error_type = type(exc) if isinstance(exc, DeviceError) else DeviceError
        raise error_type(message) from exc


class WorkerStream(StreamDriver):
    """A stream whose work runs in order on its own thread.

    simulated=True: the device clock advances by each op's modelled seconds; otherwise it is wall time.
    before_op is called on the worker before each op (simulated chips inject faults there).
    """

    def __init__(self, label: str, *, simulated: bool, before_op: Callable[[str], None] | None = None):
        self.label = label
        self.simulated = simulated
        self._state = _StreamState(label, before_op)
        self._thread: threading.Thread | None = None
        self._clock = 0.0  # simulated seconds at the tail of the stream
        self.stream_id = next(_stream_ids)

    def submit(self, name: str, fn: Callable[[], None], device_seconds: float = 0.0, category: str = "compute",
               parts: Sequence[profiler.TracePart] = ()) -> None:
        """Queues fn; on a simulated chip it takes device_seconds of device time. parts: what
        those seconds are made of (a partition's nodes, adding up to device_seconds), shown nested
        in the op's slice on the simulated clock by a profiler; ignored when none is active."""
        recorder = profiler.active()
        if recorder is None:
            self._put(name, fn, always_run=False, device_seconds=device_seconds)
            return
        box: list[float] = []

        def traced() -> None:
            start = time.perf_counter()
            try:
                fn()
            finally:
                end_clock = box[0] if box else None
                op = profiler.TraceEvent(
                    name, category, self.label, f"stream {self.stream_id}", start, time.perf_counter(),
                    device_start=(end_clock - device_seconds) if self.simulated and end_clock is not None else None,
                    device_end=end_clock if self.simulated else None,
                    simulated=self.simulated,
                )
                recorder.record(op)
                if parts and self.simulated:
                    recorder.record_parts(op, parts)

        self._put(name, traced, always_run=False, device_seconds=device_seconds, clock_box=box)

    def _put(self, name: str, fn: Callable[[], None], *, always_run: bool, device_seconds: float = 0.0,
             clock_box: list[float] | None = None) -> float:
        state = self._state
        with state.lock:
            self._clock += device_seconds
            state.submitted += 1
            clock = self._clock
        if clock_box is not None:  # before the op is queued: the worker may run it at once
            clock_box.append(clock)
        if self._thread is None:
            self._start()
        state.queue.put((name, fn, always_run))
        return clock

    def _start(self) -> None:
        with self._state.lock:
            if self._thread is None:
                thread = threading.Thread(target=self._state.run, name=f"hal-stream-{self.label}", daemon=True)
                thread.start()
                self._thread = thread

    def launch_host_func(self, fn: Callable[[], None]) -> None:
        self.submit(getattr(fn, "__name__", "host_func"), fn)

    def record_event(self) -> WorkerEvent:
        event = WorkerEvent(self._state, None, self.simulated)
        clock = self._put("record_event", event._complete, always_run=True)
        if self.simulated:
            event._device_time = clock
        return event

    def wait_event(self, event: EventDriver) -> None:
        if not isinstance(event, EventDriver):
            raise InvalidArgumentError(f"{self.label}: wait_event takes an event, got {event!r}")
        if self.simulated and isinstance(event, WorkerEvent) and event.simulated:
            # A simulated event's device time is known when it is recorded; the waiting stream's
            # clock cannot be earlier than the event it waits for.
            with self._state.lock:
                self._clock = max(self._clock, event._device_time or 0.0)
        self._put("wait_event", event.wait_done, always_run=True)

    def synchronize(self) -> None:
        if self._thread is not None:
            done = threading.Event()
            self._put("synchronize", done.set, always_run=True)
            done.wait()
        self._state.raise_pending_error()

    def query(self) -> bool:
        state = self._state
        return state.completed_count >= state.submitted

    def __del__(self) -> None:
        state = getattr(self, "_state", None)
        if state is not None and self._thread is not None:
            state.queue.put(_STOP)


class ArenaStream(WorkerStream):
    """A WorkerStream that copies between host arrays and arena-backed device buffers."""

    def __init__(
        self,
        label: str,
        allocator: ArenaAllocator,
        *,
        simulated: bool,
        copy_cost: CopyCost | None = None,
        before_op: Callable[[str], None] | None = None,
    ):
        super().__init__(label, simulated=simulated, before_op=before_op)
        self.allocator = allocator
        self.copy_cost = copy_cost

    def copy_from_host(self, dst: Buffer, dst_offset: int, src: np.ndarray) -> None:
        src = _host_bytes(src, self.label, writable=False)
        self.allocator.check_range(dst, dst_offset, src.nbytes)
        arena, address = self.allocator.arena, dst.address

        def copy() -> None:
            arena.copy_from_host(address, dst_offset, src)
            _ = dst  # the buffer stays alive until the copy ran

        seconds = self.copy_cost.host_to_device(src.nbytes) if self.copy_cost else 0.0
        self.submit("copy_h2d", copy, seconds, "copy")

    def copy_to_host(self, dst: np.ndarray, src: Buffer, src_offset: int) -> None:
        dst = _host_bytes(dst, self.label, writable=True)
        self.allocator.check_range(src, src_offset, dst.nbytes)
        arena, address = self.allocator.arena, src.address

        def copy() -> None:
            arena.copy_to_host(address, src_offset, dst)
            _ = src

        seconds = self.copy_cost.device_to_host(dst.nbytes) if self.copy_cost else 0.0
        self.submit("copy_d2h", copy, seconds, "copy")

    def copy_from_device(self, dst: Buffer, dst_offset: int, src: Buffer, src_offset: int, nbytes: int) -> None:
        if not isinstance(src, Buffer):
            raise InvalidArgumentError(f"{self.label}: cannot copy directly from {src!r}; copy through the host")
        self.allocator.check_range(dst, dst_offset, nbytes)
        src.allocator.check_range(src, src_offset, nbytes)
        dst_arena, dst_address = self.allocator.arena, dst.address
        src_arena, src_address = src.allocator.arena, src.address
        same_device = src.allocator is self.allocator

        def copy() -> None:
            if same_device:
                dst_arena.copy_within(dst_address, dst_offset, src_address, src_offset, nbytes)
            else:
                _C.copy_between(dst_arena, dst_address, dst_offset, src_arena, src_address, src_offset, nbytes)
            _ = (dst, src)

        seconds = self.copy_cost.device_to_device(nbytes, same_device) if self.copy_cost else 0.0
        self.submit("copy_d2d" if same_device else "copy_peer", copy, seconds, "copy")


def _host_bytes(array: np.ndarray, label: str, *, writable: bool) -> np.ndarray:
    """The array as a flat C-contiguous byte view, or a clear error."""
    if not isinstance(array, np.ndarray):
        raise InvalidArgumentError(f"{label}: host side of a copy must be a numpy array, got {type(array).__name__}")
    if not array.flags.c_contiguous:
        raise InvalidArgumentError(f"{label}: host array must be C-contiguous; pass np.ascontiguousarray(a)")
    if writable and not array.flags.writeable:
        raise InvalidArgumentError(f"{label}: destination host array is read-only")
    return array.reshape(-1).view(np.uint8)


class ArenaDeviceDriver(DeviceDriver):
    """A device whose memory is a native arena in host RAM: the CPU, and every simulated chip.

    copy_cost=None means the device clock is wall time (a real device); otherwise the clock is
    simulated from the cost model. before_op runs on the stream thread before each op.
    """

    def __init__(
        self,
        spec: DeviceSpec,
        allocator: ArenaAllocator,
        *,
        copy_cost: CopyCost | None = None,
        before_op: Callable[[str], None] | None = None,
    ):
        self.spec = spec
        self.allocator = allocator
        self.copy_cost = copy_cost
        self.before_op = before_op

    def allocate(self, nbytes: int) -> Buffer:
        return self.allocator.allocate(nbytes)

    def memory_stats(self) -> MemoryStats:
        return self.allocator.stats()

    def empty_cache(self) -> int:
        return self.allocator.empty_cache()

    def create_stream(self) -> ArenaStream:
        return ArenaStream(
            self.spec.device_name,
            self.allocator,
            simulated=self.copy_cost is not None,
            copy_cost=self.copy_cost,
            before_op=self.before_op,
        )

    def host_pointer(self, buffer: Buffer) -> int | None:
        if not self.allocator.host_addressable:
            return None
        self.allocator.check_range(buffer, 0, 0)
        return self.allocator.arena.host_pointer(buffer.address)

    def host_view(self, buffer: Buffer) -> np.ndarray | None:
        if not self.allocator.host_addressable:
            return None
        self.allocator.check_range(buffer, 0, 0)
        return np.frombuffer(self.allocator.arena.host_buffer(buffer.address), dtype=np.uint8)

    def can_copy_from(self, buffer: Buffer) -> bool:
        # Peers of the same backend share the arena copy routines; the copy cost decides
        # whether that models a direct link or a bounce through the host.
        return isinstance(buffer, Buffer) and buffer.device_name.split(":")[0] == self.spec.kind
