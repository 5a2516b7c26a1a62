"""The `hal conformance` subcommand (registered by hal.cli)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..cli_options import add_device_option, device_list
from .expectations import MODES

__all__ = ["add_parser"]


def _command(args: argparse.Namespace) -> int:
    from .runner import RunOptions, print_summary, run_conformance

    if args.no_fallback and args.fallback_only:
        from ..errors import InvalidArgumentError

        raise InvalidArgumentError("--no-fallback and --fallback-only exclude each other; give one, or neither for both modes")
    modes = ("no-fallback",) if args.no_fallback else ("fallback",) if args.fallback_only else MODES
    options = RunOptions(
        backends=[*args.backends, *device_list(args.devices)], all_backends=args.all, suite=args.suite, modes=modes, patterns=args.k or (),
        ops=[op.strip() for raw in args.ops or () for op in raw.split(",") if op.strip()],
        strict_xfail=args.strict_xfail, baselines=not args.no_baselines, jobs=args.jobs,
        report_dir=Path(args.report) if args.report else None,
        command="hal conformance " + " ".join(sys.argv[2:]) if sys.argv[1:2] == ["conformance"] else "",
        progress=sys.stderr if sys.stderr.isatty() else None,
    )
    if args.ray:
        from .ray_runner import run_conformance_on_ray

        report = run_conformance_on_ray(options, args.ray)
    else:
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
    add_device_option(parser, default=None, help="the same as BACKEND arguments, comma-separated (as other subcommands take devices)")
    parser.add_argument("--all", action="store_true", help="every registered backend that has a device")
    parser.add_argument("--suite", choices=("api", "onnx", "all"), default="all", help="which suite (default all)")
    parser.add_argument("--no-fallback", action="store_true",
                        help="node tests only without fallback (ops the backend does not claim are 'unsupported')")
    parser.add_argument("--fallback-only", action="store_true", help="node tests only with fallback to the CPU")
    parser.add_argument("--report", metavar="DIR", help="write report.html, report.md and report.json there")
    parser.add_argument("--strict-xfail", action="store_true", help="an expected failure that passes fails the run")
    parser.add_argument("-k", action="append", metavar="PATTERN",
                        help="only tests whose name or op matches (substring or glob; repeatable)")
    parser.add_argument("--ops", action="append", metavar="OP[,OP...]",
                        help="only the node tests of exactly these op types, as ONNX spells them (Relu,MatMul): a "
                             "test's op is its model's single node, and an _expanded test goes with the test it "
                             "expands; repeatable; with -k, a test must match both; the API suite is not run")
    parser.add_argument("-j", "--jobs", type=int, default=1, help="worker processes for the node tests (default 1)")
    parser.add_argument("--ray", metavar="ADDRESS",
                        help="run each backend's suites (per mode) as a task on the Ray cluster at ADDRESS ('auto' or "
                             "host:port), on a node that declares the backend's resource (hal_sim_ascend, NPU, ...: see "
                             "hal.distributed.ray.resource_for), and merge one report; every node needs hal installed")
    parser.add_argument("--no-baselines", action="store_true", help="skip onnxruntime and reference runs")
    parser.set_defaults(run=_command)
