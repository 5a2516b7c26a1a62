"""SimulatedBackend: a chip described by spec files, run on this host with the chip's memory
rules, dtypes and speed. hal_ascend and hal_kunlun are subclasses that name their chips/ folder."""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, NamedTuple

import numpy as np

from .. import profiler
from ..backend import Backend, Executable
from ..streams import ArenaDeviceDriver
from ..device import DeviceSpec
from ..dtypes import DType
from ..errors import BackendError
from ..capability import CompileOptions, NodeInfo, Support
from ..memory import ArenaAllocator, Buffer
from .cost import ChipCost
from .faults import FaultInjector, faults_from_env
from .spec import ChipSpec, find_chip_spec, list_chip_specs

if TYPE_CHECKING:
    import onnx

    from ..device import Device, Stream
    from ..tensor import DeviceTensor
    from .collectives import SimulatedPeerGroup

__all__ = ["SimulatedBackend", "SimulatedDeviceDriver", "sim_device_config", "DEFAULT_SIM_DEVICE_COUNT"]

DEFAULT_SIM_DEVICE_COUNT = 2


def sim_device_config(kind: str, default_model: str) -> tuple[int, str]:
    """How many simulated `kind` devices to show and of which model, from HAL_SIM_DEVICES.

    HAL_SIM_DEVICES="ascend=4,kunlun=1:R200": four Ascend devices of the default model and one
    Kunlun R200; a model may also be a path to a spec file. Kinds not named keep the default (2).
    """
    raw = os.environ.get("HAL_SIM_DEVICES", "").strip()
    count, model = DEFAULT_SIM_DEVICE_COUNT, default_model
    for entry in filter(None, (part.strip() for part in raw.split(","))):
        name, sep, value = entry.partition("=")
        if not sep:
            raise BackendError(f"HAL_SIM_DEVICES entry '{entry}' must look like '{kind}=2' or '{kind}=2:MODEL'")
        if name.strip() != kind:
            continue
        number, _, chosen = value.partition(":")
        if not number.strip().isdigit():
            raise BackendError(f"HAL_SIM_DEVICES entry '{entry}': the count must be a whole number >= 0")
        count = int(number)
        model = chosen.strip() or default_model
    return count, model


class SimulatedDeviceDriver(ArenaDeviceDriver):
    """One simulated card: an arena with the chip's allocation rule and capacity, streams on a
    simulated clock, and a fault injector."""

    def __init__(self, spec: DeviceSpec, chip: ChipSpec):
        self.chip = chip
        self.faults = FaultInjector(spec.device_name)
        for kind, after_ops in faults_from_env(spec.device_name):
            self.faults.inject(kind, after_ops)
        allocator = ArenaAllocator(spec.device_name, spec.memory_bytes, chip.allocation)
        super().__init__(spec, allocator, copy_cost=ChipCost(chip), before_op=self.faults.before_op)

    def allocate(self, nbytes: int) -> Buffer:
        self.faults.before_allocate(nbytes)
        return super().allocate(nbytes)

    def reset(self) -> None:
        """A device reset: faults disarmed, a lost card answering again."""
        self.faults.clear()

    def device_lost(self) -> bool:
        return self.faults.lost

    # The emulator runs on the host: it reads and writes device memory directly, outside the
    # simulated timeline (the chip's own kernels would not cross the host link).
    def read_for_emulation(self, tensor: DeviceTensor) -> np.ndarray:
        out = np.empty(tensor.shape, tensor.dtype.numpy)
        if out.nbytes:
            self.allocator.arena.copy_to_host(tensor.buffer.address, tensor.offset, out.reshape(-1).view(np.uint8))
        return out

    def emulation_view(self, tensor: DeviceTensor) -> np.ndarray:
        """The tensor's device memory as a writable numpy array, without a copy, for kernels the
        simulator runs in place (hal.llm's decoder reads its weights and KV cache so, as the chip's
        cores would read HBM). Not host access for users: they copy. The caller orders it against
        the device's streams (synchronize first when work on them may touch the tensor)."""
        raw = np.frombuffer(self.allocator.arena.emulation_buffer(tensor.buffer.address), np.uint8)
        return raw[tensor.offset : tensor.offset + tensor.nbytes].view(tensor.dtype.numpy).reshape(tensor.shape)

    def write_for_emulation(self, buffer: Buffer, array: np.ndarray) -> None:
        if array.nbytes:
            self.allocator.arena.copy_from_host(buffer.address, 0, np.ascontiguousarray(array).reshape(-1).view(np.uint8))


