"""A conformance run's results and what a reader wants from them: counts per backend and mode,
the op x backend matrix, the slowest tests, regressions, unexpected passes, and the targets
(every backend with fallback passes at least as many node tests as onnxruntime's CPU provider;
the cpu backend passes every test onnx's reference implementation passes).

The results as data; hal.conformance.report writes them as JSON (machine), Markdown (a PR
comment, markdown.py) and one self-contained HTML page (html.py).
"""
from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..onnx_node.run import BASELINES, CaseResult

__all__ = ["ApiResult", "Report", "Column", "Cell"]

SCHEMA = 1


@dataclass(frozen=True)
class ApiResult:
    """One API conformance test on one device."""

    backend: str
    device: str
    test: str
    status: str
    """passed, failed, skipped"""
    reason: str = ""
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"backend": self.backend, "device": self.device, "test": self.test, "status": self.status,
                "reason": self.reason, "seconds": round(self.seconds, 6)}


@dataclass(frozen=True)
class Column:
    """A column of the matrix: a backend in one mode, or a baseline."""

    target: str
    mode: str

    @property
    def label(self) -> str:
        if self.mode == "baseline":
            return {"onnxruntime": "onnxruntime CPU", "reference": "onnx reference"}.get(self.target, self.target)
        return self.target if self.mode == "no-fallback" else f"{self.target} + fallback"


@dataclass(frozen=True)
class Cell:
    """One op on one column: its class (passed, failed, xfail, supported, unsupported) and the
    per-test detail shown on hover."""

    state: str
    counts: dict[str, int]
    detail: str


