"""One DType enum, mapped to numpy, ONNX TensorProto, DLPack and torch.

ONNX and DLPack codes are written out here (they are frozen by those specs) so that `import hal`
needs neither onnx nor torch. bfloat16 comes from ml_dtypes, the same numpy extension type JAX and
onnx use.
"""
from __future__ import annotations

import enum
from typing import Any

import ml_dtypes
import numpy as np

from .errors import UnsupportedDTypeError

__all__ = ["DType", "dtype"]

# DLPack DLDataTypeCode values (dlpack.h).
_DL_INT, _DL_UINT, _DL_FLOAT, _DL_BFLOAT, _DL_COMPLEX, _DL_BOOL = 0, 1, 2, 4, 5, 6


class DType(enum.Enum):
    """An element type. The value is the canonical name ("float16")."""

    BOOL = "bool"
    INT8 = "int8"
    UINT8 = "uint8"
    INT16 = "int16"
    UINT16 = "uint16"
    INT32 = "int32"
    UINT32 = "uint32"
    INT64 = "int64"
    UINT64 = "uint64"
    FLOAT16 = "float16"
    BFLOAT16 = "bfloat16"
    FLOAT32 = "float32"
    FLOAT64 = "float64"
    COMPLEX64 = "complex64"
    COMPLEX128 = "complex128"

    @property
    def numpy(self) -> np.dtype:
        return _NUMPY[self]

    @property
    def itemsize(self) -> int:
        """Bytes per element."""
        return _NUMPY[self].itemsize

    @property
    def onnx(self) -> int:
        """The onnx.TensorProto.DataType code."""
        return _ONNX[self]

    @property
    def dlpack(self) -> tuple[int, int, int]:
        """DLPack (type code, bits, lanes)."""
        return _DLPACK[self]

    @property
    def torch_name(self) -> str:
        """The attribute of the `torch` module naming this dtype ("float16" -> torch.float16)."""
        return "bool" if self is DType.BOOL else self.value

    @property
    def is_floating(self) -> bool:
        return self in (DType.FLOAT16, DType.BFLOAT16, DType.FLOAT32, DType.FLOAT64)

    def __str__(self) -> str:
        return self.value

    @classmethod
    def from_onnx(cls, code: int) -> DType:
        try:
            return _FROM_ONNX[code]
        except KeyError:
            raise UnsupportedDTypeError(
                f"ONNX element type {code} has no hal dtype; supported ONNX codes: {sorted(_FROM_ONNX)}"
            ) from None

    @classmethod
    def from_dlpack(cls, code: int, bits: int, lanes: int = 1) -> DType:
        try:
            return _FROM_DLPACK[(code, bits, lanes)]
        except KeyError:
            raise UnsupportedDTypeError(
                f"DLPack dtype (code={code}, bits={bits}, lanes={lanes}) has no hal dtype; "
                "vector (lanes > 1) and sub-byte types are not supported"
            ) from None


_NUMPY: dict[DType, np.dtype] = {
    DType.BOOL: np.dtype(np.bool_),
    DType.INT8: np.dtype(np.int8),
    DType.UINT8: np.dtype(np.uint8),
    DType.INT16: np.dtype(np.int16),
    DType.UINT16: np.dtype(np.uint16),
    DType.INT32: np.dtype(np.int32),
    DType.UINT32: np.dtype(np.uint32),
    DType.INT64: np.dtype(np.int64),
    DType.UINT64: np.dtype(np.uint64),
    DType.FLOAT16: np.dtype(np.float16),
    DType.BFLOAT16: np.dtype(ml_dtypes.bfloat16),
    DType.FLOAT32: np.dtype(np.float32),
    DType.FLOAT64: np.dtype(np.float64),
    DType.COMPLEX64: np.dtype(np.complex64),
    DType.COMPLEX128: np.dtype(np.complex128),
}
_FROM_NUMPY = {v: k for k, v in _NUMPY.items()}

# onnx.TensorProto.DataType
_ONNX: dict[DType, int] = {
    DType.FLOAT32: 1, DType.UINT8: 2, DType.INT8: 3, DType.UINT16: 4, DType.INT16: 5,
    DType.INT32: 6, DType.INT64: 7, DType.BOOL: 9, DType.FLOAT16: 10, DType.FLOAT64: 11,
    DType.UINT32: 12, DType.UINT64: 13, DType.COMPLEX64: 14, DType.COMPLEX128: 15,
    DType.BFLOAT16: 16,
}
_FROM_ONNX = {v: k for k, v in _ONNX.items()}

_DLPACK: dict[DType, tuple[int, int, int]] = {
    DType.BOOL: (_DL_BOOL, 8, 1),
    DType.INT8: (_DL_INT, 8, 1), DType.INT16: (_DL_INT, 16, 1),
    DType.INT32: (_DL_INT, 32, 1), DType.INT64: (_DL_INT, 64, 1),
    DType.UINT8: (_DL_UINT, 8, 1), DType.UINT16: (_DL_UINT, 16, 1),
    DType.UINT32: (_DL_UINT, 32, 1), DType.UINT64: (_DL_UINT, 64, 1),
    DType.FLOAT16: (_DL_FLOAT, 16, 1), DType.FLOAT32: (_DL_FLOAT, 32, 1),
    DType.FLOAT64: (_DL_FLOAT, 64, 1), DType.BFLOAT16: (_DL_BFLOAT, 16, 1),
    DType.COMPLEX64: (_DL_COMPLEX, 64, 1), DType.COMPLEX128: (_DL_COMPLEX, 128, 1),
}
_FROM_DLPACK = {v: k for k, v in _DLPACK.items()}
_FROM_NAME = {d.value: d for d in DType}


def dtype(value: Any) -> DType:
    """Turns a DType, a name ("float16"), a numpy dtype/type or a torch dtype into a DType."""
    if isinstance(value, DType):
        return value
    if isinstance(value, str):
        found = _FROM_NAME.get(value)
        if found is not None:
            return found
    if type(value).__module__ == "torch":  # torch.float16 -> "float16", without importing torch
        name = str(value).removeprefix("torch.")
        if name in _FROM_NAME:
            return _FROM_NAME[name]
    try:
        found = _FROM_NUMPY.get(np.dtype(value))
    except TypeError:
        found = None
    if found is None:
        raise UnsupportedDTypeError(
            f"{value!r} is not a dtype hal knows; use one of: {', '.join(_FROM_NAME)}"
        )
    return found
