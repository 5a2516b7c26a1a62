"""torch.compile(backend="hal"): numerics match eager per chip, graph breaks, eager fallback with
one warning, and the entry point that makes "hal" known without importing hal."""
from __future__ import annotations

import warnings

import pytest
import torch

from hal.torch import HalFallbackWarning, hal_backend

from ..conftest import run_python

# Ascend computes matmuls in fp16 (CANN allow_fp32_to_fp16), Kunlun's FC layers in int16.
TOLERANCE = {"cpu": 1e-4, "ascend:0": 2e-2, "kunlun:0": 5e-2}


@pytest.mark.parametrize("device", list(TOLERANCE))
def test_matches_eager_within_the_chips_tolerance(block, device):
    x = torch.randn(2, 16, 64)
    compiled = torch.compile(block, backend=hal_backend, options={"devices": [device, "cpu"]}, dynamic=False)
    with torch.no_grad():
        want = block(x)
        got = compiled(x)
        again = compiled(x)
    tol = TOLERANCE[device]
    torch.testing.assert_close(got, want, rtol=tol, atol=tol)
    torch.testing.assert_close(again, got)


def test_graph_breaks_are_compiled_piecewise():
    calls = []

    def counting_backend(gm, example_inputs, options=None):
        calls.append(len(gm.graph.nodes))
        return hal_backend(gm, example_inputs, options)

    class Branchy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = torch.nn.Linear(8, 8), torch.nn.Linear(8, 8)

        def forward(self, x):
            h = torch.relu(self.a(x))
            print("graph break")  # noqa: T201 -- a Python side effect dynamo cannot trace
            if h.sum() > 0:  # data-dependent branch
                return self.b(h)
            return -h

    torch.manual_seed(0)
    module = Branchy().eval()
    x = torch.randn(4, 8)
    compiled = torch.compile(module, backend=counting_backend, dynamic=False)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), module(x), rtol=1e-4, atol=1e-4)
    assert len(calls) >= 2


class _ErfGate(torch.nn.Module):
    def forward(self, a, b):
        return torch.erf(a) * b  # Erf: Paddle's XPU op lists have no erf kernel


def test_unsupported_graph_runs_eagerly_with_one_warning():
    a, b = torch.randn(3, 4), torch.randn(3, 4)
    module = _ErfGate()
    compiled = torch.compile(module, backend=hal_backend, options={"devices": ["kunlun:0"], "strict": True}, dynamic=False)
    with warnings.catch_warnings(record=True) as caught, torch.no_grad():
        warnings.simplefilter("always")
        outs = [compiled(a, b) for _ in range(3)]
    fallbacks = [w for w in caught if issubclass(w.category, HalFallbackWarning)]
    assert len(fallbacks) == 1, [str(w.message) for w in fallbacks]
    assert "eagerly" in str(fallbacks[0].message) and "Erf" in str(fallbacks[0].message)
    torch.testing.assert_close(outs[-1], module(a, b))


def test_backend_name_works_without_importing_hal():
    result = run_python(
        "import torch\n"
        "m = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU()).eval()\n"
        "x = torch.randn(2, 4)\n"
        "c = torch.compile(m, backend='hal', dynamic=False)\n"
        "with torch.no_grad():\n"
        "    torch.testing.assert_close(c(x), m(x))\n"
        "import sys; print('hal.torch' in sys.modules)\n"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split()[-1] == "True"  # torch loaded hal's backend through the entry point


def test_weights_changed_in_place_are_picked_up():
    torch.manual_seed(0)
    module = torch.nn.Linear(4, 3).eval()
    x = torch.randn(2, 4)
    compiled = torch.compile(module, backend=hal_backend, dynamic=False)
    with torch.no_grad():
        compiled(x)
        module.weight.mul_(2)  # in place: the baked-in weights are stale
        torch.testing.assert_close(compiled(x), module(x), rtol=1e-5, atol=1e-5)
