"""onnx's node test cases, built in memory from the installed onnx package.

onnx 1.16+ generates every node test (model, inputs, expected outputs) by running the `export`
functions of `onnx.backend.test.case.node`; newer releases no longer ship them as files under
onnx/backend/test/data/node, so nothing here reads those files. Building them takes ~10 s, once
per process.
"""
from __future__ import annotations

import fnmatch
import functools
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx

__all__ = ["NodeCase", "node_cases", "select_cases"]

_EXPANDED = re.compile(r"_expanded(_ver\d+)?$")


@dataclass(frozen=True)
class NodeCase:
    """One onnx node test: a model, its inputs and the expected outputs."""

    name: str
    op: str
    """The operator under test ("Gemm"; "ai.onnx.preview.training::Adam" outside ai.onnx); for
    "_expanded" cases, the op whose function body the model holds."""
    model: onnx.ModelProto
    inputs: tuple[Any, ...]
    outputs: tuple[Any, ...]
    rtol: float
    atol: float
    """onnx's own tolerance for this case: the baseline every backend starts from."""

    @functools.cached_property
    def graph_ops(self) -> frozenset[str]:
        """Every op type in the model, subgraphs included."""
        found: set[str] = set()
        _ops(self.model.graph, found)
        return frozenset(found)


def _ops(graph: onnx.GraphProto, found: set[str]) -> None:
    for node in graph.node:
        found.add(node.op_type)
        for attribute in node.attribute:
            for sub in ([attribute.g] if attribute.type == onnx.AttributeProto.GRAPH else attribute.graphs):
                _ops(sub, found)


def _array(value: Any) -> Any:
    """onnx's cases hold numpy arrays, TensorProtos, lists (sequences) and None (optionals)."""
    if isinstance(value, onnx.TensorProto):
        return onnx.numpy_helper.to_array(value)
    if isinstance(value, list):
        return [_array(v) for v in value]
    return value


@functools.lru_cache(maxsize=1)
def node_cases() -> tuple[NodeCase, ...]:
    """Every node test case of the installed onnx, in onnx's order (names are unique)."""
    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")  # the generators overflow casts on purpose
        raw = list(collect_testcases())
    op_of: dict[str, str] = {}
    for case in raw:
        nodes = case.model.graph.node
        if not _EXPANDED.search(case.name) and len(nodes) == 1:
            node = nodes[0]
            op_of[case.name] = f"{node.domain}::{node.op_type}" if node.domain not in ("", "ai.onnx") else node.op_type
    cases = []
    for case in raw:
        inputs, outputs = case.data_sets[0]
        base = _EXPANDED.sub("", case.name)
        op = op_of.get(case.name) or op_of.get(base) or case.model.graph.node[0].op_type
        cases.append(NodeCase(case.name, op, case.model, tuple(_array(i) for i in inputs),
                              tuple(_array(o) for o in outputs), case.rtol, case.atol))
    return tuple(cases)


def select_cases(patterns: Sequence[str] = ()) -> list[NodeCase]:
    """The cases whose name or op matches any of the patterns (substring or shell glob, as
    pytest's -k for a single word); every case when none are given."""
    cases = node_cases()
    if not patterns:
        return list(cases)

    def matches(case: NodeCase, pattern: str) -> bool:
        if any(ch in pattern for ch in "*?["):
            return fnmatch.fnmatchcase(case.name, pattern) or fnmatch.fnmatchcase(case.op, pattern)
        return pattern in case.name or pattern == case.op

    return [c for c in cases if any(matches(c, p) for p in patterns)]
