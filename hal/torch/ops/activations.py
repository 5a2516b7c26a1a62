"""Activation ONNX ops: Relu, Sigmoid, Tanh, Gelu and the other pointwise nonlinearities, and
Softmax / LogSoftmax, through torch and torch.nn.functional."""
from __future__ import annotations

import math

from .registry import FLOAT, NUMERIC, node_attr, register, torch_function

register("Relu", NUMERIC)(torch_function("relu"))
register("Sigmoid", FLOAT)(torch_function("sigmoid"))
register("Tanh", FLOAT)(torch_function("tanh"))


@register("Gelu", FLOAT, min_opset=20,
          check=lambda node: None if node_attr(node, "approximate", "none") in ("none", "tanh") else "approximate must be 'none' or 'tanh'")
def _gelu(ctx, attrs, n):
    approximate = attrs.get("approximate", b"none")
    approximate = approximate.decode() if isinstance(approximate, bytes) else approximate
    F = ctx.F
    return lambda x: F.gelu(x, approximate=approximate)


@register("LeakyRelu", FLOAT)
def _leaky_relu(ctx, attrs, n):
    alpha = attrs.get("alpha", 0.01)
    return lambda x: ctx.F.leaky_relu(x, alpha)


@register("Elu", FLOAT)
def _elu(ctx, attrs, n):
    alpha = attrs.get("alpha", 1.0)
    return lambda x: ctx.F.elu(x, alpha)


@register("Softplus", FLOAT)
def _softplus(ctx, attrs, n):
    return ctx.F.softplus


@register("HardSigmoid", FLOAT)
def _hard_sigmoid(ctx, attrs, n):
    alpha, beta = attrs.get("alpha", 0.2), attrs.get("beta", 0.5)
    return lambda x: (x * alpha + beta).clamp(0, 1)


def _softmax(log: bool):
    def build(ctx, attrs, n):
        fn = ctx.F.log_softmax if log else ctx.F.softmax
        if ctx.opset >= 13:
            axis = int(attrs.get("axis", -1))
            return lambda x: fn(x, axis)
        axis = int(attrs.get("axis", 1))

        def coerced(x):  # before opset 13: softmax over the input flattened from `axis` on
            a = axis if axis >= 0 else x.dim() + axis
            return fn(x.reshape(math.prod(x.shape[:a]), -1), -1).reshape(x.shape)
        return coerced
    return build


register("Softmax", FLOAT)(_softmax(log=False))
register("LogSoftmax", FLOAT)(_softmax(log=True))
