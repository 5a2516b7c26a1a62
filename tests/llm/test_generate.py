"""hal.llm generates the tokens transformers generates, on every chip, with the chip's numerics."""
from __future__ import annotations

import numpy as np
import pytest

import hal
import hal.llm
from hal.llm import DecoderConfig

from .conftest import CONFIGS, PADDED_IDS, PADDED_MASK, TINY_LLAMA, transformers_generate, transformers_model

PROMPT = np.array([[5, 7, 9, 11, 3, 60, 2]])


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_cpu_greedy_tokens_equal_transformers(name):
    config = CONFIGS[name]
    model = hal.llm.load(config, device="cpu", seed=3)
    reference = transformers_model(config, model._host_weights)
    ours = model.generate(PROMPT, 12).tokens
    np.testing.assert_array_equal(ours, transformers_generate(reference, PROMPT, 12))
    padded = model.generate(PADDED_IDS, 8, attention_mask=PADDED_MASK).tokens
    np.testing.assert_array_equal(padded, transformers_generate(reference, PADDED_IDS, 8, PADDED_MASK))


def test_a_folder_saved_by_transformers_loads_and_generates_the_same(tmp_path):
    config = CONFIGS["qwen2"]
    weights = hal.llm.random_weights(DecoderConfig.from_dict(config), seed=5)
    reference = transformers_model(config, weights)
    reference.save_pretrained(tmp_path / "hf", safe_serialization=True)
    model = hal.llm.load(tmp_path / "hf", device="cpu")
    np.testing.assert_array_equal(model.generate(PROMPT, 10).tokens, transformers_generate(reference, PROMPT, 10))
    # and a folder hal writes loads in transformers' reading (names and layout are theirs)
    hal.llm.save_model(tmp_path / "hal", config, weights)
    again = hal.llm.load(tmp_path / "hal", device="cpu")
    np.testing.assert_array_equal(again.generate(PROMPT, 10).tokens, model.generate(PROMPT, 10).tokens)


@pytest.mark.parametrize("device, options", [
    ("ascend:0", {"precision_mode": "must_keep_origin_dtype"}),
    ("kunlun:0", {"fc_precision": "float"}),
])
def test_chips_with_numerics_off_generate_the_cpu_tokens(device, options):
    cpu = hal.llm.load(TINY_LLAMA, device="cpu", seed=1)
    chip = hal.llm.load(TINY_LLAMA, device=device, seed=1, **options)
    assert chip.describe()[0]["linear"] == "float32"
    np.testing.assert_array_equal(chip.generate(PROMPT, 16).tokens, cpu.generate(PROMPT, 16).tokens)
    np.testing.assert_array_equal(chip.generate(PADDED_IDS, 6, attention_mask=PADDED_MASK).tokens,
                                  cpu.generate(PADDED_IDS, 6, attention_mask=PADDED_MASK).tokens)
    report = chip.numerics_report(PROMPT, 8)
    assert report.max_abs_error == 0 and report.top1_agreement == 1


def test_ascend_default_precision_rounds_cube_operands_to_float16():
    # allow_fp32_to_fp16 (CANN's default): every matmul's operands and result are float16 values
    # (relative rounding error at most 2^-11 each); sums stay float32. Over the 2 layers' 5
    # matmuls the logits move by a few ulps of float16 at the logits' scale: well under 1% of the
    # largest logit, 1e-3 of it in practice; a bound 10x looser than measured keeps the test
    # stable while a float32 path (error 0) or a lost rounding (error 0) would fail the lower bound.
    model = hal.llm.load(TINY_LLAMA, device="ascend:0", seed=1)
    stage = model.describe()[0]
    assert (stage["linear"], stage["kv_cache"], stage["attention_operands"]) == ("float16", "float16", "float16")
    report = model.numerics_report(PROMPT, 16)
    relative = report.max_abs_error / report.max_abs_logit
    assert 1e-5 < relative < 1e-2, report
    assert report.top1_agreement >= 0.9, report
    assert "ascend:0" in str(report) and "top-1 agreement" in str(report)


