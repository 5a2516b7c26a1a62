"""Builds the native core hal._C (csrc/) with pybind11; everything else is declared in pyproject.toml."""
from pathlib import Path

from pybind11.setup_helpers import Pybind11Extension, build_ext
from setuptools import setup

csrc = Path("csrc")
sources = sorted(str(p) for p in csrc.rglob("*.cpp"))

ext = Pybind11Extension(
    "hal._C",
    sources,
    include_dirs=[str(csrc)],
    cxx_std=17,
    extra_compile_args=["-O3", "-Wall", "-Wextra", "-Werror=return-type"],
)

setup(ext_modules=[ext], cmdclass={"build_ext": build_ext})
