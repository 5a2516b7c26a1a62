from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import hal
from hal import DType


def test_every_dtype_maps_both_ways():
    for dt in DType:
        assert hal.dtype(dt.numpy) is dt
        assert hal.dtype(dt.value) is dt
        assert DType.from_onnx(dt.onnx) is dt
        assert DType.from_dlpack(*dt.dlpack) is dt
        assert dt.itemsize == dt.numpy.itemsize


def test_onnx_codes_match_the_onnx_package():
    onnx = pytest.importorskip("onnx")
    for dt in DType:
        assert onnx.helper.tensor_dtype_to_np_dtype(dt.onnx) == dt.numpy


def test_bfloat16_is_ml_dtypes():
    assert DType.BFLOAT16.numpy == np.dtype(ml_dtypes.bfloat16)
    assert DType.BFLOAT16.dlpack == (4, 16, 1)


def test_torch_dtypes_are_accepted_without_importing_torch():
    torch = pytest.importorskip("torch")
    assert hal.dtype(torch.bfloat16) is DType.BFLOAT16
    assert getattr(torch, DType.BOOL.torch_name) is torch.bool


@pytest.mark.parametrize("bad", ["float17", object, np.dtype("U3"), 3.5])
def test_unknown_dtypes_raise_a_hal_error(bad):
    with pytest.raises(hal.UnsupportedDTypeError, match="float32"):
        hal.dtype(bad)


def test_unknown_foreign_codes_raise():
    with pytest.raises(hal.UnsupportedDTypeError):
        DType.from_onnx(8)  # STRING
    with pytest.raises(hal.UnsupportedDTypeError, match="lanes"):
        DType.from_dlpack(2, 32, 4)
