"""PyTorch integration (torch is optional: install it with `pip install "hal[torch]"`).

    sess = hal.from_torch(module, (x,), devices=["ascend:0", "cpu"])     # export, then dispatch
    compiled = torch.compile(module, backend="hal", options={"devices": ["kunlun:0", "cpu"]})

torch.compile finds the backend "hal" through the `torch_dynamo_backends` entry point, without
importing hal; `import hal.torch` also registers it once torch's compiler (torch._dynamo) is loaded,
and register() does so at once. Importing this package costs nothing: torch loads on first use,
so the `torch` and `cuda` backends can use the driver (hal.torch.driver) and the ONNX-to-torch
executor (hal.torch.executor) without slowing device discovery.
"""
from __future__ import annotations

import sys

from ._require import INSTALL_HINT, require_torch, torch_installed

__all__ = [
    "from_torch", "export_onnx", "TorchSession", "hal_backend", "register",
    "ExportError", "ExportFallbackWarning", "HalFallbackWarning", "require_torch", "INSTALL_HINT",
]

BACKEND_NAME = "hal"

_LAZY = {
    "from_torch": "export", "export_onnx": "export", "TorchSession": "export", "ExportError": "export",
    "ExportFallbackWarning": "export", "hal_backend": "compile_backend", "HalFallbackWarning": "compile_backend",
}


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'hal.torch' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f".{module}", __name__), name)


def register() -> None:
    """Registers hal_backend with torch.compile under "hal", unless torch already knows it (from
    the entry point, which torch loads itself on first use). Imports torch._dynamo (about 1.5 s)."""
    torch = require_torch("torch.compile(backend='hal')")
    from torch._dynamo.backends import registry

    from .compile_backend import hal_backend

    known = getattr(registry, "_BACKENDS", {})
    if BACKEND_NAME in getattr(registry, "_COMPILER_FNS", {}) or known.get(BACKEND_NAME) is not None:
        return  # registered, or about to be loaded from the entry point by torch itself
    torch._dynamo.register_backend(hal_backend, name=BACKEND_NAME)


if torch_installed() and "torch._dynamo" in sys.modules:
    register()
