"""The `hal` command. Every subcommand has --help."""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from .cli_options import add_device_option, device_list
from .errors import HalError, InvalidArgumentError
from .memory import format_bandwidth, format_bytes, host_memory_bytes

__all__ = ["main"]


def _flops(value: float | None) -> str:
    if not value:
        return "-"
    for unit, scale in (("P", 1e15), ("T", 1e12), ("G", 1e9)):
        if value >= scale:
            return f"{value / scale:.1f} {unit}"
    return f"{value:.0f}"


def _check_kind(kind: str | None, known) -> None:
    """An unknown backend name given to --kind or `hal chips KIND`: an error naming the closest."""
    from .registry import did_you_mean

    if kind is None or kind in known:
        return
    guess = did_you_mean(kind, known)
    raise InvalidArgumentError(f"no backend named '{kind}'" + (f"; did you mean '{guess}'?" if guess else "")
                               + f" (backends: {', '.join(known) or 'none'})")


def _bandwidth(value: float | None) -> str:
    return format_bandwidth(value) if value else "-"


def _figure(value: float, unit: str) -> str:
    """A spec figure in a person's units: bytes as GiB, bytes/s as TB/s, rates as TFLOP/s, seconds as
    us, clocks as GHz."""
    if unit == "bytes":
        return format_bytes(int(value))
    if unit == "bytes/s":
        return _bandwidth(value)
    if unit in ("FLOP/s", "OP/s"):
        return f"{_flops(value)}{unit}"
    if unit == "s":
        return f"{value * 1e6:.3g} us"
    if unit == "Hz":
        return f"{value / 1e9:.3g} GHz" if value >= 1e9 else f"{value / 1e6:.3g} MHz"
    return f"{value:g} {unit}"


def _devices_command(args: argparse.Namespace) -> int:
    from . import registry

    _check_kind(args.kind, list(registry.backends()))
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
            _bandwidth(s.mem_bandwidth),
            "yes" if s.simulated else "no",
        ))
    _table(rows)
    for name, reason in registry.backend_failures().items():
        print(f"unavailable: {name}: {reason}", file=sys.stderr)
    return 0


_COMMON_DTYPES = ("float64", "bfloat16", "float16", "int64", "int8")
"""Dtypes a framework developer checks a chip for first: `hal chips` lists those it lacks."""


def _table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())


def _chips_command(args: argparse.Namespace) -> int:
    from collections import Counter

    from . import registry
    from .sim import SimulatedBackend

    simulated = {name: b for name, b in registry.backends().items() if isinstance(b, SimulatedBackend)}
    _check_kind(args.kind, list(simulated))
    chips = [(backend, chip) for name, backend in simulated.items() if not args.kind or name == args.kind
             for chip in backend.chip_models()]
    if not chips:
        print("no simulated chip backends are loaded", file=sys.stderr)
        return 1
    rows = [("KIND", "MODEL", "NAME", "VENDOR", "MEMORY", "BANDWIDTH", "FP16", "BF16", "INT8", "LACKS", "SOURCES (high/medium/low)")]
    for backend, chip in chips:
        peak = lambda d: _flops(chip.peak_flops[d].value) if d in chip.peak_flops else "-"  # noqa: E731
        present = {str(d) for d in chip.dtypes}
        confidence = Counter(f.confidence for f in chip.figures.values())
        default = "*" if chip.model.lower() == backend.default_model.lower() else ""
        rows.append((chip.kind, chip.model + default, chip.name, chip.vendor, format_bytes(int(chip.memory_capacity.value)),
                     _bandwidth(chip.memory_bandwidth.value), peak("float16"), peak("bfloat16"), peak("int8"),
                     ",".join(d for d in _COMMON_DTYPES if d not in present) or "-",
                     f"{confidence['high']}/{confidence['medium']}/{confidence['low']}"))
    _table(rows)
    print("* the backend's default model; FLOP/s (OP/s for int8) peaks; `hal chips KIND --sources` for every figure's source")
    if args.sources:
        for _, chip in chips:
            print(f"\n{chip.kind} {chip.model} ({chip.path.name}): {chip.source}")
            for key, fig in chip.figures.items():
                print(f"    {key} = {_figure(fig.value, fig.unit)}  ({fig.confidence}) {fig.source}")
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
    dims = _dim_sizes(args.dim)
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
    defaulted = sorted({d for info in sess.model.inputs if info.name not in given
                        for d in (info.shape or ()) if isinstance(d, str) and d not in dims})
    if defaulted:
        print(f"symbolic dimension(s) {', '.join(defaulted)} set to 1 for the random inputs; give --dim NAME=SIZE to choose",
              file=sys.stderr)
    rng = np.random.default_rng(args.seed)
    feeds = {}
    for info in sess.model.inputs:
        if info.name in given:
            feeds[info.name] = given[info.name]
            continue
        shape = tuple(d if isinstance(d, int) else dims.get(d, 1) if isinstance(d, str) else 1 for d in (info.shape or ()))
        dtype = info.dtype.numpy if info.dtype is not None else np.dtype(np.float32)
        _check_random_input(info.name, shape)
        try:
            if dtype.kind == "f" or dtype.kind == "V":
                feeds[info.name] = rng.standard_normal(shape).astype(dtype)
            elif dtype.kind == "b":
                feeds[info.name] = rng.integers(0, 2, shape).astype(bool)
            else:
                feeds[info.name] = rng.integers(0, 10, shape).astype(dtype)  # safe as ids and indices
        except MemoryError:
            raise _random_input_too_big(info.name, shape) from None
    return feeds


