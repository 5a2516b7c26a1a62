"""hal on a Ray cluster: a plan's partitions on Ray actors placed by the resource that names each
chip (RaySession), and the names of those resources (resource_for). Ray is the `[ray]` extra:

    pip install "hal[ray]"
    import ray, hal.distributed.ray as hal_ray
    ray.init(address="auto")
    sess = hal_ray.RaySession("model.onnx", devices=["ascend:0", "cpu"])

`hal conformance --ray ADDRESS` runs the conformance suites over the same cluster.
"""
from __future__ import annotations

from .cluster import connect, require_ray
from .resources import ray_options, resource_for
from .session import NodePlacement, RaySession

__all__ = ["RaySession", "NodePlacement", "resource_for", "ray_options", "connect", "require_ray"]
