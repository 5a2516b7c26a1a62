"""Builds the native core hal._C (csrc/) with pybind11; everything else is declared in pyproject.toml.

Kernels vectorize with `#pragma omp simd` (-fopenmp-simd: no OpenMP runtime is linked; their threads
are csrc/ops/thread_pool's) and include the public kernel header hal/include/hal/kernel.h, which is
installed with the package for users' own kernel libraries."""
from pathlib import Path

from pybind11.setup_helpers import Pybind11Extension, build_ext
from setuptools import setup

csrc = Path("csrc")
sources = sorted(str(p) for p in csrc.rglob("*.cpp"))

ext = Pybind11Extension(
    "hal._C",
    sources,
    include_dirs=[str(csrc), "hal/include"],
    cxx_std=17,
    # -fno-trapping-math: the kernels raise no FP exceptions on purpose, and without it gcc will not
    # if-convert (so not vectorize) their clamps and selects; NaN and inf semantics are unchanged.
    extra_compile_args=["-O3", "-Wall", "-Wextra", "-Werror=return-type", "-fopenmp-simd", "-fno-trapping-math", "-fno-math-errno"],
)

setup(ext_modules=[ext], cmdclass={"build_ext": build_ext})
