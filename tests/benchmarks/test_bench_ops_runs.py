"""benchmarks/bench_ops.py stays runnable: one small size, three kernels, every column printed.
Speed itself is never asserted in a test (the machines are noisy); the benchmark reports it."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def test_bench_ops_prints_a_row_per_kernel_and_its_targets():
    result = subprocess.run(
        [sys.executable, "bench_ops.py", "--sizes", "4K", "--threads", "1", "--ops", "softmax,to_nc1hwc0,quantized_matmul"],
        cwd=BENCHMARKS, capture_output=True, text=True, timeout=300, check=False,
    )
    assert result.returncode == 0, result.stderr
    rows = []
    for line in result.stdout.splitlines():
        cells = line.split()
        if "4K" in cells and line.startswith("  ") and cells[0] != "missed:":
            at = cells.index("4K")
            rows.append((" ".join(cells[:at]), cells[at + 1:]))
    assert [name for name, _ in rows] == ["softmax", "to_nc1hwc0", "quantized_matmul int8", "quantized_matmul int8 1 row",
                                          "quantized_matmul int16 1 row"]
    for name, (threads, hal_ms, numpy_ms, torch_ms, vs_numpy, vs_torch, *rest) in rows:
        assert threads == "1" and float(hal_ms) > 0 and float(numpy_ms) > 0, name
        assert vs_numpy.endswith("x") and float(vs_numpy[:-1]) > 0, name
        assert "GB/s" in rest or "GFLOP/s" in rest, name
    # The GEMM's row also shows this machine's int16 multiply-add peak (benchmarks/probes/, built
    # with the C++ compiler that built hal) and the ceiling it puts on any exact int8 GEMM.
    gemm_line = next(line for line in result.stdout.splitlines() if line.startswith("  quantized_matmul int8"))
    peak = float(gemm_line.split("int16 madd")[1].split()[0])
    assert peak > 0 and "int16 multiply-add peak" in result.stdout
    assert "targets (>= 3x numpy, >= 1.0x torch; linear and cached_attention >= 1.0x both)" in result.stdout
