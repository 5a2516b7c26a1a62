"""The node suite in worker processes: each case reported once as it ends; a dead worker ends the run."""
from __future__ import annotations

import os
from collections import Counter
from concurrent.futures.process import BrokenProcessPool

import pytest

import hal
from hal.conformance import runner
from hal.conformance.onnx_node import cases
from hal.conformance.onnx_node.run import Target


def test_workers_report_each_case_once(small_cases):
    targets = [Target("cpu", "cpu:0", "fallback"), Target("reference", None, "baseline")]
    seen = []
    results = runner.run_node_suite(targets, [c.name for c in small_cases], jobs=2,
                                    progress=lambda target, status: seen.append((target, status)))
    assert [(r.target, r.test) for r in results] == [(t.name, c.name) for t in targets for c in small_cases]
    assert Counter(seen) == Counter((0 if r.target == "cpu" else 1, r.status) for r in results)


class _DiesInTheWorker:
    """A case whose unpickling ends the worker process at once, as a crash in a kernel would."""

    name = "test_dies"

    def __reduce__(self):
        return os._exit, (3,)


def test_a_dead_worker_ends_the_run_with_an_error(monkeypatch):
    monkeypatch.setattr(cases, "node_cases", lambda: (_DiesInTheWorker(),))
    seen = []
    with pytest.raises(hal.ExecutionError, match="worker process died while running cpu's node tests .*--jobs 1") as caught:
        runner.run_node_suite([Target("cpu", "cpu:0", "fallback")], ["test_dies"], jobs=2,
                              progress=lambda target, status: seen.append(status))
    assert seen == [] and isinstance(caught.value.__cause__, BrokenProcessPool)
