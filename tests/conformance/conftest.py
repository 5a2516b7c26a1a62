"""Small hand-made node cases, so the runner's logic is tested without building onnx's ~1900."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from hal.conformance.onnx_node.cases import NodeCase


def make_case(name: str, op: str = "Add", dtype=np.float32, wrong: bool = False) -> NodeCase:
    """`op` of two inputs on a 2x3 tensor; with `wrong`, the expected output is off by one."""
    code = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    graph = helper.make_graph(
        [helper.make_node(op, ["x", "y"], ["z"])], name,
        [helper.make_tensor_value_info("x", code, [2, 3]), helper.make_tensor_value_info("y", code, [2, 3])],
        [helper.make_tensor_value_info("z", code, [2, 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    x = np.arange(6, dtype=dtype).reshape(2, 3)
    y = np.ones((2, 3), dtype=dtype)
    z = {"Add": x + y, "Mul": x * y, "Sub": x - y}[op]
    if wrong:
        z = z + 1
    return NodeCase(name, op, model, (x, y), (z,), 1e-3, 1e-7)


@pytest.fixture
def small_cases(monkeypatch):
    """node_cases() answers these four cases instead of onnx's, and backends expect nothing of
    them (their conformance.toml files name onnx's tests)."""
    from hal.conformance import runner
    from hal.conformance.expectations import Expectations
    from hal.conformance.onnx_node import cases

    monkeypatch.setattr(runner, "expectations_for", lambda backend, known=None: Expectations())

    found = (make_case("test_add"), make_case("test_mul", "Mul"), make_case("test_sub_wrong", "Sub", wrong=True),
             make_case("test_add_double", dtype=np.float64))
    monkeypatch.setattr(cases, "node_cases", lambda: found)
    return found

