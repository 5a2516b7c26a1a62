"""InferenceSession: an ONNX model dispatched across the devices a user lists.

    sess = hal.InferenceSession("model.onnx", devices=["ascend:0", "cpu"])
    outputs = sess.run(None, {"input": x})        # onnxruntime's signature and return type
    print(sess.plan.explain())

load -> capability of every node on every device -> placement -> partitions -> each partition
compiled once by its backend -> run: tensors stay on their device between partitions of that
device and cross devices once per (tensor, destination).
"""
from __future__ import annotations

import dataclasses
import os
import threading
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx

from .. import profiler
from ..device import Device
from ..errors import BackendError, DeviceError, DeviceNotFoundError, HalError, InvalidArgumentError, InvalidInputError, OutOfMemoryError
from ..registry import device as get_device, default_device
from ..tensor import DeviceTensor, as_tensor
from ..capability import CompileOptions, NodeInfo, Support, TensorInfo
from .extract import SHAPE_SUFFIX, GraphIndex, metadata_only_inputs
from .feeds import check_feed, validate_feeds
from .fold import fold_until_stable
from .fusion import fuse_erf_gelu
from .model import LoadedModel, load_generated, load_model
from .opsets import upgrade_opset
from .partition import Partition, partition
from .placement import place_cost, place_priority, shape_only_nodes, tensor_bytes, transfer_seconds
from .plan import NodePlan, PartitionPlan, Plan, Transfer
from .values import HostValue, as_value, host_only_reason

__all__ = ["InferenceSession", "NodeArg", "FailoverWarning"]

PLACEMENTS = ("priority", "cost")


class FailoverWarning(UserWarning):
    """A device failed while a session ran, and the session moved its work to its failover
    devices: the results are complete, the failed device is no longer used by this session."""


_DEVICE_FAULTS = (DeviceError, OutOfMemoryError)  # DeviceLostError is a DeviceError


class _DeviceFault(Exception):
    """A device fault in a failover session's run, with the device it happened on."""

    def __init__(self, device: Device, error: HalError):
        super().__init__(str(error))
        self.device = device
        self.error = error


@dataclass(frozen=True)
class NodeArg:
    """An input or output as onnxruntime's get_inputs() describes it."""

    name: str
    type: str
    shape: list[int | str | None]


def _node_arg(info: TensorInfo) -> NodeArg:
    if not info.is_tensor:
        return NodeArg(info.name, info.kind, [])
    onnx_type = f"tensor({_ORT_TYPE_NAMES.get(str(info.dtype), str(info.dtype))})" if info.dtype else "unknown"
    return NodeArg(info.name, onnx_type, list(info.shape) if info.shape is not None else [])


_ORT_TYPE_NAMES = {"float32": "float", "float64": "double"}


@dataclass
class _Step:
    partition: Partition
    device: Device
    executable: Any
    inputs: list[str]
    release_after: list[str]
    """Tensors no later step reads: dropped once this step ran, so device memory is reused."""
    shape_only: frozenset[str] = frozenset()
    """Inputs of a host step that only Shape/Size read: fed as their shape, the data stays put."""


def _lacks_erf(nodes: Sequence[NodeInfo], listed: Sequence[Device], answers: dict[str, list[Support]], host: Device) -> bool:
    """Whether a listed chip has no Erf for one of the model's Erf nodes."""
    return any(
        not answer and device is not host
        for node in nodes if node.op_type == "Erf" and node.domain == ""
        for device, answer in zip(listed, answers[node.name])
    )


def _keep_host_values_on_host(nodes: Sequence[NodeInfo], listed: Sequence[Device],
                              answers: dict[str, list[Support]], host: Device) -> None:
    """A node that reads or writes a sequence, optional or map value runs on the host: every
    other device's answer for it becomes a no (a strict session on a chip then names it)."""
    for node in nodes:
        reason = host_only_reason(node)
        if reason is None:
            continue
        options = answers[node.name]
        for i, device in enumerate(listed):
            if device is not host and options[i]:
                options[i] = Support.no(reason)


