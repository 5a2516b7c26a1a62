"""Strict mode: refuse to load a model that a chip cannot run whole, and say exactly why.

    python examples/03_strict_mode.py

By default a node the chip lacks falls back to the CPU, as onnxruntime falls back to its CPU
provider. That is convenient, and slow on real hardware: every fallback is a round trip over the
host link. With strict=True the session refuses to load instead, and hal.UnsupportedOpError
lists every node the chip cannot run with the reason, taken from the chip's op table
(backends/hal_<chip>/ops.toml: Kunlun has no Erf, Ascend has no Einsum).
"""
from __future__ import annotations

import numpy as np

import hal
from hal.testing import chain, random_inputs


def main() -> None:
    # 300 small elementwise nodes; every ~50th is Einsum, Erf or CumSum, ops some chips lack
    model = chain(300)
    rare = [f"{n.name} ({n.op_type})" for n in model.graph.node if n.op_type in ("Einsum", "Erf", "CumSum")]
    print(f"Model: {len(model.graph.node)} nodes, among them {', '.join(rare)}")
    feeds = random_inputs(model, seed=0)
    reference = hal.InferenceSession(model, devices=["cpu"]).run(None, feeds)[0]

    for device in ("kunlun:0", "ascend:0"):
        print(f"\n=== {device}, strict=True")
        try:
            hal.InferenceSession(model, devices=[device], strict=True)
        except hal.UnsupportedOpError as error:
            print(f"UnsupportedOpError: {error}")
        else:
            print("loaded: the chip runs every node")

        print(f"\n=== {device}, default (fallback to the CPU)")
        sess = hal.InferenceSession(model, devices=[device])
        for node, wanted, reason in sess.plan.fallbacks:
            print(f"  {node} not on {wanted}: {reason}")
        route = " -> ".join(f"{p.device}[{len(p.nodes)}]" for p in sess.plan.partitions)
        print(f"  {len(sess.plan.partitions)} partitions (device[nodes]): {route}")
        output = sess.run(None, feeds)[0]
        print(f"  ran; max |diff| vs cpu {float(np.abs(output - reference).max()):.2e}")


if __name__ == "__main__":
    main()