def test_kunlun_int16_fc_is_closer_than_float16():
    # FC_INT16 quantizes each operand with 32767 levels of its largest magnitude: a relative
    # error of at most 1.5e-5 of that magnitude per operand, ~30x finer than float16's 2^-11.
    model = hal.llm.load(TINY_LLAMA, device="kunlun:0", seed=1)
    assert model.describe()[0]["linear"] == "int16"
    report = model.numerics_report(PROMPT, 16)
    relative = report.max_abs_error / report.max_abs_logit
    assert 1e-7 < relative < 1e-3, report
    assert report.top1_agreement == 1, report


@pytest.mark.parametrize("quantization, bound, agreement", [("int8", 0.05, 0.8), ("w8a8", 0.1, 0.75)])
def test_int8_quantization_accuracy_is_measured(quantization, bound, agreement):
    # int8 levels per output channel: 127 levels of each column's largest weight, a rounding error
    # up to 0.4% of it per weight; w8a8 rounds the activations so too, about doubling the error.
    # The report measures the cost; the bounds say it stays a few percent of the logits' scale.
    model = hal.llm.load(TINY_LLAMA, device="cpu", seed=1, quantization=quantization)
    assert model.describe()[0]["linear"] == quantization
    report = model.numerics_report(PROMPT, 16)
    relative = report.max_abs_error / report.max_abs_logit
    assert 1e-4 < relative < bound, report
    assert report.top1_agreement >= agreement, report


def test_weight_only_int8_is_closer_than_w8a8_and_runs_on_the_chips():
    errors = {}
    for quantization in ("int8", "w8a8"):
        report = hal.llm.load(TINY_LLAMA, device="cpu", seed=1, quantization=quantization).numerics_report(PROMPT, 8)
        errors[quantization] = report.max_abs_error
    assert errors["int8"] < errors["w8a8"]
    ascend = hal.llm.load(TINY_LLAMA, device="ascend:0", seed=1, quantization="int8")
    assert ascend.describe()[0]["linear"] == "int8"
    assert ascend.numerics_report(PROMPT, 8).top1_agreement >= 0.75


def test_layers_split_across_chips_generate_the_cpu_tokens_and_move_the_hidden_state():
    cpu = hal.llm.load(TINY_LLAMA, device="cpu", seed=2)
    split = hal.llm.load(TINY_LLAMA, devices=["ascend:0", "kunlun:0"], seed=2,
                         precision_mode="must_keep_origin_dtype", fc_precision="float")
    stages = split.describe()
    assert [s["layers"] for s in stages] == [[0, 0], [1, 1]]
    hidden = stages[1]["hidden_in"]  # the transfer is in the plan, costed by both chips' link models
    assert (hidden["from"], hidden["route"], hidden["bytes_per_token"]) == ("ascend:0", "through the host", 64 * 4)
    assert hidden["simulated_s_per_token"] > 2e-5  # two PCIe latencies of 10 us
    with hal.profiler.profile() as prof:
        result = split.generate(PROMPT, 6)
    np.testing.assert_array_equal(result.tokens, cpu.generate(PROMPT, 6).tokens)
    copies = [e for e in prof.events if e.category == "copy"]
    # Ascend and Kunlun have no link: each step's hidden state goes device -> host -> device
    assert sum(e.name == "copy_d2h" and e.device == "ascend:0" for e in copies) == 6
    assert set(result.simulated) == {"ascend:0", "kunlun:0"}


def test_the_kv_cache_never_leaves_the_device_over_64_tokens():
    config = {**TINY_LLAMA, "max_position_embeddings": 256}
    model = hal.llm.load(config, device="ascend:0")
    prompt = np.arange(1, 33)[None, :]
    with hal.profiler.profile() as prof:
        result = model.generate(prompt, 64)
    assert result.tokens.shape == (1, 64)
    copies = [e for e in prof.events if e.category == "copy"]
    # per step: the token ids in, the sampled id out; nothing else crosses the host link
    assert len(copies) == 2 * 64
    assert {e.name for e in copies} == {"copy_h2d", "copy_d2h"}
    kernels = [e for e in prof.events if e.category == "compute" and e.track != "generate"]
    assert any(e.name == "layer 1 attention" for e in kernels)
    steps = [e.name for e in prof.events if e.track == "generate"]
    assert steps[0] == "prefill" and steps[-1] == "decode step 63"


