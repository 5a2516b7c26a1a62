"""Reading hal's TOML data files (chip specs, op tables, conformance expectations): one place for
the tomllib/tomli choice and for the error a missing or broken file gets."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from .errors import BackendError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = ["read_toml"]


def read_toml(path: Path, what: str) -> dict[str, Any]:
    """The parsed file; a BackendError naming `what` ("chip spec") and the path when it cannot be
    read or is not TOML."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise BackendError(f"{what} {path}: cannot read it ({exc.strerror or exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise BackendError(f"{what} {path}: not valid TOML ({exc})") from None
