"""Chip spec files: one TOML per chip model, every figure with its public source and confidence.

A figure is an inline table {value, unit, source, confidence, note?}; confidence is "high"
(vendor datasheet or documentation), "medium" (vendor code, reputable secondary source) or "low"
(an estimate, with its reasoning in the note). The same files let a user describe a chip that does
not exist yet: point HAL_SIM_DEVICES at the file (HAL_SIM_DEVICES=ascend=1:/path/my_chip.toml).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..device import DeviceSpec
from ..dtypes import DType, dtype as as_dtype
from ..datafile import key_line, read_toml
from ..errors import BackendError, InvalidSpecError, UnsupportedDTypeError
from ..memory import AllocationRule

__all__ = ["Figure", "Software", "ChipSpec", "load_chip_spec", "find_chip_spec", "list_chip_specs", "COMPATIBILITY"]

SCHEMA_VERSION = 1
CONFIDENCE_LEVELS = ("high", "medium", "low")
COMPATIBILITY = ("cuda", "rocm", "own")
PEER_TOPOLOGIES = ("full_mesh", "ring")
"""How a chip's peer link joins cards: a link between every pair, or each card to the next."""
"""What a chip's software stack offers a framework developer: CUDA's programming model and APIs
(code written for CUDA runs with little change), ROCm's (HIP), or the vendor's own."""


@dataclass(frozen=True)
class Figure:
    """A number from a public source."""

    value: float
    unit: str
    source: str
    confidence: str
    note: str = ""


@dataclass(frozen=True)
class Software:
    """How the real chip is reached from a framework ([software] in the spec file)."""

    stack: str
    """The vendor's software stack ("Cambricon Neuware (CNRT, CNNL, BANG C)")."""
    compatibility: str
    """One of COMPATIBILITY."""
    torch_package: str
    """The vendor's PyTorch plugin ("torch_mlu"): installed, it gives torch this chip's devices."""
    torch_device: str
    """The device type torch uses with that plugin ("mlu"; "cuda" where the stack takes CUDA's
    or ROCm's name): hal reaches the real chip through torch.<name> devices."""
    source: str


@dataclass(frozen=True)
class ChipSpec:
    """A parsed chip spec file."""

    path: Path
    model: str
    name: str
    vendor: str
    kind: str
    architecture: str
    source: str
    memory_capacity: Figure
    memory_bandwidth: Figure
    allocation: AllocationRule
    host_link: str
    host_link_bandwidth: Figure
    host_link_latency: Figure
    launch_overhead: Figure
    dtypes: tuple[DType, ...]
    default_precision_mode: str
    peak_flops: dict[str, Figure]
    peer_link: str | None = None
    peer_link_bandwidth: Figure | None = None
    peer_link_topology: str | None = None
    """"full_mesh" or "ring" ([peer_link] topology); None where the spec does not say."""
    peer_link_cards: Figure | None = None
    """How many cards the peer link joins ([peer_link] cards, e.g. an 8-card HCCS mesh)."""
    software: Software | None = None
    figures: dict[str, Figure] = field(default_factory=dict)
    """Every figure of the file by dotted key ("memory.capacity"), for reports."""

    def device_spec(self, index: int) -> DeviceSpec:
        return DeviceSpec(
            kind=self.kind,
            index=index,
            name=f"{self.name} (simulated)",
            vendor=self.vendor,
            simulated=True,
            memory_bytes=int(self.memory_capacity.value),
            dtypes=self.dtypes,
            host_addressable=False,
            model=self.model,
            peak_flops={k: f.value for k, f in self.peak_flops.items()},
            mem_bandwidth=self.memory_bandwidth.value,
            host_link_bandwidth=self.host_link_bandwidth.value,
            launch_overhead_s=self.launch_overhead.value,
            details={
                "architecture": self.architecture,
                "allocation_rule": {
                    "granularity": self.allocation.granularity,
                    "padding": self.allocation.padding,
                    "base_alignment": self.allocation.base_alignment,
                },
                "host_link": self.host_link,
                "peer_link": self.peer_link,
                "peer_link_bandwidth": self.peer_link_bandwidth.value if self.peer_link_bandwidth else None,
                **({"peer_link_topology": self.peer_link_topology} if self.peer_link_topology else {}),
                **({"peer_link_cards": int(self.peer_link_cards.value)} if self.peer_link_cards else {}),
                "default_precision_mode": self.default_precision_mode,
                "software": None if self.software is None else {
                    "stack": self.software.stack, "compatibility": self.software.compatibility,
                    "torch_package": self.software.torch_package, "torch_device": self.software.torch_device,
                },
                "spec_file": str(self.path),
            },
        )