def test_simulated_clock_counts_every_kernel_and_reports_tokens_per_second():
    model = hal.llm.load(TINY_LLAMA, device="kunlun:0")
    result = model.generate(PROMPT, 8)
    sim = result.simulated["kunlun:0"]
    assert len(sim["decode_step_s"]) == 7 and sim["time_to_first_token_s"] > 0
    launch = model.devices[0].spec.launch_overhead_s
    from hal.llm.runtime import DECODER_KERNELS_PER_LAYER, DECODER_KERNELS_PER_STEP

    kernels = 2 * DECODER_KERNELS_PER_LAYER + DECODER_KERNELS_PER_STEP
    # a tiny model is launch-bound: each step costs at least one launch per kernel
    assert min(sim["decode_step_s"]) >= kernels * launch
    assert result.simulated_decode_tokens_per_s() > 0 and result.decode_tokens_per_s > 0


def test_sampling_is_seeded_and_top_k_1_is_greedy():
    model = hal.llm.load(TINY_LLAMA, device="cpu", seed=4)
    a = model.generate(PROMPT, 10, do_sample=True, temperature=0.8, top_k=20, top_p=0.9, seed=7).tokens
    b = model.generate(PROMPT, 10, do_sample=True, temperature=0.8, top_k=20, top_p=0.9, seed=7).tokens
    np.testing.assert_array_equal(a, b)
    greedy = model.generate(PROMPT, 10).tokens
    np.testing.assert_array_equal(model.generate(PROMPT, 10, do_sample=True, top_k=1, seed=1).tokens, greedy)
    hot = model.generate(PROMPT, 10, do_sample=True, temperature=5.0, seed=1).tokens
    assert not np.array_equal(hot, greedy)


def test_generation_stops_at_end_of_sequence_and_pads():
    model = hal.llm.load(TINY_LLAMA, device="cpu", seed=4)
    greedy = model.generate(PROMPT, 10).tokens[0]
    stop = int(greedy[3])
    stopped = model.generate(PROMPT, 10, eos_token_id=stop).tokens[0]
    first = list(greedy).index(stop)
    np.testing.assert_array_equal(stopped, greedy[: first + 1])


# -- bad input -------------------------------------------------------------------------------------
@pytest.mark.parametrize("change, words", [
    ({"model_type": "gpt2"}, "model_type 'gpt2'"),
    ({"hidden_act": "gelu"}, "hidden_act 'gelu'"),
    ({"rope_scaling": {"rope_type": "yarn", "factor": 4.0}}, "rope_scaling type 'yarn'"),
    ({"num_local_experts": 8}, "mixture-of-experts"),
    ({"use_sliding_window": True, "model_type": "qwen2", "sliding_window": 16}, "sliding-window"),
])
def test_unsupported_architecture_names_the_field(change, words):
    with pytest.raises(hal.UnsupportedModelError, match=words):
        hal.llm.load({**TINY_LLAMA, **change})


def test_prompt_beyond_the_maximum_length_fails_before_any_work():
    model = hal.llm.load(TINY_LLAMA, device="ascend:0")
    before = model.devices[0].memory_stats().allocated_bytes
    with pytest.raises(hal.InvalidArgumentError, match="exceeds the model's max_position_embeddings"):
        model.generate(np.ones((1, 100), np.int64), 29)
    assert model.devices[0].memory_stats().allocated_bytes == before


def test_a_kv_cache_too_big_for_the_chip_is_out_of_memory_with_sizes():
    config = {**TINY_LLAMA, "max_position_embeddings": 1 << 20, "num_key_value_heads": 4}
    model = hal.llm.load(config, device="ascend:0")
    with pytest.raises(hal.OutOfMemoryError, match=r"KV cache of 2 layers x batch 4096 .* needs .*GiB"):
        model.generate(np.ones((4096, 8), np.int64), 500000)


