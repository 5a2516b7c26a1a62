"""Long fuzz runs outside pytest: every target (or those named) on N inputs each, in the same
sandboxed worker as tests/fuzz, going on past a finding; prints inputs tried, outcomes and
crashes per target, the figures issue #18's closing note asks for. With --atheris, one byte
target runs in this process under libFuzzer's coverage-guided mutator instead.

    python3 -m tests.fuzz.run --examples 2000              # all targets
    python3 -m tests.fuzz.run --examples 100000 op_call    # a nightly-size run of one
    python3 -m tests.fuzz.run --atheris --examples 5000 session_cpu   # libFuzzer's byte mutator (pip install atheris)

Inputs that fail are kept in tests/fuzz/corpus/ for tests/fuzz/test_corpus.py to replay.
Exit status 1 when any target found something."""
from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from pathlib import Path

from tests.fuzz import sandbox
from tests.fuzz.test_fuzz import TARGETS

_BYTE_TARGETS = ("session_cpu", "session_ascend", "onnx_backend", "cli_run", "tensor_proto")


def _hypothesis(box: sandbox.Sandbox, target: str, examples: int) -> list[str]:
    failures = []
    while sandbox.counts.get(target, {}).get("tried", 0) < examples:
        left = examples - sandbox.counts.get(target, {}).get("tried", 0)
        try:
            sandbox.fuzz(box, target, TARGETS[target][0], left)
            break
        except AssertionError as e:  # kept in the corpus by fuzz(); go on with fresh inputs
            failures.append(str(e).splitlines()[-1])
            if len(failures) >= 20:
                break
    return failures


def _atheris(target: str, examples: int) -> None:
    """libFuzzer's coverage-guided byte mutator (through atheris) over the seed models or tensors.
    Coverage needs the target in this process, so here a crash ends the run: libFuzzer keeps the
    input that caused it in corpus/<target>/ (as it does an input that raised anything but a
    HalError). libFuzzer ends the process itself after -runs inputs, so the figures are printed
    from inside, after the last one."""
    import tempfile

    import atheris  # optional: pip install atheris

    from tests.fuzz import strategies

    with atheris.instrument_imports(include=["hal"]):
        import hal
        from tests.fuzz import targets
    seeds = strategies.seed_tensors() if target == "tensor_proto" else strategies.seed_models()
    counts = sandbox.counts.setdefault(target, Counter())

    def one_input(data: bytes) -> None:
        counts["tried"] += 1
        try:
            getattr(targets, target)(data)
            counts["ok"] += 1
        except targets.Skip:
            counts["skipped"] += 1
        except (hal.HalError, targets.Refused) as e:
            if not str(e).strip():
                raise
            counts["refused"] += 1
        except BaseException:
            counts["finding"] += 1
            print(f"{target}: finding: kept in {sandbox.save_to_corpus(target, data)}", flush=True)
            raise
        finally:
            if counts["tried"] == examples:
                _print_table()

    folder = sandbox.CORPUS / target
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as seed_folder:
        for i, seed in enumerate(seeds):
            (Path(seed_folder) / f"seed{i}").write_bytes(seed)
        atheris.Setup([sys.argv[0], f"-runs={examples}", "-seed=1", "-max_len=65536", f"-timeout={int(sandbox.HANG_SECONDS)}",
                       f"-rss_limit_mb={sandbox.ADDRESS_SPACE_BYTES >> 20}", f"-artifact_prefix={folder}/atheris-",
                       seed_folder], one_input)
        atheris.Fuzz()  # does not return


def _print_table() -> None:
    print(f"{'target':16} {'tried':>8} {'accepted':>9} {'refused':>8} {'skipped':>8} {'other exc':>9} {'crashes':>8}")
    for target, c in sorted(sandbox.counts.items()):
        print(f"{target:16} {c['tried']:8} {c['ok']:9} {c['refused']:8} {c['skipped']:8} {c['finding']:9} {c['crash']:8}",
              flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m tests.fuzz.run", description=__doc__.splitlines()[0])
    parser.add_argument("targets", nargs="*", help=f"targets (default all): {', '.join(sorted(TARGETS))}")
    parser.add_argument("--examples", type=int, default=2000, help="inputs per target")
    parser.add_argument("--atheris", action="store_true", help="mutate bytes with atheris (model and tensor targets)")
    args = parser.parse_args(argv)
    os.environ.setdefault("HAL_FUZZ_SEED", "random")  # after a finding, go on with new inputs, not the same ones
    unknown = sorted(set(args.targets) - set(TARGETS))
    if unknown:
        parser.error(f"unknown targets {', '.join(unknown)}; they are {', '.join(sorted(TARGETS))}")
    box = sandbox.Sandbox()
    if args.atheris:
        if len(args.targets) != 1 or args.targets[0] not in _BYTE_TARGETS:
            parser.error(f"--atheris takes one of {', '.join(_BYTE_TARGETS)} (libFuzzer ends the process after one)")
        _atheris(args.targets[0], args.examples)
    found = {}
    try:
        for target in args.targets or sorted(TARGETS):
            start = time.monotonic()
            found[target] = _hypothesis(box, target, args.examples)
            print(f"{target}: {time.monotonic() - start:.0f} s", file=sys.stderr)
    finally:
        box.close()
    _print_table()
    for target, failures in found.items():
        for failure in failures:
            print(f"{target}: {failure}")
    return 1 if any(found.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
