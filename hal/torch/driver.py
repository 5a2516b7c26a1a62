"""A hal device driver over any torch device: memory, copies, streams and events through torch's
generic device API, so one code path serves torch's CPU (where CI proves it), CUDA GPUs (the `cuda`
backend) and Ascend NPUs through torch_npu.

Memory comes from torch's allocator: on CUDA its caching allocator, which is stream-ordered (a
block freed on a stream is reused on that stream at once, on others only after record_stream's
events). hal keeps its own accounting of what it allocated (hal.torch.buffers: allocated, requested,
peak, counts) and enforces the device's capacity by it; `cached_bytes` is what empty_cache() would
give back: torch's cached segments that hold no live block.

Streams run their work in order on a worker thread (hal.streams.WorkerStream) that issues it to a
torch stream of the device; host functions and copies into numpy arrays run there in stream order,
and events are the device's own timing events (torch.cuda.Event(enable_timing=True)) mapped onto
the host's perf_counter clock. On torch's CPU device the worker runs the work itself.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from ..backend import DeviceDriver, EventDriver
from ..device import DeviceSpec
from ..dtypes import DType
from ..errors import DeviceError, InvalidArgumentError
from ..memory import AllocationRule, MemoryStats
from ..streams import WorkerStream, _host_bytes
from ._require import require_torch
from .buffers import DeviceAccount, TorchBuffer
from .tensors import torch_view

__all__ = ["TorchDeviceDriver", "TorchStream", "TorchEvent"]


class TorchDeviceDriver(DeviceDriver):
    """One torch device (torch.device("cuda", 0), torch.device("cpu"), torch.device("npu", 0))."""

    def __init__(self, spec: DeviceSpec, torch_device: Any, rule: AllocationRule):
        self.torch = require_torch(f"device {spec.device_name}")
        self.spec = spec
        self.torch_device = self.torch.device(torch_device)
        self.rule = rule
        self.accelerated = self.torch_device.type != "cpu"
        # torch.cuda, torch.npu (torch_npu), ...: the same Stream/Event/memory API per device type
        self.module = self.torch.get_device_module(self.torch_device.type) if self.accelerated else None
        self.account = DeviceAccount(spec.device_name, spec.memory_bytes, rule)
        self._clock = _DeviceClock(self) if self.accelerated else None

    # -- memory --------------------------------------------------------------------------------
    def allocate(self, nbytes: int) -> TorchBuffer:
        occupied = self.account.reserve(nbytes)
        try:
            tensor = self.torch.empty(nbytes, dtype=self.torch.uint8, device=self.torch_device)
        except (self.torch.OutOfMemoryError, RuntimeError, MemoryError) as exc:
            self.account.cancel(nbytes, occupied)
            if isinstance(exc, RuntimeError) and not isinstance(exc, self.torch.OutOfMemoryError) and "alloc" not in str(exc):
                raise DeviceError(f"{self.spec.device_name}: allocation of {nbytes} bytes failed: {exc}") from exc
            raise self.account.out_of_memory(nbytes, f"torch's allocator: {str(exc).splitlines()[0]}") from None
        return TorchBuffer(tensor, nbytes, self.spec.device_name, self.account, occupied)

    def adopt(self, tensor: Any) -> TorchBuffer:
        """A buffer over a tensor torch allocated on this device (a partition's output), accounted
        like an allocation; the tensor must be contiguous."""
        if tensor.numel() == 0:  # may carry zero strides, which a byte view refuses
            flat = self.torch.empty(0, dtype=self.torch.uint8, device=self.torch_device)
        else:
            flat = tensor.reshape(-1)
            if flat.stride(0) != 1:  # a broadcast scalar (stride 0) counts as contiguous in torch
                flat = self.torch.empty_like(flat, memory_format=self.torch.contiguous_format).copy_(flat)
            flat = flat.view(self.torch.uint8)
        nbytes = flat.numel()
        occupied = self.account.adopt(nbytes)
        return TorchBuffer(flat, nbytes, self.spec.device_name, self.account, occupied)

    def wrap(self, tensor: Any) -> TorchBuffer:
        """A buffer sharing a tensor someone else owns (DLPack import): not accounted, never freed by hal."""
        flat = tensor.reshape(-1).view(self.torch.uint8)
        return TorchBuffer(flat, flat.numel(), self.spec.device_name, None)

    def _cached_bytes(self) -> int:
        """Bytes torch's caching allocator holds in segments with no live block (what
        empty_cache releases); torch's CPU allocator caches nothing."""
        if not self.accelerated or not hasattr(self.module, "memory_snapshot"):
            return 0
        index = self.torch_device.index or 0
        return sum(
            seg["total_size"] for seg in self.module.memory_snapshot()
            if seg.get("device", index) == index and seg.get("allocated_size", 0) == 0
        )

    def memory_stats(self) -> MemoryStats:
        cached = self._cached_bytes()
        a = self.account
        with a.lock:
            return MemoryStats(
                allocated_bytes=a.allocated,
                reserved_bytes=a.allocated + cached,
                peak_bytes=a.peak,
                capacity_bytes=a.capacity,
                num_allocs=a.num_allocs,
                requested_bytes=a.requested,
                cached_bytes=cached,
                peak_reserved_bytes=max(a.peak, a.allocated + cached),
                active_allocs=a.active,
                num_frees=a.num_frees,
                num_ooms=a.num_ooms,
            )

    def empty_cache(self) -> int:
        if not self.accelerated:
            return 0
        before = self._cached_bytes()
        with self.module.device(self.torch_device):
            self.module.empty_cache()
        return max(before - self._cached_bytes(), 0)

    # -- streams -------------------------------------------------------------------------------
    def create_stream(self) -> TorchStream:
        torch_stream = self.module.Stream(device=self.torch_device) if self.accelerated else None
        return TorchStream(self, torch_stream)

    def host_pointer(self, buffer: Any) -> int | None:
        if self.accelerated or not isinstance(buffer, TorchBuffer):
            return None
        return buffer.view(0, 0).data_ptr() if buffer.nbytes == 0 else buffer.tensor.data_ptr()

    def host_view(self, buffer: Any) -> np.ndarray | None:
        if self.accelerated or not isinstance(buffer, TorchBuffer):
            return None
        return buffer.view(0, buffer.nbytes).numpy()

    def can_copy_from(self, buffer: Any) -> bool:
        # torch copies between any of its devices (GPU peers, host <-> GPU) in one call
        return isinstance(buffer, TorchBuffer)

    # -- DLPack: zero-copy exchange of device memory with torch (and any DLPack consumer) --------
    def dlpack_device(self) -> tuple[int, int] | None:
        if not self.accelerated:
            return None
        code, index = self.torch.empty(0, device=self.torch_device).__dlpack_device__()
        return (int(code), int(index))

    def export_dlpack(self, tensor: Any, stream: Any, max_version: tuple[int, int] | None) -> Any | None:
        if not self.accelerated:
            return None
        tensor.device.default_stream.synchronize()  # the consumer reads at once, on its own stream
        view = torch_view(tensor, self)
        return view.__dlpack__(stream=stream) if max_version is None else view.__dlpack__(stream=stream, max_version=max_version)

    def import_dlpack(self, obj: Any) -> tuple[TorchBuffer, tuple[int, ...], DType]:
        from ..dtypes import dtype as as_dtype

        t = obj if isinstance(obj, self.torch.Tensor) else self.torch.from_dlpack(obj)
        if t.device != self.torch_device:
            t = self.torch.from_dlpack(obj)
        if not t.is_contiguous():
            raise InvalidArgumentError(
                f"hal tensors are dense row-major; this tensor has strides {tuple(t.stride())}. Make it contiguous first (t.contiguous())"
            )
        return self.wrap(t), tuple(t.shape), as_dtype(t.dtype)

    def time_of(self, event: Any) -> float:
        """perf_counter seconds at which a recorded device event completed."""
        assert self._clock is not None  # internal: only accelerated devices record device events
        return self._clock.seconds_at(event)


