"""pytest plugin (registered through the pytest11 entry point): --hal-device and the hal_device
fixture that parametrizes conformance tests over devices, and the options of the ONNX node suite
(hal/conformance/onnx_node)."""
from __future__ import annotations

from pathlib import Path

import pytest

_NODE_SUITE = Path(__file__).parent / "onnx_node"
_API_SUITE = Path(__file__).parent / "api"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("hal", "hal conformance")
    group.addoption(
        "--hal-device",
        action="append",
        default=[],
        metavar="DEVICE",
        help="run the conformance suite on this device (e.g. ascend:0); repeatable or comma "
        "separated; default: every registered device",
    )
    group.addoption(
        "--hal-suite",
        choices=("api", "onnx", "all"),
        default=None,
        help="api: the device API tests; onnx: onnx's node tests through hal.onnx_backend (thousands per "
        "device); default: all for the devices named with --hal-device, api when none is named",
    )
    group.addoption(
        "--hal-mode",
        choices=("fallback", "no-fallback", "both"),
        default="both",
        help="node tests with fallback to the CPU, without (ops the backend does not claim are skipped as "
        "unsupported), or both (default)",
    )
    group.addoption(
        "--hal-strict-xfail",
        action="store_true",
        help="a node test in the backend's expected-failure list that passes fails",
    )


def selected_device_names(config: pytest.Config) -> list[str]:
    import hal

    names = [n.strip() for raw in config.getoption("--hal-device") for n in raw.split(",") if n.strip()]
    if names:
        return [hal.device(n).name for n in names]  # fails early, with the reason, on a bad name
    return [d.name for d in hal.devices()]


def selected_suites(config: pytest.Config) -> tuple[str, ...]:
    """The node suite runs only for devices someone named: on every device of a plain run it
    would be tens of thousands of tests."""
    suite = config.getoption("--hal-suite")
    if suite is None:
        suite = "all" if config.getoption("--hal-device") else "api"
    return ("api", "onnx") if suite == "all" else (suite,)


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    suites = selected_suites(config)
    path = Path(collection_path)
    if "onnx" not in suites and (path == _NODE_SUITE or _NODE_SUITE in path.parents):
        return True
    if "api" not in suites and (path == _API_SUITE or _API_SUITE in path.parents):
        return True
    return None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "hal_device" in metafunc.fixturenames:
        names = selected_device_names(metafunc.config)
        metafunc.parametrize("hal_device_name", names, ids=names, scope="session")


@pytest.fixture(scope="session")
def hal_device_name(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def hal_device(hal_device_name: str):
    """The device under test; its streams are drained after each test, failing the test on a
    leftover asynchronous error."""
    import hal

    found = hal.device(hal_device_name)
    yield found
    found.synchronize()
