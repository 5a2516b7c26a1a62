"""Device memory: the allocation rule, the caching arena allocator over hal._C.Arena, Buffer, stats.

Simulated chips and the CPU keep device memory in a native arena (csrc/memory/arena.cpp): a caching
allocator that applies the chip's rounding rule and enforces the chip's capacity by accounting, so
a 64 GiB device works on a smaller host until real use exceeds host memory.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass

from . import _C
from .errors import InvalidArgumentError, OutOfMemoryError

__all__ = [
    "AllocationRule", "MemoryStats", "Buffer", "ExternalBuffer", "ArenaAllocator", "format_bytes", "format_bandwidth",
    "host_memory_bytes",
]


@dataclass(frozen=True)
class AllocationRule:
    """How the runtime sizes a request of n bytes: round_up(max(n, 1), granularity) + padding,
    at an address aligned to base_alignment (AscendCL aclrtMalloc: 32, 32, 64)."""

    granularity: int = 1
    padding: int = 0
    base_alignment: int = 64

    def occupied(self, nbytes: int) -> int:
        """Bytes of device memory a request of nbytes takes."""
        g = self.granularity
        return (max(nbytes, 1) + g - 1) // g * g + self.padding


@dataclass(frozen=True)
class MemoryStats:
    """A device's memory accounting, in bytes unless named num_/active_.

    allocated: occupied by live allocations (after the rounding rule); requested: what callers
    asked for; reserved: held from the host, live plus cached; peak: highest allocated so far.
    """

    allocated_bytes: int
    reserved_bytes: int
    peak_bytes: int
    capacity_bytes: int
    num_allocs: int
    requested_bytes: int = 0
    cached_bytes: int = 0
    peak_reserved_bytes: int = 0
    active_allocs: int = 0
    num_frees: int = 0
    cache_hits: int = 0
    num_ooms: int = 0

    @property
    def free_bytes(self) -> int:
        """What a new allocation can still get (cached blocks are released on demand)."""
        return self.capacity_bytes - self.allocated_bytes

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def physical_memory_bytes() -> int:
    """The host's physical memory: the capacity of the CPU's devices (cpu:0, torch.cpu:0)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not POSIX: a generous bound, still enforced
        return 1 << 40


def host_memory_bytes() -> int:
    """The host's physical memory, or the process's address-space limit (ulimit -v) when lower:
    the most that host-side work may ask for before hal refuses it."""
    physical = physical_memory_bytes()
    try:
        import resource
    except ImportError:  # not POSIX: no address-space limit to read
        return physical
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    return physical if soft == resource.RLIM_INFINITY else min(physical, soft)


def format_bytes(n: float) -> str:
    """1536 -> '1.5 KiB'."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def format_bandwidth(bytes_per_s: float) -> str:
    """1.6e12 -> '1.6 TB/s', 5.12e11 -> '512 GB/s' (decimal units, as vendors quote memory and links)."""
    for unit, scale in (("TB/s", 1e12), ("GB/s", 1e9), ("MB/s", 1e6)):
        if bytes_per_s >= scale:
            return f"{bytes_per_s / scale:.3g} {unit}"
    return f"{bytes_per_s:.0f} B/s"


class Buffer:
    """A block of device memory. Freed when dropped, or at once with free()."""

    __slots__ = ("allocator", "address", "nbytes", "__weakref__")

    def __init__(self, allocator: ArenaAllocator, address: int, nbytes: int):
        self.allocator = allocator
        self.address = address
        self.nbytes = nbytes

    @property
    def device_name(self) -> str:
        return self.allocator.device_name

    def free(self) -> None:
        """Returns the block to the device's cache now; later use of this buffer is an error."""
        if self.address is not None:
            address, self.address = self.address, None
            self.allocator.arena.free(address)

    @property
    def is_freed(self) -> bool:
        return self.address is None

    def __del__(self) -> None:
        if getattr(self, "address", None) is not None:
            try:
                self.free()
            except Exception:  # interpreter shutdown: the arena may already be gone
                pass

    def __repr__(self) -> str:
        where = "freed" if self.address is None else f"0x{self.address:x}"
        return f"<hal.Buffer {self.nbytes} bytes on {self.device_name} at {where}>"


