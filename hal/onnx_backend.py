"""onnx.backend.base.Backend over hal, so onnx's backend test suite runs on any hal device:

    backend = hal.onnx_backend.for_device("ascend:0", fallback=True)
    onnx.backend.test.BackendTest(backend, __name__)

onnx's test runner asks for devices "CPU" and "CUDA"; the class answers for the hal device it is
bound to under the name "CPU" (the runner's default), and declines "CUDA".
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import onnx
from onnx.backend.base import Backend, BackendRep, namedtupledict

from .errors import InvalidArgumentError
from .graph.session import InferenceSession
from .registry import device as get_device

__all__ = ["HalBackend", "HalBackendRep", "for_device"]


class HalBackendRep(BackendRep):
    """A prepared model: an InferenceSession."""

    def __init__(self, session: InferenceSession):
        self.session = session
        self._inputs = [i.name for i in session.get_inputs()]
        self._outputs = [o.name for o in session.get_outputs()]

    def run(self, inputs: Any, **kwargs: Any) -> tuple[Any, ...]:
        if isinstance(inputs, dict):
            feeds = dict(inputs)
        else:
            values = [inputs] if isinstance(inputs, np.ndarray) else list(inputs)
            feeds = dict(zip(self._inputs, values))
        outputs = self.session.run(None, feeds)
        return namedtupledict("Outputs", self._outputs)(*outputs)


class HalBackend(Backend):
    """Runs models on `device_name`; with `fallback`, nodes it lacks run on the CPU."""

    device_name: ClassVar[str] = "cpu:0"
    fallback: ClassVar[bool] = True

    @classmethod
    def _session(cls, model: onnx.ModelProto) -> InferenceSession:
        devices = [cls.device_name] + (["cpu:0"] if cls.fallback else [])
        return InferenceSession(model, devices=devices, strict=not cls.fallback)

    @classmethod
    def is_compatible(cls, model: onnx.ModelProto, device: str = "CPU", **kwargs: Any) -> bool:
        return cls.supports_device(device)

    @classmethod
    def prepare(cls, model: onnx.ModelProto, device: str = "CPU", **kwargs: Any) -> HalBackendRep:
        return HalBackendRep(cls._session(model))

    @classmethod
    def run_model(cls, model: onnx.ModelProto, inputs: Any, device: str = "CPU", **kwargs: Any) -> tuple[Any, ...]:
        return cls.prepare(model, device, **kwargs).run(inputs)

    @classmethod
    def run_node(cls, node: onnx.NodeProto, inputs: Any, device: str = "CPU",
                 outputs_info: Sequence[tuple[np.dtype, tuple[int, ...]]] | None = None, **kwargs: Any) -> tuple[Any, ...]:
        """Runs one node by wrapping it in a model whose inputs match `inputs`."""
        values = list(inputs.values()) if isinstance(inputs, dict) else list(inputs)
        names = [n for n in node.input if n]
        graph_inputs = [
            onnx.helper.make_tensor_value_info(name, onnx.helper.np_dtype_to_tensor_dtype(np.asarray(v).dtype), np.asarray(v).shape)
            for name, v in zip(names, values)
        ]
        graph_outputs = [onnx.helper.make_empty_tensor_value_info(name) for name in node.output if name]
        opset = kwargs.get("opset_version", onnx.defs.onnx_opset_version())
        model = onnx.helper.make_model(
            onnx.helper.make_graph([node], "run_node", graph_inputs, graph_outputs),
            opset_imports=[onnx.helper.make_opsetid(node.domain or "", opset)],
        )
        return cls.run_model(model, dict(zip(names, values)), device)

    @classmethod
    def supports_device(cls, device: str) -> bool:
        return device.upper() == "CPU"


def for_device(device: str, fallback: bool = True) -> type[HalBackend]:
    """A Backend class bound to one hal device ("ascend:0")."""
    if not isinstance(fallback, bool):
        raise InvalidArgumentError(f"fallback must be True or False, got {fallback!r}")
    name = get_device(device).name
    return type(f"HalBackend_{name.replace(':', '_')}", (HalBackend,), {"device_name": name, "fallback": fallback})
