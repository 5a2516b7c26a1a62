"""`hal conformance`: the API suite and onnx's node tests on one device per backend, with and
without fallback, next to onnxruntime's CPU provider and onnx's reference implementation on the
same cases; a summary on the terminal and, with a folder, report.json / .md / .html.

The node suite runs in worker processes (`jobs`), each building onnx's cases once; results come
back in chunks, so the progress bar moves chunk by chunk.
"""
from __future__ import annotations

import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TextIO

from ..errors import DeviceNotFoundError, InvalidArgumentError
from .expectations import MODES, expectations_for
from .onnx_node.run import BASELINES, CaseResult, Target, run_case
from .report import ApiResult, Report, write_reports

__all__ = ["RunOptions", "resolve_devices", "run_conformance", "print_summary"]

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
    strict_xfail: bool = False
    baselines: bool = True
    jobs: int = 1
    report_dir: Path | None = None
    command: str = ""
    progress: TextIO | None = field(default=None, repr=False)
    """Where the progress bar goes (a TTY), or None."""


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


def _environment(command: str) -> dict[str, str]:
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
    """A pytest plugin that keeps each test's outcome."""

    def __init__(self, backend_of: dict[str, str]):
        self.backend_of = backend_of
        self.results: list[ApiResult] = []
        self.errors: list[str] = []

    def pytest_runtest_logreport(self, report) -> None:
        import re

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


def run_api_suite(devices: dict[str, str], patterns: Sequence[str] = ()) -> list[ApiResult]:
    """hal.conformance.api on each device, in this process, through pytest."""
    import pytest

    collector = _ApiCollector({device: backend for backend, device in devices.items()})
    args = ["--pyargs", "hal.conformance.api", "-p", "no:cacheprovider", "-p", "no:terminal", "-o", "addopts=",
            "--hal-suite", "api", "--rootdir", str(Path(__file__).parent)]
    for device in devices.values():
        args += ["--hal-device", device]
    if patterns:
        args += ["-k", " or ".join(patterns)]
    code = pytest.main(args, plugins=[collector])
    if collector.errors or (code not in (0, 1, 5) and not collector.results):
        from ..errors import HalError

        raise HalError("the API suite could not be collected: " + "; ".join(collector.errors or [f"pytest exit code {code}"]))
    return collector.results


# -- node suite --------------------------------------------------------------------------------

def _worker_init() -> None:
    import warnings

    import onnxruntime

    onnxruntime.set_default_logger_severity(4)  # kernels' messages would drown the progress bar; failures are in the results
    warnings.simplefilter("ignore")


def _run_chunk(target: Target, names: Sequence[str]) -> list[CaseResult]:
    from .onnx_node.cases import node_cases

    by_name = {c.name: c for c in node_cases()}
    return [run_case(by_name[name], target) for name in names]


class _Progress:
    """A one-line progress bar on a terminal; silent elsewhere."""

    def __init__(self, stream: TextIO | None, total: int):
        self.stream, self.total, self.done, self.start = stream, total, 0, time.monotonic()

    def advance(self, count: int, label: str) -> None:
        self.done += count
        if self.stream is None or not self.total:
            return
        width = 30
        filled = int(width * self.done / self.total)
        elapsed = int(time.monotonic() - self.start)
        self.stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} "
                          f"{elapsed // 60}:{elapsed % 60:02d} {label[:40]:<40}")
        self.stream.flush()

    def close(self) -> None:
        if self.stream is not None and self.total:
            self.stream.write("\n")
            self.stream.flush()


def run_node_suite(targets: Sequence[Target], names: Sequence[str], jobs: int = 1,
                   progress: Callable[[int, str], None] | None = None) -> list[CaseResult]:
    """Every named case on every target; results in target then case order."""
    tasks = [(target, list(names[i:i + _CHUNK])) for target in targets for i in range(0, len(names), _CHUNK)]
    results: dict[int, list[CaseResult]] = {}
    if jobs <= 1:
        _worker_init()
        for index, (target, chunk) in enumerate(tasks):
            found = []
            for name in chunk:
                found += _run_chunk(target, [name])
                if progress:
                    progress(1, f"{target.label} {name}")
            results[index] = found
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        context = multiprocessing.get_context("spawn")  # no fork of a process with device threads
        with ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_worker_init) as pool:
            futures = {pool.submit(_run_chunk, target, chunk): index for index, (target, chunk) in enumerate(tasks)}
            for future in as_completed(futures):
                index = futures[future]
                results[index] = future.result()
                if progress:
                    progress(len(tasks[index][1]), tasks[index][0].label)
    return [r for index in sorted(results) for r in results[index]]


def run_conformance(options: RunOptions) -> Report:
    from .. import registry
    from .onnx_node.cases import node_cases, select_cases

    if options.suite not in SUITES:
        raise InvalidArgumentError(f"--suite must be one of {', '.join(SUITES)}, got {options.suite!r}")
    devices = resolve_devices(options.backends, options.all_backends)
    report = Report(backends=list(devices), devices=devices, strict_xfail=options.strict_xfail,
                    environment=_environment(options.command))
    if options.suite in ("api", "all"):
        if options.progress is not None:
            options.progress.write(f"API suite on {', '.join(devices.values())}...\n")
        report.api_results = run_api_suite(devices, options.patterns)
    if options.suite in ("onnx", "all"):
        if options.progress is not None:
            options.progress.write("building onnx's node test cases...\n")
        known = [c.name for c in node_cases()]
        names = [c.name for c in select_cases(options.patterns)]
        backends = registry.backends()
        targets = [Target(name, device, mode, expectations_for(backends[name], known))
                   for name, device in devices.items() for mode in options.modes]
        if options.baselines:
            targets += [Target(name, None, "baseline") for name in BASELINES]
        bar = _Progress(options.progress, len(targets) * len(names))
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
