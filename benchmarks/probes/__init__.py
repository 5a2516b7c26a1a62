"""Hardware rates that no library call measures, for the benchmarks' "machine" column.

int16_madd_rate(): this machine's peak for exact int16 multiply-adds (vpmaddwd + vpaddd, what
every int8 / int16 GEMM without VNNI runs on), measured by int16_madd_peak.cpp. numpy's sgemm
stands for the float32 limit; nothing in numpy or torch runs integer multiply-adds at the
hardware's rate, so this one is a few lines of assembly built here with the system C++ compiler
(the one that built hal's extension) and loaded with ctypes.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

_SOURCE = Path(__file__).with_name("int16_madd_peak.cpp")
_ITERATIONS = 10_000_000  # of twelve instruction pairs: about 30 ms a thread


def _library() -> ctypes.CDLL | None:
    """The built probe, cached by the source's hash in the temp directory; None without a compiler."""
    compiler = shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")
    if compiler is None or sys.platform == "win32":
        return None
    digest = hashlib.sha256(_SOURCE.read_bytes()).hexdigest()[:16]
    built = Path(tempfile.gettempdir()) / f"hal-bench-int16-madd-{digest}.so"
    if not built.exists():
        partial = built.with_suffix(f".{os.getpid()}.tmp")  # one per process: runs may build at once
        result = subprocess.run([compiler, "-O2", "-shared", "-fPIC", "-o", str(partial), str(_SOURCE)],
                                capture_output=True, text=True, check=False)
        if result.returncode != 0:
            return None
        partial.replace(built)  # atomic: a concurrent run sees the whole library or none
    library = ctypes.CDLL(str(built))
    library.int16_madd_macs_per_second.restype = ctypes.c_double
    library.int16_madd_macs_per_second.argtypes = [ctypes.c_int64]
    return library


def int16_madd_rate(threads: int, repeats: int = 5) -> float | None:
    """Operations per second (2 per multiply-add) of `threads` threads running the probe at once,
    the median of `repeats` rounds; None where it cannot be built or the CPU lacks AVX2."""
    library = _library()
    if library is None:
        return None
    rounds = []
    for _ in range(repeats):
        rates = [0.0] * threads

        def run(i: int) -> None:  # ctypes releases the GIL for the call, so the threads overlap
            rates[i] = library.int16_madd_macs_per_second(_ITERATIONS)

        workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        rounds.append(2 * sum(rates))
    rate = statistics.median(rounds)
    return rate or None
