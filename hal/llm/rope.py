"""Rotary position embedding tables, computed as transformers computes them (float32 throughout),
so that a model's logits match transformers' on the same weights."""
from __future__ import annotations

import math

import numpy as np

from .config import DecoderConfig

__all__ = ["inverse_frequencies", "rope_tables"]


def inverse_frequencies(config: DecoderConfig) -> np.ndarray:
    """inv_freq [head_dim / 2] float32, with the config's rope_scaling applied
    (transformers.modeling_rope_utils: default, linear, llama3)."""
    dim = config.head_dim
    exponents = np.arange(0, dim, 2, dtype=np.int64).astype(np.float32) / np.float32(dim)
    inv_freq = (np.float32(1.0) / (np.float32(config.rope_theta) ** exponents)).astype(np.float32)
    scaling = config.rope_scaling
    if scaling.rope_type == "linear":
        return (inv_freq / np.float32(scaling.factor)).astype(np.float32)
    if scaling.rope_type == "llama3":
        old_context = scaling.original_max_position_embeddings
        low_wavelen = old_context / scaling.low_freq_factor
        high_wavelen = old_context / scaling.high_freq_factor
        wavelen = np.float32(2 * math.pi) / inv_freq
        stretched = np.where(wavelen > low_wavelen, inv_freq / np.float32(scaling.factor), inv_freq).astype(np.float32)
        smooth = ((old_context / wavelen - scaling.low_freq_factor) / (scaling.high_freq_factor - scaling.low_freq_factor)).astype(np.float32)
        smoothed = ((1 - smooth) * stretched / np.float32(scaling.factor) + smooth * stretched).astype(np.float32)
        medium = ~(wavelen < high_wavelen) & ~(wavelen > low_wavelen)
        return np.where(medium, smoothed, stretched).astype(np.float32)
    return inv_freq


def rope_tables(config: DecoderConfig, positions: int) -> tuple[np.ndarray, np.ndarray]:
    """cos, sin [positions, head_dim / 2] float32: the angles hal.ops.rope takes (rotate-half
    pairs, as Llama's apply_rotary_pos_emb)."""
    angles = np.arange(positions, dtype=np.float32)[:, None] * inverse_frequencies(config)[None, :]
    return np.cos(angles).astype(np.float32), np.sin(angles).astype(np.float32)
