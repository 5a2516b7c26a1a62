"""Tensor parallelism (hal.distributed.tensor_parallel, hal.llm's parallel="tensor") on 2 and 4
simulated Ascend 910B cards (and 2 Kunlun P800, and the CPU alone): the same results as one card,
and all-reduces overlapping compute."""
from __future__ import annotations

import numpy as np
import pytest

import hal
import hal.llm
from hal import profiler, registry
from hal.distributed.communicator import Communicator
from hal.distributed.tensor_parallel import ColumnParallelLinear, RowParallelLinear, TensorParallelBlock, overlap_pays
from hal.llm.config import DecoderConfig
from hal.llm.runtime import DeviceKernels
from hal.llm.weights import layer_prefix, random_weights

from ..llm.conftest import CONFIGS, PADDED_IDS, PADDED_MASK, TINY_LLAMA

FLOAT32_ASCEND = "must_keep_origin_dtype"
"""Ascend's precision mode that keeps float32 matmuls: its results are the float32 arithmetic's."""


@pytest.fixture(scope="module", autouse=True)
def four_ascend_cards():
    """Four simulated 910B cards for the whole module (two is the default)."""
    patch = pytest.MonkeyPatch()
    patch.setenv("HAL_SIM_DEVICES", "ascend=4")
    registry.reset()
    yield
    patch.undo()
    registry.reset()


def _cards(n: int) -> list[str]:
    return [f"ascend:{i}" for i in range(n)]


def _group(n: int, precision_mode: str | None = None) -> tuple[Communicator, list[DeviceKernels]]:
    comm = Communicator(_cards(n))
    return comm, [DeviceKernels(d, precision_mode=precision_mode) for d in comm.devices]


def _on_every_rank(comm: Communicator, x: np.ndarray) -> list[hal.DeviceTensor]:
    return [hal.tensor(x, device=d) for d in comm.devices]


# -- the column / row parallel pair --------------------------------------------------------------------
@pytest.mark.parametrize("n", [2, 4])
def test_column_then_row_parallel_equals_the_unsplit_linear_pair(n):
    rng = np.random.default_rng(n)
    x = rng.standard_normal((3, 32), dtype=np.float32)
    w1, b1 = rng.standard_normal((64, 32), dtype=np.float32), rng.standard_normal(64, dtype=np.float32)
    w2, b2 = rng.standard_normal((16, 64), dtype=np.float32), rng.standard_normal(16, dtype=np.float32)
    comm, kernels = _group(n, FLOAT32_ASCEND)
    up = ColumnParallelLinear(comm, w1, b1, kernels=kernels)
    down = RowParallelLinear(comm, w2, b2, kernels=kernels)
    hidden = up(_on_every_rank(comm, x))
    assert [t.shape for t in hidden] == [(3, 64 // n)] * n  # each rank keeps its slice of the features
    out = down(hidden)
    expected = (x.astype(np.float64) @ w1.T + b1) @ w2.T + b2
    for tensor, device in zip(out, comm.devices):
        assert tensor.device is device
        np.testing.assert_allclose(tensor.numpy(), expected, rtol=1e-5, atol=1e-4)


def test_gather_output_and_a_full_input_to_the_row_parallel_layer():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 16), dtype=np.float32)
    w1, w2 = rng.standard_normal((32, 16), dtype=np.float32), rng.standard_normal((8, 32), dtype=np.float32)
    comm, kernels = _group(4, FLOAT32_ASCEND)
    full = ColumnParallelLinear(comm, w1, kernels=kernels, gather_output=True)(_on_every_rank(comm, x))
    for tensor in full:
        np.testing.assert_allclose(tensor.numpy(), x @ w1.T, rtol=1e-5, atol=1e-5)
    out = RowParallelLinear(comm, w2, kernels=kernels, input_is_parallel=False)(full)
    for tensor in out:
        np.testing.assert_allclose(tensor.numpy(), x @ w1.T @ w2.T, rtol=1e-5, atol=1e-4)


