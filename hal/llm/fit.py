"""Does a model fit a chip, and how fast would it decode: from the config and the spec file alone.

Memory is weights + KV cache + an activation workspace estimate, against the chip's capacity.
Time follows hal.sim.cost's roofline: max(FLOPs / peak rate of the compute dtype, bytes / memory
bandwidth) + kernel launches x launch overhead, for the prefill of the prompt (time to first token)
and for one decode step at the end of the context window (the slowest step).

Weights are counted as hal.llm's decoder holds and reads them: matmul weights (the lm_head too, a
copy of the table when the embeddings are tied) in the weight dtype, the embedding table, norms and
biases in the float dtype; a decode step reads every weight once but only the looked-up rows of the
embedding table. Mixture-of-experts models (which the decoder does not run) are counted from their
own config keys: every expert must be in memory, but a token reads only the experts it is routed to.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Union

from ..device import DeviceSpec
from ..errors import InvalidArgumentError, InvalidModelError, UnsupportedModelError
from ..sim.cost import peak_rate
from ..sim.spec import ChipSpec, Figure, load_chip_spec
from .config import ConfigReader, DecoderConfig, HeadSizes, read_config_json
from .runtime import DECODER_KERNELS_PER_LAYER, DECODER_KERNELS_PER_STEP
from .presets import PRESETS, preset_config

__all__ = [
    "ModelShape", "FitReport", "fit", "model_shape", "decode_step_roofline", "decode_launches", "model_weight_bytes",
    "KERNELS_PER_LAYER", "KERNELS_PER_STEP", "MOE_KERNELS_PER_LAYER", "WEIGHT_DTYPES", "FLOAT_DTYPES",
]

# The decoder's own kernel counts (hal.llm.runtime): a launch each on the chip.
KERNELS_PER_LAYER = DECODER_KERNELS_PER_LAYER
KERNELS_PER_STEP = DECODER_KERNELS_PER_STEP
MOE_KERNELS_PER_LAYER = 3
"""Extra kernels of a mixture-of-experts layer over a dense one (an estimate; hal.llm's decoder does
not run MoE): the router linear, the top-k routing, and the weighted combine of the expert outputs,
with the routed and shared experts' projections taken as grouped GEMMs in the dense layer's slots."""

FLOAT_DTYPES = ("float16", "bfloat16", "float32")
WEIGHT_DTYPES = (*FLOAT_DTYPES, "int8", "int4")
_ITEMSIZE = {"float16": 2, "bfloat16": 2, "float32": 4, "int8": 1, "int4": 0.5}
_SCALE_BYTES = 4
"""A float32 scale per output channel of each quantized matmul weight (per-channel quantization)."""
_SCORE_BYTES = 4
"""Attention scores are float32 (softmax computed in float32)."""

ModelLike = Union["ModelShape", DecoderConfig, Mapping[str, Any], str, Path]


# -- the model ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelShape(HeadSizes):
    """What fit needs of a decoder: its sizes, and its parameters split by how they are stored and
    read. Built from a DecoderConfig (Llama / Qwen2) or from a mixture-of-experts config dict."""

    name: str
    model_type: str
    num_hidden_layers: int
    hidden_size: int
    intermediate_size: int
    """Width of the MLP of a dense layer; for a MoE model, the widest MLP a token passes through."""
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    vocab_size: int
    max_position_embeddings: int
    tie_word_embeddings: bool
    linear_params: int
    """Matmul weights every token reads (attention, dense MLPs, shared experts, the lm_head): what
    int8 / int4 weight quantization applies to. The lm_head is a weight of its own even when tied to
    the embeddings: hal.llm's decoder uploads it as a linear layer beside the table (a quantized
    lm_head cannot share the float table the lookup reads)."""
    linear_rows: int
    """Output channels of those weights: one float32 scale each when quantized per channel."""
    other_params: int
    """Parameters kept in the float dtype and read by every token: norms, biases, MoE routers."""
    embedding_params: int
    """The token embedding table (float dtype): in memory whole, but a lookup reads one row a token."""
    moe_layers: int = 0
    num_experts: int = 0
    """Routed experts per MoE layer."""
    experts_per_token: int = 0
    expert_params: int = 0
    """Weights of one routed expert of one layer (its gate, up and down projections)."""
    expert_rows: int = 0
    source: str = ""

    @property
    def is_moe(self) -> bool:
        return self.moe_layers > 0

    @property
    def _tied_params(self) -> int:
        """Parameters the checkpoint holds once but linear_params and embedding_params both count."""
        return self.vocab_size * self.hidden_size if self.tie_word_embeddings else 0

    @property
    def total_params(self) -> int:
        """The model's parameters, all experts included, tied embeddings once (the published count)."""
        return (self.linear_params + self.other_params + self.embedding_params - self._tied_params
                + self.moe_layers * self.num_experts * self.expert_params)

    @property
    def active_params(self) -> int:
        """The parameters one token uses: all but the routed experts it is not sent to."""
        return (self.linear_params + self.other_params + self.embedding_params - self._tied_params
                + self.moe_layers * self.experts_per_token * self.expert_params)

    @property
    def matmul_params_per_token(self) -> int:
        """Weights one token multiplies with (2 FLOPs each): the lm_head included, the embedding
        lookup, norms and biases not."""
        return self.linear_params + self.moe_layers * self.experts_per_token * self.expert_params

    def experts_read(self, tokens: int) -> float:
        """Routed experts per MoE layer that `tokens` tokens read between them, on average, when each
        picks experts_per_token of num_experts uniformly: E x (1 - (1 - k/E)^tokens)."""
        if not self.is_moe:
            return 0.0
        unpicked = (1 - self.experts_per_token / self.num_experts) ** tokens
        return self.num_experts * (1 - unpicked)

    def kv_cache_bytes(self, tokens: int, batch: int, itemsize: float) -> int:
        """Keys and values of `tokens` positions of `batch` sequences: 2 x layers x batch x tokens x kv_size x itemsize."""
        return int(2 * self.num_hidden_layers * batch * tokens * self.kv_size * itemsize)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "total_params": self.total_params, "active_params": self.active_params}

    # -- building ------------------------------------------------------------------------------
    @classmethod
    def from_decoder_config(cls, config: DecoderConfig, name: str | None = None) -> ModelShape:
        """The shape of a Llama / Qwen2 decoder; its total_params equals config.parameter_count()."""
        h, i, q, kv = config.hidden_size, config.intermediate_size, config.q_size, config.kv_size
        attention_rows = q + 2 * kv + h
        biases = (q + 2 * kv if config.attention_bias else 0) + (h if config.o_bias else 0)
        biases += 2 * i + h if config.mlp_bias else 0
        linear = config.num_hidden_layers * (h * (q + 2 * kv) + q * h + 3 * h * i) + config.vocab_size * h  # + lm_head
        rows = config.num_hidden_layers * (attention_rows + 2 * i + h) + config.vocab_size
        other = config.num_hidden_layers * (biases + 2 * h) + h
        return cls(
            name=name or config.source, model_type=config.model_type, num_hidden_layers=config.num_hidden_layers,
            hidden_size=h, intermediate_size=i, num_attention_heads=config.num_attention_heads,
            num_key_value_heads=config.num_key_value_heads, head_dim=config.head_dim, vocab_size=config.vocab_size,
            max_position_embeddings=config.max_position_embeddings, tie_word_embeddings=config.tie_word_embeddings,
            linear_params=linear, linear_rows=rows, other_params=other, embedding_params=config.vocab_size * h,
            source=config.source,
        )

    @classmethod
    def from_config_dict(cls, raw: Mapping[str, Any], *, name: str | None = None, source: str = "config") -> ModelShape:
        """The shape of a transformers-style config: a Llama / Qwen2 decoder through DecoderConfig,
        or an ERNIE 4.5 mixture-of-experts model (moe_num_experts). Other MoE layouts are an
        UnsupportedModelError naming the keys fit understands."""
        label = name or str(raw.get("_name_or_path") or source)
        if raw.get("moe_num_experts"):
            return _ernie_moe_shape(raw, label, source)
        for key in ("num_experts", "num_local_experts", "n_routed_experts"):
            if raw.get(key):
                raise UnsupportedModelError(
                    f"{source}: {key}={raw[key]}: fit counts the mixture-of-experts layout of ERNIE 4.5 "
                    "(moe_num_experts, moe_k, moe_num_shared_experts, moe_intermediate_size, moe_layer_*) "
                    "and dense Llama / Qwen2 decoders; this layout is not supported"
                )
        return cls.from_decoder_config(DecoderConfig.from_dict(raw, source=source), name=label)


