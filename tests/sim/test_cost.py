"""Roofline cost model: FLOPs and bytes from shapes (hand-computed here), NC1HWC0 padding on Ascend,
and which roof bounds a node on the 910B."""
from __future__ import annotations

from pathlib import Path

import hal_ascend
import hal_kunlun
import pytest

import hal
from hal.capability import NodeInfo, TensorInfo
from hal.sim import ChipCost, find_chip_spec
from hal.sim.cost import count_bytes, count_flops, nc1hwc0_bytes, node_cost, transdata_seconds

ASCEND = find_chip_spec(Path(hal_ascend.__file__).parent / "chips", "910B")
KUNLUN = find_chip_spec(Path(hal_kunlun.__file__).parent / "chips", "R200")
KUNLUN_P800 = find_chip_spec(Path(hal_kunlun.__file__).parent / "chips", "P800")


def _node(op, inputs, outputs, dtype="float32", **attributes) -> NodeInfo:
    def tensors(prefix, shapes):
        return tuple(None if s is None else TensorInfo(f"{prefix}{i}", hal.dtype(dtype), s) for i, s in enumerate(shapes))

    return NodeInfo(f"{op.lower()}_0", op, "", 17, tensors("in", inputs), tensors("out", outputs), attributes)


def test_matmul_and_gemm_flops_are_2mnk():
    assert count_flops(_node("MatMul", [(64, 128), (128, 32)], [(64, 32)])) == 2 * 64 * 32 * 128
    assert count_flops(_node("MatMul", [(3, 64, 128), (128, 32)], [(3, 64, 32)])) == 2 * 3 * 64 * 32 * 128
    assert count_flops(_node("MatMul", [(128,), (128, 32)], [(32,)])) == 2 * 32 * 128
    assert count_flops(_node("Gemm", [(128, 64), (32, 128), (32,)], [(64, 32)], transA=1, transB=1)) == 2 * 64 * 32 * 128


def test_conv_flops_count_input_channels_per_group_and_kernel():
    assert count_flops(_node("Conv", [(1, 3, 32, 32), (16, 3, 3, 3), (16,)], [(1, 16, 30, 30)])) == 2 * 16 * 30 * 30 * 3 * 3 * 3
    grouped = _node("Conv", [(2, 8, 10, 10), (8, 2, 3, 3)], [(2, 8, 8, 8)], group=4)
    assert count_flops(grouped) == 2 * 2 * 8 * 8 * 8 * 2 * 3 * 3
    transposed = _node("ConvTranspose", [(1, 4, 5, 5), (4, 2, 3, 3)], [(1, 2, 7, 7)])
    assert count_flops(transposed) == 2 * 4 * 5 * 5 * 2 * 3 * 3


def test_other_op_families():
    assert count_flops(_node("MaxPool", [(1, 16, 20, 20)], [(1, 16, 10, 10)], kernel_shape=[3, 3])) == 16 * 100 * 9
    assert count_flops(_node("Relu", [(1000,)], [(1000,)])) == 1000
    assert count_flops(_node("Gelu", [(1000,)], [(1000,)])) > count_flops(_node("Add", [(1000,), (1000,)], [(1000,)]))
    assert count_flops(_node("ReduceSum", [(10, 100)], [(10,)])) == 1000
    assert 5 * 1000 <= count_flops(_node("LayerNormalization", [(10, 100), (100,), (100,)], [(10, 100)])) <= 8 * 1000
    for movement in ("Reshape", "Transpose", "Gather", "Concat", "Slice", "Cast"):
        assert count_flops(_node(movement, [(10, 100)], [(100, 10)])) == 0


def test_bytes_are_every_input_and_output():
    assert count_bytes(_node("Add", [(4, 4), (4, 4)], [(4, 4)])) == 3 * 16 * 4
    assert count_bytes(_node("MatMul", [(8, 16), (16, 4)], [(8, 4)], dtype="float16")) == (128 + 64 + 32) * 2
    assert count_bytes(_node("Gemm", [(8, 16), (4, 16), None], [(8, 4)], transB=1)) == (128 + 64 + 32) * 4


def test_nc1hwc0_pads_channels_to_c0():
    assert nc1hwc0_bytes((1, 3, 8, 8), 2) == 1 * 1 * 8 * 8 * 16 * 2  # C=3 -> 16
    assert nc1hwc0_bytes((2, 16, 4, 4), 4) == 2 * 16 * 16 * 4  # no padding
    assert nc1hwc0_bytes((1, 17, 1, 1), 2) == 2 * 16 * 2  # C1 = 2
    with pytest.raises(hal.InvalidArgumentError):
        nc1hwc0_bytes((3, 8, 8), 2)


