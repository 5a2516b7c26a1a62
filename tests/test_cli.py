from __future__ import annotations

import json
import subprocess
import sys

import pytest


def _hal(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hal.cli", *args], capture_output=True, text=True, timeout=120)


def test_devices_table_lists_every_default_device():
    result = _hal("devices")
    assert result.returncode == 0, result.stderr
    for name in ("cpu:0", "ascend:0", "ascend:1", "kunlun:0", "kunlun:1"):
        assert name in result.stdout
    assert "Ascend 910B (simulated)" in result.stdout


def test_devices_json_is_machine_readable():
    listed = json.loads(_hal("devices", "--json").stdout)
    ascend = next(d for d in listed if d["device"] == "ascend:0")
    assert ascend["simulated"] is True and ascend["memory_bytes"] == 64 << 30
    assert "float64" not in ascend["dtypes"] and ascend["peak_flops"]["float16"] > 1e14


@pytest.mark.parametrize("command", [[], ["devices"], ["chips"]])
def test_every_subcommand_has_help(command):
    result = _hal(*command, "--help")
    assert result.returncode == 0 and "usage: hal" in result.stdout


def test_chips_lists_models_with_sources():
    result = _hal("chips", "ascend", "--sources")
    assert result.returncode == 0, result.stderr
    assert "910B" in result.stdout and "310P" in result.stdout and "http" in result.stdout


def test_unknown_subcommand_fails_with_usage():
    result = _hal("frobnicate")
    assert result.returncode == 2 and "invalid choice" in result.stderr
