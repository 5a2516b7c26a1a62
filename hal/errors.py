"""Every failure hal reports to a user is a HalError subclass whose message says what to do next."""
from __future__ import annotations

import builtins

__all__ = [
    "HalError",
    "InvalidArgumentError",
    "UnsupportedDTypeError",
    "DeviceNotFoundError",
    "BackendError",
    "InvalidSpecError",
    "DeviceError",
    "DeviceLostError",
    "TimeoutError",
    "OutOfMemoryError",
    "UnsupportedOpError",
    "ExecutionError",
    "InvalidModelError",
    "InvalidInputError",
    "MissingDependencyError",
    "UnsupportedModelError",
]


class HalError(Exception):
    """Base of every error hal raises on purpose."""


class InvalidArgumentError(HalError, ValueError):
    """A call got an argument it cannot use (wrong shape, offset, type...)."""


class UnsupportedDTypeError(HalError, TypeError):
    """A dtype hal, or the chip asked for, cannot represent or compute."""


class DeviceNotFoundError(HalError, LookupError):
    """A device name that no registered backend provides."""


class BackendError(HalError):
    """A backend plugin is broken: failed to import, wrong API version, bad spec file."""


class InvalidSpecError(BackendError):
    """A chip spec file or op table is wrong: a figure missing or negative, an unknown dtype, an op
    onnx does not know. The message names the file, the key and its line; nothing of the file loads."""


class DeviceError(HalError):
    """Work on a device failed; raised at the next synchronize, as real runtimes do."""


class DeviceLostError(DeviceError):
    """The device stopped answering; every later operation on it fails the same way."""


class TimeoutError(HalError, builtins.TimeoutError):  # catchable as the builtin too
    """A blocking wait ran past its timeout (a collective whose peers did not all arrive); the
    message names who did not arrive and how long hal waited."""


class OutOfMemoryError(HalError, MemoryError):
    """A device allocation did not fit; the message gives device, bytes asked, free and capacity."""


class UnsupportedOpError(HalError):
    """A backend cannot run an operation; the message says why and what can run it."""


class ExecutionError(HalError, RuntimeError):
    """A node failed while a model ran (a kernel refused the values it got); the message names it."""


class InvalidModelError(HalError, ValueError):
    """An ONNX model is malformed or uses something hal cannot load."""


class InvalidInputError(HalError, ValueError):
    """An input fed to a model has the wrong name, dtype or shape."""


class MissingDependencyError(HalError, ImportError):
    """An optional dependency (torch, for hal.torch) is not installed; the message names the extra."""


class KernelNotFoundError(UnsupportedOpError, LookupError):
    """No kernel is registered for an (op, backend, dtype); the message names those that are."""


class KernelLibraryError(HalError):
    """A kernel library failed to load, or a registration clashed with an existing kernel."""


class UnsupportedModelError(HalError):
    """A model uses an architecture or config field that hal.llm cannot run; the message names it."""
