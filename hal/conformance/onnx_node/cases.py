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

__all__ = ["NodeCase", "check_ops", "node_cases", "op_matches", "select_cases"]

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


def select_cases(patterns: Sequence[str] = (), ops: Sequence[str] = ()) -> list[NodeCase]:
    """The cases whose name or op matches any of the patterns (substring or shell glob, as
    pytest's -k for a single word; every case when none are given) and, when `ops` are given,
    whose op is exactly one of them (see `op_matches`). An op that no case exercises raises
    InvalidArgumentError with the closest op names."""
    cases: Sequence[NodeCase] = node_cases()
    if ops:
        check_ops(ops, cases)
        wanted = frozenset(ops)
        cases = [c for c in cases if op_matches(c, wanted)]
    if not patterns:
        return list(cases)

    def matches(case: NodeCase, pattern: str) -> bool:
        if any(ch in pattern for ch in "*?["):
            return fnmatch.fnmatchcase(case.name, pattern) or fnmatch.fnmatchcase(case.op, pattern)
        return pattern in case.name or pattern == case.op

    return [c for c in cases if any(matches(c, p) for p in patterns)]


def op_matches(case: NodeCase, ops: frozenset[str]) -> bool:
    """Whether the case tests one of `ops`, named exactly as ONNX spells them ("Relu", not "relu"),
    with or without their domain ("Adam" or "ai.onnx.preview.training::Adam"). A case tests the
    op of its model's single node; an "_expanded" case (that op's function body) goes with the
    case it expands, so Relu selects test_relu and test_relu_expanded_ver18, never test_leakyrelu."""
    return case.op in ops or case.op.rpartition("::")[2] in ops


def check_ops(ops: Sequence[str], cases: Sequence[NodeCase] | None = None) -> None:
    """Raise InvalidArgumentError naming each op of `ops` that no case exercises, with the
    closest op names that some case does."""
    import difflib

    from ...errors import InvalidArgumentError

    known = {c.op for c in (node_cases() if cases is None else cases)}
    known |= {op.rpartition("::")[2] for op in known}
    problems = []
    for op in dict.fromkeys(ops):
        if op in known:
            continue
        close = [k for k in sorted(known) if k.lower() == op.lower()]
        case_only = bool(close)
        close += [k for k in difflib.get_close_matches(op, sorted(known), n=3) if k not in close]
        quoted = [repr(k) for k in close[:3]]
        hint = (f"did you mean {' or '.join(quoted) if len(quoted) < 3 else ', '.join(quoted[:-1]) + ' or ' + quoted[-1]}?"
                if close else "no op with node tests has a similar name")
        problems.append(f"no ONNX node test exercises {op!r}; {hint}"
                        + (" (op names are case-sensitive, as ONNX spells them)" if case_only else ""))
    if problems:
        raise InvalidArgumentError("--ops: " + "; ".join(problems))
