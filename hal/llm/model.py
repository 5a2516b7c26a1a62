"""DecoderModel: a Llama / Qwen2-family decoder that generates tokens on hal devices.

    model = hal.llm.load("path/to/hf_folder", device="ascend:0")
    result = model.generate([[1, 2, 3]], max_new_tokens=32)     # greedy; do_sample=True, temperature, top_k, top_p, seed
    result.tokens, result.time_to_first_token_s, result.decode_tokens_per_s, result.simulated
    model.numerics_report([[1, 2, 3]], max_new_tokens=16)      # the chip's logits against float32 cpu

Each generation is one prefill (the whole prompt) and one decode step per new token, run as the
kernels of hal.llm.runtime on the model's devices; layers may be split over several devices
(`devices=["ascend:0", "kunlun:0"]`: a pipeline by layers, the hidden state copied between them
through hal's copy path, costed as any copy is); or split tensor-parallel (`parallel="tensor"`:
every layer's heads and MLP over all the devices, two all-reduces per layer; hal.llm.tensor_parallel).

The KV cache is static: one buffer per device, [layers, 2, batch, kv_heads, max_length, head_dim],
allocated once per generate() call from prompt length + max_new_tokens and written in place at
each step; it never leaves the device. A paged cache (blocks and a block table) pays off when many
requests of unknown lengths share a device, as in a serving engine; generate() knows every length
before it starts, so one contiguous buffer is simpler, reads at full memory speed, and runs out of
memory (if it must) before any work is done.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import profiler
from ..device import Device
from ..errors import InvalidArgumentError, OutOfMemoryError
from ..memory import format_bytes
from ..registry import device as get_device
from ..tensor import DeviceTensor
from .config import DecoderConfig
from .prompt import check_prompt, position_ids
from .rope import rope_tables
from .runtime import DeviceKernels, LinearWeights
from .tensor_parallel import TensorParallelGroup
from .weights import layer_prefix, load_weights, random_weights

__all__ = ["DecoderModel", "GenerationResult", "NumericsReport", "load"]


@dataclass
class GenerationResult:
    tokens: np.ndarray
    """[batch, new tokens] int64 (after an end-of-sequence token, the pad id)."""
    prompt_length: int
    time_to_first_token_s: float
    """Wall time of the prefill and the first token's sampling."""
    decode_step_s: list[float]
    """Wall time of each decode step."""
    simulated: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per simulated device: time_to_first_token_s and decode_step_s on the device's clock."""
    logits: list[np.ndarray] | None = None
    """Per step [batch, vocab] float32, when asked for (numerics_report)."""
    parallel: str = "pipeline"
    """How the model's devices share a step: "pipeline" (one after another: a step's simulated
    time is their sum) or "tensor" (all at once: the slowest device's time)."""

    @property
    def decode_tokens_per_s(self) -> float:
        """New tokens per second of the decode steps, per sequence (wall clock)."""
        steps = self.decode_step_s
        return len(steps) / sum(steps) if steps and sum(steps) > 0 else math.nan

    def simulated_decode_tokens_per_s(self) -> float | None:
        """Decode tokens/s on the simulated clock (a pipeline's devices summed per step, a
        tensor-parallel group's slowest device)."""
        if not self.simulated:
            return None
        per_step = self._combine([d["decode_step_s"] for d in self.simulated.values()], axis=0)
        return len(per_step) / float(np.sum(per_step)) if len(per_step) and np.sum(per_step) > 0 else math.nan

    def simulated_time_to_first_token_s(self) -> float | None:
        if not self.simulated:
            return None
        return float(self._combine([d["time_to_first_token_s"] for d in self.simulated.values()]))

    def _combine(self, per_device: list, axis: int | None = None) -> Any:
        return np.max(per_device, axis=axis) if self.parallel == "tensor" else np.sum(per_device, axis=axis)


