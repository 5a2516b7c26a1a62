"""The kernel registry as Python sees it: C++ kernels (hal._C's own and those of libraries loaded
with load_library) and Python kernels (@hal.kernel), one per (domain, op, backend, dtype).

    hal.ops.registry()          # [KernelInfo(domain, op, backend, dtype, origin, source), ...]
    hal.ops.load_library(path)  # a user's compiled kernels (hal/kernel.h, HAL_REGISTER_KERNEL)
"""
from __future__ import annotations

import functools
import inspect
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import _C
from ..dtypes import DType, dtype as as_dtype
from ..errors import InvalidArgumentError, KernelLibraryError, KernelNotFoundError, UnsupportedDTypeError

__all__ = [
    "KernelInfo", "PythonKernel", "registry", "python_kernels", "find", "has_kernel", "kernel_domains", "load_library", "kernel",
    "include_dir", "set_num_threads", "get_num_threads", "empty_output_cache", "output_cache_stats", "HAL_DOMAIN",
]

HAL_DOMAIN = "com.hal"
"""The ONNX domain of hal's built-in kernels."""


@dataclass(frozen=True)
class KernelInfo:
    domain: str
    op: str
    backend: str
    dtype: str
    origin: str
    """"hal._C", a library's path, or "python"."""
    source: str
    """The file the kernel is written in (a Python kernel: module:function)."""


class PythonKernel:
    """A kernel written in Python: fn(*arrays, **attributes) -> array or tuple of arrays, run on
    host numpy arrays (a simulated chip's inputs are staged to the host, as for its C++ kernels)."""

    def __init__(self, fn: Callable[..., Any], domain: str, op: str, backend: str, dtype: str,
                 infer: Callable[..., Any] | None):
        self.fn = fn
        self.domain, self.op, self.backend, self.dtype = domain, op, backend, dtype
        self.origin = "python"
        self.source = f"{fn.__module__}:{fn.__qualname__}"
        self._infer = infer

    @property
    def has_infer(self) -> bool:
        return self._infer is not None

    def infer(self, inputs: Sequence[tuple[str, tuple[int, ...]]], attrs: dict[str, Any]) -> tuple | None:
        """Output (dtype, shape) pairs from the infer= function given to @hal.kernel, else None."""
        if self._infer is None:
            return None
        specs = self._infer(*inputs, **attrs)
        return tuple((str(as_dtype(d)), tuple(int(s) for s in shape)) for d, shape in specs)

    def run(self, inputs: list[np.ndarray], attrs: dict[str, Any], outputs: list[np.ndarray] | None = None) -> list[np.ndarray]:
        try:
            result = self.fn(*inputs, **attrs)
        except TypeError as exc:
            raise InvalidArgumentError(f"{self.domain}::{self.op} ({self.source}): {exc}") from None
        values = [np.asarray(v) for v in (result if isinstance(result, (tuple, list)) else (result,))]
        if outputs is None:
            return values
        if len(outputs) != len(values):
            raise InvalidArgumentError(f"{self.domain}::{self.op} returned {len(values)} value(s) for {len(outputs)} output(s)")
        for out, value in zip(outputs, values):
            if out.shape != value.shape or out.dtype != value.dtype:
                raise InvalidArgumentError(
                    f"{self.domain}::{self.op} returned {value.dtype} {value.shape} where {out.dtype} {out.shape} was inferred"
                )
            np.copyto(out, value)
        return outputs

    def __repr__(self) -> str:
        return f"<hal.ops.PythonKernel {self.domain}::{self.op} {self.backend}/{self.dtype} from {self.source}>"


_python_kernels: dict[tuple[str, str, str, str], PythonKernel] = {}
_lock = threading.Lock()
_cache: dict[tuple[str, str, str, str], Any] = {}


def registry() -> list[KernelInfo]:
    """Every registered kernel, sorted by domain, op, backend and dtype."""
    rows = [KernelInfo(*row) for row in _C.kernels()]
    rows += [KernelInfo(k.domain, k.op, k.backend, k.dtype, k.origin, k.source) for k in _python_kernels.values()]
    return sorted(rows, key=lambda k: (k.domain, k.op, k.backend, k.dtype))


def python_kernels() -> list[PythonKernel]:
    return list(_python_kernels.values())


def has_kernel(domain: str, op: str, backend: str, dtype: str) -> bool:
    return (domain, op, backend, dtype) in _python_kernels or _C.has_kernel(domain, op, backend, dtype)


def kernel_domains() -> frozenset[str]:
    """Every domain some kernel is registered in ("com.hal", and users' own)."""
    return frozenset(k.domain for k in registry())


def find(domain: str, op: str, backend: str, dtype: str):
    """The kernel for (domain, op, backend, dtype): a hal._C.Kernel or a PythonKernel, each with
    infer() and run(). KernelNotFoundError names the backends and dtypes that have one."""
    key = (domain, op, backend, dtype)
    found = _cache.get(key)
    if found is not None:
        return found
    found = _python_kernels.get(key)
    if found is None:
        try:
            found = _C.find_kernel(domain, op, backend, dtype)
        except KernelNotFoundError as exc:
            python = sorted(f"{k.backend}/{k.dtype}" for k in _python_kernels.values() if (k.domain, k.op) == (domain, op))
            if python:
                raise KernelNotFoundError(f"no kernel {domain}::{op} for {backend}/{dtype}; registered for {', '.join(python)}") from None
            raise exc from None
    _cache[key] = found
    return found


