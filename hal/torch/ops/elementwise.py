"""Elementwise ONNX ops: arithmetic, comparison, logic, unary math, Clip, Where and casts; each is
one torch call (with ONNX's broadcasting, which torch shares)."""
from __future__ import annotations

from ...dtypes import DType
from .registry import DATA, FLOAT, LOGICAL, NUMERIC, register, torch_function

for _name, _fn in {"Add": "add", "Sub": "sub", "Mul": "mul"}.items():
    register(_name, NUMERIC)(torch_function(_fn))

# comparisons and logic: the outputs are bool whatever the inputs are
register("Equal", DATA, data_inputs=(0, 1), typed_outputs=False)(torch_function("eq"))
for _name, _fn in {"Less": "lt", "Greater": "gt", "LessOrEqual": "le", "GreaterOrEqual": "ge"}.items():
    register(_name, NUMERIC, data_inputs=(0, 1), typed_outputs=False)(torch_function(_fn))
for _name, _fn in {"And": "logical_and", "Or": "logical_or", "Xor": "logical_xor", "Not": "logical_not"}.items():
    register(_name, LOGICAL, typed_outputs=False)(torch_function(_fn))


@register("Div", NUMERIC)
def _div(ctx, attrs, n):
    torch = ctx.torch

    def div(a, b):  # ONNX integer division truncates toward zero
        if a.is_floating_point():
            return torch.div(a, b)
        return torch.div(a, b, rounding_mode="trunc")
    return div


@register("Pow", NUMERIC)
def _pow(ctx, attrs, n):
    torch = ctx.torch
    return lambda a, b: torch.pow(a, b).to(a.dtype)  # ONNX: the result has the base's type


@register("Mod", NUMERIC)
def _mod(ctx, attrs, n):
    return ctx.torch.fmod if attrs.get("fmod", 0) else ctx.torch.remainder


def _variadic(fn_name: str):
    """Max, Min, Sum over any number of inputs: the binary torch function folded left to right."""
    def build(ctx, attrs, n):
        fn = getattr(ctx.torch, fn_name)

        def reduce(*xs):
            out = xs[0]
            for x in xs[1:]:
                out = fn(out, x)
            return out
        return reduce
    return build


register("Max", NUMERIC)(_variadic("maximum"))
register("Min", NUMERIC)(_variadic("minimum"))
register("Sum", NUMERIC)(_variadic("add"))

for _name, _fn in {"Exp": "exp", "Log": "log", "Sqrt": "sqrt", "Reciprocal": "reciprocal", "Erf": "erf",
                   "Sin": "sin", "Cos": "cos", "Floor": "floor", "Ceil": "ceil", "Round": "round"}.items():
    register(_name, FLOAT)(torch_function(_fn))
for _name, _fn in {"Neg": "neg", "Abs": "abs", "Sign": "sign"}.items():
    register(_name, NUMERIC)(torch_function(_fn))


@register("Identity", DATA)
def _identity(ctx, attrs, n):
    return lambda x: x


@register("Clip", NUMERIC, min_opset=11)
def _clip(ctx, attrs, n):
    torch = ctx.torch

    def clip(x, low=None, high=None):
        return x if low is None and high is None else torch.clamp(x, low, high)
    return clip


@register("Where", DATA, data_inputs=(1, 2))
def _where(ctx, attrs, n):
    return ctx.torch.where


@register("Cast", DATA, data_inputs=(0,), typed_outputs=False,
          check=lambda node: None if int(node.attributes.get("to", 1)) in {d.onnx for d in DATA} else "only casts between bool, integer and float16/bfloat16/float32/float64 types")
def _cast(ctx, attrs, n):
    target = getattr(ctx.torch, DType.from_onnx(int(attrs["to"])).torch_name)
    return lambda x: x.to(target)


@register("CastLike", DATA, typed_outputs=False)
def _cast_like(ctx, attrs, n):
    return lambda x, like: x.to(like.dtype)
