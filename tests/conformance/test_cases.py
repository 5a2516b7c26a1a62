"""Selecting onnx's node tests: --ops by exact op type, alone and with -k patterns."""
from __future__ import annotations

import pytest

from hal.conformance.onnx_node.cases import select_cases
from hal.errors import InvalidArgumentError


def test_ops_select_exactly_their_op_types_not_substrings_of_names():
    relu = select_cases(ops=["Relu"])
    names = {c.name for c in relu}
    assert "test_relu" in names
    assert all(c.op == "Relu" for c in relu)
    assert not any(n.startswith(("test_leakyrelu", "test_prelu", "test_thresholdedrelu")) for n in names)
    # an _expanded test goes with the test it expands
    assert all(n.split("_expanded")[0] in names for n in names)
    both = {c.op for c in select_cases(ops=["Relu", "MatMul"])}
    assert both == {"Relu", "MatMul"}


def test_ops_and_patterns_must_both_match():
    expanded = select_cases(["expanded"], ops=["Relu"])
    assert expanded and all(c.op == "Relu" and "_expanded" in c.name for c in expanded)
    assert select_cases(["test_leakyrelu"], ops=["Relu"]) == []


def test_an_op_outside_ai_onnx_is_named_with_or_without_its_domain():
    adam = select_cases(ops=["Adam"])
    assert adam and adam == select_cases(ops=["ai.onnx.preview.training::Adam"])


def test_unknown_op_names_the_close_ones():
    with pytest.raises(InvalidArgumentError, match=r"--ops: no ONNX node test exercises 'Rellu'; did you mean 'Relu'"):
        select_cases(ops=["Rellu"])
    with pytest.raises(InvalidArgumentError, match=r"'relu'; did you mean 'Relu'.*case-sensitive"):
        select_cases(ops=["Relu", "relu"])
