"""`hal conformance`: exit codes, errors, reports (on small hand-made cases)."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import pytest

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


def test_ops_select_exact_op_types_and_combine_with_k(small_cases, tmp_path, capsys):
    def tests_run(*flags: str) -> set[str]:
        code = main(["conformance", "cpu", "--suite", "onnx", "--no-baselines", "--fallback-only",
                     "--report", str(tmp_path), *flags])
        assert code == 0, capsys.readouterr().out
        return {r["test"] for r in json.loads((tmp_path / "report.json").read_text())["node_results"]}

    assert tests_run("--ops", "Add") == {"test_add", "test_add_double"}
    assert tests_run("--ops", "Mul,Add", "-k", "double") == {"test_add_double"}
    assert tests_run("--ops", "Add", "--ops", "Mul") == {"test_add", "test_add_double", "test_mul"}


def test_unknown_op_is_an_error_with_the_close_names(capsys):
    assert main(["conformance", "cpu", "--suite", "onnx", "--ops", "Rellu"]) == 2
    err = capsys.readouterr().err
    assert "--ops: no ONNX node test exercises 'Rellu'; did you mean 'Relu'" in err


def test_ops_with_the_api_suite_alone_is_an_error(capsys):
    assert main(["conformance", "cpu", "--suite", "api", "--ops", "Relu"]) == 2
    assert "--suite onnx" in capsys.readouterr().err


_RELU = [sys.executable, "-m", "hal.cli", "conformance", "cpu", "--suite", "onnx", "--ops", "Relu", "--jobs", "2"]
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _on_a_terminal(argv: list[str], stdout_file, limit_s: float = 600) -> tuple[int, str]:
    """Runs argv with stderr on a pseudo-terminal of 160 columns (stdout to a file): its exit code
    and what the terminal received, escape sequences removed. The limit only guards against a hang."""
    import fcntl
    import pty
    import select
    import struct
    import termios

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=stdout_file, stderr=follower)
    os.close(follower)
    shown = bytearray()
    deadline = time.monotonic() + limit_s
    try:
        while time.monotonic() < deadline:
            if select.select([leader], [], [], 1.0)[0]:
                try:
                    data = os.read(leader, 65536)
                except OSError:  # EIO: every process holding the terminal has ended
                    break
                if not data:
                    break
                shown += data
        else:
            proc.kill()
            pytest.fail(f"{' '.join(argv)} did not end; the terminal showed: {shown.decode(errors='replace')}")
        code = proc.wait(timeout=60)
    finally:
        os.close(leader)
    return code, _ANSI.sub("", shown.decode(errors="replace"))


@pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals are POSIX")
def test_progress_bars_on_a_terminal(tmp_path):
    with open(tmp_path / "stdout", "w") as out:
        code, shown = _on_a_terminal(_RELU, out)
    summary = (tmp_path / "stdout").read_text()
    assert code == 0, shown + summary
    # one bar per target, with tests done of the total and the counts so far, and one for the run
    # (whose counts leave the baselines out)
    for label in ("cpu (no-fallback)", "cpu (fallback)", "onnxruntime", "reference"):
        assert re.search(re.escape(label) + r"\s*: 100%\|.*\| 2/2 \[.*passed=\d, failed=0", shown), shown
    assert re.search(r"all\s*: 100%\|.*\| 8/8 \[.*passed=\d, failed=0", shown), shown
    assert "PASS: 0 regression(s)" in summary and "%|" not in summary


def test_no_progress_bars_through_a_pipe():
    done = subprocess.run(_RELU, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=600, check=False)
    assert done.returncode == 0, done.stderr + done.stdout
    for bar_text in ("%|", "test/s", "\r", "building onnx"):
        assert bar_text not in done.stderr, done.stderr
    assert "PASS: 0 regression(s)" in done.stdout
