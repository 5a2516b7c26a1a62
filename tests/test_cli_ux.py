"""What a user sees from the `hal` command (issue #21): one device option everywhere, the
subcommand's own usage on error, --version, did-you-mean, placement reasons, sizes a person
reads. The progress display and the per-node profile have their own tests (tests/conformance,
tests/test_profiler.py)."""
from __future__ import annotations

import json
import re

import pytest

import hal
from hal.cli import main
from hal.testing import mlp, save


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = tmp_path_factory.mktemp("ux") / "mlp.onnx"  # input x [batch, 64], batch symbolic
    save(mlp(), path)
    return str(path)


def _run(capsys, *argv) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse's own exits (--help, --version, usage errors)
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("command", [["run"], ["explain"], ["profile"]])
@pytest.mark.parametrize("flag", ["--device", "--devices"])
def test_every_model_subcommand_takes_both_spellings_of_the_device_option(model, capsys, tmp_path, command, flag):
    extra = ["-o", str(tmp_path / "t.json")] if command == ["profile"] else []
    code, out, err = _run(capsys, *command, model, flag, "ascend:0,cpu", *extra)
    assert code == 0, err
    if command == ["explain"]:
        assert out.startswith("Plan over ascend:0, cpu:0")


@pytest.mark.parametrize("flag", ["--device", "--devices"])
def test_generate_and_llm_fit_take_both_spellings(capsys, flag):
    code, out, err = _run(capsys, "generate", "--random-config", "llama-tiny", flag, "kunlun:0", "--max-new-tokens", "2", "--json")
    assert code == 0, err
    assert [stage["device"] for stage in json.loads(out)["stages"]] == ["kunlun:0"]
    code, out, err = _run(capsys, "llm", "fit", "--config", "llama-3-8b", flag, "910B", "--json")
    assert code == 0, err
    assert isinstance(json.loads(out), dict)  # one chip: a breakdown
    code, out, err = _run(capsys, "llm", "fit", "--config", "llama-3-8b", flag, "910B,R200", "--json")
    assert code == 0, err
    assert len(json.loads(out)) == 2  # several: a table's rows


def test_an_unknown_option_shows_the_subcommands_usage(model, capsys):
    code, _, err = _run(capsys, "explain", model, "--bogus")
    assert code == 2
    assert err.startswith("usage: hal explain ") and "hal explain: error: unrecognized arguments: --bogus" in err


def test_a_bad_argument_value_shows_the_subcommands_usage_and_name(model, capsys):
    code, _, err = _run(capsys, "run", model, "--dim", "batch=seven")
    assert code == 2
    assert err.startswith("usage: hal run ") and "hal run: error: --dim takes NAME=SIZE" in err
    code, _, err = _run(capsys, "llm", "fit", "--config", "llama-3-8b", "--device", "cpu", "--batch", "0")
    assert code == 2 and "hal llm fit: error: batch must be an integer >= 1" in err


def test_version_lists_hal_its_dependencies_the_contract_and_every_backend(capsys):
    code, out, _ = _run(capsys, "--version")
    assert code == 0
    from importlib import metadata

    assert out.startswith(f"hal {hal.__version__}\n")
    assert f"onnx {metadata.version('onnx')}" in out and f"onnxruntime {metadata.version('onnxruntime')}" in out
    assert re.search(r"^torch (\S+|not installed)$", out, re.M)
    assert f"HAL_BACKEND_API {hal.backend.HAL_BACKEND_API}" in out
    for name in ("cpu", "ascend", "kunlun", "cuda", "torch.npu"):
        assert re.search(rf"^  {re.escape(name)}: hal_\w+:\w+ \(hal {re.escape(hal.__version__)}\)$", out, re.M), name


@pytest.mark.parametrize("typed, meant", [("ascnd:0", "ascend:0"), ("kunlum:1", "kunlun:1"), ("cpuu", "cpu:0")])
def test_a_misspelt_device_suggests_the_nearest_name(typed, meant):
    with pytest.raises(hal.DeviceNotFoundError, match=f"did you mean '{meant}'"):
        hal.device(typed)


