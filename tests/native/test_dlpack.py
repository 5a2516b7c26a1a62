"""Tests of hal._C's DLPack export (to_dlpack) and import (from_dlpack_capsule / DLPackImport)."""
from __future__ import annotations

import ctypes
import gc
import sys
import threading
import weakref

import numpy as np
import pytest

from hal import _C

kDLInt, kDLUInt, kDLFloat, kDLBfloat, kDLComplex, kDLBool = 0, 1, 2, 4, 5, 6
kDLCPU, kDLCUDA = 1, 2

DTYPE_CODES = {"i": kDLInt, "u": kDLUInt, "f": kDLFloat, "c": kDLComplex, "b": kDLBool}


def dl_dtype(dtype: np.dtype) -> tuple[int, int]:
    dtype = np.dtype(dtype)
    return DTYPE_CODES[dtype.kind], dtype.itemsize * 8


class Owner:
    """Stands in for a hal tensor's storage: holds memory, can be weak-referenced."""

    def __init__(self, arr: np.ndarray):
        self.arr = arr


class Exporter:
    """An object speaking the __dlpack__ protocol through hal._C.to_dlpack."""

    def __init__(self, arr: np.ndarray, owner: object | None = None, read_only: bool = False,
                 byte_strides: bool = False, strides_none: bool = False):
        self.arr = arr
        self.owner = owner if owner is not None else arr
        self.read_only = read_only
        self.strides_none = strides_none
        self.calls: list[object] = []

    def __dlpack_device__(self):
        return (kDLCPU, 0)

    def __dlpack__(self, stream=None, max_version=None, dl_device=None, copy=None):
        self.calls.append(max_version)
        code, bits = dl_dtype(self.arr.dtype)
        versioned = max_version is not None and max_version[0] >= 1
        strides = None if self.strides_none else [s // self.arr.itemsize for s in self.arr.strides]
        return _C.to_dlpack(self.owner, self.arr.ctypes.data, list(self.arr.shape), strides, code, bits,
                            kDLCPU, 0, versioned, self.read_only)


# --------------------------------------------------------------------------- export


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16, np.int8, np.int32, np.int64,
                                   np.uint8, np.uint16, np.uint64, np.bool_, np.complex64, np.complex128])
def test_export_round_trip_numpy(dtype):
    rng = np.random.default_rng(0)
    arr = (rng.standard_normal((3, 4, 5)) * 10).astype(dtype)
    out = np.from_dlpack(Exporter(arr))
    assert out.dtype == arr.dtype and out.shape == arr.shape
    assert np.array_equal(out, arr)
    assert out.ctypes.data == arr.ctypes.data  # zero copy


def test_export_uses_versioned_protocol_when_asked():
    arr = np.arange(10, dtype=np.float32)
    exp = Exporter(arr)
    np.from_dlpack(exp)
    cap = exp.__dlpack__(max_version=(1, 0))
    assert "dltensor_versioned" in repr(cap)
    cap2 = exp.__dlpack__()
    assert '"dltensor"' in repr(cap2)


def test_export_strided_and_scalar():
    base = np.arange(24, dtype=np.int32).reshape(4, 6)
    view = base[:, ::2].T
    out = np.from_dlpack(Exporter(view))
    assert np.array_equal(out, view)
    scalar = np.array(3.5, dtype=np.float64)
    assert np.from_dlpack(Exporter(scalar)) == 3.5
    empty = np.zeros((0, 3), np.float32)
    assert np.from_dlpack(Exporter(empty)).shape == (0, 3)


def test_export_strides_none_means_row_major():
    arr = np.arange(12, dtype=np.int16).reshape(3, 4)
    imp = _C.from_dlpack_capsule(Exporter(arr, strides_none=True).__dlpack__())
    assert imp.strides == (4, 1)  # filled in for consumers
    assert imp.is_c_contiguous()
    assert np.array_equal(np.frombuffer(imp, np.int16).reshape(3, 4), arr)


