"""`hal generate` and `hal profile MODEL_DIR` from the shell's side."""
from __future__ import annotations

import json

import numpy as np

import hal.llm
from hal.cli import main
from hal.llm import DecoderConfig

from .conftest import TINY_LLAMA


def test_generate_prints_tokens_and_both_clocks(capsys):
    assert main(["generate", "--random-config", "llama-tiny", "--device", "kunlun:0", "--prompt-ids", "1,2,3",
                 "--max-new-tokens", "6", "--numerics"]) == 0
    out = capsys.readouterr().out
    assert "kunlun:0: layers 0-1, linear int16" in out
    tokens = [line for line in out.splitlines() if line.startswith("tokens[0]:")]
    assert len(tokens[0].split()) == 1 + 6
    assert "ms simulated on kunlun:0" in out and "tokens/s simulated" in out and "top-1 agreement" in out


def test_generate_reads_a_model_folder_and_matches_the_api(tmp_path, capsys):
    weights = hal.llm.random_weights(DecoderConfig.from_dict(TINY_LLAMA), seed=9)
    folder = hal.llm.save_model(tmp_path / "model", TINY_LLAMA, weights)
    assert main(["generate", str(folder), "--devices", "ascend:0,kunlun:0", "--prompt-ids", "4,5,6", "--batch", "2",
                 "--max-new-tokens", "5", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    expected = hal.llm.load(folder, devices=["ascend:0", "kunlun:0"]).generate([[4, 5, 6]] * 2, 5).tokens
    np.testing.assert_array_equal(np.array(summary["tokens"]), expected)
    assert set(summary["simulated"]) == {"ascend:0", "kunlun:0"}
    assert summary["simulated_decode_tokens_per_s"] > 0


def test_profile_of_a_model_folder_shows_prefill_and_every_decode_step(tmp_path, capsys):
    folder = hal.llm.save_model(tmp_path / "model", TINY_LLAMA, hal.llm.random_weights(DecoderConfig.from_dict(TINY_LLAMA)))
    trace = tmp_path / "trace.json"
    assert main(["profile", str(folder), "--device", "ascend:0", "--max-new-tokens", "4", "-o", str(trace)]) == 0
    events = json.loads(trace.read_text())["traceEvents"]
    steps: dict[int, list[str]] = {}  # per clock (a process in the trace): the steps in time order
    for e in sorted((e for e in events if e.get("ph") == "X" and e["cat"] == "compute"), key=lambda e: e["ts"]):
        if e["name"].startswith(("prefill", "decode")):
            steps.setdefault(e["pid"], []).append(e["name"])
    assert list(steps.values()) == [["prefill", "decode step 1", "decode step 2", "decode step 3"]] * 2  # wall and simulated
    assert any(e.get("name") == "layer 0 qkv" for e in events)


def test_generate_bad_input_is_a_clear_error(tmp_path, capsys):
    assert main(["generate", str(tmp_path / "missing")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["generate", "--random-config", "llama-tiny", "--prompt-ids", "1,x"]) == 2
    assert "--prompt-ids takes comma-separated integers" in capsys.readouterr().err
    assert main(["generate", "--random-config", "nonesuch"]) == 2
    assert "llama-tiny" in capsys.readouterr().err
    assert main(["generate", "--random-config", "llama-tiny", "--max-new-tokens", "600"]) == 2
    assert "max_position_embeddings" in capsys.readouterr().err
