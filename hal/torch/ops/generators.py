"""ONNX ops that make a tensor from attributes or scalars: Constant, ConstantOfShape, Range. A
Constant's value is moved to the device once, at compile time."""
from __future__ import annotations

from ...errors import UnsupportedOpError
from ..tensors import numpy_to_torch
from .registry import DATA, NUMERIC, as_ints, register


@register("ConstantOfShape", DATA, data_inputs=(), typed_outputs=False)
def _constant_of_shape(ctx, attrs, n):
    from onnx import numpy_helper

    torch, device = ctx.torch, ctx.device
    value = attrs.get("value")
    fill = numpy_to_torch(torch, numpy_helper.to_array(value), device).reshape(()) if value is not None else torch.tensor(0.0, device=device)
    return lambda shape: fill.expand(as_ints(shape)).clone()


@register("Constant", DATA)
def _constant(ctx, attrs, n):
    from onnx import numpy_helper

    torch, device = ctx.torch, ctx.device
    if "value" in attrs:
        value = numpy_to_torch(torch, numpy_helper.to_array(attrs["value"]), device)
    elif "value_float" in attrs:
        value = torch.tensor(attrs["value_float"], dtype=torch.float32, device=device)
    elif "value_floats" in attrs:
        value = torch.tensor(list(attrs["value_floats"]), dtype=torch.float32, device=device)
    elif "value_int" in attrs:
        value = torch.tensor(attrs["value_int"], dtype=torch.int64, device=device)
    elif "value_ints" in attrs:
        value = torch.tensor(list(attrs["value_ints"]), dtype=torch.int64, device=device)
    else:
        raise UnsupportedOpError(f"the torch executor's Constant takes value, value_float(s) or value_int(s), got {sorted(attrs)}")
    return lambda: value


@register("Range", NUMERIC)
def _range(ctx, attrs, n):
    torch, device = ctx.torch, ctx.device
    return lambda start, limit, delta: torch.arange(start.item(), limit.item(), delta.item(), dtype=start.dtype, device=device)
