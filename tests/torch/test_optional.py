"""torch is optional: `import hal` works without it, and the torch features say what to install."""
from __future__ import annotations

from ..conftest import run_python

HIDE_TORCH = "import sys; sys.modules['torch'] = None\n"


def test_hal_works_without_torch():
    result = run_python(HIDE_TORCH + (
        "import hal, numpy as np\n"
        "names = [d.name for d in hal.devices()]\n"
        "assert 'cpu:0' in names and not any(n.startswith(('torch', 'cuda')) for n in names), names\n"
        "assert hal.tensor(np.ones(3), device='ascend:0').numpy().tolist() == [1, 1, 1]\n"
        "try:\n"
        "    hal.from_torch(object(), ())\n"
        "except hal.MissingDependencyError as e:\n"
        "    assert isinstance(e, hal.HalError) and 'pip install \"hal[torch]\"' in str(e), e\n"
        "    print('ok')\n"
    ))
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "ok"
    assert "Warning" not in result.stderr
