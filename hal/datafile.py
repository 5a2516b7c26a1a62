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

__all__ = ["read_toml", "key_line"]


def read_toml(path: Path, what: str, error: type[BackendError] = BackendError) -> dict[str, Any]:
    """The parsed file; `error` naming `what` ("chip spec") and the path when it cannot be read or
    is not TOML (tomllib's message gives the line and column)."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise error(f"{what} {path}: cannot read it ({exc.strerror or exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{what} {path}: not valid TOML ({exc})") from None


def key_line(text: str, key: str) -> int | None:
    """The 1-based line of a dotted key ("memory.allocation.granularity", "ops.Relu.opsets") in a
    TOML file's text: the line assigning it under its table's header, else the line of the deepest
    enclosing table or key that is there (for a key that is missing), else None. tomllib parses
    without positions, and an error a person can act on names the line; this reads only the plain
    `[table]` / `key = ...` layout hal's data files use (no dotted keys on the left of `=`)."""
    parts = key.split(".")
    best: tuple[int, int] | None = None  # (matched depth, line)
    table: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped.startswith("["):
            name = stripped.strip("[]").strip()
            table = [p.strip().strip('"') for p in name.split(".")]
            here = table
        else:
            name, sep, _ = stripped.partition("=")
            if not sep or stripped.startswith("#"):
                continue
            here = [*table, name.strip().strip('"')]
        depth = len(here)
        if here == parts[:depth] and (best is None or depth > best[0]):
            best = (depth, number)
    return best[1] if best is not None else None
