"""LLM decode on the CPU and the simulated chips: hal.llm against transformers (torch eager, static
cache) and onnxruntime on the same random-weight model, in one process.

    python3 benchmarks/bench_llm.py [--config llama-100m] [--prompt 128] [--new-tokens 64] [--repeats 3]

Targets (issue #15), on a ~100M-parameter Llama-style model, batch 1, a 128-token prompt, 64 new tokens:
- cpu float32 decode tokens/s >= 1.0x transformers' generate (eager, static cache) and >= 1.0x
  onnxruntime running the same model exported with past key/values (hal.llm.onnx_export);
- int8 weight-only decode >= 1.5x the float32 tokens/s (decode reads every weight once per token:
  the bytes-per-token floor from this machine's measured copy bandwidth is printed beside);
- simulated chips: decode time per token on the simulated clock within 25% of the chip's roofline
  ((weight bytes + KV bytes) / HBM bandwidth + launch overhead per kernel, hal.llm.fit), and
  wall time <= 1.5x cpu's.
Every contender runs 2 threads (this machine's cores) and is measured in turn, `--repeats` times;
figures are medians over the repeats of each run's median decode step.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np

import hal.llm
from _harness import print_table
from hal.llm.config import RANDOM_MODEL_CONFIGS, DecoderConfig
from hal.llm.fit import decode_step_roofline, model_shape, model_weight_bytes
from hal.llm.runtime import DECODER_KERNELS_PER_LAYER, DECODER_KERNELS_PER_STEP

THREADS = 2


def copy_bandwidth(nbytes: int = 256 << 20) -> float:
    """Bytes/s this machine moves in a large numpy copy (read + write counted), median of 5."""
    src = np.ones(nbytes // 4, np.float32)
    dst = np.empty_like(src)
    samples = []
    for _ in range(5):
        start = time.perf_counter()
        np.copyto(dst, src)
        samples.append(time.perf_counter() - start)
    return 2 * nbytes / statistics.median(samples)


def weight_bytes_per_token(config: DecoderConfig, itemsize: float) -> float:
    """Bytes every decode step reads (hal.llm.fit's count): each matmul weight, the lm_head
    included, once at itemsize with a float32 scale per output channel when quantized; norms; one
    embedding row."""
    return model_weight_bytes(model_shape(config), itemsize, 4, itemsize < 4, 0, embedding_rows=1)


class Contender:
    def __init__(self, name: str, run):
        self.name, self.run = name, run
        self.ttft: list[float] = []
        self.decode_step: list[float] = []
        self.simulated: list[tuple[float, float]] = []

    def measure(self) -> None:
        ttft, steps, simulated = self.run()
        self.ttft.append(ttft)
        self.decode_step.append(statistics.median(steps))
        if simulated is not None:
            self.simulated.append(simulated)

    @property
    def tokens_per_s(self) -> float:
        return 1.0 / statistics.median(self.decode_step)


def hal_contender(name: str, model: hal.llm.DecoderModel, ids: np.ndarray, new_tokens: int) -> Contender:
    def run():
        result = model.generate(ids, new_tokens, eos_token_id=None)
        simulated = None
        if result.simulated:
            (sim,) = result.simulated.values()
            simulated = (sim["time_to_first_token_s"], statistics.median(sim["decode_step_s"]))
        return result.time_to_first_token_s, result.decode_step_s, simulated
    return Contender(name, run)


def transformers_contender(config: dict, weights: dict, ids: np.ndarray, new_tokens: int) -> Contender | None:
    try:
        import torch
        import transformers
    except ImportError:
        print("transformers/torch not installed: pip install -e '.[test,torch]' to compare with them", file=sys.stderr)
        return None
    torch.set_num_threads(THREADS)
    model = transformers.LlamaForCausalLM(transformers.LlamaConfig(**config)).eval()
    state = {k: torch.from_numpy(v) for k, v in weights.items()}
    model.load_state_dict(state, strict=False)
    prompt = torch.from_numpy(ids)

    class Clock(transformers.LogitsProcessor):
        """Called once per new token, as its logits arrive: the times between calls are the steps."""

        def __init__(self):
            self.times: list[float] = []

        def __call__(self, input_ids, scores):
            self.times.append(time.perf_counter())
            return scores

    def run():
        clock = Clock()
        start = time.perf_counter()
        with torch.no_grad():
            model.generate(prompt, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                           cache_implementation="static", logits_processor=transformers.LogitsProcessorList([clock]),
                           pad_token_id=0)
        times = [start, *clock.times]
        return times[1] - times[0], list(np.diff(times[1:])), None
    return Contender("transformers eager (static cache)", run)


def onnxruntime_contender(config: DecoderConfig, weights: dict, ids: np.ndarray, new_tokens: int) -> Contender:
    from hal.llm.onnx_export import OnnxDecoder

    decoder = OnnxDecoder(config, weights, threads=THREADS)

    def run():
        decoder.generate(ids, new_tokens)
        times = decoder.last_times
        return times.time_to_first_token_s, list(times.decode_step_s), None
    return Contender("onnxruntime (past key/values)", run)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="llama-100m", help=f"one of {', '.join(RANDOM_MODEL_CONFIGS)}")
    parser.add_argument("--prompt", type=int, default=128)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--chips", default="ascend:0,kunlun:0", help="simulated devices to compare ('' for none)")
    args = parser.parse_args(argv)
    raw = RANDOM_MODEL_CONFIGS[args.config]
    config = DecoderConfig.from_dict(raw)
    hal.ops.set_num_threads(THREADS)
    weights = hal.llm.random_weights(config, seed=0)
    ids = np.random.default_rng(0).integers(0, config.vocab_size, (1, args.prompt))
    bandwidth = copy_bandwidth()
    print(f"model {args.config}: {config.parameter_count() / 1e6:.0f}M parameters, batch 1, prompt {args.prompt}, "
          f"{args.new_tokens} new tokens, {THREADS} threads; copy bandwidth {bandwidth / 1e9:.1f} GB/s")

    cpu = hal_contender("hal cpu float32", hal.llm.DecoderModel(config, weights, devices=["cpu"]), ids, args.new_tokens)
    int8 = hal_contender("hal cpu int8 weights", hal.llm.DecoderModel(config, weights, devices=["cpu"], quantization="int8"),
                         ids, args.new_tokens)
    contenders = [cpu, int8]
    reference = transformers_contender(raw, weights, ids, args.new_tokens)
    if reference is not None:
        contenders.append(reference)
    ort = onnxruntime_contender(config, weights, ids, args.new_tokens)
    contenders.append(ort)
    chips = {}
    for name in filter(None, (c.strip() for c in args.chips.split(","))):
        chips[name] = hal_contender(f"hal {name} (simulated)", hal.llm.DecoderModel(config, weights, devices=[name]), ids,
                                    args.new_tokens)
    contenders.extend(chips.values())
    for contender in contenders:  # warm-up: first-touch of pages, onnxruntime's and torch's first runs
        contender.run()
    for _ in range(args.repeats):
        for contender in contenders:  # in turn, so that a noisy minute hits every contender alike
            time.sleep(0.05)  # the previous contender's pool threads (onnxruntime's, torch's) stop spinning
            contender.measure()

    rows = []
    for c in contenders:
        rows.append((c.name, f"{statistics.median(c.ttft) * 1e3:.1f}", f"{statistics.median(c.decode_step) * 1e3:.2f}",
                     f"{c.tokens_per_s:.1f}", f"{c.tokens_per_s / cpu.tokens_per_s:.2f}x"))
    print_table("decode on the wall clock (medians)", ("contender", "TTFT ms", "ms/token", "tokens/s", "vs hal cpu"), rows)

    floor32 = weight_bytes_per_token(config, 4) / bandwidth
    floor8 = weight_bytes_per_token(config, 1) / bandwidth
    print(f"\nbytes-per-token floor at {bandwidth / 1e9:.1f} GB/s: float32 {floor32 * 1e3:.2f} ms "
          f"({weight_bytes_per_token(config, 4) / 1e6:.0f} MB), int8 {floor8 * 1e3:.2f} ms "
          f"({weight_bytes_per_token(config, 1) / 1e6:.0f} MB)")
    targets = [("hal cpu float32 vs transformers", cpu.tokens_per_s / reference.tokens_per_s if reference else None, 1.0),
               ("hal cpu float32 vs onnxruntime", cpu.tokens_per_s / ort.tokens_per_s, 1.0),
               ("hal int8 vs hal float32", int8.tokens_per_s / cpu.tokens_per_s, 1.5)]

    sim_rows = []
    for name, contender in chips.items():
        model_device = hal.device(name)
        kernels = DeviceKernelsInfo.for_device(model_device)
        context = args.prompt + args.new_tokens // 2  # the median decode step's cache length
        roofline = decode_step_roofline(config, model_device.driver.chip, batch=1, context=context,
                                        weight_itemsize_bytes=kernels["weight_itemsize"], kv_itemsize=kernels["kv_itemsize"],
                                        launches=config.num_hidden_layers * DECODER_KERNELS_PER_LAYER + DECODER_KERNELS_PER_STEP,
                                        compute_dtype=kernels["compute"])
        simulated = statistics.median(s[1] for s in contender.simulated)
        wall_ratio = statistics.median(contender.decode_step) / statistics.median(cpu.decode_step)
        sim_rows.append((name, f"{simulated * 1e3:.3f}", f"{roofline * 1e3:.3f}", f"{simulated / roofline:.2f}",
                         f"{statistics.median(s[0] for s in contender.simulated) * 1e3:.3f}", f"{wall_ratio:.2f}x"))
        targets.append((f"{name} simulated vs roofline (within 25%)", simulated / roofline, None))
        targets.append((f"{name} wall vs cpu (<= 1.5x)", wall_ratio, None))
    if sim_rows:
        print_table("simulated chips (decode step, medians)", ("device", "simulated ms", "roofline ms", "ratio", "sim TTFT ms",
                                                              "wall vs cpu"), sim_rows)
    print("\ntargets:")
    for label, value, floor in targets:
        if value is None:
            print(f"  {label}: not measured")
            continue
        if floor is not None:
            verdict = "met" if value >= floor else "MISSED"
        elif "roofline" in label:
            verdict = "met" if abs(value - 1) <= 0.25 else "MISSED"
        else:
            verdict = "met" if value <= 1.5 else "MISSED"
        print(f"  {label}: {value:.2f}  {verdict}")
    return 0


class DeviceKernelsInfo:
    """What a simulated chip keeps its decoder in, for the roofline: the weights' itemsize, the KV
    cache's, and the dtype its matmuls compute in (as hal.llm.runtime decides it)."""

    @staticmethod
    def for_device(device) -> dict:
        from hal.llm.runtime import DeviceKernels

        kernels = DeviceKernels(device)
        itemsize = {"float32": 4, "float16": 2, "bfloat16": 2, "int16": 2, "int8": 1}[kernels.linear_kind]
        compute = {"int16": "int16", "int8": "int8"}.get(kernels.linear_kind, kernels.linear_kind)
        return {"weight_itemsize": itemsize, "kv_itemsize": kernels.kv_dtype.itemsize, "compute": compute}


if __name__ == "__main__":
    sys.exit(main())
