"""Imports flow one way (issue #19): the [tool.importlinter] contracts in pyproject.toml (hal's
layers, and no import cycle inside any package, function-level imports included) hold, and a
backend package gets everything it needs from hal.backends_kit."""
from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from .conftest import REPO, run_python


def test_the_import_contracts_hold():
    lint = shutil.which("lint-imports") or pytest.skip("import-linter is not installed (pip install -e '.[test]')")
    result = subprocess.run([lint, "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "Contracts: 2 kept, 0 broken." in result.stdout


def test_the_backend_contract_loads_nothing_built_on_it():
    # a fresh interpreter: importing the contract must not pull in host execution, torch or the registry
    result = run_python("import sys, hal.backend; print(sorted(m for m in sys.modules if m.startswith('hal.')))")
    loaded = set(eval(result.stdout))  # noqa: S307 (our own output)
    assert "hal.backend" in loaded and "hal.capability" in loaded
    assert not [m for m in loaded if m.startswith(("hal.graph", "hal.torch", "hal.sim", "hal.llm", "hal.ops"))]


def test_the_kit_offers_the_contract_and_every_ready_made_part():
    result = run_python("import hal.backends_kit as k\n"
                        "missing = [n for n in k.__all__ if getattr(k, n, None) is None]\n"
                        "print(missing, 'HostProgram' in k.__all__, 'TorchDeviceBackend' in k.__all__, 'Backend' in k.__all__)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["[]", "True", "True", "True"]
