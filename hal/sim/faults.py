"""Injected faults for reliability tests: a kernel that fails, a device that is lost, an
allocation that runs out of memory; each behaves as the real runtime reports it.

Arm them from code with hal.sim.inject_fault(device, kind, after_ops=N), or for a whole process
(a test run, a script under a fault campaign) with HAL_SIM_FAULTS, read when a simulated device
is opened (its first use):

    HAL_SIM_FAULTS="kunlun:0=device_lost@3,ascend:1=kernel_error@10,ascend:0=out_of_memory@2"

Each entry is DEVICE=KIND@N: KIND one of kernel_error, device_lost, out_of_memory, hitting after
N operations went through (@0: the first). Operations are what runs on the device's streams
(kernels, copies) for kernel_error and device_lost, and allocations for out_of_memory. A device
may be named more than once, with different kinds. A kernel error and an out-of-memory hit once;
a lost device stays lost (hal.Device.lost, and hal.devices() marks it) until hal.sim.clear_faults
or Device.reset().
"""
from __future__ import annotations

import os
import re
import threading

from ..errors import BackendError, DeviceError, DeviceLostError, InvalidArgumentError, OutOfMemoryError

__all__ = ["FAULT_KINDS", "FaultInjector", "faults_from_env"]

FAULT_KINDS = ("kernel_error", "device_lost", "out_of_memory")

_ENTRY = re.compile(r"(?P<device>[A-Za-z_][\w.]*:\d+)=(?P<kind>\w+)@(?P<after>\d+)")


def faults_from_env(device_name: str) -> list[tuple[str, int]]:
    """The (kind, after_ops) HAL_SIM_FAULTS arms on `device_name`. Every entry is checked, also
    those of other devices, so that a typo never passes silently as a fault that does not fire."""
    raw = os.environ.get("HAL_SIM_FAULTS", "").strip()
    armed = []
    for entry in filter(None, (part.strip() for part in raw.split(","))):
        match = _ENTRY.fullmatch(entry)
        if match is None or match["kind"] not in FAULT_KINDS:
            raise BackendError(
                f"HAL_SIM_FAULTS entry {entry!r} must look like 'ascend:0=kernel_error@3' "
                f"(DEVICE=KIND@N, KIND one of {', '.join(FAULT_KINDS)}, N the operations before it hits)"
            )
        if match["device"] == device_name:
            armed.append((match["kind"], int(match["after"])))
    return armed


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
        self.injected = 0
        """Faults that hit so far (a lost device counts once), for fault campaigns."""

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
                    self.injected += 1
                else:
                    self._lost_in -= 1
            if self.lost:
                raise DeviceLostError(f"{self.device_name} was lost (injected fault) while running '{op_name}'")
            if self._kernel_error_in is not None:
                if self._kernel_error_in == 0:
                    self._kernel_error_in = None
                    self.injected += 1
                    raise DeviceError(f"{self.device_name}: '{op_name}' failed (injected kernel error)")
                self._kernel_error_in -= 1

    def before_allocate(self, nbytes: int) -> None:
        with self._lock:
            if self.lost:
                raise DeviceLostError(f"{self.device_name} was lost (injected fault); allocation of {nbytes} bytes refused")
            if self._oom_in is not None:
                if self._oom_in == 0:
                    self._oom_in = None
                    self.injected += 1
                    raise OutOfMemoryError(f"{self.device_name}: out of memory (injected fault): asked {nbytes} bytes")
                self._oom_in -= 1