@dataclass(frozen=True)
class NumericsReport:
    """The model's logits on its devices against the same model in float32 on the CPU, step by
    step over the tokens the devices generated (the CPU is fed the same tokens)."""

    devices: tuple[str, ...]
    numerics: tuple[dict[str, Any], ...]
    steps: int
    max_abs_error: float
    max_abs_logit: float
    """Largest |logit| of the reference: the scale max_abs_error is read against."""
    top1_agreement: float
    """Fraction of (sequence, step) pairs whose most likely token is the same."""
    per_step_max_abs_error: tuple[float, ...]

    def __str__(self) -> str:
        lines = [f"numerics of {', '.join(self.devices)} against float32 cpu over {self.steps} generated steps:"]
        for n in self.numerics:
            if n.get("route") == "onnx":
                lines.append(f"  {n['device']}: the ONNX export, {n['nodes']} nodes")
            else:
                lines.append(f"  {n['device']}: linear {n['linear']}, attention operands {n['attention_operands']}, KV cache {n['kv_cache']}")
        lines.append(f"  logits max abs error {self.max_abs_error:.3g} (largest |logit| {self.max_abs_logit:.3g}, "
                     f"relative {self.max_abs_error / max(self.max_abs_logit, 1e-30):.2e})")
        lines.append(f"  top-1 agreement {self.top1_agreement:.1%}")
        return "\n".join(lines)


@dataclass
class _Layer:
    input_norm: np.ndarray
    qkv: LinearWeights
    o: LinearWeights
    post_norm: np.ndarray
    gate_up: LinearWeights
    down: LinearWeights
    tensors: list[DeviceTensor]


@dataclass
class _Stage:
    """Consecutive layers on one device."""

    kernels: DeviceKernels
    layers: range
    weights: list[_Layer]
    fused: Any = None
    """hal._C.DecoderLayers running a decode step's layers from C++ (DeviceKernels.fused_decoder),
    or None: the layers' kernels run one by one (_layer_step)."""


