"""What a backend expects of the ONNX node suite: its tolerances and its known failures, read
from `conformance.toml` beside the backend's module (backends/hal_ascend/conformance.toml), so an
out-of-tree backend ships its own the same way.

    schema = 1

    [[tolerance]]                    # loosens onnx's per-case rtol/atol, never tightens it
    ops = ["MatMul", "Gemm"]         # required: applies to cases whose model holds one of these
    dtypes = ["float32"]             # required: outputs of these dtypes
    rtol = 2e-3
    atol = 1e-3
    reason = "why the chip's numerics give this error (cite the source)"

    [[expected_failure]]
    tests = ["test_gemm_default_matrix_bias"]   # exact onnx node test names
    modes = ["fallback"]             # optional: "fallback", "no-fallback" (default both)
    may_pass = true                  # optional: outputs are random (Bernoulli, Dropout), so a pass by
                                     # chance is reported as passed, not as an unexpected pass
    reason = "what is wrong and where it is tracked"

A tolerance rule must name its ops and dtypes: there is no global loosening. An expected failure
that passes is reported as "unexpectedly passed" (and fails a --strict-xfail run), so lists shrink.
"""
from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..dtypes import dtype as as_dtype
from ..datafile import read_toml
from ..errors import BackendError, UnsupportedDTypeError

__all__ = ["MODES", "ToleranceRule", "ExpectedFailure", "Expectations", "load_expectations", "expectations_for"]

MODES = ("no-fallback", "fallback")
"""no-fallback: only the backend's own device; fallback: nodes it lacks run on the CPU."""
FILE_NAME = "conformance.toml"
_TOP_KEYS = {"schema", "tolerance", "expected_failure"}
_RULE_KEYS = {"ops", "dtypes", "rtol", "atol", "reason"}
_XFAIL_KEYS = {"tests", "modes", "may_pass", "reason"}


@dataclass(frozen=True)
class ToleranceRule:
    ops: frozenset[str]
    dtypes: frozenset[str]
    rtol: float
    atol: float
    reason: str

    def applies(self, graph_ops: Iterable[str], dtype_name: str) -> bool:
        return dtype_name in self.dtypes and not self.ops.isdisjoint(graph_ops)


@dataclass(frozen=True)
class ExpectedFailure:
    test: str
    modes: frozenset[str]
    reason: str
    may_pass: bool = False


@dataclass(frozen=True)
class Expectations:
    """A backend's tolerance rules and expected failures (empty when it ships no file)."""

    path: Path | None = None
    tolerances: tuple[ToleranceRule, ...] = ()
    expected_failures: Mapping[tuple[str, str], ExpectedFailure] = field(default_factory=dict)
    """(test name, mode) -> entry."""

    def tolerance(self, graph_ops: Iterable[str], dtype_name: str, rtol: float, atol: float) -> tuple[float, float, str]:
        """(rtol, atol, reason): onnx's tolerance, loosened by every rule that applies."""
        ops = frozenset(graph_ops)
        reasons = []
        for rule in self.tolerances:
            if rule.applies(ops, dtype_name) and (rule.rtol > rtol or rule.atol > atol):
                rtol, atol = max(rtol, rule.rtol), max(atol, rule.atol)
                reasons.append(rule.reason)
        return rtol, atol, "; ".join(reasons)

    def expected_failure(self, test: str, mode: str) -> ExpectedFailure | None:
        return self.expected_failures.get((test, mode))


def _fail(path: Path, where: str, what: str) -> BackendError:
    return BackendError(f"conformance data {path}: {where}: {what}; fix the file (its format is in hal/conformance/expectations.py)")


def _strings(path: Path, where: str, value: Any, key: str) -> list[str]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
        raise _fail(path, where, f"'{key}' must be a non-empty list of names")
    return value


