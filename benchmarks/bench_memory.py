"""Device memory hot paths: 64 MiB host<->device copies and cached 1 MiB allocate+free.

    python benchmarks/bench_memory.py [--device ascend:0] [--repeats 20]

Runs hal and what a user would otherwise use (numpy copies and allocations; torch's CPU tensors
when torch is installed) side by side in one process, pinned to one core, and prints medians and
ratios. Targets (issue #2): >= 5 GB/s each way on one core; allocate+free < 5 us median.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

import hal
from _harness import median_per_call, median_seconds, pin_to_one_core, print_table

MIB = 1 << 20


def copy_bandwidths(device: hal.Device, nbytes: int, repeats: int) -> list[tuple[str, float]]:
    host = np.random.default_rng(0).integers(0, 255, nbytes, dtype=np.uint8)
    back = np.empty_like(host)
    on_device = hal.empty((nbytes,), "uint8", device=device)
    stream = device.default_stream
    results = [
        ("hal h2d " + device.name, nbytes / median_seconds(lambda: on_device.copy_(host, stream=stream), repeats=repeats)),
        ("hal d2h " + device.name, nbytes / median_seconds(lambda: on_device.numpy(out=back, stream=stream), repeats=repeats)),
    ]
    assert back.tobytes() == host.tobytes()
    scratch = np.empty_like(host)
    results.append(("numpy np.copyto", nbytes / median_seconds(lambda: np.copyto(scratch, host), repeats=repeats)))
    try:
        import torch
    except ImportError:
        return results
    src_t, dst_t = torch.from_numpy(host), torch.empty(nbytes, dtype=torch.uint8)
    results.append(("torch Tensor.copy_ (cpu)", nbytes / median_seconds(lambda: dst_t.copy_(src_t), repeats=repeats)))
    return results


def allocate_free(device: hal.Device, nbytes: int) -> list[tuple[str, float]]:
    device.allocate(nbytes).free()  # the block is now cached
    results = [("hal allocate+free " + device.name, median_per_call(lambda: device.allocate(nbytes).free(), calls=20000))]
    results.append(("numpy np.empty", median_per_call(lambda: np.empty(nbytes, np.uint8), calls=20000)))
    try:
        import torch
    except ImportError:
        return results
    results.append(("torch.empty (cpu)", median_per_call(lambda: torch.empty(nbytes, dtype=torch.uint8), calls=20000)))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="ascend:0")
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args(argv)
    print(f"bench_memory: {pin_to_one_core()}, device {args.device}, numpy {np.__version__}")
    device = hal.device(args.device)

    copies = copy_bandwidths(device, 64 * MIB, args.repeats)
    reference = dict(copies)["numpy np.copyto"]
    print_table("64 MiB copies (median GB/s; ratio to numpy memcpy-class copy)", ("path", "GB/s", "vs numpy"),
                [(name, f"{bw / 1e9:.2f}", f"{bw / reference:.2f}x") for name, bw in copies])

    allocs = allocate_free(device, MIB)
    hal_us = allocs[0][1]
    print_table("1 MiB allocate+free, cached (median per call)", ("path", "us", "hal / this"),
                [(name, f"{s * 1e6:.2f}", f"{hal_us / s:.2f}x") for name, s in allocs])

    h2d, d2h = copies[0][1], copies[1][1]
    ok = h2d >= 5e9 and d2h >= 5e9 and hal_us < 5e-6
    print(f"\ntargets: h2d {h2d / 1e9:.1f} GB/s, d2h {d2h / 1e9:.1f} GB/s (>= 5), "
          f"allocate+free {hal_us * 1e6:.2f} us (< 5): {'met' if ok else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