class DecoderModel:
    """A decoder on one device or a pipeline of devices (see the module docstring)."""

    def __init__(self, config: DecoderConfig, weights: Mapping[str, np.ndarray], *, devices: Sequence[str | Device],
                 precision_mode: str | None = None, fc_precision: str | None = None, quantization: str = "none",
                 route: str = "auto", parallel: str = "pipeline"):
        self.config = config
        targets = [get_device(d) for d in devices]
        if not targets:
            raise InvalidArgumentError("hal.llm needs at least one device")
        if route not in ROUTES:
            raise InvalidArgumentError(f"route must be one of {', '.join(ROUTES)}, got {route!r}")
        if parallel not in PARALLEL:
            raise InvalidArgumentError(f"parallel must be one of {', '.join(PARALLEL)}, got {parallel!r}")
        if route == "auto":
            route = "kernels" if all(kernel_route_runs_on(d) for d in targets) else "onnx"
        self.route = route
        self.parallel = parallel
        names = [d.name for d in targets]
        if len(set(names)) != len(names):
            raise InvalidArgumentError(f"devices lists a device twice: {names}; a pipeline stage or a tensor-parallel rank per device")
        if parallel == "pipeline" and len(targets) > config.num_hidden_layers:
            raise InvalidArgumentError(f"{len(targets)} devices for {config.num_hidden_layers} layers: a device needs at least one layer")
        self._host_weights = weights
        self._cos, self._sin = rope_tables(config, config.max_position_embeddings)
        self._onnx: OnnxRoute | None = None
        self._tensor: TensorParallelGroup | None = None
        if parallel == "tensor":
            if route != "kernels":
                raise InvalidArgumentError(
                    f"parallel='tensor' runs on the kernel route (the CPU and simulated chips); {', '.join(names)} "
                    "take the ONNX route: use parallel='pipeline' there"
                )
            self._tensor = TensorParallelGroup(config, weights, targets, precision_mode=precision_mode,
                                               fc_precision=fc_precision, quantization=quantization)
            self.stages = []
            return
        if route == "onnx":
            if quantization != "none":
                raise InvalidArgumentError("quantization runs on the kernel route; the ONNX export is float32")
            self._onnx = OnnxRoute(config, weights, targets, precision_mode=precision_mode, fc_precision=fc_precision)
            self.stages = []
            return
        kernels = [DeviceKernels(d, precision_mode=precision_mode, fc_precision=fc_precision, quantization=quantization) for d in targets]
        self.stages = [_Stage(k, r, [self._layer(k, i) for i in r]) for k, r in zip(kernels, _split_layers(config.num_hidden_layers, len(targets)))]
        for stage in self.stages:
            stage.fused = stage.kernels.fused_decoder(stage.weights, config)
        first, last = self.stages[0].kernels, self.stages[-1].kernels
        self._embedding_tensor, self._embedding = first.upload(weights["model.embed_tokens.weight"])
        self._final_norm_tensor, self._final_norm = last.upload(weights["model.norm.weight"])
        head = weights["model.embed_tokens.weight"] if config.tie_word_embeddings else weights["lm_head.weight"]
        self._lm_head = last.linear_weights(head, None)

    @property
    def devices(self) -> list[Device]:
        if self._onnx is not None:
            return list(self._onnx.session.devices)
        if self._tensor is not None:
            return self._tensor.devices
        return [s.kernels.device for s in self.stages]

    @property
    def tensor_parallel(self) -> TensorParallelGroup | None:
        """The group a parallel="tensor" model runs on (its communicator, each rank's kernels and
        communication stream), or None."""
        return self._tensor

    def _layer(self, kernels: DeviceKernels, index: int) -> _Layer:
        w, p, c = self._host_weights, layer_prefix(index), self.config
        attn, mlp = p + "self_attn.", p + "mlp."

        def bias(*names: str) -> np.ndarray | None:
            found = [w.get(n) for n in names]
            return np.concatenate(found) if all(b is not None for b in found) else None

        qkv = np.concatenate([w[attn + "q_proj.weight"], w[attn + "k_proj.weight"], w[attn + "v_proj.weight"]])
        gate_up = np.concatenate([w[mlp + "gate_proj.weight"], w[mlp + "up_proj.weight"]])
        in_t, in_v = kernels.upload(w[p + "input_layernorm.weight"])
        post_t, post_v = kernels.upload(w[p + "post_attention_layernorm.weight"])
        layer = _Layer(
            in_v,
            kernels.linear_weights(qkv, bias(attn + "q_proj.bias", attn + "k_proj.bias", attn + "v_proj.bias") if c.attention_bias else None),
            kernels.linear_weights(w[attn + "o_proj.weight"], w.get(attn + "o_proj.bias")),
            post_v,
            kernels.linear_weights(gate_up, bias(mlp + "gate_proj.bias", mlp + "up_proj.bias") if c.mlp_bias else None),
            kernels.linear_weights(w[mlp + "down_proj.weight"], w.get(mlp + "down_proj.bias")),
            [in_t, post_t],
        )
        return layer

    def describe(self) -> list[dict[str, Any]]:
        """Per stage: device, layers and how it computes (linear kind, KV cache dtype...); on the
        ONNX route, per device of the session's plan: its partitions and nodes."""
        if self._onnx is not None:
            return self._onnx.describe()
        if self._tensor is not None:
            return self._tensor.describe()
        stages = [{**s.kernels.describe(), "layers": [s.layers.start, s.layers.stop - 1]} for s in self.stages]
        for previous, stage, info in zip(self.stages, self.stages[1:], stages[1:]):
            info["hidden_in"] = _transfer_plan(previous.kernels.device, stage.kernels.device, self.config.hidden_size * 4)
        return stages

    # -- generation --------------------------------------------------------------------------------
    def generate(self, input_ids: Any, max_new_tokens: int = 32, *, attention_mask: Any = None, do_sample: bool = False,
                 temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0, seed: int | None = None,
                 eos_token_id: int | Sequence[int] | None | str = "config", pad_token_id: int | None = None,
                 on_token: Callable[[int, np.ndarray], None] | None = None, keep_logits: bool = False) -> GenerationResult:
        """Greedy (or sampled) continuation of input_ids [batch, prompt] (left-padded where
        attention_mask has zeros). Stops after max_new_tokens, or when every sequence has produced
        an end-of-sequence token (eos_token_id: the config's by default, as transformers; None: never
        stop early). A finished sequence is padded with pad_token_id (default: its eos id)."""
        ids, mask = self._check_prompt(input_ids, attention_mask)
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, (int, np.integer)) or max_new_tokens < 1:
            raise InvalidArgumentError(f"max_new_tokens must be an integer >= 1, got {max_new_tokens!r}")
        batch, prompt = ids.shape
        total = prompt + int(max_new_tokens)
        if total > self.config.max_position_embeddings:
            raise InvalidArgumentError(
                f"prompt ({prompt} tokens) + max_new_tokens ({max_new_tokens}) = {total} exceeds the model's "
                f"max_position_embeddings ({self.config.max_position_embeddings}); shorten one of them"
            )
        picker = _sampler(do_sample, temperature, top_k, top_p, seed)
        eos = _token_set(self.config.eos_token_id if isinstance(eos_token_id, str) else eos_token_id)
        pad = pad_token_id if pad_token_id is not None else (min(eos) if eos else 0)
        tokens = np.empty((batch, int(max_new_tokens)), np.int64)
        finished = np.zeros(batch, bool)
        logits_kept: list[np.ndarray] | None = [] if keep_logits else None
        stage_times: dict[str, list[float]] = {d.name: [] for d in self.devices if d.spec.simulated}
        step_wall: list[float] = []
        steps = self._steps(ids, mask, int(max_new_tokens), picker, stage_times)
        t0 = time.perf_counter()
        for step, (logits, nxt) in enumerate(steps):
            if logits_kept is not None:
                logits_kept.append(logits)
            nxt = np.where(finished, pad, nxt)
            tokens[:, step] = nxt
            if eos:
                finished |= np.isin(nxt, list(eos))
            step_wall.append(time.perf_counter() - t0)
            if on_token is not None:
                on_token(step, nxt)
            if finished.all():
                tokens = tokens[:, : step + 1]
                break
            t0 = time.perf_counter()
        simulated = {name: {"time_to_first_token_s": t[0], "decode_step_s": t[1:]} for name, t in stage_times.items()}
        return GenerationResult(tokens, prompt, step_wall[0], step_wall[1:], simulated, logits_kept, self.parallel)

    def _steps(self, ids: np.ndarray, mask: np.ndarray, count: int, picker, stage_times: dict[str, list[float]],
               forced: np.ndarray | None = None):
        """Yields (logits [B, vocab], next ids [B]) for the prefill then each decode step, the KV
        cache allocated first; each step feeds the ids just yielded, or forced[:, step] when given
        (teacher forcing, for numerics_report)."""
        if self._onnx is not None:
            yield from self._onnx.steps(ids, mask, count, picker, stage_times, forced)
            return
        batch, prompt = ids.shape
        total = prompt + count
        caches = self._allocate_caches(batch, total)
        positions = position_ids(mask)
        key_mask = np.zeros((batch, total), np.float32)
        key_mask[:, :prompt][mask == 0] = _MASKED
        step_ids, past = ids, 0
        for step in range(count):
            label = "prefill" if step == 0 else f"decode step {step}"
            logits, nxt = self._step(step_ids, positions, past, key_mask, caches, picker, label, stage_times)
            yield logits, nxt
            past += step_ids.shape[1]
            step_ids = (forced[:, step] if forced is not None else nxt)[:, None]
            positions = positions[:, -1:] + 1

    def _check_prompt(self, input_ids: Any, attention_mask: Any) -> tuple[np.ndarray, np.ndarray]:
        """hal.llm.prompt.check_prompt, a single sequence (1-D ids or mask) taken as a batch of one."""
        mask = None if attention_mask is None else _as_batch(attention_mask)
        return check_prompt(_as_batch(input_ids), mask, vocab_size=self.config.vocab_size)

    def _allocate_caches(self, batch: int, length: int) -> list[tuple[DeviceTensor, np.ndarray]]:
        """The static KV cache of each stage (of each tensor-parallel rank: its key/value heads),
        checked against the device's free memory first."""
        c = self.config
        if self._tensor is not None:
            holders = [(k, c.num_hidden_layers, self._tensor.kv_heads) for k in self._tensor.kernels]
        else:
            holders = [(s.kernels, len(s.layers), c.num_key_value_heads) for s in self.stages]
        plans = []
        for k, layers, kv_heads in holders:
            shape = (layers, 2, batch, kv_heads, length, c.head_dim)
            nbytes = math.prod(shape) * k.kv_dtype.itemsize
            stats = k.device.memory_stats()
            if nbytes > stats.free_bytes:
                raise OutOfMemoryError(
                    f"{k.device.name}: the KV cache of {layers} layers x batch {batch} x {length} tokens "
                    f"({k.kv_dtype}) needs {format_bytes(nbytes)}; {format_bytes(stats.free_bytes)} of "
                    f"{format_bytes(stats.capacity_bytes)} is free after the weights. Use a shorter prompt or "
                    "max_new_tokens, a smaller batch, more devices, or quantization='int8'"
                )
            plans.append((k, shape))
        return [k.allocate(shape, k.kv_dtype) for k, shape in plans]

    def _step(self, ids: np.ndarray, positions: np.ndarray, past: int, key_mask: np.ndarray,
              caches: list[tuple[DeviceTensor, np.ndarray]], picker, label: str,
              stage_times: dict[str, list[float]]) -> tuple[np.ndarray, np.ndarray]:
        c = self.config
        batch, length = ids.shape
        flat = positions.reshape(-1)
        step_cos, step_sin = self._cos[flat], self._sin[flat]  # [B * S, D/2]
        if self._tensor is not None:
            bias = self._attention_bias(key_mask, batch, length, past)
            return self._tensor.step(ids, step_cos, step_sin, bias, past, caches, picker, label, stage_times)
        per_kernel: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # made when a stage runs kernel by kernel
        recorder = profiler.active()
        hidden = None
        logits = tokens = None
        for index, (stage, (_, cache)) in enumerate(zip(self.stages, caches)):
            k = stage.kernels
            wall0 = time.perf_counter()
            begin = k.stream.record_event() if k.chip is not None else None
            if hidden is None:
                staged = k.upload_ids(ids)
                hidden = k.embed(self._embedding, staged, "embedding")
            else:
                hidden = self._transfer(hidden, self.stages[index - 1].kernels, k)
            if stage.fused is not None and length == 1:  # a decode step on the CPU: every layer in one C++ call
                stage.fused.step(hidden, cache, step_cos, step_sin, key_mask, past)
            else:
                per_kernel = per_kernel or self._kernel_route_inputs(step_cos, step_sin, key_mask, batch, length, past)
                cos, sin, bias = per_kernel
                for slot, layer_index in enumerate(stage.layers):
                    self._layer_step(k, stage.weights[slot], layer_index, hidden, cache[slot], cos, sin, bias, batch, length, past)
            if index == len(self.stages) - 1:
                last = hidden.reshape(batch, length, c.hidden_size)[:, -1, :]
                normed = k.rms_norm(np.ascontiguousarray(last), self._final_norm, c.rms_norm_eps, "final_norm")
                logits = k.linear(normed, self._lm_head, "lm_head")
                sampled = k.sample(logits, picker, "sample")
                k.flush()
                tokens = k.download_tokens(sampled)
            k.flush()
            end = k.stream.record_event() if k.chip is not None else None
            if begin is not None and end is not None:
                end.synchronize()
                stage_times[k.device.name].append(begin.elapsed_time(end) / 1e3)
            if recorder is not None:
                recorder.record(profiler.TraceEvent(
                    label, "compute", k.device.name, "generate", wall0, time.perf_counter(),
                    device_start=begin.driver.device_time_s() if begin is not None else None,
                    device_end=end.driver.device_time_s() if end is not None else None,
                    simulated=begin is not None, args={"layers": f"{stage.layers.start}-{stage.layers.stop - 1}", "tokens": batch * length},
                ))
        assert logits is not None and tokens is not None  # the last stage always ran
        return logits, tokens

    def _kernel_route_inputs(self, step_cos: np.ndarray, step_sin: np.ndarray, key_mask: np.ndarray, batch: int,
                             length: int, past: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(cos, sin, bias) as the per-kernel route takes them (the fused CPU step reads the step's
        angles and the key mask as they are): the angles repeated per (row, head), and the additive
        attention bias [B, 1 or G*S, T], causal within a prefill."""
        heads = self.config.num_attention_heads + self.config.num_key_value_heads
        cos, sin = np.repeat(step_cos, heads, axis=0), np.repeat(step_sin, heads, axis=0)
        return cos, sin, self._attention_bias(key_mask, batch, length, past)

    def _attention_bias(self, key_mask: np.ndarray, batch: int, length: int, past: int) -> np.ndarray:
        """The additive attention bias [B, 1 or G*S, T] of a step: the key mask, and causal within a prefill."""
        c = self.config
        seen = past + length
        bias = np.ascontiguousarray(key_mask[:, None, :seen])  # [B, 1, T]: one row serves every query
        if length > 1:  # causal: query s sees cache positions up to past + s; rows are (group head, s)
            causal = np.triu(np.full((length, seen), _MASKED, np.float32), k=past + 1)
            bias = bias[:, :, None, :] + causal[None, None, :, :]  # [B, 1, S, T]
            bias = np.ascontiguousarray(np.broadcast_to(bias, (batch, c.groups, length, seen))).reshape(batch, c.groups * length, seen)
        return bias

    def _layer_step(self, k: DeviceKernels, w: _Layer, index: int, hidden: np.ndarray, cache: np.ndarray,
                    cos: np.ndarray, sin: np.ndarray, bias: np.ndarray, batch: int, length: int, past: int) -> None:
        c = self.config
        tag = f"layer {index} "
        x = k.rms_norm(hidden, w.input_norm, c.rms_norm_eps, tag + "input_norm")
        qkv = k.linear(x, w.qkv, tag + "qkv")
        attended = k.self_attention(qkv, cache, cos, sin, bias, c.num_attention_heads, c.num_key_value_heads, batch, length, past, tag)
        k.add_(hidden, k.linear(attended, w.o, tag + "o_proj"), tag + "residual")
        x = k.rms_norm(hidden, w.post_norm, c.rms_norm_eps, tag + "post_norm")
        up = k.swiglu(k.linear(x, w.gate_up, tag + "gate_up"), tag + "swiglu")
        k.add_(hidden, k.linear(up, w.down, tag + "down_proj"), tag + "residual")

    def _transfer(self, hidden: np.ndarray, source: DeviceKernels, target: DeviceKernels) -> np.ndarray:
        """The hidden state from one stage's device to the next through hal's copy path (a peer link,
        or device -> host -> device between chips without one), on the target's clock."""
        src, src_view = source.allocate(hidden.shape, "float32")
        src_view[...] = hidden
        source.flush()
        dst = src.to(target.device)  # waits for the copy on the target's stream
        return np.array(target.view(dst))  # a working copy: the layer kernels update it in place

    # -- numerics ------------------------------------------------------------------------------------
    def numerics_report(self, input_ids: Any, max_new_tokens: int = 16, *, attention_mask: Any = None) -> NumericsReport:
        """Generates greedily here and runs the same model in float32 on cpu:0 over the same tokens
        (teacher forcing), comparing the logits of every generated step."""
        result = self.generate(input_ids, max_new_tokens, attention_mask=attention_mask, keep_logits=True)
        ids, mask = self._check_prompt(input_ids, attention_mask)
        reference = DecoderModel(self.config, self._host_weights, devices=["cpu"])
        forced = reference._teacher_forced_logits(ids, mask, result.tokens)
        ours = np.stack(result.logits or [], axis=1)  # [B, steps, V]
        errors = np.abs(ours.astype(np.float64) - forced.astype(np.float64))
        agree = ours.argmax(-1) == forced.argmax(-1)
        return NumericsReport(
            tuple(d.name for d in self.devices), tuple(self.describe()), ours.shape[1],
            float(errors.max()), float(np.abs(forced).max()), float(agree.mean()),
            tuple(float(e) for e in errors.max(axis=(0, 2))),
        )

    def _teacher_forced_logits(self, ids: np.ndarray, mask: np.ndarray, generated: np.ndarray) -> np.ndarray:
        """Logits [B, steps, V] that this model gives at each step when fed `generated`."""
        steps = self._steps(ids, mask, generated.shape[1], _greedy, {}, forced=generated)
        return np.stack([logits for logits, _ in steps], axis=1)


_MASKED = np.float32(-1e30)
"""Score bias of a key a query may not see. Finite, unlike -inf: a padding token's query sees no
real key, and -inf everywhere would make its attention NaN, which its keys and values would carry
into the cache (0 * NaN is NaN). exp(-1e30 - max) is exactly 0, as with -inf."""


PARALLEL = ("pipeline", "tensor")
"""How several devices share a model: "pipeline" (consecutive layers per device), "tensor" (every
layer split over all of them, hal.llm.tensor_parallel)."""

ROUTES = ("auto", "kernels", "onnx")
"""How a model runs: "kernels" (hal.ops kernels on the CPU and the simulated chips, a static KV
cache), "onnx" (the model's ONNX export with past key/values through hal.InferenceSession, on any
device hal can dispatch to: cuda:N, torch.*), "auto": kernels where every device takes them."""


def kernel_route_runs_on(device: Device) -> bool:
    return device.spec.host_addressable or device.spec.simulated


class OnnxRoute:
    """The decoder as one ONNX graph with past key/values (hal.llm.onnx_export) in an
    hal.InferenceSession over the model's devices, fed device-resident tensors: each step's
    present keys and values stay where the session computed them and are the next step's past.
    This is the ONNX export's own cache convention (past in, present = past + this step out), so
    the cache grows by a concatenation per step instead of being written in place; only the ids,
    the mask and the positions go up, and the last position's logits come down to sample from."""

    def __init__(self, config: DecoderConfig, weights: Mapping[str, np.ndarray], devices: Sequence[Device], *,
                 precision_mode: str | None, fc_precision: str | None):
        from ..graph.session import InferenceSession
        from .onnx_export import decoder_model

        self.config = config
        self.session = InferenceSession(decoder_model(config, weights), devices=list(devices),
                                        precision_mode=precision_mode, fc_precision=fc_precision)
        self.first = self.session.devices[0]
        layers = range(config.num_hidden_layers)
        self.past = [n for i in layers for n in (f"past_key.{i}", f"past_value.{i}")]
        self.present = [n for i in layers for n in (f"present_key.{i}", f"present_value.{i}")]

    def describe(self) -> list[dict[str, Any]]:
        plan = self.session.plan
        nodes: dict[str, int] = {}
        for device in plan.assignments.values():
            name = getattr(device, "name", str(device))
            nodes[name] = nodes.get(name, 0) + 1
        return [{"device": name, "route": "onnx", "nodes": count, "fallbacks": len(plan.fallbacks)} for name, count in nodes.items()]

    def steps(self, ids: np.ndarray, mask: np.ndarray, count: int, picker, stage_times: dict[str, list[float]],
              forced: np.ndarray | None = None):
        from ..tensor import empty, tensor

        c = self.config
        batch = ids.shape[0]
        empty_cache = empty((batch, c.num_key_value_heads, 0, c.head_dim), "float32", device=self.first)
        past = {name: empty_cache for name in self.past}
        step_ids, step_mask, positions = ids, mask, position_ids(mask)
        simulated = [d for d in self.session.devices if d.spec.simulated]
        for step in range(count):
            label = "prefill" if step == 0 else f"decode step {step}"
            begin = {d: d.default_stream.record_event() for d in simulated}
            wall0 = time.perf_counter()
            feeds = {"input_ids": tensor(step_ids, device=self.first), "attention_mask": tensor(step_mask, device=self.first),
                     "position_ids": tensor(positions, device=self.first), **past}
            outputs = self.session.run_with_tensors(feeds, ["logits", *self.present])
            logits = outputs["logits"].numpy()[:, -1, :]
            nxt = picker(logits)
            for device, event in begin.items():
                end = device.default_stream.record_event()
                end.synchronize()
                stage_times[device.name].append(event.elapsed_time(end) / 1e3)
            recorder = profiler.active()
            if recorder is not None:
                recorder.record(profiler.TraceEvent(label, "compute", self.first.name, "generate", wall0, time.perf_counter(),
                                                    args={"route": "onnx", "tokens": int(step_ids.size)}))
            yield logits, nxt
            past = {name: outputs[present] for name, present in zip(self.past, self.present)}
            step_ids = (forced[:, step] if forced is not None else nxt)[:, None]
            step_mask = np.concatenate([step_mask, np.ones((batch, 1), step_mask.dtype)], axis=1)
            positions = positions[:, -1:] + 1


def _transfer_plan(source: Device, target: Device, token_bytes: int) -> dict[str, Any]:
    """How a decode step's hidden state (token_bytes per sequence) reaches the next stage, and what
    it costs on the simulated clocks: a peer link between cards of one backend that has one, else
    device -> host -> device, each side's copy costed by its own chip's model."""
    route = "peer link" if source.kind == target.kind else "through the host"
    plan: dict[str, Any] = {"from": source.name, "route": route, "bytes_per_token": token_bytes}
    src_cost = getattr(source.driver, "copy_cost", None)
    dst_cost = getattr(target.driver, "copy_cost", None)
    if source.kind == target.kind and src_cost is not None:
        plan["simulated_s_per_token"] = src_cost.device_to_device(token_bytes, False)
    elif src_cost is not None or dst_cost is not None:
        plan["simulated_s_per_token"] = ((src_cost.device_to_host(token_bytes) if src_cost else 0.0)
                                         + (dst_cost.host_to_device(token_bytes) if dst_cost else 0.0))
    return plan


def _as_batch(value: Any) -> Any:
    """A 1-D sequence as a batch of one; anything else as it is (check_prompt judges it)."""
    try:
        array = np.asarray(value)
    except (TypeError, ValueError):
        return value
    return array[None, :] if array.ndim == 1 else array


def _split_layers(layers: int, parts: int) -> list[range]:
    """Consecutive layer ranges, as even as possible (the first stages take the remainder)."""
    bounds = [round(i * layers / parts) for i in range(parts + 1)]
    return [range(bounds[i], bounds[i + 1]) for i in range(parts)]


def _token_set(eos: int | Sequence[int] | None) -> set[int]:
    if eos is None:
        return set()
    if isinstance(eos, (int, np.integer)):
        return {int(eos)}
    return {int(e) for e in eos}


def _greedy(logits: np.ndarray) -> np.ndarray:
    return logits.argmax(axis=-1).astype(np.int64)


def _sampler(do_sample: bool, temperature: float, top_k: int, top_p: float, seed: int | None) -> Callable[[np.ndarray], np.ndarray]:
    """The token picker: argmax, or transformers' order of warpers (temperature, top-k, top-p)
    then a draw from a numpy Generator seeded with `seed`."""
    if not do_sample:
        return _greedy
    if not (isinstance(temperature, (int, float)) and temperature > 0):
        raise InvalidArgumentError(f"temperature must be a number > 0, got {temperature!r}")
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0:
        raise InvalidArgumentError(f"top_k must be an integer >= 0 (0: no limit), got {top_k!r}")
    if not (isinstance(top_p, (int, float)) and 0 < top_p <= 1):
        raise InvalidArgumentError(f"top_p must be in (0, 1], got {top_p!r}")
    rng = np.random.default_rng(seed)

    def pick(logits: np.ndarray) -> np.ndarray:
        scores = logits.astype(np.float64) / temperature
        if top_k:
            kth = np.sort(scores, axis=-1)[:, -min(top_k, scores.shape[-1])][:, None]
            scores = np.where(scores < kth, -np.inf, scores)
        if top_p < 1:
            order = np.argsort(scores, axis=-1)  # ascending, as transformers' TopPLogitsWarper
            sorted_scores = np.take_along_axis(scores, order, axis=-1)
            probs = np.exp(sorted_scores - sorted_scores.max(-1, keepdims=True))
            probs /= probs.sum(-1, keepdims=True)
            remove = np.cumsum(probs, axis=-1) <= 1 - top_p
            remove[:, -1] = False  # keep at least the most likely token
            scores = scores.copy()
            np.put_along_axis(scores, order, np.where(remove, -np.inf, sorted_scores), axis=-1)
        probs = np.exp(scores - scores.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        cumulative = probs.cumsum(-1)
        draws = rng.random(len(probs))[:, None]
        return np.minimum((cumulative < draws).sum(-1), probs.shape[-1] - 1).astype(np.int64)

    return pick


def load(model: str | Path | Mapping[str, Any] | DecoderConfig, *, device: str | Device | None = None,
         devices: Sequence[str | Device] | None = None, precision_mode: str | None = None, fc_precision: str | None = None,
         quantization: str = "none", seed: int = 0, route: str = "auto", parallel: str = "pipeline") -> DecoderModel:
    """A decoder from a Hugging Face folder (config.json + safetensors), or with random weights
    from a config (a dict as in config.json, or a DecoderConfig) for tests and estimates.

    device: one device (default cpu:0); devices: several, the layers split among them in order
    (parallel="pipeline"), or every layer split over all of them (parallel="tensor": attention heads,
    KV cache and MLP sharded, Megatron-LM style; the head counts must divide by the devices).
    precision_mode (Ascend) and fc_precision (Kunlun) as for hal.InferenceSession; route: "kernels",
    "onnx" or "auto" (kernels on the CPU and the simulated chips, the ONNX export elsewhere: cuda:N);
    quantization="int8": weight-only int8 per output channel (hal.ops.linear reads the levels, the
    activations stay float); "w8a8": the activations quantized per row too, through
    hal.ops.quantized_matmul."""
    if device is not None and devices is not None:
        raise InvalidArgumentError("pass device= or devices=, not both")
    targets = list(devices) if devices is not None else [device if device is not None else "cpu:0"]
    if isinstance(model, DecoderConfig):
        config, weights = model, random_weights(model, seed)
    elif isinstance(model, Mapping):
        config = DecoderConfig.from_dict(model, source="config dict")
        weights = random_weights(config, seed)
    else:
        config = DecoderConfig.from_file(model)
        weights = load_weights(model, config)
    return DecoderModel(config, weights, devices=targets, precision_mode=precision_mode, fc_precision=fc_precision,
                        quantization=quantization, route=route, parallel=parallel)