def _ernie_moe_shape(raw: Mapping[str, Any], name: str, source: str) -> ModelShape:
    """ERNIE 4.5 MoE as transformers builds it (modeling_ernie4_5_moe.py): layer i is a MoE layer
    when (i + 1) % moe_layer_interval == 0 and moe_layer_start_index <= i <= moe_layer_end_index,
    else a dense SwiGLU MLP of intermediate_size; a MoE layer holds moe_num_experts routed experts
    of moe_intermediate_size, one shared MLP of moe_intermediate_size x moe_num_shared_experts, a
    router linear (hidden x experts, no bias) and a per-expert correction bias; every token runs
    moe_k routed experts and the shared one."""
    reader = ConfigReader(raw, source)
    for key in ("moe_num_experts", "moe_intermediate_size"):
        if isinstance(raw.get(key), list):
            raise UnsupportedModelError(
                f"{source}: {key}={raw[key]}: per-modality expert lists (ERNIE 4.5 VL) are not supported; "
                "fit counts the text-only ERNIE 4.5 MoE models")
    layers = reader.integer("num_hidden_layers")
    h = reader.integer("hidden_size")
    heads = reader.integer("num_attention_heads")
    kv_heads = reader.integer("num_key_value_heads", heads)
    head_dim = reader.integer("head_dim", h // heads if h % heads == 0 else None)
    vocab = reader.integer("vocab_size")
    dense_width = reader.integer("intermediate_size")
    experts = reader.integer("moe_num_experts")
    top_k = reader.integer("moe_k")
    shared = reader.integer("moe_num_shared_experts", 0, minimum=0)
    expert_width = reader.integer("moe_intermediate_size")
    start = reader.integer("moe_layer_start_index", 0, minimum=0)
    interval = reader.integer("moe_layer_interval", 1)
    end = raw.get("moe_layer_end_index", -1)
    end = layers - 1 if end in (None, -1) else reader.integer("moe_layer_end_index", minimum=0)
    if top_k > experts:
        raise InvalidModelError(f"{source}: moe_k={top_k} exceeds moe_num_experts={experts}")
    bias = bool(raw.get("use_bias", False))
    tied = bool(raw.get("tie_word_embeddings", True))  # Ernie4_5_MoeConfig's default
    moe_layers = sum(1 for i in range(layers) if (i + 1) % interval == 0 and start <= i <= end)
    dense_layers = layers - moe_layers

    q, kv = heads * head_dim, kv_heads * head_dim
    linear = layers * (h * (q + 2 * kv) + q * h) + dense_layers * 3 * h * dense_width + vocab * h  # + lm_head
    rows = layers * (q + 2 * kv + h) + dense_layers * (2 * dense_width + h) + vocab
    other = layers * 2 * h + h + moe_layers * (h * experts + experts)  # norms, routers and their correction biases
    if shared:
        shared_width = expert_width * shared
        linear += moe_layers * 3 * h * shared_width
        rows += moe_layers * (2 * shared_width + h)
        other += moe_layers * (2 * shared_width + h) if bias else 0
    if bias:  # attention, dense MLPs and the lm_head (nn.Linear(..., bias=use_bias), tied or not)
        other += layers * (q + 2 * kv + h) + dense_layers * (2 * dense_width + h) + vocab
    # An expert's biases (use_bias) travel with it: counted in its parameters, at the weight dtype.
    expert = 3 * h * expert_width + ((2 * expert_width + h) if bias else 0)
    return ModelShape(
        name=name, model_type=str(raw.get("model_type", "ernie4_5_moe")), num_hidden_layers=layers, hidden_size=h,
        intermediate_size=max(dense_width if dense_layers else 0, (top_k + shared) * expert_width),
        num_attention_heads=heads, num_key_value_heads=kv_heads, head_dim=head_dim, vocab_size=vocab,
        max_position_embeddings=reader.integer("max_position_embeddings"), tie_word_embeddings=tied,
        linear_params=linear, linear_rows=rows, other_params=other, embedding_params=vocab * h, moe_layers=moe_layers,
        num_experts=experts,
        experts_per_token=top_k, expert_params=expert, expert_rows=2 * expert_width + h, source=source,
    )


def model_shape(model: ModelLike) -> ModelShape:
    """A ModelShape from a ModelShape, a DecoderConfig, a config dict, a preset name ("qwen2-7b"), or
    the path of a config.json or of a model folder holding one."""
    if isinstance(model, ModelShape):
        return model
    if isinstance(model, DecoderConfig):
        return ModelShape.from_decoder_config(model)
    if isinstance(model, Mapping):
        return ModelShape.from_config_dict(model)
    if not isinstance(model, (str, Path)):
        raise InvalidArgumentError(f"a model is a preset name, a config path, a dict or a DecoderConfig; got {type(model).__name__}")
    path = Path(model)
    if path.exists():
        raw = read_config_json(path)
        return ModelShape.from_config_dict(raw, source=str(path))
    text = str(model)
    if text.lower() in PRESETS:
        raw = preset_config(text)
        return ModelShape.from_config_dict(raw, name=text.lower(), source=f"preset {text.lower()}")
    if text.endswith(".json") or "/" in text or "\\" in text:
        raise InvalidModelError(f"{text}: no such file; give a config.json, a model folder holding one, or a preset")
    preset_config(text)  # raises, naming the known presets
    raise AssertionError("unreachable")



def decode_launches(model: ModelLike) -> int:
    """Kernel launches of one forward pass (a decode step, or a prefill done in one pass):
    num_hidden_layers x KERNELS_PER_LAYER + KERNELS_PER_STEP, plus MOE_KERNELS_PER_LAYER per MoE layer."""
    shape = model_shape(model)
    return shape.num_hidden_layers * KERNELS_PER_LAYER + KERNELS_PER_STEP + shape.moe_layers * MOE_KERNELS_PER_LAYER


# -- the chip ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class _PeakTable:
    """Peak rates in the form hal.sim.cost.peak_rate reads (a ChipSpec's peak_flops), for a DeviceSpec."""

    peak_flops: dict[str, Figure]


@dataclass(frozen=True)
class _Target:
    """What fit reads of a chip, from a spec file or from a device's DeviceSpec."""

    label: str
    name: str
    vendor: str
    capacity: int
    bandwidth: float | None
    launch_overhead: float
    rates: ChipSpec | _PeakTable
    figures: Mapping[str, Figure] = field(default_factory=dict)

    def peak(self, dtype: str) -> float | None:
        rate = peak_rate(self.rates, dtype)  # type: ignore[arg-type]  # reads only .peak_flops
        return None if math.isinf(rate) else rate


def _target(chip: ChipSpec | DeviceSpec) -> _Target:
    if isinstance(chip, DeviceSpec):
        spec_file = chip.details.get("spec_file") if chip.simulated else None
        if spec_file:  # a simulated device: its spec file has every figure with its source
            loaded = load_chip_spec(spec_file)
            found = _target(loaded)
            return _Target(f"{chip.device_name} ({loaded.model})", found.name, found.vendor, found.capacity,
                           found.bandwidth, found.launch_overhead, found.rates, found.figures)
        rates = _PeakTable({k: Figure(v, "FLOP/s", "DeviceSpec", "medium") for k, v in chip.peak_flops.items()})
        return _Target(chip.device_name, chip.name, chip.vendor, chip.memory_bytes, chip.mem_bandwidth,
                       chip.launch_overhead_s or 0.0, rates)
    if not isinstance(chip, ChipSpec):
        raise InvalidArgumentError(f"fit takes a ChipSpec (hal.sim.spec) or a DeviceSpec, got {type(chip).__name__}")
    return _Target(f"{chip.kind} {chip.model}", chip.name, chip.vendor, int(chip.memory_capacity.value),
                   chip.memory_bandwidth.value, chip.launch_overhead.value, chip, chip.figures)


# -- bytes and seconds -------------------------------------------------------------------------
def model_weight_bytes(shape: ModelShape, linear_itemsize: float, other_itemsize: float, quantized: bool, experts: float,
                  embedding_rows: int | None = None) -> float:
    """Bytes of the weights with `experts` routed experts per MoE layer: the matmul weights at
    linear_itemsize (+ a float32 scale per output channel when quantized), the rest at
    other_itemsize; of the embedding table, all of it (None) or `embedding_rows` rows."""
    linear = shape.linear_params + shape.moe_layers * experts * shape.expert_params
    rows = shape.linear_rows + shape.moe_layers * experts * shape.expert_rows
    embedding = shape.embedding_params if embedding_rows is None else embedding_rows * shape.hidden_size
    return linear * linear_itemsize + (rows * _SCALE_BYTES if quantized else 0) + (shape.other_params + embedding) * other_itemsize


def _roofline(target: _Target, flops: float, nbytes: float, peak: float, launches: int) -> tuple[float, str]:
    """hal.sim.cost's node time for a whole pass: max(FLOPs / peak, bytes / bandwidth) + launches x overhead."""
    assert target.bandwidth is not None
    compute_s, memory_s = flops / peak, nbytes / target.bandwidth
    return max(compute_s, memory_s) + launches * target.launch_overhead, "compute" if compute_s > memory_s else "memory"


def _decode_flops(shape: ModelShape, batch: int, context: int) -> float:
    """One token per sequence through every matmul, and attention over `context` cached positions
    (q.K^T and p.V: 2 x context x q_size FLOPs each, per layer)."""
    return 2.0 * batch * shape.matmul_params_per_token + 4.0 * shape.num_hidden_layers * batch * context * shape.q_size


def _prefill_flops(shape: ModelShape, batch: int, prompt: int) -> float:
    """Every prompt token through every matmul (the lm_head too: an upper bound for a decoder that
    keeps only the last position's logits), and causal attention: half of prompt^2 x q_size
    multiply-adds for q.K^T and as many for p.V, per layer and sequence."""
    tokens = batch * prompt
    return 2.0 * tokens * shape.matmul_params_per_token + 2.0 * shape.num_hidden_layers * batch * prompt * prompt * shape.q_size


def _workspace_bytes(shape: ModelShape, batch: int, prompt: int, itemsize: float) -> int:
    """An estimate of the activations alive at the peak of prefilling the whole batch's prompts in
    one pass, the larger of a layer's two halves:
    - attention: residual, normed input, q/k/v and attention output per token, plus one head's
      causal score matrix (prompt x prompt, float32) of one sequence, as an unfused attention that
      goes head by head and sequence by sequence holds it;
    - MLP: residual, normed input, gate_up (2 x width) and the SwiGLU output (width) per token;
    plus the float32 logits of the last position of each sequence. Weights, KV cache and allocator
    slack are not in it."""
    h, tokens = shape.hidden_size, batch * prompt
    attention = tokens * (2 * h + 2 * shape.q_size + 2 * shape.kv_size) * itemsize + prompt * prompt * _SCORE_BYTES
    mlp = tokens * (2 * h + 3 * shape.intermediate_size) * itemsize
    logits = batch * shape.vocab_size * _SCORE_BYTES
    return int(max(attention, mlp) + logits)


def decode_step_roofline(
    config: DecoderConfig | ModelShape,
    chip: ChipSpec,
    *,
    batch: int,
    context: int,
    weight_itemsize_bytes: float,
    kv_itemsize: float,
    launches: int,
    compute_dtype: str = "float16",
) -> float:
    """Seconds of one decode step of `batch` sequences with `context` cached positions on `chip`:
    max(FLOPs / peak rate of compute_dtype, bytes / memory bandwidth) + launches x launch overhead,
    the bytes being every weight read once (a MoE layer: the experts the batch's tokens pick, on
    average; the embedding table: the `batch` rows looked up) and the whole KV cache. A weight
    itemsize below 2 (1: int8, 0.5: int4) means per-channel quantized matmul weights: their float32
    scales are read too, and the embeddings, norms and biases stay float16."""
    shape = model_shape(config)
    _positive(batch=batch, context=context, launches=launches)
    if weight_itemsize_bytes not in (0.5, 1, 2, 4) or kv_itemsize not in (1, 2, 4):
        raise InvalidArgumentError(
            f"weight_itemsize_bytes must be 0.5, 1, 2 or 4 and kv_itemsize 1, 2 or 4; got {weight_itemsize_bytes}, {kv_itemsize}")
    target = _target(chip)
    quantized = weight_itemsize_bytes < 2
    weights = model_weight_bytes(shape, weight_itemsize_bytes, 2 if quantized else weight_itemsize_bytes, quantized,
                            shape.experts_read(batch), embedding_rows=batch)
    peak = target.peak(compute_dtype)
    if peak is None:
        raise InvalidArgumentError(f"{target.label} has no peak rate for {compute_dtype} (nor for a dtype computing it)")
    seconds, _ = _roofline(target, _decode_flops(shape, batch, context), weights + shape.kv_cache_bytes(context, batch, kv_itemsize),
                           peak, launches)
    return seconds


def _positive(**values: int) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidArgumentError(f"{name} must be an integer >= 1, got {value!r}")


# -- the report --------------------------------------------------------------------------------
@dataclass(frozen=True)
class FitReport:
    """Memory (bytes) and speed (seconds) of one model on one chip. Times are None where the chip's
    memory bandwidth or peak rate is unknown (cpu:0 has no spec file); `notes` says why, and which
    figures are estimates."""

    model: str
    chip: str
    """The chip as named in a table: "ascend 910B", or "ascend:0 (910B)" for a device."""
    chip_name: str
    vendor: str
    context: int
    batch: int
    prompt: int
    weight_dtype: str
    kv_dtype: str
    activation_dtype: str
    compute_dtype: str
    total_params: int
    active_params: int
    weight_bytes: int
    kv_cache_bytes: int
    workspace_bytes: int
    capacity_bytes: int
    memory_bandwidth: float | None
    """bytes/s"""
    peak_flops: float | None
    """FLOP/s of the compute dtype (after hal.sim.cost's fallback)."""
    launch_overhead: float
    launches_per_pass: int
    step_bytes: int
    """Bytes one decode step reads: the weights (of a MoE layer, the experts picked; of the embedding
    table, the rows looked up) and the whole KV cache."""
    ttft_s: float | None
    prefill_bound: str | None
    decode_step_s: float | None
    decode_bound: str | None
    notes: tuple[str, ...] = ()

    @property
    def total_bytes(self) -> int:
        return self.weight_bytes + self.kv_cache_bytes + self.workspace_bytes

    @property
    def fits(self) -> bool:
        return self.total_bytes <= self.capacity_bytes

    @property
    def headroom_bytes(self) -> int:
        """Capacity left after the model (negative: bytes short)."""
        return self.capacity_bytes - self.total_bytes

    @property
    def decode_tokens_per_s(self) -> float | None:
        """Tokens per second over the batch: batch / seconds of a step at the end of the window."""
        return None if self.decode_step_s is None else self.batch / self.decode_step_s

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["notes"] = list(self.notes)
        out.update(total_bytes=self.total_bytes, fits=self.fits, headroom_bytes=self.headroom_bytes,
                   decode_tokens_per_s=self.decode_tokens_per_s)
        return out


def fit(
    model: ModelLike,
    chip: ChipSpec | DeviceSpec,
    *,
    context: int,
    batch: int = 1,
    prompt: int | None = None,
    weight_dtype: str = "float16",
    kv_dtype: str | None = None,
    activation_dtype: str | None = None,
) -> FitReport:
    """Whether `model` (a ModelShape, DecoderConfig, config dict, preset name or config path) fits
    `chip` for `batch` sequences of `context` positions, and its time to first token (prefill of
    `prompt` tokens per sequence, default `context`) and decode speed at the end of the window.

    weight_dtype: float16, bfloat16, float32, or int8 / int4 (per-channel weight-only quantization
    of the matmul weights, float32 scales; embeddings, norms and biases stay in activation_dtype).
    activation_dtype: float16, bfloat16 or float32 (default: weight_dtype if float, else float16).
    kv_dtype: the KV cache's (default: activation_dtype). int8 weights compute at the chip's int8
    rate, int4 weights are dequantized and compute in activation_dtype; rates fall back as
    hal.sim.cost does where a spec has none for a dtype.
    """
    shape = model_shape(model)
    _positive(context=context, batch=batch)
    prompt = context if prompt is None else prompt
    _positive(prompt=prompt)
    if prompt > context:
        raise InvalidArgumentError(f"prompt {prompt} is longer than the context {context} it must fit in")
    if context > shape.max_position_embeddings:
        raise InvalidArgumentError(
            f"context {context} exceeds {shape.name}'s max_position_embeddings {shape.max_position_embeddings}")
    if weight_dtype not in WEIGHT_DTYPES:
        raise InvalidArgumentError(f"weight_dtype must be one of {', '.join(WEIGHT_DTYPES)}; got {weight_dtype!r}")
    float_weights = weight_dtype in FLOAT_DTYPES
    activation_dtype = activation_dtype or (weight_dtype if float_weights else "float16")
    kv_dtype = kv_dtype or activation_dtype
    for name, value in (("activation_dtype", activation_dtype), ("kv_dtype", kv_dtype)):
        if value not in FLOAT_DTYPES:
            raise InvalidArgumentError(f"{name} must be one of {', '.join(FLOAT_DTYPES)}; got {value!r}")
    compute_dtype = "int8" if weight_dtype == "int8" else activation_dtype

    target = _target(chip)
    # Float weights are stored whole in their dtype; quantized ones keep the rest in the activations'.
    linear_itemsize = _ITEMSIZE[weight_dtype]
    other_itemsize = linear_itemsize if float_weights else _ITEMSIZE[activation_dtype]
    kv_itemsize, quantized = _ITEMSIZE[kv_dtype], not float_weights
    weight_bytes = int(model_weight_bytes(shape, linear_itemsize, other_itemsize, quantized, shape.num_experts))
    kv_bytes = shape.kv_cache_bytes(context, batch, kv_itemsize)
    step_weights = model_weight_bytes(shape, linear_itemsize, other_itemsize, quantized, shape.experts_read(batch),
                                 embedding_rows=batch)
    launches = decode_launches(shape)
    peak = target.peak(compute_dtype)
    notes = []
    ttft = prefill_bound = step = decode_bound = None
    if target.bandwidth is None or peak is None:
        missing = " and ".join(n for n, v in (("memory bandwidth", target.bandwidth), ("peak FLOP/s", peak)) if v is None)
        notes.append(f"{target.label}: {missing} unknown (no spec file), so no time estimates")
    else:
        prefill_weights = model_weight_bytes(shape, linear_itemsize, other_itemsize, quantized, shape.experts_read(batch * prompt),
                                        embedding_rows=min(batch * prompt, shape.vocab_size))
        ttft, prefill_bound = _roofline(target, _prefill_flops(shape, batch, prompt),
                                        prefill_weights + shape.kv_cache_bytes(prompt, batch, kv_itemsize), peak, launches)
        step, decode_bound = _roofline(target, _decode_flops(shape, batch, context), step_weights + kv_bytes, peak, launches)
    if shape.is_moe:
        notes.append(
            f"MoE: all {shape.num_experts} experts of {shape.moe_layers} layers in memory; a decode step of {batch} "
            f"token(s) reads {shape.experts_read(batch):.1f} of them per layer on average (top-{shape.experts_per_token}, "
            "uniform routing)")
    if weight_dtype == "int4":
        notes.append(f"int4 weights are dequantized and computed in {activation_dtype}")
    if peak is not None and compute_dtype not in target.rates.peak_flops:
        notes.append(f"no {compute_dtype} rate in the spec: computed at {peak / 1e12:.0f} TFLOP/s, the rate of the unit "
                     "that computes it instead (hal.sim.cost's fallback)")
    low = [key for key in ("memory.bandwidth", f"compute.peak_flops.{compute_dtype}", "compute.launch_overhead")
           if key in target.figures and target.figures[key].confidence == "low"]
    if low:
        notes.append(f"low-confidence figures (estimates): {', '.join(low)}; see `hal chips --sources`")
    return FitReport(
        model=shape.name, chip=target.label, chip_name=target.name, vendor=target.vendor, context=context, batch=batch,
        prompt=prompt, weight_dtype=weight_dtype, kv_dtype=kv_dtype, activation_dtype=activation_dtype,
        compute_dtype=compute_dtype, total_params=shape.total_params, active_params=shape.active_params,
        weight_bytes=weight_bytes, kv_cache_bytes=kv_bytes,
        workspace_bytes=_workspace_bytes(shape, batch, prompt, _ITEMSIZE[activation_dtype]),
        capacity_bytes=target.capacity, memory_bandwidth=target.bandwidth, peak_flops=peak,
        launch_overhead=target.launch_overhead, launches_per_pass=launches, step_bytes=int(step_weights + kv_bytes),
        ttft_s=ttft, prefill_bound=prefill_bound, decode_step_s=step, decode_bound=decode_bound, notes=tuple(notes),
    )