def _number(path: Path, where: str, value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise _fail(path, where, f"'{key}' must be a finite number >= 0, got {value!r}")
    return float(value)


def _reason(path: Path, where: str, entry: Mapping[str, Any]) -> str:
    reason = entry.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise _fail(path, where, "every entry needs a 'reason' saying why")
    return reason.strip()


def _unknown_keys(path: Path, where: str, entry: Mapping[str, Any], allowed: set[str]) -> None:
    extra = sorted(set(entry) - allowed)
    if extra:
        raise _fail(path, where, f"unknown key(s) {', '.join(extra)}; allowed: {', '.join(sorted(allowed))}")


def _tables(path: Path, data: dict[str, Any], key: str, allowed: set[str]):
    """(where, entry) for each [[key]] table of the file, once it is a table of known keys."""
    for i, entry in enumerate(data.get(key, [])):
        where = f"{key} #{i + 1}"
        if not isinstance(entry, dict):
            raise _fail(path, where, f"must be a table ([[{key}]])")
        _unknown_keys(path, where, entry, allowed)
        yield where, entry


def load_expectations(path: str | Path, known_tests: Iterable[str] | None = None) -> Expectations:
    """Reads and validates a conformance.toml. known_tests, when given, are the node tests of the
    installed onnx: an entry naming another test is an error (a typo, or a test onnx renamed)."""
    path = Path(path)
    data = read_toml(path, "conformance data")
    if data.get("schema") != 1:
        raise _fail(path, "top level", f"'schema' must be 1, got {data.get('schema')!r}")
    _unknown_keys(path, "top level", data, _TOP_KEYS)
    rules = []
    for where, entry in _tables(path, data, "tolerance", _RULE_KEYS):
        ops = _strings(path, where, entry.get("ops"), "ops")
        names = _strings(path, where, entry.get("dtypes"), "dtypes")
        try:
            dtypes = frozenset(as_dtype(n).value for n in names)
        except UnsupportedDTypeError as exc:
            raise _fail(path, where, str(exc)) from None
        if "rtol" not in entry and "atol" not in entry:
            raise _fail(path, where, "give 'rtol', 'atol' or both")
        rtol = _number(path, where, entry.get("rtol", 0.0), "rtol")
        atol = _number(path, where, entry.get("atol", 0.0), "atol")
        if rtol >= 1:
            raise _fail(path, where, f"rtol {rtol} accepts any answer; a chip that far off fails the test, list it as an expected failure")
        rules.append(ToleranceRule(frozenset(ops), dtypes, rtol, atol, _reason(path, where, entry)))
    known = set(known_tests) if known_tests is not None else None
    failures: dict[tuple[str, str], ExpectedFailure] = {}
    for where, entry in _tables(path, data, "expected_failure", _XFAIL_KEYS):
        tests = _strings(path, where, entry.get("tests"), "tests")
        modes = entry.get("modes", list(MODES))
        if not isinstance(modes, list) or not modes or any(m not in MODES for m in modes):
            raise _fail(path, where, f"'modes' must list some of {', '.join(MODES)}, got {modes!r}")
        reason = _reason(path, where, entry)
        may_pass = entry.get("may_pass", False)
        if not isinstance(may_pass, bool):
            raise _fail(path, where, f"'may_pass' must be true or false, got {may_pass!r}")
        for test in tests:
            if known is not None and test not in known:
                raise _fail(path, where, f"'{test}' is not a node test of the installed onnx; remove or rename it")
            for mode in modes:
                if (test, mode) in failures:
                    raise _fail(path, where, f"'{test}' ({mode}) is listed twice")
                failures[(test, mode)] = ExpectedFailure(test, frozenset(modes), reason, may_pass)
    return Expectations(path, tuple(rules), failures)


def expectations_for(backend: object, known_tests: Iterable[str] | None = None) -> Expectations:
    """The conformance.toml in the folder of the backend's module, or none."""
    module = sys.modules.get(type(backend).__module__)
    where = getattr(module, "__file__", None)
    if not where:
        return Expectations()
    path = Path(where).parent / FILE_NAME
    if not path.is_file():
        return Expectations()
    return load_expectations(path, known_tests)
