"""Tensor parallelism in Megatron-LM's shape, on a Communicator's devices.

    kernels = [hal.llm.runtime.DeviceKernels(d) for d in comm.devices]
    up = ColumnParallelLinear(comm, w1, kernels=kernels)                       # w [out, in]: rows split
    down = RowParallelLinear(comm, w2, kernels=kernels, input_is_parallel=True)  # columns split, all-reduced
    y = down(up(x))            # x: one DeviceTensor [rows, in] per rank; y: [rows, out] on every rank

A column-parallel layer splits the weight's output features over the ranks (each rank computes its
slice of the output; gather_output=True all-gathers them); a row-parallel one splits the input
features, each rank multiplies its slice of the input and an all-reduce sums the partial products
(Shoeybi et al., "Megatron-LM", arXiv:1909.08053, section 3; megatron.core.tensor_parallel.layers).
The pair needs one collective. TensorParallelBlock applies it to a Llama / Qwen2 decoder layer:
attention heads (and their KV cache) split over the ranks, o_proj and down_proj row-parallel, so a
layer costs two all-reduces.

Each rank computes with the kernels given for it (hal.llm.runtime.DeviceKernels: hal.ops kernels
with the chip's numerics, advancing the simulated clock); they come from the caller because
hal.llm sits above hal.distributed in hal's layers. Collectives run on a communication stream per
rank, ordered after the compute that produced their input and before the compute that reads their
output by events, so on a simulated chip's clock an all-reduce runs beside independent compute.
run_layers makes such compute exist: it can split the batch in two halves and run them one step
apart, so one half's all-reduce overlaps the other half's layer work (DeepSpeed's Domino,
arXiv:2409.15241, splits a TP batch so). The split is not free: the second half launches every
kernel again and reads the layer's weights again, so by default (overlap=None) it is taken only
where the chip's figures say the hidden all-reduce time exceeds that cost.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ..device import Device, Event, Stream
from ..errors import InvalidArgumentError
from ..tensor import DeviceTensor

__all__ = ["RankKernels", "ColumnParallelLinear", "RowParallelLinear", "TensorParallelBlock", "run_layers", "split_evenly",
           "overlap_pays", "BLOCK_KERNELS"]

BLOCK_KERNELS = 12
"""Kernels a TensorParallelBlock issues per rank for one batch (or half batch): rms_norm, qkv, rope,
KV-cache write, attention, o_proj, residual add, rms_norm, gate_up, swiglu, down_proj, residual add."""


class RankKernels(Protocol):
    """What a rank computes with: hal.llm.runtime.DeviceKernels is one (numpy views of device
    memory in, results out; each call advances a simulated device's clock on `stream`)."""

    device: Device
    stream: Stream

    def linear_weights(self, w_out_in: np.ndarray, bias: np.ndarray | None) -> Any: ...
    def linear(self, x: np.ndarray, lw: Any, name: str) -> np.ndarray: ...
    def upload(self, array: np.ndarray) -> tuple[DeviceTensor, np.ndarray]: ...
    def allocate(self, shape: tuple[int, ...], dtype: Any) -> tuple[DeviceTensor, np.ndarray]: ...
    def view(self, tensor: DeviceTensor) -> np.ndarray: ...
    def flush(self) -> None: ...
    def rms_norm(self, x: np.ndarray, weight: np.ndarray, eps: float, name: str) -> np.ndarray: ...
    def swiglu(self, x: np.ndarray, name: str) -> np.ndarray: ...
    def add_(self, x: np.ndarray, y: np.ndarray, name: str) -> np.ndarray: ...
    def self_attention(self, qkv: np.ndarray, cache: np.ndarray, cos: np.ndarray, sin: np.ndarray, bias: np.ndarray,
                       heads: int, kv_heads: int, batch: int, length: int, past: int, tag: str) -> np.ndarray: ...


def split_evenly(total: int, parts: int, what: str) -> int:
    """total / parts, or InvalidArgumentError when the ranks cannot take equal shares."""
    if total % parts:
        raise InvalidArgumentError(
            f"{what} ({total}) is not divisible by the {parts} tensor-parallel ranks; use a number of devices "
            f"that divides it ({', '.join(str(n) for n in range(1, total + 1) if total % n == 0 and n <= 16)})"
        )
    return total // parts


def _check_group(comm: Any, kernels: Sequence[RankKernels]) -> list[RankKernels]:
    kernels = list(kernels)
    devices = [d.name for d in comm.devices]
    if [k.device.name for k in kernels] != devices:
        raise InvalidArgumentError(
            f"kernels are for {[k.device.name for k in kernels]} but the communicator's ranks are {devices}; "
            "pass one kernels object per rank, in rank order"
        )
    return kernels


class _CommStreams:
    """A communication stream per rank and the event hand-offs that order it against compute."""

    def __init__(self, comm: Any, kernels: list[RankKernels]):
        self.comm = comm
        self.kernels = kernels
        self.streams = [k.device.stream() for k in kernels]

    def launch(self, collective: str, tensors: list[DeviceTensor], **options: Any) -> _Pending:
        """Starts the collective once each rank's compute issued so far is done (device order);
        the host goes on issuing compute at once."""
        for k, stream in zip(self.kernels, self.streams):
            k.flush()
            stream.wait_event(k.stream.record_event())
        results = getattr(self.comm, collective)(tensors, streams=self.streams, **options)
        return _Pending(list(results), [s.record_event() for s in self.streams], self.kernels)


@dataclass
class _Pending:
    """A collective in flight: wait() orders each rank's compute stream after it and waits on the
    host for its data (the kernels compute on the host when issued)."""

    tensors: list[DeviceTensor]
    done: list[Event]
    kernels: list[RankKernels]

    def wait(self) -> list[np.ndarray]:
        views = []
        for k, event, tensor in zip(self.kernels, self.done, self.tensors):
            k.stream.wait_event(event)
            event.synchronize()
            views.append(k.view(tensor))
        return views


def _check_inputs(comm: Any, inputs: Sequence[DeviceTensor], features: int, what: str) -> None:
    if len(inputs) != comm.size:
        raise InvalidArgumentError(f"{what} takes one tensor per rank ({comm.size}), got {len(inputs)}")
    for rank, (tensor, device) in enumerate(zip(inputs, comm.devices)):
        if not isinstance(tensor, DeviceTensor):
            raise InvalidArgumentError(f"{what}: rank {rank}'s input must be a hal DeviceTensor, got {type(tensor).__name__}")
        if tensor.device.name != device.name:
            raise InvalidArgumentError(f"{what}: rank {rank}'s input is on {tensor.device.name}, its rank is {device.name}; "
                                       "move it with .to(device)")
        if tensor.ndim != 2 or tensor.shape[1] != features or str(tensor.dtype) != "float32":
            raise InvalidArgumentError(f"{what}: rank {rank}'s input must be float32 [rows, {features}], "
                                       f"got {tensor.dtype} {list(tensor.shape)}")


def _rank_inputs(kernels: list[RankKernels], inputs: Sequence[DeviceTensor]) -> list[np.ndarray]:
    """The inputs' device memory, once the work queued on them (a copy, a collective) ran."""
    for k in kernels:
        k.stream.synchronize()
    return [k.view(t) for k, t in zip(kernels, inputs)]


def _to_device(kernels: list[RankKernels], arrays: list[np.ndarray]) -> list[DeviceTensor]:
    """Each rank's result in a new tensor of its device (a collective's operand)."""
    tensors = []
    for k, array in zip(kernels, arrays):
        tensor, view = k.allocate(array.shape, "float32")
        view[...] = array
        tensors.append(tensor)
    return tensors


class ColumnParallelLinear:
    """y = x W^T + b with W [out, in] split by output features (rows) over the ranks.

    weight may be a list of weights [out_i, in] (a merged layer such as Q, K, V or gate, up): each
    is split on its own and a rank keeps its slices side by side, so every rank holds its share of
    each (vLLM's MergedColumnParallelLinear). gather_output=True all-gathers the full output on every
    rank (a single weight only: a merged layer's gathered columns would be in rank order)."""

    def __init__(self, comm: Any, weight: np.ndarray | Sequence[np.ndarray], bias: np.ndarray | Sequence[np.ndarray] | None = None,
                 *, kernels: Sequence[RankKernels], gather_output: bool = False, name: str = "column_parallel"):
        self.comm, self.kernels, self.name = comm, _check_group(comm, kernels), name
        weights = [np.asarray(weight)] if isinstance(weight, np.ndarray) else [np.asarray(w) for w in weight]
        biases = None if bias is None else ([np.asarray(bias)] if isinstance(bias, np.ndarray) else [np.asarray(b) for b in bias])
        if gather_output and len(weights) > 1:
            raise InvalidArgumentError(f"{name}: gather_output takes a single weight; a merged layer's output stays split")
        if any(w.ndim != 2 or w.shape[1] != weights[0].shape[1] for w in weights):
            raise InvalidArgumentError(f"{name}: weights must be [out, in] with one in; got {[list(w.shape) for w in weights]}")
        if biases is not None and [b.shape for b in biases] != [(w.shape[0],) for w in weights]:
            raise InvalidArgumentError(f"{name}: a bias [out] per weight, got {[list(b.shape) for b in biases]}")
        size = comm.size
        shares = [split_evenly(w.shape[0], size, f"{name}'s output features") for w in weights]
        self.in_features = weights[0].shape[1]
        self.out_features = sum(w.shape[0] for w in weights)
        self.local_features = sum(shares)
        self.gather_output = gather_output
        self._comm_streams: _CommStreams | None = None  # made on the first standalone call
        self.shards = []
        for rank, k in enumerate(self.kernels):
            rows = [slice(rank * s, (rank + 1) * s) for s in shares]
            w = np.concatenate([w[r] for w, r in zip(weights, rows)])
            b = None if biases is None else np.concatenate([b[r] for b, r in zip(biases, rows)])
            self.shards.append(k.linear_weights(w, b))

    def local(self, rank: int, x: np.ndarray, name: str | None = None) -> np.ndarray:
        """Rank's slice of the output [rows, out / size] from x [rows, in] (its device's memory)."""
        return self.kernels[rank].linear(x, self.shards[rank], name or self.name)

    def __call__(self, inputs: Sequence[DeviceTensor]) -> list[DeviceTensor]:
        """inputs: x [rows, in] on every rank (the same values); per rank its output slice, or the
        whole output with gather_output."""
        _check_inputs(self.comm, inputs, self.in_features, self.name)
        views = _rank_inputs(self.kernels, inputs)
        outputs = _to_device(self.kernels, [self.local(r, x) for r, x in enumerate(views)])
        if not self.gather_output:
            for k in self.kernels:
                k.flush()
            return outputs
        pending = self.gather(outputs)
        pending.wait()
        return pending.tensors

    def gather(self, outputs: list[np.ndarray] | list[DeviceTensor], streams: _CommStreams | None = None) -> _Pending:
        """The all-gather of the ranks' output slices [rows, out / size] into [rows, out] on every
        rank, in flight on the communication streams (the block's, or this layer's own)."""
        if streams is None:
            streams = self._comm_streams = self._comm_streams or _CommStreams(self.comm, self.kernels)
        tensors = outputs if isinstance(outputs[0], DeviceTensor) else _to_device(self.kernels, outputs)  # type: ignore[arg-type]
        return streams.launch("all_gather", tensors, axis=1)


class RowParallelLinear:
    """y = x W^T + b with W [out, in] split by input features (columns) over the ranks: each rank
    multiplies its slice of x, an all-reduce sums the partial products, the bias is added after the
    sum (once). input_is_parallel=False: each rank takes its slice of a full x itself."""

    def __init__(self, comm: Any, weight: np.ndarray, bias: np.ndarray | None = None, *, kernels: Sequence[RankKernels],
                 input_is_parallel: bool = True, name: str = "row_parallel"):
        self.comm, self.kernels, self.name = comm, _check_group(comm, kernels), name
        weight = np.asarray(weight)
        if weight.ndim != 2:
            raise InvalidArgumentError(f"{name}: weight must be [out, in], got {list(weight.shape)}")
        if bias is not None and np.shape(bias) != (weight.shape[0],):
            raise InvalidArgumentError(f"{name}: bias must be [{weight.shape[0]}], got {list(np.shape(bias))}")
        share = split_evenly(weight.shape[1], comm.size, f"{name}'s input features")
        self.out_features, self.in_features, self.local_features = weight.shape[0], weight.shape[1], share
        self.input_is_parallel = input_is_parallel
        self._comm_streams: _CommStreams | None = None  # made on the first standalone call
        self.shards = [k.linear_weights(weight[:, r * share:(r + 1) * share], None) for r, k in enumerate(self.kernels)]
        self.bias = None if bias is None else [k.upload(np.asarray(bias, np.float32)) for k in self.kernels]

    def local(self, rank: int, x: np.ndarray, name: str | None = None) -> np.ndarray:
        """Rank's partial product [rows, out] from its input slice x [rows, in / size]."""
        return self.kernels[rank].linear(x, self.shards[rank], name or self.name)

    def add_bias(self, rank: int, reduced: np.ndarray, name: str | None = None) -> None:
        if self.bias is not None:
            self.kernels[rank].add_(reduced, self.bias[rank][1], (name or self.name) + " bias")

    def reduce(self, partials: list[np.ndarray], streams: _CommStreams | None = None) -> _Pending:
        """The all-reduce of the ranks' partial products, in flight on the communication streams."""
        if streams is None:
            streams = self._comm_streams = self._comm_streams or _CommStreams(self.comm, self.kernels)
        return streams.launch("all_reduce", _to_device(self.kernels, partials), op="sum")

    def __call__(self, inputs: Sequence[DeviceTensor]) -> list[DeviceTensor]:
        """inputs: each rank's slice x_r [rows, in / size] (or the whole x, input_is_parallel=False);
        returns y [rows, out] on every rank."""
        features = self.local_features if self.input_is_parallel else self.in_features
        _check_inputs(self.comm, inputs, features, self.name)
        views = _rank_inputs(self.kernels, inputs)
        if not self.input_is_parallel:
            share = self.local_features
            views = [np.ascontiguousarray(x[:, r * share:(r + 1) * share]) for r, x in enumerate(views)]
        pending = self.reduce([self.local(r, x) for r, x in enumerate(views)])
        for rank, reduced in enumerate(pending.wait()):
            self.add_bias(rank, reduced)
            self.kernels[rank].flush()
        return pending.tensors


class TensorParallelBlock:
    """One Llama / Qwen2 decoder layer over the ranks: rank r holds query heads
    [r * H/n, (r+1) * H/n) and their key/value heads (its KV cache too), q/k/v and gate/up
    column-parallel, o_proj and down_proj row-parallel; the norms are replicated. One all-reduce
    after attention, one after the MLP.

    weights: the layer's tensors by their names inside the layer, as transformers' decoder layer's
    state_dict has them ("self_attn.q_proj.weight", "mlp.down_proj.weight", "input_layernorm.weight"...).
    config: hidden_size, num_attention_heads, num_key_value_heads, head_dim, rms_norm_eps
    (hal.llm.DecoderConfig)."""

    def __init__(self, comm: Any, weights: Mapping[str, np.ndarray], config: Any, *, kernels: Sequence[RankKernels],
                 index: int = 0, comm_streams: _CommStreams | None = None):
        self.comm, self.kernels, self.config, self.index = comm, _check_group(comm, kernels), config, index
        size = comm.size
        self.heads = split_evenly(config.num_attention_heads, size, "num_attention_heads")
        self.kv_heads = split_evenly(config.num_key_value_heads, size, "num_key_value_heads")
        self.comm_streams = comm_streams or _CommStreams(comm, self.kernels)
        tag = f"layer {index} "
        w = weights

        def bias(*names: str) -> list[np.ndarray] | None:
            found = [w.get(n) for n in names]
            return found if all(b is not None for b in found) else None  # type: ignore[return-value]

        attn, mlp = "self_attn.", "mlp."
        qkv_names = [attn + p + "_proj" for p in "qkv"]
        self.qkv = ColumnParallelLinear(comm, [w[n + ".weight"] for n in qkv_names], bias(*(n + ".bias" for n in qkv_names)),
                                        kernels=self.kernels, name=tag + "qkv")
        self.o = RowParallelLinear(comm, w[attn + "o_proj.weight"], w.get(attn + "o_proj.bias"), kernels=self.kernels,
                                   name=tag + "o_proj")
        gate_up = [mlp + "gate_proj", mlp + "up_proj"]
        self.gate_up = ColumnParallelLinear(comm, [w[n + ".weight"] for n in gate_up], bias(*(n + ".bias" for n in gate_up)),
                                            kernels=self.kernels, name=tag + "gate_up")
        self.down = RowParallelLinear(comm, w[mlp + "down_proj.weight"], w.get(mlp + "down_proj.bias"), kernels=self.kernels,
                                      name=tag + "down_proj")
        self._norms = [(k.upload(w["input_layernorm.weight"]), k.upload(w["post_attention_layernorm.weight"])) for k in self.kernels]

    def attention(self, rank: int, hidden: np.ndarray, cache: np.ndarray, cos: np.ndarray, sin: np.ndarray,
                  bias: np.ndarray, batch: int, length: int, past: int) -> np.ndarray:
        """Rank's partial o_proj output [rows, hidden] for hidden [batch * length, hidden_size],
        its key/value heads written to cache [2, batch, kv_heads / n, max_length, head_dim]."""
        k, tag = self.kernels[rank], f"layer {self.index} "
        x = k.rms_norm(hidden, self._norms[rank][0][1], self.config.rms_norm_eps, tag + "input_norm")
        attended = k.self_attention(self.qkv.local(rank, x), cache, cos, sin, bias, self.heads, self.kv_heads, batch, length, past, tag)
        return self.o.local(rank, attended)

    def mlp(self, rank: int, hidden: np.ndarray) -> np.ndarray:
        """Rank's partial down_proj output [rows, hidden] for hidden [rows, hidden_size]."""
        k = self.kernels[rank]
        x = k.rms_norm(hidden, self._norms[rank][1][1], self.config.rms_norm_eps, f"layer {self.index} post_norm")
        return self.down.local(rank, k.swiglu(self.gate_up.local(rank, x), f"layer {self.index} swiglu"))

    def __call__(self, hidden: list[np.ndarray], caches: list[np.ndarray], step_cos: np.ndarray, step_sin: np.ndarray,
                 bias: np.ndarray, batch: int, length: int, past: int, *, overlap: bool | None = None) -> None:
        """The layer on every rank's copy of hidden [batch * length, hidden_size], in place (see run_layers)."""
        run_layers([self], hidden, [c[None] for c in caches], step_cos, step_sin, bias, batch, length, past, overlap=overlap)


def overlap_pays(block: TensorParallelBlock, batch: int, length: int) -> bool:
    """Whether splitting a batch in two halves saves simulated time on these ranks: the two
    all-reduces a layer can hide (at most their whole time) against what the second half adds
    (a launch per kernel, one more read of the rank's layer weights at memory speed). Never on
    devices whose clock is the wall clock: the host computes both halves itself, one after the other."""
    if batch < 2:
        return False
    specs = [k.device.spec for k in block.kernels]
    if not all(s.simulated and s.launch_overhead_s is not None and s.mem_bandwidth for s in specs):
        return False
    hidden_bytes = batch * length * block.config.hidden_size * 4
    hideable = 2 * block.comm_streams.comm.estimate_seconds("all_reduce", hidden_bytes)
    weight_bytes = max(sum(lw.weight.nbytes for lw in (block.qkv.shards[r], block.o.shards[r], block.gate_up.shards[r],
                                                          block.down.shards[r])) for r in range(len(specs)))
    added = max(BLOCK_KERNELS * s.launch_overhead_s + weight_bytes / s.mem_bandwidth for s in specs)  # type: ignore[operator]
    return hideable > added


def run_layers(blocks: Sequence[TensorParallelBlock], hidden: list[np.ndarray], caches: list[np.ndarray],
               step_cos: np.ndarray, step_sin: np.ndarray, bias: np.ndarray, batch: int, length: int, past: int, *,
               overlap: bool | None = None) -> None:
    """Runs the blocks in order on each rank's copy of the hidden state (host arrays [batch *
    length, hidden_size], updated in place). caches: per rank [layers, 2, batch, kv_heads / n,
    max_length, head_dim] (device memory); step_cos / step_sin [batch * length, head_dim / 2], the
    rotary angles of each row; bias [batch, 1 or groups * length, past + length], the additive
    attention mask.

    overlap=True (and a batch of two or more sequences): the batch runs as two halves, one step
    apart: while one half's all-reduce is on the communication streams, the other half's attention
    or MLP is computed, and the half whose all-reduce is done goes on (Domino's schedule, for
    inference). overlap=None: so where overlap_pays says it saves time; False: the whole batch at once."""
    first = blocks[0]
    kernels, streams = first.kernels, first.comm_streams
    split = batch >= 2 and (overlap_pays(first, batch, length) if overlap is None else overlap)
    halves = [range(batch // 2), range(batch // 2, batch)] if split else [range(batch)]
    heads = first.heads + first.kv_heads
    angles = {}  # per half: the rotary angles repeated per (row, local head), shared by every layer
    for half in halves:
        rows = slice(half.start * length, half.stop * length)
        angles[half.start] = (np.repeat(step_cos[rows], heads, axis=0), np.repeat(step_sin[rows], heads, axis=0))
    in_flight: dict[int, tuple[_Pending, RowParallelLinear]] = {}

    def finish(half: range) -> None:
        """The half's last all-reduce, its bias, then the residual add on every rank."""
        if half.start not in in_flight:
            return
        pending, layer = in_flight.pop(half.start)
        rows = slice(half.start * length, half.stop * length)
        for rank, reduced in enumerate(pending.wait()):
            layer.add_bias(rank, reduced)
            kernels[rank].add_(hidden[rank][rows], reduced, f"{layer.name} residual")

    for slot, block in enumerate(blocks):
        for phase in ("attention", "mlp"):
            for half in halves:
                finish(half)
                rows = slice(half.start * length, half.stop * length)
                nb = len(half)
                if phase == "attention":
                    cos, sin = angles[half.start]
                    partials = [block.attention(r, hidden[r][rows], caches[r][slot][:, half.start:half.stop], cos, sin,
                                                bias[half.start:half.stop], nb, length, past) for r in range(len(kernels))]
                    layer = block.o
                else:
                    partials = [block.mlp(r, hidden[r][rows]) for r in range(len(kernels))]
                    layer = block.down
                in_flight[half.start] = (layer.reduce(partials, streams), layer)
    for half in halves:
        finish(half)
    for k in kernels:
        k.flush()