def test_export_read_only():
    arr = np.arange(4, dtype=np.float32)
    cap = _C.to_dlpack(arr, arr.ctypes.data, [4], None, kDLFloat, 32, kDLCPU, 0, True, True)
    imp = _C.from_dlpack_capsule(cap)
    assert imp.read_only and imp.versioned
    assert imp.host_buffer().readonly
    with pytest.raises(BufferError):
        _C.to_dlpack(arr, arr.ctypes.data, [4], None, kDLFloat, 32, kDLCPU, 0, False, True)
    out = np.from_dlpack(Exporter(arr, read_only=True))
    if tuple(int(v) for v in np.__version__.split(".")[:2]) >= (2, 1):
        assert not out.flags.writeable


def test_export_bfloat16_codes():
    payload = np.arange(8, dtype=np.uint16)
    cap = _C.to_dlpack(payload, payload.ctypes.data, [2, 4], None, kDLBfloat, 16, kDLCPU, 0, True)
    imp = _C.from_dlpack_capsule(cap)
    assert (imp.dtype_code, imp.dtype_bits, imp.dtype_lanes) == (kDLBfloat, 16, 1)
    assert imp.shape == (2, 4) and imp.nbytes == 16 and imp.data_ptr == payload.ctypes.data
    ml_dtypes = pytest.importorskip("ml_dtypes")
    bf = np.frombuffer(imp, dtype=ml_dtypes.bfloat16).reshape(imp.shape)
    assert bf.view(np.uint16).tolist() == payload.reshape(2, 4).tolist()


def test_export_device_fields():
    arr = np.zeros(4, np.float32)
    cap = _C.to_dlpack(arr, 0x1000000000000, [4], [1], kDLFloat, 32, kDLCUDA, 3, True)
    imp = _C.from_dlpack_capsule(cap)
    assert (imp.device_type, imp.device_id, imp.data_ptr) == (kDLCUDA, 3, 0x1000000000000)
    with pytest.raises(ValueError, match="kDLCPU"):
        imp.host_buffer()


@pytest.mark.parametrize(
    "args",
    [
        dict(shape=[2, -1]),
        dict(strides=[1]),
        dict(dtype_bits=0),
        dict(dtype_bits=256),
        dict(dtype_code=300),
        dict(device_type=0),
        dict(device_id=-1),
    ],
)
def test_export_validation(args):
    arr = np.zeros(4, np.float32)
    kw = dict(owner=arr, data_ptr=arr.ctypes.data, shape=[2, 2], strides=None, dtype_code=kDLFloat,
              dtype_bits=32, device_type=kDLCPU, device_id=0, versioned=True)
    kw.update(args)
    with pytest.raises(ValueError):
        _C.to_dlpack(**kw)


@pytest.mark.parametrize("versioned", [False, True])
def test_owner_kept_alive_until_consumer_frees(versioned):
    arr = np.arange(100, dtype=np.float64)
    owner = Owner(arr)
    ref = weakref.ref(owner)
    exp = Exporter(arr, owner=owner)
    del arr
    rc = sys.getrefcount(owner)
    cap = exp.__dlpack__(max_version=(1, 0) if versioned else None)
    assert sys.getrefcount(owner) == rc + 1
    del exp, owner
    gc.collect()
    assert ref() is not None  # the capsule holds it
    out = np.from_dlpack(_Wrap(cap))
    del cap
    gc.collect()
    assert ref() is not None  # the consumer (numpy array) holds it
    assert out[99] == 99.0
    del out
    gc.collect()
    assert ref() is None  # deleter ran and dropped it


def test_unconsumed_capsule_releases_owner():
    arr = np.arange(10, dtype=np.float32)
    owner = Owner(arr)
    ref = weakref.ref(owner)
    for versioned in (False, True):
        cap = _C.to_dlpack(owner, arr.ctypes.data, [10], None, kDLFloat, 32, kDLCPU, 0, versioned)
        assert sys.getrefcount(owner) >= 3
        del cap
    del owner
    gc.collect()
    assert ref() is None


def test_deleter_from_another_thread():
    arr = np.arange(10, dtype=np.float32)
    owner = Owner(arr)
    ref = weakref.ref(owner)
    imp = _C.from_dlpack_capsule(_C.to_dlpack(owner, arr.ctypes.data, [10], None, kDLFloat, 32, kDLCPU, 0, True))
    del owner
    t = threading.Thread(target=imp.release)
    t.start()
    t.join()
    gc.collect()
    assert ref() is None and imp.released


