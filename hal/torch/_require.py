"""torch is optional: every torch feature imports it through here, so a missing torch is one clear
error naming the extra to install."""
from __future__ import annotations

import importlib.util
from types import ModuleType

from ..errors import MissingDependencyError

INSTALL_HINT = 'pip install "hal[torch]"'


def require_torch(feature: str) -> ModuleType:
    """The torch module, or MissingDependencyError saying which feature needed it."""
    try:
        import torch
    except ImportError as exc:
        raise MissingDependencyError(
            f"{feature} needs PyTorch, which is not installed ({exc}); install it with {INSTALL_HINT} "
            "(the pinned CPU build; install a CUDA build of the same version for GPUs)"
        ) from None
    return torch


def torch_installed() -> bool:
    """Whether torch can be found, without importing it (importing costs about a second)."""
    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):  # ValueError: sys.modules["torch"] is None (torch hidden)
        return False
