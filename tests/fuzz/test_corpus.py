"""Every input that once crashed hal or escaped as a non-HalError (corpus/<target>/) is replayed:
hal must now accept it or refuse it with a HalError."""
from __future__ import annotations

import pytest

from tests.fuzz import sandbox

CORPUS = sandbox.load_corpus()


@pytest.mark.parametrize("target,path,payload", CORPUS, ids=[f"{t}/{p.name}" for t, p, _ in CORPUS])
def test_replay(fuzz_sandbox, target, path, payload):
    outcome = fuzz_sandbox.run(target, payload)
    assert outcome.kind in ("ok", "refused", "skipped"), f"{path}: {outcome.kind}: {outcome.detail}"
