"""conformance.toml: loading, validation with clear errors, and how tolerances apply."""
from __future__ import annotations

import types

import pytest

from hal.conformance.expectations import Expectations, expectations_for, load_expectations
from hal.errors import BackendError

GOOD = """
schema = 1

[[tolerance]]
ops = ["MatMul", "Gemm"]
dtypes = ["float32"]
rtol = 5e-3
atol = 1e-3
reason = "fp16 operands"

[[expected_failure]]
tests = ["test_a", "test_b"]
reason = "known bug"

[[expected_failure]]
tests = ["test_c"]
modes = ["fallback"]
reason = "only with fallback"
"""


def write(tmp_path, text):
    path = tmp_path / "conformance.toml"
    path.write_text(text)
    return path


def test_good_file_loads(tmp_path):
    found = load_expectations(write(tmp_path, GOOD), known_tests=["test_a", "test_b", "test_c"])
    assert found.expected_failure("test_a", "fallback").reason == "known bug"
    assert found.expected_failure("test_a", "no-fallback") is not None
    assert found.expected_failure("test_c", "no-fallback") is None
    assert found.expected_failure("test_c", "fallback").reason == "only with fallback"


def test_tolerance_loosens_only_for_listed_ops_and_dtypes(tmp_path):
    found = load_expectations(write(tmp_path, GOOD))
    assert found.tolerance({"MatMul"}, "float32", 1e-3, 1e-7) == (5e-3, 1e-3, "fp16 operands")
    assert found.tolerance({"Add"}, "float32", 1e-3, 1e-7) == (1e-3, 1e-7, "")
    assert found.tolerance({"MatMul"}, "float16", 1e-3, 1e-7) == (1e-3, 1e-7, "")
    # never tightens onnx's own tolerance
    assert found.tolerance({"Gemm"}, "float32", 1e-2, 1e-2)[:2] == (1e-2, 1e-2)


@pytest.mark.parametrize("text, message", [
    ("schema = 2", "'schema' must be 1"),
    ("schema = 1\n[[tolerance]]\ndtypes = ['float32']\nrtol = 1e-2\nreason = 'x'", "'ops' must be a non-empty list"),
    ("schema = 1\n[[tolerance]]\nops = ['MatMul']\nrtol = 1e-2\nreason = 'x'", "'dtypes' must be a non-empty list"),
    ("schema = 1\n[[tolerance]]\nops = ['MatMul']\ndtypes = ['float32']\nrtol = 1e-2", "needs a 'reason'"),
    ("schema = 1\n[[tolerance]]\nops = ['MatMul']\ndtypes = ['float32']\nreason = 'x'", "give 'rtol', 'atol' or both"),
    ("schema = 1\n[[tolerance]]\nops = ['MatMul']\ndtypes = ['float32']\nrtol = 2.0\nreason = 'x'", "accepts any answer"),
    ("schema = 1\n[[tolerance]]\nops = ['MatMul']\ndtypes = ['float32']\natol = -1\nreason = 'x'", "finite number >= 0"),
    ("schema = 1\n[[tolerance]]\nops = ['MatMul']\ndtypes = ['float7']\natol = 1\nreason = 'x'", "float7"),
    ("schema = 1\n[[expected_failure]]\ntests = ['test_a']", "needs a 'reason'"),
    ("schema = 1\n[[expected_failure]]\ntests = ['test_a']\nmodes = ['sometimes']\nreason = 'x'", "'modes' must list"),
    ("schema = 1\n[[expected_failure]]\ntests = ['test_zzz']\nreason = 'x'", "'test_zzz' is not a node test"),
    ("schema = 1\n[[expected_failure]]\ntests = ['test_a', 'test_a']\nreason = 'x'", "listed twice"),
    ("schema = 1\n[[expected_failure]]\ntest = ['test_a']\nreason = 'x'", "unknown key(s) test"),
    ("schema = 1\nexpected_failures = 3", "unknown key(s) expected_failures"),
    ("schema = 1\n[[tolerance]\n", "not valid TOML"),
])
def test_bad_file_names_the_problem(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(BackendError, match="conformance data") as error:
        load_expectations(path, known_tests=["test_a"])
    assert message in str(error.value)
    assert str(path) in str(error.value)


def test_may_pass_is_read_and_checked(tmp_path):
    text = 'schema = 1\n[[expected_failure]]\ntests = ["test_a"]\nmay_pass = true\nreason = "random"\n'
    assert load_expectations(write(tmp_path, text)).expected_failure("test_a", "fallback").may_pass
    with pytest.raises(BackendError, match="'may_pass' must be true or false"):
        load_expectations(write(tmp_path, text.replace("true", '"yes"')))


def test_backend_without_a_file_expects_nothing(tmp_path, monkeypatch):
    module = types.ModuleType("hal_nofile")
    module.__file__ = str(tmp_path / "__init__.py")
    monkeypatch.setitem(__import__("sys").modules, "hal_nofile", module)
    backend = type("NoFileBackend", (), {"__module__": "hal_nofile"})()
    assert expectations_for(backend) == Expectations()
    write(tmp_path, GOOD)
    assert expectations_for(backend).path == tmp_path / "conformance.toml"


def test_in_tree_backend_files_are_valid():
    """Every in-tree conformance.toml loads (the names are checked against onnx's cases by the
    conformance run itself, which builds them)."""
    import hal

    for backend in hal.registry.backends().values():
        expectations_for(backend)
