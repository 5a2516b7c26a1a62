"""NVIDIA GPUs as hal devices cuda:0..N-1, present wherever torch (a CUDA build) sees a GPU and
absent, quietly, everywhere else.

Memory, copies, streams and events are torch's device API (hal.backends_kit.TorchDeviceDriver): torch's
stream-ordered caching allocator, pinned staging buffers for asynchronous host copies, and CUDA
events for timing. ONNX partitions run on onnxruntime's CUDA provider with IOBinding (inputs and
outputs stay in device memory) where onnxruntime-gpu is installed; otherwise on hal's torch
executor, which runs each partition as torch operations on the GPU. Capability is that engine's:
onnxruntime's CUDA kernel registry, or the torch executor's op table.
"""
from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence

import numpy as np

import hal
from hal.backends_kit import (
    CompileOptions,
    DeviceSpec,
    Executable,
    NodeInfo,
    Support,
    TorchDeviceBackend,
    TorchExecutable,
    UnsupportedOpError,
    ort_provider_supports,
    torch_view,
)

__all__ = ["CudaBackend", "OrtCudaExecutable"]

_ORT_CUDA = "CUDAExecutionProvider"


@functools.lru_cache(maxsize=1)
def _ort_has_cuda() -> bool:
    """Whether the installed onnxruntime is a GPU build with the CUDA provider."""
    import onnxruntime as ort

    return _ORT_CUDA in ort.get_available_providers()


class CudaBackend(TorchDeviceBackend):
    name = "cuda"
    device_type = "cuda"

    def supports(self, node: NodeInfo, device: DeviceSpec) -> Support:
        if _ort_has_cuda():
            return ort_provider_supports(node, _ORT_CUDA)
        return super().supports(node, device)

    def compile(self, model, nodes: Sequence[NodeInfo], device: hal.Device, options: CompileOptions) -> Executable:
        if _ort_has_cuda():
            return OrtCudaExecutable(model, device)
        return TorchExecutable(model, device)


class OrtCudaExecutable(Executable):
    """A partition on onnxruntime's CUDA provider, inputs and outputs bound in device memory.

    Outputs are written straight into hal buffers once their shapes are known for an input
    signature (after the first run with those input shapes, which lets onnxruntime allocate)."""

    def __init__(self, model, device: hal.Device):
        import onnxruntime as ort

        self.device = device
        self.driver = device.driver
        self.torch = self.driver.torch
        try:
            self.session = ort.InferenceSession(
                model.SerializeToString(), providers=[(_ORT_CUDA, {"device_id": device.index})]
            )
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
            raise UnsupportedOpError(f"{device.name}: onnxruntime's CUDA provider cannot load this partition: {exc}") from None
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]
        self._output_shapes: dict[tuple, list[tuple[tuple[int, ...], hal.DType]]] = {}

    def run(self, inputs: Mapping[str, hal.DeviceTensor], stream: hal.Stream) -> dict[str, hal.DeviceTensor]:
        stream_driver = stream.driver
        stream_driver.drain()
        binding = self.session.io_binding()
        tensors = []
        for name in self.input_names:
            t = inputs[name]
            view = torch_view(t, self.driver)
            tensors.append(view)
            binding.bind_input(name, "cuda", self.device.index, t.dtype.numpy, list(t.shape), view.data_ptr())
        signature = tuple((tuple(t.shape), t.dtype) for t in (inputs[n] for n in self.input_names))
        known = self._output_shapes.get(signature)
        outputs: dict[str, hal.DeviceTensor] = {}
        if known is not None:
            for name, (shape, dtype) in zip(self.output_names, known):
                out = hal.empty(shape, dtype, device=self.device)
                binding.bind_output(name, "cuda", self.device.index, dtype.numpy, list(shape),
                                    torch_view(out, self.driver).data_ptr())
                outputs[name] = out
        else:
            for name in self.output_names:
                binding.bind_output(name, "cuda", self.device.index)
        # onnxruntime runs on its own CUDA stream: the inputs written on hal's stream must be done
        stream_driver.torch_stream.synchronize()
        self.session.run_with_iobinding(binding)  # returns once onnxruntime synchronized its stream
        if known is not None:
            return outputs
        shapes = []
        for name, value in zip(self.output_names, binding.get_outputs()):
            host = value.numpy()  # first run for these shapes only: onnxruntime allocated the output
            dtype = hal.dtype(host.dtype)
            out = hal.empty(host.shape, dtype, device=self.device)
            out.copy_(np.ascontiguousarray(host), stream=stream)
            outputs[name] = out
            shapes.append((tuple(host.shape), dtype))
        self._output_shapes[signature] = shapes
        return outputs
