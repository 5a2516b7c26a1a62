"""pytest plugin (registered through the pytest11 entry point): --hal-device and the hal_device
fixture that parametrizes conformance tests over devices."""
from __future__ import annotations

import pytest


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


def selected_device_names(config: pytest.Config) -> list[str]:
    import hal

    names = [n.strip() for raw in config.getoption("--hal-device") for n in raw.split(",") if n.strip()]
    if names:
        return [hal.device(n).name for n in names]  # fails early, with the reason, on a bad name
    return [d.name for d in hal.devices()]


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
