"""Report accounting (regressions, unexpected passes, targets) and its three writers."""
from __future__ import annotations

import json

from hal.conformance.onnx_node.run import CaseResult
from hal.conformance.report import ApiResult, Column, Report, write_reports


def result(test, target, mode, status, op="Add", reason="", seconds=0.01):
    return CaseResult(test, op, target, mode, status, reason, seconds)


def sample_report(strict: bool = False) -> Report:
    rows = [
        result("test_add", "cpu", "fallback", "passed"),
        result("test_mul", "cpu", "fallback", "passed", op="Mul"),
        result("test_sub", "cpu", "fallback", "failed", op="Sub", reason="output 0 mismatch"),
        result("test_add", "ascend", "no-fallback", "passed"),
        result("test_mul", "ascend", "no-fallback", "unsupported", op="Mul", reason="Mul: Ascend 910B has no Mul"),
        result("test_sub", "ascend", "no-fallback", "xfail", op="Sub", reason="known [AssertionError]"),
        result("test_add", "ascend", "fallback", "passed"),
        result("test_mul", "ascend", "fallback", "xpass", op="Mul", reason="listed but passed", seconds=2.5),
        result("test_sub", "ascend", "fallback", "xfail", op="Sub", reason="known"),
        *(result(t, "onnxruntime", "baseline", s, op=o) for t, s, o in (("test_add", "passed", "Add"), ("test_mul", "passed", "Mul"), ("test_sub", "failed", "Sub"))),
        *(result(t, "reference", "baseline", "passed", op=o) for t, o in (("test_add", "Add"), ("test_mul", "Mul"), ("test_sub", "Sub"))),
    ]
    api = [ApiResult("cpu", "cpu:0", "test_copies::test_roundtrip[cpu:0]", "passed", seconds=0.1),
           ApiResult("ascend", "ascend:0", "test_copies::test_roundtrip[ascend:0]", "failed", "boom", 0.2)]
    return Report(["cpu", "ascend"], {"cpu": "cpu:0", "ascend": "ascend:0"}, rows, api, strict, {"onnx": "1.x"})


def test_counts_and_accounting():
    report = sample_report()
    assert report.counts(Column("ascend", "fallback")) == {"passed": 2, "failed": 0, "xfail": 1, "xpass": 1, "unsupported": 0, "total": 3}
    assert report.counts(Column("ascend", "no-fallback"))["unsupported"] == 1
    assert [r.test for r in report.regressions()] == ["test_sub"]
    assert [r.test for r in report.unexpected_passes()] == ["test_mul"]
    assert report.baseline_passes("onnxruntime") == 2
    assert report.baseline_passes("reference") == 3
    assert not report.ok  # a regression and an API failure
    assert [c.label for c in report.columns()] == ["cpu + fallback", "ascend", "ascend + fallback", "onnxruntime CPU", "onnx reference"]


def test_unexpected_pass_fails_only_when_strict():
    rows = [result("test_add", "cpu", "fallback", "xpass")]
    assert Report(["cpu"], {"cpu": "cpu:0"}, rows).ok
    assert not Report(["cpu"], {"cpu": "cpu:0"}, rows, strict_xfail=True).ok


def test_goals_compare_with_the_baselines():
    goals = {g["goal"]: g for g in sample_report().goals()}
    ort_goal = goals["ascend with fallback passes at least as many node tests as onnxruntime's CPU provider"]
    assert ort_goal["holds"] and ort_goal["measured"] == "2 vs 2"
    cpu_goal = goals["cpu (fallback) passes every node test onnx's reference implementation passes"]
    assert not cpu_goal["holds"] and cpu_goal["missing"] == ["test_sub"]


def test_matrix_cells():
    ops, columns, cells = sample_report().matrix()
    assert ops == ["Add", "Mul", "Sub"]
    state = {(op, c.label): cell.state for (op, c), cell in cells.items()}
    assert state[("Add", "cpu + fallback")] == "passed"
    assert state[("Sub", "cpu + fallback")] == "failed"
    assert state[("Mul", "ascend")] == "unsupported"
    assert state[("Sub", "ascend + fallback")] == "xfail"
    detail = cells[("Mul", Column("ascend", "no-fallback"))].detail
    assert "Ascend 910B has no Mul" in detail


def test_writers(tmp_path):
    report = sample_report()
    paths = write_reports(report, tmp_path / "out")
    assert [p.name for p in paths] == ["report.json", "report.md", "report.html"]
    data = json.loads((tmp_path / "out" / "report.json").read_text())
    assert data["ok"] is False and len(data["node_results"]) == 15
    assert Report.from_dict(data).counts(Column("ascend", "fallback")) == report.counts(Column("ascend", "fallback"))
    markdown = (tmp_path / "out" / "report.md").read_text()
    assert "| ascend | ascend:0 | fallback | 2 | 0 | 1 | 1 | 0 | 3 | 2 | 3 |" in markdown
    assert "## Regressions" in markdown and "test_sub" in markdown
    assert "Unexpected passes" in markdown
    page = (tmp_path / "out" / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "http" not in page.replace("charset", "")  # nothing fetched
    assert 'title="1/3 passed' not in page
    assert 'class="cell unsupported"' in page and "Ascend 910B has no Mul" in page
