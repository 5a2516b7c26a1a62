"""The data a TensorProto holds must be as long as its dims say. onnx.checker does not look, and
a tensor that claims more (or fewer) elements than it holds fails deep inside whatever reads it
first (numpy's reshape, a kernel), or makes it allocate what the dims claim: 2**62 elements.
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from functools import cache

import onnx
from onnx import TensorProto

from ..errors import InvalidModelError

__all__ = ["check_tensor_data"]

# Element types that onnx packs below a byte: bits per element (onnx.numpy_helper unpacks them).
_PACKED_BITS = {
    getattr(TensorProto, name): bits
    for name, bits in (("INT4", 4), ("UINT4", 4), ("FLOAT4E2M1", 4), ("INT2", 2), ("UINT2", 2),
                       ("FLOAT6E2M3", 6), ("FLOAT6E3M2", 6))
    if hasattr(TensorProto, name)
}
_TWO_VALUES_PER_ELEMENT = (TensorProto.COMPLEX64, TensorProto.COMPLEX128)  # real, imaginary


@cache
def _layout(data_type: int) -> tuple[str, int] | None:
    """(typed field, bytes per element in raw_data) of an element type; None for one onnx does not know."""
    try:
        field = onnx.helper.tensor_dtype_to_field(data_type)
        itemsize = onnx.helper.tensor_dtype_to_np_dtype(data_type).itemsize
    except (KeyError, ValueError, TypeError):
        return None
    return field, itemsize


def check_tensor_data(tensors: Iterable[TensorProto], source: str) -> None:
    """Every in-line tensor holds exactly the elements its dims say (external ones are checked
    once their data is read); raises InvalidModelError naming the tensor otherwise."""
    for tensor in tensors:
        if tensor.data_location == TensorProto.EXTERNAL or tensor.HasField("segment"):
            continue
        layout = _layout(tensor.data_type)
        if layout is None:
            continue  # onnx.checker names the unknown element type
        what = f"{source}: tensor {tensor.name!r} has dims {list(tensor.dims)}"
        if any(d < 0 for d in tensor.dims):
            raise InvalidModelError(f"{what}, a negative size; the file is damaged or its exporter is faulty: export it again")
        field, itemsize = layout
        if math.prod(d for d in tensor.dims if d) * itemsize >= 1 << 63:  # even with a 0 among them: numpy refuses it
            raise InvalidModelError(
                f"{what}: with {itemsize}-byte elements its sizes multiply past 2**63 bytes, which no runtime can index; "
                "export it again"
            )
        elements = math.prod(tensor.dims)
        bits = _PACKED_BITS.get(tensor.data_type)
        if tensor.HasField("raw_data"):
            expected = (elements * bits + 7) // 8 if bits else elements * itemsize
            held, unit = len(tensor.raw_data), "bytes of raw_data"
        else:
            per_element = 2 if tensor.data_type in _TWO_VALUES_PER_ELEMENT else 1
            expected = (elements * bits + 7) // 8 if bits else elements * per_element
            held, unit = len(getattr(tensor, field)), f"values in {field}"
        if held != expected:
            raise InvalidModelError(
                f"{what} ({elements} elements of {TensorProto.DataType.Name(tensor.data_type)}), so {expected} {unit}, "
                f"but holds {held}; the file is damaged or its exporter is faulty: export it again"
            )
