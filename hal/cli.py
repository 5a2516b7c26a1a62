"""The `hal` command. Every subcommand has --help."""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from .errors import HalError
from .memory import format_bytes

__all__ = ["main"]


def _flops(value: float | None) -> str:
    if not value:
        return "-"
    for unit, scale in (("P", 1e15), ("T", 1e12), ("G", 1e9)):
        if value >= scale:
            return f"{value / scale:.1f} {unit}"
    return f"{value:.0f}"


def _devices_command(args: argparse.Namespace) -> int:
    from . import registry

    found = registry.devices(args.kind)
    if args.json:
        print(json.dumps([d.spec.to_dict() for d in found], indent=2))
        return 0
    rows = [("DEVICE", "NAME", "VENDOR", "MEMORY", "PEAK FP16", "MEM BW", "SIM")]
    for d in found:
        s = d.spec
        rows.append((
            s.device_name,
            s.name,
            s.vendor,
            format_bytes(s.memory_bytes),
            _flops(s.peak_flops.get("float16")) + ("FLOP/s" if s.peak_flops.get("float16") else ""),
            f"{s.mem_bandwidth / 1e9:.0f} GB/s" if s.mem_bandwidth else "-",
            "yes" if s.simulated else "no",
        ))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    for name, reason in registry.backend_failures().items():
        print(f"unavailable: {name}: {reason}", file=sys.stderr)
    return 0


def _chips_command(args: argparse.Namespace) -> int:
    from . import registry
    from .sim import SimulatedBackend

    shown = 0
    for name, backend in registry.backends().items():
        if not isinstance(backend, SimulatedBackend) or (args.kind and name != args.kind):
            continue
        for chip in backend.chip_models():
            shown += 1
            marker = " (default)" if chip.model.lower() == backend.default_model.lower() else ""
            print(f"{chip.kind}  {chip.model}: {chip.name}{marker}  [{chip.path.name}]")
            if args.sources:
                for key, fig in chip.figures.items():
                    print(f"    {key} = {fig.value:g} {fig.unit}  ({fig.confidence}) {fig.source}")
    if not shown:
        print("no simulated chip backends are loaded", file=sys.stderr)
        return 1
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hal", description="One device API for many AI chips.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    devices = sub.add_parser("devices", help="list every device of every backend",
                             description="List every device of every registered backend.")
    devices.add_argument("--json", action="store_true", help="machine-readable output")
    devices.add_argument("--kind", help="only this backend, e.g. ascend")
    devices.set_defaults(run=_devices_command)

    chips = sub.add_parser("chips", help="list the simulated chip models and their sources",
                           description="List the chip models the simulated backends ship spec files for.")
    chips.add_argument("kind", nargs="?", help="only this backend, e.g. kunlun")
    chips.add_argument("--sources", action="store_true", help="print every figure with its source")
    chips.set_defaults(run=_chips_command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return args.run(args)
    except HalError as exc:
        print(f"hal: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
