"""Every script in examples/ runs as a newcomer runs it (`python examples/NN_name.py`) and says
what it should. A new example is picked up without an edit here; naming what its output must
contain is one line in KEY_TEXT."""
from __future__ import annotations

import ast
import os
import re
import subprocess
import sys

import pytest

from .conftest import REPO

EXAMPLES = sorted(p for p in (REPO / "examples").glob("*.py") if p.is_file())

# what each example's output must contain (examples not listed here must just print something)
KEY_TEXT: dict[str, list[str]] = {
    "01_devices.py": ["Devices:", "ascend:0", "kunlun:0", "(simulated clock)", "bit-exact", "Chained copy"],
    "02_compare_chips.py": [
        "max |diff| vs cpu", "ascend:0", "kunlun:0", " ms", "allow_fp32_to_fp16",
        "Rewrote for kunlun:0: 7 shape computation node(s) into constants; 1 erf-GELU pattern(s) into com.hal::FusedGelu",
        "ascend:0 with precision_mode='must_keep_origin_dtype': max |diff|",
    ],
    "03_strict_mode.py": [
        "UnsupportedOpError: kunlun:0 cannot run 2 node(s)", "n101 (Erf)", "n252 (Erf)",
        "UnsupportedOpError: ascend:0 cannot run 2 node(s)", "n53 (Einsum)", "n204 (Einsum)",
        "n101 not on kunlun:0", "n53 not on ascend:0", "max |diff| vs cpu",
    ],
    "04_cost_placement.py": [
        "placement='priority'", "placement='cost'", "nodes per device:", "crossing devices:",
        "estimated total:", "Plan over ascend:0, kunlun:0, cpu:0 (cost placement)", "Estimated time per device:",
    ],
    "05_device_resident_io.py": [
        "input:    ascend:0 (8, 64) float32", "encoder:  output on ascend:0", "head:     output on ascend:0",
        "between the upload and the download: 0 copies", ".numpy(): 1 copy (copy_d2h)",
    ],
    "06_llm_generate.py": [
        "cpu:0      tokens", "(linear float16, KV cache float16)", "(linear int16, KV cache float32)", "tokens/s simulated",
        "top-1 agreement", "ascend:0 with precision_mode='must_keep_origin_dtype': the same tokens as cpu",
        "layers split over ascend:0 and kunlun:0",
    ],
}

# the examples show the default devices, whatever the developer's shell sets
_CLEAN_ENV = {k: v for k, v in os.environ.items() if k not in ("HAL_DEVICE", "HAL_BACKENDS", "HAL_SIM_DEVICES")}


def test_examples_are_found():
    assert {p.name for p in EXAMPLES} >= set(KEY_TEXT)
    assert "vendor_backend" not in {p.name for p in EXAMPLES}


@pytest.mark.parametrize("script", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_runs(script, tmp_path):
    # run from an empty folder: an example depends on no working directory and leaves no files
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=_CLEAN_ENV,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{script.name} failed:\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr
    assert result.stdout.strip(), f"{script.name} printed nothing"
    missing = [text for text in KEY_TEXT.get(script.name, []) if text not in result.stdout]
    assert not missing, f"{script.name} did not print {missing}:\n{result.stdout}"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("script", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_says_how_to_run_it(script):
    """Numbered in reading order, with a docstring that starts with what it shows and how to run it."""
    assert re.fullmatch(r"\d\d_[a-z0-9_]+\.py", script.name)
    doc = ast.get_docstring(ast.parse(script.read_text()))
    assert doc, f"{script.name} has no docstring"
    assert f"python examples/{script.name}" in doc
