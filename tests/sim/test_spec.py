"""Chip spec files: every shipped file validates, every figure has a source, bad files fail clearly."""
from __future__ import annotations

from pathlib import Path

import pytest

import hal
from hal.sim import find_chip_spec, list_chip_specs, load_chip_spec

from ..conftest import REPO

CHIP_DIRS = [REPO / "backends" / "hal_ascend" / "chips", REPO / "backends" / "hal_kunlun" / "chips"]
SHIPPED = sorted(p for d in CHIP_DIRS for p in d.glob("*.toml"))


def test_each_backend_ships_at_least_two_models():
    for chips in CHIP_DIRS:
        assert len(list_chip_specs(chips)) >= 2, chips


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_spec_is_valid_and_sourced(path):
    spec = load_chip_spec(path)
    assert spec.figures, "a spec without figures"
    for key, fig in spec.figures.items():
        assert fig.source.strip() and fig.confidence in ("high", "medium", "low"), key
        if fig.confidence == "low":
            assert fig.note.strip(), f"{path.name}: {key} is an estimate and must say how it was made"
    assert hal.DType.FLOAT64 not in spec.dtypes, "neither Ascend nor Kunlun computes float64"
    for dtype_name in spec.peak_flops:
        assert hal.dtype(dtype_name) in spec.dtypes or dtype_name == "int16"


def test_defaults_are_the_models_the_issue_names():
    assert find_chip_spec(CHIP_DIRS[0], "910b").name.startswith("Ascend 910B")
    assert "P800" in find_chip_spec(CHIP_DIRS[1], "P800").name


def test_ascend_allocation_rule_is_aclrtmalloc():
    spec = find_chip_spec(CHIP_DIRS[0], "910B")
    rule = spec.allocation
    assert (rule.granularity, rule.padding, rule.base_alignment) == (32, 32, 64)
    assert [rule.occupied(n) for n in (1, 32, 33, 64)] == [64, 64, 96, 96]


GOOD = (REPO / "backends" / "hal_ascend" / "chips" / "ascend_910b.toml").read_text()


@pytest.mark.parametrize(
    "edit, complaint",
    [
        (lambda t: t.replace("schema = 1", "schema = 9"), "schema"),
        (lambda t: t.replace('confidence = "high"', 'confidence = "sure"', 1), "confidence"),
        (lambda t: _drop_first_source(t), "source"),
        (lambda t: t.replace("[memory.allocation]", "[memory.allocaton]"), "memory.allocation"),
        (lambda t: t + "\n[[[", "TOML"),
        (lambda t: t.replace('"bfloat16",', '"bfloat17",', 1), "compute.dtypes"),
    ],
)
def test_bad_spec_files_name_file_key_and_problem(tmp_path: Path, edit, complaint):
    path = tmp_path / "bad_chip.toml"
    path.write_text(edit(GOOD))
    with pytest.raises(hal.BackendError, match=complaint) as caught:
        load_chip_spec(path)
    assert "bad_chip.toml" in str(caught.value)


def _drop_first_source(text: str) -> str:
    import re

    return re.sub(r', source = "[^"]*"', "", text, count=1)


def test_user_described_chip_through_hal_sim_devices(fresh_registry, tmp_path):
    future = tmp_path / "ascend_next.toml"
    future.write_text(GOOD.replace('model = "910B"', 'model = "NEXT"').replace('name = "Ascend 910B"', 'name = "Ascend Next"'))
    fresh_registry.setenv("HAL_SIM_DEVICES", f"ascend=1:{future}")
    (only,) = hal.devices("ascend")
    assert only.spec.name == "Ascend Next (simulated)" and only.spec.model == "NEXT"


def test_unknown_model_lists_the_known_ones():
    with pytest.raises(hal.BackendError, match="910B"):
        find_chip_spec(CHIP_DIRS[0], "999X")
