"""`hal conformance`: the API suite and onnx's node tests on one device per backend, with and
without fallback, next to onnxruntime's CPU provider and onnx's reference implementation on the
same cases; a summary on the terminal and, with a folder, report.json / .md / .html.

The node suite runs in worker processes (`jobs`), which get the cases in chunks from this process
(~13 MB for all of onnx's, pickled in a tenth of a second, where building them would take each
worker ~10 s). Results come back by chunk; each finished case is also reported at once on a
progress channel (a multiprocessing queue), so that on a terminal one tqdm bar per target moves
test by test.
"""
from __future__ import annotations

import platform
import sys
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TextIO

from ..errors import DeviceNotFoundError, InvalidArgumentError
from .expectations import MODES, expectations_for
from .onnx_node.cases import NodeCase
from .onnx_node.run import BASELINES, CaseResult, Target, run_case
from .report import ApiResult, Report, write_reports

__all__ = ["RunOptions", "check_options", "environment", "resolve_devices", "run_conformance", "run_node_cases", "print_summary"]

SUITES = ("api", "onnx", "all")
_CHUNK = 48


@dataclass
class RunOptions:
    backends: Sequence[str] = ()
    """Backend names ("ascend") or device names ("ascend:1"); empty with all_backends."""
    all_backends: bool = False
    suite: str = "all"
    modes: Sequence[str] = MODES
    patterns: Sequence[str] = ()
    """-k: node tests whose name or op matches (substring or glob); API tests whose id contains it."""
    ops: Sequence[str] = ()
    """--ops: only the node tests of exactly these op types (see onnx_node.cases.op_matches); the
    API suite, which tests no op, is not run then."""
    strict_xfail: bool = False
    baselines: bool = True
    jobs: int = 1
    report_dir: Path | None = None
    command: str = ""
    progress: TextIO | None = field(default=None, repr=False)
    """Where the progress bars go (a terminal), or None for none."""


def resolve_devices(names: Sequence[str], all_backends: bool) -> dict[str, str]:
    """Backend name -> the device its suite runs on (the backend's first device, or the one named)."""
    from .. import registry

    if all_backends and names:
        raise InvalidArgumentError("give backend names or --all, not both")
    if all_backends:
        chosen: dict[str, str] = {}
        for name in registry.backends():
            found = registry.devices(name)
            if found:
                chosen[name] = found[0].name
        if not chosen:
            raise DeviceNotFoundError("no registered backend has a device; run `hal devices` to see why")
        return chosen
    if not names:
        raise InvalidArgumentError("name the backends to test (e.g. `hal conformance ascend kunlun`), or pass --all")
    chosen = {}
    for name in names:
        device = registry.device(name)  # unknown names fail here with what is available
        chosen.setdefault(device.kind, device.name)
    return chosen


def environment(command: str) -> dict[str, str]:
    """Versions, machine and date for a report's header."""
    from importlib.metadata import PackageNotFoundError, version

    import onnx
    import onnxruntime

    try:
        hal_version = version("hal")
    except PackageNotFoundError:
        hal_version = "unknown"
    return {
        "hal": hal_version, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__,
        "python": platform.python_version(), "machine": platform.machine(),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), **({"command": command} if command else {}),
    }


# -- API suite ---------------------------------------------------------------------------------

