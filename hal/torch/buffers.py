"""Device memory hal holds on a torch device: a TorchBuffer is a flat uint8 torch tensor, and a
DeviceAccount is hal's own tally of what it allocated there (allocated, requested, peak, counts),
by which the driver enforces the device's capacity. Torch allocates; hal counts."""
from __future__ import annotations

import threading
from typing import Any

from ..errors import InvalidArgumentError, OutOfMemoryError
from ..memory import AllocationRule, format_bytes

__all__ = ["DeviceAccount", "TorchBuffer"]


class DeviceAccount:
    """What hal allocated on one device, in bytes (after the allocation rule) and counts."""

    def __init__(self, device_name: str, capacity: int, rule: AllocationRule):
        self.device_name = device_name
        self.capacity = capacity
        self.rule = rule
        self.lock = threading.Lock()
        self.allocated = self.requested = self.peak = 0
        self.num_allocs = self.num_frees = self.num_ooms = self.active = 0

    def reserve(self, nbytes: int) -> int:
        occupied = self.rule.occupied(nbytes)
        with self.lock:
            if self.allocated + occupied > self.capacity:
                self.num_ooms += 1
                raise self.out_of_memory(nbytes, "the device's capacity")
            self._count(nbytes, occupied)
        return occupied

    def _count(self, nbytes: int, occupied: int) -> None:
        self.allocated += occupied
        self.requested += nbytes
        self.peak = max(self.peak, self.allocated)
        self.num_allocs += 1
        self.active += 1

    def cancel(self, nbytes: int, occupied: int) -> None:
        """Undoes reserve() for an allocation torch could not make: an out-of-memory."""
        with self.lock:
            self.allocated -= occupied
            self.requested -= nbytes
            self.num_allocs -= 1
            self.active -= 1
            self.num_ooms += 1

    def adopt(self, nbytes: int) -> int:
        """Accounts memory torch allocated for hal (a partition's output), beyond the capacity check."""
        occupied = self.rule.occupied(nbytes)
        with self.lock:
            self._count(nbytes, occupied)
        return occupied

    def release(self, nbytes: int, occupied: int) -> None:
        with self.lock:
            self.allocated -= occupied
            self.requested -= nbytes
            self.num_frees += 1
            self.active -= 1

    def out_of_memory(self, nbytes: int, limit: str) -> OutOfMemoryError:
        free = self.capacity - self.allocated
        return OutOfMemoryError(
            f"{self.device_name}: out of memory: asked {format_bytes(nbytes)} ({nbytes} bytes), "
            f"{format_bytes(free)} free of {format_bytes(self.capacity)} capacity (limit hit: {limit}); "
            "free tensors you no longer need, or use smaller batches"
        )


class TorchBuffer:
    """nbytes of device memory held as a flat uint8 torch tensor. Buffers hal allocated (or adopted
    from a compiled partition) are accounted to the device; imported ones (DLPack) are not."""

    __slots__ = ("tensor", "nbytes", "device_name", "_account", "_occupied", "__weakref__")

    def __init__(self, tensor: Any, nbytes: int, device_name: str, account: DeviceAccount | None, occupied: int = 0):
        self.tensor = tensor
        self.nbytes = nbytes
        self.device_name = device_name
        self._account = account
        self._occupied = occupied

    def free(self) -> None:
        """Gives the memory back to torch's allocator now (stream-ordered on CUDA)."""
        if self.tensor is not None:
            self.tensor = None
            if self._account is not None:
                self._account.release(self.nbytes, self._occupied)

    @property
    def is_freed(self) -> bool:
        return self.tensor is None

    def view(self, offset: int, nbytes: int) -> Any:
        """The bytes [offset, offset + nbytes) as a uint8 tensor, or a clear error."""
        if self.tensor is None:
            raise InvalidArgumentError(f"{self.device_name}: buffer was freed; it cannot be used")
        if offset < 0 or nbytes < 0 or offset + nbytes > self.nbytes:
            raise InvalidArgumentError(
                f"{self.device_name}: range [{offset}, {offset + nbytes}) is outside the {self.nbytes}-byte buffer"
            )
        return self.tensor[offset : offset + nbytes]

    def __del__(self) -> None:
        try:
            self.free()
        except Exception:  # interpreter shutdown
            pass

    def __repr__(self) -> str:
        where = "freed" if self.tensor is None else f"0x{self.tensor.data_ptr():x}"
        return f"<hal.TorchBuffer {self.nbytes} bytes on {self.device_name} at {where}>"
