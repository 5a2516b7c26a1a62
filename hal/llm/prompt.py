"""A prompt as both routes of hal.llm and its ONNX export take it: token ids [batch, length], a
0/1 attention mask padding on the left, and each token's position."""
from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InvalidArgumentError

__all__ = ["check_prompt", "position_ids"]


def check_prompt(input_ids: Any, attention_mask: Any = None, *, vocab_size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """int64 ids and mask [batch, length] (the mask all ones when None), or an InvalidArgumentError
    saying what is wrong: not integers, out of the vocabulary, a mask of another shape or with
    values other than 0 and 1, padding anywhere but on the left."""
    try:
        ids = np.asarray(input_ids)
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(f"input_ids must be a [batch, length] array of token ids: {exc}") from None
    if ids.ndim != 2 or ids.size == 0 or ids.dtype.kind not in "iu":
        raise InvalidArgumentError(f"input_ids must be a non-empty [batch, length] array of integer token ids, got shape {ids.shape} dtype {ids.dtype}")
    if vocab_size is not None and (ids.min() < 0 or ids.max() >= vocab_size):
        raise InvalidArgumentError(f"input_ids must lie in [0, {vocab_size}) (the vocabulary), got {ids.min()}..{ids.max()}")
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    if attention_mask is None:
        return ids, np.ones_like(ids)
    mask = np.asarray(attention_mask)
    if mask.shape != ids.shape or not np.isin(mask, (0, 1)).all():
        raise InvalidArgumentError(f"attention_mask must be 0/1 of input_ids' shape {ids.shape}, got {mask.shape}")
    mask = np.ascontiguousarray(mask, dtype=np.int64)
    if (mask[:, -1] == 0).any() or (np.diff(mask, axis=1) < 0).any():
        raise InvalidArgumentError("attention_mask must pad on the left only (zeros, then ones), with the last token real")
    return ids, mask


def position_ids(attention_mask: np.ndarray) -> np.ndarray:
    """int64 [batch, total]: each token's position counted over the tokens only (left padding
    excluded), padding given 1, as transformers' generate computes them."""
    mask = np.asarray(attention_mask, dtype=np.int64)
    positions = np.cumsum(mask, axis=-1) - 1
    positions[mask == 0] = 1
    return positions
