"""Run one model on the CPU, a simulated Ascend and a simulated Kunlun, and compare what comes back.

    python examples/02_compare_chips.py

The chips do not return the CPU's bits, and they are not meant to: the simulators reproduce what
the real cards do to float32 numbers. Ascend's CANN runtime defaults to precision_mode
"allow_fp32_to_fp16" (matrix multiplies on the Cube unit take float16 operands), and Kunlun's
fully connected layers compute in int16 by default (as Paddle's XPU backend does). The last part
asks Ascend for precision_mode="must_keep_origin_dtype" and the gap closes.
"""
from __future__ import annotations

import time

import numpy as np

import hal
from hal.testing import random_inputs, transformer_block

DEVICES = ["cpu", "ascend:0", "kunlun:0"]


def timed_run(sess: hal.InferenceSession, device: str, feeds: dict) -> tuple[np.ndarray, float, float | None]:
    """One run: (output, wall ms, simulated ms on the device's clock or None on the CPU).

    The session queues its copies and partitions on each device's default stream, so two events on
    that stream, recorded before and after the run, bracket the device's share of the work
    (nodes that fell back to the CPU run on the host, off the chip's clock).
    """
    stream = hal.device(device).default_stream
    before = stream.record_event()
    start = time.perf_counter()
    (output,) = sess.run(None, feeds)
    wall_ms = (time.perf_counter() - start) * 1e3
    after = stream.record_event()
    simulated_ms = before.elapsed_time(after) if after.driver.simulated else None
    return output, wall_ms, simulated_ms


def main() -> None:
    model = transformer_block(batch=1, seq=32, hidden=128, heads=4)  # one BERT layer, 40 nodes
    feeds = random_inputs(model, seed=0)
    print(f"Model: {model.graph.name}, {len(model.graph.node)} nodes, input {feeds['hidden_states'].shape}\n")

    results = {}
    fallbacks = []
    rewrites = []
    print(f"  {'device':<9} {'max |diff| vs cpu':>18} {'simulated':>12} {'wall':>10}  fell back to cpu")
    for device in DEVICES:
        # a one-device list: the CPU is added last automatically, so unsupported nodes fall back
        sess = hal.InferenceSession(model, devices=[device])
        sess.run(None, feeds)  # warm-up: first-run allocations
        output, wall_ms, simulated_ms = timed_run(sess, device, feeds)
        results[device] = output
        diff = float(np.abs(output - results["cpu"]).max())
        simulated = f"{simulated_ms:9.3f} ms" if simulated_ms is not None else "          -"
        fallbacks += sess.plan.fallbacks  # (node, wanted device, reason)
        if sess.plan.fusions:  # what the session changed so the chip runs the model as one piece
            rewrites.append((device, sess.plan.fusions))
        fell_back = ", ".join(node for node, _, _ in sess.plan.fallbacks) or "-"
        print(f"  {device:<9} {diff:18.2e} {simulated:>12} {wall_ms:7.2f} ms  {fell_back}")

    print("\nWhy the outputs differ: each simulator applies its chip's numerics to the float32 model.")
    print("  ascend:0  CANN precision_mode 'allow_fp32_to_fp16' (the default): MatMul operands and results")
    print("            rounded to float16 on the Cube unit (11-bit significand: up to 1 part in 2048 off)")
    print("  kunlun:0  fully connected layers (MatMul, Gemm) quantized to int16, as Paddle's XPU does")
    for node, device, reason in fallbacks:
        print(f"Fell back: {node} not on {device}: {reason}")
    for device, what in rewrites:
        print(f"Rewrote for {device}: {what}")
    print("Simulated time is the model of what the real card would take (roofline per node, host link")
    print("copies included); wall time is what this machine spent emulating it.")

    # the same model with Ascend told to keep float32 everywhere
    exact = hal.InferenceSession(model, devices=["ascend:0"], precision_mode="must_keep_origin_dtype")
    output, _, simulated_ms = timed_run(exact, "ascend:0", feeds)
    default_diff = float(np.abs(results["ascend:0"] - results["cpu"]).max())
    exact_diff = float(np.abs(output - results["cpu"]).max())
    print(f"\nascend:0 with precision_mode='must_keep_origin_dtype': max |diff| {exact_diff:.2e} "
          f"(was {default_diff:.2e}), simulated {simulated_ms:.3f} ms")


if __name__ == "__main__":
    main()
