"""Backend discovery through the "hal.backends" entry points, as a vendor's package would use it."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest

import hal
from hal import registry

from ..conftest import REPO, run_python

VENDOR_EXAMPLE = REPO / "examples" / "vendor_backend"

# Two more entry points in the same package: one whose import fails, one written for another
# version of the backend contract.
EXTRA_ENTRY_POINTS = """broken = "hal_broken:BrokenBackend"
ancient = "hal_toy:AncientBackend"
"""
VENDOR_ANCIENT = """

class AncientBackend(ToyBackend):
    name = "ancient"
    api_version = 0
"""
VENDOR_BROKEN = "raise ImportError('libtoy_runtime.so: cannot open shared object file')\n"


@pytest.fixture(scope="module")
def vendor_site(tmp_path_factory) -> Path:
    """Builds and installs (pip --target) the example vendor package, outside the hal tree."""
    root = tmp_path_factory.mktemp("vendor")
    src = root / "src"
    shutil.copytree(VENDOR_EXAMPLE, src)
    pyproject = (src / "pyproject.toml").read_text()
    pyproject = pyproject.replace('py-modules = ["hal_toy"]', 'py-modules = ["hal_toy", "hal_broken"]')
    (src / "pyproject.toml").write_text(pyproject + EXTRA_ENTRY_POINTS)
    (src / "hal_toy.py").write_text((src / "hal_toy.py").read_text() + VENDOR_ANCIENT)
    (src / "hal_broken.py").write_text(VENDOR_BROKEN)
    site = root / "site"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site), str(src)],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr
    return site


def _with_vendor(site: Path, code: str, **env: str) -> subprocess.CompletedProcess:
    return run_python(textwrap.dedent(code), env={"PYTHONPATH": str(site), **env})


def test_out_of_tree_backend_appears_without_core_changes(vendor_site):
    result = _with_vendor(vendor_site, """
        import warnings, numpy as np, hal
        warnings.simplefilter("ignore")
        names = [d.name for d in hal.devices()]
        assert "toy:2" in names and "cpu:0" in names, names
        t = hal.tensor(np.arange(5, dtype=np.float32), device="toy:1").to("ascend:0").to("toy:0")
        assert t.numpy().tolist() == [0, 1, 2, 3, 4]
        print(hal.device("toy:0").memory_stats().allocated_bytes)
    """)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.split()[-1]) == 32  # 20 bytes rounded to the toy chip's 16-byte granularity


def test_out_of_tree_backend_runs_the_conformance_suite(vendor_site):
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--pyargs", "hal.conformance",
         "--hal-device", "toy:0", "--hal-suite", "api", "-W", "ignore::hal.BackendLoadWarning", "-x"],
        capture_output=True, text=True, timeout=600, env={**__import__("os").environ, "PYTHONPATH": str(vendor_site)},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert " passed" in result.stdout


def test_broken_backend_warns_once_and_others_keep_working(vendor_site):
    result = _with_vendor(vendor_site, """
        import warnings, hal
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            hal.devices(); hal.devices(); hal.device("ascend:0")
        messages = [str(w.message) for w in caught if issubclass(w.category, hal.BackendLoadWarning)]
        broken = [m for m in messages if "'broken'" in m]
        assert len(broken) == 1, messages
        assert "hal-vendor-toy" in broken[0] and "libtoy_runtime.so" in broken[0], broken[0]
        try:
            hal.device("broken:0")
        except hal.BackendError as exc:
            print("asked:", exc)
    """)
    assert result.returncode == 0, result.stderr
    assert "libtoy_runtime.so" in result.stdout


def test_backend_of_another_api_version_is_refused_with_the_reason(vendor_site):
    result = _with_vendor(vendor_site, """
        import warnings, hal
        warnings.simplefilter("ignore")
        try:
            hal.device("ancient:0")
        except hal.BackendError as exc:
            print(exc)
    """)
    assert result.returncode == 0, result.stderr
    assert "backend API 0" in result.stdout and "older" in result.stdout


def test_hal_backends_limits_what_is_loaded(fresh_registry):
    fresh_registry.setenv("HAL_BACKENDS", "cpu,ascend")
    kinds = {d.kind for d in hal.devices()}
    assert kinds == {"cpu", "ascend"}
    with pytest.raises(hal.DeviceNotFoundError, match="HAL_BACKENDS"):
        hal.device("kunlun:0")


def test_hal_backends_naming_a_missing_backend_warns(fresh_registry):
    fresh_registry.setenv("HAL_BACKENDS", "cpu,nosuchchip")
    with pytest.warns(hal.BackendLoadWarning, match="nosuchchip"):
        assert [d.name for d in hal.devices()] == ["cpu:0"]


def test_hal_sim_devices_sets_count_and_model(fresh_registry):
    fresh_registry.setenv("HAL_SIM_DEVICES", "ascend=4,kunlun=1:R200")
    assert [d.name for d in hal.devices("ascend")] == [f"ascend:{i}" for i in range(4)]
    kunlun = hal.devices("kunlun")
    assert len(kunlun) == 1 and "R200" in kunlun[0].spec.name
    fresh_registry.setenv("HAL_SIM_DEVICES", "ascend=0")
    registry.reset()
    assert hal.devices("ascend") == []


def test_bad_hal_sim_devices_disables_only_that_backend(fresh_registry):
    fresh_registry.setenv("HAL_SIM_DEVICES", "ascend=many")
    with pytest.warns(hal.BackendLoadWarning, match="ascend=many"):
        kinds = {d.kind for d in hal.devices()}
    assert "ascend" not in kinds and "kunlun" in kinds
    with pytest.raises(hal.BackendError, match="whole number"):
        hal.device("ascend:0")


def test_device_name_forms():
    assert hal.device("ascend") is hal.device("ascend:0")
    assert hal.device(" kunlun:1 ") is hal.device("kunlun:1")
    assert hal.device(hal.device("cpu")) is hal.device("cpu:0")
    with pytest.raises(hal.DeviceNotFoundError, match="install"):
        hal.device("tpu:0")


def test_hal_device_sets_the_default(fresh_registry):
    assert hal.default_device().name == "cpu:0"
    fresh_registry.setenv("HAL_DEVICE", "kunlun:1")
    assert hal.empty((2,), "float32").device.name == "kunlun:1"


def test_in_tree_backends_are_registered_as_entry_points():
    from importlib.metadata import entry_points

    names = {ep.name: ep.value for ep in entry_points(group="hal.backends")}
    assert names["cpu"] == "hal_cpu:CpuBackend"
    assert names["ascend"] == "hal_ascend:AscendBackend"
    assert names["kunlun"] == "hal_kunlun:KunlunBackend"


def test_import_hal_does_not_discover_backends():
    result = run_python("import hal, hal.registry as r, sys; print(r._registry.loaded, 'hal_ascend' in sys.modules)")
    assert result.stdout.split() == ["False", "False"], result.stderr


def test_devices_json_lists_every_field():
    from hal.cli import main
    import io
    import contextlib

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["devices", "--json"]) == 0
    listed = json.loads(out.getvalue())
    assert {d["device"] for d in listed} >= {"cpu:0", "ascend:0", "ascend:1", "kunlun:0", "kunlun:1"}
    for entry in listed:
        for key in ("name", "kind", "index", "vendor", "simulated", "memory_bytes", "dtypes", "peak_flops", "mem_bandwidth"):
            assert key in entry
    warnings.simplefilter("default")
