"""Reduction ONNX ops: ReduceMean/Sum/Max/Min/Prod (axes from the attribute in old opsets, from
an input in new ones) and ArgMax/ArgMin."""
from __future__ import annotations

from ...capability import NodeInfo
from .registry import FLOAT, NUMERIC, register


def _reduce(fn_name: str, axes_input_from: int):
    """ReduceX: the axes are an attribute before opset `axes_input_from`, the second input from it on."""
    def build(ctx, attrs, n):
        keep = bool(attrs.get("keepdims", 1))
        noop = bool(attrs.get("noop_with_empty_axes", 0))
        axes_of = ctx.axes(attrs, 1) if ctx.opset >= axes_input_from or "axes" in attrs else (lambda _: None)
        torch = ctx.torch

        def run(x, axes_tensor=None):
            axes = axes_of(axes_tensor)
            if not axes:
                if noop:
                    return x
                axes = list(range(x.dim()))
            dims = tuple(axes)
            if x.numel() == 0 and fn_name in ("amax", "amin"):  # ONNX: the identity of an empty max/min
                shape = [1 if i in {a % x.dim() for a in dims} else n for i, n in enumerate(x.shape)]
                if not keep:
                    shape = [n for i, n in enumerate(x.shape) if i not in {a % x.dim() for a in dims}]
                fill = float("-inf") if fn_name == "amax" else float("inf")
                if not x.is_floating_point():
                    info = torch.iinfo(x.dtype)
                    fill = info.min if fn_name == "amax" else info.max
                return torch.full(shape, fill, dtype=x.dtype, device=x.device)
            if fn_name == "mean":
                return x.mean(dim=dims, keepdim=keep)
            if fn_name == "sum":
                return x.sum(dim=dims, keepdim=keep)
            if fn_name == "amax":
                return x.amax(dim=dims, keepdim=keep)
            if fn_name == "amin":
                return x.amin(dim=dims, keepdim=keep)
            out = x
            for d in sorted((a % x.dim() for a in dims), reverse=True):
                out = torch.prod(out, d, keepdim=keep)
            return out
        return run
    return build


register("ReduceMean", FLOAT)(_reduce("mean", 18))
register("ReduceSum", NUMERIC)(_reduce("sum", 13))
register("ReduceMax", NUMERIC)(_reduce("amax", 18))
register("ReduceMin", NUMERIC)(_reduce("amin", 18))
register("ReduceProd", NUMERIC)(_reduce("prod", 18))


def _arg_fn(fn_name: str):
    def build(ctx, attrs, n):
        axis, keep = int(attrs.get("axis", 0)), bool(attrs.get("keepdims", 1))
        fn = getattr(ctx.torch, fn_name)
        return lambda x: fn(x, dim=axis, keepdim=keep)
    return build


def _arg_check(node: NodeInfo) -> str | None:
    return "select_last_index=1 is not implemented" if node.attributes.get("select_last_index", 0) else None


# the outputs are int64 indices whatever the data's type
register("ArgMax", NUMERIC, check=_arg_check, data_inputs=(0,), typed_outputs=False)(_arg_fn("argmax"))
register("ArgMin", NUMERIC, check=_arg_check, data_inputs=(0,), typed_outputs=False)(_arg_fn("argmin"))