@pytest.mark.parametrize("kwargs, words", [
    ({"input_ids": [[1, 200]]}, r"\[0, 97\)"),
    ({"input_ids": [[1.5, 2]]}, "integer token ids"),
    ({"input_ids": [[1, 2]], "attention_mask": [[1, 0]]}, "pad on the left"),
    ({"input_ids": [[1, 2]], "max_new_tokens": 0}, "max_new_tokens"),
    ({"input_ids": [[1, 2]], "do_sample": True, "top_p": 0}, "top_p"),
])
def test_bad_generate_arguments_are_invalid_argument(kwargs, words):
    model = hal.llm.load(TINY_LLAMA, device="cpu")
    with pytest.raises(hal.InvalidArgumentError, match=words):
        model.generate(**{"max_new_tokens": 4, **kwargs})


def test_corrupt_or_missing_weights_are_invalid_model(tmp_path):
    config = DecoderConfig.from_dict(TINY_LLAMA)
    weights = hal.llm.random_weights(config)
    folder = hal.llm.save_model(tmp_path / "m", TINY_LLAMA, weights)
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(hal.InvalidModelError, match="not a readable safetensors file"):
        hal.llm.load(folder)
    (folder / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}......")
    with pytest.raises(hal.InvalidModelError, match="safetensors"):
        hal.llm.load(folder)
    (folder / "model.safetensors").unlink()
    with pytest.raises(hal.InvalidModelError, match="no .safetensors file"):
        hal.llm.load(folder)
    partial = {k: v for k, v in weights.items() if "layers.1.mlp" not in k}
    hal.llm.save_model(tmp_path / "p", TINY_LLAMA, partial)
    with pytest.raises(hal.InvalidModelError, match="tensors missing .*layers.1.mlp"):
        hal.llm.load(tmp_path / "p")
    wrong = {**weights, "model.norm.weight": np.ones(3, np.float32)}
    hal.llm.save_model(tmp_path / "w", TINY_LLAMA, wrong)
    with pytest.raises(hal.InvalidModelError, match=r"model.norm.weight has shape \(3,\)"):
        hal.llm.load(tmp_path / "w")
    with pytest.raises(hal.InvalidModelError, match="no such file"):
        hal.llm.load(tmp_path / "nowhere")


def test_the_onnx_route_generates_the_kernel_routes_tokens_through_inference_session():
    # devices the kernel route does not run on (cuda:N, not host-addressable) take the ONNX export;
    # here it is asked for on a simulated chip and on torch's CPU device, whose executor is the one
    # that serves GPUs
    cpu = hal.llm.load(TINY_LLAMA, device="cpu", seed=1)
    expected = cpu.generate(PROMPT, 8).tokens
    padded = cpu.generate(PADDED_IDS, 5, attention_mask=PADDED_MASK).tokens
    ascend = hal.llm.load(TINY_LLAMA, device="ascend:0", seed=1, route="onnx", precision_mode="must_keep_origin_dtype")
    assert ascend.route == "onnx" and ascend.describe()[0]["fallbacks"] == 0
    result = ascend.generate(PROMPT, 8)
    np.testing.assert_array_equal(result.tokens, expected)
    assert len(result.simulated["ascend:0"]["decode_step_s"]) == 7
    pytest.importorskip("torch")
    on_torch = hal.llm.load(TINY_LLAMA, device="torch.cpu:0", seed=1, route="onnx")
    np.testing.assert_array_equal(on_torch.generate(PROMPT, 8).tokens, expected)
    np.testing.assert_array_equal(on_torch.generate(PADDED_IDS, 5, attention_mask=PADDED_MASK).tokens, padded)
    assert on_torch.numerics_report(PROMPT, 4).max_abs_error < 1e-4


def test_route_auto_picks_the_kernels_where_they_run_and_bad_routes_are_refused():
    assert hal.llm.load(TINY_LLAMA, device="kunlun:0").route == "kernels"
    with pytest.raises(hal.InvalidArgumentError, match="route must be one of auto, kernels, onnx"):
        hal.llm.load(TINY_LLAMA, route="tensorrt")
    with pytest.raises(hal.InvalidArgumentError, match="quantization runs on the kernel route"):
        hal.llm.load(TINY_LLAMA, route="onnx", quantization="int8")