class SimulatedBackend(Backend):
    """Base of a simulated chip family. Subclasses set name, chips_dir, op_table_path and
    default_model."""

    chips_dir: ClassVar[Path]
    op_table_path: ClassVar[Path]
    default_model: ClassVar[str]

    def __init__(self) -> None:
        count, model = sim_device_config(self.name, self.default_model)
        self.chip = find_chip_spec(self.chips_dir, model)
        if self.chip.kind != self.name:
            raise BackendError(f"chip spec {self.chip.path} describes a '{self.chip.kind}' chip, not '{self.name}'")
        self._specs = [self.chip.device_spec(i) for i in range(count)]

    def devices(self) -> list[DeviceSpec]:
        return list(self._specs)

    def open_device(self, index: int) -> SimulatedDeviceDriver:
        return SimulatedDeviceDriver(self._specs[index], self.chip)

    def peer_group(self, devices: Sequence[Device]) -> SimulatedPeerGroup | None:
        """The cards over the spec's [peer_link] (hal.sim.collectives); None without one."""
        from .collectives import sim_peer_group

        return sim_peer_group(self.chip, devices)

    def chip_models(self) -> list[ChipSpec]:
        """Every chip model this backend ships a spec for."""
        return list_chip_specs(self.chips_dir)

    # -- ONNX graphs ---------------------------------------------------------------------------
    def op_table(self):
        from .optable import load_op_table

        return load_op_table(self.op_table_path)

    def supports(self, node: NodeInfo, device: DeviceSpec) -> Support:
        return self.chip_supports(node, self.chip)

    def chip_supports(self, node: NodeInfo, chip: ChipSpec) -> Support:
        """Whether one of this family's chip models runs the node: hal's registered kernels
        (hal.ops) first, then the family's op table for that model (`hal fit` asks it of every
        model shipped, not only the one whose devices are listed)."""
        from ..graph.host import kernel_supports

        kernel = kernel_supports(node, self.name)
        if kernel is None:
            return self.op_table().supports(node, chip)
        lacking = sorted(str(d) for d in node.dtypes if d not in chip.dtypes)
        if kernel and lacking:
            return Support.no(f"{chip.name} has no {', '.join(lacking)} (the {node.qualified_op} kernel would need it)")
        return kernel

    def cost(self, node: NodeInfo, device: DeviceSpec, options: CompileOptions) -> float:
        from .cost import node_cost
        from .numerics import compute_dtype_of

        return node_cost(node, self.chip, compute_dtype_of(node, self.chip, options)).seconds

    def compile(self, model: onnx.ModelProto, nodes: Sequence[NodeInfo], device: Device, options: CompileOptions) -> SimulatedExecutable:
        table = self.op_table()
        narrowed = {n.name for n in nodes if _touches_int64(n) and table.narrows_int64(table.supports(n, self.chip))}
        return SimulatedExecutable(model, nodes, self.chip, options, narrowed)

    def run_kernel(self, kernel, node: NodeInfo, inputs: Sequence[DeviceTensor], attrs: Mapping[str, object], device: Device) -> list[DeviceTensor]:
        """One hal.ops kernel call on a simulated card, as a partition runs: inputs staged to the
        host, the kernel run with the chip's rounding (hal.sim.numerics.kernel_precision), the
        results written back in stream order, the simulated clock advanced by the roofline cost."""
        from ..dtypes import DType
        from ..ops.dispatch import kernel_node
        from .cost import node_cost
        from .numerics import kernel_precision

        stream = device.default_stream
        stream.synchronize()  # the inputs are complete before the host reads them
        host = [device.driver.read_for_emulation(t) for t in inputs]
        specs = kernel.infer([(str(t.dtype), t.shape) for t in inputs], dict(attrs))
        values = None
        if specs is None:  # a Python kernel without infer=: its results say what it produces
            values = kernel.run(host, dict(attrs))
            specs = [(str(v.dtype), v.shape) for v in values]
        described = kernel_node(node.domain, node.op_type, inputs, attrs, specs)
        precision = kernel_precision(described, self.chip)
        if values is None or precision.plan.rewrites:
            values = kernel.run(precision.inputs(host), dict(attrs))
        values = precision.outputs([np.ascontiguousarray(v) for v in values], [DType(d) for d, _ in specs])
        seconds = node_cost(described, self.chip, precision.compute).seconds
        return submit_results(stream, f"{node.domain}::{node.op_type}", values, seconds)