def _check_random_input(name: str, shape: tuple[int, ...]) -> None:
    """Refuses a shape no random input can have before numpy allocates it: a negative size, or
    more bytes than the host has (a damaged model, or a --dim typo)."""
    import math

    from .errors import InvalidModelError

    if any(d < 0 for d in shape):
        raise InvalidModelError(f"input {name!r} has shape {shape}, with a negative size; the model is damaged: export it again")
    if math.prod(shape) * 8 > host_memory_bytes():  # numpy draws float64 or int64 values, then casts
        raise _random_input_too_big(name, shape)


def _random_input_too_big(name: str, shape: tuple[int, ...]):
    from .errors import OutOfMemoryError

    return OutOfMemoryError(
        f"a random input {name!r} of shape {shape} does not fit in this host's {format_bytes(host_memory_bytes())}; "
        f"give it with --input {name}=FILE, or smaller sizes with --dim NAME=SIZE"
    )


def _dim_sizes(items: list[str] | None) -> dict[str, int]:
    """--dim NAME=SIZE options (run, profile, fit) as {name: size}."""
    sizes = {}
    for item in items or []:
        name, sep, size = item.partition("=")
        if not sep or not size.isdigit():
            raise InvalidArgumentError(f"--dim takes NAME=SIZE (a symbolic dimension), got {item!r}")
        sizes[name] = int(size)
    return sizes


def _load_array(path: str):
    import numpy as np

    from .errors import InvalidArgumentError

    try:
        if path.endswith(".pb"):
            import onnx
            from onnx import numpy_helper

            from .graph.tensor_data import check_tensor_data

            tensor = onnx.TensorProto()
            with open(path, "rb") as f:
                tensor.ParseFromString(f.read())
            if tensor.data_location == onnx.TensorProto.EXTERNAL:  # onnx would open a path the file names
                raise InvalidArgumentError(
                    f"cannot read input {path}: its data is in another file, which hal does not open for an input; "
                    "save the tensor with its data inline (onnx.numpy_helper.from_array)"
                )
            check_tensor_data([tensor], path)
            return numpy_helper.to_array(tensor)
        return np.load(path, allow_pickle=False)
    except HalError as exc:
        raise InvalidArgumentError(str(exc)) from None
    except (OSError, ValueError) as exc:
        raise InvalidArgumentError(f"cannot read input {path}: {exc}") from None
    except Exception as exc:  # protobuf DecodeError and friends
        raise InvalidArgumentError(f"cannot read input {path}: not a .npy array or a serialized onnx TensorProto ({exc})") from None


