"""Reading ONNX types into TensorInfo: a value's hal dtype and shape (sizes, symbolic names, unknown
dimensions), or for sequences, maps and optionals onnxruntime's text for the type.
"""
from __future__ import annotations

from functools import lru_cache

import onnx

from ..dtypes import DType
from ..errors import UnsupportedDTypeError
from ..capability import Dim, TensorInfo

__all__: list[str] = []


@lru_cache(maxsize=None)
def _dtype(code: int) -> DType | None:
    """The hal dtype of an ONNX element type; None for those hal has none of (STRING...)."""
    try:
        return DType.from_onnx(code)
    except UnsupportedDTypeError:
        return None


def _dim(dim: onnx.TensorShapeProto.Dimension) -> Dim:
    kind = dim.WhichOneof("value")
    if kind == "dim_value":
        return dim.dim_value
    if kind == "dim_param":
        return dim.dim_param or None
    return None


def _type_info(value_type: onnx.TypeProto) -> tuple[DType | None, tuple[Dim, ...] | None, str]:
    kind = value_type.WhichOneof("value")
    if kind is None:
        return None, None, "tensor"  # no type at all: nothing says it is not a tensor
    if kind not in ("tensor_type", "sparse_tensor_type"):
        return None, None, _type_text(value_type)  # sequences, maps, optionals
    tensor_type = getattr(value_type, kind)
    shape = tuple(_dim(d) for d in tensor_type.shape.dim) if tensor_type.HasField("shape") else None
    return _dtype(tensor_type.elem_type), shape, "tensor"


def _type_text(value_type: onnx.TypeProto) -> str:
    """An ONNX type as onnxruntime's NodeArg.type writes it: "seq(tensor(float))"."""
    kind = value_type.WhichOneof("value")
    if kind in ("tensor_type", "sparse_tensor_type"):
        element = getattr(value_type, kind).elem_type
        name = onnx.TensorProto.DataType.Name(element).lower() if element else "undefined"
        return f"{'sparse_tensor' if kind == 'sparse_tensor_type' else 'tensor'}({name})"
    if kind == "sequence_type":
        return f"seq({_type_text(value_type.sequence_type.elem_type)})"
    if kind == "optional_type":
        return f"optional({_type_text(value_type.optional_type.elem_type)})"
    if kind == "map_type":
        key = onnx.TensorProto.DataType.Name(value_type.map_type.key_type).lower()
        return f"map({key},{_type_text(value_type.map_type.value_type)})"
    return "unknown"


def _unknown(name: str) -> TensorInfo:
    return TensorInfo(name, None, None)


def _tensor_infos(graph: onnx.GraphProto) -> dict[str, TensorInfo]:
    """Every main-graph value with a declared or inferred type; declared inputs and outputs win."""
    # Many values share a type; reading a type field by field costs far more than serializing it.
    types: dict[bytes, tuple[DType | None, tuple[Dim, ...] | None]] = {}

    def info(value: onnx.ValueInfoProto) -> TensorInfo:
        key = value.type.SerializeToString()
        known = types.get(key)
        if known is None:
            known = types[key] = _type_info(value.type)
        return TensorInfo(value.name, *known)

    tensors = {}
    for value in graph.value_info:
        tensors[value.name] = info(value)
    for tensor in graph.initializer:
        tensors[tensor.name] = TensorInfo(tensor.name, _dtype(tensor.data_type), tuple(tensor.dims))
    for sparse in graph.sparse_initializer:
        values = sparse.values
        tensors[values.name] = TensorInfo(values.name, _dtype(values.data_type), tuple(sparse.dims))
    for value in (*graph.output, *graph.input):
        tensors[value.name] = info(value)
    return tensors
