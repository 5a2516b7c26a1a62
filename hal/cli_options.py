"""Command-line options every `hal` subcommand spells the same way (hal.cli, hal.llm.cli and
hal.conformance.cli build their parsers with them)."""
from __future__ import annotations

import argparse

__all__ = ["add_device_option", "device_list"]


def add_device_option(parser: argparse.ArgumentParser, *, default: str | None, help: str) -> None:
    """--device and --devices, one option under two spellings: a device or a comma-separated list
    (args.devices, a string; device_list splits it)."""
    parser.add_argument("--device", "--devices", dest="devices", default=default, metavar="DEVICE[,DEVICE...]", help=help)


def device_list(text: str | None) -> list[str]:
    """'ascend:0, cpu' -> ['ascend:0', 'cpu']"""
    return [part.strip() for part in (text or "").split(",") if part.strip()]
