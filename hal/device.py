"""What a user holds: Device (one chip), its DeviceSpec, Stream (in-order work queue) and Event."""
from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .dtypes import DType
from .errors import InvalidArgumentError

if TYPE_CHECKING:
    from .backend import Backend, DeviceDriver, EventDriver, StreamDriver
    from .memory import Buffer, MemoryStats

__all__ = ["DeviceSpec", "Device", "Stream", "Event"]


@dataclass(frozen=True)
class DeviceSpec:
    """Static facts about one device. Figures are None (or an empty mapping) where unknown.

    peak_flops maps a dtype name to dense operations per second; bandwidths are bytes/s.
    """

    kind: str
    index: int
    name: str
    vendor: str
    simulated: bool
    memory_bytes: int
    dtypes: tuple[DType, ...]
    host_addressable: bool = False
    model: str = ""
    peak_flops: Mapping[str, float] = field(default_factory=dict)
    mem_bandwidth: float | None = None
    host_link_bandwidth: float | None = None
    launch_overhead_s: float | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def device_name(self) -> str:
        """The name users pass to hal.device(): "ascend:0"."""
        return f"{self.kind}:{self.index}"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (what `hal devices --json` prints)."""
        return {
            "device": self.device_name,
            "name": self.name,
            "kind": self.kind,
            "index": self.index,
            "model": self.model,
            "vendor": self.vendor,
            "simulated": self.simulated,
            "memory_bytes": self.memory_bytes,
            "dtypes": [str(d) for d in self.dtypes],
            "peak_flops": dict(self.peak_flops),
            "mem_bandwidth": self.mem_bandwidth,
            "host_link_bandwidth": self.host_link_bandwidth,
            "launch_overhead_s": self.launch_overhead_s,
            "host_addressable": self.host_addressable,
            **({"details": dict(self.details)} if self.details else {}),
        }


class Device:
    """One device of one backend ("ascend:0"). Get it with hal.device(); instances are shared."""

    def __init__(self, backend: Backend, spec: DeviceSpec):
        self.backend = backend
        self.spec = spec
        self._driver: DeviceDriver | None = None
        self._default_stream: Stream | None = None
        self._streams: weakref.WeakSet[Stream] = weakref.WeakSet()
        # Threads that reach a new device together must open one driver (one memory arena) and one
        # default stream; and a WeakSet cannot be walked while another thread adds to it.
        self._lock = threading.RLock()

    @property
    def name(self) -> str:
        return self.spec.device_name

    @property
    def kind(self) -> str:
        return self.spec.kind

    @property
    def index(self) -> int:
        return self.spec.index

    @property
    def driver(self) -> DeviceDriver:
        """The backend's driver for this device, opened on first use."""
        if self._driver is None:
            with self._lock:
                if self._driver is None:
                    self._driver = self.backend.open_device(self.spec.index)
        return self._driver

    @property
    def default_stream(self) -> Stream:
        if self._default_stream is None:
            with self._lock:
                if self._default_stream is None:
                    stream = Stream(self, self.driver.create_stream())
                    self._streams.add(stream)
                    self._default_stream = stream
        return self._default_stream

    def stream(self) -> Stream:
        """A new stream: work on it runs in order, concurrently with other streams."""
        created = Stream(self, self.driver.create_stream())
        with self._lock:
            self._streams.add(created)
        return created

    def allocate(self, nbytes: int) -> Buffer:
        """Raw device memory of nbytes (uninitialised); freed when the Buffer is dropped."""
        if not isinstance(nbytes, int) or isinstance(nbytes, bool) or nbytes < 0:
            raise InvalidArgumentError(f"{self.name}: nbytes must be an int >= 0, got {nbytes!r}")
        return self.driver.allocate(nbytes)

    def memory_stats(self) -> MemoryStats:
        return self.driver.memory_stats()

    def empty_cache(self) -> int:
        """Returns cached, unused blocks to the host; gives the bytes released."""
        return self.driver.empty_cache()

    @property
    def lost(self) -> bool:
        """Whether the device stopped answering (every operation on it fails with DeviceLostError)
        until reset(). A lost device stays in hal.devices(), marked so, as nvidia-smi keeps showing
        a card that fell off the bus: its index, and every other device's, keep their meaning."""
        return self._driver is not None and self._driver.device_lost()

    @property
    def status(self) -> str:
        """The device's state: "ok", or "lost" (see lost)."""
        return "lost" if self.lost else "ok"

    def reset(self) -> None:
        """Resets the device: a lost one answers again. An error its streams still hold is
        raised by their next synchronize, as it belongs to work from before the reset."""
        if self._driver is not None:
            self._driver.reset()

    def synchronize(self) -> None:
        """Waits for all work on every stream of this device; raises the first async error."""
        errors = []
        with self._lock:
            streams = list(self._streams)
        for stream in streams:
            try:
                stream.synchronize()
            except Exception as exc:  # keep draining the other streams, then report
                errors.append(exc)
        if errors:
            raise errors[0]

    def __repr__(self) -> str:
        return f"<hal.Device {self.name} '{self.spec.name}'{' (lost)' if self.lost else ''}>"

    def __str__(self) -> str:
        return self.name