class _Reader:
    """Walks the parsed TOML, turning every problem into an InvalidSpecError naming file, key and line."""

    def __init__(self, path: Path, data: dict[str, Any]):
        self.path = path
        self.data = data
        self.figures: dict[str, Figure] = {}

    def fail(self, key: str, problem: str) -> InvalidSpecError:
        return spec_error("chip spec", self.path, key, problem)

    def table(self, key: str, optional: bool = False) -> dict[str, Any] | None:
        node: Any = self.data
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                if optional:
                    return None
                raise self.fail(key, "missing table")
            node = node[part]
        if not isinstance(node, dict):
            raise self.fail(key, "must be a table")
        return node

    def text(self, table: str, name: str, optional: bool = False) -> str | None:
        value = (self.table(table) or {}).get(name)
        if value is None and optional:
            return None
        if not isinstance(value, str) or not value.strip():
            raise self.fail(f"{table}.{name}", "must be a non-empty string")
        return value

    def figure(self, table: str, name: str, optional: bool = False, allow_zero: bool = False) -> Figure | None:
        key = f"{table}.{name}"
        raw = (self.table(table, optional=optional) or {}).get(name)
        if raw is None:
            if optional:
                return None
            raise self.fail(key, "missing figure {value, unit, source, confidence}")
        if not isinstance(raw, dict):
            raise self.fail(key, "a figure is an inline table {value, unit, source, confidence, note?}")
        unknown = set(raw) - {"value", "unit", "source", "confidence", "note"}
        if unknown:
            raise self.fail(key, f"unknown fields {sorted(unknown)}")
        value = raw.get("value")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or (value == 0 and not allow_zero):
            raise self.fail(key, f"value must be a number {'>= 0' if allow_zero else '> 0'}, got {value!r}")
        for part in ("unit", "source"):
            if not isinstance(raw.get(part), str) or not raw[part].strip():
                raise self.fail(key, f"{part} must be a non-empty string (every figure names its public source)")
        if raw.get("confidence") not in CONFIDENCE_LEVELS:
            raise self.fail(key, f"confidence must be one of {CONFIDENCE_LEVELS}, got {raw.get('confidence')!r}")
        found = Figure(value, raw["unit"], raw["source"], raw["confidence"], str(raw.get("note", "")))
        self.figures[key] = found
        return found

    def integer(self, table: str, name: str, allow_zero: bool = False) -> int:
        found = self.figure(table, name, allow_zero=allow_zero)
        assert found is not None
        if found.value != int(found.value):
            raise self.fail(f"{table}.{name}", "must be a whole number of bytes")
        return int(found.value)


def spec_error(what: str, path: Path, key: str, problem: str) -> InvalidSpecError:
    """'chip spec /x/chip.toml, line 14: memory.bandwidth: value must be a number > 0, got -1'"""
    try:
        line = key_line(path.read_text(encoding="utf-8"), key)
    except OSError:
        line = None
    return InvalidSpecError(f"{what} {path}{f', line {line}' if line else ''}: {key}: {problem}")


def load_chip_spec(path: str | Path) -> ChipSpec:
    """Parses and validates one spec file, all of it or nothing; an InvalidSpecError says what is
    wrong, and where: the file, the key and its line."""
    return _load(Path(path).resolve())