class _DeviceClock:
    """Maps device timing events onto the host's perf_counter: a reference event recorded and
    completed at open gives the origin, elapsed_time() the rest."""

    def __init__(self, driver: TorchDeviceDriver):
        module = driver.module
        with module.device(driver.torch_device):
            self.reference = module.Event(enable_timing=True)
            self.reference.record(module.current_stream(driver.torch_device))
            self.reference.synchronize()
        self.origin = time.perf_counter()

    def seconds_at(self, event: Any) -> float:
        return self.origin + self.reference.elapsed_time(event) / 1e3


class TorchEvent(EventDriver):
    """A timing event of an accelerated torch device, recorded by a stream's worker."""

    simulated = False

    def __init__(self, stream: TorchStream):
        self._stream = stream
        self._driver = stream.driver
        self._recorded = threading.Event()
        self.event = self._driver.module.Event(enable_timing=True)

    def _record(self) -> None:
        self.event.record(self._stream.torch_stream)
        self._recorded.set()

    def wait_done(self) -> None:
        self._recorded.wait()
        self.event.synchronize()

    def synchronize(self) -> None:
        self.wait_done()
        self._stream.raise_pending_error()

    def query(self) -> bool:
        return self._recorded.is_set() and self.event.query()

    def device_time_s(self) -> float:
        self.wait_done()
        return self._driver.time_of(self.event)

    def wall_time_s(self) -> float:
        # The device's timestamp on the host's clock: the moment the device passed the event.
        return self.device_time_s()