class _Wrap:
    """Hands an existing capsule to np.from_dlpack."""

    def __init__(self, cap):
        self.cap = cap

    def __dlpack_device__(self):
        return (kDLCPU, 0)

    def __dlpack__(self, stream=None, max_version=None, dl_device=None, copy=None):
        cap, self.cap = self.cap, None
        return cap


# --------------------------------------------------------------------------- import


@pytest.mark.parametrize("max_version", [None, (1, 0)])
@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.uint8, np.bool_, np.complex128, np.float16])
def test_import_numpy_capsules(max_version, dtype):
    arr = (np.arange(24) % 7).astype(dtype).reshape(2, 3, 4)
    try:
        cap = arr.__dlpack__() if max_version is None else arr.__dlpack__(max_version=max_version)
    except TypeError:
        pytest.skip("this numpy does not support max_version")
    imp = _C.from_dlpack_capsule(cap)
    assert imp.versioned == (max_version is not None)
    assert "used_dltensor" in repr(cap)
    code, bits = dl_dtype(arr.dtype)
    assert (imp.dtype_code, imp.dtype_bits, imp.dtype_lanes) == (code, bits, 1)
    assert imp.shape == (2, 3, 4) and imp.ndim == 3
    assert (imp.device_type, imp.device_id) == (kDLCPU, 0)
    assert imp.data_ptr == arr.ctypes.data
    assert imp.nbytes == arr.nbytes
    assert imp.is_c_contiguous()
    assert imp.strides is None or imp.strides == (12, 4, 1)
    assert not imp.read_only
    mv = imp.host_buffer()
    assert len(mv) == arr.nbytes and not mv.readonly
    assert bytes(mv) == arr.tobytes()
    with pytest.raises(ValueError, match="consumed"):
        _C.from_dlpack_capsule(cap)


def test_import_writes_reach_producer():
    arr = np.zeros(8, np.int32)
    imp = _C.from_dlpack_capsule(arr.__dlpack__())
    np.frombuffer(imp, np.int32)[:] = 7
    assert arr.tolist() == [7] * 8


def test_import_read_only_numpy():
    arr = np.arange(6, dtype=np.float32)
    arr.flags.writeable = False
    try:
        cap = arr.__dlpack__(max_version=(1, 0))
    except (TypeError, BufferError):
        pytest.skip("this numpy cannot export read-only arrays")
    imp = _C.from_dlpack_capsule(cap)
    assert imp.read_only
    assert imp.host_buffer().readonly
    view = np.frombuffer(imp, np.float32)
    assert not view.flags.writeable
    assert view.tolist() == arr.tolist()


def test_import_strided():
    base = np.arange(24, dtype=np.float64).reshape(4, 6)
    arr = base[:, 1::2].T  # shape (3, 4), strides (2, 6) elements
    imp = _C.from_dlpack_capsule(arr.__dlpack__())
    assert imp.shape == (3, 4) and imp.strides == (2, 6)
    assert not imp.is_c_contiguous()
    assert imp.nbytes == 12 * 8
    buf = imp.host_buffer()
    rebuilt = np.ndarray(imp.shape, np.float64, buffer=buf, strides=[s * 8 for s in imp.strides])
    assert np.array_equal(rebuilt, arr)


def test_import_keeps_data_alive_through_numpy_views():
    arr = np.arange(1000, dtype=np.float32)
    producer = weakref.ref(arr)
    imp = _C.from_dlpack_capsule(arr.__dlpack__())
    del arr
    view = np.frombuffer(imp, np.float32)
    mv_view = np.frombuffer(imp.host_buffer(), np.float32)
    del imp
    gc.collect()
    assert producer() is not None  # numpy's deleter has not run
    assert view[999] == 999.0 and mv_view[10] == 10.0
    del view
    gc.collect()
    assert producer() is not None  # mv_view still holds it
    del mv_view
    gc.collect()
    assert producer() is None


def test_release_is_idempotent_and_deferred_while_viewed():
    arr = np.arange(10, dtype=np.int64)
    producer = weakref.ref(arr)
    imp = _C.from_dlpack_capsule(arr.__dlpack__())
    del arr
    view = np.frombuffer(imp, np.int64)
    imp.release()
    gc.collect()
    assert imp.released and producer() is not None  # deferred: a view is alive
    assert view.sum() == 45
    with pytest.raises(ValueError, match="released"):
        imp.host_buffer()
    del view
    gc.collect()
    assert producer() is None
    imp.release()
    imp.release()
    assert imp.shape == (10,)  # metadata stays readable


