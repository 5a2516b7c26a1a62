"""The model subcommands of the `hal` command: run, explain, profile (hal/cli.py)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import numpy_helper  # noqa: E402

from hal.testing import mlp, save, transformer_block  # noqa: E402

ERF_NODE = "/layer/intermediate/gelu/Erf"  # Kunlun has no Erf (backends/hal_kunlun/ops.toml [missing])


def _hal(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hal.cli", *map(str, args)], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    """A folder with mlp.onnx (input "x" [batch, 64], batch symbolic) and block.onnx (one small
    transformer layer, input "hidden_states" [1, 16, 64], with an Erf node)."""
    folder = tmp_path_factory.mktemp("models")
    save(mlp(), folder / "mlp.onnx")
    save(_erf_outside_gelu(transformer_block(seq=16, hidden=64, heads=2)), folder / "block.onnx")
    return folder


def _erf_outside_gelu(model):
    """The block with its GELU read by one more node: sessions fuse an erf-GELU whose middle nothing
    else reads for Kunlun (hal/graph/fusion.py), so this keeps an Erf that Kunlun must leave."""
    from onnx import helper

    model.graph.node.append(helper.make_node("Identity", [ERF_NODE + "_output_0"], ["erf_copy"], name="erf_copy"))
    model.graph.output.append(helper.make_tensor_value_info("erf_copy", onnx.TensorProto.FLOAT, [1, 16, 256]))
    return model


def _ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout


# -------------------------------------------------------------------------------------------- run


def test_run_prints_outputs_wall_and_simulated_time(models):
    out = _ok(_hal("run", models / "mlp.onnx", "--device", "ascend"))
    assert "logits: shape=(1, 10) dtype=float32" in out  # the symbolic batch defaults to 1
    assert "wall time:" in out
    assert "simulated time on ascend:0:" in out


def test_run_on_cpu_has_no_simulated_time(models):
    out = _ok(_hal("run", models / "mlp.onnx", "--device", "cpu"))
    assert "wall time:" in out and "simulated time" not in out


def test_run_reports_fallbacks(models):
    out = _ok(_hal("run", models / "block.onnx", "--device", "kunlun"))
    assert "output: shape=(1, 16, 64) dtype=float32" in out
    assert "simulated time on kunlun:0:" in out
    assert "1 of 34 node(s) fell back from kunlun:0" in out


@pytest.mark.parametrize("suffix", [".npy", ".pb"])
def test_run_reads_inputs_from_files(models, tmp_path, suffix):
    x = np.linspace(-1, 1, 3 * 64, dtype=np.float32).reshape(3, 64)
    path = tmp_path / f"x{suffix}"
    if suffix == ".npy":
        np.save(path, x)
    else:
        path.write_bytes(numpy_helper.from_array(x).SerializeToString())
    out = _ok(_hal("run", models / "mlp.onnx", "--device", "ascend", "--input", f"x={path}"))
    assert "logits: shape=(3, 10) dtype=float32" in out  # the file's batch of 3, not a random 1


def test_npy_and_pb_inputs_give_the_same_outputs(models, tmp_path):
    x = np.random.default_rng(0).standard_normal((2, 64)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    (tmp_path / "x.pb").write_bytes(numpy_helper.from_array(x).SerializeToString())
    summaries = [_ok(_hal("run", models / "mlp.onnx", "--input", f"x={tmp_path / name}")).splitlines()[0]
                 for name in ("x.npy", "x.pb")]
    assert summaries[0] == summaries[1]


def test_run_sizes_a_symbolic_dimension_with_dim(models):
    out = _ok(_hal("run", models / "mlp.onnx", "--device", "ascend", "--dim", "batch=7"))
    assert "logits: shape=(7, 10)" in out


@pytest.mark.parametrize("bad, message", [
    ("--dim=batch=seven", "--dim takes NAME=SIZE"),
    ("--input=x", "--input takes NAME=FILE"),
    ("--input=x=/no/such/file.npy", "cannot read input /no/such/file.npy"),
])
def test_run_rejects_bad_arguments_clearly(models, bad, message):
    result = _hal("run", models / "mlp.onnx", bad)
    assert result.returncode == 2
    assert f"hal run: error: {message}" in result.stderr and "Traceback" not in result.stderr
    assert result.stderr.startswith("usage: hal run ")  # the subcommand's own usage


def test_run_rejects_an_input_of_the_wrong_dtype(models, tmp_path):
    np.save(tmp_path / "x.npy", np.ones((2, 64), np.float64))
    result = _hal("run", models / "mlp.onnx", "--input", f"x={tmp_path / 'x.npy'}")
    assert result.returncode == 2 and "hal run: error: input 'x' must be float32" in result.stderr


def test_run_rejects_an_input_name_the_model_lacks(models, tmp_path):
    np.save(tmp_path / "x.npy", np.ones((2, 64), np.float32))
    result = _hal("run", models / "mlp.onnx", "--input", f"typo={tmp_path / 'x.npy'}")
    assert result.returncode == 2 and "typo" in result.stderr


# ---------------------------------------------------------------------------------------- explain


def test_explain_lists_every_node_and_the_fallbacks(models):
    out = _ok(_hal("explain", models / "block.onnx", "--devices", "kunlun,cpu"))
    assert "Plan over kunlun:0, cpu:0 (priority placement)" in out
    assert "Rewrote for the listed chips: 7 shape computation node(s) into constants" in out
    shape_ops = {"Shape", "Gather", "Unsqueeze", "Concat"}  # the block's sizes are fixed: folded away
    for node in onnx.load(models / "block.onnx").graph.node:
        assert node.name in out or node.op_type in shape_ops
    fallbacks = out.split("Fallbacks: 1")[1]
    assert ERF_NODE in fallbacks and "not on kunlun:0" in fallbacks and "has no Erf" in fallbacks


def test_explain_json_is_the_plan(models):
    plan = json.loads(_ok(_hal("explain", models / "block.onnx", "--devices", "kunlun,cpu", "--json")))
    assert {"devices", "nodes", "partitions", "transfers"} <= plan.keys()
    assert plan["devices"] == ["kunlun:0", "cpu:0"]
    placed = {n["name"]: n["device"] for n in plan["nodes"]}
    assert plan["fusions"] == "7 shape computation node(s) into constants"
    assert len(placed) == len(onnx.load(models / "block.onnx").graph.node) - 7
    assert placed[ERF_NODE] == "cpu:0"
    assert [f[0] for f in plan["fallbacks"]] == [ERF_NODE]
    assert sorted(n for p in plan["partitions"] for n in p["nodes"]) == sorted(placed)
    assert all(t["nbytes"] > 0 and t["source"] != t["destination"] for t in plan["transfers"])


def test_explain_json_counts_each_crossing_once(models):
    plan = json.loads(_ok(_hal("explain", models / "block.onnx", "--devices", "kunlun,cpu", "--json")))
    crossings = [(t["tensor"], t["destination"]) for t in plan["transfers"]]
    assert len(crossings) == len(set(crossings))


def test_explain_cost_placement(models):
    plan = json.loads(_ok(_hal("explain", models / "block.onnx", "--devices", "ascend,kunlun,cpu",
                               "--placement", "cost", "--json")))
    assert plan["placement"] == "cost" and plan["estimated_total_s"] > 0


def test_strict_fails_naming_the_node_kunlun_lacks(models):
    result = _hal("explain", models / "block.onnx", "--devices", "kunlun", "--strict")
    assert result.returncode == 2
    assert result.stderr.startswith("hal explain: error: kunlun:0 cannot run 1 node(s)")
    assert f"{ERF_NODE} (Erf)" in result.stderr and "Traceback" not in result.stderr
    assert result.stdout == ""


# ---------------------------------------------------------------------------------------- profile


def test_profile_writes_a_trace_on_both_clocks(models, tmp_path):
    trace_path = tmp_path / "trace.json"
    out = _ok(_hal("profile", models / "mlp.onnx", "--device", "ascend", "-o", trace_path))
    assert f"wrote {trace_path}" in out
    events = json.loads(trace_path.read_text())["traceEvents"]
    processes = {e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "process_name"}
    assert "ascend:0 (simulated clock)" in processes and "ascend:0 (wall clock)" in processes
    copies = [e for e in events if e["ph"] == "X" and e["cat"] == "copy"]
    assert {e["name"] for e in copies} >= {"copy_h2d", "copy_d2h"}
    assert any(e["cat"] == "compute" for e in events if e["ph"] == "X")


@pytest.mark.parametrize("device", ["ascend:0", "cpu"])
def test_profile_trace_shows_each_node_inside_its_partition(models, tmp_path, capsys, device):
    from hal.cli import main

    trace_path = tmp_path / "trace.json"
    assert main(["profile", str(models / "mlp.onnx"), "--device", device, "-o", str(trace_path), "--repeat", "2"]) == 0
    assert f"wrote {trace_path}" in capsys.readouterr().out
    events = json.loads(trace_path.read_text())["traceEvents"]
    clock = "simulated" if device != "cpu" else "wall"
    (pid,) = [e["pid"] for e in events if e["ph"] == "M" and e["name"] == "process_name" and e["args"]["name"].endswith(f"({clock} clock)")]
    graph = {n.name: n.op_type for n in onnx.load(models / "mlp.onnx").graph.node}
    slices = [e for e in events if e["ph"] == "X" and e["pid"] == pid]
    partitions = [e for e in slices if e["cat"] == "compute" and "node" not in e["args"]]
    assert len(partitions) == 2  # the model is one partition, run twice
    for partition in partitions:
        inside = [e for e in slices if e["tid"] == partition["tid"] and e["args"].get("node") in graph
                  and partition["ts"] <= e["ts"] and e["ts"] + e["dur"] <= partition["ts"] + partition["dur"] + 1e-6]
        assert sorted(e["args"]["node"] for e in inside) == sorted(graph)
        assert all(e["name"] == f"{graph[e['args']['node']]} ({e['args']['node']})" for e in inside)


# ----------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize("command", [
    ["run", "{missing}"],
    ["explain", "{missing}", "--devices", "kunlun"],
    ["profile", "{missing}", "-o", "{tmp}/trace.json"],
])
def test_a_missing_model_is_a_clear_error(tmp_path, command):
    missing = tmp_path / "no_such_model.onnx"
    result = _hal(*(arg.format(missing=missing, tmp=tmp_path) for arg in command))
    assert result.returncode == 2
    assert f"hal {command[0]}: error:" in result.stderr and str(missing) in result.stderr
    assert "does not exist" in result.stderr and "Traceback" not in result.stderr


def test_a_file_that_is_not_onnx_is_a_clear_error(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_text("not a model")
    result = _hal("run", path)
    assert result.returncode == 2
    assert f"hal run: error: {path} is not a valid ONNX model" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unknown_device_is_a_clear_error(models):
    result = _hal("run", models / "mlp.onnx", "--device", "tpu")
    assert result.returncode == 2 and "hal run: error: no backend named 'tpu'" in result.stderr


@pytest.mark.parametrize("command", ["run", "explain", "profile"])
def test_every_model_subcommand_has_help(command):
    result = _hal(command, "--help")
    assert result.returncode == 0 and f"usage: hal {command}" in result.stdout
    assert "model" in result.stdout