def _fit_command(args: argparse.Namespace) -> int:
    from . import registry
    from .cli_options import fit_targets, simulated_chip_models
    from .capability import CompileOptions
    from .graph.model import load_model
    from .sim import ChipSpec
    from .sim.fit import as_a_session_sees_it, fit_model, fit_on_host

    names = device_list(args.devices)
    if not names:
        raise InvalidArgumentError("give --devices all, or a comma-separated list of devices and chip models (910B, R200)")
    model = load_model(_with_dims(args.model, args.dim))
    options = CompileOptions(precision_mode=args.precision_mode, fc_precision=args.fc_precision)
    host = registry.device("cpu:0")
    cpu_seconds = lambda node: host.backend.cost(node, host.spec, options) or 0.0  # noqa: E731
    backends = registry.backends()
    reports = []
    on_chips = None
    chips = {(c.kind, c.model): c for _, c in simulated_chip_models()}
    for target in fit_targets(names):
        if not isinstance(target, ChipSpec) and target.simulated:  # a simulated device: its chip model's spec
            target = chips[(target.kind, target.model)]
        if isinstance(target, ChipSpec):
            backend = backends[target.kind]
            on_chips = on_chips or as_a_session_sees_it(model)
            reports.append(fit_model(on_chips, target, lambda node, b=backend, c=target: b.chip_supports(node, c), cpu_seconds,
                                     options=options))
        else:
            reports.append(fit_on_host(model, target.device_name, target.memory_bytes, cpu_seconds))
    if args.json:
        print(json.dumps([r.to_dict() for r in reports], indent=2))
        return 0
    rows = [("TARGET", "NAME", "MEMORY", "WEIGHTS", "ACTIVATIONS", "FITS", "EST TIME", "FALLBACK")]
    for r in reports:
        fallback = f"{r.fallback_nodes} node(s): {', '.join(r.fallback_ops[:4])}{'...' if len(r.fallback_ops) > 4 else ''}" if r.fallback_nodes else "0"
        rows.append((r.target, r.name, format_bytes(r.capacity_bytes), format_bytes(r.weight_bytes), format_bytes(r.activation_bytes),
                     "yes" if r.fits else f"no, {format_bytes(r.needed_bytes - r.capacity_bytes)} short",
                     f"{r.estimated_s * 1e3:.3f} ms", fallback))
    _table(rows)
    if any(r.dynamic for r in reports):
        print("unknown dimensions counted as 1: give their sizes with --dim NAME=SIZE", file=sys.stderr)
    print("estimates: each chip's roofline from its spec file; fallback nodes on the CPU's estimate, copies over the host link")
    return 0


def _with_dims(path: str, dims: list[str] | None):
    """The model at `path`, its inputs' symbolic dimensions set from --dim NAME=SIZE (then shape
    inference sizes everything after them)."""
    if not dims:
        return path
    import onnx

    sizes = _dim_sizes(dims)
    from .graph.model import load_model

    proto = onnx.ModelProto()
    proto.CopyFrom(load_model(path).proto)
    used = set()
    for value in proto.graph.input:
        for dim in value.type.tensor_type.shape.dim:
            if dim.HasField("dim_param") and dim.dim_param in sizes:
                used.add(dim.dim_param)
                dim.dim_value = sizes[dim.dim_param]
    unused = sorted(set(sizes) - used)
    if unused:
        raise InvalidArgumentError(f"--dim names {', '.join(unused)} are not symbolic dimensions of the model's inputs")
    for value in proto.graph.value_info[:]:  # inferred again from the new sizes
        proto.graph.value_info.remove(value)
    return proto


def _sim_new_command(args: argparse.Namespace) -> int:
    from pathlib import Path

    from . import registry
    from .cli_options import simulated_chip_models
    from .sim.scaffold import scaffold_chip

    models = simulated_chip_models()
    wanted = args.source.lower()
    found = [(b, c) for b, c in models if wanted in (c.path.stem.lower(), c.model.lower())]
    if not found:
        from .registry import did_you_mean

        names = [c.path.stem for _, c in models]
        guess = did_you_mean(wanted, names)
        raise InvalidArgumentError(f"--from {args.source!r} is not a chip hal ships" + (f"; did you mean '{guess}'?" if guess else "")
                                   + f" (chips: {', '.join(names)})")
    taken = set(registry.backends()) | set(registry.backend_failures())
    root = scaffold_chip(args.name, found[0], Path(args.dir), taken=taken)
    print(f"wrote {root}: pip install -e {root} && pytest {root / 'tests'}; then make its spec file, op table and "
          f"expectations the new chip's ({root / 'README.md'})")
    return 0