class _ApiCollector:
    """A pytest plugin that keeps each test's outcome, and shows them on a progress bar when given
    a stream."""

    def __init__(self, backend_of: dict[str, str], progress: TextIO | None = None):
        self.backend_of = backend_of
        self.results: list[ApiResult] = []
        self.errors: list[str] = []
        self.stream = progress
        self.bar: _Progress | None = None
        self.status: dict[str, str] = {}

    def pytest_collection_finish(self, session) -> None:
        if self.stream is not None:
            self.bar = _Progress(self.stream, ["API suite"], len(session.items))

    def _note(self, report) -> None:
        if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
            self.status[report.nodeid] = report.outcome
        elif report.when == "teardown":
            if report.failed:
                self.status[report.nodeid] = "failed"
            if self.bar is not None:
                self.bar.advance(0, self.status.pop(report.nodeid, "passed"))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def pytest_runtest_logreport(self, report) -> None:
        import re

        self._note(report)
        match = re.search(r"\[([^\]]*)\]$", report.nodeid)
        device = match.group(1).split("-")[0] if match else ""
        if report.when == "call" or (report.outcome != "passed" and report.when == "setup") or (report.failed and report.when == "teardown"):
            reason = ""
            if report.failed:
                reason = " ".join(str(report.longreprtext).split()[-60:])
            elif report.skipped and isinstance(report.longrepr, tuple):
                reason = str(report.longrepr[2])
            test = report.nodeid.split("::", 1)[-1]
            module = report.nodeid.split("::", 1)[0].rsplit("/", 1)[-1].removesuffix(".py")
            self.results.append(ApiResult(self.backend_of.get(device, device), device, f"{module}::{test}",
                                          report.outcome, reason, report.duration))

    def pytest_collectreport(self, report) -> None:
        if report.failed:
            self.errors.append(f"{report.nodeid}: {report.longreprtext}")


def run_api_suite(devices: dict[str, str], patterns: Sequence[str] = (), progress: TextIO | None = None) -> list[ApiResult]:
    """hal.conformance.api on each device, in this process, through pytest; a progress bar on
    `progress` when given."""
    import pytest

    collector = _ApiCollector({device: backend for backend, device in devices.items()}, progress)
    args = ["--pyargs", "hal.conformance.api", "-p", "no:cacheprovider", "-p", "no:terminal", "-o", "addopts=",
            "--hal-suite", "api", "--rootdir", str(Path(__file__).parent)]
    for device in devices.values():
        args += ["--hal-device", device]
    if patterns:
        args += ["-k", " or ".join(patterns)]
    try:
        code = pytest.main(args, plugins=[collector])
    finally:
        collector.close()
    if collector.errors or (code not in (0, 1, 5) and not collector.results):
        from ..errors import HalError

        raise HalError("the API suite could not be collected: " + "; ".join(collector.errors or [f"pytest exit code {code}"]))
    return collector.results


# -- node suite --------------------------------------------------------------------------------

_channel = None
"""In a worker process: the queue on which each finished case is reported, or None."""


def _worker_init(channel=None) -> None:
    import warnings

    import onnxruntime

    global _channel
    onnxruntime.set_default_logger_severity(4)  # kernels' messages would drown the progress bars; failures are in the results
    warnings.simplefilter("ignore")
    _channel = channel
    if channel is not None:
        channel.cancel_join_thread()  # never wait at exit for the parent to read a progress message


def _run_chunk(target: Target, cases: Sequence[NodeCase], task: int = -1) -> list[CaseResult]:
    """The cases on the target; each result is also put on the progress channel, if any, as
    (task, position in cases, status): a small message, written to the pipe in one atomic write."""
    found = []
    for position, case in enumerate(cases):
        found.append(run_case(case, target))
        if _channel is not None:
            _channel.put((task, position, found[-1].status))
    return found


_SHOWN = ("passed", "failed", "xfail", "xpass", "unsupported", "skipped")
"""Statuses in the order the bars show them (the node suite's, then the API suite's skipped);
passed and failed always, the others once seen."""


class _Progress:
    """tqdm bars on a terminal: one per target (its tests done of its total, the count of each
    status so far, the time left), below one for the whole run when there are several targets,
    whose counts leave out the targets in `uncounted` (the baselines: their failures are no
    failures of the run). Nothing is shown when `stream` is None."""

    def __init__(self, stream: TextIO | None, labels: Sequence[str], per_target: int, uncounted: Collection[str] = ()):
        self.bars: list = []
        self.counts: list[dict[str, int]] = []
        self.started: set[int] = set()
        self.uncounted = {i for i, label in enumerate(labels) if label in uncounted}
        if stream is None or not per_target or not labels:
            return
        from tqdm import tqdm

        rows = [(label, per_target) for label in labels]
        if len(labels) > 1:
            rows.insert(0, ("all", per_target * len(labels)))
        width = max(len(label) for label, _ in rows)
        for position, (label, total) in enumerate(rows):
            self.bars.append(tqdm(total=total, desc=label.ljust(width), unit="test", file=stream, position=position,
                                  leave=True, dynamic_ncols=True, mininterval=0.2, smoothing=0.1))
            self.counts.append(dict.fromkeys(_SHOWN[:2], 0))

    def advance(self, target: int, status: str) -> None:
        """One more case of target number `target` finished with `status`."""
        if not self.bars:
            return
        if len(self.bars) == 1:
            self._count(0, status)
            return
        index = target + 1
        if index not in self.started:  # a target's time (and so its ETA) starts when its first case ends
            self.started.add(index)
            self.bars[index].reset(total=self.bars[index].total)
        self._count(index, status)
        self._count(0, None if target in self.uncounted else status)

    def _count(self, row: int, status: str | None) -> None:
        if status is not None:
            counts = self.counts[row]
            counts[status] = counts.get(status, 0) + 1
            self.bars[row].set_postfix({k: counts[k] for k in _SHOWN if k in counts}, refresh=False)
        self.bars[row].update(1)

    def close(self) -> None:
        for bar in self.bars:
            bar.close()
        self.bars = []


