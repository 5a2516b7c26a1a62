"""DeviceTensor: a dense row-major array in one device's memory, and the ways to make one.

Copies go through the device's streams: host -> device and device -> host on the device's stream,
device -> device directly between peers of one backend, and through a host staging buffer between
chips with no direct link (an Ascend and a Kunlun card, say), as real stacks do.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import _C
from .device import Device, Stream
from .dtypes import DType, dtype as as_dtype
from .errors import InvalidArgumentError
from .memory import Buffer, ExternalBuffer
from .registry import backends as _backends, device as get_device, devices as _devices

__all__ = ["DeviceTensor", "tensor", "empty", "as_tensor", "from_dlpack"]

_DL_CPU = 1
_DL_EXT_DEV = 12  # DLPack's device type for devices outside its list (here: simulated chips)


class DeviceTensor:
    """shape + dtype + device + the buffer holding the elements (row-major, contiguous)."""

    __slots__ = ("buffer", "offset", "shape", "dtype", "device", "__weakref__")

    def __init__(self, buffer: Buffer | ExternalBuffer, shape: tuple[int, ...], dtype: DType, device: Device, offset: int = 0):
        self.buffer = buffer
        self.offset = offset
        self.shape = shape
        self.dtype = dtype
        self.device = device

    # -- facts ---------------------------------------------------------------------------------
    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __repr__(self) -> str:
        return f"<hal.DeviceTensor shape={self.shape} dtype={self.dtype} device={self.device.name}>"

    # -- copies --------------------------------------------------------------------------------
    def numpy(self, *, out: np.ndarray | None = None, stream: Stream | None = None, non_blocking: bool = False) -> np.ndarray:
        """Copies the tensor to a host array (device -> host), bit-exact: a new one, or `out`
        (same shape and dtype, C-contiguous). With non_blocking=True the copy is only queued:
        read the array after the stream is synchronized."""
        if out is None:
            out = np.empty(self.shape, self.dtype.numpy)
        elif not isinstance(out, np.ndarray) or out.shape != self.shape or out.dtype != self.dtype.numpy:
            raise InvalidArgumentError(
                f"out must be a numpy array of shape {self.shape} and dtype {self.dtype}, got "
                f"{getattr(out, 'shape', None)} {getattr(out, 'dtype', type(out).__name__)}"
            )
        if isinstance(self.buffer, ExternalBuffer):
            out.reshape(-1).view(np.uint8)[:] = self._external_bytes()
            return out
        stream = self._stream(stream)
        stream.driver.copy_to_host(out, self.buffer, self.offset)
        if not non_blocking:
            stream.synchronize()
        return out

    def to(self, device: str | Device, *, stream: Stream | None = None, non_blocking: bool = False) -> DeviceTensor:
        """This tensor on `device` (self when it is already there). stream: the target's stream."""
        target = get_device(device)
        if target is self.device:
            return self
        out = empty(self.shape, self.dtype, device=target)
        out.copy_(self, stream=stream, non_blocking=non_blocking)
        return out

    def copy_(self, src: DeviceTensor | np.ndarray, *, stream: Stream | None = None, non_blocking: bool = False) -> DeviceTensor:
        """Overwrites this tensor with src (same shape and dtype). With non_blocking=True the copy
        is only queued: src must stay unchanged until the stream reaches it."""
        if isinstance(self.buffer, ExternalBuffer) and self.buffer.read_only:
            raise InvalidArgumentError(f"{self!r} wraps read-only memory imported through DLPack; it cannot be written")
        stream = self._stream(stream)
        if isinstance(src, DeviceTensor):
            self._check_same_layout(src.shape, src.dtype)
            self._copy_from_tensor(src, stream)
        else:
            host = np.asarray(src)
            self._check_same_layout(host.shape, _dtype_of(host))
            if isinstance(self.buffer, ExternalBuffer):
                self._external_bytes()[:] = _c_contiguous(host).reshape(-1).view(np.uint8)
                return self
            stream.driver.copy_from_host(self.buffer, self.offset, _c_contiguous(host))
        if not non_blocking:
            stream.synchronize()
        return self

    def _copy_from_tensor(self, src: DeviceTensor, stream: Stream) -> None:
        if isinstance(src.buffer, ExternalBuffer):
            # Host memory owned by someone else: a plain host -> device copy.
            self._write_from_host(src._external_bytes(), stream)
            return
        source_stream = src.device.default_stream
        if isinstance(self.buffer, ExternalBuffer):
            source_stream.driver.copy_to_host(self._external_bytes(), src.buffer, src.offset)
            source_stream.synchronize()
            return
        if src.device is self.device or self.device.driver.can_copy_from(src.buffer):
            if src.device is not self.device or source_stream is not stream:
                stream.wait_event(source_stream.record_event())
            stream.driver.copy_from_device(self.buffer, self.offset, src.buffer, src.offset, self.nbytes)
            return
        # No direct link between the chips: device -> host staging -> device, each copy on its own
        # device's stream, ordered by an event.
        staging = np.empty(self.nbytes, np.uint8)
        source_stream.driver.copy_to_host(staging, src.buffer, src.offset)
        stream.wait_event(source_stream.record_event())
        stream.driver.copy_from_host(self.buffer, self.offset, staging)

    def _write_from_host(self, host_bytes: np.ndarray, stream: Stream) -> None:
        if isinstance(self.buffer, ExternalBuffer):
            self._external_bytes()[:] = host_bytes
        else:
            stream.driver.copy_from_host(self.buffer, self.offset, host_bytes)

    def _check_same_layout(self, shape: Sequence[int], dtype: DType) -> None:
        if tuple(shape) != self.shape or dtype is not self.dtype:
            raise InvalidArgumentError(
                f"cannot copy a {dtype} array of shape {tuple(shape)} into a {self.dtype} tensor of "
                f"shape {self.shape}; reshape or cast the source first (numpy: a.astype('{self.dtype}'))"
            )

    def _stream(self, stream: Stream | None) -> Stream:
        if stream is None:
            return self.device.default_stream
        if not isinstance(stream, Stream) or stream.device is not self.device:
            raise InvalidArgumentError(
                f"stream {stream!r} does not belong to {self.device.name}; use one made by "
                f"hal.device('{self.device.name}').stream()"
            )
        return stream

    def _external_bytes(self) -> np.ndarray:
        assert isinstance(self.buffer, ExternalBuffer)  # internal invariant, not input validation
        return self.buffer.host_bytes()[self.offset : self.offset + self.nbytes]

    def host_view(self) -> np.ndarray:
        """A numpy array sharing this tensor's memory, for host-addressable devices (the CPU);
        other devices' memory is not reachable from the host (use numpy() to copy)."""
        if isinstance(self.buffer, ExternalBuffer):
            raw = self._external_bytes()
        else:
            raw = self.device.driver.host_view(self.buffer)
            if raw is None:
                raise InvalidArgumentError(
                    f"{self.device.name} memory is not host-addressable; copy it with .numpy() or .to('cpu')"
                )
            self.device.default_stream.synchronize()  # pending writes land before the caller reads
            raw = raw[self.offset : self.offset + self.nbytes]
        return raw.view(self.dtype.numpy).reshape(self.shape)

    # -- views ---------------------------------------------------------------------------------
    def reshape(self, *shape: int | Sequence[int]) -> DeviceTensor:
        """The same memory with another shape (-1 infers one dimension)."""
        dims = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
        try:
            new_shape = _infer_shape(dims, self.size)
        except (TypeError, ValueError) as exc:
            raise InvalidArgumentError(f"cannot reshape {self.shape} to {dims}: {exc}") from None
        return DeviceTensor(self.buffer, new_shape, self.dtype, self.device, self.offset)

    # -- DLPack --------------------------------------------------------------------------------
    def __dlpack_device__(self) -> tuple[int, int]:
        if self._host_pointer() is not None:
            return (_DL_CPU, 0)
        return self.device.driver.dlpack_device() or (_DL_EXT_DEV, self.device.index)

    def __dlpack__(self, *, stream: Any = None, max_version: tuple[int, int] | None = None,
                   dl_device: tuple[int, int] | None = None, copy: bool | None = None) -> Any:
        """Zero-copy export for host-addressable devices (the CPU); other devices' memory is not
        reachable from the host, so export from them raises (copy with .to("cpu") first)."""
        if dl_device is not None and tuple(dl_device) != self.__dlpack_device__():
            if tuple(dl_device) == (_DL_CPU, 0):
                return self.to("cpu").__dlpack__(max_version=max_version)
            raise BufferError(f"{self.device.name} cannot export to DLPack device {dl_device}")
        if copy:
            return tensor(self.numpy(), device="cpu").__dlpack__(max_version=max_version)
        pointer = self._host_pointer()
        if pointer is None and not isinstance(self.buffer, ExternalBuffer):
            shared = self.device.driver.export_dlpack(self, stream, max_version)  # GPU memory, say
            if shared is not None:
                return shared
        if pointer is None:
            raise BufferError(
                f"{self.device.name} memory is not host-addressable, so it cannot be shared through "
                "DLPack; copy it first: t.to('cpu') or t.numpy()"
            )
        if not isinstance(self.buffer, ExternalBuffer):
            self.device.default_stream.synchronize()  # the consumer reads at once
        code, bits, _ = self.dtype.dlpack
        versioned = max_version is not None and tuple(max_version)[0] >= 1
        read_only = isinstance(self.buffer, ExternalBuffer) and self.buffer.read_only
        return _C.to_dlpack(self, pointer + self.offset, self.shape, None, code, bits, _DL_CPU, 0, versioned, read_only)

    def _host_pointer(self) -> int | None:
        if isinstance(self.buffer, ExternalBuffer):
            return self.buffer.pointer
        return self.device.driver.host_pointer(self.buffer)