class SimulatedExecutable(Executable):
    """A partition on a simulated chip: the chip's numerics as an ONNX rewrite run on the host
    (hal.graph.host), its duration from the roofline cost model on the device's simulated clock."""

    def __init__(self, model: onnx.ModelProto, nodes: Sequence[NodeInfo], chip: ChipSpec, options: CompileOptions, narrow_int64: set[str]):
        from ..graph.host import HostProgram
        from ..graph.model import load_generated
        from .numerics import emulate

        self.chip = chip
        self.name = model.graph.name
        self.input_names = [i.name for i in model.graph.input]
        self.output_names = [o.name for o in model.graph.output]
        self.emulated = emulate(model, chip, precision_mode=options.precision_mode,
                                fc_precision=options.fc_precision, narrow_int64=narrow_int64)
        emulated_model = load_generated(self.emulated.model)
        self.program = HostProgram(emulated_model.proto, emulated_model.node_infos(), threads=options.intra_op_threads,
                                   spinning=options.intra_op_spinning, kernel_backend=chip.kind)
        self.nodes = list(nodes)
        self._model = model
        self._cost_by_shapes: dict[tuple, PartitionCost] = {}
        self._static = all(_static(n) for n in self.nodes)
        self._static_cost: PartitionCost | None = None  # worked out at the first run, not at compile

    def _partition_cost(self, nodes: Sequence[NodeInfo]) -> PartitionCost:
        from .cost import node_cost

        dtypes = self.emulated.compute_dtypes
        costs = [(n, node_cost(n, self.chip, dtypes.get(n.name))) for n in nodes]
        parts = tuple(
            profiler.TracePart(n.label, c.seconds, {
                "op": n.qualified_op, "node": n.name, "compute": c.compute_dtype, "bound": c.bound,
                "flops": c.flops, "bytes": c.bytes,
                "inputs": [t.describe() for t in n.inputs if t is not None], "outputs": [t.describe() for t in n.outputs],
            })
            for n, c in costs
        )
        return PartitionCost(sum(c.seconds for _, c in costs), parts)

    def cost_for(self, shapes: tuple) -> PartitionCost:
        """Simulated duration, and its nodes' shares, for these input shapes (dynamic partitions
        re-infer shapes once per new input signature)."""
        if self._static:
            if self._static_cost is None:
                self._static_cost = self._partition_cost(self.nodes)
            return self._static_cost
        found = self._cost_by_shapes.get(shapes)
        if found is None:
            from ..graph.model import load_generated

            fixed = _with_input_shapes(self._model, dict(zip(self.input_names, shapes)))
            found = self._partition_cost(load_generated(fixed).node_infos())
            self._cost_by_shapes[shapes] = found
        return found

    def run(self, inputs: Mapping[str, DeviceTensor], stream: Stream) -> dict[str, DeviceTensor]:
        from .numerics import check_overflow

        device = stream.device
        driver = device.driver
        recorder = profiler.active()
        stream.synchronize()  # the inputs are complete before the emulator reads them
        host = {name: driver.read_for_emulation(inputs[name]) for name in self.input_names}
        if recorder is None:
            values = self.program.run(host)
        else:  # the emulation's wall time, on the device's "host" track; its nodes nest inside
            with recorder.span(f"{self.name} (emulation)", device.name, "host", chip=self.chip.name):
                values = self.program.run(host)
        check_overflow(self.emulated, values, f"{device.name} ({self.chip.name})")
        cost = self.cost_for(tuple(host[name].shape for name in self.input_names))
        parts = cost.parts if recorder is not None else ()
        results = submit_results(stream, self.name, [values[name] for name in self.output_names], cost.seconds, parts)
        return dict(zip(self.output_names, results))


class PartitionCost(NamedTuple):
    """A simulated partition's duration on the chip (seconds) and each node's share of it, in
    the order the nodes run (the profile's node slices)."""

    seconds: float
    parts: tuple[profiler.TracePart, ...]


def submit_results(stream: Stream, name: str, values: Sequence[np.ndarray], seconds: float,
                   parts: Sequence[profiler.TracePart] = ()) -> list[DeviceTensor]:
    """Device tensors for host-computed `values`, written in stream order by one op that takes
    `seconds` on the device's simulated clock (and shows as `name` in a profile, with `parts`,
    the nodes those seconds are made of, nested inside)."""
    from ..tensor import DeviceTensor

    device = stream.device
    driver = device.driver
    outputs = [DeviceTensor(driver.allocate(v.nbytes), v.shape, _hal_dtype(v), device) for v in values]
    writes = [(t.buffer, v) for t, v in zip(outputs, values)]

    def finish() -> None:
        for buffer, value in writes:
            driver.write_for_emulation(buffer, value)

    stream.driver.submit(name, finish, seconds, parts=parts)
    return outputs


def _touches_int64(node: NodeInfo) -> bool:
    return any(t is not None and t.dtype is DType.INT64 for t in (*node.inputs, *node.outputs))


def _static(node: NodeInfo) -> bool:
    return all(t is None or t.static_shape is not None for t in (*node.inputs, *node.outputs))


def _hal_dtype(array: np.ndarray):
    from ..dtypes import dtype

    return dtype(array.dtype)


def _with_input_shapes(model: onnx.ModelProto, shapes: dict[str, tuple[int, ...]]) -> onnx.ModelProto:
    """A copy of the model whose inputs have these concrete shapes and no stale inferred shapes."""
    import onnx

    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    del fixed.graph.value_info[:]
    for vi in fixed.graph.input:
        if vi.name in shapes:
            dims = vi.type.tensor_type.shape.dim
            del dims[:]
            for size in shapes[vi.name]:
                dims.add().dim_value = size
    for vi in fixed.graph.output:  # keep the rank, forget the sizes: inference fills them again
        for i, dim in enumerate(vi.type.tensor_type.shape.dim):
            dim.Clear()
            dim.dim_param = f"{vi.name}_d{i}"
    return fixed