def run_node_suite(targets: Sequence[Target], names: Sequence[str], jobs: int = 1,
                   progress: Callable[[int, str], None] | None = None) -> list[CaseResult]:
    """Every named case on every target; results in target then case order. `progress(target
    index, status)` is called once per finished case, in this process, as cases finish."""
    from .onnx_node.cases import node_cases

    by_name = {c.name: c for c in node_cases()}
    return run_node_cases(targets, [by_name[name] for name in names], jobs, progress)


def run_node_cases(targets: Sequence[Target], cases: Sequence[NodeCase], jobs: int = 1,
                   progress: Callable[[int, str], None] | None = None) -> list[CaseResult]:
    """run_node_suite on cases already built (building all of onnx's takes ~10 s a process)."""
    tasks = [(t, target, cases[i:i + _CHUNK]) for t, target in enumerate(targets) for i in range(0, len(cases), _CHUNK)]
    results: dict[int, list[CaseResult]] = {}
    if jobs <= 1:
        _worker_init()
        for index, (t, target, chunk) in enumerate(tasks):
            found = results[index] = []
            for case in chunk:
                found.append(run_case(case, target))
                if progress:
                    progress(t, found[-1].status)
        return [r for index in sorted(results) for r in results[index]]

    import multiprocessing
    import queue
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    from ..errors import ExecutionError

    context = multiprocessing.get_context("spawn")  # no fork of a process with device threads
    channel = context.Queue() if progress else None
    reported: dict[int, set[int]] = {}

    def note(index: int, position: int, status: str) -> None:
        # A case counts once: from the channel as it ends, or from its chunk's results if those
        # come first (the channel is only for display; the results are the truth).
        seen = reported.setdefault(index, set())
        if progress and position not in seen:
            seen.add(position)
            progress(tasks[index][0], status)

    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_worker_init, initargs=(channel,))
    try:
        pending = {pool.submit(_run_chunk, target, chunk, index): index for index, (_, target, chunk) in enumerate(tasks)}
        while pending:
            done, _ = wait(pending, timeout=0.2 if channel is not None else None, return_when=FIRST_COMPLETED)
            while channel is not None:
                try:
                    note(*channel.get_nowait())
                except queue.Empty:
                    break
            for future in done:
                index = pending.pop(future)
                try:
                    results[index] = future.result()  # a worker's error, or a crashed worker, is raised here
                except BrokenProcessPool as exc:
                    names = ", ".join(case.name for case in tasks[index][2][:3])
                    raise ExecutionError(
                        f"a conformance worker process died while running {tasks[index][1].name}'s node tests "
                        f"(the chunk starting {names}...): {exc}. A test that crashes the process is a bug in the backend "
                        "or in hal; rerun with --jobs 1 -k NAME to find it"
                    ) from exc
                for position, result in enumerate(results[index]):
                    note(index, position, result.status)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        if channel is not None:
            channel.close()
    return [r for index in sorted(results) for r in results[index]]


def check_options(options: RunOptions) -> None:
    """InvalidArgumentError for options no run can honour."""
    if options.suite not in SUITES:
        raise InvalidArgumentError(f"--suite must be one of {', '.join(SUITES)}, got {options.suite!r}")
    if options.ops and options.suite == "api":
        raise InvalidArgumentError("--ops selects onnx's node tests, and --suite api runs none; use --suite onnx, or -k for API tests")


