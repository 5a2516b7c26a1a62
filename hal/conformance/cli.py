"""The `hal conformance` subcommand (registered by hal.cli)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .expectations import MODES

__all__ = ["add_parser"]


def _command(args: argparse.Namespace) -> int:
    from .runner import RunOptions, print_summary, run_conformance

    if args.no_fallback and args.fallback_only:
        from ..errors import InvalidArgumentError

        raise InvalidArgumentError("--no-fallback and --fallback-only exclude each other; give one, or neither for both modes")
    modes = ("no-fallback",) if args.no_fallback else ("fallback",) if args.fallback_only else MODES
    options = RunOptions(
        backends=args.backends, all_backends=args.all, suite=args.suite, modes=modes, patterns=args.k or (),
        strict_xfail=args.strict_xfail, baselines=not args.no_baselines, jobs=args.jobs,
        report_dir=Path(args.report) if args.report else None,
        command="hal conformance " + " ".join(sys.argv[2:]) if sys.argv[1:2] == ["conformance"] else "",
        progress=sys.stderr if sys.stderr.isatty() else None,
    )
    report = run_conformance(options)
    print_summary(report)
    if options.report_dir is not None:
        print(f"wrote {options.report_dir / 'report.html'}, report.md and report.json")
    return 0 if report.ok else 1


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "conformance", help="run the conformance suite (API + ONNX node tests) on backends",
        description="Run the API suite and onnx's node tests on one device of each named backend, with and "
                    "without fallback, beside onnxruntime's CPU provider and onnx's reference implementation on "
                    "the same cases. Exit status 1 on a regression (a failure not in the backend's "
                    "conformance.toml), an API failure, or with --strict-xfail an unexpected pass.")
    parser.add_argument("backends", nargs="*", metavar="BACKEND", help="backend (ascend) or device (ascend:1) names")
    parser.add_argument("--all", action="store_true", help="every registered backend that has a device")
    parser.add_argument("--suite", choices=("api", "onnx", "all"), default="all", help="which suite (default all)")
    parser.add_argument("--no-fallback", action="store_true",
                        help="node tests only without fallback (ops the backend does not claim are 'unsupported')")
    parser.add_argument("--fallback-only", action="store_true", help="node tests only with fallback to the CPU")
    parser.add_argument("--report", metavar="DIR", help="write report.html, report.md and report.json there")
    parser.add_argument("--strict-xfail", action="store_true", help="an expected failure that passes fails the run")
    parser.add_argument("-k", action="append", metavar="PATTERN",
                        help="only tests whose name or op matches (substring or glob; repeatable)")
    parser.add_argument("-j", "--jobs", type=int, default=1, help="worker processes for the node tests (default 1)")
    parser.add_argument("--no-baselines", action="store_true", help="skip onnxruntime and reference runs")
    parser.set_defaults(run=_command)
