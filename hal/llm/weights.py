"""A decoder's weights: read from a Hugging Face folder's safetensors, made at random for tests, written back.

Names and shapes are those of transformers' LlamaForCausalLM / Qwen2ForCausalLM state dicts
(linear weights [out_features, in_features]), so a folder written by `save_pretrained` loads as it is
and a folder written here loads in transformers. Every tensor is checked against the config before
any is used: a missing, misshapen or unreadable tensor is an InvalidModelError naming it.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..errors import InvalidModelError, MissingDependencyError
from .config import DecoderConfig

__all__ = ["expected_shapes", "random_weights", "load_weights", "save_model", "layer_prefix"]

_INDEX = "model.safetensors.index.json"


def layer_prefix(layer: int) -> str:
    return f"model.layers.{layer}."


def expected_shapes(config: DecoderConfig) -> dict[str, tuple[int, ...]]:
    """Every tensor the config implies, by its transformers name."""
    h, i, q, kv = config.hidden_size, config.intermediate_size, config.q_size, config.kv_size
    shapes: dict[str, tuple[int, ...]] = {"model.embed_tokens.weight": (config.vocab_size, h), "model.norm.weight": (h,)}
    if not config.tie_word_embeddings:
        shapes["lm_head.weight"] = (config.vocab_size, h)
    for layer in range(config.num_hidden_layers):
        p = layer_prefix(layer)
        shapes[p + "input_layernorm.weight"] = (h,)
        shapes[p + "post_attention_layernorm.weight"] = (h,)
        for name, out in (("q_proj", q), ("k_proj", kv), ("v_proj", kv)):
            shapes[p + f"self_attn.{name}.weight"] = (out, h)
            if config.attention_bias:
                shapes[p + f"self_attn.{name}.bias"] = (out,)
        shapes[p + "self_attn.o_proj.weight"] = (h, q)
        if config.o_bias:
            shapes[p + "self_attn.o_proj.bias"] = (h,)
        for name, shape in (("gate_proj", (i, h)), ("up_proj", (i, h)), ("down_proj", (h, i))):
            shapes[p + f"mlp.{name}.weight"] = shape
            if config.mlp_bias:
                shapes[p + f"mlp.{name}.bias"] = (shape[0],)
    return shapes


def random_weights(config: DecoderConfig, seed: int = 0, std: float = 0.02) -> dict[str, np.ndarray]:
    """Weights drawn as transformers initialises a decoder (normal(0, std) linear and embedding
    weights, zero biases), except that norm weights are drawn around 1 and biases small, so that
    a test exercises every tensor."""
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    for name, shape in expected_shapes(config).items():
        if name.endswith("norm.weight"):
            value = 1.0 + 0.1 * rng.standard_normal(shape)
        elif name.endswith(".bias"):
            value = 0.02 * rng.standard_normal(shape)
        else:
            value = std * rng.standard_normal(shape)
        out[name] = value.astype(np.float32)
    return out


def load_weights(folder: str | Path, config: DecoderConfig) -> dict[str, np.ndarray]:
    """float32 arrays of every tensor the config needs, from model.safetensors or the shards that
    model.safetensors.index.json lists (read with the safetensors library)."""
    try:
        from safetensors import SafetensorError, safe_open
    except ImportError:  # pragma: no cover - a dependency of hal
        raise MissingDependencyError('reading model weights needs safetensors: pip install safetensors') from None
    folder = Path(folder)
    files = _weight_files(folder)
    wanted = expected_shapes(config)
    found: dict[str, np.ndarray] = {}
    for file in files:
        try:
            with safe_open(str(file), framework="numpy") as reader:
                for name in reader.keys():
                    if name in wanted and name not in found:
                        found[name] = reader.get_tensor(name)
        except (SafetensorError, OSError, ValueError, TypeError) as exc:
            raise InvalidModelError(f"{file}: not a readable safetensors file ({exc}); re-save it with safetensors") from None
    missing = [n for n in wanted if n not in found]
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise InvalidModelError(f"{folder}: tensors missing for this config: {', '.join(missing[:3])}{more}")
    weights = {}
    for name, shape in wanted.items():
        array = found[name]
        if tuple(array.shape) != shape:
            raise InvalidModelError(f"{folder}: {name} has shape {tuple(array.shape)}; the config needs {shape}")
        if array.dtype.kind != "f" and str(array.dtype) != "bfloat16":
            raise InvalidModelError(f"{folder}: {name} is {array.dtype}; hal.llm reads float weights (float32, float16, bfloat16)")
        weights[name] = np.ascontiguousarray(array, dtype=np.float32)
        if not np.isfinite(weights[name]).all():
            raise InvalidModelError(f"{folder}: {name} holds NaN or infinite values")
    return weights


def _weight_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise InvalidModelError(f"{folder}: not a folder; pass a Hugging Face model folder (config.json + safetensors)")
    index = folder / _INDEX
    if index.exists():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
            names = sorted(set(weight_map.values()))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise InvalidModelError(f"{index}: not a safetensors index ({exc})") from None
        files = [folder / n for n in names]
        absent = [f.name for f in files if not f.is_file()]
        if absent:
            raise InvalidModelError(f"{index} lists {', '.join(absent)}, which {'is' if len(absent) == 1 else 'are'} not in {folder}")
        return files
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise InvalidModelError(f"{folder}: no .safetensors file (hal.llm reads safetensors, not .bin or .pt checkpoints)")
    return files


def save_model(folder: str | Path, config: Mapping[str, object], weights: Mapping[str, np.ndarray]) -> Path:
    """Writes config.json and model.safetensors, as save_pretrained would; returns the folder."""
    from safetensors.numpy import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(dict(config), indent=2))
    save_file({k: np.ascontiguousarray(v) for k, v in weights.items()}, str(folder / "model.safetensors"), metadata={"format": "pt"})
    return folder
