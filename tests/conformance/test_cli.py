"""`hal conformance`: exit codes, errors, reports (on small hand-made cases)."""
from __future__ import annotations

import json

from hal.cli import main
from hal.conformance import runner
from hal.conformance.expectations import ExpectedFailure, Expectations


def test_unknown_backend_is_a_clear_error(capsys):
    assert main(["conformance", "nosuchchip"]) == 2
    err = capsys.readouterr().err
    assert "no backend named 'nosuchchip'" in err


def test_no_backend_named(capsys):
    assert main(["conformance"]) == 2
    assert "--all" in capsys.readouterr().err


def test_exclusive_mode_flags(capsys):
    assert main(["conformance", "cpu", "--no-fallback", "--fallback-only"]) == 2
    assert "exclude each other" in capsys.readouterr().err


def test_passing_run_writes_reports(small_cases, tmp_path, capsys):
    code = main(["conformance", "cpu", "ascend", "--suite", "onnx", "-k", "test_add", "-k", "test_mul", "--report", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "baselines on the same cases: onnxruntime CPU provider 3 passed, onnx reference implementation 3 passed" in out
    assert "target met: ascend with fallback" in out
    data = json.loads((tmp_path / "report.json").read_text())
    statuses = {(r["target"], r["mode"], r["test"]): r["status"] for r in data["node_results"]}
    assert statuses[("ascend", "no-fallback", "test_add_double")] == "unsupported"
    assert statuses[("ascend", "fallback", "test_add_double")] == "passed"
    assert (tmp_path / "report.html").is_file() and (tmp_path / "report.md").is_file()


def test_regression_fails_the_run(small_cases, capsys):
    assert main(["conformance", "cpu", "--suite", "onnx", "--no-baselines"]) == 1
    out = capsys.readouterr().out
    assert "regression: cpu (no-fallback) test_sub_wrong" in out
    assert out.rstrip().splitlines()[-1].startswith("FAIL: 2 regression(s)")


def test_expected_failures_and_strict_xfail(small_cases, monkeypatch, capsys):
    listed = Expectations(None, (), {(t, m): ExpectedFailure(t, frozenset({m}), "tracked")
                                     for t in ("test_sub_wrong", "test_add") for m in ("fallback", "no-fallback")})
    monkeypatch.setattr(runner, "expectations_for", lambda backend, known=None: listed)
    assert main(["conformance", "cpu", "--suite", "onnx", "--no-baselines", "--fallback-only"]) == 0
    out = capsys.readouterr().out
    assert "unexpected pass: cpu (fallback) test_add" in out
    assert main(["conformance", "cpu", "--suite", "onnx", "--no-baselines", "--fallback-only", "--strict-xfail"]) == 1


def test_api_suite(capsys):
    assert main(["conformance", "cpu", "--suite", "api", "-k", "test_allocate_returns_buffer_of_requested_size"]) == 0
    out = capsys.readouterr().out
    assert "API SUITE" in out and "cpu:0" in out
