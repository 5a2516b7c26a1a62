"""The torch tests need torch (the `torch` extra); without it they are skipped with that reason."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch", reason='torch is not installed: pip install "hal[torch]"')


@pytest.fixture
def block():
    """A small transformer block (attention, layer norms, GELU MLP), in eval mode."""
    from hal.testing.torch_modules import TransformerBlock

    torch.manual_seed(0)
    return TransformerBlock(64, 4).eval()