def _infer_shape(dims: Sequence[int], size: int) -> tuple[int, ...]:
    dims = [int(d) for d in dims]
    if dims.count(-1) > 1:
        raise ValueError("only one dimension can be -1")
    known = math.prod(d for d in dims if d != -1)
    if -1 in dims:
        if known == 0 or size % known:
            raise ValueError(f"size {size} is not divisible into {dims}")
        dims[dims.index(-1)] = size // known
    if any(d < 0 for d in dims) or math.prod(dims) != size:
        raise ValueError(f"size {size} does not match")
    return tuple(dims)


def _c_contiguous(array: np.ndarray) -> np.ndarray:
    """Row-major without a copy where possible (np.ascontiguousarray would turn 0-d into 1-d)."""
    return array if array.flags.c_contiguous else array.copy(order="C")


def _dtype_of(array: np.ndarray) -> DType:
    return as_dtype(array.dtype)


def _check_shape(shape: Any) -> tuple[int, ...]:
    if isinstance(shape, (int, np.integer)):
        shape = (shape,)
    try:
        dims = tuple(int(d) for d in shape)
        ok = all(d >= 0 and d == s for d, s in zip(dims, shape))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise InvalidArgumentError(f"shape must be a sequence of ints >= 0, got {shape!r}")
    return dims


