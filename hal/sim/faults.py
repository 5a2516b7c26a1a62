"""Injected faults for reliability tests: a kernel that fails, a device that is lost, an
allocation that runs out of memory; each behaves as the real runtime reports it."""
from __future__ import annotations

import threading

from ..errors import DeviceError, DeviceLostError, InvalidArgumentError, OutOfMemoryError

__all__ = ["FAULT_KINDS", "FaultInjector"]

FAULT_KINDS = ("kernel_error", "device_lost", "out_of_memory")


class FaultInjector:
    """Faults armed on one simulated device.

    kernel_error: the op that runs `after_ops` ops from now fails (reported at the next synchronize).
    out_of_memory: the allocation `after_ops` allocations from now raises OutOfMemoryError.
    device_lost: from `after_ops` ops on, every op and allocation fails until clear().
    """

    def __init__(self, device_name: str):
        self.device_name = device_name
        self._lock = threading.Lock()
        self._kernel_error_in: int | None = None
        self._oom_in: int | None = None
        self._lost_in: int | None = None
        self.lost = False

    def inject(self, kind: str, after_ops: int = 0) -> None:
        if kind not in FAULT_KINDS:
            raise InvalidArgumentError(f"unknown fault '{kind}'; choose one of {', '.join(FAULT_KINDS)}")
        if not isinstance(after_ops, int) or after_ops < 0:
            raise InvalidArgumentError(f"after_ops must be an int >= 0, got {after_ops!r}")
        with self._lock:
            if kind == "kernel_error":
                self._kernel_error_in = after_ops
            elif kind == "out_of_memory":
                self._oom_in = after_ops
            else:
                self._lost_in = after_ops

    def clear(self) -> None:
        """Disarms every fault and brings a lost device back (a device reset)."""
        with self._lock:
            self._kernel_error_in = self._oom_in = self._lost_in = None
            self.lost = False

    def before_op(self, op_name: str) -> None:
        """Called on the stream thread before each op."""
        with self._lock:
            if self._lost_in is not None:
                if self._lost_in == 0:
                    self.lost, self._lost_in = True, None
                else:
                    self._lost_in -= 1
            if self.lost:
                raise DeviceLostError(f"{self.device_name} was lost (injected fault) while running '{op_name}'")
            if self._kernel_error_in is not None:
                if self._kernel_error_in == 0:
                    self._kernel_error_in = None
                    raise DeviceError(f"{self.device_name}: '{op_name}' failed (injected kernel error)")
                self._kernel_error_in -= 1

    def before_allocate(self, nbytes: int) -> None:
        with self._lock:
            if self.lost:
                raise DeviceLostError(f"{self.device_name} was lost (injected fault); allocation of {nbytes} bytes refused")
            if self._oom_in is not None:
                if self._oom_in == 0:
                    self._oom_in = None
                    raise OutOfMemoryError(f"{self.device_name}: out of memory (injected fault): asked {nbytes} bytes")
                self._oom_in -= 1
