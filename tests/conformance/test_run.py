"""Running one case: pass, failure, expected failure, unexpected pass, unsupported."""
from __future__ import annotations

import numpy as np

from hal.conformance.expectations import ExpectedFailure, Expectations
from hal.conformance.onnx_node.run import Target, run_case

from .conftest import make_case


def expecting(*tests: str, mode: str = "fallback") -> Expectations:
    return Expectations(None, (), {(t, mode): ExpectedFailure(t, frozenset({mode}), "known") for t in tests})


def test_passing_and_failing_cases():
    target = Target("cpu", "cpu:0", "fallback")
    assert run_case(make_case("test_add"), target).status == "passed"
    failed = run_case(make_case("test_add", wrong=True), target)
    assert failed.status == "failed"
    assert "Mismatched elements" in failed.reason


def test_expected_failure_and_unexpected_pass():
    target = Target("cpu", "cpu:0", "fallback", expecting("test_add"))
    xfail = run_case(make_case("test_add", wrong=True), target)
    assert xfail.status == "xfail" and xfail.reason.startswith("known")
    xpass = run_case(make_case("test_add"), target)
    assert xpass.status == "xpass" and xpass.passed
    assert "listed as an expected failure" in xpass.reason


def test_a_random_op_listed_with_may_pass_passes_by_chance_without_an_unexpected_pass():
    random_op = ExpectedFailure("test_add", frozenset({"fallback"}), "random output", may_pass=True)
    target = Target("cpu", "cpu:0", "fallback", Expectations(None, (), {("test_add", "fallback"): random_op}))
    assert run_case(make_case("test_add", wrong=True), target).status == "xfail"
    lucky = run_case(make_case("test_add"), target)
    assert lucky.status == "passed" and lucky.reason.startswith("passed by chance")


def test_expected_failure_applies_to_its_mode_only():
    target = Target("cpu", "cpu:0", "no-fallback", expecting("test_add", mode="fallback"))
    assert run_case(make_case("test_add", wrong=True), target).status == "failed"


def test_unclaimed_node_is_unsupported_without_fallback_and_runs_with_it():
    case = make_case("test_add_double", dtype=np.float64)  # the simulated chips compute no float64
    unsupported = run_case(case, Target("ascend", "ascend:0", "no-fallback"))
    assert unsupported.status == "unsupported"
    assert "float64" in unsupported.reason
    assert run_case(case, Target("ascend", "ascend:0", "fallback")).status == "passed"


def test_baselines_run_the_same_case():
    for name in ("onnxruntime", "reference"):
        assert run_case(make_case("test_mul", "Mul"), Target(name, None, "baseline")).status == "passed"
        assert run_case(make_case("test_mul", "Mul", wrong=True), Target(name, None, "baseline")).status == "failed"
