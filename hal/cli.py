"""The `hal` command. Every subcommand has --help."""
from __future__ import annotations

import argparse
import json
import os
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


def _session(args: argparse.Namespace, devices: list[str]):
    from .graph.session import InferenceSession

    return InferenceSession(
        args.model, devices=devices, placement=getattr(args, "placement", "priority"),
        strict=getattr(args, "strict", False), precision_mode=args.precision_mode, fc_precision=args.fc_precision,
    )


def _feeds(sess, args: argparse.Namespace) -> dict:
    """Inputs from --input NAME=FILE (.npy or a serialized onnx TensorProto .pb), random otherwise."""
    import numpy as np

    from .errors import InvalidArgumentError

    given: dict = {}
    for item in args.input or []:
        name, sep, path = item.partition("=")
        if not sep:
            raise InvalidArgumentError(f"--input takes NAME=FILE, got {item!r}")
        given[name] = _load_array(path)
    dims = {}
    for item in args.dim or []:
        name, sep, size = item.partition("=")
        if not sep or not size.isdigit():
            raise InvalidArgumentError(f"--dim takes NAME=SIZE (a symbolic dimension), got {item!r}")
        dims[name] = int(size)
    input_names = [info.name for info in sess.model.inputs]
    unknown = sorted(set(given) - set(input_names))
    if unknown:
        raise InvalidArgumentError(
            f"--input names {', '.join(unknown)} are not inputs of the model; its inputs are: {', '.join(input_names)}")
    symbolic = {d for info in sess.model.inputs for d in (info.shape or ()) if isinstance(d, str)}
    unused = sorted(set(dims) - symbolic)
    if unused:
        have = ", ".join(sorted(symbolic)) or "none (every input shape is fixed)"
        raise InvalidArgumentError(
            f"--dim names {', '.join(unused)} are not symbolic dimensions of the model's inputs; they are: {have}")
    rng = np.random.default_rng(args.seed)
    feeds = {}
    for info in sess.model.inputs:
        if info.name in given:
            feeds[info.name] = given[info.name]
            continue
        shape = tuple(d if isinstance(d, int) else dims.get(d, 1) if isinstance(d, str) else 1 for d in (info.shape or ()))
        dtype = info.dtype.numpy if info.dtype is not None else np.dtype(np.float32)
        if dtype.kind == "f" or dtype.kind == "V":
            feeds[info.name] = rng.standard_normal(shape).astype(dtype)
        elif dtype.kind == "b":
            feeds[info.name] = rng.integers(0, 2, shape).astype(bool)
        else:
            feeds[info.name] = rng.integers(0, 10, shape).astype(dtype)  # safe as ids and indices
    return feeds


def _load_array(path: str):
    import numpy as np

    from .errors import InvalidArgumentError

    try:
        if path.endswith(".pb"):
            import onnx
            from onnx import numpy_helper

            tensor = onnx.TensorProto()
            with open(path, "rb") as f:
                tensor.ParseFromString(f.read())
            return numpy_helper.to_array(tensor)
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise InvalidArgumentError(f"cannot read input {path}: {exc}") from None
    except Exception as exc:  # protobuf DecodeError and friends
        raise InvalidArgumentError(f"cannot read input {path}: not a .npy array or a serialized onnx TensorProto ({exc})") from None


def _device_clocks(sess):
    return {d: d.default_stream.record_event() for d in sess.devices}


def _run_command(args: argparse.Namespace) -> int:
    import time

    import numpy as np

    sess = _session(args, _device_list(args.device))
    feeds = _feeds(sess, args)
    sess.run(None, feeds)  # warm-up: first-run allocations and caches
    before = _device_clocks(sess)
    start = time.perf_counter()
    for _ in range(args.repeat):
        outputs = sess.run(None, feeds)
    wall = (time.perf_counter() - start) / args.repeat
    after = _device_clocks(sess)
    for info, value in zip(sess.get_outputs(), outputs):
        value = np.asarray(value)
        stats = ""
        if value.size and value.dtype.kind in "fiub":
            as_float = value.astype(np.float64)
            stats = f" mean={as_float.mean():.6g} std={as_float.std():.6g} min={as_float.min():.6g} max={as_float.max():.6g}"
        print(f"{info.name}: shape={value.shape} dtype={value.dtype}{stats}")
    print(f"wall time: {wall * 1e3:.3f} ms per run (mean of {args.repeat})")
    for device, event in before.items():
        end = after[device]
        if end.driver.simulated:
            print(f"simulated time on {device.name}: {event.elapsed_time(end) / args.repeat:.3f} ms per run")
    fallbacks = len(sess.plan.fallbacks)
    if fallbacks:
        print(f"{fallbacks} node(s) fell back; see `hal explain`")
    return 0


