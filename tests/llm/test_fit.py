"""`hal llm fit`: parameter counts of the presets against the published totals, KV cache and
decode speed against hand-computed figures, fits / does not fit on the 910B, the CLI, bad inputs."""
from __future__ import annotations

import json
from pathlib import Path

import hal_ascend
import hal_kunlun
import pytest

from hal.cli import main
from hal.errors import InvalidArgumentError, InvalidModelError, UnsupportedModelError
from hal.llm.config import DecoderConfig
from hal.llm.fit import (
    KERNELS_PER_LAYER, KERNELS_PER_STEP, decode_launches, decode_step_roofline, fit, model_shape,
)
from hal.llm.presets import PRESETS, preset_config
from hal.sim import find_chip_spec

ASCEND_910B = find_chip_spec(Path(hal_ascend.__file__).parent / "chips", "910B")
KUNLUN_P800 = find_chip_spec(Path(hal_kunlun.__file__).parent / "chips", "P800")
GIB = 1 << 30


# -- parameters ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name, published", [
    ("qwen2-7b", 7.62e9),     # Qwen/Qwen2-7B: 7.62B params
    ("llama-3-8b", 8.03e9),   # meta-llama/Meta-Llama-3-8B: 8.03B params
    ("qwen2-72b", 72.7e9),    # Qwen/Qwen2-72B: 72.7B params
])
def test_dense_presets_count_the_published_totals(name, published):
    shape = model_shape(name)
    assert shape.total_params == pytest.approx(published, rel=1e-3)
    assert shape.active_params == shape.total_params and not shape.is_moe
    assert shape.total_params == DecoderConfig.from_dict(preset_config(name)).parameter_count()


def test_ernie_moe_counts_21b_in_memory_and_3b_per_token():
    # transformers' Ernie 4.5 MoE doc: "21B total, 3B active parameters"
    shape = model_shape("ernie-4.5-21b-a3b")
    assert shape.is_moe and shape.moe_layers == 27 and shape.num_experts == 64 and shape.experts_per_token == 6
    assert 21.0e9 < shape.total_params < 22.0e9
    assert 3.0e9 < shape.active_params < 3.5e9
    # one token reads its 6 experts; 64 tokens nearly all of them (64 x (1 - (58/64)^64) = 63.9)
    assert shape.experts_read(1) == pytest.approx(6)
    assert shape.experts_read(64) == pytest.approx(64 * (1 - (58 / 64) ** 64))


def test_every_preset_builds():
    for name in PRESETS:
        assert model_shape(name).total_params > 1e9


def test_other_moe_layouts_are_refused_by_name():
    raw = {**preset_config("qwen2-7b"), "model_type": "mixtral", "num_local_experts": 8}
    with pytest.raises(UnsupportedModelError, match="num_local_experts=8"):
        model_shape(raw)


# -- memory --------------------------------------------------------------------------------------
def test_kv_cache_bytes_by_hand():
    # Llama-3-8B: 32 layers, 8 KV heads x 128; 4 sequences x 8192 positions in float16
    report = fit("llama-3-8b", ASCEND_910B, context=8192, batch=4)
    assert report.kv_cache_bytes == 2 * 32 * 4 * 8192 * (8 * 128) * 2 == 4 * GIB


def test_llama_3_8b_fits_the_910b():
    report = fit("llama-3-8b", ASCEND_910B, context=8192, batch=4)
    assert report.weight_bytes == 8_030_261_248 * 2
    assert report.capacity_bytes == 64 * GIB and report.fits and report.headroom_bytes > 0
    assert report.total_bytes == report.weight_bytes + report.kv_cache_bytes + report.workspace_bytes