def empty(shape: int | Sequence[int], dtype: Any = "float32", device: str | Device | None = None) -> DeviceTensor:
    """An uninitialised tensor on `device` (default: HAL_DEVICE or cpu:0), like torch.empty."""
    dims = _check_shape(shape)
    dt = as_dtype(dtype)
    target = get_device(device)
    buffer = target.allocate(math.prod(dims) * dt.itemsize)
    return DeviceTensor(buffer, dims, dt, target)


def tensor(data: Any, dtype: Any = None, device: str | Device | None = None) -> DeviceTensor:
    """Copies `data` (numpy array, nested lists, scalar, DeviceTensor) into a new tensor on `device`."""
    if isinstance(data, DeviceTensor):
        if dtype is not None and as_dtype(dtype) is not data.dtype:
            raise InvalidArgumentError(
                f"hal.tensor copies a {data.dtype} DeviceTensor without casting; asked {dtype}. "
                "Cast on the host: hal.tensor(t.numpy().astype(...))"
            )
        out = empty(data.shape, data.dtype, device=device)
        return out.copy_(data)
    try:
        host = np.asarray(data, dtype=as_dtype(dtype).numpy if dtype is not None else None)
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(f"cannot make a tensor from {type(data).__name__}: {exc}") from None
    dt = _dtype_of(host)
    out = empty(host.shape, dt, device=device)
    return out.copy_(host)


