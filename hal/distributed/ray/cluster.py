"""Ray is optional: every hal.distributed.ray feature imports it through here, so a missing Ray is
one clear error naming the extra, and joining a cluster is one call with hal's errors."""
from __future__ import annotations

from collections.abc import Mapping
from types import ModuleType

from ...errors import DeviceNotFoundError, HalError, MissingDependencyError

__all__ = ["require_ray", "connect", "require_offered", "INSTALL_HINT"]

INSTALL_HINT = 'pip install "hal[ray]"'


def require_ray(feature: str) -> ModuleType:
    """The ray module, or MissingDependencyError saying which feature needed it."""
    try:
        import ray
    except ImportError as exc:
        raise MissingDependencyError(f"{feature} needs Ray, which is not installed ({exc}); install it with {INSTALL_HINT}") from None
    return ray


def connect(address: str | None = None, feature: str = "hal.distributed.ray") -> ModuleType:
    """Ray, joined to the cluster at `address` ("auto", "host:port" or "ray://host:port"), or to the
    one this process already joined (address None). Returns the ray module."""
    ray = require_ray(feature)
    if ray.is_initialized():
        return ray
    if address is None:
        raise HalError(f"{feature}: this process has not joined a Ray cluster; call ray.init(...) first, "
                       "or give the cluster's address ('auto' for the one `ray start` began on this machine)")
    import logging

    try:
        # workers' output stays in the cluster's logs: conformance workers and partition
        # actors would otherwise interleave their onnxruntime messages with the caller's output
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
    except ConnectionError as exc:
        raise DeviceNotFoundError(f"no Ray cluster answers at {address!r} ({exc}); start one with `ray start --head`, "
                                  "or pass the address `ray start` printed") from None
    return ray


def require_offered(ray: ModuleType, needs: Mapping[str, Mapping[str, float]]) -> None:
    """DeviceNotFoundError at once, rather than work that waits forever for a node, when the
    cluster offers less of a resource than one piece of work needs. `needs`: {what needs it (a
    device, a conformance target): {Ray resource: amount}}."""
    offered = ray.cluster_resources()
    for who, resources in needs.items():
        for name, amount in resources.items():
            if offered.get(name, 0) < amount:
                have = ", ".join(f"{k}={v:g}" for k, v in sorted(offered.items()) if not k.startswith(("node:", "memory", "object_store")))
                raise DeviceNotFoundError(
                    f"{who}: no node of the Ray cluster offers the resource {name!r} ({amount:g} needed, "
                    f"{offered.get(name, 0):g} in the cluster, which offers {have}); start a node that has the chip "
                    f"with `ray start --address=HEAD --resources='{{\"{name}\": 1}}'` (hal.distributed.ray.resource_for "
                    "names the resource of each device)")
