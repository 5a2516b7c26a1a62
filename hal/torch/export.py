"""hal.from_torch: a torch module exported through torch.onnx, dispatched by an InferenceSession
that takes and returns torch tensors.

    sess = hal.from_torch(module, (x,), devices=["ascend:0", "cpu"])
    y = sess(x)                        # torch in, torch out
    sess.run(None, {"x": x.numpy()})   # onnxruntime's signature still works (numpy in, numpy out)

Export uses torch.onnx's dynamo exporter (torch.export) first, and the legacy TorchScript exporter
when that fails, with an ExportFallbackWarning saying why.
"""
from __future__ import annotations

import io
import logging
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..device import Device
from ..errors import HalError, InvalidInputError
from ..graph.session import InferenceSession
from ..tensor import DeviceTensor, as_tensor, from_dlpack
from ._require import require_torch

__all__ = ["from_torch", "export_onnx", "TorchSession", "ExportError", "ExportFallbackWarning"]

LEGACY_OPSET = 17  # what hal.testing's models use; every onnxruntime since 1.12 runs it


class ExportError(HalError):
    """Neither torch.onnx exporter could export the module; the message carries both reasons."""


class ExportFallbackWarning(UserWarning):
    """torch.onnx's dynamo exporter failed and the legacy TorchScript exporter was used."""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def export_onnx(module: Any, args: tuple, *, dynamic_shapes: Any = None) -> Any:
    """module(*args) as an onnx.ModelProto: the dynamo exporter, else the legacy one (warning)."""
    import onnx

    torch = require_torch("exporting a torch module to ONNX")
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # the dynamo exporter logs every skipped torchvision op
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # its own deprecation and training-mode chatter
            program = torch.onnx.export(module, args, dynamo=True, dynamic_shapes=dynamic_shapes,
                                        verbose=False, report=False)
        return program.model_proto
    except Exception as exc:  # the exporter raises many types; the reason goes into the warning
        dynamo_failure = _first_line(exc)
    finally:
        quiet.setLevel(level)
    warnings.warn(
        f"hal: torch.onnx's dynamo exporter failed ({dynamo_failure}); exported with the legacy "
        "TorchScript exporter instead, which records one trace (data-dependent Python control "
        "flow is frozen to the example inputs' path)",
        ExportFallbackWarning,
        stacklevel=3,
    )
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, args, buffer, dynamo=False, opset_version=LEGACY_OPSET,
                              dynamic_axes=_legacy_dynamic_axes(module, args, dynamic_shapes))
    except Exception as exc:
        raise ExportError(
            f"torch.onnx could not export {type(module).__name__}: dynamo exporter: {dynamo_failure}; "
            f"legacy exporter: {_first_line(exc)}. Simplify the module's forward (no data-dependent "
            "Python branches, tensor inputs only) or export it yourself and pass the .onnx to "
            "hal.InferenceSession"
        ) from exc
    return onnx.load_from_string(buffer.getvalue())


def _legacy_dynamic_axes(module: Any, args: tuple, dynamic_shapes: Any) -> dict[str, dict[int, str]] | None:
    """torch.export's dynamic_shapes ({dim: Dim} per input, by position or name) in the legacy
    exporter's dynamic_axes form, keyed by the names it gives inputs (the forward's parameters)."""
    if not dynamic_shapes:
        return None
    import inspect

    try:
        params = [p for p in inspect.signature(module.forward).parameters]
    except (TypeError, ValueError):
        params = []
    per_input = dynamic_shapes.values() if isinstance(dynamic_shapes, Mapping) else dynamic_shapes
    names = list(dynamic_shapes) if isinstance(dynamic_shapes, Mapping) else params[: len(args)]
    axes: dict[str, dict[int, str]] = {}
    for name, dims in zip(names, per_input):
        if isinstance(dims, Mapping):
            axes[name] = {int(d): getattr(dim, "__name__", f"{name}_{d}") for d, dim in dims.items()}
        elif isinstance(dims, (tuple, list)):
            axes[name] = {i: getattr(dim, "__name__", f"{name}_{i}") for i, dim in enumerate(dims) if dim is not None}
    return axes or None


