"""torch modules for hal's torch tests and benchmarks (needs torch, the `torch` extra)."""
from __future__ import annotations

import torch

__all__ = ["TransformerBlock"]


class TransformerBlock(torch.nn.Module):
    """Self-attention and a GELU MLP, each followed by a residual add and layer norm, as in a
    BERT-base layer but narrower by default."""

    def __init__(self, hidden: int = 64, heads: int = 4):
        super().__init__()
        self.attn = torch.nn.MultiheadAttention(hidden, heads, batch_first=True)
        self.ln1, self.ln2 = torch.nn.LayerNorm(hidden), torch.nn.LayerNorm(hidden)
        self.ff = torch.nn.Sequential(torch.nn.Linear(hidden, 4 * hidden), torch.nn.GELU(), torch.nn.Linear(4 * hidden, hidden))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, _ = self.attn(x, x, x, need_weights=False)
        x = self.ln1(x + a)
        return self.ln2(x + self.ff(x))
