"""Neural-network layer ONNX ops: convolution, normalization and pooling, through
torch.nn.functional. ONNX's pads may differ before and after an axis, torch's may not, so
asymmetric pads become an explicit F.pad first."""
from __future__ import annotations

from ...capability import NodeInfo
from .registry import FLOAT, node_attr, register


def _pads_symmetric(node: NodeInfo) -> str | None:
    pad_mode = node_attr(node, "auto_pad", "NOTSET")
    if pad_mode not in ("NOTSET", "VALID"):
        return f"auto_pad={pad_mode} is not implemented (export with explicit pads)"
    return None


def _torch_pad_list(pads: list[int], rank: int) -> list[int]:
    """ONNX pads [b1, b2, ..., e1, e2, ...] in F.pad's order (last dimension first)."""
    flat: list[int] = []
    for b, e in zip(reversed(pads[:rank]), reversed(pads[rank:])):
        flat += [b, e]
    return flat


def _split_pads(pads: list[int], rank: int) -> tuple[list[int], list[int] | None]:
    """ONNX pads [b1, b2, ..., e1, e2, ...] -> (symmetric per-dim pads, or F.pad's list when asymmetric)."""
    if pads[:rank] == pads[rank:]:
        return pads[:rank], None
    return [0] * rank, _torch_pad_list(pads, rank)


@register("Conv", FLOAT, check=_pads_symmetric, data_inputs=(0, 1, 2))
def _conv(ctx, attrs, n):
    F = ctx.F
    weight = ctx.known[1]
    rank = len(attrs["kernel_shape"]) if "kernel_shape" in attrs else (weight.dim() - 2 if weight is not None else None)
    if rank is None:  # no kernel_shape and a weight fed at run time: the weight's rank decides
        return lambda x, w, b=None: _conv_fn(F, attrs, w.dim() - 2)(x, w, b)
    return _conv_fn(F, attrs, rank)


def _conv_fn(F, attrs, rank):
    strides = list(attrs.get("strides", [1] * rank))
    dilations = list(attrs.get("dilations", [1] * rank))
    groups = int(attrs.get("group", 1))
    padding, extra = _split_pads(list(attrs.get("pads", [0] * 2 * rank)), rank)
    conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[rank]

    def run(x, w, b=None):
        if extra is not None:
            x = F.pad(x, extra)
        return conv(x, w, b, strides, padding, dilations, groups)
    return run


@register("BatchNormalization", FLOAT,
          check=lambda node: "training mode is not implemented" if node.attributes.get("training_mode", 0) or len(node.outputs) > 1 else None)
def _batch_norm(ctx, attrs, n):
    F = ctx.F
    eps = float(attrs.get("epsilon", 1e-5))
    return lambda x, scale, bias, mean, var: F.batch_norm(x, mean, var, scale, bias, False, 0.0, eps)


@register("LayerNormalization", FLOAT, min_opset=17,
          check=lambda node: "only the normalized output is implemented (not Mean, InvStdDev)" if len(node.outputs) > 1 else None)
def _layer_norm(ctx, attrs, n):
    F = ctx.F
    axis = int(attrs.get("axis", -1))
    eps = float(attrs.get("epsilon", 1e-5))

    def run(x, scale, bias=None):
        shape = x.shape[axis:] if axis >= 0 else x.shape[x.dim() + axis:]
        return F.layer_norm(x, shape, scale, bias, eps)
    return run


def _pool_check(node: NodeInfo) -> str | None:
    reason = _pads_symmetric(node)
    if reason:
        return reason
    if len(node.outputs) > 1:
        return "the Indices output is not implemented"
    if int(node.attributes.get("storage_order", 0)):
        return "storage_order=1 is not implemented"
    return None


@register("MaxPool", FLOAT, check=_pool_check)
def _max_pool(ctx, attrs, n):
    F = ctx.F
    kernel = list(attrs["kernel_shape"])
    rank = len(kernel)
    strides = list(attrs.get("strides", [1] * rank))
    dilations = list(attrs.get("dilations", [1] * rank))
    ceil = bool(attrs.get("ceil_mode", 0))
    pads = list(attrs.get("pads", [0] * 2 * rank))
    padding, extra = _split_pads(pads, rank)
    if any(p > ((k - 1) * d + 1) // 2 for p, k, d in zip(pads, kernel * 2, dilations * 2)):
        padding, extra = [0] * rank, _split_pads(pads, rank)[1] or _torch_pad_list(pads, rank)
    pool = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}[rank]

    def run(x):
        if extra is not None:
            x = F.pad(x, extra, value=float("-inf"))
        return pool(x, kernel, strides, padding, dilations, ceil_mode=ceil)
    return run


def _average_pool_check(node: NodeInfo) -> str | None:
    kernel = list(node.attributes.get("kernel_shape", []))
    pads = list(node.attributes.get("pads", [0] * 2 * len(kernel)))
    if any(d != 1 for d in node.attributes.get("dilations", [])):
        return "dilations are not implemented (torch's avg_pool has none)"
    if pads[: len(kernel)] != pads[len(kernel):]:
        return "asymmetric pads are not implemented"
    if any(p > k // 2 for p, k in zip(pads, kernel)):
        return "pads over half the kernel are not implemented (torch's limit)"
    return _pool_check(node)


@register("AveragePool", FLOAT, check=_average_pool_check)
def _average_pool(ctx, attrs, n):
    F = ctx.F
    kernel = list(attrs["kernel_shape"])
    rank = len(kernel)
    strides = list(attrs.get("strides", [1] * rank))
    padding = list(attrs.get("pads", [0] * 2 * rank))[:rank]
    ceil = bool(attrs.get("ceil_mode", 0))
    include = bool(attrs.get("count_include_pad", 0))
    pool = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}[rank]
    return lambda x: pool(x, kernel, strides, padding, ceil_mode=ceil, count_include_pad=include)


@register("GlobalAveragePool", FLOAT)
def _global_average_pool(ctx, attrs, n):
    return lambda x: x.mean(dim=tuple(range(2, x.dim())), keepdim=True)


@register("GlobalMaxPool", FLOAT)
def _global_max_pool(ctx, attrs, n):
    return lambda x: x.amax(dim=tuple(range(2, x.dim())), keepdim=True)
