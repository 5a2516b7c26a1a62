"""benchmarks/bench_tensor_parallel.py stays runnable: a tiny model on 2 simulated cards, every
contender and column printed. Speed itself is never asserted in a test (the machines are noisy)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def test_bench_tensor_parallel_prints_every_contender_and_the_communication_share():
    result = subprocess.run(
        [sys.executable, "bench_tensor_parallel.py", "--config", "llama-tiny", "--cards", "2", "--prompt", "4",
         "--new-tokens", "3", "--repeats", "1"],
        cwd=BENCHMARKS, capture_output=True, text=True, timeout=300, check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for contender in ("1 card", "pipeline x2", "tensor x2"):
        row = next(line for line in lines if line.strip().startswith(contender))
        assert row.rstrip().endswith("x"), row
    profiled = [line.split() for line in lines if line.strip().startswith("tensor x2") and "%" in line]
    assert [row[2] for row in profiled] == ["1", "2", "2"]  # batch 1, batch 2 as chosen, batch 2 split
    assert all(row[-3].endswith("%") and row[-2].endswith("%") and row[-1].endswith("%") for row in profiled)
