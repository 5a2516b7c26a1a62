"""onnx's node tests through hal.onnx_backend on each selected device, with and without fallback.

Without fallback a case whose nodes the backend does not all claim is skipped as unsupported; a
case in the backend's expected-failure list (conformance.toml) is an xfail, strict with
--hal-strict-xfail.
"""
from __future__ import annotations

import functools

import pytest

from hal.conformance.expectations import MODES, Expectations, expectations_for
from hal.conformance.onnx_node.cases import node_cases
from hal.conformance.onnx_node.run import Target, run_case
from hal.conformance.plugin import selected_device_names


@functools.lru_cache(maxsize=None)
def _expectations(device_name: str) -> Expectations:
    import hal

    return expectations_for(hal.device(device_name).backend, [c.name for c in node_cases()])


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "node_target" not in metafunc.fixturenames:
        return
    mode = metafunc.config.getoption("--hal-mode")
    modes = MODES if mode == "both" else (mode,)
    targets = [(device, m) for device in selected_device_names(metafunc.config) for m in modes]
    metafunc.parametrize("node_target", targets, ids=[f"{d}-{m}" for d, m in targets])
    cases = node_cases()
    metafunc.parametrize("node_case", range(len(cases)), ids=[c.name for c in cases])


def test_node(node_target: tuple[str, str], node_case: int, request: pytest.FixtureRequest) -> None:
    import hal

    device_name, mode = node_target
    case = node_cases()[node_case]
    target = Target(hal.device(device_name).kind, device_name, mode, _expectations(device_name))
    result = run_case(case, target)
    if result.status == "unsupported":
        pytest.skip(f"unsupported on {device_name}: {result.reason}")
    if result.status == "xfail":
        pytest.xfail(result.reason)
    if result.status == "xpass" and request.config.getoption("--hal-strict-xfail"):
        pytest.fail(result.reason)
    if result.status == "failed":
        pytest.fail(result.reason, pytrace=False)
