"""The opsets a model imports: one import per domain, ai.onnx no newer than the installed onnx
knows, every ai.onnx node defined at the imported opset, and conversion to another ai.onnx opset.
"""
from __future__ import annotations

import re

import onnx

from ..errors import InvalidModelError
from .walk import _graphs, _node_label, _proto_label

__all__ = ["upgrade_opset"]

_DEFAULT_DOMAINS = ("", "ai.onnx")


def upgrade_opset(model: onnx.ModelProto, target: int) -> onnx.ModelProto:
    """A copy of `model` converted to ai.onnx opset `target` by onnx's version converter."""
    source = _proto_label(model)
    current = next((o.version for o in model.opset_import if o.domain in _DEFAULT_DOMAINS), None)
    if current is None:
        raise InvalidModelError(f"{source} imports no ai.onnx opset, so there is nothing to convert")
    newest = onnx.defs.onnx_opset_version()
    if not isinstance(target, int) or not 1 <= target <= newest:
        raise InvalidModelError(
            f"cannot convert {source} to ai.onnx opset {target!r}: onnx {onnx.__version__} knows opsets 1 to {newest}"
        )
    if target == current:
        copy = onnx.ModelProto()
        copy.CopyFrom(model)
        return copy
    try:
        return onnx.version_converter.convert_version(model, target)
    except (onnx.version_converter.ConvertError, RuntimeError, ValueError) as e:
        # The converter's message ends with the reason:
        # "...Assertion `false` failed: No Adapter From Version $14 for Relu".
        reason = str(e).rsplit("failed: ", 1)[-1].strip()
        culprits = [n for n in model.graph.node if re.search(rf"\b{re.escape(n.op_type)}\b", reason)]
        which = f"node {culprits[0].name!r} ({culprits[0].op_type}) " if culprits else ""
        raise InvalidModelError(
            f"cannot convert {source} from ai.onnx opset {current} to {target}: {which}could not be converted "
            f"({reason}); export the model at opset {target} instead"
        ) from None


def _opsets(proto: onnx.ModelProto, source: str) -> dict[str, int]:
    """Domain -> imported version, with "ai.onnx" spelled ""."""
    opsets: dict[str, int] = {}
    for imported in proto.opset_import:
        domain = "" if imported.domain in _DEFAULT_DOMAINS else imported.domain
        if opsets.get(domain, imported.version) != imported.version:
            raise InvalidModelError(
                f"{source} imports {domain or 'ai.onnx'} twice, at opsets {opsets[domain]} and "
                f"{imported.version}; keep one import per domain"
            )
        opsets[domain] = imported.version
    newest = onnx.defs.onnx_opset_version()
    if opsets.get("", 0) > newest:
        raise InvalidModelError(
            f"{source} imports ai.onnx opset {opsets['']}, newer than the newest onnx {onnx.__version__} "
            f"knows ({newest}); upgrade the onnx package or export the model at opset {newest} or lower"
        )
    return opsets


def _check_default_ops(graph: onnx.GraphProto, opset: int | None, source: str) -> None:
    """Every ai.onnx node must have a schema at the imported opset; other domains are left to chips."""
    if opset is None:
        return  # the checker reports default-domain nodes without an ai.onnx import
    known: dict[str, bool] = {}
    for sub in _graphs(graph):
        for node in sub.node:
            if node.domain not in _DEFAULT_DOMAINS:
                continue
            op = node.op_type
            if op not in known:
                known[op] = onnx.defs.has(op, opset, "")
            if known[op]:
                continue
            newest = onnx.defs.onnx_opset_version()
            added = next((v for v in range(opset + 1, newest + 1) if onnx.defs.has(op, v, "")), None)
            if added is not None:
                advice = (
                    f"ONNX added {op} in opset {added}: convert the model with upgrade_opset(model, {added}) "
                    "or export it at that opset"
                )
            else:
                advice = (
                    f"ONNX has no op {op!r}; if it is a custom op, put the node in its own domain "
                    "(domain='com.example') and import that domain"
                )
            raise InvalidModelError(
                f"{source}: {_node_label(node)} is not defined at ai.onnx opset {opset}; {advice}"
            )
