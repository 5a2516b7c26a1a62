"""A decoder run tensor-parallel: every layer split over all the model's devices.

    model = hal.llm.load(config, devices=["ascend:0", "ascend:1"], parallel="tensor")

Each rank holds 1/n of every layer (its attention heads and their KV cache, its share of the MLP:
hal.distributed.TensorParallelBlock), a copy of the embedding table and the final norm, and 1/n of
the vocabulary's lm_head rows (padded to a multiple of n with zero rows, the padding's logits
dropped). The token ids go to every rank; the hidden state is replicated, kept whole by two
all-reduces per layer; the logits are all-gathered and rank 0 samples. A batch of two or more
sequences can run as two halves whose all-reduces overlap the other half's compute
(hal.distributed.tensor_parallel.run_layers; `overlap`).

The embedding is replicated rather than split by vocabulary (Megatron's VocabParallelEmbedding):
a decode step gathers one row per sequence, so splitting it would save memory but add a third
all-reduce per step.
"""
from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .. import profiler
from ..device import Device
from ..distributed.communicator import Communicator
from ..distributed.tensor_parallel import ColumnParallelLinear, TensorParallelBlock, run_layers, split_evenly
from ..tensor import DeviceTensor
from .config import DecoderConfig
from .runtime import DeviceKernels
from .weights import layer_prefix

__all__ = ["TensorParallelGroup"]


class TensorParallelGroup:
    """The model's layers, embedding and head over a Communicator of the model's devices."""

    def __init__(self, config: DecoderConfig, weights: Mapping[str, np.ndarray], devices: Sequence[Device], *,
                 precision_mode: str | None, fc_precision: str | None, quantization: str):
        size = len(devices)
        self.heads = split_evenly(config.num_attention_heads, size, "num_attention_heads")
        self.kv_heads = split_evenly(config.num_key_value_heads, size, "num_key_value_heads")
        split_evenly(config.intermediate_size, size, "intermediate_size")
        self.config = config
        self.comm = Communicator(list(devices))
        self.kernels = [DeviceKernels(d, precision_mode=precision_mode, fc_precision=fc_precision, quantization=quantization)
                        for d in self.comm.devices]
        self.blocks: list[TensorParallelBlock] = []
        for index in range(config.num_hidden_layers):
            prefix = layer_prefix(index)
            layer = {name[len(prefix):]: w for name, w in weights.items() if name.startswith(prefix)}
            self.blocks.append(TensorParallelBlock(self.comm, layer, config, kernels=self.kernels, index=index,
                                                   comm_streams=self.blocks[0].comm_streams if self.blocks else None))
        self.comm_streams = self.blocks[0].comm_streams
        self.overlap: bool | None = None
        """Split a batch in two halves so that all-reduces overlap compute: None (where the chip's
        figures say it saves time: overlap_pays), True or False."""
        self._embedding = [k.upload(weights["model.embed_tokens.weight"]) for k in self.kernels]
        self._final_norm = [k.upload(weights["model.norm.weight"]) for k in self.kernels]
        head = weights["model.embed_tokens.weight"] if config.tie_word_embeddings else weights["lm_head.weight"]
        padded = math.ceil(config.vocab_size / size) * size
        head = np.concatenate([head, np.zeros((padded - config.vocab_size, head.shape[1]), head.dtype)])
        self.lm_head = ColumnParallelLinear(self.comm, head, kernels=self.kernels, gather_output=True, name="lm_head")

    @property
    def devices(self) -> list[Device]:
        return list(self.comm.devices)

    def describe(self) -> list[dict[str, Any]]:
        c = self.config
        return [{**k.describe(), "layers": [0, c.num_hidden_layers - 1], "parallel": "tensor", "rank": rank,
                 "attention_heads": self.heads, "kv_heads": self.kv_heads, "intermediate": c.intermediate_size // len(self.kernels),
                 "communicator": self.comm.describe()} for rank, k in enumerate(self.kernels)]

    def step(self, ids: np.ndarray, step_cos: np.ndarray, step_sin: np.ndarray, bias: np.ndarray, past: int,
             caches: list[tuple[DeviceTensor, np.ndarray]], picker, label: str,
             stage_times: dict[str, list[float]]) -> tuple[np.ndarray, np.ndarray]:
        """One prefill or decode step on every rank: (logits [B, vocab], sampled ids [B])."""
        c = self.config
        batch, length = ids.shape
        wall0 = time.perf_counter()
        begin = [k.stream.record_event() if k.chip is not None else None for k in self.kernels]
        hidden = [k.embed(table, k.upload_ids(ids), "embedding") for k, (_, table) in zip(self.kernels, self._embedding)]
        run_layers(self.blocks, hidden, [cache for _, cache in caches], step_cos, step_sin, bias, batch, length, past,
                   overlap=self.overlap)
        local = []
        for rank, (k, (_, norm)) in enumerate(zip(self.kernels, self._final_norm)):
            last = np.ascontiguousarray(hidden[rank].reshape(batch, length, c.hidden_size)[:, -1, :])
            local.append(self.lm_head.local(rank, k.rms_norm(last, norm, c.rms_norm_eps, "final_norm")))
        logits = np.array(self.lm_head.gather(local, self.comm_streams).wait()[0][:, : c.vocab_size])
        first = self.kernels[0]
        tokens = first.download_tokens(first.sample(logits, picker, "sample"))
        recorder = profiler.active()
        for k, start in zip(self.kernels, begin):
            k.flush()
            end = k.stream.record_event() if start is not None else None
            if start is not None and end is not None:
                end.synchronize()
                stage_times[k.device.name].append(start.elapsed_time(end) / 1e3)
            if recorder is not None:
                recorder.record(profiler.TraceEvent(
                    label, "compute", k.device.name, "generate", wall0, time.perf_counter(),
                    device_start=start.driver.device_time_s() if start is not None else None,
                    device_end=end.driver.device_time_s() if end is not None else None,
                    simulated=start is not None, args={"parallel": "tensor", "tokens": batch * length},
                ))
        return logits, tokens
