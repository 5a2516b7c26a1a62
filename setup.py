"""Builds the native core hal._C (csrc/) with pybind11; everything else is declared in pyproject.toml.

Kernels vectorize with `#pragma omp simd` (-fopenmp-simd: no OpenMP runtime is linked; their threads
are csrc/ops/thread_pool's) and include the public kernel header hal/include/hal/kernel.h, which is
installed with the package for users' own kernel libraries.

HAL_SANITIZE=1 builds the core with AddressSanitizer and UndefinedBehaviorSanitizer (for .ci/sanitize,
which builds it in a directory of its own: importing it needs libasan preloaded, so it must never
replace the plain build others import). HAL_BUILD_JOBS sets how many files compile at once."""
import os
from pathlib import Path

from pybind11.setup_helpers import ParallelCompile, Pybind11Extension, build_ext
from setuptools import setup

csrc = Path("csrc")
sources = sorted(str(p) for p in csrc.rglob("*.cpp"))

# -fno-trapping-math: the kernels raise no FP exceptions on purpose, and without it gcc will not
# if-convert (so not vectorize) their clamps and selects; NaN and inf semantics are unchanged.
compile_args = ["-O3", "-Wall", "-Wextra", "-Werror=return-type", "-fopenmp-simd", "-fno-trapping-math", "-fno-math-errno"]
link_args: list[str] = []
if os.environ.get("HAL_SANITIZE") == "1":
    # -O1 -g: the sanitizers' advice for readable reports at a bearable speed; any UB finding aborts
    # (no recover), so a CI job fails on it rather than printing and passing.
    sanitizers = ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined"]
    compile_args += ["-O1", "-g", "-fno-omit-frame-pointer", *sanitizers]
    link_args += sanitizers

ext = Pybind11Extension(
    "hal._C",
    sources,
    include_dirs=[str(csrc), "hal/include"],
    cxx_std=17,
    extra_compile_args=compile_args,
    extra_link_args=link_args,
)

# pybind11's parallel compile of the extension's files (one process per file, up to HAL_BUILD_JOBS,
# default: every core), as setuptools compiles one file at a time.
ParallelCompile("HAL_BUILD_JOBS").install()

setup(ext_modules=[ext], cmdclass={"build_ext": build_ext})