def test_the_pair_under_ascends_default_precision_matches_one_ascend_card():
    """float16 operands on every card: the split changes only where the partial sums are rounded."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 64), dtype=np.float32)
    w1, w2 = rng.standard_normal((128, 64), dtype=np.float32), rng.standard_normal((64, 128), dtype=np.float32)
    one = DeviceKernels(hal.device("ascend:0"))
    expected = one.linear(one.linear(x, one.linear_weights(w1, None), "up"), one.linear_weights(w2, None), "down")
    comm, kernels = _group(2)
    out = RowParallelLinear(comm, w2, kernels=kernels)(ColumnParallelLinear(comm, w1, kernels=kernels)(_on_every_rank(comm, x)))
    for tensor in out:
        np.testing.assert_allclose(tensor.numpy(), expected, rtol=0, atol=2e-3 * np.abs(expected).max())


# -- the transformer block -----------------------------------------------------------------------------
@pytest.mark.parametrize("name, n", [("llama-gqa", 2), ("llama-linear-rope-bias", 2), ("llama-mha-tied", 4)])
def test_block_equals_the_one_card_decoder_layer(name, n):
    """A prefill of two sequences then a decode step through layer 0, against hal.llm's own layer on one card."""
    raw = CONFIGS[name]
    config = DecoderConfig.from_dict(raw)
    weights = random_weights(config, seed=3)
    one_card = hal.llm.load(raw, devices=["ascend:0"], seed=3, precision_mode=FLOAT32_ASCEND)
    stage = one_card.stages[0]
    comm, kernels = _group(n, FLOAT32_ASCEND)
    prefix = layer_prefix(0)
    block = TensorParallelBlock(comm, {k[len(prefix):]: v for k, v in weights.items() if k.startswith(prefix)}, config,
                                kernels=kernels)
    batch, prompt, total = 2, 5, 8
    rng = np.random.default_rng(4)
    hidden = rng.standard_normal((batch * prompt, config.hidden_size), dtype=np.float32)
    one_cache = np.zeros((2, batch, config.num_key_value_heads, total, config.head_dim), np.float32)
    caches = [np.zeros((2, batch, config.num_key_value_heads // n, total, config.head_dim), np.float32) for _ in range(n)]
    key_mask = np.zeros((batch, total), np.float32)
    past = 0
    for length in (prompt, 1):
        positions = np.broadcast_to(np.arange(past, past + length), (batch, length)).reshape(-1)
        step_cos, step_sin = one_card._cos[positions], one_card._sin[positions]
        cos, sin, bias = one_card._kernel_route_inputs(step_cos, step_sin, key_mask, batch, length, past)
        expected = hidden.copy()
        one_card._layer_step(stage.kernels, stage.weights[0], 0, expected, one_cache, cos, sin, bias, batch, length, past)
        per_rank = [hidden.copy() for _ in range(n)]
        block(per_rank, caches, step_cos, step_sin, bias, batch, length, past)
        for got in per_rank:
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
        # each rank caches its own key/value heads: together, the one card's cache
        np.testing.assert_allclose(np.concatenate(caches, axis=2), one_cache, rtol=1e-6, atol=1e-6)
        past += length
        hidden = rng.standard_normal((batch, config.hidden_size), dtype=np.float32)


# -- the model -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, kind, n", [("llama-gqa", "ascend", 2), ("llama-linear-rope-bias", "ascend", 2),
                                           ("llama-mha-tied", "ascend", 4), ("llama-gqa", "kunlun", 2)])
def test_tensor_parallel_llm_generates_the_one_cards_tokens(name, kind, n):
    """The chips' default numerics on every card (Ascend: float16 Cube operands; Kunlun P800: int16
    fully connected layers, each rank's shard quantized with its own scale), over their peer links
    (HCCS, XPU Link); padded prompts of three sequences."""
    config = CONFIGS[name]
    cards = [f"{kind}:{i}" for i in range(n)]
    one = hal.llm.load(config, devices=cards[:1]).generate(PADDED_IDS, 6, attention_mask=PADDED_MASK, keep_logits=True)
    model = hal.llm.load(config, devices=cards, parallel="tensor")
    result = model.generate(PADDED_IDS, 6, attention_mask=PADDED_MASK, keep_logits=True)
    np.testing.assert_array_equal(result.tokens, one.tokens)
    scale = max(np.abs(step).max() for step in one.logits)
    for ours, theirs in zip(result.logits, one.logits):
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=5e-3 * scale)
    described = model.describe()
    assert [d["device"] for d in described] == cards
    assert all(d["attention_heads"] == config["num_attention_heads"] // n and d["parallel"] == "tensor" for d in described)
    # the cards run a step at once: the step's simulated time is the slowest card's, not their sum
    per_step = np.max([result.simulated[c]["decode_step_s"] for c in cards], axis=0)
    assert result.simulated_decode_tokens_per_s() == pytest.approx(len(per_step) / per_step.sum())


def test_tensor_parallel_llm_in_float32_matches_the_cpu():
    model = hal.llm.load(TINY_LLAMA, devices=_cards(2), parallel="tensor", precision_mode=FLOAT32_ASCEND)
    report = model.numerics_report(PADDED_IDS[:2], 5)
    assert report.top1_agreement == 1.0
    assert report.max_abs_error <= 1e-4 * report.max_abs_logit


def test_a_group_of_the_cpu_alone_is_the_one_card_model_bit_for_bit():
    """The host has one CPU device: its group has nothing to communicate, and the split model's
    kernels are the one-card model's (whose decode steps run fused in C++), in the same order."""
    one = hal.llm.load(TINY_LLAMA, devices=["cpu"]).generate(PADDED_IDS, 6, attention_mask=PADDED_MASK, keep_logits=True)
    model = hal.llm.load(TINY_LLAMA, devices=["cpu"], parallel="tensor")
    result = model.generate(PADDED_IDS, 6, attention_mask=PADDED_MASK, keep_logits=True)
    np.testing.assert_array_equal(result.tokens, one.tokens)
    for ours, theirs in zip(result.logits, one.logits):
        np.testing.assert_array_equal(ours, theirs)


def test_the_kv_cache_is_split_by_kv_heads():
    model = hal.llm.load(CONFIGS["llama-mha-tied"], devices=_cards(4), parallel="tensor")
    caches = model._allocate_caches(batch=2, length=10)
    c = model.config
    assert [t.device.name for t, _ in caches] == _cards(4)
    assert all(t.shape == (c.num_hidden_layers, 2, 2, c.num_key_value_heads // 4, 10, c.head_dim) for t, _ in caches)


# -- overlap -------------------------------------------------------------------------------------------
def _overlaps(prof: profiler.Profiler, model) -> dict[str, list[tuple[str, str]]]:
    """Per card: (all-reduce, compute kernel) pairs whose slices overlap on the card's simulated clock."""
    group = model.tensor_parallel
    found = {}
    for kernels, comm_stream in zip(group.kernels, group.comm_streams.streams):
        on_card = [e for e in prof.events if e.device == kernels.device.name and e.simulated and e.device_end > e.device_start]
        comm = [e for e in on_card if e.track == f"stream {comm_stream.driver.stream_id}" and e.category == "collective"]
        compute = [e for e in on_card if e.track == f"stream {kernels.stream.driver.stream_id}" and e.category == "compute"]
        found[kernels.device.name] = [(a.name, b.name) for a in comm for b in compute
                                      if a.device_start < b.device_end and b.device_start < a.device_end]
    return found


@pytest.mark.parametrize("n", [2, 4])
def test_profile_shows_each_cards_all_reduce_overlapping_the_other_half_batchs_compute(n):
    model = hal.llm.load(CONFIGS["llama-mha-tied"], devices=_cards(n), parallel="tensor")
    model.tensor_parallel.overlap = True
    with profiler.profile() as prof:
        model.generate(PADDED_IDS[:2], 3)
    for card, pairs in _overlaps(prof, model).items():
        assert pairs, f"{card}: no all-reduce overlaps compute"
        assert all(collective.startswith("all_reduce") for collective, _ in pairs)
        assert {kernel.split(" ", 2)[-1] for _, kernel in pairs} & {"input_norm", "qkv", "post_norm", "gate_up"}


@pytest.mark.parametrize("batch", [1, 2])
def test_without_the_split_each_kernel_waits_for_the_all_reduce_before_it(batch):
    """A lone sequence (nothing independent to overlap), or a batch not split: the events keep the
    all-reduces and the compute that reads them apart on every card's clock."""
    model = hal.llm.load(CONFIGS["llama-mha-tied"], devices=_cards(2), parallel="tensor")
    model.tensor_parallel.overlap = batch == 1  # a lone sequence has no second half, whatever is asked
    with profiler.profile() as prof:
        model.generate(PADDED_IDS[:batch], 3)
    assert _overlaps(prof, model) == {"ascend:0": [], "ascend:1": []}


def test_the_split_is_taken_where_the_link_time_it_hides_exceeds_the_launches_it_adds():
    """On the 910B's figures a tiny layer's all-reduce is mostly latency, below the 12 extra kernel
    launches of a second half; a long prefill's is not."""
    model = hal.llm.load(CONFIGS["llama-mha-tied"], devices=_cards(2), parallel="tensor")
    block = model.tensor_parallel.blocks[0]
    assert not overlap_pays(block, batch=2, length=1)
    assert not overlap_pays(block, batch=1, length=100_000)  # one sequence cannot be split
    assert overlap_pays(block, batch=2, length=50_000)
    with profiler.profile() as prof:  # the default (overlap=None) runs a tiny decode batch whole
        model.generate(PADDED_IDS[:2], 2)
    assert _overlaps(prof, model) == {"ascend:0": [], "ascend:1": []}


# -- what it refuses -----------------------------------------------------------------------------------
def test_head_counts_that_do_not_divide_by_the_cards_are_refused():
    with pytest.raises(hal.InvalidArgumentError, match=r"num_key_value_heads \(1\) is not divisible by the 2"):
        hal.llm.load(CONFIGS["qwen2"], devices=_cards(2), parallel="tensor")
    with pytest.raises(hal.InvalidArgumentError, match=r"num_attention_heads \(4\) is not divisible by the 3.*1, 2, 4"):
        hal.llm.load(TINY_LLAMA, devices=_cards(3), parallel="tensor")


def test_mismatched_devices_and_inputs_are_refused():
    w = np.ones((8, 4), np.float32)
    comm, kernels = _group(2)
    with pytest.raises(hal.InvalidArgumentError, match="kernels are for"):
        ColumnParallelLinear(comm, w, kernels=kernels[::-1])
    layer = ColumnParallelLinear(comm, w, kernels=kernels)
    with pytest.raises(hal.InvalidArgumentError, match="rank 1's input is on ascend:0"):
        layer([hal.tensor(np.ones((2, 4), np.float32), device="ascend:0")] * 2)
    with pytest.raises(hal.InvalidArgumentError, match=r"must be float32 \[rows, 4\]"):
        layer(_on_every_rank(comm, np.ones((2, 5), np.float32)))
    with pytest.raises(hal.InvalidArgumentError, match="output features"):
        ColumnParallelLinear(comm, np.ones((7, 4), np.float32), kernels=kernels)
    with pytest.raises(hal.InvalidArgumentError, match="gather_output takes a single weight"):
        ColumnParallelLinear(comm, [w, w], kernels=kernels, gather_output=True)
    with pytest.raises(hal.InvalidArgumentError, match="parallel must be one of"):
        hal.llm.load(TINY_LLAMA, devices=_cards(2), parallel="data")
    with pytest.raises(hal.InvalidArgumentError, match="listed twice|lists a device twice"):
        hal.llm.load(TINY_LLAMA, devices=["ascend:0", "ascend:0"], parallel="tensor")
    with pytest.raises(hal.InvalidArgumentError, match="kernel route"):
        hal.llm.load(TINY_LLAMA, devices=_cards(2), parallel="tensor", route="onnx")


def test_hal_generate_runs_tensor_parallel(capsys):
    from hal.cli import main

    assert main(["generate", "--random-config", "llama-tiny", "--devices", "ascend:0,ascend:1", "--parallel", "tensor",
                 "--prompt-ids", "4,5,6", "--max-new-tokens", "3"]) == 0
    out = capsys.readouterr().out
    assert "ascend:1: layers 0-1 (rank 1: attention heads 2, KV heads 1)" in out
    one = hal.llm.load(DecoderConfig.from_dict(hal.llm.config.RANDOM_MODEL_CONFIGS["llama-tiny"]), devices=["ascend:0"])
    expected = one.generate([[4, 5, 6]], 3).tokens[0]
    assert f"tokens[0]: {' '.join(str(t) for t in expected)}" in out