@dataclass
class Report:
    backends: list[str]
    """Backend names in the order asked, e.g. ["cpu", "ascend"]."""
    devices: dict[str, str]
    """Backend -> the device that ran it."""
    node_results: list[CaseResult] = field(default_factory=list)
    api_results: list[ApiResult] = field(default_factory=list)
    strict_xfail: bool = False
    environment: dict[str, str] = field(default_factory=dict)
    """Versions (hal, onnx, onnxruntime, python), the command, the date."""

    # -- summaries -----------------------------------------------------------------------------
    def columns(self) -> list[Column]:
        seen = list(dict.fromkeys((r.target, r.mode) for r in self.node_results))
        order = {name: i for i, name in enumerate([*self.backends, *BASELINES])}
        modes = {"no-fallback": 0, "fallback": 1, "baseline": 2}
        seen.sort(key=lambda tm: (tm[1] == "baseline", order.get(tm[0], 99), modes.get(tm[1], 3)))
        return [Column(t, m) for t, m in seen]

    def counts(self, column: Column) -> dict[str, int]:
        found = Counter(r.status for r in self.node_results if (r.target, r.mode) == (column.target, column.mode))
        total = sum(found.values())
        return {"passed": found["passed"] + found["xpass"], "failed": found["failed"], "xfail": found["xfail"],
                "xpass": found["xpass"], "unsupported": found["unsupported"], "total": total}

    def baseline_passes(self, name: str) -> int | None:
        column = Column(name, "baseline")
        if column not in self.columns():
            return None
        return self.counts(column)["passed"]

    def api_counts(self) -> dict[str, dict[str, int]]:
        found: dict[str, Counter] = defaultdict(Counter)
        for r in self.api_results:
            found[r.backend][r.status] += 1
        return {b: {"passed": c["passed"], "failed": c["failed"], "skipped": c["skipped"], "total": sum(c.values())}
                for b, c in found.items()}

    def regressions(self) -> list[CaseResult]:
        """Node tests that failed on a backend and are not expected to (baselines only inform)."""
        return [r for r in self.node_results if r.status == "failed" and r.mode != "baseline"]

    def unexpected_passes(self) -> list[CaseResult]:
        return [r for r in self.node_results if r.status == "xpass"]

    def api_failures(self) -> list[ApiResult]:
        return [r for r in self.api_results if r.status == "failed"]

    @property
    def ok(self) -> bool:
        """No regression, no API failure, and (strict) no unexpected pass."""
        return not (self.regressions() or self.api_failures() or (self.strict_xfail and self.unexpected_passes()))

    def slowest(self, n: int = 15) -> list[CaseResult | ApiResult]:
        everything: list[CaseResult | ApiResult] = [*self.node_results, *self.api_results]
        return sorted(everything, key=lambda r: -r.seconds)[:n]

    def matrix(self) -> tuple[list[str], list[Column], dict[tuple[str, Column], Cell]]:
        """(ops, columns, cells): every op under test against every column."""
        columns = self.columns()
        by_key: dict[tuple[str, str, str], list[CaseResult]] = defaultdict(list)
        for r in self.node_results:
            by_key[(r.op, r.target, r.mode)].append(r)
        ops = sorted({r.op for r in self.node_results}, key=str.lower)
        cells = {}
        for op in ops:
            for column in columns:
                results = by_key.get((op, column.target, column.mode))
                if results:
                    cells[(op, column)] = _cell(results)
        return ops, columns, cells

    def goals(self) -> list[dict[str, Any]]:
        """The issue's targets, each with whether it holds and the numbers behind it."""
        found = []
        ort = self.baseline_passes("onnxruntime")
        if ort is not None:
            for column in self.columns():
                if column.mode != "fallback":
                    continue
                passed = self.counts(column)["passed"]
                found.append({
                    "goal": f"{column.target} with fallback passes at least as many node tests as onnxruntime's CPU provider",
                    "holds": passed >= ort, "measured": f"{passed} vs {ort}",
                })
        reference = {r.test for r in self.node_results if r.target == "reference" and r.passed}
        # with fallback: without it a strict session refuses the reference implementation's slow path
        cpu = {r.test: r for r in self.node_results if r.target == "cpu" and r.mode == "fallback"}
        if cpu and reference:
            missing = sorted(t for t in reference if t in cpu and not cpu[t].passed)
            found.append({
                "goal": "cpu (fallback) passes every node test onnx's reference implementation passes",
                "holds": not missing,
                "measured": f"{len(reference) - len(missing)} of {len(reference)}",
                "missing": missing,
            })
        return found

    # -- JSON ----------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "environment": self.environment,
            "backends": self.backends,
            "devices": self.devices,
            "strict_xfail": self.strict_xfail,
            "ok": self.ok,
            "summary": [{"target": c.target, "mode": c.mode, **self.counts(c)} for c in self.columns()],
            "api_summary": self.api_counts(),
            "goals": self.goals(),
            "node_results": [r.to_dict() for r in self.node_results],
            "api_results": [r.to_dict() for r in self.api_results],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Report:
        from ...errors import InvalidArgumentError

        if data.get("schema") != SCHEMA:
            raise InvalidArgumentError(f"not a hal conformance report of schema {SCHEMA} (schema {data.get('schema')!r})")
        return cls(
            backends=list(data["backends"]), devices=dict(data["devices"]),
            node_results=[CaseResult(**r) for r in data["node_results"]],
            api_results=[ApiResult(**r) for r in data["api_results"]],
            strict_xfail=bool(data.get("strict_xfail")), environment=dict(data.get("environment", {})),
        )


_CELL_ORDER = ("failed", "xpass", "xfail", "passed", "unsupported")


def _cell(results: Sequence[CaseResult]) -> Cell:
    counts = Counter(r.status for r in results)
    ran = len(results) - counts["unsupported"]
    if counts["failed"]:
        state = "failed"
    elif counts["xfail"]:
        state = "xfail"
    elif not ran:
        state = "unsupported"
    elif counts["unsupported"]:
        state = "supported"  # the backend claims some of the op's cases (dtypes, attributes), and they pass
    else:
        state = "passed"
    passed = counts["passed"] + counts["xpass"]
    lines = [f"{passed}/{len(results)} passed" + (f", {counts['unsupported']} unsupported" if counts["unsupported"] else "")]
    for r in sorted(results, key=lambda r: _CELL_ORDER.index(r.status)):
        if r.status in ("passed",):
            continue
        lines.append(f"{r.test}: {r.status}: {r.reason}")
    return Cell(state, {"passed": passed, **{k: counts[k] for k in ("failed", "xfail", "xpass", "unsupported")}, "total": len(results)},
                "\n".join(lines[:12]) + ("\n..." if len(lines) > 12 else ""))
