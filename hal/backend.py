"""The Backend contract: what a chip implements so hal can drive it, and nothing else: it imports
only the layers below it (devices, memory, dtypes, errors, the node descriptions of
hal.capability), so a change to an integration cannot break it.

A backend is found through the entry-point group "hal.backends" (see hal.registry). It lists its
devices as DeviceSpecs and opens a DeviceDriver per device; the driver allocates Buffers and makes
StreamDrivers, whose copies, host functions and events run in order.

Ready-made parts built on the contract live above it, and a plugin takes them, with the contract,
from one module, hal.backends_kit: for chips whose memory hal keeps in a host arena (the CPU,
simulated chips) ArenaAllocator + ArenaDeviceDriver + ArenaStream (hal.streams); host execution of
ONNX partitions (HostProgram, hal.graph.host); for chips with a torch device (CUDA, Ascend through
torch_npu) TorchDeviceBackend, TorchDeviceDriver, TorchExecutable (hal.torch, needing torch). A
real chip's package implements the same three contracts over its own runtime;
examples/vendor_backend is a complete package to start from.

Contract versions (HAL_BACKEND_API); the registry loads plugins of any version from 1 up:
  1 -- devices, memory (allocate, stats, empty_cache), copies, streams, events, host functions.
  2 -- ONNX graphs: supports(node, device) -> Support, compile(...) -> Executable, optional
       cost(node, device, options). A version-1 backend keeps working; its devices run no nodes.
  3 -- collectives (optional): peer_group(devices) -> PeerGroup | None, how a group of the
       backend's devices reach each other (link, topology, figures) for hal.distributed, and
       DeviceDriver.device_lost() / reset() (a lost device: collectives name it, Device.reset()
       brings it back). A version-1/2 backend keeps working: its groups go through the host.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np

from .device import DeviceSpec
from .dtypes import DType
from .errors import (
    BackendError,
    DeviceError,
    DeviceLostError,
    HalError,
    InvalidArgumentError,
    OutOfMemoryError,
    UnsupportedDTypeError,
    UnsupportedOpError,
)
from .capability import CompileOptions, NodeInfo, Support, TensorInfo
from .memory import AllocationRule, ArenaAllocator, Buffer, MemoryStats

if TYPE_CHECKING:
    import onnx

    from .device import Device, Stream
    from .tensor import DeviceTensor

HAL_BACKEND_API = 3
MIN_BACKEND_API = 1

__all__ = [
    "HAL_BACKEND_API",
    "MIN_BACKEND_API",
    "Backend",
    "Executable",
    "NodeInfo", "TensorInfo", "Support", "CompileOptions",
    "DeviceDriver",
    "StreamDriver",
    "EventDriver",
    "CopyCost",
    "PeerGroup",
    # the types the contract's signatures use, re-exported with it
    "DeviceSpec", "DType", "AllocationRule", "ArenaAllocator", "Buffer", "MemoryStats",
    "HalError", "BackendError", "DeviceError", "DeviceLostError", "InvalidArgumentError",
    "OutOfMemoryError", "UnsupportedDTypeError", "UnsupportedOpError",
]


class Backend(ABC):
    """One kind of chip. Instantiated once, with no arguments, by the registry."""

    name: ClassVar[str]
    """Device kind, the part before ":" in "ascend:0"."""

    api_version: ClassVar[int] = HAL_BACKEND_API
    """The HAL_BACKEND_API this backend was written against."""

    @abstractmethod
    def devices(self) -> Sequence[DeviceSpec]:
        """The devices present, index 0..n-1; empty when none is (no GPU, no driver)."""

    @abstractmethod
    def open_device(self, index: int) -> DeviceDriver:
        """The driver of device `index`; called once per device, on first use."""

    # -- ONNX graphs (API 2) -------------------------------------------------------------------
    def supports(self, node: NodeInfo, device: DeviceSpec) -> Support:
        """Whether `device` runs this node, or why not (a reason a person reads)."""
        return Support.no(f"the {self.name} backend runs no ONNX nodes")

    def compile(self, model: onnx.ModelProto, nodes: Sequence[NodeInfo], device: Device, options: CompileOptions) -> Executable:
        """Compiles one partition: `model` is standalone (its own inputs, outputs, initializers),
        `nodes` its nodes in topological order, every one of which supports() accepted."""
        raise UnsupportedOpError(f"the {self.name} backend runs no ONNX nodes")

    def cost(self, node: NodeInfo, device: DeviceSpec, options: CompileOptions) -> float | None:
        """Estimated seconds for the node on the device (None: unknown), for cost-based
        placement and plan estimates."""
        return None

    def dlpack_device_index(self, device_type: int, device_id: int) -> int | None:
        """Which of this backend's devices is DLPack device (device_type, device_id), for
        hal.from_dlpack of device memory (a CUDA tensor); None: none of them (optional, API 2)."""
        return None

    # -- collectives (optional, API 3) ---------------------------------------------------------
    def peer_group(self, devices: Sequence[Device]) -> PeerGroup | None:
        """How these devices of this backend (two or more, distinct, in rank order) reach each
        other for hal.distributed's collectives; None (the default): they have no link hal can
        model, and collectives go through the host with the devices' own copies."""
        return None