def test_ascend_conv_activations_are_counted_in_nc1hwc0():
    conv = _node("Conv", [(1, 3, 32, 32), (16, 3, 3, 3)], [(1, 16, 30, 30)], dtype="float16")
    nd = count_bytes(conv)
    padded_input = nc1hwc0_bytes((1, 3, 32, 32), 2) - 3 * 32 * 32 * 2
    assert node_cost(conv, ASCEND).bytes == nd + padded_input
    assert node_cost(conv, KUNLUN).bytes == nd
    assert node_cost(conv, ASCEND, layout_bytes=123.0).bytes == 123.0


def test_big_gemm_is_compute_bound_and_big_add_is_memory_bound_on_910b():
    gemm = node_cost(_node("MatMul", [(8192, 8192), (8192, 8192)], [(8192, 8192)]), ASCEND, "float16")
    assert gemm.bound == "compute"
    assert gemm.seconds == pytest.approx(ASCEND.launch_overhead.value + 2 * 8192**3 / ASCEND.peak_flops["float16"].value)
    add = node_cost(_node("Add", [(4096, 4096), (4096, 4096)], [(4096, 4096)]), ASCEND)
    assert add.bound == "memory"
    assert add.seconds == pytest.approx(ASCEND.launch_overhead.value + 3 * 4096**2 * 4 / ASCEND.memory_bandwidth.value)
    tiny = node_cost(_node("Relu", [(8,)], [(8,)]), ASCEND)
    assert tiny.bound == "launch"


@pytest.mark.parametrize("chip", [ASCEND, KUNLUN, KUNLUN_P800], ids=lambda c: c.model)
@pytest.mark.parametrize("dtype", [None, "float32", "float16", "bfloat16", "int16", "int8", "int32", "int64", "bool"])
def test_seconds_never_below_launch_overhead_and_every_dtype_has_a_rate(chip, dtype):
    for node in (_node("Relu", [(1,)], [(1,)]), _node("MatMul", [(512, 512), (512, 512)], [(512, 512)]), _node("Reshape", [()], [()])):
        cost = node_cost(node, chip, dtype)
        assert cost.seconds >= chip.launch_overhead.value and cost.seconds < float("inf")


def test_compute_dtype_picks_the_rate():
    matmul = _node("MatMul", [(8192, 8192), (8192, 8192)], [(8192, 8192)])
    fp16, fp32 = node_cost(matmul, ASCEND, "float16"), node_cost(matmul, ASCEND, "float32")
    assert fp32.seconds > 3 * fp16.seconds  # 99 vs 376 TFLOPS on the 910B2
    assert node_cost(matmul, ASCEND, "int16").seconds == fp16.seconds  # no int16 figure: the fp16 rate
    assert node_cost(matmul, ASCEND).seconds == fp32.seconds  # None: the input dtype
    assert node_cost(matmul, KUNLUN, "int16").seconds == pytest.approx(
        KUNLUN.launch_overhead.value + 2 * 8192**3 / KUNLUN.peak_flops["int16"].value)


def test_unknown_dims_count_as_one_and_are_flagged():
    dynamic = _node("MatMul", [("batch", 64, 128), (128, 32)], [("batch", 64, 32)])
    cost = node_cost(dynamic, ASCEND)
    assert cost.dynamic and cost.flops == 2 * 64 * 32 * 128
    assert not node_cost(_node("MatMul", [(64, 128), (128, 32)], [(64, 32)]), ASCEND).dynamic
    unknown_rank = TensorInfo("x", hal.DType.FLOAT32, None)
    assert node_cost(NodeInfo("r", "Relu", "", 17, (unknown_rank,), (unknown_rank,)), ASCEND).dynamic


def test_transdata_reads_nd_and_writes_nc1hwc0():
    shape = (1, 3, 224, 224)
    expected = ASCEND.launch_overhead.value + (3 * 224 * 224 * 2 + 16 * 224 * 224 * 2) / ASCEND.memory_bandwidth.value
    assert transdata_seconds(shape, 2, ASCEND) == pytest.approx(expected)


def test_copy_costs_are_unchanged():
    cost = ChipCost(ASCEND)
    assert cost.host_to_device(1 << 20) == pytest.approx(ASCEND.host_link_latency.value + (1 << 20) / ASCEND.host_link_bandwidth.value)
    assert cost.device_to_device(1 << 20, same_device=True) == pytest.approx(
        ASCEND.launch_overhead.value + 2 * (1 << 20) / ASCEND.memory_bandwidth.value)
