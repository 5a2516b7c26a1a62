"""RaySession: a hal plan whose partitions run on Ray actors, one per device, each placed by the
Ray resource that names its chip (resources.py); tensors go from actor to actor through Ray's
object store, never through the driver.

    ray.init(address="auto")
    sess = RaySession("model.onnx", devices=["ascend:0", "cpu"])
    outputs = sess.run(None, {"input": x})         # the same as hal.InferenceSession's

The driver builds the plan exactly as hal.InferenceSession does (it is one, on the driver's view
of the devices: a simulated chip where the driver has no real one) and sends each partition, as a
standalone model, to the actor of its device, which compiles it there with its own
InferenceSession. A run submits every partition at once in plan order; Ray starts each as soon as
the tensors it reads exist.
"""
from __future__ import annotations

import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx

from ...device import Device
from ...errors import DeviceLostError, ExecutionError, HalError, InvalidArgumentError, TimeoutError
from ...graph.extract import GraphIndex
from ...graph.feeds import validate_feeds
from ...graph.plan import PartitionPlan, Plan
from ...graph.session import InferenceSession
from ...registry import device as get_device
from .cluster import require_offered, require_ray
from .resources import ray_options, resource_for, uses_ray_accelerator

__all__ = ["RaySession", "NodePlacement"]

_FEATURE = "RaySession"


@dataclass(frozen=True)
class NodePlacement:
    """Where Ray put a device's actor."""

    node_id: str
    ip: str
    hostname: str
    pid: int
    actor_id: str

    def __str__(self) -> str:
        return f"{self.ip} (node {self.node_id[:12]}, {self.hostname}, pid {self.pid})"


class _PartitionHost:
    """Runs inside a Ray actor: the compiled partitions of one device."""

    def __init__(self, device: str, session_options: dict[str, Any]):
        self.device = device
        self.session_options = session_options
        self.sessions: dict[str, InferenceSession] = {}
        self.inputs: dict[str, list[str]] = {}

    def where(self) -> NodePlacement:
        ray = require_ray(_FEATURE)
        context = ray.get_runtime_context()
        return NodePlacement(context.get_node_id(), ray.util.get_node_ip_address(), socket.gethostname(), os.getpid(),
                             context.get_actor_id())

    def load(self, name: str, model: bytes, inputs: list[str]) -> None:
        self.sessions[name] = InferenceSession(model, devices=[self.device], **self.session_options)
        self.inputs[name] = inputs

    def run(self, name: str, *arrays: np.ndarray) -> np.ndarray | tuple[np.ndarray, ...]:
        outputs = self.sessions[name].run(None, dict(zip(self.inputs[name], arrays)))
        return outputs[0] if len(outputs) == 1 else tuple(outputs)


@dataclass
class _Step:
    partition: PartitionPlan
    device: str
    submit: Any = None
    """The actor's run method with this partition's number of results: built once, not per run."""


