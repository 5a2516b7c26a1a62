"""Runs fuzz inputs in a worker process, so that a crash (segfault, abort), a hang or a runaway
allocation is a reported finding and not the end of pytest.

The worker is a concurrent.futures.ProcessPoolExecutor of one process (the standard library's
pool already tells a dead worker apart: BrokenProcessPool), started once and reused for every
input until it dies. In the worker, faulthandler turns a hang into an exit after HANG_SECONDS
(its watchdog is a C thread, so it fires even while a kernel holds the GIL) and RLIMIT_AS caps the
address space, so an unchecked huge allocation fails inside the worker instead of exhausting the
machine.

An outcome is one of
    "ok"         the target accepted the input
    "skipped"    the input does not apply to the target (bytes that do not parse, for a parsed-model API)
    "refused"    hal refused it with a hal.HalError subclass whose message is not empty (or, for
                 hal._C, with an exception its stub documents: targets.native_call)
    "finding"    any other exception, or a HalError with an empty message: a bug to fix
    "crash"      the worker died (signal, abort, memory) or hung: a bug to fix
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import faulthandler
import hashlib
import json
import multiprocessing
import os
import resource
import time
import traceback
from collections import Counter
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

CORPUS = Path(__file__).resolve().parent / "corpus"
# Inputs take milliseconds; this much on a loaded machine is a hang.
HANG_SECONDS = float(os.environ.get("HAL_FUZZ_HANG_SECONDS", "30"))
# Generous for onnxruntime's and numpy's own mappings (about 1.5 GiB of address space at start),
# small next to the machine: an input that makes hal allocate more than this is a finding.
ADDRESS_SPACE_BYTES = int(os.environ.get("HAL_FUZZ_ADDRESS_SPACE_GIB", "6")) << 30

# Per target: inputs tried and their outcomes, for the closing summary (conftest, run.py).
counts: dict[str, Counter] = {}


@dataclasses.dataclass
class Outcome:
    kind: str
    detail: str = ""


def examples(ci_default: int) -> int:
    """Hypothesis max_examples for a target: HAL_FUZZ_EXAMPLES when set (nightly: 100000), else
    the target's CI-size default, chosen so all of tests/fuzz stays inside its CI time budget."""
    value = os.environ.get("HAL_FUZZ_EXAMPLES")
    return int(value) if value else ci_default