class DeviceDriver(ABC):
    """One device: its memory and its streams."""

    spec: DeviceSpec

    @abstractmethod
    def allocate(self, nbytes: int) -> Buffer:
        """nbytes of uninitialised device memory; raises OutOfMemoryError when it does not fit."""

    @abstractmethod
    def memory_stats(self) -> MemoryStats: ...

    @abstractmethod
    def empty_cache(self) -> int:
        """Returns cached blocks to the system; the bytes released."""

    @abstractmethod
    def create_stream(self) -> StreamDriver: ...

    def host_pointer(self, buffer: Buffer) -> int | None:
        """The host address of a buffer where the host can reach device memory (CPU, unified
        memory), for zero-copy DLPack export; None otherwise."""
        return None

    def host_view(self, buffer: Buffer) -> np.ndarray | None:
        """The buffer's bytes as a flat uint8 numpy array sharing its memory, where the host can
        reach device memory; None otherwise. The array keeps the memory alive."""
        return None

    def can_copy_from(self, buffer: Buffer) -> bool:
        """Whether this device's streams copy directly from `buffer` (a peer of the same backend);
        otherwise hal copies through the host."""
        return False

    # -- DLPack for device memory (optional, API 2): zero-copy exchange with torch, CuPy... --------
    def dlpack_device(self) -> tuple[int, int] | None:
        """This device as a DLPack (device type, id) when its memory can be shared (kDLCUDA, 0)."""
        return None

    def export_dlpack(self, tensor: DeviceTensor, stream: Any, max_version: tuple[int, int] | None) -> Any | None:
        """A DLPack capsule sharing `tensor`'s memory, ordered after hal's work on it; None: not shareable."""
        return None

    def import_dlpack(self, obj: Any) -> tuple[Any, tuple[int, ...], DType]:
        """(buffer sharing obj's memory, shape, dtype) for a DLPack producer on this device."""
        raise BufferError(f"{self.spec.device_name} cannot import DLPack tensors")

    def device_lost(self) -> bool:
        """Whether the device is lost (reset needed), so a collective names the rank that failed
        instead of waiting for it (optional, API 3)."""
        return False

    def reset(self) -> None:
        """Brings a lost device back, as Device.reset() asks (optional, API 3; the default has
        nothing to reset)."""