class InferenceSession:
    """Runs an ONNX model over several devices with fallback.

    model: a path, serialized bytes or an onnx.ModelProto.
    devices: names in priority order (like onnxruntime's providers); default HAL_DEVICE or cpu.
      Without strict, "cpu" is added last when missing, as onnxruntime always keeps its CPU
      provider, so that every node can run somewhere.
    placement: "priority" (first listed device that runs a node) or "cost" (minimise estimated
      end-to-end time over all listed devices, transfers included).
    strict: no fallback; load fails listing every node the first device cannot run and why.
    precision_mode / fc_precision: Ascend's CANN precision mode and Kunlun's FC compute type.
    failover: devices to move to when one fails while running (DeviceError, DeviceLostError,
      OutOfMemoryError): the work not yet done is placed again over these (the failed ones left
      out; cpu added last unless strict), as at construction, and run from the values the run still
      holds, with one FailoverWarning naming the fault. Later runs keep the new plan. Without it a
      device's error reaches the caller. A failover session checks each partition's work on its
      chip once queued (a synchronize), so that a fault is known where it happened.
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
        intra_op_threads: int | None = None,
        failover: Sequence[str | Device] | None = None,
    ):
        if placement not in PLACEMENTS:
            raise InvalidArgumentError(f"placement must be one of {PLACEMENTS}, got {placement!r}")
        if isinstance(devices, (str, Device)):
            devices = [devices]
        listed = [get_device(d) for d in (devices or [default_device()])]
        listed = list(dict.fromkeys(listed))  # keep order, drop repeats
        if not listed:
            raise InvalidArgumentError("devices must name at least one device")
        self.host = get_device("cpu")
        self.requested_devices = list(listed)
        if not strict and self.host not in listed:
            listed.append(self.host)
        self.devices = listed
        self.strict = strict
        self.failover = _failover_devices(failover)
        self.failed_devices: list[Device] = []
        """Devices this session stopped using after they failed, in the order they failed."""
        self._failover_lock = threading.Lock()  # threads sharing the session see one fault, re-plan once
        self.options = CompileOptions(precision_mode=precision_mode, fc_precision=fc_precision, intra_op_threads=intra_op_threads)

        self.model: LoadedModel = load_model(model)
        nodes = self.model.node_infos()
        folded = 0
        if any(d is not self.host for d in listed):  # fixed shapes as weights: no host step between a chip's layers
            self.model, folded = fold_until_stable(self.model)
            nodes = self.model.node_infos()

        def capability(nodes: list[NodeInfo]) -> dict[str, list[Support]]:
            return {n.name: [d.backend.supports(n, d.spec) for d in listed] for n in nodes}

        answers = capability(nodes)
        conversion = ""
        target = max((s.needs_opset for options in answers.values() for s in options if s.needs_opset), default=None)
        if target is not None:  # a device runs some op only from a newer opset: convert, as the model means the same
            current = self.model.opsets.get("")
            try:
                converted = load_model(upgrade_opset(self.model.proto, target))
            except HalError as exc:
                conversion = f"kept ai.onnx opset {current}: converting to {target} failed ({exc})"
            else:
                self.model, conversion = converted, f"converted from ai.onnx opset {current} to {target}"
                nodes = self.model.node_infos()
                answers = capability(nodes)
        fusions = f"{folded} shape computation node(s) into constants" if folded else ""
        if _lacks_erf(nodes, listed, answers, self.host):  # GELU as one kernel, on the chip that has no Erf
            fused, count = fuse_erf_gelu(self.model.proto)
            try:
                fused_model = load_generated(fused) if count else None
            except HalError:  # an optimisation only: the Erf then falls back as written
                fused_model = None
            if fused_model is not None:
                self.model = fused_model
                fusions = "; ".join(filter(None, [fusions, f"{count} erf-GELU pattern(s) into com.hal::FusedGelu"]))
                nodes = self.model.node_infos()
                answers = capability(nodes)
        self._placement, self._conversion, self._fusions = placement, conversion, fusions
        self._lay_out(nodes, listed, answers)

    def _lay_out(self, nodes: list[NodeInfo], listed: list[Device], answers: dict[str, list[Support]]) -> None:
        """Placement over `listed`, partitions, each compiled, and the plan: at construction, and
        again over the failover devices when one fails."""
        placement, strict = self._placement, self.strict
        self.devices = listed
        _keep_host_values_on_host(nodes, listed, answers, self.host)
        host_nodes = shape_only_nodes(nodes, self.model.initializers)
        graph_outputs = [o.name for o in self.model.outputs]
        if placement == "priority":
            placed = place_priority(nodes, listed, answers, host_nodes, self.host, strict=strict)
        else:
            placed = place_cost(nodes, listed, answers, host_nodes, self.host, self._node_seconds, strict=strict,
                                initializers=self.model.initializers, graph_outputs=graph_outputs)

        index = GraphIndex(self.model.proto)
        partitions = partition(nodes, placed.assignment, graph_outputs=graph_outputs, boundary=index.boundary)
        by_name = {d.name: d for d in (*listed, self.host)}
        if len(partitions) > 1:
            self.options = dataclasses.replace(self.options, intra_op_spinning=False)
        self._steps = self._compile(partitions, index, by_name)
        self.plan = self._make_plan(nodes, answers, placed, partitions, by_name, placement)
        self.plan.opset_conversion = self._conversion
        self.plan.fusions = self._fusions
        self._output_names = graph_outputs
        self._fast_session = self._single_host_session()
        # The fast path feeds the program directly, which refuses inputs no node reads (onnxruntime
        # drops them from its session); None when it reads them all.
        read = self._steps[0].executable.program.input_names if self._fast_session is not None else None
        self._fast_feeds = read if read is not None and len(read) != len(self.model.inputs) else None

    # -- building ------------------------------------------------------------------------------
    def _node_seconds(self, node: NodeInfo, device: Device) -> float:
        estimate = device.backend.cost(node, device.spec, self.options)
        if estimate is None:
            estimate = self.host.backend.cost(node, self.host.spec, self.options)
        return estimate or 0.0

    def _compile(self, partitions: list[Partition], index: GraphIndex, by_name: dict[str, Device]) -> list[_Step]:
        last_reader: dict[str, int] = {}
        for i, part in enumerate(partitions):
            for name in part.inputs:
                last_reader[name] = i
        outputs = {o.name for o in self.model.outputs}
        from_chips = {name for p in partitions if p.device != self.host.name for name in p.outputs}
        steps = []
        for i, part in enumerate(partitions):
            device = by_name[part.device]
            shape_only = self._shape_only_inputs(part, from_chips, device)
            model = index.extract(part.nodes, part.outputs, part.name, shape_only=shape_only)
            # the rewrite replaced Shape/Size nodes: the backend must see the nodes it compiles
            compiled_nodes = load_generated(model).node_infos() if shape_only else part.nodes
            executable = device.backend.compile(model, compiled_nodes, device, self.options)
            release = [n for n in part.inputs if last_reader.get(n) == i and n not in outputs]
            steps.append(_Step(part, device, executable, list(part.inputs), release, frozenset(shape_only)))
        return steps

    def _shape_only_inputs(self, part: Partition, from_chips: set[str], device: Device) -> list[str]:
        """Inputs of a host partition that come from a chip (`from_chips`: every chip partition's
        outputs) and that only Shape/Size read there."""
        if device is not self.host:
            return []
        return [name for name in metadata_only_inputs(part.nodes, part.inputs) if name in from_chips]

    def _make_plan(self, nodes, answers, placed, partitions, by_name, placement) -> Plan:
        estimates: dict[str, float] = {}
        node_plans = []
        dynamic = False
        listed_names = [d.name for d in self.devices]
        for n in nodes:
            device = by_name[placed.assignment[n.name]]
            seconds = self._node_seconds(n, device)
            dynamic |= any(t is not None and t.static_shape is None for t in (*n.inputs, *n.outputs))
            estimates[device.name] = estimates.get(device.name, 0.0) + seconds
            where = listed_names.index(device.name) if device.name in listed_names else None
            slow = where is not None and answers[n.name][where].slow
            reason, source = _placement_reason(n, device.name, where, answers[n.name], placed.reasons.get(n.name, ""), placement)
            node_plans.append(NodePlan(n.name, n.qualified_op, device.name, reason, seconds, slow, source))
        producer_device = {t.name: placed.assignment[n.name] for n in nodes for t in n.outputs}
        infos = self.model.tensors
        transfers = []
        shape_only = {step.partition.name: step.shape_only for step in self._steps}
        crossed: set[tuple[str, str]] = set()  # the run copies a tensor to each device once
        for part in partitions:
            for name in part.inputs:
                source = producer_device.get(name, "host")
                if source == part.device or (source == "host" and by_name[part.device] is self.host):
                    continue
                if (name, part.device) in crossed or name in shape_only.get(part.name, ()):
                    continue
                crossed.add((name, part.device))
                nbytes = tensor_bytes(infos.get(name))
                src_device = by_name.get(source, self.host)
                seconds = transfer_seconds(src_device, by_name[part.device], nbytes)
                transfers.append(Transfer(name, source, part.device, nbytes, seconds))
        return Plan(
            devices=[d.name for d in self.devices],
            placement=placement,
            nodes=node_plans,
            partitions=[PartitionPlan(p.name, p.device, [n.name for n in p.nodes], p.inputs, p.outputs) for p in partitions],
            transfers=transfers,
            fallbacks=placed.fallbacks,
            dynamic_shapes=dynamic,
            estimated_by_device=estimates,
        )

    def _single_host_session(self):
        """onnxruntime's own session when the whole model is one CPU partition: run() then adds
        only input checks to onnxruntime's latency."""
        if len(self._steps) != 1 or self._steps[0].device is not self.host:
            return None
        if not set(self._output_names) <= set(self._steps[0].partition.outputs):
            return None  # some outputs are weights or inputs, which the partition does not produce
        program = getattr(self._steps[0].executable, "program", None)
        return program.single_session if program is not None else None

    # -- onnxruntime-compatible API ------------------------------------------------------------
    def get_inputs(self) -> list[NodeArg]:
        return [_node_arg(i) for i in self.model.inputs]

    def get_outputs(self) -> list[NodeArg]:
        return [_node_arg(o) for o in self.model.outputs]

    def get_providers(self) -> list[str]:
        """The devices this session may run nodes on, in priority order."""
        return [d.name for d in self.devices]

    def run(self, output_names: Sequence[str] | None, input_feed: Mapping[str, Any], run_options: Any = None) -> list[np.ndarray]:
        """Same signature and return type as onnxruntime.InferenceSession.run."""
        names = self.check_output_names(output_names)
        feeds = validate_feeds(self.model, input_feed)
        if self._fast_session is not None:
            if self._fast_feeds is not None:
                feeds = {name: feeds[name] for name in self._fast_feeds}
            recording = profiler.active()
            if recording is None:
                return self._fast_session.run(names, feeds)
            with recording.span(self._steps[0].partition.name, self.host.name, "compute"):
                # the program, not its one onnxruntime session: it records each node's slice
                results = self._steps[0].executable.program.run(feeds)
            return [results[name] for name in names]
        results = self._execute({name: as_value(value) for name, value in feeds.items()}, names, to_host=True)
        return [results[n] for n in names]

    def run_with_tensors(self, feeds: Mapping[str, DeviceTensor], output_names: Sequence[str] | None = None) -> dict[str, DeviceTensor]:
        """Device-resident inputs and outputs: each input stays on its device until a partition
        on another device needs it; outputs stay where they were computed."""
        names = self.check_output_names(output_names)
        checked: dict[str, DeviceTensor] = {}
        bindings: dict[str, int] = {}
        expected = {i.name: i for i in self.model.inputs}
        for name, value in feeds.items():
            if name not in expected:
                raise InvalidInputError(f"'{name}' is not an input of this model; inputs are {', '.join(expected)}")
            if not expected[name].is_tensor:
                if not isinstance(value, HostValue):
                    raise InvalidInputError(f"input '{name}' is {expected[name].kind}: pass hal.graph.values.HostValue(value) here, or use run()")
                checked[name] = value
                continue
            if not isinstance(value, DeviceTensor):
                raise InvalidInputError(f"input '{name}': run_with_tensors takes hal.DeviceTensor values (hal.tensor(x, device=...)); use run() for numpy")
            check_feed(expected[name], value.shape, value.dtype, bindings=bindings)
            checked[name] = value
        missing = [n for n in expected if n not in checked]
        if missing:
            raise InvalidInputError(f"missing input(s): {', '.join(missing)}")
        return self._execute(checked, names)

    def check_output_names(self, output_names: Sequence[str] | None) -> list[str]:
        """The outputs a run with these output_names returns (None: all of them, in the model's
        order); an InvalidArgumentError naming any the model does not have."""
        if output_names is None:
            return list(self._output_names)
        unknown = [n for n in output_names if n not in self._output_names]
        if unknown:
            raise InvalidArgumentError(f"unknown output(s) {unknown}; the model's outputs are {self._output_names}")
        return list(output_names)

    def _execute(self, feeds: dict[str, DeviceTensor], wanted: list[str], *, to_host: bool = False) -> dict[str, Any]:
        """The wanted values, as DeviceTensors where they were computed, or (to_host) as host arrays."""
        # where[name] -> {device: tensor}: a tensor crosses to each device at most once
        where: dict[str, dict[Device, DeviceTensor]] = {name: {t.device: t} for name, t in feeds.items()}
        if not self.failover:
            try:
                self._run_steps(where, resumed=False, guarded=False)
                results = self._results(where, wanted)
                return {name: self._host_array(t) for name, t in results.items()} if to_host else results
            except _DEVICE_FAULTS:
                self._drain_streams()
                raise
        resumed = False
        failovers_left = len(self.failover) + len(self.devices)  # each device fails at most once
        while True:
            try:
                self._run_steps(where, resumed=resumed, guarded=True)
                results = self._results(where, wanted)
                if not to_host:
                    return results
                # the copy to the host is work on the device too, and may be what fails
                return {name: _guarded(t.device, self._host_array, t) for name, t in results.items()}
            except _DeviceFault as fault:
                if failovers_left == 0:
                    raise fault.error from None
                failovers_left -= 1
                where = self._fail_over(fault, where, feeds)
                resumed = True

    def _run_steps(self, where: dict[str, dict[Device, DeviceTensor]], *, resumed: bool, guarded: bool) -> None:
        """Runs the plan's steps, updating `where`. resumed: after a failover, steps whose outputs
        the interrupted run already holds are not run again. guarded: every fault is raised as a
        _DeviceFault naming its device, each device's work checked (synchronized) once it is queued."""
        host = self.host
        for step in self._steps:
            if resumed and all(name in where for name in step.partition.outputs):
                continue
            device = step.device
            inputs = {}
            for name in step.inputs:
                copies = where[name]
                if name in step.shape_only:
                    shape = next(iter(copies.values())).shape
                    inputs[name + SHAPE_SUFFIX] = as_tensor(np.array(shape, dtype=np.int64))
                    continue
                found = copies.get(device)
                if found is None:
                    source = next(iter(copies.values()))
                    if not guarded:
                        found = source.to(device)
                    else:
                        found = _guarded(device, source.to, device)
                        if source.device is not host:  # its copy out is queued there: a fault there is its own
                            _guarded(source.device, source.device.default_stream.synchronize)
                    copies[device] = found
                inputs[name] = found
            if not guarded:
                outputs = self._run_step(step, inputs)
            else:
                outputs = _guarded(device, self._run_step, step, inputs)
                if device is not host:
                    _guarded(device, device.default_stream.synchronize)
            for name, tensor in outputs.items():
                where[name] = {tensor.device: tensor}
            for name in step.release_after:
                where.pop(name, None)

    def _drain_streams(self) -> None:
        """After a device fault ended a run: the errors this run's other work left on its devices'
        streams are part of the failure just raised; left there, they would fail whatever next
        synchronizes those streams (another session's run) in its place."""
        for device in {step.device for step in self._steps if step.device is not self.host}:
            try:
                device.default_stream.synchronize()
            except _DEVICE_FAULTS:
                pass

    def _run_step(self, step: _Step, inputs: dict[str, DeviceTensor]) -> dict[str, DeviceTensor]:
        device = step.device
        recording = profiler.active() if device is self.host else None
        if recording is None:
            return step.executable.run(inputs, device.default_stream)
        with recording.span(step.partition.name, device.name, "compute"):  # host partitions run on this thread
            return step.executable.run(inputs, device.default_stream)

    def _results(self, where: dict[str, dict[Device, DeviceTensor]], wanted: list[str]) -> dict[str, DeviceTensor]:
        return {name: next(iter(where[name].values())) if name in where else self._constant_output(name) for name in wanted}

    def _host_array(self, tensor: DeviceTensor) -> np.ndarray:
        # host results are the arrays onnxruntime returned: hand them over without a copy
        return tensor.host_view() if tensor.device is self.host else tensor.numpy()

    def _fail_over(self, fault: _DeviceFault, where: dict[str, dict[Device, DeviceTensor]],
                   feeds: dict[str, DeviceTensor]) -> dict[str, dict[Device, DeviceTensor]]:
        """Places the model again over the failover devices not failed yet, and returns the values
        the interrupted run holds elsewhere than on the failed device; re-raises the fault when no
        device is left, an input was on the lost device, or the host failed (hal itself needs it)."""
        failed = fault.device
        if failed is self.host:
            raise fault.error
        # What the failed device held is dropped (its memory freed): a lost device cannot be read,
        # and a failed kernel's outputs were never written.
        kept: dict[str, dict[Device, DeviceTensor]] = {}
        for name, copies in where.items():
            copies.pop(failed, None)
            if copies:
                kept[name] = copies
        for name, tensor in feeds.items():  # an input released after its last reader: the new plan may read it again
            if name not in kept and not (tensor.device is failed and failed.lost):
                kept[name] = {tensor.device: tensor}
        if any(name not in kept for name in feeds):
            raise fault.error
        with self._failover_lock:
            replanned = failed in self.failed_devices  # by another thread that ran into the same fault
            if not replanned:
                self.failed_devices.append(failed)
            remaining = [d for d in self.failover if d not in self.failed_devices]
            if not self.strict and self.host not in remaining:
                remaining.append(self.host)
            if not replanned:
                self._replan(fault, remaining)
            elif any(step.device is failed for step in self._steps):  # the other thread's re-plan failed
                raise fault.error
        return kept

    def _replan(self, fault: _DeviceFault, remaining: list[Device]) -> None:
        """The session placed and compiled again over `remaining`, and the one FailoverWarning."""
        failed = fault.device
        if not remaining:
            raise fault.error
        nodes = self.model.node_infos()
        answers = {n.name: [d.backend.supports(n, d.spec) for d in remaining] for n in nodes}
        before = ", ".join(d.name for d in self.devices)
        try:
            self._lay_out(nodes, remaining, answers)
        except HalError as exc:  # e.g. a strict session whose failover devices cannot run a node
            raise exc from fault.error
        warnings.warn(
            f"{failed.name} failed while this session ran ({type(fault.error).__name__}: {fault.error}); "
            f"its work moved from [{before}] to [{', '.join(d.name for d in remaining)}], and the run went on "
            f"from the values it held. Later runs keep this plan: make a new session once {failed.name} is "
            "reset to use it again",
            FailoverWarning,
            stacklevel=5,
        )

    def _constant_output(self, name: str) -> DeviceTensor:
        """A graph output that is a weight, not computed by any node."""
        from onnx import numpy_helper

        found = next(t for t in self.model.proto.graph.initializer if t.name == name)
        return as_tensor(numpy_helper.to_array(found))


