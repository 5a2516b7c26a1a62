"""Trace events -> Chrome/Perfetto JSON (open in chrome://tracing or ui.perfetto.dev).

    with hal.profiler.profile() as prof:
        sess.run(None, feeds)
    prof.save("trace.json")

Every stream op (copies, partitions, host functions) is recorded with both clocks: each device
gets a track group on its own clock (simulated time on a simulated chip) and one on wall time,
with a track per stream; host-side work of a session (CPU partitions, emulation) is on a "host"
track. A partition's nodes are slices nested inside its slice: on a simulated chip's clock each
node's roofline time (TracePart), and on the wall clock, where the host runs the partition, each
node's own run. Recording costs nothing when no profiler is active.
"""
from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

__all__ = ["TraceEvent", "TracePart", "OpenSpan", "Profiler", "profile", "active"]


@dataclass(frozen=True)
class TraceEvent:
    name: str
    category: str
    """"copy", "compute", "sync" or "host"."""
    device: str
    track: str
    """The stream ("stream 3") or "host"."""
    wall_start: float
    wall_end: float
    device_start: float | None = None
    """Seconds on the device's clock; None where only wall time exists."""
    device_end: float | None = None
    simulated: bool = False
    args: dict[str, Any] = field(default_factory=dict)
    wall_clock: bool = True
    """False: the event exists on the device's clock only (a node's share of a simulated
    partition); the wall-clock track leaves it out, and wall_start/wall_end are its op's."""


@dataclass(frozen=True)
class TracePart:
    """A piece of one stream op on the device's clock, such as a node of a simulated partition:
    an op's parts are laid out back to back from its start, `seconds` each."""

    name: str
    seconds: float
    args: dict[str, Any] = field(default_factory=dict)


class OpenSpan(NamedTuple):
    """A span() still open on the calling thread: work inside it nests its slices there."""

    device: str
    track: str
    category: str


class Profiler:
    def __init__(self) -> None:
        self.events: list[TraceEvent] = []
        self._lock = threading.Lock()
        self._open = threading.local()
        self.started = time.perf_counter()

    def record(self, event: TraceEvent) -> None:
        with self._lock:
            self.events.append(event)

    def record_parts(self, op: TraceEvent, parts: Sequence[TracePart]) -> None:
        """Records `parts` back to back inside `op`'s interval on the device's clock (the last
        ends where op ends, whatever the rounding of the sum), on op's track, device clock only."""
        if op.device_start is None or op.device_end is None:
            return
        start = op.device_start
        for index, part in enumerate(parts):
            end = op.device_end if index == len(parts) - 1 else min(start + part.seconds, op.device_end)
            self.record(TraceEvent(part.name, op.category, op.device, op.track, op.wall_start, op.wall_end,
                                   device_start=start, device_end=end, simulated=op.simulated,
                                   args=part.args, wall_clock=False))
            start = end

    @contextlib.contextmanager
    def span(self, name: str, device: str, category: str = "host", **args: Any) -> Iterator[None]:
        """Records the block as a wall-clock slice on `device`'s "host" track; slices recorded
        inside it on this thread (a host partition's nodes) nest under it (see open_span)."""
        stack = self._open_spans()
        stack.append(OpenSpan(device, "host", category))
        start = time.perf_counter()
        try:
            yield
        finally:
            end = time.perf_counter()
            stack.pop()
            self.record(TraceEvent(name, category, device, "host", start, end, args=args))

    def open_span(self) -> OpenSpan | None:
        """The innermost span() open on the calling thread, if any."""
        stack = self._open_spans()
        return stack[-1] if stack else None

    def _open_spans(self) -> list[OpenSpan]:
        stack = getattr(self._open, "stack", None)
        if stack is None:
            stack = self._open.stack = []
        return stack

    def chrome_trace(self) -> dict[str, Any]:
        """The trace as Chrome's trace-event JSON object."""
        pids: dict[tuple[str, str], int] = {}
        tids: dict[tuple[int, str], int] = {}
        out: list[dict[str, Any]] = []

        def ids(device: str, clock: str, track: str) -> tuple[int, int]:
            key = (device, clock)
            if key not in pids:
                pids[key] = len(pids) + 1
                out.append({"ph": "M", "name": "process_name", "pid": pids[key], "tid": 0,
                            "args": {"name": f"{device} ({clock} clock)"}})
                out.append({"ph": "M", "name": "process_sort_index", "pid": pids[key], "tid": 0, "args": {"sort_index": pids[key]}})
            pid = pids[key]
            if (pid, track) not in tids:
                tids[(pid, track)] = len(tids) + 1
                out.append({"ph": "M", "name": "thread_name", "pid": pid, "tid": tids[(pid, track)], "args": {"name": track}})
            return pid, tids[(pid, track)]

        with self._lock:
            events = list(self.events)
        slices: list[dict[str, Any]] = []
        for e in events:
            args = dict(e.args)
            if e.wall_clock:
                args["wall_ms"] = round((e.wall_end - e.wall_start) * 1e3, 6)
            if e.device_start is not None and e.device_end is not None:
                args["device_ms"] = round((e.device_end - e.device_start) * 1e3, 6)
            if e.wall_clock:
                pid, tid = ids(e.device, "wall", e.track)
                slices.append({"name": e.name, "cat": e.category, "ph": "X", "pid": pid, "tid": tid,
                               "ts": (e.wall_start - self.started) * 1e6, "dur": max((e.wall_end - e.wall_start) * 1e6, 0.001), "args": args})
            if e.simulated and e.device_start is not None and e.device_end is not None:
                pid, tid = ids(e.device, "simulated", e.track)
                slices.append({"name": e.name, "cat": e.category, "ph": "X", "pid": pid, "tid": tid,
                               "ts": e.device_start * 1e6, "dur": max((e.device_end - e.device_start) * 1e6, 0.001), "args": args})
        # Viewers nest complete events on a track by time; where a parent and its first child start
        # together, the parent must come first (a span is recorded after the nodes inside it).
        slices.sort(key=lambda x: (x["ts"], -x["dur"]))
        return {"traceEvents": out + slices, "displayTimeUnit": "ms", "otherData": {"producer": "hal"}}

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.chrome_trace()))
        return path


_active: Profiler | None = None
_active_lock = threading.Lock()


def active() -> Profiler | None:
    """The profiler recording now, if any."""
    return _active


@contextlib.contextmanager
def profile() -> Iterator[Profiler]:
    """Records every stream op and session step until the block ends (one profiler at a time)."""
    global _active
    with _active_lock:
        if _active is not None:
            from .errors import InvalidArgumentError

            raise InvalidArgumentError("a profiler is already recording; nest no profile() blocks")
        _active = prof = Profiler()
    try:
        yield prof
    finally:
        # drain the streams so that work queued inside the block is recorded too
        from . import registry

        for d in registry.devices():
            if d._driver is not None:
                try:
                    d.synchronize()
                except Exception:  # errors belong to the caller's own synchronize, not here
                    pass
        with _active_lock:
            _active = None
