"""The host CPU as a hal device: memory in a native arena in host RAM, streams on wall time, ONNX
partitions run by onnxruntime's CPU provider (onnx's reference implementation where it has no
kernel: slow, and marked so in the plan)."""
from __future__ import annotations

import functools
import os
import platform
import time
from collections.abc import Mapping, Sequence

import numpy as np

import hal
from hal.backends_kit import (
    AllocationRule,
    ArenaAllocator,
    ArenaDeviceDriver,
    Backend,
    CompileOptions,
    DeviceSpec,
    DType,
    Executable,
    NodeInfo,
    Support,
    physical_memory_bytes,
)

__all__ = ["CpuBackend"]

# The host CPU computes every dtype (through numpy and onnxruntime), float64 included.
_CPU_DTYPES = tuple(DType)
# 64-byte alignment: one cache line and the widest vector load (AVX-512), as onnxruntime's CPU
# allocator aligns; no padding.
_CPU_RULE = AllocationRule(granularity=1, padding=0, base_alignment=64)
# An order-of-magnitude guess, used only to rank placements: onnx's reference evaluator is numpy
# op by op in Python, typically tens of times slower than an onnxruntime kernel.
_REFERENCE_SLOWDOWN = 20.0


def _cpu_identity() -> tuple[str, str]:
    """(model name, vendor) from /proc/cpuinfo, or what platform knows elsewhere."""
    name, vendor = platform.processor() or platform.machine(), "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                key, _, value = line.partition(":")
                key, value = key.strip(), value.strip()
                if key == "model name" and value:
                    name = value
                elif key == "vendor_id" and value:
                    vendor = value
                if name and vendor != "unknown" and key == "model name":
                    break
    except OSError:
        pass
    return name, vendor


class CpuBackend(Backend):
    name = "cpu"

    def __init__(self) -> None:
        model, vendor = _cpu_identity()
        self._spec = DeviceSpec(
            kind="cpu",
            index=0,
            name=model,
            vendor=vendor,
            simulated=False,
            memory_bytes=physical_memory_bytes(),
            dtypes=_CPU_DTYPES,
            host_addressable=True,
            model=platform.machine(),
            details={"logical_cores": os.cpu_count()},
        )

    def devices(self) -> list[DeviceSpec]:
        return [self._spec]

    def open_device(self, index: int) -> ArenaDeviceDriver:
        allocator = ArenaAllocator(self._spec.device_name, self._spec.memory_bytes, _CPU_RULE, host_addressable=True)
        return ArenaDeviceDriver(self._spec, allocator)

    # -- ONNX graphs ---------------------------------------------------------------------------
    # onnx and onnxruntime are imported on first use, so discovering devices stays fast.
    def supports(self, node: NodeInfo, device: DeviceSpec) -> Support:
        from hal.backends_kit import host_supports

        return host_supports(node)

    def compile(self, model, nodes: Sequence[NodeInfo], device: hal.Device, options: CompileOptions) -> CpuExecutable:
        from hal.backends_kit import HostProgram

        return CpuExecutable(HostProgram(model, nodes, threads=options.intra_op_threads, spinning=options.intra_op_spinning))

    def cost(self, node: NodeInfo, device: DeviceSpec, options: CompileOptions) -> float:
        from hal.backends_kit import host_supports
        from hal.sim.cost import count_bytes, count_flops

        flops_per_s, bytes_per_s = _host_rates()
        seconds = max(count_flops(node) / flops_per_s, count_bytes(node) / bytes_per_s)
        # onnx's reference implementation runs in Python: count it as far slower than a kernel
        return seconds * (_REFERENCE_SLOWDOWN if host_supports(node).slow else 1.0)


class CpuExecutable(Executable):
    """A partition run on the calling thread: the CPU is the host, so no queue sits in between."""

    def __init__(self, program: HostProgram):
        self.program = program
        self.input_names = program.input_names
        self.output_names = program.output_names

    def run(self, inputs: Mapping[str, hal.DeviceTensor], stream: hal.Stream) -> dict[str, hal.DeviceTensor]:
        from hal.backends_kit import as_value  # arrays as cpu:0 tensors, sequences and optionals as HostValues

        feeds = {name: tensor.host_view() for name, tensor in inputs.items()}
        return {name: as_value(value) for name, value in self.program.run(feeds).items()}


@functools.lru_cache(maxsize=1)
def _host_rates() -> tuple[float, float]:
    """(float32 FLOP/s, memory bytes/s) of this host, measured once (about 30 ms): the CPU's
    figures are not in any spec file, so cost placement uses what the machine really does."""
    a = np.random.default_rng(0).standard_normal((256, 256), dtype=np.float32)
    np.matmul(a, a)
    start = time.perf_counter()
    for _ in range(8):
        np.matmul(a, a)
    flops = 8 * 2 * 256**3 / (time.perf_counter() - start)
    src = np.ones(4 << 20, np.uint8)
    dst = np.empty_like(src)
    np.copyto(dst, src)
    start = time.perf_counter()
    for _ in range(4):
        np.copyto(dst, src)
    bandwidth = 4 * 2 * src.nbytes / (time.perf_counter() - start)
    return flops, bandwidth
