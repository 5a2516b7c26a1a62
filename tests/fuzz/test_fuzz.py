"""Fuzzing (issue #18): mutated models, TensorProtos and arguments into every entry point a user
reaches. The only accepted outcomes are success and a HalError with a message; a crash, a hang,
a runaway allocation or any other exception fails the test and keeps the input in corpus/.

HAL_FUZZ_EXAMPLES=N sets the inputs per target (nightly: 100000); unset, each target tries its
CI-size count below. tests/fuzz/run.py runs the same targets outside pytest and prints the figures."""
from __future__ import annotations

import pytest

from tests.fuzz import sandbox, strategies

# target -> (strategy, inputs per CI run): sized so that tests/fuzz and tests/limits take about
# 90 s together on two cores. `hal run` costs the most per input (a whole command).
TARGETS = {
    "session_cpu": (strategies.mutated_models(), 300),
    "session_ascend": (strategies.mutated_models(), 300),
    "onnx_backend": (strategies.mutated_models(), 150),
    "cli_run": (strategies.mutated_models(), 100),
    "tensor_proto": (strategies.mutated_tensors(), 150),
    "op_call": (strategies.op_calls(), 500),
    "native_call": (strategies.native_calls(), 500),
}


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_fuzz(fuzz_sandbox, target):
    strategy, ci_examples = TARGETS[target]
    sandbox.fuzz(fuzz_sandbox, target, strategy, sandbox.examples(ci_examples))


def test_hal_run_command_refuses_a_damaged_model_in_one_line(tmp_path):
    """The installed command itself (cli_run drives its main() in the worker): a truncated model
    ends in exit status 2 and one error line, no traceback."""
    import subprocess
    import sys

    model = tmp_path / "damaged.onnx"
    model.write_bytes(strategies.seed_models()[0][:-7])
    done = subprocess.run([sys.executable, "-m", "hal.cli", "run", str(model), "--devices", "cpu"],
                          check=False, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and f"error: {model}" in done.stderr