class TorchStream(WorkerStream):
    """An in-order stream of a torch device: a worker thread issuing to a torch stream."""

    def __init__(self, driver: TorchDeviceDriver, torch_stream: Any):
        super().__init__(driver.spec.device_name, simulated=False)
        self.driver = driver
        self.torch_stream = torch_stream

    def _issue(self, name: str, fn: Callable[[], None], category: str = "copy") -> None:
        ts = self.torch_stream
        if ts is None:
            self.submit(name, fn, 0.0, category)
            return
        module = self.driver.module

        def on_stream() -> None:
            with module.stream(ts):
                fn()

        self.submit(name, on_stream, 0.0, category)

    def uses(self, tensor: Any) -> None:
        """Tells torch's caching allocator that `tensor` is used on this stream, so its memory
        is not reused before this stream's work on it completed (stream-ordered frees)."""
        if self.torch_stream is not None:
            tensor.record_stream(self.torch_stream)

    # -- copies --------------------------------------------------------------------------------
    def copy_from_host(self, dst: Any, dst_offset: int, src: np.ndarray) -> None:
        src = _host_bytes(src, self.label, writable=False)
        target = _torch_buffer(dst, self.label).view(dst_offset, src.nbytes)
        if self.torch_stream is None:
            self._issue("copy_h2d", lambda: np.copyto(target.numpy(), src))
            return
        torch = self.driver.torch
        self.uses(target)

        def copy() -> None:
            # through a pinned staging buffer, so the device copy is asynchronous; torch's
            # pinned-memory cache keeps the block until the copy completed
            staging = torch.empty(src.nbytes, dtype=torch.uint8, pin_memory=True)
            np.copyto(staging.numpy(), src)
            target.copy_(staging, non_blocking=True)

        self._issue("copy_h2d", copy)

    def copy_to_host(self, dst: np.ndarray, src: Any, src_offset: int) -> None:
        dst = _host_bytes(dst, self.label, writable=True)
        source = _torch_buffer(src, self.label).view(src_offset, dst.nbytes)
        if self.torch_stream is None:
            self._issue("copy_d2h", lambda: np.copyto(dst, source.numpy()))
            return
        torch = self.driver.torch
        self.uses(source)
        # blocks the worker (not the caller) until the device reached the copy: stream order
        self._issue("copy_d2h", lambda: torch.from_numpy(dst).copy_(source))

    def copy_from_device(self, dst: Any, dst_offset: int, src: Any, src_offset: int, nbytes: int) -> None:
        if not isinstance(src, TorchBuffer):
            raise InvalidArgumentError(f"{self.label}: cannot copy directly from {src!r}; copy through the host")
        target = _torch_buffer(dst, self.label).view(dst_offset, nbytes)
        source = src.view(src_offset, nbytes)
        same = src.device_name == dst.device_name
        if self.torch_stream is not None:
            self.uses(target)
            if source.device == target.device:
                self.uses(source)
        self._issue("copy_d2d" if same else "copy_peer", lambda: target.copy_(source, non_blocking=True))

    # -- host functions, events ----------------------------------------------------------------
    def launch_host_func(self, fn: Callable[[], None]) -> None:
        ts = self.torch_stream
        if ts is None:
            super().launch_host_func(fn)
            return

        def in_order() -> None:  # cudaLaunchHostFunc: after the work before it, before the work after
            ts.synchronize()
            fn()

        self.submit(getattr(fn, "__name__", "host_func"), in_order)

    def record_event(self) -> EventDriver:
        if self.torch_stream is None:
            return super().record_event()
        event = TorchEvent(self)
        self._put("record_event", event._record, always_run=True)
        return event

    def wait_event(self, event: EventDriver) -> None:
        if not isinstance(event, EventDriver):
            raise InvalidArgumentError(f"{self.label}: wait_event takes an event, got {event!r}")
        if self.torch_stream is not None and isinstance(event, TorchEvent) and event._driver.module is self.driver.module:
            ts = self.torch_stream

            def device_wait() -> None:  # the device waits; the worker goes on issuing
                event._recorded.wait()
                ts.wait_event(event.event)

            self._put("wait_event", device_wait, always_run=True)
            return
        self._put("wait_event", event.wait_done, always_run=True)

    def synchronize(self) -> None:
        ts = self.torch_stream
        if ts is None:
            super().synchronize()
            return
        done = threading.Event()
        state = self._state

        def finish() -> None:
            try:
                ts.synchronize()
            except Exception as exc:  # an asynchronous device fault surfaces here
                if state.error is None:
                    state.error = ("device work", exc)
            finally:
                done.set()

        self._put("synchronize", finish, always_run=True)
        done.wait()
        state.raise_pending_error()

    def query(self) -> bool:
        return super().query() and (self.torch_stream is None or self.torch_stream.query())

    def drain(self) -> None:
        """Returns once the worker has issued everything queued so far (on torch's CPU device:
        run it), so the caller may issue to the same torch stream next, in order."""
        if super().query():
            return
        reached = threading.Event()
        self._put("drain", reached.set, always_run=True)
        reached.wait()

    def raise_pending_error(self) -> None:
        self._state.raise_pending_error()


def _torch_buffer(buffer: Any, label: str) -> TorchBuffer:
    if not isinstance(buffer, TorchBuffer):
        raise InvalidArgumentError(f"{label}: expected a buffer of this device, got {buffer!r}")
    return buffer