def _limit_worker(address_space_bytes: int) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = address_space_bytes if hard == resource.RLIM_INFINITY else min(address_space_bytes, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    os.environ.setdefault("HAL_NUM_THREADS", "1")  # two cores shared by the whole suite


def _run_in_worker(target: str, payload: Any, hang_seconds: float) -> Outcome:
    import hal
    from tests.fuzz import targets

    faulthandler.dump_traceback_later(hang_seconds, exit=True)
    try:
        getattr(targets, target)(payload)
        return Outcome("ok")
    except targets.Skip as e:
        return Outcome("skipped", str(e))
    except (hal.HalError, targets.Refused) as e:
        if not str(e).strip():
            return Outcome("finding", f"{type(e).__name__} with an empty message")
        return Outcome("refused", f"{type(e).__name__}: {e}")
    except BaseException as e:  # noqa: BLE001 - anything else reaching the user is the finding
        return Outcome("finding", "".join(traceback.format_exception(e))[-4000:])
    finally:
        faulthandler.cancel_dump_traceback_later()


class Sandbox:
    """One worker process that runs targets (functions of tests/fuzz/targets.py) on inputs."""

    def __init__(self, address_space_bytes: int = ADDRESS_SPACE_BYTES, hang_seconds: float = HANG_SECONDS) -> None:
        self._address_space = address_space_bytes
        self._hang_seconds = hang_seconds
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None

    def _worker(self) -> concurrent.futures.ProcessPoolExecutor:
        if self._pool is None:
            # spawn: a fresh interpreter, not a fork of pytest with its threads and state
            self._pool = concurrent.futures.ProcessPoolExecutor(
                1, mp_context=multiprocessing.get_context("spawn"),
                initializer=_limit_worker, initargs=(self._address_space,))
        return self._pool

    def run(self, target: str, payload: Any) -> Outcome:
        start = time.monotonic()
        try:
            outcome = self._worker().submit(_run_in_worker, target, payload, self._hang_seconds).result(
                timeout=self._hang_seconds * 2)
        except (BrokenProcessPool, concurrent.futures.TimeoutError) as e:
            self.close()
            hung = time.monotonic() - start >= self._hang_seconds
            outcome = Outcome("crash", f"the worker {'hung' if hung else 'died'} ({type(e).__name__})")
        counts.setdefault(target, Counter()).update(["tried", outcome.kind])
        return outcome

    def close(self) -> None:
        if self._pool is not None:
            workers = list((self._pool._processes or {}).values())  # a hung worker has no public handle
            self._pool.shutdown(wait=False, cancel_futures=True)
            for process in workers:
                process.kill()
            self._pool = None


def save_to_corpus(target: str, payload: Any) -> Path:
    """Keeps an input that failed under corpus/<target>/, named by its content, for replay."""
    if isinstance(payload, bytes):
        data, suffix = payload, ".bin"
    else:
        data, suffix = json.dumps(payload, indent=1, sort_keys=True).encode(), ".json"
    folder = CORPUS / target
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (hashlib.sha256(data).hexdigest()[:16] + suffix)
    path.write_bytes(data)
    return path


def load_corpus() -> list[tuple[str, Path, Any]]:
    """(target, file, payload) of every kept input."""
    found = []
    for path in sorted(CORPUS.glob("*/*")):
        # .json: an argument description; anything else: bytes (.bin, or libFuzzer's atheris-crash-<sha1>)
        payload = json.loads(path.read_text()) if path.suffix == ".json" else path.read_bytes()
        found.append((path.parent.name, path, payload))
    return found


def summary() -> list[str]:
    lines = []
    for target, c in sorted(counts.items()):
        lines.append(f"{target}: {c['tried']} inputs tried, {c['ok']} accepted, {c['refused']} refused cleanly, "
                     f"{c['skipped']} skipped, {c['finding']} other exceptions, {c['crash']} crashes")
    return lines


def fuzz(sandbox: Sandbox, target: str, strategy: Any, max_examples: int) -> None:
    """Runs `target` on max_examples inputs drawn from `strategy`; fails on the first finding or
    crash, after keeping the (shrunk) input in the corpus."""
    import hypothesis

    failed: list[Any] = []

    # unset: the same inputs every CI run (a seed per target, so that targets sharing a strategy
    # try different inputs); "random": new ones each run; a number: that run again
    seed = os.environ.get("HAL_FUZZ_SEED", "0")

    # No shrinking unless asked (HAL_FUZZ_SHRINK=1): each step of shrinking a crash or a hang
    # restarts the worker or waits out HANG_SECONDS; the corpus keeps the input as found.
    phases = list(hypothesis.Phase) if os.environ.get("HAL_FUZZ_SHRINK") == "1" else \
        [p for p in hypothesis.Phase if p not in (hypothesis.Phase.shrink, hypothesis.Phase.explain)]

    @hypothesis.settings(max_examples=max_examples, deadline=None, database=None, phases=phases,
                         suppress_health_check=list(hypothesis.HealthCheck))
    @hypothesis.given(strategy)
    def check(payload: Any) -> None:
        outcome = sandbox.run(target, payload)
        if outcome.kind in ("finding", "crash"):
            failed.append(payload)
            raise AssertionError(f"{target}: {outcome.kind}: {outcome.detail}")

    if seed != "random":
        check = hypothesis.seed(int(seed) * 1000003 + int(hashlib.sha256(target.encode()).hexdigest()[:8], 16))(check)
    try:
        check()
    except AssertionError as e:
        if not failed:
            raise
        path = save_to_corpus(target, failed[-1])  # when shrinking, hypothesis replays the shrunk input last
        raise AssertionError(f"{e}\ninput kept in {path}; tests/fuzz/test_corpus.py replays it") from None
