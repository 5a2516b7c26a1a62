"""Graph values that are not tensors: ONNX sequences, optionals and maps.

onnxruntime and onnx's reference implementation exchange them as Python objects (a list of arrays,
None or the element, a dict), and so does hal: they live on the host, host partitions read and write
them, and a session keeps every node that touches one on the host (no chip holds a list).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..device import Device
from ..capability import NodeInfo
from ..errors import UnsupportedOpError
from ..registry import device as get_device
from ..tensor import DeviceTensor, as_tensor

__all__ = ["HostValue", "as_value", "host_only_reason"]


class HostValue:
    """A sequence, optional or map value held by the host, beside a session's DeviceTensors. It
    answers the calls a session makes on a tensor that stays on the host (`device`, `host_view`,
    `numpy`, `to` the host)."""

    __slots__ = ("value", "device")

    def __init__(self, value: Any, device: Device | None = None):
        self.value = value
        self.device = device if device is not None else get_device("cpu:0")

    def host_view(self) -> Any:
        return self.value

    numpy = host_view

    def to(self, device: str | Device, **_: Any) -> HostValue:
        target = get_device(device) if not isinstance(device, Device) else device
        if target is self.device:
            return self
        raise UnsupportedOpError(
            f"a {type(self.value).__name__} value (an ONNX sequence, optional or map) stays on the host; "
            f"{target.name} holds tensors only"
        )

    def __repr__(self) -> str:
        return f"HostValue({type(self.value).__name__}, device={self.device.name})"


def as_value(value: Any) -> DeviceTensor | HostValue:
    """A host result as a session holds it: a cpu:0 tensor sharing a numpy array's memory, or a
    HostValue for a list, None or dict."""
    if isinstance(value, np.ndarray):
        return as_tensor(value)
    if value is None or isinstance(value, (list, tuple, dict)):
        return HostValue(value)
    return as_tensor(np.asarray(value))


def host_only_reason(node: NodeInfo) -> str | None:
    """Why a node must run on the host (it reads or writes a sequence, optional or map value, and
    no chip holds a list), or None when only tensors flow through it."""
    kinds = sorted({t.kind for t in (*node.inputs, *node.outputs) if t is not None and not t.is_tensor})
    if not kinds:
        return None
    return f"{node.op_type} reads or writes {', '.join(kinds)}, which only the host holds"
