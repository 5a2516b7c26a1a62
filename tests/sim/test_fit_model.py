"""`hal fit model.onnx --devices all` (hal/sim/fit.py): which chip fits an ONNX model, from the
spec files and op tables alone, agreeing with what a session over that chip would do."""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

import hal
from hal.cli import main
from hal.cli_options import simulated_chip_models
from hal.graph.model import load_model
from hal.sim.fit import activation_peak_bytes, as_a_session_sees_it, fit_model
from hal.testing import save, transformer_block


@pytest.fixture(scope="module")
def block(tmp_path_factory):
    path = tmp_path_factory.mktemp("fit") / "block.onnx"
    save(transformer_block(seq=16, hidden=64, heads=2), path)
    return path


def _chain(tmp_path, n: int = 4096):
    """x [n] -> Relu -> a -> Neg -> b -> Abs -> y, and a weight w [n] added at the end: each value n floats."""
    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [n])
    y = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [n])
    w = numpy_helper.from_array(np.ones(n, np.float32), "w")
    nodes = [helper.make_node("Relu", ["x"], ["a"], name="relu"), helper.make_node("Neg", ["a"], ["b"], name="neg"),
             helper.make_node("Abs", ["b"], ["c"], name="abs"), helper.make_node("Add", ["c", "w"], ["y"], name="add")]
    path = tmp_path / "chain.onnx"
    onnx.save(helper.make_model(helper.make_graph(nodes, "chain", [x], [y], [w]), opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def test_weights_and_peak_activations_are_counted(tmp_path):
    model = load_model(str(_chain(tmp_path)))
    # a value is freed after its last reader, the input too: x+a, then a+b, b+c, c+y: two values at most
    assert activation_peak_bytes(model, model.node_infos()) == 2 * 4096 * 4
    (backend, chip) = next((b, c) for b, c in simulated_chip_models() if c.model == "910B")
    report = fit_model(model, chip, lambda n: backend.chip_supports(n, chip), lambda n: 0.0)
    assert report.weight_bytes == 4096 * 4 and report.fits and report.fallback_nodes == 0 and not report.dynamic
    assert report.estimated_s > 4 * chip.launch_overhead.value  # four kernels and the copies in and out


@pytest.mark.parametrize("model_name, kind", [("310P", "ascend"), ("910B", "ascend"), ("R200", "kunlun"), ("P800", "kunlun")])
def test_fallbacks_agree_with_a_session_over_that_chip(fresh_registry, block, model_name, kind):
    fresh_registry.setenv("HAL_SIM_DEVICES", f"{kind}=1:{model_name}")
    session = hal.InferenceSession(str(block), devices=[f"{kind}:0", "cpu"])
    (backend, chip) = next((b, c) for b, c in simulated_chip_models() if c.model == model_name)
    report = fit_model(as_a_session_sees_it(load_model(str(block))), chip, lambda n: backend.chip_supports(n, chip), lambda n: 0.0)
    session_fallbacks = [n for n in session.plan.nodes if n.device == "cpu:0" and "fixed shapes" not in n.reason]
    assert report.fallback_nodes == len(session_fallbacks) == len(session.plan.fallbacks)
    assert report.fallback_ops == sorted({n.op for n in session_fallbacks})


def test_the_cli_lists_every_chip_model_and_the_cpu(block, capsys):
    assert main(["fit", str(block), "--devices", "all", "--json"]) == 0
    rows = {r["target"]: r for r in json.loads(capsys.readouterr().out)}
    assert {f"{c.kind} {c.model}" for _, c in simulated_chip_models()} | {"cpu:0"} == set(rows)
    assert rows["ascend 310P"]["fallback_ops"] == ["LayerNormalization"]  # the 310P's op table lacks it
    assert rows["kunlun P800"]["fallback_nodes"] == 0  # Erf-GELU runs fused, as a session does it
    assert all(r["fits"] for r in rows.values())
    assert main(["fit", str(block)]) == 0  # the table, --devices all by default
    out = capsys.readouterr().out
    assert "ascend 310P" in out and "1 node(s): LayerNormalization" not in out and "2 node(s): LayerNormalization" in out


def test_a_model_too_big_for_a_chip_says_by_how_much(tmp_path, capsys):
    path = tmp_path / "mlp.onnx"
    from hal.testing import mlp

    save(mlp(), path)  # input x [batch, 64]
    assert main(["fit", str(path), "--devices", "R200,910B", "--dim", "batch=30000000", "--json"]) == 0
    rows = {r["target"]: r for r in json.loads(capsys.readouterr().out)}
    r200, b910 = rows["kunlun R200"], rows["ascend 910B"]
    assert not r200["fits"] and r200["needed_bytes"] > r200["capacity_bytes"] == 16 * 2**30
    assert b910["fits"] and not b910["dynamic"]
    assert main(["fit", str(path), "--devices", "R200", "--dim", "batch=30000000"]) == 0
    assert " short" in capsys.readouterr().out


def test_bad_fit_arguments_are_clear_errors(block, capsys):
    assert main(["fit", str(block), "--dim", "nosuch=3"]) == 2
    assert "--dim names nosuch are not symbolic dimensions" in capsys.readouterr().err
    assert main(["fit", str(block), "--devices", "999X"]) == 2
    assert "no backend named '999X'" in capsys.readouterr().err
