"""The torch.compile backend "hal": each FX graph dynamo captures is exported to ONNX and run by an
InferenceSession over the devices named in options (default ["cpu"]).

    compiled = torch.compile(module, backend="hal", options={"devices": ["kunlun:0", "cpu"]})

Registered under "hal" by the `torch_dynamo_backends` entry point (works without importing hal)
and on `import hal.torch`. A graph hal cannot take (export failure, strict placement failure,
symbolic shapes) runs eagerly, with one HalFallbackWarning per reason. hal runs inference: a call
that needs gradients runs the graph eagerly too.
"""
from __future__ import annotations

import threading
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..errors import InvalidArgumentError
from ._require import require_torch

__all__ = ["hal_backend", "HalFallbackWarning", "SESSION_OPTIONS"]

SESSION_OPTIONS = ("devices", "placement", "strict", "precision_mode", "fc_precision", "intra_op_threads")
"""What options={...} may hold: InferenceSession's arguments."""


class HalFallbackWarning(UserWarning):
    """A graph (or a call) torch.compile(backend="hal") ran eagerly instead of through hal."""


_warned: set[str] = set()
_warned_lock = threading.Lock()


def _warn_once(reason: str) -> None:
    with _warned_lock:
        if reason in _warned:
            return
        _warned.add(reason)
    warnings.warn(f"torch.compile(backend='hal'): {reason}", HalFallbackWarning, stacklevel=3)


def hal_backend(gm: Any, example_inputs: Sequence[Any], options: Mapping[str, Any] | None = None) -> Callable[..., Any]:
    """torch.compile's backend contract: an FX GraphModule and example inputs in, a callable out."""
    options = dict(options or {})
    unknown = sorted(set(options) - set(SESSION_OPTIONS))
    if unknown:
        raise InvalidArgumentError(
            f"torch.compile(backend='hal') got unknown option(s) {unknown}; it takes {', '.join(SESSION_OPTIONS)}"
        )
    devices = options.pop("devices", None) or ["cpu"]
    try:
        return _compile(gm, list(example_inputs), devices, options)
    except Exception as exc:  # any failure: the graph still runs, eagerly, and the user is told why
        reason = " ".join(line.strip() for line in str(exc).strip().splitlines() if line.strip())
        if len(reason) > 600:
            reason = reason[:600] + "..."
        _warn_once(f"running a graph of {len(gm.graph.nodes)} nodes eagerly: {type(exc).__name__}: {reason}")
        return gm.forward


def _compile(gm: Any, example_inputs: list[Any], devices: Sequence[str], options: dict[str, Any]) -> Callable[..., Any]:
    from .export import TorchSession, export_onnx, host_array, to_torch

    torch = require_torch("torch.compile(backend='hal')")
    symbolic = [type(a).__name__ for a in example_inputs if not isinstance(a, torch.Tensor)]
    if symbolic:
        raise InvalidArgumentError(
            f"the graph takes non-tensor inputs ({', '.join(symbolic)}: symbolic sizes); compile with "
            "torch.compile(..., dynamic=False) so each shape gets its own graph"
        )
    output_node = next(n for n in gm.graph.nodes if n.op == "output")
    returned = output_node.args[0]
    as_sequence = isinstance(returned, (tuple, list))
    flat_outputs = list(returned) if as_sequence else [returned]
    if not all(isinstance(o, torch.fx.Node) for o in flat_outputs):
        raise InvalidArgumentError("the graph returns non-tensor values, which ONNX cannot express")
    with torch.no_grad():
        model = export_onnx(gm, tuple(example_inputs))
    if len(model.graph.input) != len(example_inputs) or len(model.graph.output) != len(flat_outputs):
        raise InvalidArgumentError(
            f"the exported ONNX graph has {len(model.graph.input)} inputs and {len(model.graph.output)} outputs, "
            f"the FX graph {len(example_inputs)} and {len(flat_outputs)} (inputs or outputs were merged or dropped)"
        )
    # Parameters and buffers arrive as graph inputs; fed on every call they would be re-read and
    # re-transposed each time. They become initializers instead (onnxruntime folds them), and a
    # call after one of them changed in place (tensor._version moved) rebuilds the session.
    weights = [i for i, a in enumerate(example_inputs) if isinstance(a, torch.nn.Parameter) or _is_buffer(gm, i)]
    names = [i.name for i in model.graph.input]
    fed = [i for i in range(len(example_inputs)) if i not in set(weights)]
    fed_names = [names[i] for i in fed]
    state: dict[str, Any] = {}

    def build(args: Sequence[Any]) -> None:
        values = {names[i]: host_array(args[i]) if args[i].device.type == "cpu" else args[i].detach().cpu().numpy() for i in weights}
        state["versions"] = [args[i]._version for i in weights]
        state["session"] = TorchSession(_with_initializers(model, values), list(devices), **options)

    build(example_inputs)
    pack = tuple if not as_sequence or isinstance(returned, tuple) else list
    on_host = all(a.device.type == "cpu" for a in example_inputs)

    def session_for(args: tuple) -> Any:
        if weights and any(args[i]._version != v for i, v in zip(weights, state["versions"])):
            build(args)  # weights changed in place since they were baked in
        return state["session"]

    def compiled(*args: Any) -> Any:
        if torch.is_grad_enabled() and any(a.requires_grad for a in args):
            _warn_once("a call needs gradients (hal runs inference only): running it eagerly; "
                       "wrap inference in torch.no_grad() or torch.inference_mode()")
            return gm.forward(*args)
        session = session_for(args)
        if on_host:
            outputs = session.run(None, {n: host_array(args[i]) for n, i in zip(fed_names, fed)})
            results = [to_torch(o) for o in outputs]
        else:  # device tensors shared through DLPack
            results = session.run(None, {n: args[i] for n, i in zip(fed_names, fed)})
        return pack(results) if as_sequence else results[0]
    return compiled


def _is_buffer(gm: Any, index: int) -> bool:
    """Whether placeholder `index` of a dynamo graph is a module buffer (running stats...)."""
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    # dynamo names lifted buffers after their path: l_self_modules_bn_buffers_running_mean_
    return index < len(placeholders) and "_buffers_" in placeholders[index].name


def _with_initializers(model: Any, values: dict[str, Any]) -> Any:
    """A copy of `model` in which the named graph inputs are initializers holding `values`."""
    from onnx import numpy_helper

    baked = type(model)()
    baked.CopyFrom(model)
    kept = [i for i in baked.graph.input if i.name not in values]
    del baked.graph.input[:]
    baked.graph.input.extend(kept)
    baked.graph.initializer.extend(numpy_helper.from_array(v, name=k) for k, v in values.items())
    return baked