def test_qwen2_72b_float16_does_not_fit_the_910b_but_int4_does():
    dense = fit("qwen2-72b", ASCEND_910B, context=8192, batch=4, weight_dtype="float16")
    assert dense.weight_bytes == 72_706_203_648 * 2  # 135.4 GiB of weights alone
    assert not dense.fits and dense.headroom_bytes < -80 * GIB

    quantized = fit("qwen2-72b", ASCEND_910B, context=8192, batch=4, weight_dtype="int4")
    shape = model_shape("qwen2-72b")
    # matmul weights at half a byte plus a float32 scale per output channel; embeddings and norms float16
    assert quantized.weight_bytes == (shape.linear_params // 2 + 4 * shape.linear_rows
                                      + 2 * (shape.other_params + shape.embedding_params))
    # 35.6 GiB of weights + 10 GiB of KV cache + 6.4 GiB of prefill workspace: 52 GiB of 64
    assert quantized.kv_cache_bytes == 10 * GIB
    assert quantized.fits and 10 * GIB < quantized.headroom_bytes < 14 * GIB


def test_moe_weights_hold_every_expert():
    report = fit("ernie-4.5-21b-a3b", KUNLUN_P800, context=4096, batch=1)
    shape = model_shape("ernie-4.5-21b-a3b")
    table = 103424 * 2560  # tied embeddings: the lm_head is held as a copy of the table, as hal.llm's decoder does
    assert report.weight_bytes == 2 * (shape.total_params + table)
    # a decode step of one token reads only its experts, one row of the table, and the KV cache
    assert report.step_bytes == 2 * (shape.active_params + 2560) + report.kv_cache_bytes


# -- speed ---------------------------------------------------------------------------------------
def test_decode_tokens_per_second_is_the_hand_formula():
    # Qwen2-7B float16 on the 910B, one sequence at position 4096: memory-bound, so a step reads
    # every weight but the embedding table (one row of it) and the KV cache once at 1.6 TB/s, plus
    # 28 x 12 + 4 launches of 20 us.
    weights = (7_615_616_512 - 152064 * 3584 + 3584) * 2
    kv = 2 * 28 * 1 * 4096 * (4 * 128) * 2
    launches = 28 * KERNELS_PER_LAYER + KERNELS_PER_STEP
    step = (weights + kv) / 1.6e12 + launches * 2.0e-5

    report = fit("qwen2-7b", ASCEND_910B, context=4096, batch=1)
    assert launches == decode_launches("qwen2-7b") == 340
    assert report.decode_bound == "memory"
    assert report.decode_tokens_per_s == pytest.approx(1 / step, rel=1e-12)

    config = DecoderConfig.from_dict(preset_config("qwen2-7b"))
    seconds = decode_step_roofline(config, ASCEND_910B, batch=1, context=4096, weight_itemsize_bytes=2, kv_itemsize=2,
                                   launches=launches)
    assert seconds == pytest.approx(step, rel=1e-12)


def test_launch_counts_are_those_of_the_decoder():
    from hal.llm.runtime import DECODER_KERNELS_PER_LAYER, DECODER_KERNELS_PER_STEP

    assert (KERNELS_PER_LAYER, KERNELS_PER_STEP) == (DECODER_KERNELS_PER_LAYER, DECODER_KERNELS_PER_STEP)


def test_prefill_is_compute_bound_and_int8_uses_the_int8_rate():
    dense = fit("llama-3-8b", ASCEND_910B, context=8192, batch=4)
    int8 = fit("llama-3-8b", ASCEND_910B, context=8192, batch=4, weight_dtype="int8")
    assert dense.prefill_bound == "compute" and dense.peak_flops == 3.76e14
    assert int8.compute_dtype == "int8" and int8.peak_flops == 7.078e14 and int8.ttft_s < dense.ttft_s


def test_cpu_has_no_time_estimates_and_says_why():
    import hal

    report = fit("qwen2-7b", hal.device("cpu").spec, context=1024)
    assert report.capacity_bytes == hal.device("cpu").spec.memory_bytes
    assert report.ttft_s is None and report.decode_tokens_per_s is None
    assert any("memory bandwidth" in note and "unknown" in note for note in report.notes)


# -- bad inputs ----------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, message", [
    ({"context": 0}, "context must be an integer >= 1"),
    ({"context": -8}, "context must be an integer >= 1"),
    ({"context": 1024, "batch": 0}, "batch must be an integer >= 1"),
    ({"context": 16384}, "exceeds llama-3-8b's max_position_embeddings 8192"),
    ({"context": 1024, "prompt": 2048}, "longer than the context"),
    ({"context": 1024, "weight_dtype": "int2"}, "weight_dtype must be one of"),
])
def test_bad_arguments_are_clear_errors(kwargs, message):
    with pytest.raises(InvalidArgumentError, match=message):
        fit("llama-3-8b", ASCEND_910B, **kwargs)


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(InvalidArgumentError, match="known presets: ernie-4.5-21b-a3b, llama-3-8b, qwen2-72b, qwen2-7b"):
        model_shape("gpt-5")