class RaySession:
    """A model over devices on a Ray cluster: hal.InferenceSession's plan, each partition on the
    Ray actor of its device.

    devices, placement, strict, precision_mode, fc_precision: as hal.InferenceSession's.
    resources: {device name: {Ray resource: amount}} for a device whose actor needs other
      resources than resource_for(device) (a node that declares a real Kunlun as "XPU", say).
    start_timeout_s: how long to wait for Ray to place every actor and for it to compile its
      partitions (hal.TimeoutError beyond it: the resource exists but every unit is taken).
    timeout_s: how long one run() may take (hal.TimeoutError beyond it); None waits.
    Call ray.init (or hal.distributed.ray.connect) first; close() ends the actors.
    """

    def __init__(
        self,
        model: str | os.PathLike | bytes | onnx.ModelProto,
        devices: Sequence[str | Device] | None = None,
        *,
        placement: str = "priority",
        strict: bool = False,
        precision_mode: str | None = None,
        fc_precision: str | None = None,
        resources: Mapping[str, Mapping[str, float]] | None = None,
        start_timeout_s: float = 120.0,
        timeout_s: float | None = None,
    ):
        self._ray = ray = require_ray(_FEATURE)
        if not ray.is_initialized():
            raise HalError(f"{_FEATURE}: this process has not joined a Ray cluster; call ray.init(...) or "
                           "hal.distributed.ray.connect(address) first")
        self.timeout_s = timeout_s
        self._local = InferenceSession(model, devices, placement=placement, strict=strict,
                                       precision_mode=precision_mode, fc_precision=fc_precision)
        self.plan: Plan = self._local.plan
        self._steps = [_Step(p, p.device) for p in self.plan.partitions]
        used = list(dict.fromkeys(step.device for step in self._steps))
        self.resources = {name: dict((resources or {}).get(name) or {resource_for(name): 1}) for name in used}
        unknown = sorted(set(resources or {}) - set(used))
        if unknown:
            raise InvalidArgumentError(f"resources name device(s) {', '.join(unknown)} that run no partition of this "
                                       f"plan; its partitions run on {', '.join(used)}")
        require_offered(ray, self.resources)
        self._lost: DeviceLostError | None = None
        self._actors: dict[str, Any] = {}
        self.placements: dict[str, NodePlacement] = {}
        """Device name -> the Ray node its actor runs on."""
        try:
            self._start_actors({"placement": "priority", "strict": False, "precision_mode": precision_mode,
                                "fc_precision": fc_precision}, start_timeout_s)
        except BaseException:
            self.close()
            raise

    # -- starting ------------------------------------------------------------------------------
    def _start_actors(self, session_options: dict[str, Any], timeout_s: float) -> None:
        ray = self._ray
        host_class = ray.remote(_PartitionHost)
        for device, needed in self.resources.items():
            kind = get_device(device).kind
            # Ray pins an actor holding an NPU or GPU to its own card, which the actor sees as index 0
            name_there = f"{kind}:0" if uses_ray_accelerator(needed) else device
            self._actors[device] = host_class.options(**ray_options(needed), max_restarts=0).remote(name_there, session_options)
        waits = {device: actor.where.remote() for device, actor in self._actors.items()}
        ready, _ = ray.wait(list(waits.values()), num_returns=len(waits), timeout=timeout_s)
        unplaced = [device for device, ref in waits.items() if ref not in ready]
        if unplaced:
            raise TimeoutError(f"Ray placed no actor for {', '.join(unplaced)} within {timeout_s:g} s: every unit of "
                               f"{', '.join(sorted({r for d in unplaced for r in self.resources[d]}))} is held by other work; "
                               "free it, add nodes that declare it, or raise start_timeout_s")
        self.placements = {device: self._get(ref, device) for device, ref in waits.items()}
        index = GraphIndex(self._local.model.proto)
        nodes = {n.name: n for n in self._local.model.node_infos()}
        loads = []
        for step in self._steps:
            part = step.partition
            extracted = index.extract([nodes[n] for n in part.nodes], part.outputs, part.name)
            loads.append((step, self._actors[step.device].load.remote(part.name, extracted.SerializeToString(), list(part.inputs))))
        for step, ref in loads:
            self._get(ref, step.device, step.partition.name, timeout_s)
            step.submit = self._actors[step.device].run.options(num_returns=len(step.partition.outputs))
        readers: dict[str, int] = {}
        for step in self._steps:
            for name in step.partition.inputs:
                readers[name] = readers.get(name, 0) + 1
        # inputs several partitions read go to the object store once a run, not with each call
        self._shared_feeds = [i.name for i in self._local.model.inputs if readers.get(i.name, 0) > 1]

    # -- running -------------------------------------------------------------------------------
    def get_inputs(self):
        return self._local.get_inputs()

    def get_outputs(self):
        return self._local.get_outputs()

    def run(self, output_names: Sequence[str] | None, input_feed: Mapping[str, Any], run_options: Any = None) -> list[np.ndarray]:
        """Same signature and return type as hal.InferenceSession.run (and onnxruntime's)."""
        if self._lost is not None:
            raise DeviceLostError(str(self._lost))
        if not self._actors:
            raise HalError("this RaySession is closed; build a new one")
        names = self._local.check_output_names(output_names)
        ray = self._ray
        produced: dict[str, Any] = validate_feeds(self._local.model, input_feed)
        for name in self._shared_feeds:
            produced[name] = ray.put(produced[name])
        submitted = []
        for step in self._steps:
            part = step.partition
            refs = step.submit.remote(part.name, *(produced[name] for name in part.inputs))
            refs = [refs] if len(part.outputs) == 1 else refs
            produced.update(zip(part.outputs, refs))
            submitted.append((step, refs))
        wanted = [produced.get(name) for name in names]
        try:
            values = ray.get([ref for ref in wanted if isinstance(ref, ray.ObjectRef)], timeout=self.timeout_s)
        except ray.exceptions.GetTimeoutError:
            waiting = [f"{step.partition.name} on {step.device}" for step, refs in submitted
                       if ray.wait(refs, num_returns=len(refs), timeout=0)[1]]
            raise TimeoutError(f"the run took longer than timeout_s={self.timeout_s:g} s; still running: "
                               f"{', '.join(waiting) or 'none (the results were on their way)'}") from None
        except ray.exceptions.RayError as exc:
            failed = self._failed_step(submitted)
            raise self._hal_error(exc, failed.device if failed else None, failed.partition.name if failed else None) from None
        found = iter(values)
        return [self._writable(next(found)) if isinstance(ref, ray.ObjectRef) else self._constant(name) if ref is None else ref
                for name, ref in zip(names, wanted)]

    def close(self) -> None:
        """Ends the actors (their devices' memory is freed with them)."""
        if self._ray.is_initialized():  # after ray.shutdown() the actors are gone already
            for actor in self._actors.values():
                self._ray.kill(actor)
        self._actors = {}

    def __enter__(self) -> RaySession:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- errors --------------------------------------------------------------------------------
    def _get(self, ref, device: str, partition: str | None = None, timeout_s: float | None = None):
        try:
            return self._ray.get(ref, timeout=timeout_s)
        except self._ray.exceptions.GetTimeoutError:
            raise TimeoutError(f"{device}: compiling partition {partition} took longer than {timeout_s:g} s; raise start_timeout_s") from None
        except self._ray.exceptions.RayError as exc:
            raise self._hal_error(exc, device, partition) from None

    def _failed_step(self, submitted) -> _Step | None:
        """The first partition, in plan order, whose results are an error."""
        ray = self._ray
        for step, refs in submitted:
            if ray.wait(refs, num_returns=len(refs), timeout=0)[1]:
                return None  # not finished: a later one cannot have failed first
            try:
                ray.get(refs, timeout=0)
            except ray.exceptions.RayError:
                return step
        return None

    def _hal_error(self, exc: Exception, device: str | None, partition: str | None) -> HalError:
        ray = self._ray
        where = f"{device}" + (f" on Ray node {self.placements[device]}" if device in self.placements else "")
        what = f"partition {partition}" if partition else "its partitions"
        if isinstance(exc, ray.exceptions.RayActorError):
            lost = self._device_of_actor(exc.actor_id) or device
            where = f"{lost}" + (f" on Ray node {self.placements[lost]}" if lost in self.placements else "")
            on_lost = [s.partition.name for s in self._steps if s.device == lost]
            part = partition if partition in on_lost else ", ".join(on_lost)
            self._lost = DeviceLostError(
                f"{where} was lost while running partition {part}: its Ray actor died ({str(exc).splitlines()[0]}). "
                "The node may have left the cluster, the process crashed or was killed; this session's later runs fail "
                "the same way: build a new RaySession")
            return self._lost
        if isinstance(exc, ray.exceptions.RayTaskError):
            cause = getattr(exc, "cause", None)
            if isinstance(cause, HalError):
                try:  # the same error, saying on which node it happened
                    return type(cause)(f"{what} on {where}: {cause}")
                except TypeError:  # a subclass whose constructor takes more than a message
                    return cause
            return ExecutionError(f"{what} on {where} failed: {type(cause).__name__ if cause else 'error'}: {cause or exc}")
        return HalError(f"Ray failed while running {what} on {where}: {type(exc).__name__}: {exc}")

    def _device_of_actor(self, actor_id: str | None) -> str | None:
        return next((device for device, where in self.placements.items() if where.actor_id == actor_id), None)

    @staticmethod
    def _writable(array: Any) -> Any:
        # Ray hands out numpy arrays that view its shared memory, read-only; hal's and
        # onnxruntime's sessions return arrays the caller may write to
        return array.copy() if isinstance(array, np.ndarray) and not array.flags.writeable else array

    def _constant(self, name: str) -> np.ndarray:
        """A graph output that is a weight, computed by no partition."""
        from onnx import numpy_helper

        return numpy_helper.to_array(next(t for t in self._local.model.proto.graph.initializer if t.name == name))
