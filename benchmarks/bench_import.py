"""`import hal` time in fresh interpreters, next to `import numpy` (which hal needs) and
`import torch` (what a user already pays for).

    python benchmarks/bench_import.py [--repeats 15]

Target (issue #2): import hal under 300 ms median; backends load lazily, on the first hal.devices().
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys

from _harness import print_table

PROBE = "import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"


def import_seconds(module: str, repeats: int) -> float | None:
    samples = []
    for _ in range(repeats):
        result = subprocess.run([sys.executable, "-c", PROBE.format(module=module)], capture_output=True, text=True)
        if result.returncode != 0:
            return None
        samples.append(float(result.stdout))
    return statistics.median(samples)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args(argv)
    timings = {m: import_seconds(m, args.repeats) for m in ("numpy", "hal", "torch")}
    rows = [(m, f"{t * 1e3:.0f}" if t is not None else "not installed",
             f"{t / timings['numpy']:.2f}x" if t is not None else "-") for m, t in timings.items()]
    print_table(f"cold import, median of {args.repeats} fresh interpreters", ("module", "ms", "vs numpy"), rows)
    hal_s = timings["hal"]
    print(f"\ntarget: import hal {hal_s * 1e3:.0f} ms (< 300): {'met' if hal_s < 0.3 else 'NOT met'}; "
          f"hal's own share beyond numpy: {(hal_s - timings['numpy']) * 1e3:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
