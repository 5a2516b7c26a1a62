"""torch.compile(backend="hal") against torch eager on a small transformer block, after warm-up.

    python benchmarks/bench_torch.py [--devices cpu] [--batch 1] [--seq 64] [--hidden 256] [--repeats 50]

One process pinned to one core, both sides on one thread (torch's and onnxruntime's intra-op
pools would otherwise spin against each other on a small machine); prints medians per call and
the ratio. Target (issue #6): hal within 1.2x of eager
on the CPU. On a GPU machine pass --devices cuda:0 (inputs then live on the GPU; target 1.1x).
"""
from __future__ import annotations

import argparse
import warnings

import torch

import hal  # noqa: F401  (hal.torch registers the backend; the entry point does too)
from _harness import median_per_call, pin_to_one_core, print_table
from hal.testing.torch_modules import TransformerBlock
from hal.torch import hal_backend


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", default="cpu", help="comma-separated hal devices, priority order")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--seq", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--calls", type=int, default=50)
    args = parser.parse_args(argv)
    devices = [d.strip() for d in args.devices.split(",") if d.strip()]
    pinned = pin_to_one_core()
    threads = 1
    torch.set_num_threads(threads)
    on_gpu = any(d.startswith("cuda") for d in devices)
    where = "cuda" if on_gpu else "cpu"
    torch.manual_seed(0)
    block = TransformerBlock(args.hidden, args.heads).eval().to(where)
    x = torch.randn(args.batch, args.seq, args.hidden, device=where)
    options = {"devices": devices, "intra_op_threads": threads}
    compiled = torch.compile(block, backend=hal_backend, options=options, dynamic=False)
    print(f"bench_torch: transformer block batch {args.batch} seq {args.seq} hidden {args.hidden}, "
          f"{pinned}, {threads} thread, torch {torch.__version__}, hal devices {devices}")
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("error", category=UserWarning)  # a silent eager fallback would be no benchmark
        torch.testing.assert_close(compiled(x), block(x), rtol=1e-3, atol=1e-3)

        def sync() -> None:
            if on_gpu:
                torch.cuda.synchronize()

        eager = median_per_call(lambda: (block(x), sync()), calls=args.calls, repeats=args.repeats)
        hal_s = median_per_call(lambda: (compiled(x), sync()), calls=args.calls, repeats=args.repeats)
    print_table("median per call", ("path", "us", "ratio"), [
        ("torch eager", f"{eager * 1e6:.1f}", "1.00"),
        ("torch.compile(backend='hal')", f"{hal_s * 1e6:.1f}", f"{hal_s / eager:.2f}"),
    ])
    print(f"\nratio hal / eager: {hal_s / eager:.2f}x (target <= {1.1 if on_gpu else 1.2}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
