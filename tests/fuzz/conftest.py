"""The fuzz tests share one sandboxed worker process; the inputs each target tried are printed
at the end of the run (the figures issue #18 asks for)."""
from __future__ import annotations

import pytest

from tests.fuzz import sandbox


@pytest.fixture(scope="session")
def fuzz_sandbox():
    box = sandbox.Sandbox()
    yield box
    box.close()


def pytest_terminal_summary(terminalreporter):
    lines = sandbox.summary()
    if lines:
        terminalreporter.section("fuzz: inputs tried per target (HAL_FUZZ_EXAMPLES sets the budget)")
        for line in lines:
            terminalreporter.write_line(line)
