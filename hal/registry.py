"""Finds backends through the entry-point group "hal.backends" and names their devices.

A backend package declares, in its own pyproject.toml:

    [project.entry-points."hal.backends"]
    mychip = "hal_mychip:MyChipBackend"

Discovery is lazy (the first call that needs devices), so `import hal` stays fast. A backend that
fails to load is reported once as a BackendLoadWarning and the others keep working; asking for its
devices by name raises the original failure. HAL_BACKENDS=cpu,ascend limits which are loaded;
HAL_DEVICE names the default device.
"""
from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Iterable
from typing import TYPE_CHECKING

from .backend import HAL_BACKEND_API, MIN_BACKEND_API, Backend
from .device import Device
from .errors import BackendError, DeviceNotFoundError, InvalidArgumentError

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

__all__ = ["BackendLoadWarning", "backends", "devices", "device", "default_device", "did_you_mean", "reset"]

ENTRY_POINT_GROUP = "hal.backends"


class BackendLoadWarning(UserWarning):
    """A backend plugin could not be loaded; its devices are missing."""


class _Registry:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.loaded = False
        self.backends: dict[str, Backend] = {}
        self.failures: dict[str, str] = {}
        self.devices: dict[str, Device] = {}

    def load(self) -> None:
        with self.lock:
            if self.loaded:
                return
            from importlib.metadata import entry_points  # 20 ms: only when devices are needed

            wanted = _wanted_backends()
            found: dict[str, EntryPoint] = {}
            for ep in entry_points(group=ENTRY_POINT_GROUP):
                found.setdefault(ep.name, ep)
            if wanted is not None:
                for name in sorted(wanted - found.keys()):
                    self.failures[name] = (
                        f"HAL_BACKENDS names '{name}', but no installed package provides it "
                        f"(installed: {', '.join(sorted(found)) or 'none'})"
                    )
                    warnings.warn(self.failures[name], BackendLoadWarning, stacklevel=4)
            # cpu first, then cuda, then the other chips by name: the order users read them in
            for name, ep in sorted(found.items(), key=lambda item: (item[0] != "cpu", item[0] != "cuda", item[0])):
                if wanted is not None and name not in wanted:
                    continue
                try:
                    backend = _instantiate(name, ep)
                    specs = list(backend.devices())
                except Exception as exc:  # a broken plugin must not take the others down
                    package = ep.dist.name if ep.dist is not None else ep.value
                    self.failures[name] = f"backend '{name}' (package {package}, {ep.value}) failed to load: {exc}"
                    warnings.warn(
                        f"hal: {self.failures[name]}; its devices are unavailable, other backends work",
                        BackendLoadWarning,
                        stacklevel=4,
                    )
                    continue
                self.backends[name] = backend
                for spec in specs:
                    self.devices[spec.device_name] = Device(backend, spec)
            self.loaded = True


def _wanted_backends() -> set[str] | None:
    raw = os.environ.get("HAL_BACKENDS", "").strip()
    if not raw:
        return None
    return {part.strip() for part in raw.split(",") if part.strip()}


def _instantiate(name: str, ep: EntryPoint) -> Backend:
    factory = ep.load()
    backend = factory()
    if not isinstance(backend, Backend):
        raise BackendError(f"{ep.value} made a {type(backend).__name__}, not a hal.backend.Backend")
    version = getattr(backend, "api_version", None)
    if not isinstance(version, int) or not MIN_BACKEND_API <= version <= HAL_BACKEND_API:
        relation = "older" if isinstance(version, int) and version < MIN_BACKEND_API else "newer"
        raise BackendError(
            f"it implements backend API {version}, this hal speaks {MIN_BACKEND_API} to {HAL_BACKEND_API} "
            f"({relation}); install matching versions of hal and the backend package"
        )
    if backend.name != name:
        raise BackendError(f"entry point '{name}' loads a backend named '{backend.name}'; the names must match")
    return backend


_registry = _Registry()


def reset() -> None:
    """Forgets every loaded backend, so the next call re-discovers them (after changing
    HAL_BACKENDS or HAL_SIM_DEVICES, or installing a backend package at run time)."""
    global _registry
    with _registry.lock:
        _registry = _Registry()


def backends() -> dict[str, Backend]:
    """The loaded backends by name."""
    _registry.load()
    return dict(_registry.backends)


def backend_failures() -> dict[str, str]:
    """Backends that were asked for or installed but failed to load, with the reason."""
    _registry.load()
    return dict(_registry.failures)


def devices(kind: str | None = None) -> list[Device]:
    """Every device of every loaded backend (or of one kind), in backend then index order. A lost
    device stays listed with Device.lost set (status "lost") until Device.reset()."""
    _registry.load()
    found = list(_registry.devices.values())
    if kind is not None:
        found = [d for d in found if d.kind == kind]
    return found


def device(name: str | Device | None = None) -> Device:
    """hal.device("ascend:1"), hal.device("ascend") (index 0), hal.device() (the default device)."""
    if isinstance(name, Device):
        return name
    if name is None:
        return default_device()
    if not isinstance(name, str):
        raise InvalidArgumentError(f"a device is named by a string like 'ascend:0', got {name!r}")
    kind, sep, index_text = name.strip().partition(":")
    if sep and not index_text.isdigit():
        raise InvalidArgumentError(f"device name {name!r}: the index after ':' must be a number, e.g. '{kind}:0'")
    full = f"{kind}:{int(index_text) if sep else 0}"
    _registry.load()
    found = _registry.devices.get(full)
    if found is not None:
        return found
    if kind in _registry.failures:
        raise BackendError(f"{full} is unavailable: {_registry.failures[kind]}")
    available = ", ".join(_registry.devices) or "none"
    if kind in _registry.backends:
        count = sum(1 for d in _registry.devices.values() if d.kind == kind)
        hint = f"'{kind}' has {count} device(s)"
        if kind not in ("cpu", "cuda") and not kind.startswith("torch."):  # real devices: no count to set
            hint += f"; HAL_SIM_DEVICES={kind}=N sets how many simulated ones appear"
        raise DeviceNotFoundError(f"no device {full}: {hint} (available: {available})")
    guess = did_you_mean(kind, [*_registry.backends, *_registry.failures])
    suggestion = f"; did you mean '{guess}:{full.partition(':')[2]}'?" if guess else ""
    raise DeviceNotFoundError(
        f"no backend named '{kind}'{suggestion} (available devices: {available}); install the backend's "
        "package, or check HAL_BACKENDS"
    )


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    """The candidate closest to a misspelt name ("ascnd" -> "ascend"), or None when none is close:
    difflib's similarity ratio at least 0.75, above its default 0.6, which takes "tpu" for "cpu"."""
    import difflib  # here, not at import: `import hal` stays light

    matches = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.75)
    return matches[0] if matches else None


def default_device() -> Device:
    """HAL_DEVICE (e.g. "ascend:0") if set, else cpu:0: move a whole script to another chip
    without editing it."""
    return device(os.environ.get("HAL_DEVICE") or "cpu:0")
