"""hal.llm.onnx_export against transformers: the same random weights in LlamaForCausalLM /
Qwen2ForCausalLM and in the ONNX graph give the same greedy tokens and logits, left padding
included; the graph also runs through hal.InferenceSession on the CPU and on a simulated Ascend."""
from __future__ import annotations

import numpy as np
import pytest

import hal
from hal.errors import InvalidArgumentError, InvalidModelError
from hal.llm.config import DecoderConfig
from hal.llm.onnx_export import OPSET, OnnxDecoder, decoder_model, position_ids, prefill_feeds
from hal.llm.rope import inverse_frequencies

onnx = pytest.importorskip("onnx")
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

VOCAB = 97
PROMPT = 8
NEW = 6
ATOL = 1e-4

BASE = {
    "model_type": "llama", "vocab_size": VOCAB, "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 2,
    "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 128, "rms_norm_eps": 1e-5,
    "rope_theta": 10000.0, "tie_word_embeddings": False, "hidden_act": "silu",
    # no end-of-sequence token: transformers then generates exactly max_new_tokens, as OnnxDecoder does
    "bos_token_id": None, "eos_token_id": None, "pad_token_id": None,
}

CONFIGS = {
    "llama-gqa": {},
    "llama-mha": {"num_key_value_heads": 4},
    "llama-tied": {"tie_word_embeddings": True},
    "llama-bias": {"attention_bias": True, "mlp_bias": True},  # q/k/v and o_proj biases, MLP biases
    "qwen2": {"model_type": "qwen2", "num_attention_heads": 8, "num_key_value_heads": 2, "rope_theta": 1000000.0},
    "rope-llama3": {"rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                     "original_max_position_embeddings": 64}},
    "rope-linear": {"rope_scaling": {"rope_type": "linear", "factor": 4.0}},
}


def _config_dict(name: str) -> dict:
    return {**BASE, **CONFIGS[name]}


def _random_weights(model, seed: int = 0) -> dict[str, np.ndarray]:
    """float32 weights under the transformers model's own names: normal(0, 0.02) matrices, norms
    around 1, small biases (a fixed seed, so the test is the same every run)."""
    rng = np.random.default_rng(seed)
    weights = {}
    for name, tensor in model.state_dict().items():
        if name == "lm_head.weight" and model.config.tie_word_embeddings:
            continue
        shape = tuple(tensor.shape)
        if name.endswith("norm.weight"):
            value = 1.0 + 0.1 * rng.standard_normal(shape)
        elif name.endswith(".bias"):
            value = 0.02 * rng.standard_normal(shape)
        else:
            value = 0.02 * rng.standard_normal(shape)
        weights[name] = value.astype(np.float32)
    return weights


def _torch_model(raw: dict):
    classes = {"llama": (transformers.LlamaConfig, transformers.LlamaForCausalLM),
               "qwen2": (transformers.Qwen2Config, transformers.Qwen2ForCausalLM)}
    config_class, model_class = classes[raw["model_type"]]
    fields = {k: v for k, v in raw.items() if k != "model_type"}
    torch.manual_seed(0)
    model = model_class(config_class(**fields, attn_implementation="eager")).eval()
    return model


class _Case:
    def __init__(self, name: str):
        raw = _config_dict(name)
        self.config = DecoderConfig.from_dict(raw, source=name)
        self.torch_model = _torch_model(raw)
        self.weights = _random_weights(self.torch_model)
        result = self.torch_model.load_state_dict({k: torch.from_numpy(v) for k, v in self.weights.items()}, strict=False)
        assert not result.unexpected_keys
        assert set(result.missing_keys) <= {"lm_head.weight"}
        if self.config.tie_word_embeddings:
            assert torch.equal(self.torch_model.lm_head.weight, self.torch_model.model.embed_tokens.weight)
        self.decoder = OnnxDecoder(self.config, self.weights, threads=1)

    def reference(self, ids: np.ndarray, mask: np.ndarray):
        with torch.no_grad():
            out = self.torch_model.generate(
                torch.from_numpy(ids), attention_mask=torch.from_numpy(mask), max_new_tokens=NEW, do_sample=False,
                output_logits=True, return_dict_in_generate=True, pad_token_id=0,
            )
        tokens = out.sequences[:, ids.shape[1]:].numpy()
        assert tokens.shape == (ids.shape[0], NEW)
        return tokens, np.stack([step.numpy() for step in out.logits], axis=1)  # [batch, NEW, vocab]


_CASES: dict[str, _Case] = {}


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny models: one torch thread is faster than two that wait on each other (and on a busy
    machine, much faster)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(params=sorted(CONFIGS))
def case(request) -> _Case:
    if request.param not in _CASES:
        _CASES[request.param] = _Case(request.param)
    return _CASES[request.param]


def _prompt(batch: int, padding: list[int], seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ids = rng.integers(3, VOCAB, (batch, PROMPT)).astype(np.int64)
    mask = np.ones_like(ids)
    for row, pad in enumerate(padding):
        ids[row, :pad] = 0
        mask[row, :pad] = 0
    return ids, mask


def _onnx_logits(decoder: OnnxDecoder, ids: np.ndarray, mask: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """Last-position logits of the prefill and of each decode step fed `tokens`, [batch, NEW, vocab]."""
    config = decoder.config
    feeds = prefill_feeds(config, ids, mask)
    steps = []
    for i in range(tokens.shape[1]):
        out = decoder.forward(feeds)
        steps.append(out["logits"][:, -1])
        mask = np.concatenate([feeds["attention_mask"], np.ones((ids.shape[0], 1), np.int64)], axis=1)
        feeds = {"input_ids": tokens[:, i:i + 1], "attention_mask": mask, "position_ids": feeds["position_ids"][:, -1:] + 1}
        for layer in range(config.num_hidden_layers):
            feeds[f"past_key.{layer}"] = out[f"present_key.{layer}"]
            feeds[f"past_value.{layer}"] = out[f"present_value.{layer}"]
    return np.stack(steps, axis=1)


# -- against transformers ------------------------------------------------------------------------
@pytest.mark.parametrize("batch,padding", [(1, [0]), (3, [0, 3, 6])], ids=["batch1", "batch3-left-padded"])
def test_greedy_tokens_and_logits_match_transformers(case, batch, padding):
    ids, mask = _prompt(batch, padding)
    expected_tokens, expected_logits = case.reference(ids, mask)
    tokens = case.decoder.generate(ids, NEW, attention_mask=mask)
    assert tokens.dtype == np.int64 and tokens.shape == (batch, NEW)
    np.testing.assert_array_equal(tokens, expected_tokens)
    np.testing.assert_allclose(_onnx_logits(case.decoder, ids, mask, expected_tokens), expected_logits, atol=ATOL, rtol=0)


def test_all_logits_match_transformers_forward(case):
    ids, mask = _prompt(2, [0, 2])
    model = decoder_model(case.config, case.weights, all_logits=True)
    import onnxruntime as ort

    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    logits = session.run(["logits"], prefill_feeds(case.config, ids, mask))[0]
    with torch.no_grad():
        expected = case.torch_model(torch.from_numpy(ids), attention_mask=torch.from_numpy(mask),
                                    position_ids=torch.from_numpy(position_ids(mask))).logits.numpy()
    assert logits.shape == (2, PROMPT, VOCAB)
    real = mask.astype(bool)  # padded positions' logits mean nothing in either
    np.testing.assert_allclose(logits[real], expected[real], atol=ATOL, rtol=0)


@pytest.mark.parametrize("name", ["rope-llama3", "rope-linear", "qwen2"])
def test_inv_freq_is_transformers(name):
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    case = _CASES.get(name) or _Case(name)
    hf_config = case.torch_model.config
    rope_type = case.config.rope_scaling.rope_type
    if rope_type == "default":
        expected = case.torch_model.model.rotary_emb.inv_freq.numpy()
    else:
        expected = ROPE_INIT_FUNCTIONS[rope_type](hf_config, "cpu")[0].numpy()
    np.testing.assert_allclose(inverse_frequencies(case.config), expected, rtol=1e-6, atol=0)


# -- the graph and the loop ----------------------------------------------------------------------
def test_graph_is_valid_onnx_with_the_documented_interface():
    case = _CASES.get("llama-gqa") or _Case("llama-gqa")
    model = decoder_model(case.config, case.weights)
    onnx.checker.check_model(model, full_check=True)
    assert [o.domain for o in model.opset_import] == [""] and model.opset_import[0].version == OPSET
    assert {n.domain for n in model.graph.node} == {""}
    assert "Shape" not in {n.op_type for n in model.graph.node}
    names = [i.name for i in model.graph.input]
    assert names[:3] == ["input_ids", "attention_mask", "position_ids"]
    assert names[3:] == [f"past_{kind}.{i}" for i in range(2) for kind in ("key", "value")]
    outputs = [o.name for o in model.graph.output]
    assert outputs == ["logits"] + [f"present_{kind}.{i}" for i in range(2) for kind in ("key", "value")]
    # deterministic: the same weights give the same bytes
    assert decoder_model(case.config, case.weights).SerializeToString() == model.SerializeToString()


def test_prefill_in_two_chunks_equals_one():
    """seq > 1 with past > 0 (chunked prefill): the mask lets query i see keys up to past + i."""
    case = _CASES.get("llama-gqa") or _Case("llama-gqa")
    config, decoder = case.config, case.decoder
    ids, mask = _prompt(3, [0, 3, 6])
    whole = decoder.forward(prefill_feeds(config, ids, mask))
    split, positions = 5, position_ids(mask)
    empty = np.zeros((3, config.num_key_value_heads, 0, config.head_dim), np.float32)
    # a row may be all padding in the first chunk: feeds written out, not prefill_feeds (which refuses that)
    first = decoder.forward({"input_ids": ids[:, :split], "attention_mask": mask[:, :split], "position_ids": positions[:, :split],
                             **{f"past_{kind}.{layer}": empty for layer in range(config.num_hidden_layers) for kind in ("key", "value")}})
    feeds = {"input_ids": ids[:, split:], "attention_mask": mask, "position_ids": positions[:, split:]}
    for layer in range(config.num_hidden_layers):
        feeds[f"past_key.{layer}"] = first[f"present_key.{layer}"]
        feeds[f"past_value.{layer}"] = first[f"present_value.{layer}"]
    second = decoder.forward(feeds)
    np.testing.assert_allclose(second["logits"], whole["logits"], atol=1e-5, rtol=0)
    real = mask.astype(bool)
    for layer in range(config.num_hidden_layers):
        np.testing.assert_allclose(second[f"present_key.{layer}"].transpose(0, 2, 1, 3)[real],
                                   whole[f"present_key.{layer}"].transpose(0, 2, 1, 3)[real], atol=1e-5, rtol=0)


def test_io_binding_loop_and_timings():
    case = _CASES.get("llama-gqa") or _Case("llama-gqa")
    ids, mask = _prompt(3, [0, 3, 6])
    plain = case.decoder.generate(ids, NEW, attention_mask=mask)
    times = case.decoder.last_times
    assert times.batch == 3 and times.prompt_tokens == PROMPT and times.new_tokens == NEW
    assert len(times.decode_step_s) == NEW - 1 and times.time_to_first_token_s > 0
    assert times.decode_ms_per_token > 0 and times.decode_tokens_per_s > 0
    bound = OnnxDecoder(case.config, case.weights, threads=1, io_binding=True)
    np.testing.assert_array_equal(bound.generate(ids, NEW, attention_mask=mask), plain)
    one = case.decoder.generate(ids, 1, attention_mask=mask)
    np.testing.assert_array_equal(one, plain[:, :1])
    assert case.decoder.last_times.decode_step_s == ()


def test_bad_inputs_and_weights_are_named():
    case = _CASES.get("llama-gqa") or _Case("llama-gqa")
    ids, mask = _prompt(2, [0, 2])
    with pytest.raises(InvalidArgumentError, match="max_new_tokens"):
        case.decoder.generate(ids, 0)
    with pytest.raises(InvalidArgumentError, match="attention_mask"):
        case.decoder.generate(ids, 2, attention_mask=mask[:, ::-1])  # right padding
    with pytest.raises(InvalidArgumentError, match="input_ids"):
        case.decoder.generate(ids[0], 2)
    missing = {k: v for k, v in case.weights.items() if k != "model.layers.1.mlp.up_proj.weight"}
    with pytest.raises(InvalidModelError, match="model.layers.1.mlp.up_proj.weight"):
        decoder_model(case.config, missing)
    wrong = {**case.weights, "model.norm.weight": np.ones(3, np.float32)}
    with pytest.raises(InvalidModelError, match=r"model.norm.weight.*\(3,\)"):
        decoder_model(case.config, wrong)


# -- through hal.InferenceSession ----------------------------------------------------------------
@pytest.mark.parametrize("devices,options", [(["cpu"], {}), (["ascend:0"], {"precision_mode": "must_keep_origin_dtype"})],
                         ids=["cpu", "ascend"])
def test_hal_session_matches_onnxruntime(devices, options):
    case = _CASES.get("llama-gqa") or _Case("llama-gqa")
    model = decoder_model(case.config, case.weights)
    session = hal.InferenceSession(model, devices=devices, **options)
    names = [o.name for o in session.get_outputs()]
    ids, mask = _prompt(3, [0, 3, 6])
    prefill = prefill_feeds(case.config, ids, mask)
    expected = case.decoder.forward(prefill)
    got = dict(zip(names, session.run(None, prefill)))
    for name in names:
        np.testing.assert_allclose(got[name], expected[name], atol=ATOL, rtol=0, err_msg=name)
    # one decode step on the cache the session returned
    step = {"input_ids": expected["logits"][:, -1].argmax(-1)[:, None].astype(np.int64),
            "attention_mask": np.concatenate([mask, np.ones((3, 1), np.int64)], axis=1),
            "position_ids": prefill["position_ids"][:, -1:] + 1}
    step.update({n.replace("present", "past"): got[n] for n in names if n.startswith("present")})
    np.testing.assert_allclose(session.run(["logits"], step)[0], case.decoder.forward(step)["logits"], atol=ATOL, rtol=0)
    if devices != ["cpu"]:  # every node runs on the chip: no fallback for this graph
        assert {node.device for node in session.plan.nodes} == {devices[0]}
