"""Linear algebra ONNX ops: MatMul, Gemm, Einsum (torch's matmul, addmm, einsum)."""
from __future__ import annotations

from .registry import FLOAT, register


@register("MatMul", FLOAT)
def _matmul(ctx, attrs, n):
    return ctx.torch.matmul


@register("Gemm", FLOAT)
def _gemm(ctx, attrs, n):
    alpha, beta = float(attrs.get("alpha", 1.0)), float(attrs.get("beta", 1.0))
    trans_a, trans_b = attrs.get("transA", 0), attrs.get("transB", 0)
    torch = ctx.torch
    weight = ctx.known[1] if len(ctx.known) > 1 else None
    if weight is not None and trans_b:
        weight = weight.t().contiguous()  # transposed once, at compile time

    def gemm(a, b, c=None):
        if trans_a:
            a = a.t()
        if weight is not None:
            b = weight
        elif trans_b:
            b = b.t()
        if c is not None and alpha == 1.0 and beta == 1.0:
            return torch.addmm(c, a, b) if c.dim() <= 2 else torch.matmul(a, b) + c
        out = torch.matmul(a, b)
        if alpha != 1.0:
            out = out * alpha
        if c is not None:
            out = out + (c * beta if beta != 1.0 else c)
        return out
    return gemm


@register("Einsum", FLOAT)
def _einsum(ctx, attrs, n):
    equation = attrs["equation"]
    equation = equation.decode() if isinstance(equation, bytes) else equation
    torch = ctx.torch
    return lambda *xs: torch.einsum(equation, *xs)
