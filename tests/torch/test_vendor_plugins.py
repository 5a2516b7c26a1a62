"""Real chips through their vendors' torch plugins (hal/torch/devices.py TORCH_PLUGINS): with the
plugin installed, hal lists torch.<type>:N devices; without it, none, quietly."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("torch")

FAKE_PLUGIN = '''
"""Stands in for {package}: like the vendor's, importing it registers torch.{device_type}."""
import types
import torch

torch.{device_type} = types.SimpleNamespace(
    is_available=lambda: True,
    device_count=lambda: 2,
    get_device_properties=lambda i: types.SimpleNamespace(name="{chip}", total_memory=48 << 30),
)
'''


@pytest.mark.parametrize("device_type, package, vendor, chip", [
    ("mlu", "torch_mlu", "Cambricon", "MLU370-X8"),
    ("musa", "torch_musa", "Moore Threads", "MTT S4000"),
    ("gcu", "torch_gcu", "Enflame", "S60"),
    ("supa", "torch_br", "Biren", "BR104"),
    ("npu", "torch_npu", "Huawei", "Ascend910B2"),
])
def test_a_vendor_plugin_makes_its_devices_hal_devices(tmp_path, device_type, package, vendor, chip):
    (tmp_path / f"{package}.py").write_text(FAKE_PLUGIN.format(package=package, device_type=device_type, chip=chip))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    env.pop("HAL_BACKENDS", None)
    kind = f"torch.{device_type}"
    result = subprocess.run([sys.executable, "-m", "hal.cli", "devices", "--kind", kind, "--json"], capture_output=True,
                            text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    listed = json.loads(result.stdout)
    assert [d["device"] for d in listed] == [f"{kind}:0", f"{kind}:1"]
    assert listed[0]["vendor"] == vendor and listed[0]["name"] == chip and listed[0]["memory_bytes"] == 48 << 30


def test_without_the_plugin_there_are_no_devices_and_no_error():
    result = subprocess.run([sys.executable, "-m", "hal.cli", "devices", "--kind", "torch.mlu", "--json"], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0 and json.loads(result.stdout) == [] and "torch.mlu" not in result.stderr
