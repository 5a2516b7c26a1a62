"""Shared fixtures for hal's own tests (the per-device suite lives in hal/conformance)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import hal
from hal import registry

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def fresh_registry(monkeypatch):
    """Re-discovers backends under the test's environment, and again afterwards."""
    registry.reset()
    yield monkeypatch
    monkeypatch.undo()
    registry.reset()


def run_python(code: str, *, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """Runs code in a fresh interpreter (for environment variables read at discovery, import time...)."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full_env, timeout=timeout)


__all__ = ["REPO", "run_python", "hal"]