def as_tensor(array: np.ndarray) -> DeviceTensor:
    """A cpu:0 tensor sharing a numpy array's memory (no copy when it is C-contiguous), as
    torch.as_tensor does; any dtype hal knows, bfloat16 included."""
    if not isinstance(array, np.ndarray):
        raise InvalidArgumentError(f"hal.as_tensor takes a numpy array, got {type(array).__name__}; use hal.tensor to copy other data")
    dt = _dtype_of(array)
    array = _c_contiguous(array)
    flat = array.reshape(-1).view(np.uint8)
    buffer = ExternalBuffer(array, array.ctypes.data, array.nbytes, flat, read_only=not array.flags.writeable)
    return DeviceTensor(buffer, array.shape, dt, get_device("cpu:0"))


def from_dlpack(obj: Any) -> DeviceTensor:
    """Wraps a tensor from numpy, torch or any DLPack producer as a DeviceTensor sharing its
    memory (no copy): host memory as cpu:0, device memory (a torch CUDA tensor) on the hal device
    of its backend (cuda:0). Writes through either side are seen by the other."""
    if isinstance(obj, DeviceTensor):
        return obj
    if not hasattr(obj, "__dlpack__") or not hasattr(obj, "__dlpack_device__"):
        raise InvalidArgumentError(
            f"hal.from_dlpack takes an object with __dlpack__ (numpy array, torch tensor), got {type(obj).__name__}"
        )
    device_type, device_id = obj.__dlpack_device__()
    if int(device_type) != _DL_CPU:
        for backend in _backends().values():  # device memory: the backend owning that device imports it
            index = backend.dlpack_device_index(int(device_type), int(device_id))
            if index is not None:
                target = next(d for d in _devices(backend.name) if d.index == index)
                buffer, shape, dt = target.driver.import_dlpack(obj)
                return DeviceTensor(buffer, shape, dt, target)
        raise InvalidArgumentError(
            f"this {type(obj).__name__} is on DLPack device type {int(device_type)}, which no hal device "
            f"is (devices: {', '.join(d.name for d in _devices())}); copy it to the host first (torch: t.cpu())"
        )
    try:
        capsule = obj.__dlpack__(max_version=(1, 0))
    except TypeError:  # producers older than DLPack 1.0 take no max_version
        capsule = obj.__dlpack__()
    imported = _C.from_dlpack_capsule(capsule)
    dt = DType.from_dlpack(imported.dtype_code, imported.dtype_bits, imported.dtype_lanes)
    if not imported.is_c_contiguous():
        raise InvalidArgumentError(
            f"hal tensors are dense row-major; this {type(obj).__name__} has strides {imported.strides}. "
            "Make it contiguous first (torch: t.contiguous(); numpy: np.ascontiguousarray(a))"
        )
    host_bytes = np.frombuffer(imported, dtype=np.uint8) if imported.nbytes else np.empty(0, np.uint8)
    buffer = ExternalBuffer(imported, imported.data_ptr, imported.nbytes, host_bytes, read_only=imported.read_only)
    return DeviceTensor(buffer, tuple(imported.shape), dt, get_device("cpu:0"))
