"""benchmarks/bench_llm.py stays runnable: a tiny model, every contender and target printed.
Speed itself is never asserted in a test (the machines are noisy); the benchmark reports it."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def test_bench_llm_prints_every_contender_and_target():
    pytest.importorskip("transformers")
    result = subprocess.run(
        [sys.executable, "bench_llm.py", "--config", "llama-tiny", "--prompt", "8", "--new-tokens", "4", "--repeats", "1"],
        cwd=BENCHMARKS, capture_output=True, text=True, timeout=300, check=False,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for contender in ("hal cpu float32", "hal cpu int8 weights", "transformers eager (static cache)",
                      "onnxruntime (past key/values)", "hal ascend:0 (simulated)", "hal kunlun:0 (simulated)"):
        row = next(line for line in out.splitlines() if line.strip().startswith(contender))
        assert row.rstrip().endswith("x"), row
    assert "bytes-per-token floor" in out
    for target in ("hal cpu float32 vs transformers", "hal cpu float32 vs onnxruntime", "hal int8 vs hal float32",
                   "ascend:0 simulated vs roofline (within 25%)", "kunlun:0 wall vs cpu (<= 1.5x)"):
        line = next(line for line in out.splitlines() if target in line)
        assert line.split()[-1] in ("met", "MISSED"), line
