"""`hal generate`: tokens from a Hugging Face folder (or a model made on the spot), with time to
first token and decode speed on the wall clock and on each simulated chip's clock."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..errors import InvalidArgumentError

__all__ = ["add_generate_parser", "add_generation_arguments", "build_model", "prompt_ids"]


def add_generation_arguments(parser: argparse.ArgumentParser) -> None:
    """The model and prompt flags `hal generate` and `hal profile MODEL_DIR` share."""
    parser.add_argument("--random-config", metavar="CONFIG",
                        help="make a model with random weights instead of reading MODEL_DIR: a config.json, or one of "
                             "llama-tiny, llama-100m")
    parser.add_argument("--prompt-ids", default="1,2,3", help="comma-separated token ids of the prompt (default 1,2,3)")
    parser.add_argument("--batch", type=int, default=1, help="run the prompt as a batch of this many sequences")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--quantization", choices=("none", "int8"), default="none", help="int8: weight-only int8 per channel")
    parser.add_argument("--seed", type=int, default=0, help="seed of random weights and of sampling")


def add_generate_parser(sub: Any) -> None:
    parser = sub.add_parser("generate", help="generate tokens with an LLM (Llama / Qwen2 family) on any device",
                            description="Generate tokens from a Hugging Face model folder (config.json + safetensors) "
                                        "on one device or a pipeline of devices; print the tokens, time to first token "
                                        "and decode tokens/s on the wall clock and on each simulated chip's clock.")
    parser.add_argument("model", nargs="?", help="a Hugging Face model folder (config.json + *.safetensors)")
    add_generation_arguments(parser)
    parser.add_argument("--device", default=None, help="device (default cpu), or a comma-separated list: layers split in order")
    parser.add_argument("--devices", default=None, help="the same as a comma-separated --device list")
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
                   quantization=args.quantization)
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

    devices = [d.strip() for d in (args.devices or args.device or "cpu").split(",") if d.strip()]
    model = build_model(args, devices)
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
        print(f"{stage['device']}: layers {stage['layers'][0]}-{stage['layers'][1]}, linear {stage['linear']}, "
              f"KV cache {stage['kv_cache']}")
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