class StreamDriver(ABC):
    """An in-order queue of device work. Every method returns once the work is queued."""

    @abstractmethod
    def copy_from_host(self, dst: Buffer, dst_offset: int, src: np.ndarray) -> None:
        """src (C-contiguous) -> dst at dst_offset bytes. src must not change until the copy ran."""

    @abstractmethod
    def copy_to_host(self, dst: np.ndarray, src: Buffer, src_offset: int) -> None:
        """dst.nbytes bytes of src from src_offset -> dst (C-contiguous, writable)."""

    @abstractmethod
    def copy_from_device(self, dst: Buffer, dst_offset: int, src: Buffer, src_offset: int, nbytes: int) -> None:
        """Device-to-device copy; src is on this device or on one that can_copy_from() accepts."""

    @abstractmethod
    def launch_host_func(self, fn: Callable[[], None]) -> None:
        """Runs fn in stream order."""

    @abstractmethod
    def record_event(self) -> EventDriver: ...

    @abstractmethod
    def wait_event(self, event: EventDriver) -> None:
        """Later work waits for `event`, which may belong to any stream of any backend."""

    @abstractmethod
    def synchronize(self) -> None:
        """Waits for all queued work; raises the first asynchronous error as a DeviceError."""

    @abstractmethod
    def query(self) -> bool:
        """True when all queued work has finished."""


class EventDriver(ABC):
    """A recorded point in a stream."""

    simulated: bool
    """True when device_time_s() is a simulated clock, False when it is wall time."""

    @abstractmethod
    def wait_done(self) -> None:
        """Blocks until the event completed; never raises."""

    @abstractmethod
    def synchronize(self) -> None:
        """wait_done(), then raises the stream's pending asynchronous error, if any."""

    @abstractmethod
    def query(self) -> bool: ...

    @abstractmethod
    def device_time_s(self) -> float:
        """The device's clock at the event, in seconds (origin is the backend's own)."""

    @abstractmethod
    def wall_time_s(self) -> float:
        """time.perf_counter() when the event completed."""


class Executable(ABC):
    """A compiled partition."""

    input_names: Sequence[str]
    output_names: Sequence[str]

    @abstractmethod
    def run(self, inputs: Mapping[str, DeviceTensor], stream: Stream) -> dict[str, DeviceTensor]:
        """Runs on `stream` of the partition's device; inputs are on that device, and so are the
        outputs returned. May return before the work finished (later reads synchronize)."""


class CopyCost(Protocol):
    """Modelled durations of copies, in seconds, for simulated device clocks."""

    def host_to_device(self, nbytes: int) -> float: ...

    def device_to_host(self, nbytes: int) -> float: ...

    def device_to_device(self, nbytes: int, same_device: bool) -> float: ...


class PeerGroup(ABC):
    """A group of one backend's devices joined by a peer link (optional, API 3), as
    Backend.peer_group returns it: the link's figures, from which hal.distributed models each
    collective's time per algorithm, and access to the devices' memory for the data movement.

    hal moves the data itself (reads every rank's buffer through memory(), reduces, writes the
    results), so this fits chips whose memory hal keeps on the host (simulated chips); a real
    chip's collectives go through its own library (hal.torch.collectives: NCCL, HCCL).
    """

    link: str
    """The link's name: "HCCS", "XPU Link (XLINK)"."""
    topology: str
    """"full_mesh" (a link between every pair, all usable at once) or "ring" (each device reaches
    the next; the ring and tree algorithms apply)."""
    bandwidth: float
    """Bytes/s one link carries in one direction."""
    latency: float
    """Seconds one step over the link costs before its first byte arrives."""
    source: str
    """Where the figures come from (spec file keys and their sources), for describe()."""
    simulated: bool = True
    """True: submit() advances the streams' simulated clocks by the modelled seconds."""

    @abstractmethod
    def memory(self, tensor: DeviceTensor) -> np.ndarray:
        """The tensor's device memory as a writable numpy array of its shape and dtype, without a
        copy; called on a stream's thread, in stream order."""

    @abstractmethod
    def submit(self, stream: Stream, name: str, fn: Callable[[], None], seconds: float) -> None:
        """Queues fn on the stream (in order, like any other op there) as a collective that takes
        `seconds` of device time; a profiler records it in the category "collective"."""
