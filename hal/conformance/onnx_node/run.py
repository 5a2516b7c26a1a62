"""Running one node test case on a target: a hal device (with or without fallback), or one of
the two baselines measured in the same run, onnxruntime's CPU provider and onnx's reference
implementation. Outputs are compared by onnx's own backend-test comparison."""
from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...errors import UnsupportedOpError
from ..expectations import Expectations
from .cases import NodeCase

__all__ = ["BASELINES", "CaseResult", "Target", "run_case", "claimed"]

BASELINES = ("onnxruntime", "reference")
"""onnxruntime: a plain onnxruntime.InferenceSession on its CPU provider; reference: onnx's
ReferenceEvaluator. Both with onnx's own tolerances."""
_REASON_CHARS = 600


@dataclass(frozen=True)
class Target:
    """Where cases run: a hal device and mode, or a baseline (device None)."""

    name: str
    """The backend ("ascend") or baseline name ("onnxruntime")."""
    device: str | None = None
    mode: str = "fallback"
    expectations: Expectations = Expectations()

    @property
    def label(self) -> str:
        return self.name if self.device is None else f"{self.name} ({self.mode})"


@dataclass(frozen=True)
class CaseResult:
    test: str
    op: str
    target: str
    mode: str
    status: str
    """passed, failed, xfail (failed as the backend's expected-failure list says), xpass (listed
    there but passed), unsupported (without fallback, the backend does not claim every node)."""
    reason: str = ""
    seconds: float = 0.0
    tolerance: str = ""
    """Why the tolerance was loosened for this case (empty: onnx's own)."""

    @property
    def passed(self) -> bool:
        return self.status in ("passed", "xpass")

    def to_dict(self) -> dict[str, Any]:
        return {"test": self.test, "op": self.op, "target": self.target, "mode": self.mode, "status": self.status,
                "reason": self.reason, "seconds": round(self.seconds, 6), "tolerance": self.tolerance}


def _describe(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return text if len(text) <= _REASON_CHARS else text[: _REASON_CHARS - 3] + "..."


def claimed(case: NodeCase, device_name: str) -> str:
    """Empty when the device's backend claims every node of the case (those placement keeps on
    the host, shape arithmetic, aside) on a path other than a slow one; otherwise the backend's
    reasons for the nodes it lacks."""
    from ...graph.model import load_model
    from ...graph.placement import shape_only_nodes
    from ...graph.values import host_only_reason
    from ...registry import device as get_device

    device = get_device(device_name)
    loaded = load_model(case.model)
    nodes = loaded.node_infos()
    on_host = shape_only_nodes(nodes, loaded.initializers)
    reasons = []
    for node in nodes:
        if node.name in on_host:
            continue
        answer = device.backend.supports(node, device.spec)
        host_only = host_only_reason(node) if device.spec.kind != "cpu" else None
        if host_only:
            reasons.append(f"{node.op_type}: {host_only}")
        elif not answer:
            reasons.append(f"{node.op_type}: {answer.reason}")
        elif answer.slow:  # strict sessions refuse slow paths too
            reasons.append(f"{node.op_type}: only a slow path runs it ({answer.note}), which strict mode refuses")
    return "; ".join(dict.fromkeys(reasons))


def _run_hal(case: NodeCase, target: Target) -> Sequence[Any]:
    from ...onnx_backend import for_device

    backend = for_device(target.device, fallback=target.mode == "fallback")
    return list(backend.prepare(case.model).run(list(case.inputs)))


def _run_onnxruntime(case: NodeCase) -> Sequence[Any]:
    import onnxruntime as ort

    session = ort.InferenceSession(case.model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    # onnxruntime's Python API refuses numpy scalars (np.float32(0.5)) where it takes 0-d arrays; a
    # user would pass the array, and hal's sessions take both, so the baseline gets arrays too
    values = [np.asarray(v) if isinstance(v, np.generic) else v for v in case.inputs]
    return session.run(None, dict(zip(names, values)))


def _run_reference(case: NodeCase) -> Sequence[Any]:
    from onnx.reference import ReferenceEvaluator

    evaluator = ReferenceEvaluator(case.model)
    return evaluator.run(None, dict(zip(evaluator.input_names, case.inputs)))


def _dtype_name(value: Any) -> str:
    from ...dtypes import dtype
    from ...errors import UnsupportedDTypeError

    if not isinstance(value, np.ndarray):
        return type(value).__name__
    try:
        return dtype(value.dtype).value
    except UnsupportedDTypeError:
        return str(value.dtype)


def compare(case: NodeCase, got: Sequence[Any], expectations: Expectations) -> str:
    """Raises AssertionError (onnx's message) unless every output matches; returns why the
    tolerance was loosened, if it was."""
    from onnx.backend.test.runner import Runner

    expected = list(case.outputs)
    if len(got) != len(expected):
        raise AssertionError(f"{len(got)} outputs, expected {len(expected)}")
    reasons = []
    for i, (value, want) in enumerate(zip(got, expected)):
        rtol, atol, why = expectations.tolerance(case.graph_ops, _dtype_name(want), case.rtol, case.atol)
        if why:
            reasons.append(f"output {i}: rtol={rtol:g} atol={atol:g} ({why})")
        try:
            Runner.assert_similar_outputs([want], [value], rtol=rtol, atol=atol)
        except AssertionError as exc:
            raise AssertionError(f"output {i} (rtol={rtol:g}, atol={atol:g}): {exc}") from None
    return "; ".join(reasons)


def run_case(case: NodeCase, target: Target) -> CaseResult:
    """Runs and checks one case; never raises for a failing case (KeyboardInterrupt aside)."""
    start = time.perf_counter()
    tolerance = ""
    error = ""
    try:
        # a case may take a slow path on purpose (hal warns users of it): the report says what ran
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            if target.device is not None:
                got = _run_hal(case, target)
            elif target.name == "onnxruntime":
                got = _run_onnxruntime(case)
            else:
                got = _run_reference(case)
            tolerance = compare(case, got, target.expectations)
    except UnsupportedOpError as exc:
        # Without fallback, a node the backend does not claim makes the case unsupported; an
        # UnsupportedOpError for nodes it claims (a subgraph its compiler rejects) is a failure.
        missing = ""
        if target.device is not None and target.mode == "no-fallback":
            try:
                missing = claimed(case, target.device)
            except Exception:  # the model does not load: the session's own error is the answer
                missing = ""
        if missing:
            return CaseResult(case.name, case.op, target.name, target.mode, "unsupported", missing,
                              time.perf_counter() - start)
        error = _describe(exc)
    except Exception as exc:  # a failing case, whatever the library raised
        error = _describe(exc)
    seconds = time.perf_counter() - start
    expected = target.expectations.expected_failure(case.name, target.mode) if target.device is not None else None
    if error:
        status, reason = ("xfail", f"{expected.reason} [{error}]") if expected else ("failed", error)
    elif expected and expected.may_pass:
        status, reason = "passed", f"passed by chance ({expected.reason})"
    elif expected:
        status, reason = "xpass", f"listed as an expected failure ({expected.reason}) but passed"
    else:
        status, reason = "passed", ""
    return CaseResult(case.name, case.op, target.name, target.mode, status, reason, seconds, tolerance)