def _device_clocks(sess):
    return {d: d.default_stream.record_event() for d in sess.devices}


def _run_command(args: argparse.Namespace) -> int:
    import time

    import numpy as np

    sess = _session(args, device_list(args.devices))
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
    print(f"{fallbacks} of {len(sess.plan.nodes)} node(s) fell back from {sess.plan.devices[0]}"
          + ("; `hal explain` says why" if fallbacks else ""))
    return 0


def _explain_command(args: argparse.Namespace) -> int:
    sess = _session(args, device_list(args.devices))
    print(sess.plan.to_json() if args.json else sess.plan.explain())
    return 0


def _profile_command(args: argparse.Namespace) -> int:
    from pathlib import Path

    from . import profiler

    if Path(args.model).is_dir():  # an LLM folder: profile a generation (prefill, then each decode step per device)
        from .llm.cli import build_model, prompt_ids

        args.random_config, args.quantization, args.batch = None, "none", 1
        model = build_model(args, device_list(args.devices))
        with profiler.profile() as prof:
            model.generate(prompt_ids(args), args.max_new_tokens)
        path = prof.save(args.output)
        print(f"wrote {path}: {len(prof.events)} events (prefill and {args.max_new_tokens - 1} decode steps); "
              "open it in ui.perfetto.dev or chrome://tracing")
        return 0
    sess = _session(args, device_list(args.devices))
    feeds = _feeds(sess, args)
    with profiler.profile():  # a warm-up, traced and thrown away: it builds the node-by-node run profiling uses
        sess.run(None, feeds)
    with profiler.profile() as prof:
        for _ in range(args.repeat):
            sess.run(None, feeds)
    path = prof.save(args.output)
    print(f"wrote {path}: {len(prof.events)} events; open it in ui.perfetto.dev or chrome://tracing")
    return 0


def _model_arguments(parser: argparse.ArgumentParser, *, inputs: bool, llm: bool = False) -> None:
    parser.add_argument("model", help="path to an .onnx model" + (", or an LLM folder (config.json + safetensors)" if llm else ""))
    parser.add_argument("--precision-mode", help="Ascend CANN precision_mode (default: the chip's documented default)")
    parser.add_argument("--fc-precision", help="Kunlun fully connected compute type (default int16)")
    if inputs:
        parser.add_argument("--input", action="append", metavar="NAME=FILE", help="an input from .npy or .pb (repeatable); others are random")
        parser.add_argument("--dim", action="append", metavar="NAME=SIZE", help="size of a symbolic dimension for random inputs (default 1)")
        parser.add_argument("--seed", type=int, default=0, help="seed of random inputs")
        parser.add_argument("--repeat", type=int, default=1, help="runs to time (after one warm-up run)")