def test_a_misspelt_device_or_kind_on_the_command_line_suggests_too(model, capsys):
    code, _, err = _run(capsys, "run", model, "--device", "ascnd:0")
    assert code == 2 and "did you mean 'ascend:0'?" in err
    code, _, err = _run(capsys, "chips", "kunlum")
    assert code == 2 and "did you mean 'kunlun'?" in err
    code, _, err = _run(capsys, "devices", "--kind", "ascnd")
    assert code == 2 and "did you mean 'ascend'?" in err


def test_nothing_is_suggested_for_a_name_unlike_any_backend():
    with pytest.raises(hal.DeviceNotFoundError) as caught:
        hal.device("tpu:0")
    assert "did you mean" not in str(caught.value)


def test_priority_placement_says_why_each_node_is_where_it_is(model):
    plan = hal.InferenceSession(model, devices=["kunlun:0", "cpu"]).plan
    for node in plan.nodes:
        assert node.device == "kunlun:0"
        assert node.reason == f"first listed device that supports {node.op} at opset 17"
        assert node.source.startswith("hal_kunlun/ops.toml: [ops.") and "xpu" in node.source  # the row's citation


def test_fallback_reasons_are_short_in_the_text_and_cited_in_the_json(tmp_path):
    import onnx
    from onnx import helper

    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2, 4])
    y = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2, 4])
    graph = helper.make_graph([helper.make_node("Erf", ["x"], ["e"], name="erf"), helper.make_node("Relu", ["e"], ["y"], name="relu")],
                              "g", [x], [y])
    path = tmp_path / "erf.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    plan = hal.InferenceSession(str(path), devices=["kunlun:0", "cpu"]).plan
    erf = next(n for n in plan.nodes if n.name == "erf")
    assert erf.device == "cpu:0" and erf.reason == "Kunlun P800 has no Erf"
    assert "[missing] Erf: " in erf.source  # ops.toml's explanation, kept for the JSON
    text = plan.explain()
    assert "Kunlun P800 has no Erf" in text and "[missing]" not in text
    as_json = json.loads(plan.to_json())
    assert {n["name"]: n["source"] for n in as_json["nodes"]}["erf"] == erf.source


def test_cost_placement_names_its_rule(model):
    plan = hal.InferenceSession(model, devices=["ascend:0", "cpu"], placement="cost").plan
    assert all(n.reason.startswith("cost: ") for n in plan.nodes)


def test_run_says_which_symbolic_dimensions_defaulted_and_how_many_nodes_fell_back(model, capsys):
    code, out, err = _run(capsys, "run", model, "--device", "kunlun:0")
    assert code == 0
    assert "symbolic dimension(s) batch set to 1" in err and "--dim NAME=SIZE" in err
    assert re.search(r"^0 of \d+ node\(s\) fell back from kunlun:0$", out, re.M)
    code, out, err = _run(capsys, "run", model, "--device", "kunlun:0", "--dim", "batch=3")
    assert code == 0 and "symbolic dimension" not in err


def test_chips_shows_sizes_as_a_person_reads_them(capsys):
    code, out, _ = _run(capsys, "chips")
    assert code == 0
    rows = {line.split()[1].rstrip("*"): line for line in out.splitlines()[1:] if line.startswith(("ascend", "kunlun"))}
    assert "64.0 GiB" in rows["910B"] and "1.6 TB/s" in rows["910B"] and "376.0 T" in rows["910B"]
    assert "512 GB/s" in rows["R200"] and "float64,bfloat16" in rows["R200"]
    assert not re.search(r"\de[+-]\d", out)  # no 6.87195e+10
    code, out, _ = _run(capsys, "chips", "ascend", "--sources")
    assert "memory.capacity = 64.0 GiB" in out and "memory.bandwidth = 1.6 TB/s" in out
    assert not re.search(r"= [\d.]+e[+-]\d", out)


def test_conformance_takes_devices_as_the_other_subcommands_do(capsys):
    code, out, err = _run(capsys, "conformance", "--devices", "cpu", "--suite", "onnx", "--ops", "Relu", "--no-baselines")
    assert code == 0, err
    assert "cpu" in out
    code, _, err = _run(capsys, "conformance", "ascnd", "--suite", "onnx", "--ops", "Relu")
    assert code == 2 and "did you mean 'ascend:0'?" in err
