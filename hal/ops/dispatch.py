"""Running one kernel on numpy arrays or DeviceTensors: numpy in, numpy out (the CPU kernel, in
place, no copies); DeviceTensors in, DeviceTensors out on the first tensor's device (the CPU
reads its memory directly; other devices run the kernel through their backend's run_kernel)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..dtypes import dtype as as_dtype
from ..errors import InvalidArgumentError, UnsupportedDTypeError, UnsupportedOpError
from ..capability import NodeInfo, TensorInfo
from ..tensor import DeviceTensor, empty, tensor
from .registry import find, on_registry_change

__all__ = ["call", "kernel_node", "registry_changed"]

_host_kernels: dict[tuple[str, str, np.dtype], Any] = {}
"""(domain, op, numpy dtype) -> the CPU kernel: numpy calls skip the dtype-name lookup."""


@on_registry_change
def registry_changed() -> None:
    _host_kernels.clear()


def call(domain: str, op: str, inputs: Sequence[Any], attrs: Mapping[str, Any]) -> Any:
    """Runs (domain, op) on `inputs`; returns one output, or a tuple when the kernel has several."""
    # The common case, kept short (it is most of a 4 KiB call): numpy arrays in, the CPU kernel of
    # the first one's dtype.
    arrays = list(inputs)
    for value in arrays:
        if type(value) is not np.ndarray:
            break
    else:
        if arrays:
            key = (domain, op, arrays[0].dtype)
            kernel = _host_kernels.get(key)
            if kernel is None:
                kernel = _host_kernels[key] = find(domain, op, "cpu", _dtype_name(arrays[0], op))
            outputs = kernel.run(arrays, attrs if type(attrs) is dict else dict(attrs))
            return outputs[0] if len(outputs) == 1 else tuple(outputs)
    attrs = dict(attrs)
    devices = [x.device for x in inputs if isinstance(x, DeviceTensor)]
    if not devices:
        arrays = [_host_array(x, op, i) for i, x in enumerate(inputs)]
        if not arrays:
            raise InvalidArgumentError(f"{domain}::{op} needs at least one input")
        kernel = find(domain, op, "cpu", _dtype_name(arrays[0], op))
        return _single(kernel.run(arrays, attrs))
    device = devices[0]
    stray = next((d for d in devices if d is not device), None)
    if stray is not None:
        raise InvalidArgumentError(
            f"{domain}::{op}: inputs are on {device.name} and {stray.name}; move them to one device first (t.to('{device.name}'))"
        )
    tensors = [x if isinstance(x, DeviceTensor) else tensor(_host_array(x, op, i), device=device) for i, x in enumerate(inputs)]
    kernel = find(domain, op, device.spec.kind, str(tensors[0].dtype))
    if device.spec.host_addressable:
        return _single(_run_host_device(kernel, tensors, attrs, device))
    runner = getattr(device.backend, "run_kernel", None)
    if runner is None:
        raise UnsupportedOpError(f"the {device.spec.kind} backend cannot run kernels on its devices (it has no run_kernel)")
    return _single(runner(kernel, kernel_node(domain, op, tensors, attrs), tensors, attrs, device))


def kernel_node(domain: str, op: str, tensors: Sequence[DeviceTensor | np.ndarray], attrs: Mapping[str, Any],
                outputs: Sequence[tuple[str, tuple[int, ...]]] | None = None) -> NodeInfo:
    """A NodeInfo describing one kernel call, for the cost model and the chip's numerics."""
    ins = tuple(TensorInfo(f"in{i}", as_dtype(t.dtype), tuple(t.shape)) for i, t in enumerate(tensors))
    outs = tuple(TensorInfo(f"out{i}", as_dtype(d), tuple(s)) for i, (d, s) in enumerate(outputs or ()))
    return NodeInfo(op, op, domain, 1, ins, outs, dict(attrs))


def _run_host_device(kernel, tensors: list[DeviceTensor], attrs: dict[str, Any], device) -> list[DeviceTensor]:
    """The CPU: kernels read and write device memory in place."""
    views = [t.host_view() for t in tensors]
    specs = kernel.infer([(str(t.dtype), t.shape) for t in tensors], attrs)
    if specs is None:  # a Python kernel without infer=: its results become tensors
        from ..tensor import as_tensor

        return [as_tensor(np.ascontiguousarray(v)) for v in kernel.run(views, attrs)]
    outputs = [empty(shape, dtype, device=device) for dtype, shape in specs]
    kernel.run(views, attrs, [o.host_view() for o in outputs])
    return outputs


def _host_array(value: Any, op: str, index: int) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value
    try:
        return np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(f"{op}: input {index} cannot be made an array: {exc}") from None


def _dtype_name(array: np.ndarray, op: str) -> str:
    try:
        return str(as_dtype(array.dtype))
    except UnsupportedDTypeError:
        raise UnsupportedDTypeError(f"{op}: inputs of dtype {array.dtype} have no kernel; hal.ops.registry() lists what does") from None


def _single(outputs: list[Any]) -> Any:
    return outputs[0] if len(outputs) == 1 else tuple(outputs)