def test_unreadable_config_is_an_invalid_model(tmp_path):
    bad = tmp_path / "config.json"
    bad.write_text('{"model_type": "llama",')
    with pytest.raises(InvalidModelError, match="not a readable JSON config"):
        model_shape(bad)
    with pytest.raises(InvalidModelError, match="no such file"):
        model_shape(tmp_path / "missing" / "config.json")


# -- the command ---------------------------------------------------------------------------------
def test_cli_breakdown_for_one_device(capsys):
    assert main(["llm", "fit", "--config", "qwen2-72b", "--device", "ascend:0", "--context", "8192", "--batch", "4"]) == 0
    out = capsys.readouterr().out
    assert "qwen2-72b on ascend:0 (910B): Ascend 910B (Huawei)" in out
    for expected in ("135.4 GiB", "10.0 GiB", "64.0 GiB", "no, ", "short", "1.6 TB/s", "tok/s", "time to first token"):
        assert expected in out


def test_cli_table_for_all_chips(capsys):
    assert main(["llm", "fit", "--config", "ernie-4.5-21b-a3b", "--devices", "all", "--context", "8192", "--batch", "4"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[1].split()[:4] == ["CHIP", "VENDOR", "MEMORY", "BANDWIDTH"]
    for chip in ("ascend 910B", "ascend 310P", "kunlun P800", "kunlun R200", "cpu:0"):
        assert any(line.startswith(chip) for line in lines), chip
    assert "no time estimates" in out and "MoE" in out


def test_cli_json_and_a_config_path(tmp_path, capsys):
    (tmp_path / "config.json").write_text(json.dumps(preset_config("llama-3-8b")))
    assert main(["llm", "fit", "--config", str(tmp_path), "--devices", "910B,ascend:1,r200", "--context", "8192",
                 "--batch", "4", "--json"]) == 0
    reports = json.loads(capsys.readouterr().out)
    assert [r["chip"] for r in reports] == ["ascend 910B", "kunlun R200"]  # ascend:1 is a 910B too: one row
    assert all(r["weight_dtype"] == "float16" and r["kv_cache_bytes"] == 4 * GIB for r in reports)
    # 15.0 GiB of float16 weights alone: the 16 GiB R200 cannot hold them with the KV cache
    assert reports[0]["fits"] is True and reports[1]["fits"] is False

    # int8 weights (8.0 GiB with their scales and the float16 embeddings) leave 0.9 GiB free there
    assert main(["llm", "fit", "--config", str(tmp_path / "config.json"), "--device", "r200", "--context", "8192",
                 "--batch", "4", "--quantization", "int8", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["chip"] == "kunlun R200" and report["fits"] is True and 0 < report["headroom_bytes"] < GIB


@pytest.mark.parametrize("args, message", [
    (["--config", "gpt-5"], "unknown model preset 'gpt-5'; known presets: ernie-4.5-21b-a3b"),
    (["--config", "llama-3-8b", "--context", "16384"], "exceeds llama-3-8b's max_position_embeddings 8192"),
    (["--config", "llama-3-8b", "--context", "-1"], "context must be an integer >= 1"),
    (["--config", "llama-3-8b", "--batch", "0"], "batch must be an integer >= 1"),
])
def test_cli_errors_exit_2(args, message, capsys):
    assert main(["llm", "fit", "--device", "cpu", *args]) == 2
    err = capsys.readouterr().err
    assert "hal llm fit: error: " in err and message in err


def test_cli_unreadable_config_exits_2(tmp_path, capsys):
    bad = tmp_path / "config.json"
    bad.write_text("not json")
    assert main(["llm", "fit", "--config", str(bad), "--device", "cpu"]) == 2
    assert "not a readable JSON config" in capsys.readouterr().err