@functools.lru_cache(maxsize=None)
def _load(path: Path) -> ChipSpec:
    data = read_toml(path, "chip spec", InvalidSpecError)
    r = _Reader(path, data)
    if data.get("schema") != SCHEMA_VERSION:
        raise r.fail("schema", f"must be {SCHEMA_VERSION}, got {data.get('schema')!r}")
    rule = AllocationRule(
        granularity=r.integer("memory.allocation", "granularity"),
        padding=r.integer("memory.allocation", "padding", allow_zero=True),
        base_alignment=r.integer("memory.allocation", "base_alignment"),
    )
    if rule.base_alignment & (rule.base_alignment - 1):
        raise r.fail("memory.allocation.base_alignment", "must be a power of two")
    compute = r.table("compute")
    assert compute is not None
    try:
        dtypes = tuple(as_dtype(name) for name in compute.get("dtypes", []))
    except UnsupportedDTypeError as exc:
        raise r.fail("compute.dtypes", str(exc)) from None
    if not dtypes:
        raise r.fail("compute.dtypes", "must list the dtypes the chip computes")
    peak_table = r.table("compute.peak_flops")
    assert peak_table is not None
    peak = {}
    for name in peak_table:
        try:
            as_dtype(name)
        except UnsupportedDTypeError:
            raise r.fail(f"compute.peak_flops.{name}", "is not a dtype name") from None
        peak[name] = r.figure("compute.peak_flops", name)
    has_peer = r.table("peer_link", optional=True) is not None
    spec = ChipSpec(
        path=path,
        model=r.text("chip", "model"),
        name=r.text("chip", "name"),
        vendor=r.text("chip", "vendor"),
        kind=r.text("chip", "kind"),
        architecture=r.text("chip", "architecture", optional=True) or "",
        source=r.text("chip", "source"),
        memory_capacity=r.figure("memory", "capacity"),
        memory_bandwidth=r.figure("memory", "bandwidth"),
        allocation=rule,
        host_link=r.text("host_link", "name"),
        host_link_bandwidth=r.figure("host_link", "bandwidth"),
        host_link_latency=r.figure("host_link", "latency"),
        launch_overhead=r.figure("compute", "launch_overhead"),
        dtypes=dtypes,
        default_precision_mode=r.text("compute", "default_precision_mode"),
        peak_flops=peak,
        peer_link=r.text("peer_link", "name") if has_peer else None,
        peer_link_bandwidth=r.figure("peer_link", "bandwidth") if has_peer else None,
        peer_link_topology=r.text("peer_link", "topology", optional=True) if has_peer else None,
        peer_link_cards=r.figure("peer_link", "cards", optional=True) if has_peer else None,
        software=_software(r),
    )
    if spec.peer_link_topology not in (None, *PEER_TOPOLOGIES):
        raise r.fail("peer_link.topology", f"must be one of {PEER_TOPOLOGIES}, got {spec.peer_link_topology!r}")
    for optional in ("cores", "clock"):
        r.figure("compute", optional, optional=True)
    object.__setattr__(spec, "figures", dict(r.figures))
    return spec


def _software(r: _Reader) -> Software | None:
    table = r.table("software", optional=True)
    if table is None:
        return None
    unknown = set(table) - {"stack", "compatibility", "torch_package", "torch_device", "source"}
    if unknown:
        raise r.fail("software", f"unknown fields {sorted(unknown)}")
    compatibility = r.text("software", "compatibility")
    if compatibility not in COMPATIBILITY:
        raise r.fail("software.compatibility", f"must be one of {COMPATIBILITY}, got {compatibility!r}")
    return Software(r.text("software", "stack"), compatibility, r.text("software", "torch_package"),
                    r.text("software", "torch_device"), r.text("software", "source"))


def list_chip_specs(chips_dir: str | Path) -> list[ChipSpec]:
    """Every spec file in a backend's chips/ folder."""
    return [load_chip_spec(p) for p in sorted(Path(chips_dir).glob("*.toml"))]


def find_chip_spec(chips_dir: str | Path, model: str) -> ChipSpec:
    """The spec for `model` ("910B", case-insensitive) in chips_dir, or a spec file path."""
    if model.endswith(".toml"):
        return load_chip_spec(model)
    specs = list_chip_specs(chips_dir)
    for spec in specs:
        if spec.model.lower() == model.lower():
            return spec
    known = ", ".join(s.model for s in specs) or "none"
    raise BackendError(f"no chip model '{model}' in {chips_dir} (known: {known}); or give a path to a .toml spec")
