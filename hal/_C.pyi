"""Typed stub of hal._C, the native core of hal (built from csrc/ by setup.py)."""
from collections.abc import Sequence
from typing import Any, Final, TypedDict, final

from typing_extensions import Buffer

DLPACK_VERSION: Final[tuple[int, int]]
"""The DLPack version this module exports: (1, 0)."""
kDLCPU: Final[int]
"""DLDeviceType of host memory (1)."""
kDLCUDA: Final[int]
"""DLDeviceType of CUDA device memory (2)."""

class ArenaOutOfMemory(MemoryError):
    """An Arena allocation did not fit (device capacity or host memory exhausted).

    The message gives the bytes requested, the bytes they occupy under the allocation
    rule, the free bytes, the capacity and the bytes held in the cache.
    """

class ArenaStats(TypedDict):
    """Shape of the dict returned by Arena.stats() (not a runtime class)."""

    allocated_bytes: int
    requested_bytes: int
    reserved_bytes: int
    cached_bytes: int
    peak_allocated_bytes: int
    peak_reserved_bytes: int
    capacity_bytes: int
    num_allocs: int
    num_frees: int
    active_allocs: int
    cache_hits: int
    cache_misses: int
    num_ooms: int

@final
class _HostRegion:
    """Internal: a pinned host byte range behind the memoryviews that host_buffer() returns."""

    def __buffer__(self, flags: int, /) -> memoryview: ...
    def __len__(self) -> int: ...

@final
class Arena:
    """The device memory of one simulated (or host) device: a thread-safe caching allocator.

    A request of n bytes occupies ``round_up(max(n, 1), granularity) + padding`` bytes
    of ``capacity_bytes``; capacity is enforced by accounting only (no up-front
    reservation; each block is a lazily-mapped host allocation). Addresses are
    multiples of ``base_alignment``; they are simulated device addresses (>= 2**48)
    unless ``host_addressable``, where they are host pointers.
    """

    def __init__(
        self,
        capacity_bytes: int,
        granularity: int = 1,
        padding: int = 0,
        base_alignment: int = 64,
        host_addressable: bool = False,
        caching: bool = True,
    ) -> None:
        """ValueError unless capacity_bytes >= 1, 1 <= granularity <= capacity_bytes,
        0 <= padding < capacity_bytes and base_alignment is a power of two in [8, 2**30]."""
    @property
    def capacity_bytes(self) -> int: ...
    @property
    def granularity(self) -> int: ...
    @property
    def padding(self) -> int: ...
    @property
    def base_alignment(self) -> int: ...
    @property
    def host_addressable(self) -> bool: ...
    @property
    def caching(self) -> bool: ...
    def rounded_size(self, nbytes: int) -> int:
        """Bytes a request of nbytes occupies (ValueError if nbytes < 0)."""
    def allocate(self, nbytes: int) -> int:
        """Device address of a new block of nbytes; raises ArenaOutOfMemory when it does not fit."""
    def free(self, address: int) -> None:
        """Free a live block; ValueError if address is not live (double free?)."""
    def empty_cache(self) -> int:
        """Return cached blocks to the host; returns the bytes released."""
    def stats(self) -> ArenaStats:
        """Counters (all ints); reserved_bytes == allocated_bytes + cached_bytes."""
    def reset_peak_stats(self) -> None: ...
    def size_of(self, address: int) -> int:
        """Requested bytes of a live block."""
    def block_size(self, address: int) -> int:
        """Occupied bytes of a live block under the allocation rule."""
    def is_live(self, address: int) -> bool: ...
    def copy_from_host(self, address: int, offset: int, src: Buffer) -> None:
        """Copy all bytes of C-contiguous src to address + offset (bounds-checked, ValueError)."""
    def copy_to_host(self, address: int, offset: int, dst: Buffer) -> None:
        """Copy len(dst) bytes from address + offset into writable C-contiguous dst."""
    def copy_within(
        self, dst_address: int, dst_offset: int, src_address: int, src_offset: int, nbytes: int
    ) -> None:
        """Copy between (or within) live blocks of this arena; memmove semantics."""
    def host_pointer(self, address: int) -> int:
        """Host pointer of a live block; ValueError unless host_addressable."""
    def emulation_buffer(self, address: int) -> memoryview:
        """host_buffer on any arena, for a simulated chip's own kernels (they run on this host)."""
    def host_buffer(self, address: int) -> memoryview:
        """Writable memoryview over a live block's requested bytes; ValueError unless host_addressable.
        The view keeps the arena alive and defers recycling of the block until it is gone."""

def copy_between(
    dst_arena: Arena,
    dst_address: int,
    dst_offset: int,
    src_arena: Arena,
    src_address: int,
    src_offset: int,
    nbytes: int,
) -> None:
    """Copy nbytes between live blocks of two arenas (bounds-checked, GIL released)."""

