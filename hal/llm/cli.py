"""The LLM commands (registered by hal.cli): `hal llm fit` answers whether a model fits a chip and
how fast it would decode, from the model's config and the chips' spec files alone; `hal generate`
makes tokens from a Hugging Face folder (or a model made on the spot), with time to first token and
decode speed on the wall clock and on each simulated chip's clock."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..cli_options import add_device_option, device_list, fit_targets
from ..errors import InvalidArgumentError
from ..memory import format_bandwidth, format_bytes

if TYPE_CHECKING:
    from ..device import DeviceSpec
    from ..sim.spec import ChipSpec
    from .fit import FitReport

__all__ = ["add_llm_parser", "add_generate_parser", "add_generation_arguments", "build_model", "prompt_ids"]

_QUANTIZATIONS = ("none", "int8", "int4")


def _bandwidth(value: float | None) -> str:
    return "unknown" if value is None else format_bandwidth(value)


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 1:
        return f"{value:.2f} s"
    return f"{value * 1e3:.1f} ms" if value >= 1e-3 else f"{value * 1e6:.0f} us"


def _rate(report: FitReport) -> str:
    tokens = report.decode_tokens_per_s
    return "-" if tokens is None else f"{tokens:.1f} tok/s"


def _params(count: int) -> str:
    return f"{count / 1e9:.1f} B"


def _fits(report: FitReport) -> str:
    if report.fits:
        return f"yes, {format_bytes(report.headroom_bytes)} free"
    return f"no, {format_bytes(-report.headroom_bytes)} short"


def _breakdown(args: argparse.Namespace) -> bool:
    """One device or chip model named (not 'all'): a breakdown; several: a table."""
    names = device_list(args.devices)
    return len(names) == 1 and names[0] != "all"


def _targets(args: argparse.Namespace) -> list[ChipSpec | DeviceSpec]:
    names = device_list(args.devices)
    if not names:
        raise InvalidArgumentError("give --device DEVICE (a breakdown for one device or chip model) or --devices all, or a "
                                   "comma-separated list of devices and chip models (a table)")
    return fit_targets(names)


def _print_report(report: FitReport) -> None:
    share = f", {_params(report.active_params)} active per token" if report.active_params != report.total_params else ""
    print(f"{report.model} on {report.chip}: {report.chip_name} ({report.vendor})")
    print(f"  {report.batch} sequence(s) x {report.context} positions, prompt {report.prompt}; weights "
          f"{report.weight_dtype}, KV cache {report.kv_dtype}, activations {report.activation_dtype}")
    rows = [
        ("parameters", f"{_params(report.total_params)}{share}"),
        ("weights", format_bytes(report.weight_bytes)),
        ("KV cache", format_bytes(report.kv_cache_bytes)),
        ("workspace", f"{format_bytes(report.workspace_bytes)} (estimate: prefill activations)"),
        ("total", format_bytes(report.total_bytes)),
        ("capacity", format_bytes(report.capacity_bytes)),
        ("fits", _fits(report)),
        ("memory bandwidth", _bandwidth(report.memory_bandwidth)),
        (f"peak {report.compute_dtype}", "unknown" if report.peak_flops is None else f"{report.peak_flops / 1e12:.0f} TFLOP/s"),
    ]
    if report.ttft_s is not None and report.decode_step_s is not None:
        rows += [
            ("time to first token", f"{_seconds(report.ttft_s)} (prefill of {report.batch} x {report.prompt} tokens, "
                                    f"{report.prefill_bound}-bound)"),
            ("decode", f"{_rate(report)} ({_seconds(report.decode_step_s)} per step of {report.batch} token(s) at "
                       f"position {report.context}: {format_bytes(report.step_bytes)} read, {report.decode_bound}-bound, "
                       f"{report.launches_per_pass} launches x {_seconds(report.launch_overhead)})"),
        ]
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"  {label.ljust(width)}  {value}")
    for note in report.notes:
        print(f"  note: {note}")


def _print_table(reports: list[FitReport]) -> None:
    first = reports[0]
    print(f"{first.model}: {first.batch} sequence(s) x {first.context} positions, prompt {first.prompt}; weights "
          f"{first.weight_dtype}, KV cache {first.kv_dtype}")
    rows = [("CHIP", "VENDOR", "MEMORY", "BANDWIDTH", "WEIGHTS", "KV CACHE", "TOTAL", "FITS", "TTFT", "DECODE")]
    for r in reports:
        rows.append((
            r.chip, r.vendor, format_bytes(r.capacity_bytes), _bandwidth(r.memory_bandwidth), format_bytes(r.weight_bytes),
            format_bytes(r.kv_cache_bytes), format_bytes(r.total_bytes), "yes" if r.fits else "no",
            _seconds(r.ttft_s), _rate(r),
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    shown = set()
    for r in reports:
        for note in r.notes:
            if ("no time estimates" in note or note.startswith("MoE")) and note not in shown:
                shown.add(note)
                print(f"note: {note}")


def _fit_command(args: argparse.Namespace) -> int:
    from .fit import fit, model_shape

    shape = model_shape(args.config)
    weight_dtype = args.dtype if args.quantization == "none" else args.quantization
    reports = [
        fit(shape, target, context=args.context, batch=args.batch, prompt=args.prompt, weight_dtype=weight_dtype,
            kv_dtype=args.kv_dtype or args.dtype, activation_dtype=args.dtype)
        for target in _targets(args)
    ]
    if args.json:
        payload = reports[0].to_dict() if _breakdown(args) else [r.to_dict() for r in reports]
        print(json.dumps(payload, indent=2))
    elif _breakdown(args):
        _print_report(reports[0])
    else:
        _print_table(reports)
    return 0


def add_llm_parser(sub: argparse._SubParsersAction) -> None:
    from .fit import FLOAT_DTYPES
    from .presets import preset_names

    llm = sub.add_parser("llm", help="LLM tools: will a model fit a chip, and how fast would it decode",
                         description="Tools for decoder LLMs (Llama / Qwen2 family; MoE models for `fit`).")
    commands = llm.add_subparsers(dest="llm_command", required=True, metavar="COMMAND")
    fit = commands.add_parser(
        "fit", help="memory and speed of a model on chips, from its config.json and the spec files alone",
        description="Weights, KV cache and workspace against each chip's memory, time to first token and decode "
                    "tokens/s from the roofline of the chip's spec file; the model is never loaded. Sizes in GiB; the "
                    "decode speed is that of the last position of the window, where the KV cache is largest.")
    fit.add_argument("--config", required=True, metavar="CONFIG",
                     help=f"a config.json, a model folder holding one, or a preset: {', '.join(preset_names())}")
    add_device_option(fit, default=None, help="one device (ascend:0, kunlun, cpu) or chip model (910B, R200): a breakdown; "
                                               "'all' (every simulated chip model shipped, and cpu) or a comma-separated list "
                                               "of devices and chip models: a table, a row per chip model")
    fit.add_argument("--context", type=int, default=4096, help="positions per sequence, prompt included (default 4096)")
    fit.add_argument("--batch", type=int, default=1, help="sequences decoded together (default 1)")
    fit.add_argument("--prompt", type=int, help="prompt tokens prefilled per sequence (default: the whole context)")
    fit.add_argument("--dtype", choices=FLOAT_DTYPES, default="float16", help="weights and activations (default float16)")
    fit.add_argument("--quantization", choices=_QUANTIZATIONS, default="none",
                     help="per-channel weight-only quantization of the matmul weights (float32 scales)")
    fit.add_argument("--kv-dtype", choices=FLOAT_DTYPES, help="KV cache dtype (default: --dtype)")
    fit.add_argument("--json", action="store_true", help="machine-readable: an object for one device, a list for several")
    fit.set_defaults(run=_fit_command)


# -- hal generate ---------------------------------------------------------------------------------
def add_generation_arguments(parser: argparse.ArgumentParser) -> None:
    """The model and prompt flags `hal generate` and `hal profile MODEL_DIR` share."""
    parser.add_argument("--random-config", metavar="CONFIG",
                        help="make a model with random weights instead of reading MODEL_DIR: a config.json, or one of "
                             "llama-tiny, llama-100m")
    parser.add_argument("--prompt-ids", default="1,2,3", help="comma-separated token ids of the prompt (default 1,2,3)")
    parser.add_argument("--batch", type=int, default=1, help="run the prompt as a batch of this many sequences")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--quantization", choices=("none", "int8", "w8a8"), default="none",
                        help="int8: weight-only int8 per output channel; w8a8: int8 activations too (quantized_matmul)")
    parser.add_argument("--seed", type=int, default=0, help="seed of random weights and of sampling")
    parser.add_argument("--parallel", choices=("pipeline", "tensor"), default="pipeline",
                        help="over several devices: pipeline (layers split in order, the default) or tensor (every "
                             "layer's heads and MLP split over all of them, two all-reduces per layer)")


def add_generate_parser(sub: Any) -> None:
    parser = sub.add_parser("generate", help="generate tokens with an LLM (Llama / Qwen2 family) on any device",
                            description="Generate tokens from a Hugging Face model folder (config.json + safetensors) "
                                        "on one device, a pipeline of devices or a tensor-parallel group; print the tokens, time to first token "
                                        "and decode tokens/s on the wall clock and on each simulated chip's clock.")
    parser.add_argument("model", nargs="?", help="a Hugging Face model folder (config.json + *.safetensors)")
    add_generation_arguments(parser)
    add_device_option(parser, default="cpu", help="device (default cpu), or a comma-separated list: layers split in order "
                                                   "(--parallel tensor: every layer split over all of them)")
    parser.add_argument("--precision-mode", help="Ascend CANN precision_mode (default: the chip's documented default)")
    parser.add_argument("--fc-precision", help="Kunlun fully connected compute type (default int16)")
    parser.add_argument("--sample", action="store_true", help="sample instead of greedy decoding")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--top-k", type=int, default=0)
    parser.add_argument("--top-p", type=float, default=1.0)
    parser.add_argument("--numerics", action="store_true", help="also compare the logits with float32 cpu (numerics_report)")
    parser.add_argument("--profile", metavar="TRACE.json", help="write a Chrome/Perfetto trace of the generation")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(run=_generate_command)


def prompt_ids(args: argparse.Namespace):
    import numpy as np

    try:
        ids = [int(part) for part in args.prompt_ids.split(",") if part.strip()]
    except ValueError:
        raise InvalidArgumentError(f"--prompt-ids takes comma-separated integers, got {args.prompt_ids!r}") from None
    if not ids:
        raise InvalidArgumentError("--prompt-ids needs at least one token id")
    if args.batch < 1:
        raise InvalidArgumentError(f"--batch must be >= 1, got {args.batch}")
    return np.tile(np.array(ids, np.int64), (args.batch, 1))


def build_model(args: argparse.Namespace, devices: list[str]):
    from .. import llm
    from .config import RANDOM_MODEL_CONFIGS, DecoderConfig

    options = dict(precision_mode=getattr(args, "precision_mode", None), fc_precision=getattr(args, "fc_precision", None),
                   quantization=args.quantization, parallel=getattr(args, "parallel", "pipeline"))
    if args.random_config:
        if args.model:
            raise InvalidArgumentError("give a MODEL_DIR or --random-config, not both")
        name = args.random_config
        if name in RANDOM_MODEL_CONFIGS:
            config: Any = RANDOM_MODEL_CONFIGS[name]
        elif Path(name).exists():
            config = DecoderConfig.from_file(name)
        else:
            raise InvalidArgumentError(f"--random-config {name!r}: neither a config.json nor one of {', '.join(RANDOM_MODEL_CONFIGS)}")
        return llm.load(config, devices=devices, seed=args.seed, **options)
    if not args.model:
        raise InvalidArgumentError("give a model folder (config.json + safetensors), or --random-config llama-tiny")
    return llm.load(args.model, devices=devices, **options)


def _generate_command(args: argparse.Namespace) -> int:
    from .. import profiler

    model = build_model(args, device_list(args.devices))
    ids = prompt_ids(args)
    progress = _progress(args.max_new_tokens, quiet=args.json)
    kwargs = dict(do_sample=args.sample, temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, seed=args.seed,
                  on_token=lambda step, tokens: progress.update(1))
    try:
        if args.profile:
            with profiler.profile() as prof:
                result = model.generate(ids, args.max_new_tokens, **kwargs)
            prof.save(args.profile)
        else:
            result = model.generate(ids, args.max_new_tokens, **kwargs)
    finally:
        progress.close()
    report = model.numerics_report(ids, args.max_new_tokens) if args.numerics else None
    summary = _summary(model, result, report)
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    for stage in summary["stages"]:
        if stage.get("route") == "onnx":
            print(f"{stage['device']}: the ONNX export, {stage['nodes']} nodes")
            continue
        split = (f" (rank {stage['rank']}: attention heads {stage['attention_heads']}, KV heads {stage['kv_heads']})"
                 if stage.get("parallel") == "tensor" else "")
        print(f"{stage['device']}: layers {stage['layers'][0]}-{stage['layers'][1]}{split}, linear {stage['linear']}, "
              f"KV cache {stage['kv_cache']}")
        hidden = stage.get("hidden_in")
        if hidden:
            cost = hidden.get("simulated_s_per_token")
            print(f"  hidden state in from {hidden['from']} {hidden['route']}: {hidden['bytes_per_token']} bytes a token"
                  + (f", {cost * 1e6:.1f} us simulated" if cost is not None else ""))
    for row, tokens in enumerate(summary["tokens"]):
        print(f"tokens[{row}]: {' '.join(str(t) for t in tokens)}")
    print(f"time to first token: {summary['time_to_first_token_ms']:.2f} ms wall"
          + "".join(f", {s['time_to_first_token_ms']:.3f} ms simulated on {name}" for name, s in summary["simulated"].items()))
    print(f"decode: {summary['decode_tokens_per_s']:.1f} tokens/s wall"
          + (f", {summary['simulated_decode_tokens_per_s']:.1f} tokens/s simulated" if summary["simulated"] else ""))
    if report is not None:
        print(report)
    if args.profile:
        print(f"wrote {args.profile}: open it in ui.perfetto.dev or chrome://tracing")
    return 0


def _summary(model, result, report) -> dict[str, Any]:
    import numpy as np

    return {
        "stages": model.describe(),
        "tokens": result.tokens.tolist(),
        "prompt_length": result.prompt_length,
        "time_to_first_token_ms": result.time_to_first_token_s * 1e3,
        "decode_tokens_per_s": result.decode_tokens_per_s,
        "simulated": {name: {"time_to_first_token_ms": s["time_to_first_token_s"] * 1e3,
                             "decode_ms_per_token": float(np.mean(s["decode_step_s"]) * 1e3) if s["decode_step_s"] else None}
                      for name, s in result.simulated.items()},
        "simulated_decode_tokens_per_s": result.simulated_decode_tokens_per_s(),
        **({"numerics": {"max_abs_error": report.max_abs_error, "max_abs_logit": report.max_abs_logit,
                         "top1_agreement": report.top1_agreement}} if report is not None else {}),
    }


def _progress(total: int, *, quiet: bool):
    """tqdm on stderr while tokens come (silent when stderr is not a terminal, or with --json)."""
    from tqdm import tqdm

    return tqdm(total=total, unit="tok", desc="generating", file=sys.stderr, disable=True if quiet else None, leave=False)
