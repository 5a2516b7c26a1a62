"""Limits (issue #18, part 6): absurd sizes, a very long graph and deep nesting end in a clear
HalError or a success in bounded time, never in hal exhausting the machine's memory. Each case
runs in the sandbox's worker, whose address space is capped (sandbox.ADDRESS_SPACE_BYTES), so an
allocation hal failed to check fails there and not on the machine."""
from __future__ import annotations

import os

import pytest

from tests.fuzz import sandbox

# 2**62 elements (16 EiB of float32: its byte count overflows int64) and 2**40 (4 TiB: a size
# malloc may promise under overcommit, then the machine cannot keep).
ABSURD = {"2**62": [2**31, 2**31], "2**40": [2**20, 2**20]}
# No elements, but sizes whose product passes 2**63 (numpy cannot make such an array)
ZERO_BUT_HUGE = [2**31, 2**31, 0]


@pytest.mark.parametrize("size", sorted(ABSURD))
@pytest.mark.parametrize("op", ["Expand", "ConstantOfShape", "Reshape"])
@pytest.mark.parametrize("fed", [False, True], ids=["constant-shape", "fed-shape"])
@pytest.mark.parametrize("devices", [["cpu"], ["ascend:0", "cpu"]], ids=["cpu", "ascend"])
def test_absurd_output_is_refused(fuzz_sandbox, size, op, fed, devices):
    outcome = fuzz_sandbox.run("limit_absurd_output", {"op": op, "dims": ABSURD[size], "fed": fed, "devices": devices})
    assert outcome.kind == "refused", outcome.detail
    assert outcome.detail.startswith("OutOfMemoryError: a node's output needs"), outcome.detail


@pytest.mark.parametrize("op", ["Expand", "ConstantOfShape"])
def test_empty_output_with_huge_sizes_is_refused(fuzz_sandbox, op):
    outcome = fuzz_sandbox.run("limit_absurd_output", {"op": op, "dims": ZERO_BUT_HUGE, "fed": True, "devices": ["cpu"]})
    assert outcome.kind == "refused", outcome.detail
    assert outcome.detail.startswith("ExecutionError: onnxruntime's CPU provider made an output numpy cannot hold"), outcome.detail


def test_initializer_with_huge_sizes_and_no_elements_is_refused(fuzz_sandbox):
    outcome = fuzz_sandbox.run("limit_huge_initializer", ZERO_BUT_HUGE)
    assert outcome.kind == "refused", outcome.detail
    assert outcome.detail.startswith("InvalidModelError") and "multiply past 2**63 bytes" in outcome.detail


@pytest.mark.parametrize("shape", [[2**31, 2**31], [2**63 - 1], [2**40]], ids=["2**62", "2**63-1", "2**40"])
@pytest.mark.parametrize("device", ["cpu:0", "ascend:0"])
def test_absurd_empty_is_refused(fuzz_sandbox, shape, device):
    outcome = fuzz_sandbox.run("limit_empty", {"shape": shape, "device": device})
    assert outcome.kind == "refused", outcome.detail
    assert outcome.detail.startswith(f"OutOfMemoryError: {device}: out of memory: asked"), outcome.detail


def test_initializer_claiming_huge_dims_is_refused(fuzz_sandbox):
    outcome = fuzz_sandbox.run("limit_huge_initializer", [2**40])
    assert outcome.kind == "refused", outcome.detail
    assert outcome.detail.startswith("InvalidModelError") and "1099511627776 elements of FLOAT" in outcome.detail


@pytest.mark.parametrize("devices", [["cpu"], ["ascend:0", "cpu"]], ids=["cpu", "ascend"])
def test_long_chain_runs(fuzz_sandbox, devices):
    outcome = fuzz_sandbox.run("limit_long_chain", {"nodes": 5000, "devices": devices})
    assert outcome.kind == "ok", outcome.detail


@pytest.mark.skipif(int(os.environ.get("HAL_FUZZ_EXAMPLES", "0")) < 100000,
                    reason="a 10**6-node graph takes minutes: nightly budget only (HAL_FUZZ_EXAMPLES>=100000)")
def test_million_node_chain_runs():
    """Measured once (2026-12-03, 2 shared cores): 535 s and a worker of about 7.8 GB resident, so
    its own sandbox allows 16 GiB and 30 minutes."""
    box = sandbox.Sandbox(address_space_bytes=16 << 30, hang_seconds=1800)
    try:
        outcome = box.run("limit_long_chain", {"nodes": 10**6, "devices": ["cpu"]})
    finally:
        box.close()
    assert outcome.kind in ("ok", "refused"), outcome.detail


@pytest.mark.parametrize("as_bytes", [False, True], ids=["ModelProto", "bytes"])
def test_nested_if_within_protobufs_limit_runs(fuzz_sandbox, as_bytes):
    outcome = fuzz_sandbox.run("limit_nested_if", {"depth": 30, "as_bytes": as_bytes})
    assert outcome.kind == "ok", outcome.detail


@pytest.mark.parametrize("depth", [33, 200, 5000])
@pytest.mark.parametrize("as_bytes", [False, True], ids=["ModelProto", "bytes"])
def test_nested_if_beyond_protobufs_limit_is_refused(fuzz_sandbox, depth, as_bytes):
    """protobuf parses at most 100 nested messages (about 32 levels of subgraphs): hal says so
    instead of calling the model damaged (bytes) or too big (a ModelProto onnx.checker re-reads)."""
    outcome = fuzz_sandbox.run("limit_nested_if", {"depth": depth, "as_bytes": as_bytes})
    assert outcome.kind == "refused", outcome.detail
    assert outcome.detail.startswith("InvalidModelError") and "flatten the nesting" in outcome.detail