def memcpy_host(dst: Buffer, src: Buffer) -> None:
    """GIL-free copy between two C-contiguous host buffers of equal byte length (ValueError otherwise)."""

def to_dlpack(
    owner: object,
    data_ptr: int,
    shape: Sequence[int],
    strides: Sequence[int] | None,
    dtype_code: int,
    dtype_bits: int,
    device_type: int,
    device_id: int,
    versioned: bool,
    read_only: bool = False,
) -> Any:
    """A PyCapsule named "dltensor_versioned" (versioned) or "dltensor" over data_ptr.

    owner stays alive until the consumer's deleter runs. strides are in elements (None:
    compact row-major). ValueError on bad arguments; BufferError for read_only with
    versioned=False.
    """

@final
class DLPackImport:
    """A tensor imported from a DLPack capsule; owns it and calls the producer's deleter once.

    Supports the buffer protocol (1-D bytes, as host_buffer()), so
    ``np.frombuffer(imp, dtype)`` keeps the import and the producer's memory alive.
    """

    @property
    def data_ptr(self) -> int:
        """data + byte_offset."""
    @property
    def shape(self) -> tuple[int, ...]: ...
    @property
    def strides(self) -> tuple[int, ...] | None:
        """In elements; None when the producer gave NULL (compact row-major)."""
    @property
    def ndim(self) -> int: ...
    @property
    def dtype_code(self) -> int:
        """0 int, 1 uint, 2 float, 4 bfloat, 5 complex, 6 bool."""
    @property
    def dtype_bits(self) -> int: ...
    @property
    def dtype_lanes(self) -> int: ...
    @property
    def device_type(self) -> int:
        """DLDeviceType (1 kDLCPU, 2 kDLCUDA, ...)."""
    @property
    def device_id(self) -> int: ...
    @property
    def read_only(self) -> bool: ...
    @property
    def versioned(self) -> bool: ...
    @property
    def nbytes(self) -> int:
        """prod(shape) * bits * lanes / 8, rounded up."""
    @property
    def released(self) -> bool: ...
    def is_c_contiguous(self) -> bool: ...
    def host_buffer(self) -> memoryview:
        """Bytes over the tensor's host memory (nbytes if compact; through the last element if
        strided with non-negative strides). Writable unless read_only. ValueError unless
        device_type == kDLCPU, or after release()."""
    def release(self) -> None:
        """Call the producer's deleter once (deferred while host views are alive)."""
    def __buffer__(self, flags: int, /) -> memoryview: ...

def from_dlpack_capsule(capsule: Any) -> DLPackImport:
    """Consume a "dltensor"/"dltensor_versioned" capsule (renamed "used_..."); ValueError if invalid."""

# ---- kernels (csrc/ops, csrc/kernels; the Python API is hal.ops) -----------------------------
KERNEL_ABI_VERSION: int
KERNEL_DTYPES: tuple[str, ...]
"""hal_dtype names in code order (hal/include/hal/kernel.h)."""

class Kernel:
    """A registered kernel: (domain, op, backend, dtype) -> infer and compute."""
    @property
    def domain(self) -> str: ...
    @property
    def op(self) -> str: ...
    @property
    def backend(self) -> str: ...
    @property
    def dtype(self) -> str: ...
    @property
    def origin(self) -> str: ...
    @property
    def source(self) -> str: ...
    def infer(self, inputs: list[tuple[str, tuple[int, ...]]], attrs: dict[str, int | float | str]) -> tuple[tuple[str, tuple[int, ...]], ...]:
        """Output (dtype, shape) pairs; the kernel's InvalidArgumentError / UnsupportedDTypeError otherwise."""
    def run(self, inputs: list[Any], attrs: dict[str, int | float | str], outputs: list[Any] | None = None) -> list[Any]:
        """Runs on C-contiguous numpy arrays in place (no copies), into outputs or new arrays; GIL released from 64 KiB."""

def find_kernel(domain: str, op: str, backend: str, dtype: str) -> Kernel:
    """hal.KernelNotFoundError naming the backends and dtypes that have one."""
def has_kernel(domain: str, op: str, backend: str, dtype: str) -> bool: ...
def kernels() -> list[tuple[str, str, str, str, str, str]]:
    """(domain, op, backend, dtype, origin, source) of every kernel."""
def load_kernel_library(path: str) -> None:
    """dlopen + hal_register_kernels, all or none; hal.KernelLibraryError on failure or a duplicate."""
def set_num_threads(n: int) -> None: ...
def get_num_threads() -> int: ...
def _set_numpy_dtypes(dtypes: list[Any]) -> None: ...