class ArenaAllocator:
    """The caching allocator of one device, over a native arena."""

    def __init__(
        self,
        device_name: str,
        capacity_bytes: int,
        rule: AllocationRule = AllocationRule(),
        *,
        host_addressable: bool = False,
        caching: bool = True,
    ):
        self.device_name = device_name
        self.rule = rule
        self.host_addressable = host_addressable
        self.arena = _C.Arena(
            capacity_bytes,
            granularity=rule.granularity,
            padding=rule.padding,
            base_alignment=rule.base_alignment,
            host_addressable=host_addressable,
            caching=caching,
        )

    def allocate(self, nbytes: int) -> Buffer:
        if nbytes >= 1 << 63:  # beyond the native arena's int64 sizes, and beyond any device
            raise self._out_of_memory(nbytes, "")
        try:
            return Buffer(self, self.arena.allocate(nbytes), nbytes)
        except _C.ArenaOutOfMemory as exc:
            raise self._out_of_memory(nbytes, str(exc)) from None

    def _out_of_memory(self, nbytes: int, native_message: str) -> OutOfMemoryError:
        stats = self.stats()
        host = "host memory" in native_message
        hint = (
            "the host ran out of RAM backing this simulated device; use smaller tensors"
            if host
            else "free tensors you no longer need, or use smaller batches"
        )
        return OutOfMemoryError(
            f"{self.device_name}: out of memory: asked {format_bytes(nbytes)} ({nbytes} bytes, "
            f"{self.rule.occupied(nbytes)} with the allocation rule), {format_bytes(stats.free_bytes)} "
            f"free of {format_bytes(stats.capacity_bytes)} capacity; {hint}"
        )

    def stats(self) -> MemoryStats:
        s = self.arena.stats()
        return MemoryStats(
            allocated_bytes=s["allocated_bytes"],
            reserved_bytes=s["reserved_bytes"],
            peak_bytes=s["peak_allocated_bytes"],
            capacity_bytes=s["capacity_bytes"],
            num_allocs=s["num_allocs"],
            requested_bytes=s["requested_bytes"],
            cached_bytes=s["cached_bytes"],
            peak_reserved_bytes=s["peak_reserved_bytes"],
            active_allocs=s["active_allocs"],
            num_frees=s["num_frees"],
            cache_hits=s["cache_hits"],
            num_ooms=s["num_ooms"],
        )

    def empty_cache(self) -> int:
        return self.arena.empty_cache()

    def check_range(self, buffer: Buffer, offset: int, nbytes: int) -> None:
        """Raises a clear error unless [offset, offset + nbytes) lies inside the live buffer."""
        if buffer.address is None:
            raise InvalidArgumentError(f"{buffer.device_name}: buffer was freed; it cannot be used")
        if offset < 0 or nbytes < 0 or offset + nbytes > buffer.nbytes:
            raise InvalidArgumentError(
                f"{buffer.device_name}: range [{offset}, {offset + nbytes}) is outside the "
                f"{buffer.nbytes}-byte buffer"
            )


class ExternalBuffer:
    """Host memory owned by another library (numpy, torch), imported through DLPack without a
    copy. hal reads and writes it in place and never frees it; dropping the buffer lets the
    owner free it."""

    __slots__ = ("owner", "device_name", "nbytes", "pointer", "read_only", "_bytes", "__weakref__")

    def __init__(self, owner: object, pointer: int, nbytes: int, host_bytes, *, read_only: bool, device_name: str = "cpu:0"):
        self.owner = owner
        self.pointer = pointer
        self.nbytes = nbytes
        self.read_only = read_only
        self.device_name = device_name
        self._bytes = host_bytes  # a flat uint8 numpy view that keeps `owner` alive

    def host_bytes(self):
        """The memory as a flat uint8 numpy array (a view, not a copy)."""
        return self._bytes

    def __repr__(self) -> str:
        return f"<hal.ExternalBuffer {self.nbytes} bytes on {self.device_name} owned by {type(self.owner).__name__}>"
