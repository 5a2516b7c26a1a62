"""Chip spec files: every shipped file validates, every figure has a source, bad files fail clearly."""
from __future__ import annotations

from pathlib import Path

import pytest

import hal
from hal.sim import find_chip_spec, list_chip_specs, load_chip_spec

from ..conftest import REPO

CHIP_DIRS = [REPO / "backends" / "hal_ascend" / "chips", REPO / "backends" / "hal_kunlun" / "chips"]
ALL_CHIP_DIRS = sorted(REPO.glob("backends/hal_*/chips"))
SHIPPED = sorted(p for d in ALL_CHIP_DIRS for p in d.glob("*.toml"))


def test_each_backend_ships_at_least_two_models():
    for chips in CHIP_DIRS:
        assert len(list_chip_specs(chips)) >= 2, chips


def test_nine_chip_families_ship_specs_that_say_how_the_real_chip_is_reached():
    kinds = {spec.kind for d in ALL_CHIP_DIRS for spec in list_chip_specs(d)}
    assert kinds >= {"ascend", "kunlun", "mlu", "dcu", "musa", "biren", "iluvatar", "gcu", "metax"}
    for d in ALL_CHIP_DIRS:
        for spec in list_chip_specs(d):
            if spec.kind not in ("ascend", "kunlun"):
                assert spec.software is not None and spec.software.source.strip(), spec.path
    torch_devices = {spec.kind: spec.software.torch_device for d in ALL_CHIP_DIRS for spec in list_chip_specs(d)
                     if spec.software and spec.software.compatibility != "own"}
    assert torch_devices["dcu"] == torch_devices["metax"] == torch_devices["iluvatar"] == "cuda" and torch_devices["musa"] == "musa"


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_spec_is_valid_and_sourced(path):
    spec = load_chip_spec(path)
    assert spec.figures, "a spec without figures"
    for key, fig in spec.figures.items():
        assert fig.source.strip() and fig.confidence in ("high", "medium", "low"), key
        if fig.confidence == "low":
            assert fig.note.strip(), f"{path.name}: {key} is an estimate and must say how it was made"
    if spec.kind in ("ascend", "kunlun"):
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


def _line_of(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), start=1) if needle in line)


@pytest.mark.parametrize(
    "edit, key, needle",
    [  # (the edit, the key the error names, text on the line it must point at)
        (lambda t: t.replace("bandwidth   = { value = 1.6e12", "bandwidth   = { value = -1.6e12", 1), "memory.bandwidth", "bandwidth   ="),
        (lambda t: _remove_line(t, "launch_overhead"), "compute.launch_overhead", "[compute]"),
        (lambda t: t.replace('"bfloat16",', '"bfloat17",', 1), "compute.dtypes", "dtypes ="),
        (lambda t: t.replace("float16  = {", "float17  = {", 1), "compute.peak_flops.float17", "float17"),
        (lambda t: t.replace("[host_link]", '[software]\nstack = "x"\ncompatibility = "opencl"\ntorch_package = "t"\n'
                             'torch_device = "d"\nsource = "s"\n\n[host_link]'), "software.compatibility", "compatibility ="),
    ],
)
def test_a_bad_figure_is_an_invalid_spec_error_naming_file_key_and_line(tmp_path: Path, edit, key, needle):
    path = tmp_path / "bad_chip.toml"
    text = edit(GOOD)
    path.write_text(text)
    with pytest.raises(hal.InvalidSpecError) as caught:
        load_chip_spec(path)
    message = str(caught.value)
    assert message.startswith(f"chip spec {path}, line {_line_of(text, needle)}: {key}: "), message
    path.write_text(GOOD)  # fixed: the same path now loads whole (nothing of the bad file was kept)
    assert load_chip_spec(path).memory_bandwidth.value == 1.6e12


def _remove_line(text: str, needle: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.startswith(needle))


def test_the_software_table_says_how_the_real_chip_is_reached(tmp_path: Path):
    path = tmp_path / "chip.toml"
    path.write_text(GOOD.replace("[host_link]", '[software]\nstack = "CANN"\ncompatibility = "own"\ntorch_package = "torch_npu"\n'
                                                '[software.extra]\n\n[host_link]'))
    with pytest.raises(hal.InvalidSpecError, match="software: unknown fields"):
        load_chip_spec(path)
    path.write_text(GOOD.replace("[host_link]", '[software]\nstack = "CANN"\ncompatibility = "own"\ntorch_package = "torch_npu"\n'
                                                'torch_device = "npu"\nsource = "Ascend/pytorch"\n\n[host_link]'))
    spec = load_chip_spec(path)
    assert (spec.software.compatibility, spec.software.torch_device) == ("own", "npu")
    assert spec.device_spec(0).details["software"]["torch_package"] == "torch_npu"


OPS = (REPO / "backends" / "hal_kunlun" / "ops.toml").read_text()


@pytest.mark.parametrize(
    "edit, key, needle",
    [
        (lambda t: t.replace("[ops.Abs]", "[ops.Abss]", 1), "ops.Abss", "[ops.Abss]"),
        (lambda t: t.replace("[ops.Abs]\nopsets = [6]", "[ops.Abs]\nopsets = [0]", 1), "ops.Abs.opsets", "opsets = [0]"),
        (lambda t: t.replace('dtypes = ["float16", "float32"]', 'dtypes = ["float16", "float33"]', 1), "ops.Abs.dtypes", "float33"),
    ],
)
def test_a_bad_op_table_is_an_invalid_spec_error_naming_file_key_and_line(tmp_path: Path, edit, key, needle):
    from hal.sim.optable import load_op_table

    path = tmp_path / "ops.toml"
    text = edit(OPS)
    assert text != OPS
    path.write_text(text)
    with pytest.raises(hal.InvalidSpecError) as caught:
        load_op_table(path)
    assert str(caught.value).startswith(f"op table {path}, line {_line_of(text, needle)}: {key}"), str(caught.value)


def test_every_simulated_familys_op_table_loads_and_cites_its_sources():
    from hal.cli_options import simulated_chip_models
    from hal.sim.optable import load_op_table

    backends = {b.name: b for b, _ in simulated_chip_models()}
    assert set(backends) >= {"ascend", "kunlun", "mlu", "dcu", "musa", "biren", "iluvatar", "gcu", "metax"}
    tables = {name: load_op_table(b.op_table_path) for name, b in backends.items()}
    for name, table in tables.items():
        assert all(row.source.strip() for row in table.rows.values()), name
        assert table.rows or name == "biren", f"{name} claims no op"  # Biren publishes no kernel list
    # chips whose stacks share a public kernel set share its table
    assert tables["musa"] is tables["iluvatar"] is tables["metax"] and tables["dcu"] is not tables["musa"]
    assert "MatMul" not in {op for _, op in tables["biren"].rows}
