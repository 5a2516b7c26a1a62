"""The Backend contract: what a chip implements so hal can drive it. Plugins import only this module
(and the public `hal` API); when a backend needs more from the core, the contract grows here.

A backend is found through the entry-point group "hal.backends" (see hal.registry). It lists its
devices as DeviceSpecs and opens a DeviceDriver per device; the driver allocates Buffers and makes
StreamDrivers, whose copies, host functions and events run in order.

Ready-made parts for chips whose memory hal keeps in a host arena (the CPU, simulated chips):
ArenaAllocator + ArenaDeviceDriver + ArenaStream. For chips with a torch device (CUDA, Ascend
through torch_npu): TorchDeviceBackend, TorchDeviceDriver, TorchExecutable (they need torch). A real chip's package implements the same three
contracts over its own runtime; examples/vendor_backend is a complete package to start from.

Contract versions (HAL_BACKEND_API); the registry loads plugins of any version from 1 up:
  1 -- devices, memory (allocate, stats, empty_cache), copies, streams, events, host functions.
  2 -- ONNX graphs: supports(node, device) -> Support, compile(...) -> Executable, optional
       cost(node, device, options). A version-1 backend keeps working; its devices run no nodes.
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
from .graph.capability import CompileOptions, NodeInfo, Support, TensorInfo
from .memory import AllocationRule, ArenaAllocator, Buffer, MemoryStats

if TYPE_CHECKING:
    import onnx

    from .device import Device, Stream
    from .tensor import DeviceTensor

HAL_BACKEND_API = 2
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
    "ArenaDeviceDriver",
    "HostProgram",
    "HostValue",
    "as_value",
    "host_supports",
    "TorchDeviceBackend",
    "TorchDeviceDriver",
    "TorchExecutable",
    "torch_view",
    "ort_provider_supports",
    "ArenaStream",
    "WorkerStream",
    "WorkerEvent",
    # re-exported so a plugin needs this one import
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


# The executor lives in its own module; it needs the contracts above, hence the late import.
from .streams import ArenaStream, WorkerEvent, WorkerStream  # noqa: E402


def __getattr__(name: str):
    # Host execution needs onnx; it is loaded when a backend first asks, not at `import hal`.
    if name in ("HostProgram", "host_supports", "ort_provider_supports"):
        from .graph import host

        return getattr(host, name)
    if name in ("HostValue", "as_value"):
        from .graph import values

        return getattr(values, name)
    # Ready-made parts for chips driven through a torch device (CUDA, Ascend via torch_npu); they
    # need torch, which is optional, so they load only when a backend asks.
    if name == "TorchDeviceBackend":
        from .torch.backend import TorchDeviceBackend

        return TorchDeviceBackend
    if name == "TorchDeviceDriver":
        from .torch.driver import TorchDeviceDriver

        return TorchDeviceDriver
    if name in ("TorchExecutable", "torch_view"):
        from .torch import executor

        return getattr(executor, name)
    raise AttributeError(f"module 'hal.backend' has no attribute {name!r}")
