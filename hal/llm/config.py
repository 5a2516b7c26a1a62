"""DecoderConfig: the shape of a Llama / Qwen2-family decoder, read from a Hugging Face config.json.

Only the fields that change the arithmetic are kept. A field hal.llm cannot honour (an activation
other than SiLU, sliding-window attention, a RoPE scaling it does not implement, mixture-of-experts
layers) is an UnsupportedModelError naming it, never silently ignored; fields that do not change
inference (initializer_range, use_cache, token ids...) are read where useful and otherwise left.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InvalidModelError, UnsupportedModelError

__all__ = ["DecoderConfig", "HeadSizes", "read_config_json", "config_path", "SUPPORTED_MODEL_TYPES", "RopeScaling", "RANDOM_MODEL_CONFIGS"]

SUPPORTED_MODEL_TYPES = ("llama", "qwen2")
"""model_type values whose decoder hal.llm runs (Qwen2's q/k/v projections carry a bias)."""

RANDOM_MODEL_CONFIGS: dict[str, dict[str, Any]] = {
    # a model small enough to make on the spot in a test or a demo
    "llama-tiny": dict(model_type="llama", vocab_size=512, hidden_size=64, intermediate_size=172, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512, rms_norm_eps=1e-6),
    # ~125M parameters (12 layers of 768, grouped-query attention 12/4, a 32000-token vocabulary):
    # the size benchmarks/bench_llm.py measures decode speed at
    "llama-100m": dict(model_type="llama", vocab_size=32000, hidden_size=768, intermediate_size=2048, num_hidden_layers=12,
                       num_attention_heads=12, num_key_value_heads=4, max_position_embeddings=2048, rms_norm_eps=1e-6),
}
"""Configs `hal generate --random-config NAME` and the benchmarks build random-weight models from."""

_ARCHITECTURES = {"LlamaForCausalLM": "llama", "Qwen2ForCausalLM": "qwen2"}
_ROPE_TYPES = ("default", "linear", "llama3")


@dataclass(frozen=True)
class RopeScaling:
    """rope_scaling as transformers reads it: "linear" divides positions by factor; "llama3"
    (Llama 3.1) stretches the low frequencies by factor with a smooth band between
    low_freq_factor and high_freq_factor of original_max_position_embeddings."""

    rope_type: str = "default"
    factor: float = 1.0
    low_freq_factor: float = 1.0
    high_freq_factor: float = 4.0
    original_max_position_embeddings: int = 8192


class HeadSizes:
    """q_size and kv_size of a model with num_attention_heads, num_key_value_heads and head_dim
    (DecoderConfig, and hal.llm.fit's ModelShape, which also describes models the decoder does not run)."""

    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int

    @property
    def q_size(self) -> int:
        return self.num_attention_heads * self.head_dim

    @property
    def kv_size(self) -> int:
        return self.num_key_value_heads * self.head_dim


@dataclass(frozen=True)
class DecoderConfig(HeadSizes):
    model_type: str
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    max_position_embeddings: int
    rms_norm_eps: float = 1e-6
    rope_theta: float = 10000.0
    rope_scaling: RopeScaling = field(default_factory=RopeScaling)
    tie_word_embeddings: bool = False
    attention_bias: bool = False
    """q, k and v projections carry a bias (always in Qwen2; optional in Llama, where o_proj has one too)."""
    o_bias: bool = False
    mlp_bias: bool = False
    torch_dtype: str = "float32"
    bos_token_id: int | None = None
    eos_token_id: tuple[int, ...] = ()
    source: str = ""
    """Where the config came from (a path or "random"), for messages."""

    # -- sizes ---------------------------------------------------------------------------------
    @property
    def groups(self) -> int:
        """Query heads per key/value head (1 for multi-head attention)."""
        return self.num_attention_heads // self.num_key_value_heads

    def parameter_count(self) -> int:
        """Parameters of the model (embeddings counted once when tied)."""
        h, i = self.hidden_size, self.intermediate_size
        attention = h * (self.q_size + 2 * self.kv_size) + self.q_size * h
        if self.attention_bias:
            attention += self.q_size + 2 * self.kv_size
        if self.o_bias:
            attention += h
        mlp = 3 * h * i + (2 * i + h if self.mlp_bias else 0)
        per_layer = attention + mlp + 2 * h
        embeddings = self.vocab_size * h * (1 if self.tie_word_embeddings else 2)
        return self.num_hidden_layers * per_layer + embeddings + h

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["eos_token_id"] = list(self.eos_token_id)
        return out

    # -- reading -------------------------------------------------------------------------------
    @classmethod
    def from_file(cls, path: str | Path) -> DecoderConfig:
        path = config_path(path)
        return cls.from_dict(read_config_json(path), source=str(path))

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], *, source: str = "config") -> DecoderConfig:
        """Reads a transformers-style config dict; UnsupportedModelError names what cannot run."""
        reader = ConfigReader(raw, source)
        model_type = raw.get("model_type")
        if model_type is None:
            archs = raw.get("architectures") or []
            model_type = next((_ARCHITECTURES[a] for a in archs if a in _ARCHITECTURES), None)
        if model_type not in SUPPORTED_MODEL_TYPES:
            moe = " (a mixture-of-experts model: `hal llm fit` estimates it, the decoder does not run it)" if _is_moe(raw) else ""
            raise UnsupportedModelError(
                f"{source}: model_type {model_type!r} is not supported{moe}; hal.llm runs "
                f"{', '.join(SUPPORTED_MODEL_TYPES)} (Llama / Qwen2-family decoders)"
            )
        for key in ("num_experts", "num_local_experts", "moe_num_experts"):
            if raw.get(key):
                raise UnsupportedModelError(f"{source}: {key}={raw[key]}: mixture-of-experts layers are not supported")
        act = raw.get("hidden_act", "silu")
        if act != "silu":
            raise UnsupportedModelError(f"{source}: hidden_act {act!r} is not supported; hal.llm's MLP is SwiGLU (silu)")
        if raw.get("use_sliding_window") or (model_type != "qwen2" and raw.get("sliding_window")):
            raise UnsupportedModelError(f"{source}: sliding-window attention (sliding_window={raw.get('sliding_window')}) is not supported")
        if reader.integer("pretraining_tp", 1, minimum=1) != 1:
            raise UnsupportedModelError(f"{source}: pretraining_tp={raw['pretraining_tp']} is not supported (only 1)")
        heads = reader.integer("num_attention_heads")
        hidden = reader.integer("hidden_size")
        kv_heads = reader.integer("num_key_value_heads", heads)
        head_dim = reader.integer("head_dim", hidden // heads if heads and hidden % heads == 0 else None)
        if heads % kv_heads:
            raise InvalidModelError(f"{source}: num_attention_heads={heads} is not a multiple of num_key_value_heads={kv_heads}")
        if head_dim % 2:
            raise InvalidModelError(f"{source}: head_dim={head_dim} must be even for rotary embeddings")
        qwen = model_type == "qwen2"
        llama_bias = bool(raw.get("attention_bias", False))
        eos = raw.get("eos_token_id")
        eos_ids = tuple(int(e) for e in eos) if isinstance(eos, list) else ((int(eos),) if isinstance(eos, int) else ())
        dtype = raw.get("torch_dtype") or raw.get("dtype") or "float32"
        return cls(
            model_type=model_type,
            vocab_size=reader.integer("vocab_size"),
            hidden_size=hidden,
            intermediate_size=reader.integer("intermediate_size"),
            num_hidden_layers=reader.integer("num_hidden_layers"),
            num_attention_heads=heads,
            num_key_value_heads=kv_heads,
            head_dim=head_dim,
            max_position_embeddings=reader.integer("max_position_embeddings", 2048),
            rms_norm_eps=reader.number("rms_norm_eps", 1e-6),
            rope_theta=reader.number("rope_theta", _rope_parameters(raw).get("rope_theta", 10000.0)),
            rope_scaling=_rope_scaling(raw, source),
            tie_word_embeddings=bool(raw.get("tie_word_embeddings", False)),  # LlamaConfig and Qwen2Config default
            attention_bias=True if qwen else llama_bias,
            o_bias=False if qwen else llama_bias,
            mlp_bias=False if qwen else bool(raw.get("mlp_bias", False)),
            torch_dtype=str(dtype),
            bos_token_id=raw.get("bos_token_id") if isinstance(raw.get("bos_token_id"), int) else None,
            eos_token_id=eos_ids,
            source=source,
        )


def config_path(path: str | Path) -> Path:
    """A config.json, or the one in a model folder."""
    path = Path(path)
    return path / "config.json" if path.is_dir() else path


def read_config_json(path: str | Path) -> dict[str, Any]:
    """The JSON object of a config.json (or of a model folder's), or an InvalidModelError saying why not."""
    path = config_path(path)
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise InvalidModelError(f"{path}: no such file; a model folder needs config.json beside its safetensors") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidModelError(f"{path}: not a readable JSON config ({exc})") from None
    if not isinstance(raw, dict):
        raise InvalidModelError(f"{path}: a config.json holds one JSON object, found {type(raw).__name__}")
    return raw


def _is_moe(raw: Mapping[str, Any]) -> bool:
    return any(raw.get(k) for k in ("num_experts", "num_local_experts", "moe_num_experts"))


def _rope_parameters(raw: Mapping[str, Any]) -> Mapping[str, Any]:
    # transformers 5 writes rope_parameters = {"rope_type", "rope_theta", ...}; 4.x wrote rope_scaling
    params = raw.get("rope_parameters")
    return params if isinstance(params, Mapping) else {}


def _rope_scaling(raw: Mapping[str, Any], source: str) -> RopeScaling:
    scaling = raw.get("rope_scaling") or _rope_parameters(raw)
    if not scaling:
        return RopeScaling()
    if not isinstance(scaling, Mapping):
        raise InvalidModelError(f"{source}: rope_scaling must be an object, got {scaling!r}")
    kind = scaling.get("rope_type", scaling.get("type", "default"))
    if kind not in _ROPE_TYPES:
        raise UnsupportedModelError(f"{source}: rope_scaling type {kind!r} is not supported; hal.llm implements {', '.join(_ROPE_TYPES)}")
    reader = ConfigReader(scaling, f"{source}: rope_scaling")
    if kind == "default":
        return RopeScaling()
    factor = reader.number("factor")
    if kind == "linear":
        return RopeScaling("linear", factor)
    return RopeScaling(
        "llama3", factor, reader.number("low_freq_factor"), reader.number("high_freq_factor"),
        reader.integer("original_max_position_embeddings"),
    )


class ConfigReader:
    """Typed reads of a config dict with messages naming the file and key."""

    def __init__(self, raw: Mapping[str, Any], source: str):
        self.raw, self.source = raw, source

    def integer(self, key: str, default: int | None = None, *, minimum: int = 1) -> int:
        value = self.raw.get(key, default)
        if value is None:
            raise InvalidModelError(f"{self.source}: '{key}' is missing; a decoder config needs it")
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise InvalidModelError(f"{self.source}: '{key}' must be an integer >= {minimum}, got {value!r}")
        return value

    def number(self, key: str, default: float | None = None) -> float:
        value = self.raw.get(key, default)
        if value is None:
            raise InvalidModelError(f"{self.source}: '{key}' is missing")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise InvalidModelError(f"{self.source}: '{key}' must be a number > 0, got {value!r}")
        return float(value)