def test_destructor_calls_deleter():
    arr = np.arange(10, dtype=np.int64)
    producer = weakref.ref(arr)
    imp = _C.from_dlpack_capsule(arr.__dlpack__(max_version=(1, 0)))
    del arr
    gc.collect()
    assert producer() is not None
    del imp
    gc.collect()
    assert producer() is None


# --------------------------------------------------------------------------- hand-made capsules (ABI check)


class DLDevice(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]


class DLDataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class DLTensor(ctypes.Structure):
    _fields_ = [
        ("data", ctypes.c_void_p),
        ("device", DLDevice),
        ("ndim", ctypes.c_int32),
        ("dtype", DLDataType),
        ("shape", ctypes.POINTER(ctypes.c_int64)),
        ("strides", ctypes.POINTER(ctypes.c_int64)),
        ("byte_offset", ctypes.c_uint64),
    ]


class DLManagedTensor(ctypes.Structure):
    pass


DELETER = ctypes.CFUNCTYPE(None, ctypes.POINTER(DLManagedTensor))
DLManagedTensor._fields_ = [("dl_tensor", DLTensor), ("manager_ctx", ctypes.c_void_p), ("deleter", DELETER)]

_PyCapsule_New = ctypes.pythonapi.PyCapsule_New
_PyCapsule_New.restype = ctypes.py_object
_PyCapsule_New.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]


def _legacy_capsule(arr: np.ndarray, name: bytes, byte_offset: int = 0, null_strides: bool = True):
    shape = (ctypes.c_int64 * arr.ndim)(*arr.shape)
    deleted: list[int] = []
    mt = DLManagedTensor()
    mt.dl_tensor.data = arr.ctypes.data
    mt.dl_tensor.device = DLDevice(kDLCPU, 0)
    mt.dl_tensor.ndim = arr.ndim
    mt.dl_tensor.dtype = DLDataType(*dl_dtype(arr.dtype), 1)
    mt.dl_tensor.shape = shape
    mt.dl_tensor.strides = None
    mt.dl_tensor.byte_offset = byte_offset
    deleter = DELETER(lambda p: deleted.append(1))
    mt.deleter = deleter
    keep = (shape, mt, deleter, arr)
    cap = _PyCapsule_New(ctypes.addressof(mt), name, None)
    return cap, deleted, keep


def test_import_null_strides_and_byte_offset():
    arr = np.arange(12, dtype=np.int32)
    cap, deleted, keep = _legacy_capsule(arr, b"dltensor", byte_offset=8)
    imp = _C.from_dlpack_capsule(cap)
    assert imp.strides is None and imp.is_c_contiguous()
    assert imp.data_ptr == arr.ctypes.data + 8
    assert imp.shape == (12,)
    assert np.frombuffer(imp, np.int32)[0] == 2
    assert deleted == []
    imp.release()
    assert deleted == [1]
    imp.release()
    assert deleted == [1]
    del keep


@pytest.mark.parametrize("name", [b"not_a_tensor", b"used_dltensor", b"used_dltensor_versioned"])
def test_invalid_capsules(name):
    arr = np.arange(4, dtype=np.int32)
    cap, deleted, keep = _legacy_capsule(arr, name)
    with pytest.raises(ValueError):
        _C.from_dlpack_capsule(cap)
    assert deleted == []
    del keep


@pytest.mark.parametrize("obj", [None, 3, b"dltensor", np.zeros(3)])
def test_non_capsules_are_rejected(obj):
    with pytest.raises(ValueError):
        _C.from_dlpack_capsule(obj)


def test_torch_round_trip():
    torch = pytest.importorskip("torch")
    t = torch.arange(12, dtype=torch.bfloat16).reshape(3, 4)
    imp = _C.from_dlpack_capsule(torch.utils.dlpack.to_dlpack(t))
    assert (imp.dtype_code, imp.dtype_bits) == (kDLBfloat, 16)
    assert imp.shape == (3, 4)
    arr = np.arange(6, dtype=np.float32)
    back = torch.from_dlpack(Exporter(arr))
    assert back.tolist() == arr.tolist()
