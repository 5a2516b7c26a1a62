"""Trace events -> Chrome/Perfetto JSON (open in chrome://tracing or ui.perfetto.dev).

    with hal.profiler.profile() as prof:
        sess.run(None, feeds)
    prof.save("trace.json")

Every stream op (copies, partitions, host functions) is recorded with both clocks: each device
gets a track group on its own clock (simulated time on a simulated chip) and one on wall time,
with a track per stream; host-side work of a session (CPU partitions, emulation) is on a "host"
track. Recording costs nothing when no profiler is active.
"""
from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["TraceEvent", "Profiler", "profile", "active"]


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


class Profiler:
    def __init__(self) -> None:
        self.events: list[TraceEvent] = []
        self._lock = threading.Lock()
        self.started = time.perf_counter()

    def record(self, event: TraceEvent) -> None:
        with self._lock:
            self.events.append(event)

    @contextlib.contextmanager
    def span(self, name: str, device: str, category: str = "host", **args: Any) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.record(TraceEvent(name, category, device, "host", start, time.perf_counter(), args=args))

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
        for e in events:
            args = {**e.args, "wall_ms": round((e.wall_end - e.wall_start) * 1e3, 6)}
            if e.device_start is not None and e.device_end is not None:
                args["device_ms"] = round((e.device_end - e.device_start) * 1e3, 6)
            pid, tid = ids(e.device, "wall", e.track)
            out.append({"name": e.name, "cat": e.category, "ph": "X", "pid": pid, "tid": tid,
                        "ts": (e.wall_start - self.started) * 1e6, "dur": max((e.wall_end - e.wall_start) * 1e6, 0.001), "args": args})
            if e.simulated and e.device_start is not None and e.device_end is not None:
                pid, tid = ids(e.device, "simulated", e.track)
                out.append({"name": e.name, "cat": e.category, "ph": "X", "pid": pid, "tid": tid,
                            "ts": e.device_start * 1e6, "dur": max((e.device_end - e.device_start) * 1e6, 0.001), "args": args})
        return {"traceEvents": out, "displayTimeUnit": "ms", "otherData": {"producer": "hal"}}

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
