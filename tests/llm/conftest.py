"""Small decoder configs and their transformers twins, for hal.llm's tests."""
from __future__ import annotations

import numpy as np
import pytest

TINY_LLAMA = dict(
    model_type="llama", architectures=["LlamaForCausalLM"], vocab_size=97, hidden_size=64, intermediate_size=128,
    num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128, rms_norm_eps=1e-6,
    rope_theta=10000.0, tie_word_embeddings=False, bos_token_id=None, eos_token_id=None,
)
"""Grouped-query attention (2 query heads per key/value head), untied embeddings; no end-of-sequence
token, so that both generators produce exactly the tokens asked for."""

CONFIGS = {
    "llama-gqa": TINY_LLAMA,
    "llama-mha-tied": {**TINY_LLAMA, "num_key_value_heads": 4, "tie_word_embeddings": True, "num_hidden_layers": 3},
    "llama3-rope-scaling": {**TINY_LLAMA, "rope_theta": 500000.0, "rope_scaling": {
        "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
        "original_max_position_embeddings": 32}},
    "llama-linear-rope-bias": {**TINY_LLAMA, "rope_scaling": {"rope_type": "linear", "factor": 2.0}, "attention_bias": True,
                               "mlp_bias": True},
    "qwen2": {**TINY_LLAMA, "model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"], "num_key_value_heads": 1,
              "tie_word_embeddings": True},
}

PADDED_IDS = np.array([[0, 0, 5, 7, 9, 4], [1, 2, 3, 4, 5, 6], [0, 0, 0, 8, 9, 2]])
PADDED_MASK = (np.arange(6)[None, :] >= np.array([[2], [0], [3]])).astype(np.int64)


def transformers_model(config: dict, weights: dict):
    """transformers' own model of `config`, in float32, holding `weights`."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    kind = config["model_type"]
    cls = {"llama": (transformers.LlamaConfig, transformers.LlamaForCausalLM),
           "qwen2": (transformers.Qwen2Config, transformers.Qwen2ForCausalLM)}[kind]
    model = cls[1](cls[0](**config)).eval()
    state = {k: torch.from_numpy(v) for k, v in weights.items()}
    if config.get("tie_word_embeddings"):
        state["lm_head.weight"] = state["model.embed_tokens.weight"]
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected and all("rotary" in m for m in missing), (missing, unexpected)
    return model


def transformers_generate(model, ids: np.ndarray, new_tokens: int, mask: np.ndarray | None = None) -> np.ndarray:
    import torch

    kwargs = {"attention_mask": torch.from_numpy(mask)} if mask is not None else {}
    with torch.no_grad():
        out = model.generate(torch.from_numpy(ids), max_new_tokens=new_tokens, do_sample=False,
                             pad_token_id=0, **kwargs)
    return out[:, ids.shape[1]:].numpy()