def _explain_command(args: argparse.Namespace) -> int:
    sess = _session(args, _device_list(args.devices))
    print(sess.plan.to_json() if args.json else sess.plan.explain())
    return 0


def _profile_command(args: argparse.Namespace) -> int:
    from pathlib import Path

    from . import profiler

    if Path(args.model).is_dir():  # an LLM folder: profile a generation (prefill, then each decode step per device)
        from .llm.cli import build_model, prompt_ids

        args.random_config, args.quantization, args.batch = None, "none", 1
        model = build_model(args, _device_list(args.device))
        with profiler.profile() as prof:
            model.generate(prompt_ids(args), args.max_new_tokens)
        path = prof.save(args.output)
        print(f"wrote {path}: {len(prof.events)} events (prefill and {args.max_new_tokens - 1} decode steps); "
              "open it in ui.perfetto.dev or chrome://tracing")
        return 0
    sess = _session(args, _device_list(args.device))
    feeds = _feeds(sess, args)
    sess.run(None, feeds)
    with profiler.profile() as prof:
        for _ in range(args.repeat):
            sess.run(None, feeds)
    path = prof.save(args.output)
    print(f"wrote {path}: {len(prof.events)} events; open it in ui.perfetto.dev or chrome://tracing")
    return 0


def _device_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _model_arguments(parser: argparse.ArgumentParser, *, inputs: bool, llm: bool = False) -> None:
    parser.add_argument("model", help="path to an .onnx model" + (", or an LLM folder (config.json + safetensors)" if llm else ""))
    parser.add_argument("--precision-mode", help="Ascend CANN precision_mode (default: the chip's documented default)")
    parser.add_argument("--fc-precision", help="Kunlun fully connected compute type (default int16)")
    if inputs:
        parser.add_argument("--input", action="append", metavar="NAME=FILE", help="an input from .npy or .pb (repeatable); others are random")
        parser.add_argument("--dim", action="append", metavar="NAME=SIZE", help="size of a symbolic dimension for random inputs (default 1)")
        parser.add_argument("--seed", type=int, default=0, help="seed of random inputs")
        parser.add_argument("--repeat", type=int, default=1, help="runs to time (after one warm-up run)")


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

    run = sub.add_parser("run", help="run a model on a device and summarise its outputs",
                         description="Run an ONNX model; print each output's summary, wall time and simulated time.")
    _model_arguments(run, inputs=True)
    run.add_argument("--device", default="cpu", help="device, or a comma-separated priority list (default cpu)")
    run.set_defaults(run=_run_command)

    explain = sub.add_parser("explain", help="show where every node of a model would run and why",
                             description="Show the placement plan: per node its device or fallback reason, "
                                         "transfers, and estimated time per device.")
    _model_arguments(explain, inputs=False)
    explain.add_argument("--devices", default="cpu", help="comma-separated devices in priority order")
    explain.add_argument("--placement", choices=("priority", "cost"), default="priority")
    explain.add_argument("--strict", action="store_true", help="no fallback: fail listing what the first device lacks")
    explain.add_argument("--json", action="store_true", help="machine-readable plan")
    explain.set_defaults(run=_explain_command)

    prof = sub.add_parser("profile", help="run a model and write a Chrome/Perfetto trace",
                          description="Run a model and write a trace: a track per device and stream, copies "
                                      "shown, on the simulated and the wall clock.")
    _model_arguments(prof, inputs=True, llm=True)
    prof.add_argument("--device", default="cpu", help="device, or a comma-separated priority list")
    prof.add_argument("-o", "--output", default="trace.json", help="where to write the trace (default trace.json)")
    prof.add_argument("--prompt-ids", default="1,2,3", help="for an LLM folder: the prompt's token ids (default 1,2,3)")
    prof.add_argument("--max-new-tokens", type=int, default=16, help="for an LLM folder: tokens to generate (default 16)")
    prof.set_defaults(run=_profile_command)

    from .conformance.cli import add_parser as add_conformance_parser

    add_conformance_parser(sub)
    from .llm.cli import add_generate_parser, add_llm_parser

    add_llm_parser(sub)
    add_generate_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return args.run(args)
    except HalError as exc:
        print(f"hal: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `hal explain model.onnx | head`: the reader left, which is not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