class Stream:
    """An in-order queue of work on one device. Errors of async work surface at synchronize()."""

    def __init__(self, device: Device, driver: StreamDriver):
        self.device = device
        self.driver = driver

    def record_event(self) -> Event:
        """Marks this point of the stream; the event completes when the work before it has."""
        return Event(self, self.driver.record_event())

    def wait_event(self, event: Event) -> None:
        """Work submitted to this stream after this call starts only once `event` completed."""
        if not isinstance(event, Event):
            raise InvalidArgumentError(f"wait_event takes a hal.Event, got {type(event).__name__}")
        self.driver.wait_event(event.driver)

    def wait_stream(self, other: Stream) -> None:
        """Orders this stream after everything submitted to `other` so far."""
        self.wait_event(other.record_event())

    def launch_host_func(self, fn: Callable[[], None]) -> None:
        """Runs fn on the stream's thread, in order (cudaLaunchHostFunc / aclrtLaunchCallback)."""
        if not callable(fn):
            raise InvalidArgumentError(f"launch_host_func takes a callable, got {fn!r}")
        self.driver.launch_host_func(fn)

    def synchronize(self) -> None:
        self.driver.synchronize()

    def query(self) -> bool:
        """True when all submitted work has finished."""
        return self.driver.query()

    def __repr__(self) -> str:
        return f"<hal.Stream on {self.device.name}>"


class Event:
    """A point in a stream, with the device's timestamp (simulated on simulated chips) and wall time."""

    def __init__(self, stream: Stream, driver: EventDriver):
        self.stream = stream
        self.driver = driver

    @property
    def device(self) -> Device:
        return self.stream.device

    def synchronize(self) -> None:
        """Waits until the work before the event completed; raises the stream's async error."""
        self.driver.synchronize()

    def query(self) -> bool:
        return self.driver.query()

    def elapsed_time(self, end: Event) -> float:
        """Milliseconds from this event to `end` on the device's clock (simulated time on a
        simulated chip, as aclrtEventElapsedTime would report on the real one). Waits for both."""
        self._check_event(end)
        if end.device is not self.device:
            raise InvalidArgumentError(
                f"events are on different devices ({self.device.name}, {end.device.name}); "
                "device clocks are only comparable on one device: use wall_elapsed_time()"
            )
        self.driver.wait_done()
        end.driver.wait_done()
        return (end.driver.device_time_s() - self.driver.device_time_s()) * 1e3

    def wall_elapsed_time(self, end: Event) -> float:
        """Milliseconds of host wall time between the moments the two events completed."""
        self._check_event(end)
        self.driver.wait_done()
        end.driver.wait_done()
        return (end.driver.wall_time_s() - self.driver.wall_time_s()) * 1e3

    @staticmethod
    def _check_event(end: object) -> None:
        if not isinstance(end, Event):
            raise InvalidArgumentError(f"elapsed time is measured to a hal.Event, got {type(end).__name__}")

    def __repr__(self) -> str:
        return f"<hal.Event on {self.device.name} {'done' if self.query() else 'pending'}>"
