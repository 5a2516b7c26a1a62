"""`hal conformance --ray ADDRESS`: the per-backend suites as Ray tasks, each placed on a node that
has its backend's chip (the Ray resource hal.distributed.ray.resource_for names), merged into the
one report a local run writes.

One task per backend and mode for the node tests, one per backend for its API suite, and one for
onnxruntime's and the reference's baselines on any node's CPU. The driver builds onnx's node test
cases once and hands them to every task through Ray's object store (building them costs each
process ~10 s). An API task gets a fresh worker process (max_calls=1): the suite runs pytest
in-process, which is not made to run twice in one. Every node needs hal installed, as the driver
has it.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..distributed.ray import connect, ray_options, require_ray, resource_for
from ..distributed.ray.cluster import require_offered
from ..distributed.ray.resources import uses_ray_accelerator
from ..errors import DeviceLostError, ExecutionError, HalError
from ..registry import device as get_device
from .expectations import expectations_for
from .onnx_node.cases import NodeCase
from .onnx_node.run import BASELINES, CaseResult, Target
from .report import ApiResult, Report, write_reports
from .runner import RunOptions, check_options, environment, resolve_devices, run_api_suite, run_node_cases

__all__ = ["run_conformance_on_ray"]

_FEATURE = "hal conformance --ray"


def _where() -> str:
    ray = require_ray(_FEATURE)
    return f"{ray.util.get_node_ip_address()} (node {ray.get_runtime_context().get_node_id()[:12]})"


def _run_api(backend: str, device: str, patterns: Sequence[str]) -> tuple[list[ApiResult], str]:
    """In a Ray worker: one backend's API suite."""
    return run_api_suite({backend: device}, patterns), _where()


def _run_node(targets: Sequence[Target], cases: Sequence[NodeCase], jobs: int) -> tuple[list[CaseResult], str]:
    """In a Ray worker: node test cases on targets of one node."""
    return run_node_cases(targets, cases, jobs), _where()


def _device_there(device: str, resources: dict[str, float]) -> str:
    # Ray pins a task holding an NPU or GPU to its own card, which it sees as index 0
    return f"{get_device(device).kind}:0" if uses_ray_accelerator(resources) else device


def run_conformance_on_ray(options: RunOptions, address: str) -> Report:
    """The run `options` describe, fanned out over the Ray cluster at `address` ("auto" or
    "host:port"); the same Report (and report files) as run_conformance's."""
    from .. import registry
    from .onnx_node.cases import node_cases, select_cases

    check_options(options)
    ray = connect(address, feature=_FEATURE)
    devices = resolve_devices(options.backends, options.all_backends)
    resources = {backend: {resource_for(device): 1.0} for backend, device in devices.items()}
    there = {backend: _device_there(device, resources[backend]) for backend, device in devices.items()}
    require_offered(ray, {f"{backend} ({devices[backend]})": needed for backend, needed in resources.items()})
    run_api = ray.remote(max_calls=1)(_run_api)
    run_node = ray.remote(_run_node)
    # (label, ref) in a local run's order: API results by backend, then node results by target;
    # the node tasks first, as an unknown --ops fails while their cases are selected
    api_refs: list[tuple[str, Any]] = []
    node_refs: list[tuple[str, Any]] = []
    if options.suite in ("onnx", "all"):
        if options.progress is not None:
            options.progress.write("building onnx's node test cases...\n")
        known = [c.name for c in node_cases()]
        cases = ray.put(select_cases(options.patterns, options.ops))  # an unknown op fails here
        backends = registry.backends()
        for backend in devices:
            expected = expectations_for(backends[backend], known)
            for mode in options.modes:
                ref = run_node.options(**ray_options(resources[backend], num_cpus=1), max_retries=0).remote(
                    [Target(backend, there[backend], mode, expected)], cases, options.jobs)
                node_refs.append((f"{backend} ({mode})", ref))
        if options.baselines:
            ref = run_node.options(num_cpus=1, max_retries=0).remote([Target(name, None, "baseline") for name in BASELINES], cases, options.jobs)
            node_refs.append(("baselines", ref))
    if options.suite in ("api", "all") and not options.ops:
        for backend in devices:
            ref = run_api.options(**ray_options(resources[backend], num_cpus=1), max_retries=0).remote(
                backend, there[backend], tuple(options.patterns))
            api_refs.append((f"{backend} (API suite)", ref))
    labels = {ref: label for label, ref in (*api_refs, *node_refs)}
    results: dict[Any, Any] = {}
    where: list[str] = []
    while len(results) < len(labels):
        ready, _ = ray.wait([ref for ref in labels if ref not in results], num_returns=1)
        for ref in ready:
            results[ref], node = _result(ray, ref, labels[ref])
            where.append(f"{labels[ref]} on {node}")
            if options.progress is not None:
                options.progress.write(f"{labels[ref]}: done on {node}\n")
    report = Report(backends=list(devices), devices=dict(there), strict_xfail=options.strict_xfail,
                    environment={**environment(options.command), "ray": f"{address}: " + "; ".join(where)})
    report.api_results = [r for _, ref in api_refs for r in results[ref]]
    report.node_results = [r for _, ref in node_refs for r in results[ref]]
    if options.report_dir is not None:
        write_reports(report, options.report_dir)
    return report


def _result(ray, ref, label: str) -> Any:
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as exc:
        cause = getattr(exc, "cause", None)
        if isinstance(cause, HalError):
            raise cause from None
        raise ExecutionError(f"the conformance task for {label} failed on the Ray cluster: {type(cause).__name__}: {cause}") from None
    except (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError) as exc:
        raise DeviceLostError(f"the Ray worker running the conformance task for {label} died ({str(exc).splitlines()[0]}); "
                              "its node may have left the cluster or run out of memory; rerun, or run that backend locally "
                              "to see the crash") from None
    except ray.exceptions.RayError as exc:
        raise HalError(f"Ray failed running the conformance task for {label}: {type(exc).__name__}: {exc}") from None
