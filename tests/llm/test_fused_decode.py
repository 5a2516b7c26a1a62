"""hal.llm's fused CPU decode step (hal._C.DecoderLayers, csrc/llm/decoder_layers.h): the same
kernels as the per-kernel route, run from C++, so its tokens and logits must be the per-kernel
route's bit for bit; where it is used and where not; what bad input to it gets."""
from __future__ import annotations

import numpy as np
import pytest

import hal
import hal.llm
from hal import _C
from hal.llm import DecoderConfig

from .conftest import CONFIGS, PADDED_IDS, PADDED_MASK, TINY_LLAMA


def _generate(model, fused: bool, new_tokens: int = 10):
    if not fused:
        for stage in model.stages:
            stage.fused = None
    return model.generate(PADDED_IDS, new_tokens, attention_mask=PADDED_MASK, keep_logits=True, eos_token_id=None)


@pytest.mark.parametrize("quantization", ["none", "int8"])
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_fused_step_equals_the_per_kernel_route_bit_for_bit(name, quantization):
    config = CONFIGS[name]
    fused_model = hal.llm.load(config, device="cpu:0", quantization=quantization)
    assert all(stage.fused is not None for stage in fused_model.stages)
    fused = _generate(fused_model, True)
    per_kernel = _generate(hal.llm.load(config, device="cpu:0", quantization=quantization), False)
    np.testing.assert_array_equal(fused.tokens, per_kernel.tokens)
    assert len(fused.logits) == len(per_kernel.logits) == 10
    for a, b in zip(fused.logits, per_kernel.logits):
        np.testing.assert_array_equal(a, b)


def test_the_fused_step_serves_the_cpu_only():
    assert hal.llm.load(TINY_LLAMA, device="cpu:0").stages[0].fused is not None
    # w8a8 quantizes activations in Python for quantized_matmul; the chips round and keep a clock between kernels
    assert hal.llm.load(TINY_LLAMA, device="cpu:0", quantization="w8a8").stages[0].fused is None
    for device in ("ascend:0", "kunlun:0"):
        assert hal.llm.load(TINY_LLAMA, device=device).stages[0].fused is None
    split = hal.llm.load(TINY_LLAMA, devices=["cpu:0", "ascend:0"])
    assert split.stages[0].fused is not None and split.stages[1].fused is None


def test_a_pipeline_with_a_fused_cpu_stage_generates_the_cpu_tokens():
    ids = PADDED_IDS[1:2]
    alone = hal.llm.load(TINY_LLAMA, device="cpu:0").generate(ids, 8, eos_token_id=None)
    split = hal.llm.load(TINY_LLAMA, devices=["cpu:0", "ascend:0"], precision_mode="must_keep_origin_dtype")
    np.testing.assert_array_equal(split.generate(ids, 8, eos_token_id=None).tokens, alone.tokens)


def _layers(config: DecoderConfig, *, w_dtype=np.float32):
    h, i = config.hidden_size, config.intermediate_size
    qkv = (config.num_attention_heads + 2 * config.num_key_value_heads) * config.head_dim
    rng = np.random.default_rng(0)

    def fc(k, n):
        return rng.standard_normal((k, n)).astype(w_dtype) * np.asarray(0.02, w_dtype), None, None

    norm = np.ones(h, np.float32)
    return [(norm, fc(h, qkv), fc(config.num_attention_heads * config.head_dim, h), norm, fc(h, 2 * i), fc(i, h))]


def _decoder(config: DecoderConfig, layers):
    return _C.DecoderLayers(layers, hidden_size=config.hidden_size, num_heads=config.num_attention_heads,
                            num_kv_heads=config.num_key_value_heads, head_dim=config.head_dim,
                            intermediate_size=config.intermediate_size, eps=config.rms_norm_eps)


def test_bad_inputs_to_the_fused_step_are_invalid_argument_errors_naming_them():
    config = DecoderConfig.from_dict(TINY_LLAMA)
    d, kv = config.head_dim, config.num_key_value_heads
    decoder = _decoder(config, _layers(config))
    hidden = np.random.default_rng(1).standard_normal((2, config.hidden_size)).astype(np.float32)
    cache = np.zeros((1, 2, 2, kv, 16, d), np.float32)
    angles = np.zeros((2, d // 2), np.float32)
    bias = np.zeros((2, 16), np.float32)
    decoder.step(hidden, cache, angles, angles, bias, 3)  # well formed
    assert np.isfinite(hidden).all() and cache[0, :, :, :, 3].any() and not cache[0, :, :, :, 4:].any()
    cases = [
        (dict(hidden=hidden.astype(np.float64)), "hidden"),
        (dict(hidden=np.zeros((2, 8), np.float32)), "hidden"),
        (dict(cache=np.zeros((2, 2, 2, kv, 16, d), np.float32)), "cache"),  # two layers' cache for one layer
        (dict(cache=cache[..., ::2]), "cache"),  # not contiguous
        (dict(cos=np.zeros((1, d // 2), np.float32)), "cos"),
        (dict(key_bias=np.zeros(16, np.float32)), "key_bias"),
        (dict(past=16), "past"),
        (dict(past=-1), "past"),
    ]
    for change, word in cases:
        args = dict(hidden=hidden, cache=cache, cos=angles, sin=angles, key_bias=bias, past=3)
        args.update(change)
        with pytest.raises(hal.InvalidArgumentError, match=word):
            decoder.step(**args)
    readonly = hidden.copy()
    readonly.flags.writeable = False
    with pytest.raises(hal.InvalidArgumentError, match="writable"):
        decoder.step(readonly, cache, angles, angles, bias, 3)


def test_bad_weights_for_the_fused_step_are_refused_when_it_is_built():
    config = DecoderConfig.from_dict(TINY_LLAMA)
    layers = _layers(config)
    norm, qkv, o, post, gate_up, down = layers[0]
    with pytest.raises(hal.InvalidArgumentError, match="layer 0 o w"):
        _decoder(config, [(norm, qkv, (o[0][:32].copy(), None, None), post, gate_up, down)])
    with pytest.raises(hal.InvalidArgumentError, match="int8 weights take a float32 scale"):
        _decoder(config, [(norm, qkv, (o[0].astype(np.int8), None, None), post, gate_up, down)])
    with pytest.raises(hal.InvalidArgumentError, match="layer 0 input_norm"):
        _decoder(config, [(norm[:-1], qkv, o, post, gate_up, down)])
    with pytest.raises(hal.InvalidArgumentError, match="must be"):
        _decoder(config, [(norm, qkv, o)])
    # float16 weights are read as they are, like hal.ops.linear's
    assert _decoder(config, _layers(config, w_dtype=np.float16)).num_layers == 1