def _guarded(device: Device, fn: Any, *args: Any) -> Any:
    """fn(*args), a device fault raised as a _DeviceFault that names `device`."""
    try:
        return fn(*args)
    except _DEVICE_FAULTS as exc:
        raise _DeviceFault(device, exc) from exc


def _failover_devices(failover: Sequence[str | Device] | None) -> list[Device]:
    if failover is None:
        return []
    if isinstance(failover, (str, Device)):
        failover = [failover]
    found = []
    for name in failover:
        try:
            found.append(get_device(name))
        except (DeviceNotFoundError, BackendError, InvalidArgumentError) as exc:
            raise InvalidArgumentError(f"failover names {name!r}, which is not a device here: {exc}") from None
    return list(dict.fromkeys(found))


def _placement_reason(node, device: str, where: int | None, answers, given: str, placement: str) -> tuple[str, str]:
    """(reason, source) of a node's place in the plan. The placer explains a node that left the
    first listed device (given); a node on it gets which rule put it there, and either way the
    source of the deciding backend answer (the first device's no, or the chosen device's yes)."""
    if where is None:  # the host, for shape work
        return given, ""
    first, chosen = answers[0], answers[where]
    source = first.source if where != 0 else chosen.source
    if given:
        return given, source
    rule = (f"first listed device that supports {node.qualified_op} at opset {node.opset}" if placement == "priority"
            else f"cost: the cheapest listed device for {node.qualified_op}, copies included")
    return rule + (f"; {chosen.note}" if chosen.note else ""), source
