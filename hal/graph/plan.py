"""The plan: which node runs where and why, what crosses devices, and how long it should take."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from ..memory import format_bytes

__all__ = ["Plan", "NodePlan", "PartitionPlan", "Transfer"]


@dataclass(frozen=True)
class NodePlan:
    name: str
    op: str
    device: str
    reason: str
    """Why it runs where it does: why not on the first listed device, or which listed device
    supports it first (priority) or costs least (cost), with a note on how it runs there."""
    estimated_s: float | None
    slow: bool = False
    source: str = ""
    """Where the deciding answer comes from (the chip's op table row and its citation); in the
    JSON, not in explain()'s text."""


@dataclass(frozen=True)
class Transfer:
    tensor: str
    source: str
    """A device name, or "host" for a graph input fed from numpy."""
    destination: str
    nbytes: int
    estimated_s: float


@dataclass(frozen=True)
class PartitionPlan:
    name: str
    device: str
    nodes: list[str]
    inputs: list[str]
    outputs: list[str]


@dataclass
class Plan:
    devices: list[str]
    placement: str
    nodes: list[NodePlan]
    partitions: list[PartitionPlan]
    transfers: list[Transfer]
    fallbacks: list[tuple[str, str, str]]
    """(node, wanted device, reason) for every node not on the first listed device for lack of support."""
    dynamic_shapes: bool = False
    """Estimates counted unknown dimensions as 1."""
    estimated_by_device: dict[str, float] = field(default_factory=dict)
    opset_conversion: str = ""
    """Set when a listed device runs some op only from a newer ai.onnx opset than the model's."""
    fusions: str = ""
    """Set when the session folded fixed shapes into constants (hal/graph/fold.py) or fused node
    patterns (hal/graph/fusion.py) for a listed chip."""

    @property
    def assignments(self) -> dict[str, str]:
        """{node name: device name}"""
        return {n.name: n.device for n in self.nodes}

    @property
    def bytes_crossing(self) -> int:
        return sum(t.nbytes for t in self.transfers)

    @property
    def estimated_total_s(self) -> float:
        """Compute on every device plus every transfer, run one after another."""
        return sum(self.estimated_by_device.values()) + sum(t.estimated_s for t in self.transfers)

    def explain(self) -> str:
        """A report a person reads: per node its device (or fallback and why), per partition, the
        bytes crossing devices and the estimated time per device."""
        lines = [f"Plan over {', '.join(self.devices)} ({self.placement} placement): "
                 f"{len(self.nodes)} nodes in {len(self.partitions)} partition(s)"]
        if self.opset_conversion:
            lines.append(f"Model {self.opset_conversion}, as a listed device needs")
        if self.fusions:
            lines.append(f"Rewrote for the listed chips: {self.fusions}")
        width = max((len(n.name) for n in self.nodes), default=4)
        op_width = max((len(n.op) for n in self.nodes), default=2)
        lines.append("")
        lines.append(f"  {'node'.ljust(width)}  {'op'.ljust(op_width)}  {'device':<9} {'est':>10}  why")
        for n in self.nodes:
            est = f"{n.estimated_s * 1e6:8.1f}us" if n.estimated_s is not None else "         -"
            lines.append(f"  {n.name.ljust(width)}  {n.op.ljust(op_width)}  {n.device:<9} {est}  {n.reason}")
        lines.append("")
        lines.append("Partitions (run in this order):")
        for p in self.partitions:
            lines.append(f"  {p.name} on {p.device}: {len(p.nodes)} node(s), {len(p.inputs)} input(s), {len(p.outputs)} output(s)")
        lines.append("")
        lines.append(f"Transfers: {len(self.transfers)}, {format_bytes(self.bytes_crossing)} crossing devices")
        for t in self.transfers:
            lines.append(f"  {t.tensor}: {t.source} -> {t.destination}, {format_bytes(t.nbytes)}, {t.estimated_s * 1e6:.1f} us")
        lines.append("")
        lines.append("Estimated time per device:")
        for device, seconds in self.estimated_by_device.items():
            lines.append(f"  {device}: {seconds * 1e3:.3f} ms")
        lines.append(f"  transfers: {sum(t.estimated_s for t in self.transfers) * 1e3:.3f} ms")
        lines.append(f"  total: {self.estimated_total_s * 1e3:.3f} ms" + (" (unknown dimensions counted as 1)" if self.dynamic_shapes else ""))
        if self.fallbacks:
            lines.append("")
            lines.append(f"Fallbacks: {len(self.fallbacks)}")
            for node, wanted, reason in self.fallbacks:
                lines.append(f"  {node}: not on {wanted}: {reason}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {
            "devices": self.devices,
            "placement": self.placement,
            "nodes": [asdict(n) for n in self.nodes],
            "partitions": [asdict(p) for p in self.partitions],
            "transfers": [asdict(t) for t in self.transfers],
            "fallbacks": [list(f) for f in self.fallbacks],
            "estimated_by_device_s": self.estimated_by_device,
            "estimated_total_s": self.estimated_total_s,
            "dynamic_shapes": self.dynamic_shapes,
            "opset_conversion": self.opset_conversion,
            "fusions": self.fusions,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)