def _versions() -> str:
    """hal's version, its ONNX stack's and torch's, the backend contract's, and each backend's
    (the distribution that registers it), read from package metadata: nothing is imported but hal."""
    from importlib import metadata

    from . import __version__
    from .backend import HAL_BACKEND_API, MIN_BACKEND_API

    def version_of(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "not installed"

    lines = [f"hal {__version__}"]
    lines += [f"{dist} {version_of(dist)}" for dist in ("onnx", "onnxruntime", "numpy", "torch")]
    lines.append(f"backend contract HAL_BACKEND_API {HAL_BACKEND_API} (loads backends written for {MIN_BACKEND_API}..{HAL_BACKEND_API})")
    lines.append("backends:")
    for ep in sorted(metadata.entry_points(group="hal.backends"), key=lambda e: e.name):
        dist = ep.dist
        lines.append(f"  {ep.name}: {ep.value}" + (f" ({dist.metadata['Name']} {dist.version})" if dist is not None else ""))
    return "\n".join(lines)


class _VersionAction(argparse.Action):
    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, help="print the versions of hal, its dependencies and backends")

    def __call__(self, parser, namespace, values, option_string=None):
        print(_versions())
        parser.exit()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hal", description="One device API for many AI chips.")
    parser.add_argument("--version", action=_VersionAction)
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
    add_device_option(run, default="cpu", help="device, or a comma-separated priority list (default cpu)")
    run.set_defaults(run=_run_command)

    explain = sub.add_parser("explain", help="show where every node of a model would run and why",
                             description="Show the placement plan: per node its device or fallback reason, "
                                         "transfers, and estimated time per device.")
    _model_arguments(explain, inputs=False)
    add_device_option(explain, default="cpu", help="device, or comma-separated devices in priority order (default cpu)")
    explain.add_argument("--placement", choices=("priority", "cost"), default="priority")
    explain.add_argument("--strict", action="store_true", help="no fallback: fail listing what the first device lacks")
    explain.add_argument("--json", action="store_true", help="machine-readable plan")
    explain.set_defaults(run=_explain_command)

    fit = sub.add_parser("fit", help="which chips fit an ONNX model: memory, estimated time, fallbacks",
                         description="For each chip model (or device): whether the model's weights and peak activations "
                                     "fit its memory, the estimated time of a run on its roofline, and how many nodes "
                                     "would fall back to the CPU. Nothing runs; the chips' spec files and op tables answer.")
    _model_arguments(fit, inputs=False)
    add_device_option(fit, default="all", help="'all' (every simulated chip model shipped, and cpu; default) or a "
                                               "comma-separated list of devices and chip models (910B, R200)")
    fit.add_argument("--dim", action="append", metavar="NAME=SIZE", help="size of a symbolic input dimension (default 1)")
    fit.add_argument("--json", action="store_true", help="machine-readable: a list, one object per chip model")
    fit.set_defaults(run=_fit_command)

    sim = sub.add_parser("sim", help="simulated chips: scaffold a new one",
                         description="Tools for simulated chips. `hal chips` lists the ones installed.")
    sim_commands = sim.add_subparsers(dest="sim_command", required=True, metavar="COMMAND")
    new = sim_commands.add_parser("new", help="a new simulated chip family as a package, copied from a shipped chip",
                                  description="Write a package for a new simulated chip family (spec file, op table, "
                                              "conformance expectations, entry point, a test) copied from a chip hal "
                                              "ships; it passes the API conformance suite once installed.")
    new.add_argument("name", help="the family's backend name, e.g. mychip (devices mychip:0, mychip:1)")
    new.add_argument("--from", dest="source", required=True, metavar="CHIP",
                     help="the chip to copy: a spec file's name (ascend_910b) or a model (910B, P800)")
    new.add_argument("--dir", default=".", help="where to write hal-NAME/ (default: here)")
    new.set_defaults(run=_sim_new_command)

    prof = sub.add_parser("profile", help="run a model and write a Chrome/Perfetto trace",
                          description="Run a model and write a trace: a track per device and stream, copies "
                                      "shown, on the simulated and the wall clock.")
    _model_arguments(prof, inputs=True, llm=True)
    add_device_option(prof, default="cpu", help="device, or a comma-separated priority list (default cpu)")
    prof.add_argument("-o", "--output", default="trace.json", help="where to write the trace (default trace.json)")
    prof.add_argument("--prompt-ids", default="1,2,3", help="for an LLM folder: the prompt's token ids (default 1,2,3)")
    prof.add_argument("--max-new-tokens", type=int, default=16, help="for an LLM folder: tokens to generate (default 16)")
    prof.set_defaults(run=_profile_command)

    from .conformance.cli import add_parser as add_conformance_parser

    add_conformance_parser(sub)
    from .llm.cli import add_generate_parser, add_llm_parser

    add_llm_parser(sub)
    add_generate_parser(sub)
    _mark_subcommands(parser)
    return parser


def _mark_subcommands(parser: argparse.ArgumentParser) -> None:
    """Each (sub)subcommand's parser records itself, so that main reports an error with that
    command's usage and name ("hal llm fit: error: ...")."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for subparser in action.choices.values():
                subparser.set_defaults(subcommand_parser=subparser)
                _mark_subcommands(subparser)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    # parse_known_args, then the subcommand's own parser reports what is left: argparse would
    # otherwise answer an unknown option of `hal explain` with hal's top-level usage.
    args, extra = parser.parse_known_args(argv)
    if extra:
        args.subcommand_parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return args.run(args)
    except HalError as exc:
        if isinstance(exc, InvalidArgumentError):  # about what was typed: show how to type it
            args.subcommand_parser.print_usage(sys.stderr)
        print(f"{args.subcommand_parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `hal explain model.onnx | head`: the reader left, which is not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
