"""Shape and data-movement ONNX ops: Shape, Reshape, Transpose, Concat, Split, Squeeze,
Gather, Slice, Expand, Tile, Pad... Shape operands known at compile time (the usual case: an
initializer or a folded Shape subgraph) are read once there, as Python ints."""
from __future__ import annotations

import math
from typing import Any

from ...dtypes import DType
from .registry import DATA, NUMERIC, as_ints, node_attr, register


@register("Shape", DATA | {DType.COMPLEX64}, typed_outputs=False)  # outputs int64
def _shape(ctx, attrs, n):
    torch, device = ctx.torch, ctx.device
    start, end = attrs.get("start", 0), attrs.get("end")
    return lambda x: torch.tensor(list(x.shape)[start:end], dtype=torch.int64, device=device)


@register("Size", DATA, typed_outputs=False)  # outputs int64
def _size(ctx, attrs, n):
    torch, device = ctx.torch, ctx.device
    return lambda x: torch.tensor(x.numel(), dtype=torch.int64, device=device)


@register("Reshape", DATA, data_inputs=(0,), min_opset=5)
def _reshape(ctx, attrs, n):
    allow_zero = bool(attrs.get("allowzero", 0))
    fixed = ctx.ints(1)

    def target(x, dims):
        if allow_zero:
            return dims
        return [x.shape[i] if d == 0 else d for i, d in enumerate(dims)]

    if fixed is not None and (allow_zero or 0 not in fixed):
        return lambda x, _shape: x.reshape(fixed)
    return lambda x, shape: x.reshape(target(x, fixed if fixed is not None else as_ints(shape)))


@register("Flatten", DATA)
def _flatten(ctx, attrs, n):
    axis = int(attrs.get("axis", 1))

    def run(x):
        a = axis if axis >= 0 else x.dim() + axis
        return x.reshape(math.prod(x.shape[:a]), -1) if x.numel() else x.reshape(math.prod(x.shape[:a]), math.prod(x.shape[a:]))
    return run


@register("Transpose", DATA)
def _transpose(ctx, attrs, n):
    perm = attrs.get("perm")
    if perm is None:
        return lambda x: x.permute(*reversed(range(x.dim())))
    perm = list(perm)
    return lambda x: x.permute(perm)


@register("Concat", DATA)
def _concat(ctx, attrs, n):
    axis = int(attrs["axis"])
    torch = ctx.torch
    return lambda *xs: torch.cat(xs, axis)


@register("Split", DATA, data_inputs=(0,))
def _split(ctx, attrs, n):
    axis = int(attrs.get("axis", 0))
    torch = ctx.torch
    sizes = list(attrs["split"]) if "split" in attrs else ctx.ints(1)

    def run(x, split=None):
        parts = sizes if sizes is not None else (as_ints(split) if split is not None else None)
        if parts is None:
            dim = x.shape[axis]
            chunk = -(-dim // n)
            parts = [chunk] * (dim // chunk) + ([dim % chunk] if dim % chunk else [])
        return tuple(torch.split(x, parts, axis))
    return run


@register("Unsqueeze", DATA, data_inputs=(0,))
def _unsqueeze(ctx, attrs, n):
    axes_of = ctx.axes(attrs, 1)

    def run(x, axes_tensor=None):
        axes = axes_of(axes_tensor)
        rank = x.dim() + len(axes)
        for a in sorted(a % rank for a in axes):
            x = x.unsqueeze(a)
        return x
    return run


@register("Squeeze", DATA, data_inputs=(0,))
def _squeeze(ctx, attrs, n):
    axes_of = ctx.axes(attrs, 1)

    def run(x, axes_tensor=None):
        axes = axes_of(axes_tensor)
        if axes is None:
            return x.squeeze()
        return x.squeeze(tuple(a % x.dim() for a in axes)) if axes else x
    return run


@register("Gather", DATA, data_inputs=(0,))
def _gather(ctx, attrs, n):
    axis = int(attrs.get("axis", 0))
    torch = ctx.torch
    fixed = ctx.known[1] if len(ctx.known) > 1 else None

    def run(x, indices):
        if fixed is not None:  # constant indices: the compile-time tensor, already on the device
            indices = fixed
        a = axis % x.dim()
        positive = torch.where(indices < 0, indices + x.shape[a], indices)
        flat = torch.index_select(x, a, positive.reshape(-1).long())
        return flat.reshape(x.shape[:a] + indices.shape + x.shape[a + 1:])
    return run


@register("Slice", DATA, data_inputs=(0,), min_opset=10)
def _slice(ctx, attrs, n):
    consts = [ctx.ints(i) for i in range(1, 5)]

    def run(x, starts, ends, axes=None, steps=None):
        s = consts[0] if consts[0] is not None else as_ints(starts)
        e = consts[1] if consts[1] is not None else as_ints(ends)
        ax = consts[2] if consts[2] is not None else (as_ints(axes) if axes is not None else list(range(len(s))))
        st = consts[3] if consts[3] is not None else (as_ints(steps) if steps is not None else [1] * len(s))
        index: list[Any] = [slice(None)] * x.dim()
        flips = []
        for start, end, axis, step in zip(s, e, ax, st):
            dim = x.shape[axis % x.dim()]
            if step > 0:
                lo = max(0, min(dim, start + dim if start < 0 else start))
                hi = max(0, min(dim, end + dim if end < 0 else end))
                index[axis % x.dim()] = slice(lo, max(lo, hi), step)
            else:  # negative step: torch slices forward only, so flip then slice
                lo = max(-1, min(dim - 1, start + dim if start < 0 else start))
                hi = max(-1, min(dim - 1, end + dim if end < 0 else end))
                flips.append(axis % x.dim())
                index[axis % x.dim()] = slice(dim - 1 - lo, max(dim - 1 - lo, dim - 1 - hi), -step)
        if flips:
            x = x.flip(flips)
        return x[tuple(index)]
    return run


@register("Expand", DATA, data_inputs=(0,))
def _expand(ctx, attrs, n):
    torch = ctx.torch
    fixed = ctx.ints(1)

    def run(x, shape):
        dims = fixed if fixed is not None else as_ints(shape)
        return x.expand(torch.broadcast_shapes(x.shape, tuple(dims)))
    return run


@register("Tile", DATA, data_inputs=(0,))
def _tile(ctx, attrs, n):
    fixed = ctx.ints(1)
    return lambda x, reps: x.repeat(fixed if fixed is not None else as_ints(reps))


@register("Pad", NUMERIC, data_inputs=(0,), min_opset=11,
          check=lambda node: None if node_attr(node, "mode", "constant") in ("constant", "reflect", "edge") and len(node.inputs) < 4 else "only constant, reflect and edge modes over all axes")
def _pad(ctx, attrs, n):
    F = ctx.F
    mode = attrs.get("mode", b"constant")
    mode = {"constant": "constant", "reflect": "reflect", "edge": "replicate"}[mode.decode() if isinstance(mode, bytes) else mode]
    fixed = ctx.ints(1)

    def run(x, pads, value=None):
        p = fixed if fixed is not None else as_ints(pads)
        rank = x.dim()
        flat: list[int] = []
        for b, e in zip(reversed(p[:rank]), reversed(p[rank:])):
            flat += [b, e]
        while len(flat) > 2 and flat[-2:] == [0, 0]:  # torch pads the trailing dims only
            flat = flat[:-2]
        if mode == "constant":
            return F.pad(x, flat, value=float(value.item()) if value is not None else 0.0)
        return F.pad(x, flat, mode=mode)
    return run
