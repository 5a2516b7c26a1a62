"""The Ray resource that names a hal device, so that Ray places work where the chip is.

The scheme:

- real Ascend NPUs: "NPU", the resource Ray's own accelerator manager declares for them
  (ray._private.accelerators.npu; `ray start` finds them by itself and sets
  ASCEND_RT_VISIBLE_DEVICES per actor);
- real NVIDIA GPUs: "GPU" (likewise, with CUDA_VISIBLE_DEVICES);
- the CPU: "CPU", which every node has;
- other real chips: "hal_<kind>" ("hal_kunlun", "hal_mlu", "hal_torch_mlu"), custom resources a
  node declares with `ray start --resources='{"hal_kunlun": 8}'`;
- simulated chips: "hal_sim_<kind>" ("hal_sim_ascend"): a simulator runs on any CPU, so a node
  offers it only where declared, and a simulated Ascend never claims a real card's "NPU".

One unit is one device.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...device import Device
from ...registry import device as get_device

__all__ = ["resource_for", "ray_options", "RAY_ACCELERATORS", "uses_ray_accelerator"]

RAY_ACCELERATORS = {"ascend": "NPU", "torch.npu": "NPU", "cuda": "GPU", "torch.cuda": "GPU"}
"""Real devices Ray itself schedules: it hides every other card of that kind from the actor."""
_HOST_KINDS = ("cpu", "torch.cpu")


def resource_for(device: str | Device) -> str:
    """The Ray resource naming `device` ("ascend:0" -> "hal_sim_ascend" where simulated, "NPU" on a
    real Ascend), as the module docstring's scheme says."""
    found = get_device(device)
    kind = found.kind
    if kind in _HOST_KINDS:
        return "CPU"
    if found.spec.simulated:
        return "hal_sim_" + kind.replace(".", "_")
    return RAY_ACCELERATORS.get(kind) or "hal_" + kind.replace(".", "_")


def uses_ray_accelerator(resources: Mapping[str, float]) -> bool:
    """Whether Ray pins work holding these resources to its own cards: the device is then the
    first one the worker sees (its index 0), whatever its index on the machine."""
    return any(resources.get(name) for name in set(RAY_ACCELERATORS.values()))


def ray_options(resources: Mapping[str, float], num_cpus: float = 0) -> dict[str, Any]:
    """Keyword arguments for `.options(...)` of a Ray actor or task that needs `resources`: Ray
    takes CPU and GPU as num_cpus / num_gpus, never inside `resources`."""
    custom = {name: amount for name, amount in resources.items() if name not in ("CPU", "GPU")}
    options: dict[str, Any] = {"num_cpus": resources.get("CPU", num_cpus)}
    if resources.get("GPU"):
        options["num_gpus"] = resources["GPU"]
    if custom:
        options["resources"] = custom
    return options