def _is_torch_tensor(value: Any) -> bool:
    return type(value).__module__.startswith("torch") and hasattr(value, "__dlpack__") and hasattr(value, "is_cuda")


def host_array(torch_tensor: Any) -> np.ndarray:
    """A host torch tensor as a numpy array sharing its memory (bfloat16 included)."""
    t = torch_tensor.detach()
    if not t.is_contiguous():
        t = t.contiguous()
    if t.dtype is require_torch("torch inputs").bfloat16:
        return from_dlpack(t).host_view()  # numpy has no bfloat16; ml_dtypes' through DLPack
    return t.numpy()


def to_torch(value: np.ndarray | DeviceTensor) -> Any:
    """A numpy array or DeviceTensor as a torch tensor, without a copy where the memory is
    reachable (host arrays, CUDA and torch devices through DLPack)."""
    torch = require_torch("torch outputs")
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "biufc":
            return torch.from_numpy(value)
        return torch.from_dlpack(as_tensor(value))
    return torch.from_dlpack(value)


class TorchSession(InferenceSession):
    """An InferenceSession that also takes torch tensors: outputs come back as torch tensors when
    the inputs were torch tensors. Call it like the module: sess(x, mask)."""

    def run(self, output_names: Sequence[str] | None, input_feed: Mapping[str, Any], run_options: Any = None) -> list[Any]:
        if not any(_is_torch_tensor(v) for v in input_feed.values()):
            return super().run(output_names, input_feed, run_options)
        if all(not _is_torch_tensor(v) or v.device.type == "cpu" for v in input_feed.values()):
            feeds = {k: host_array(v) if _is_torch_tensor(v) else v for k, v in input_feed.items()}
            return [to_torch(o) for o in super().run(output_names, feeds, run_options)]
        # device-resident torch tensors (CUDA, NPU): shared with hal through DLPack, no copies
        tensors = {k: from_dlpack(v) if _is_torch_tensor(v) else as_tensor(np.asarray(v)) for k, v in input_feed.items()}
        outputs = self.run_with_tensors(tensors, output_names)
        return [to_torch(outputs[n]) for n in (output_names or [o.name for o in self.get_outputs()])]

    def __call__(self, *args: Any) -> Any:
        names = [i.name for i in self.get_inputs()]
        if len(args) != len(names):
            raise InvalidInputError(
                f"the exported model takes {len(names)} tensor input(s) ({', '.join(names)}), got {len(args)}; "
                "non-tensor arguments are fixed at export time"
            )
        outputs = self.run(None, dict(zip(names, args)))
        return outputs[0] if len(outputs) == 1 else tuple(outputs)


def from_torch(
    module: Any,
    example_inputs: Any,
    devices: Sequence[str | Device] | None = None,
    *,
    dynamic_shapes: Any = None,
    **session_options: Any,
) -> TorchSession:
    """Exports `module` with torch.onnx (dynamo exporter, else the legacy one with a warning) and
    returns a TorchSession over `devices` (InferenceSession's keywords apply: placement, strict...).

    example_inputs: a tensor or a tuple of the forward's positional arguments.
    dynamic_shapes: torch.export's form, e.g. {"x": {0: torch.export.Dim("batch")}}.
    """
    torch = require_torch("hal.from_torch")
    args = example_inputs if isinstance(example_inputs, tuple) else (example_inputs,)
    if isinstance(module, torch.nn.Module) and module.training:
        warnings.warn(
            f"hal.from_torch: {type(module).__name__} is in training mode; exporting it as it is "
            "(dropout and batch-norm statistics as in training). Call module.eval() first for inference",
            UserWarning,
            stacklevel=2,
        )
    with torch.no_grad():
        model = export_onnx(module, args, dynamic_shapes=dynamic_shapes)
    return TorchSession(model, devices, **session_options)
