"""Runs an ONNX partition with torch operations on any torch device (CPU, CUDA, Ascend NPU).

Why a converter of our own rather than onnx2torch: onnx2torch (the PyPI package) builds an
nn.Module per node, has had no release since August 2024 (forks exist only to run on newer
Pythons), and cannot answer hal's capability question per (op, opset, dtype). hal needs exactly
that answer, so that placement falls back node by node where this executor has no kernel; here
capability is the op table (hal.torch.ops, one module per op family), and nothing else runs.

Compilation turns the graph into a flat list of closures over slot indices, with every input that
is known at compile time (initializers, Constant nodes, anything computed only from them) folded
and turned into Python values where an op reads it as a shape; a run is one loop under
torch.inference_mode().
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..backend import Executable
from ..dtypes import dtype as dtype_of
from ..errors import UnsupportedOpError
from ..capability import NodeInfo, Support
from ..tensor import DeviceTensor
from ._require import require_torch
from .ops import OPS, Context
from .tensors import numpy_to_torch, torch_view

if TYPE_CHECKING:
    from ..device import Device, Stream

__all__ = ["torch_supports", "TorchProgram", "TorchExecutable", "SUPPORTED_OPS"]

SUPPORTED_OPS = tuple(sorted(OPS))
"""Every ONNX op (default domain) the torch executor implements."""


def torch_supports(node: NodeInfo) -> Support:
    """Whether this executor runs the node: its op is in the table, at this opset, with these
    dtypes and attributes."""
    if node.domain not in ("", "ai.onnx"):
        return Support.no(f"the torch executor runs only default-domain ONNX ops, not {node.qualified_op}")
    op = OPS.get(node.op_type)
    if op is None:
        return Support.no(f"the torch executor has no {node.op_type}")
    if node.opset < op.min_opset:
        return Support.no(f"the torch executor implements {node.op_type} from opset {op.min_opset}; the model uses {node.opset}")
    unknown = [t.name for t in (*node.inputs, *node.outputs) if t is not None and t.name and t.dtype is None]
    if unknown:
        return Support.no(f"the torch executor runs only dtypes hal knows; {', '.join(unknown)} has another (float8, int4, string...)")
    tensors = [t for i, t in enumerate(node.inputs) if op.data_inputs is None or i in op.data_inputs]
    if op.typed_outputs:
        tensors += list(node.outputs)
    for t in tensors:
        if t is not None and t.dtype is not None and t.dtype not in op.dtypes:
            allowed = ", ".join(sorted(str(d) for d in op.dtypes))
            return Support.no(f"the torch executor's {node.op_type} takes {allowed}, not {t.dtype}")
    if op.check is not None:
        reason = op.check(node)
        if reason:
            return Support.no(f"the torch executor's {node.op_type}: {reason}")
    return Support.yes()


# -- the program ------------------------------------------------------------------------------

class TorchProgram:
    """A standalone ONNX model compiled to torch calls on one torch device."""

    def __init__(self, model: Any, device: Any):
        from onnx import numpy_helper

        self.torch = torch = require_torch("the torch executor")
        self.device = torch.device(device)
        graph = model.graph
        opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)
        self.input_names = [i.name for i in graph.input]
        self.output_names = [o.name for o in graph.output]
        slots: dict[str, int] = {"": -1}

        def slot(name: str) -> int:
            if name not in slots:
                slots[name] = len(slots) - 1
            return slots[name]

        constants: dict[int, Any] = {}
        for init in graph.initializer:
            constants[slot(init.name)] = numpy_to_torch(torch, numpy_helper.to_array(init), self.device)
        self._input_slots = [slot(n) for n in self.input_names]
        steps: list[tuple[Callable, tuple[int, ...], tuple[int, ...]]] = []
        with torch.inference_mode():
            for node in graph.node:
                op = OPS.get(node.op_type)
                if op is None:
                    raise UnsupportedOpError(f"the torch executor has no {node.op_type} (node '{node.name}')")
                attrs = _attributes(node)
                ins = tuple(slot(n) for n in node.input)
                outs = tuple(slot(n) for n in node.output if n)
                known = [constants.get(i) if i >= 0 else None for i in ins]
                ctx = Context(torch, self.device, opset, known)
                fn = op.build(ctx, attrs, len(outs))
                if all(i < 0 or i in constants for i in ins) and node.op_type not in ("RandomNormal", "RandomUniform"):
                    value = fn(*[constants.get(i) for i in ins])  # folded at compile time
                    for o, v in zip(outs, value if len(outs) > 1 else (value,)):
                        constants[o] = v
                    continue
                steps.append((fn, ins, outs))
        self._output_slots = [slot(n) for n in self.output_names]
        self._env_size = len(slots)
        self._constants = constants
        # drop each intermediate after its last reader, so device memory is reused during a run
        last_use: dict[int, int] = {}
        for k, (_, ins, _) in enumerate(steps):
            for i in ins:
                last_use[i] = k
        keep = set(self._output_slots) | set(constants)
        release: list[tuple[int, ...]] = [() for _ in steps]
        for s, k in last_use.items():
            if s >= 0 and s not in keep:
                release[k] = release[k] + (s,)
        self._steps = [(fn, ins, outs, rel) for (fn, ins, outs), rel in zip(steps, release)]
        template: list[Any] = [None] * (self._env_size + 1)  # slot -1 ("" optional input) is the last
        for s, v in constants.items():
            template[s] = v
        self._template = template

    def run(self, inputs: Sequence[Any]) -> list[Any]:
        """Inputs in input_names order (torch tensors on the device); outputs in output_names order."""
        env = self._template.copy()
        for s, t in zip(self._input_slots, inputs):
            env[s] = t
        with self.torch.inference_mode():
            for fn, ins, outs, release in self._steps:
                value = fn(*[env[i] for i in ins])
                if len(outs) == 1:
                    env[outs[0]] = value
                else:
                    for o, v in zip(outs, value):
                        env[o] = v
                for s in release:
                    env[s] = None
        return [env[s] for s in self._output_slots]


def _attributes(node: Any) -> dict[str, Any]:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


class TorchExecutable(Executable):
    """A partition on a torch device: issued from the calling thread to the stream's torch stream,
    after whatever the stream's worker still had to issue, so the device sees one order."""

    def __init__(self, model: Any, device: Device):
        self.device = device
        self.driver = device.driver
        self.program = TorchProgram(model, self.driver.torch_device)
        self.input_names = self.program.input_names
        self.output_names = self.program.output_names
        self._constant_storage = {
            t.untyped_storage().data_ptr() for t in self.program._constants.values() if t is not None
        }

    def run(self, inputs: Mapping[str, DeviceTensor], stream: Stream) -> dict[str, DeviceTensor]:
        driver, stream_driver = self.driver, stream.driver
        stream_driver.drain()
        tensors = [torch_view(inputs[name], driver) for name in self.input_names]
        protected = self._constant_storage | {t.untyped_storage().data_ptr() for t in tensors}
        torch_stream = stream_driver.torch_stream
        if torch_stream is None:
            outputs = self.program.run(tensors)
        else:
            with driver.module.stream(torch_stream):
                outputs = self.program.run(tensors)
                for t in tensors:
                    stream_driver.uses(t)
        results = {}
        for name, out in zip(self.output_names, outputs):
            if not out.is_contiguous():
                out = out.contiguous()
            elif out.untyped_storage().data_ptr() in protected:
                out = out.clone()  # an output is a new tensor, never a view of an input or weight
            results[name] = DeviceTensor(driver.adopt(out), tuple(out.shape), dtype_of(out.dtype), self.device)
        return results
