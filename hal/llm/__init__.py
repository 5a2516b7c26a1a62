"""LLM generation on every chip: Llama / Qwen2-family decoders with a device-resident KV cache.

    import hal
    model = hal.llm.load("path/to/hf_folder", device="ascend:0")   # config.json + safetensors
    model = hal.llm.load(config_dict, devices=["ascend:0", "kunlun:0"])   # random weights, layers split
    model = hal.llm.load(config_dict, devices=["ascend:0", "ascend:1"], parallel="tensor")   # every layer split
    result = model.generate([[1, 2, 3]], max_new_tokens=32)
    print(result.tokens, result.time_to_first_token_s, result.decode_tokens_per_s)
    print(model.numerics_report([[1, 2, 3]]))

`hal llm fit` and hal.llm.fit estimate memory and speed on a chip from a config alone.
"""
from __future__ import annotations

from .config import DecoderConfig, RopeScaling
from .model import DecoderModel, GenerationResult, NumericsReport, load
from .runtime import QUANTIZATIONS
from .weights import load_weights, random_weights, save_model

__all__ = [
    "DecoderConfig", "RopeScaling", "DecoderModel", "GenerationResult", "NumericsReport", "load",
    "load_weights", "random_weights", "save_model", "QUANTIZATIONS",
]
