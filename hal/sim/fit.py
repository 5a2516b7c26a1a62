"""Which chip fits my model: for an ONNX model and a chip model's spec, whether its weights and
activations fit the chip's memory, how long a run would take on the roofline, and which nodes
would fall back to the CPU (`hal fit model.onnx --devices all`).

Nothing runs and no device is opened: the answers come from the chip's spec file and op table,
the same ones a session over that chip would consult, so a chip model without devices in this
process (every model a backend ships, not only its default) can be asked.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from ..capability import CompileOptions, NodeInfo, Support
from ..graph.model import LoadedModel
from ..graph.placement import tensor_bytes
from .cost import ChipCost, node_cost
from .numerics import compute_dtype_of
from .spec import ChipSpec

__all__ = ["ModelFit", "fit_model", "fit_on_host", "as_a_session_sees_it", "activation_peak_bytes"]


@dataclass
class ModelFit:
    target: str
    """"ascend 910B", or a device name for a real device ("cpu:0")."""
    name: str
    capacity_bytes: int
    weight_bytes: int
    activation_bytes: int
    """The most bytes of graph inputs and intermediate values alive at once, nodes run in order."""
    estimated_s: float
    """The nodes the chip runs on its roofline, the rest on the CPU's estimate, and every tensor
    crossing the host link between them."""
    fallback_nodes: int
    fallback_ops: list[str] = field(default_factory=list)
    dynamic: bool = False
    """Some dimension was not known and counted as 1 (give sizes with --dim)."""

    @property
    def needed_bytes(self) -> int:
        return self.weight_bytes + self.activation_bytes

    @property
    def fits(self) -> bool:
        return self.needed_bytes <= self.capacity_bytes

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "needed_bytes": self.needed_bytes, "fits": self.fits}


def activation_peak_bytes(model: LoadedModel, nodes: list[NodeInfo]) -> int:
    """Peak bytes of values alive at once when the nodes run in order: graph inputs from the start,
    a node's outputs from that node, each value freed after its last reader (graph outputs kept)."""
    last_use: dict[str, int] = {}
    for i, node in enumerate(nodes):
        for t in node.inputs:
            if t is not None:
                last_use[t.name] = i
    keep = {t.name for t in model.outputs}
    live = {t.name: tensor_bytes(t) for t in model.inputs}
    peak = sum(live.values())
    for i, node in enumerate(nodes):
        for t in node.outputs:
            if t is not None and t.name:
                live[t.name] = tensor_bytes(t)
        peak = max(peak, sum(live.values()))
        for t in node.inputs:
            if t is not None and last_use.get(t.name) == i and t.name not in keep and t.name in live:
                del live[t.name]
    return peak


def _weight_bytes(model: LoadedModel) -> int:
    return sum(tensor_bytes(model.tensors.get(name)) for name in model.initializers)


def _dynamic(nodes: list[NodeInfo]) -> bool:
    return any(t is not None and t.is_tensor and t.static_shape is None for n in nodes for t in (*n.inputs, *n.outputs))


def as_a_session_sees_it(model: LoadedModel) -> LoadedModel:
    """The model as a session over a chip places it: fixed shape arithmetic folded into constants
    (hal.graph.fold), so that no Shape node sends a chip's layers back to the host."""
    from ..graph.fold import fold_until_stable

    return fold_until_stable(model)[0]


def _with_fused_gelu(model: LoadedModel, supports: Callable[[NodeInfo], Support]) -> LoadedModel:
    """On a chip without Erf, a session runs erf-GELU as one com.hal::FusedGelu (hal.graph.fusion)."""
    from ..errors import HalError
    from ..graph.fusion import fuse_erf_gelu
    from ..graph.model import load_generated

    if not any(n.op_type == "Erf" and not supports(n) for n in model.node_infos()):
        return model
    fused, count = fuse_erf_gelu(model.proto)
    try:
        return load_generated(fused) if count else model
    except HalError:  # an optimisation only, as in the session
        return model


def fit_model(model: LoadedModel, chip: ChipSpec, supports: Callable[[NodeInfo], Support],
              cpu_seconds: Callable[[NodeInfo], float], *, options: CompileOptions | None = None) -> ModelFit:
    """The model (as_a_session_sees_it) on one chip model: `supports` answers for that chip
    (SimulatedBackend.chip_supports), `cpu_seconds` estimates a node that falls back (the CPU
    backend's cost)."""
    options = options or CompileOptions()
    model = _with_fused_gelu(model, supports)
    nodes = model.node_infos()
    on_chip = {n.name: bool(supports(n)) for n in nodes}
    link = ChipCost(chip)
    seconds = 0.0
    for n in nodes:
        seconds += node_cost(n, chip, compute_dtype_of(n, chip, options)).seconds if on_chip[n.name] else cpu_seconds(n)
    # a value crosses the host link once for each side that reads it away from where it was made
    made_on_chip = {t.name: on_chip[n.name] for n in nodes for t in n.outputs if t is not None}
    crossed: set[tuple[str, bool]] = set()
    for n in nodes:
        for t in n.inputs:
            if t is None or t.name in model.initializers or not t.name:
                continue
            source = made_on_chip.get(t.name, False)  # graph inputs come from the host
            if source != on_chip[n.name] and (t.name, on_chip[n.name]) not in crossed:
                crossed.add((t.name, on_chip[n.name]))
                seconds += link.host_to_device(tensor_bytes(t)) if on_chip[n.name] else link.device_to_host(tensor_bytes(t))
    for t in model.outputs:
        if made_on_chip.get(t.name):
            seconds += link.device_to_host(tensor_bytes(t))
    fallback = [n for n in nodes if not on_chip[n.name]]
    return ModelFit(
        target=f"{chip.kind} {chip.model}", name=chip.name, capacity_bytes=int(chip.memory_capacity.value),
        weight_bytes=_weight_bytes(model), activation_bytes=activation_peak_bytes(model, nodes), estimated_s=seconds,
        fallback_nodes=len(fallback), fallback_ops=sorted({n.qualified_op for n in fallback}), dynamic=_dynamic(nodes),
    )


def fit_on_host(model: LoadedModel, name: str, capacity_bytes: int, cpu_seconds: Callable[[NodeInfo], float]) -> ModelFit:
    """The model on the CPU itself: everything runs there, nothing crosses a link."""
    nodes = model.node_infos()
    return ModelFit(target=name, name=name, capacity_bytes=capacity_bytes, weight_bytes=_weight_bytes(model),
                    activation_bytes=activation_peak_bytes(model, nodes), estimated_s=sum(cpu_seconds(n) for n in nodes),
                    fallback_nodes=0, dynamic=_dynamic(nodes))