def load_library(path: str | os.PathLike) -> list[KernelInfo]:
    """Loads a shared library of kernels built against hal.ops.include_dir() and registers them
    (all or none); returns what it registered. KernelLibraryError when the file cannot be loaded,
    exports no hal_register_kernels, or registers a kernel that already exists."""
    resolved = Path(path).expanduser()
    if not resolved.is_file():
        raise KernelLibraryError(f"cannot load kernel library {path}: no such file")
    before = set(registry())
    with _lock:
        _C.load_kernel_library(str(resolved.resolve()))
        _cache.clear()
    _clear_support_caches()
    return sorted(set(registry()) - before, key=lambda k: (k.domain, k.op, k.backend, k.dtype))


def kernel(op: str, *, domain: str, backends: Iterable[str], dtypes: Iterable[str | DType],
           infer: Callable[..., Any] | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Registers a Python function as the kernel of (domain, op) for each backend and dtype (the
    dtype of its first input). The function gets numpy arrays and the node's attributes as keyword
    arguments and returns an array or a tuple of arrays; it stays callable as before.
    infer(*(dtype, shape) per input, **attributes) -> [(dtype, shape)] lets ONNX graphs type its
    outputs. KernelLibraryError when one of the keys already has a kernel."""
    if not domain or domain in ("ai.onnx",):
        raise InvalidArgumentError(f"a kernel needs a custom ONNX domain (e.g. 'com.example'), got {domain!r}")
    backend_list = [str(b) for b in backends]
    try:
        dtype_list = [str(as_dtype(d)) for d in dtypes]
    except UnsupportedDTypeError as exc:
        raise InvalidArgumentError(f"@hal.kernel({op!r}): {exc}") from None
    if not backend_list or not dtype_list:
        raise InvalidArgumentError(f"@hal.kernel({op!r}) needs at least one backend and one dtype")

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        if not callable(fn) or inspect.isclass(fn):
            raise InvalidArgumentError(f"@hal.kernel({op!r}) decorates a function, got {fn!r}")
        keys = [(domain, op, b, d) for b in backend_list for d in dtype_list]
        with _lock:
            for key in keys:
                if key in _python_kernels or _C.has_kernel(*key):
                    existing = _python_kernels.get(key) or find(*key)
                    raise KernelLibraryError(
                        f"kernel {domain}::{op} for {key[2]}/{key[3]} is already registered by {existing.origin} "
                        f"({existing.source}); a (domain, op, backend, dtype) has one kernel"
                    )
            for key in keys:
                _python_kernels[key] = PythonKernel(fn, *key, infer)
            _cache.clear()
        _clear_support_caches()
        return fn

    return register


_change_listeners: list[Callable[[], None]] = []


def on_registry_change(listener: Callable[[], None]) -> Callable[[], None]:
    """Calls `listener` whenever a kernel is registered. Caches built from the registry subscribe
    here (capability answers in hal.ops.schemas, host kernels in hal.ops.dispatch), so that the
    registry, below them, imports none of them."""
    _change_listeners.append(listener)
    return listener


def _clear_support_caches() -> None:
    """Capability answers depend on the registry; forget any computed before it changed."""
    for listener in list(_change_listeners):
        listener()


def include_dir() -> str:
    """The folder to pass as -I when compiling a kernel library: it holds hal/kernel.h."""
    return str(Path(__file__).resolve().parent.parent / "include")


@functools.lru_cache(maxsize=1)
def _default_threads() -> int:
    raw = os.environ.get("HAL_NUM_THREADS", "").strip()
    if raw:
        if not raw.isdigit() or int(raw) < 1:
            raise InvalidArgumentError(f"HAL_NUM_THREADS must be a whole number >= 1, got {raw!r}")
        return int(raw)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def set_num_threads(n: int) -> None:
    """Threads each kernel call may use (default: HAL_NUM_THREADS, else the cores this process may
    run on)."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise InvalidArgumentError(f"set_num_threads takes a whole number >= 1, got {n!r}")
    _C.set_num_threads(int(n))


def get_num_threads() -> int:
    return _C.get_num_threads()


def empty_output_cache() -> int:
    """Gives the OS back the memory of kernel outputs (numpy arrays of 1 MiB or more) that no array
    uses any more; returns the bytes released. Kernels reuse that memory otherwise, so that a
    model's step after step writes to pages already mapped (the cache holds at most 2 GiB)."""
    return int(_C.empty_output_cache())


def output_cache_stats() -> dict[str, int]:
    """live_bytes, cached_bytes, capacity_bytes, cache_hits and cache_misses of the kernel-output cache."""
    return dict(_C.output_cache_stats())


_C._set_numpy_dtypes([DType(name).numpy if name in DType._value2member_map_ else None for name in _C.KERNEL_DTYPES])
_C.set_num_threads(_default_threads())
