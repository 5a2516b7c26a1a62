"""`hal sim new NAME --from CHIP` (hal/sim/scaffold.py): a new simulated chip family as a package,
which pip installs and which passes the API conformance suite at once."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from hal.cli import main
from hal.sim import load_chip_spec
from hal.sim.optable import load_op_table


def test_a_scaffolded_chip_installs_and_passes_the_api_suite(tmp_path, capsys):
    assert main(["sim", "new", "mychip", "--from", "ascend_910b", "--dir", str(tmp_path)]) == 0
    root = tmp_path / "hal-mychip"
    assert f"wrote {root}" in capsys.readouterr().out
    spec = load_chip_spec(root / "hal_mychip" / "chips" / "mychip.toml")
    assert (spec.kind, spec.model) == ("mychip", "MYCHIP") and spec.memory_capacity.value == 64 * 2**30
    table = load_op_table(root / "hal_mychip" / "ops.toml")
    assert table.family == "mychip" and any(row.chips == frozenset({"MYCHIP"}) for row in table.rows.values())
    # installed as a user would (its own package, found through the hal.backends entry point), its own tests pass
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target", str(site), str(root)],
                   check=True, capture_output=True, timeout=300)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    env.pop("HAL_BACKENDS", None)
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(root / "tests")],
                            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "2 passed" in result.stdout
    devices = subprocess.run([sys.executable, "-m", "hal.cli", "devices", "--kind", "mychip"], capture_output=True, text=True,
                             env=env, timeout=120)
    assert "mychip:0" in devices.stdout and "mychip:1" in devices.stdout


@pytest.mark.parametrize("argv, complaint", [
    (["sim", "new", "Bad-Name", "--from", "910B"], "lowercase letters"),
    (["sim", "new", "ascend", "--from", "910B"], "already registered"),
    (["sim", "new", "mychip", "--from", "ascend_910c"], "did you mean 'ascend_910b'"),
])
def test_bad_scaffold_requests_are_clear_errors(tmp_path, capsys, argv, complaint):
    assert main([*argv, "--dir", str(tmp_path)]) == 2
    assert complaint in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # nothing half written


def test_an_existing_folder_is_not_overwritten(tmp_path, capsys):
    (tmp_path / "hal-mychip").mkdir()
    assert main(["sim", "new", "mychip", "--from", "P800", "--dir", str(tmp_path)]) == 2
    assert "already exists" in capsys.readouterr().err
