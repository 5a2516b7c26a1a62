"""Checking the inputs fed to a model before each run: known names, the declared dtype (no silent
casts), rank, fixed dimensions, symbolic dimensions ("batch") that every input gives one size, and
sequence, optional and map inputs, passed on as onnxruntime takes them.
"""
from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import numpy as np
import onnx

from ..dtypes import DType
from ..errors import InvalidInputError
from ..capability import Dim, TensorInfo
from .model import LoadedModel, _names

__all__ = ["check_feed", "validate_feeds"]


def check_feed(
    info: TensorInfo,
    shape: tuple[int, ...],
    dtype: DType,
    *,
    bindings: dict[str, int],
    bound_by: dict[str, str] | None = None,
) -> None:
    """Raises InvalidInputError unless a value of `dtype` and `shape` fits input `info`.

    `bindings` maps each symbolic dimension ("batch") to the size an earlier input gave it and
    gets this input's sizes; `bound_by`, when given, remembers which input bound each name.
    """
    if info.dtype is not None and dtype is not info.dtype:
        raise _dtype_mismatch(info, dtype.value)
    _check_shape(info, shape, bindings, bound_by)


def validate_feeds(model: LoadedModel, feeds: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The feeds as C-contiguous numpy arrays, in input order, once every one fits its input.

    No casts: a dtype that differs from the declared one is an InvalidInputError, as are unknown
    or missing names, a wrong rank, a wrong fixed dimension, or a symbolic dimension ("batch")
    that two inputs give different sizes.
    """
    if type(feeds) is not dict and not isinstance(feeds, Mapping):
        raise InvalidInputError(
            f"feeds must be a mapping of input name to array, got {type(feeds).__name__}; "
            f"{model._label} takes {_names(model._inputs_by_name)}"
        )
    if not model._input_names.issuperset(feeds):
        unknown = [name for name in feeds if name not in model._input_names]
        raise InvalidInputError(
            f"{model._label} has no input named {', '.join(map(repr, unknown))}; "
            f"its inputs are {_names(model._inputs_by_name)}"
        )
    arrays: dict[str, np.ndarray] = {}
    bindings: dict[str, int] = {}
    bound_by: dict[str, str] = {}
    for name, numpy_dtype, info in model._feed_specs:
        try:
            value = feeds[name]
        except KeyError:
            raise InvalidInputError(
                f"input {name!r} ({_describe(info)}) is missing; {model._label} needs "
                f"{_names(model._inputs_by_name)}"
            ) from None
        if info.kind != "tensor":
            arrays[name] = _host_value(info.name, info.kind, value)
            continue
        try:
            array = np.asarray(value)
        except (TypeError, ValueError) as e:
            raise InvalidInputError(
                f"input {name!r} cannot be made a numpy array ({e}); pass a numpy array of {_describe(info)}"
            ) from None
        if numpy_dtype is not None and array.dtype != numpy_dtype:
            raise _dtype_mismatch(info, str(array.dtype))
        _check_shape(info, array.shape, bindings, bound_by)
        if not array.flags.c_contiguous:
            array = np.ascontiguousarray(array)
        arrays[name] = array
    return arrays


def _format_shape(shape: tuple[Dim, ...]) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"


def _describe(info: TensorInfo) -> str:
    dtype = "any dtype" if info.dtype is None else info.dtype.value
    return f"{dtype} {'of any shape' if info.shape is None else _format_shape(info.shape)}"


def _host_value(name: str, kind: str, value: Any) -> Any:
    """A feed for a sequence, optional or map input, checked against its ONNX type and passed on
    as onnxruntime takes it: a list of C-contiguous arrays, None, a dict."""
    if kind.startswith("optional("):
        return None if value is None else _host_value(name, kind[len("optional("):-1], value)
    if kind.startswith("seq("):
        if isinstance(value, np.ndarray) or not isinstance(value, (list, tuple)):
            raise InvalidInputError(
                f"input {name!r} is a sequence ({kind}): pass a list of numpy arrays, got {type(value).__name__}"
            )
        element = kind[len("seq("):-1]
        return [_host_value(f"{name}[{i}]", element, item) for i, item in enumerate(value)]
    if kind.startswith("map("):
        if not isinstance(value, Mapping):
            raise InvalidInputError(f"input {name!r} is a map ({kind}): pass a dict, got {type(value).__name__}")
        return dict(value)
    if value is None or isinstance(value, (list, tuple, Mapping)):
        raise InvalidInputError(f"{name} must be a {kind}: pass a numpy array, got {type(value).__name__}")
    array = np.ascontiguousarray(value)
    want = _element_numpy_dtype(kind)
    if want is not None and array.dtype != want:
        raise InvalidInputError(f"{name} must be a {kind}, got {array.dtype}; convert it with .astype({str(want)!r})")
    return array


@lru_cache(maxsize=None)
def _element_numpy_dtype(kind: str) -> np.dtype | None:
    """numpy's dtype for "tensor(float)" (None where onnx has none, or the text is not a tensor)."""
    if not (kind.startswith("tensor(") and kind.endswith(")")):
        return None
    try:
        return onnx.helper.tensor_dtype_to_np_dtype(onnx.TensorProto.DataType.Value(kind[len("tensor("):-1].upper()))
    except (ValueError, KeyError, TypeError):
        return None


def _dtype_mismatch(info: TensorInfo, got: str) -> InvalidInputError:
    return InvalidInputError(
        f"input {info.name!r} must be {info.dtype}, got {got}; hal does not cast silently: "
        f"convert it with .astype({str(info.dtype)!r})"
    )


def _check_shape(
    info: TensorInfo, shape: tuple[int, ...], bindings: dict[str, int], bound_by: dict[str, str] | None
) -> None:
    expected = info.shape
    if expected is None:
        return
    if len(shape) != len(expected):
        raise InvalidInputError(
            f"input {info.name!r} must have rank {len(expected)} {_format_shape(expected)}, "
            f"got rank {len(shape)} {list(shape)}"
        )
    for axis, want in enumerate(expected):
        got = shape[axis]
        if want is None or want == got:
            continue
        if type(want) is int:
            raise InvalidInputError(
                f"input {info.name!r} must have dimension {axis} = {want} (shape {_format_shape(expected)}), "
                f"got {got} (shape {list(shape)})"
            )
        bound = bindings.setdefault(want, got)
        if bound == got:
            if bound_by is not None:
                bound_by.setdefault(want, info.name)
            continue
        first = f"input {bound_by[want]!r}" if bound_by and want in bound_by else "an earlier input"
        raise InvalidInputError(
            f"{want} is {bound} in {first} but {got} in input {info.name!r} (dimension {axis}); "
            f"every input must give {want} the same size"
        )