def run_conformance(options: RunOptions) -> Report:
    from .. import registry
    from .onnx_node.cases import node_cases, select_cases

    check_options(options)
    devices = resolve_devices(options.backends, options.all_backends)
    report = Report(backends=list(devices), devices=devices, strict_xfail=options.strict_xfail,
                    environment=environment(options.command))
    if options.suite in ("api", "all") and not options.ops:
        if options.progress is not None:
            options.progress.write(f"API suite on {', '.join(devices.values())}...\n")
        report.api_results = run_api_suite(devices, options.patterns, options.progress)
    if options.suite in ("onnx", "all"):
        if options.progress is not None:
            options.progress.write("building onnx's node test cases...\n")
        known = [c.name for c in node_cases()]
        names = [c.name for c in select_cases(options.patterns, options.ops)]  # an unknown op fails here
        backends = registry.backends()
        targets = [Target(name, device, mode, expectations_for(backends[name], known))
                   for name, device in devices.items() for mode in options.modes]
        if options.baselines:
            targets += [Target(name, None, "baseline") for name in BASELINES]
        bar = _Progress(options.progress, [target.label for target in targets], len(names), uncounted=BASELINES)
        try:
            report.node_results = run_node_suite(targets, names, options.jobs, bar.advance)
        finally:
            bar.close()
    if options.report_dir is not None:
        write_reports(report, options.report_dir)
    return report


def print_summary(report: Report, out: TextIO | None = None, limit: int = 25) -> None:
    """Counts per backend and mode beside onnxruntime's and the reference's, the targets, and the
    regressions and unexpected passes (the first `limit` of each), to `out` (default stdout)."""
    out = out or sys.stdout
    columns = report.columns()
    ort, ref = report.baseline_passes("onnxruntime"), report.baseline_passes("reference")
    if columns:
        rows = [("ONNX NODE TESTS", "MODE", "PASSED", "FAILED", "XFAIL", "XPASS", "UNSUPPORTED", "TOTAL")]
        for column in columns:
            c = report.counts(column)
            rows.append((column.target if column.mode == "baseline" else f"{column.target} ({report.devices[column.target]})",
                         column.mode, *(str(c[k]) for k in ("passed", "failed", "xfail", "xpass", "unsupported", "total"))))
        _print_table(rows, out)
        if ort is not None or ref is not None:
            out.write(f"baselines on the same cases: onnxruntime CPU provider {ort if ort is not None else '-'} passed, "
                      f"onnx reference implementation {ref if ref is not None else '-'} passed\n")
    api = report.api_counts()
    if api:
        rows = [("API SUITE", "DEVICE", "PASSED", "FAILED", "SKIPPED", "TOTAL")]
        rows += [(b, report.devices.get(b, "-"), *(str(c[k]) for k in ("passed", "failed", "skipped", "total"))) for b, c in api.items()]
        _print_table(rows, out)
    for goal in report.goals():
        out.write(f"target {'met' if goal['holds'] else 'NOT MET'}: {goal['goal']} ({goal['measured']})\n")
    for title, rows_ in (("regression", report.regressions()), ("unexpected pass", report.unexpected_passes())):
        for r in rows_[:limit]:
            out.write(f"{title}: {r.target} ({r.mode}) {r.test}: {r.reason[:200]}\n")
        if len(rows_) > limit:
            out.write(f"... and {len(rows_) - limit} more {title}(s): see the report\n")
    for r in report.api_failures()[:limit]:
        out.write(f"API failure: {r.backend} {r.test}: {r.reason[:200]}\n")
    verdict = "PASS" if report.ok else "FAIL"
    extra = " (unexpected passes fail with --strict-xfail)" if report.unexpected_passes() and not report.strict_xfail else ""
    out.write(f"{verdict}: {len(report.regressions())} regression(s), {len(report.api_failures())} API failure(s), "
              f"{len(report.unexpected_passes())} unexpected pass(es){extra}\n")


def _print_table(rows: list[tuple[str, ...]], out: TextIO) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        out.write("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() + "\n")
