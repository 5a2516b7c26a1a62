"""hal's data as torch tensors: a DeviceTensor on a torch device viewed as a typed torch tensor
over the same memory, a numpy array copied onto a torch device, a DType's torch dtype. The driver
(DLPack export) and the executor (partition inputs, weights) both read tensors through here."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..dtypes import DType
from ..errors import UnsupportedOpError
from ._require import require_torch
from .buffers import TorchBuffer

if TYPE_CHECKING:
    from ..tensor import DeviceTensor

__all__ = ["torch_dtype", "torch_view", "numpy_to_torch"]


def torch_dtype(dt: DType) -> Any:
    """The torch dtype of a hal DType."""
    torch = require_torch("hal's torch driver")
    return getattr(torch, dt.torch_name)


def torch_view(tensor: DeviceTensor, driver: Any) -> Any:
    """A DeviceTensor of a torch device as a torch tensor sharing its memory."""
    if not isinstance(tensor.buffer, TorchBuffer):
        raise UnsupportedOpError(f"{driver.spec.device_name}: partition input on {tensor.device.name} must be copied here first")
    raw = tensor.buffer.view(tensor.offset, tensor.nbytes)
    return raw.view(torch_dtype(tensor.dtype)).reshape(tensor.shape)


def numpy_to_torch(torch: Any, array: np.ndarray, device: Any) -> Any:
    """A copy of `array` as a torch tensor on `device` (an initializer, a Constant's value)."""
    if array.dtype.kind in "biufc" and array.dtype.itemsize and array.dtype.name != "bfloat16":
        return torch.from_numpy(np.array(array, copy=True)).to(device)
    # bfloat16 (ml_dtypes) has no torch.from_numpy path: reinterpret the bits
    bits = torch.from_numpy(np.ascontiguousarray(array).view(np.uint16).copy())
    return bits.view(torch.bfloat16).to(device)
