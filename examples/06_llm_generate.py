"""Generate tokens with a Llama-style model on every chip, and see what each chip does to the logits.

    python examples/06_llm_generate.py

The model is made on the spot (random weights from a small config: no download); a real one is a
folder of config.json + safetensors: hal.llm.load("path/to/folder", device=...). Each chip
computes with its own numerics: Ascend's Cube ops in float16 under CANN's default precision mode,
Kunlun's fully connected layers in int16. Turning those off gives the CPU's tokens exactly.
"""
from __future__ import annotations

import numpy as np

import hal
from hal.llm.config import RANDOM_MODEL_CONFIGS

CONFIG = RANDOM_MODEL_CONFIGS["llama-tiny"]
PROMPT = np.array([[1, 2, 3, 4, 5]])


def main() -> None:
    cpu = hal.llm.load(CONFIG, device="cpu")
    reference = cpu.generate(PROMPT, max_new_tokens=12).tokens
    print(f"cpu:0      tokens {reference[0].tolist()}")
    for device in ("ascend:0", "kunlun:0"):
        model = hal.llm.load(CONFIG, device=device)
        result = model.generate(PROMPT, max_new_tokens=12)
        stage = model.describe()[0]
        sim = result.simulated[device]
        print(f"{device}   tokens {result.tokens[0].tolist()}  (linear {stage['linear']}, KV cache {stage['kv_cache']})")
        print(f"           time to first token {sim['time_to_first_token_s'] * 1e3:.3f} ms simulated, "
              f"decode {result.simulated_decode_tokens_per_s():.0f} tokens/s simulated")
        report = model.numerics_report(PROMPT, max_new_tokens=12)
        print(f"           logits vs float32 cpu: max abs error {report.max_abs_error:.2e}, top-1 agreement {report.top1_agreement:.0%}")
    exact = hal.llm.load(CONFIG, device="ascend:0", precision_mode="must_keep_origin_dtype")
    same = np.array_equal(exact.generate(PROMPT, max_new_tokens=12).tokens, reference)
    print(f"ascend:0 with precision_mode='must_keep_origin_dtype': {'the same tokens as cpu' if same else 'different tokens'}")
    split = hal.llm.load(CONFIG, devices=["ascend:0", "kunlun:0"])
    print(f"layers split over ascend:0 and kunlun:0: tokens {split.generate(PROMPT, max_new_tokens=12).tokens[0].tolist()}")


if __name__ == "__main__":
    main()
