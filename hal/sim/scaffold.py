"""`hal sim new NAME --from MODEL`: a new simulated chip as a package of its own, copied from a
chip hal ships, which installs with pip and passes the API conformance suite at once; then its
figures, op table and expectations are made the new chip's, one sourced line at a time.

What it writes (DIR/hal-NAME/):
    pyproject.toml            the package, registering the backend under the `hal.backends` entry point
    hal_NAME/__init__.py      the backend: a SimulatedBackend named NAME over chips/ and ops.toml
    hal_NAME/chips/NAME.toml  the source chip's spec with kind and model set to NAME
    hal_NAME/ops.toml         the source family's op table, the source model's rows the new model's
    hal_NAME/conformance.toml no expectations yet (run the node suite, then list what fails and why)
    tests/test_NAME.py        the chip loads, and `hal conformance NAME --suite api` passes
    README.md                 what to replace, in order

A one-off chip needs none of this: HAL_SIM_DEVICES=ascend=1:/path/chip.toml runs a spec file as a
device of an existing family.
"""
from __future__ import annotations

import re
from pathlib import Path

from ..errors import InvalidArgumentError
from .backend import SimulatedBackend
from .spec import ChipSpec

__all__ = ["scaffold_chip"]

_NAME = re.compile(r"[a-z][a-z0-9_]{1,31}")


def scaffold_chip(name: str, source: tuple[SimulatedBackend, ChipSpec], directory: Path, *, taken: set[str]) -> Path:
    """Writes the package for chip family `name` copied from `source` (a backend and one of its chip
    models) under `directory`; returns the package's folder. `taken`: backend names in use."""
    backend, chip = source
    if not _NAME.fullmatch(name):
        raise InvalidArgumentError(f"a chip family name is lowercase letters, digits and '_', starting with a letter (2-32), got {name!r}")
    if name in taken:
        raise InvalidArgumentError(f"a backend named '{name}' is already registered ({', '.join(sorted(taken))}); choose another name")
    root = directory / f"hal-{name}"
    if root.exists():
        raise InvalidArgumentError(f"{root} already exists; remove it or give another --dir")
    package = root / f"hal_{name}"
    (package / "chips").mkdir(parents=True)
    (root / "tests").mkdir()
    model = name.upper()
    (package / "chips" / f"{name}.toml").write_text(_spec(chip, name, model), encoding="utf-8")
    (package / "ops.toml").write_text(_op_table(Path(backend.op_table_path), chip.model, name, model), encoding="utf-8")
    (package / "conformance.toml").write_text(_EXPECTATIONS.format(name=name, source=chip.name), encoding="utf-8")
    (package / "__init__.py").write_text(_PACKAGE.format(name=name, cls=_class_name(name), model=model, source=chip.name),
                                         encoding="utf-8")
    (root / "pyproject.toml").write_text(_PYPROJECT.format(name=name, cls=_class_name(name)), encoding="utf-8")
    (root / "tests" / f"test_{name}.py").write_text(_TEST.format(name=name), encoding="utf-8")
    (root / "README.md").write_text(_README.format(name=name, source=chip.name, spec=chip.path.name), encoding="utf-8")
    return root


def _class_name(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_")) + "Backend"


def _spec(chip: ChipSpec, name: str, model: str) -> str:
    text = chip.path.read_text(encoding="utf-8")
    text = re.sub(r'(?m)^kind\s*=\s*"[^"]*"', f'kind = "{name}"', text, count=1)
    text = re.sub(r'(?m)^model\s*=\s*"[^"]*"', f'model = "{model}"', text, count=1)
    text = re.sub(r'(?m)^name\s*=\s*"[^"]*"', f'name = "{model} (figures of the {chip.name} until replaced)"', text, count=1)
    return (f"# {model}: scaffolded by `hal sim new {name} --from {chip.path.stem}`. Every figure below is still the\n"
            f"# {chip.name}'s: replace each with this chip's, with its public source and confidence (backends/SOURCES.md\n"
            "# in hal's repository shows the standard); an estimate says how it was made in its note.\n" + text)


def _op_table(path: Path, source_model: str, name: str, model: str) -> str:
    """The family's table with the source model's name replaced in `chips` and `dtypes_by_chip`
    (rows other models of the family have are left as they are: the new model lacks them too)."""
    text = path.read_text(encoding="utf-8")
    text = re.sub(r'(?m)^chip_family\s*=\s*"[^"]*"', f'chip_family = "{name}"', text, count=1)
    word = re.compile(rf'(?<![\w-]){re.escape(source_model)}(?![\w-])')
    lines = [word.sub(model, line) if line.lstrip().startswith(("chips", "dtypes_by_chip")) else line for line in text.splitlines()]
    return (f"# Copied from {path.parent.name}/{path.name} by `hal sim new {name}`: the ops the {source_model} runs, as\n"
            f"# the {model}'s until replaced with its own kernel list (each row names its source).\n" + "\n".join(lines) + "\n")


_PACKAGE = '''"""The {name} chip family, simulated from the spec files in chips/ (scaffolded from the {source})."""
from __future__ import annotations

from pathlib import Path

from hal.sim import SimulatedBackend

__all__ = ["{cls}"]


class {cls}(SimulatedBackend):
    name = "{name}"
    chips_dir = Path(__file__).parent / "chips"
    op_table_path = Path(__file__).parent / "ops.toml"
    default_model = "{model}"
'''

_PYPROJECT = '''[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "hal-{name}"
version = "0.1.0"
description = "The {name} chip family for hal, simulated from its spec files"
requires-python = ">=3.10"
dependencies = ["hal"]

# hal finds backends through this entry point, as it finds its own
[project.entry-points."hal.backends"]
{name} = "hal_{name}:{cls}"

[tool.setuptools]
packages = ["hal_{name}"]

[tool.setuptools.package-data]
hal_{name} = ["chips/*.toml", "ops.toml", "conformance.toml"]
'''

_EXPECTATIONS = '''# What hal's conformance suite expects of the {name} chips: tolerances where the chip's numerics differ from
# float32 math, and the node tests it is known to fail, each with its reason. Empty until the node suite has run:
#     hal conformance {name} --suite onnx --report report/
# then list each failure that is the chip's behaviour, not a bug ([[expected_failure]] tests = [...], reason = "...").
# Format: hal/conformance/expectations.py; scaffolded from the {source}'s family, whose expectations came from its numerics.
schema = 1
'''

_TEST = '''"""The {name} chips load and pass hal's API conformance suite."""
import subprocess
import sys

import hal


def test_the_chip_is_a_device():
    device = hal.device("{name}:0")
    assert device.spec.simulated and device.kind == "{name}"


def test_the_api_conformance_suite_passes():
    result = subprocess.run([sys.executable, "-m", "hal.cli", "conformance", "{name}", "--suite", "api"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
'''

_README = '''# hal-{name}

The {name} chip family for hal, scaffolded from the {source} (`{spec}`). Install it next to hal with
`pip install -e .`; `hal devices` then lists `{name}:0` and `{name}:1`, and `pytest tests` passes.

Make it the new chip's, in this order:
1. `hal_{name}/chips/{name}.toml`: every figure (memory, bandwidth, peaks per dtype, links, launch
   overhead, allocation rule, dtypes) with its public source and confidence.
2. `hal_{name}/ops.toml`: the ONNX ops, opsets and dtypes the chip's kernel library runs, each row
   citing where that comes from.
3. `hal conformance {name} --suite onnx --report report/`, then `hal_{name}/conformance.toml`: the
   failures that are the chip's behaviour, each with its reason; CI runs with `--strict-xfail`.
'''
