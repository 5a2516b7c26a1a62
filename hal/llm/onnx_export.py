"""A Llama / Qwen2 decoder as one ONNX graph with past key/values, written node by node with
onnx.helper from the weights (no torch export: the same weights give the same bytes, in about a
second per 100M parameters), and a greedy generation loop over onnxruntime.

    model = decoder_model(config, weights)           # onnx.ModelProto, opset 17, standard ops only
    decoder = OnnxDecoder(config, weights)           # onnxruntime CPU session on that graph
    new_tokens = decoder.generate(prompt_ids, 64)    # [batch, 64] int64
    decoder.last_times.decode_ms_per_token

The graph serves prefill (past length 0) and decode (sequence length 1):

  inputs   input_ids int64 [batch, seq], attention_mask int64 [batch, past+seq] (1 = token,
           0 = left padding), position_ids int64 [batch, seq],
           past_key.{i} / past_value.{i} float32 [batch, kv_heads, past, head_dim]
  outputs  logits float32 [batch, 1, vocab] (the last position only; all_logits=True gives
           [batch, seq, vocab]), present_key.{i} / present_value.{i} [batch, kv_heads, past+seq, head_dim]

Only the last position's logits by default: greedy decoding reads nothing else, and the lm_head
over every prompt position would cost vocab*hidden*seq multiply-adds and a [batch, seq, vocab]
output at prefill for nothing (a quarter of the multiply-adds of a 128-token prefill of a
125M-parameter model with a 32000-token vocabulary).

The arithmetic is transformers' (LlamaForCausalLM / Qwen2ForCausalLM), in float32:
RMSNorm as Pow/ReduceMean/Add/Sqrt/Div/Mul (the pattern onnxruntime fuses into
SimplifiedLayerNormalization); RoPE in rotate_half form from cos/sin tables of
max_position_embeddings rows gathered by position_ids (default, "linear" and "llama3" inv_freq as
transformers.modeling_rope_utils computes them); grouped-query attention without repeating
key/value heads (the query heads of one key/value head are stacked as rows instead); a causal +
padding mask built in the graph from attention_mask; a SwiGLU MLP. q/k/v and gate/up are one
MatMul each. Every reshape has a constant shape (0 copies a dimension), so no Shape node is needed.
"""
from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ..errors import InvalidArgumentError, InvalidModelError, MissingDependencyError
from .config import DecoderConfig
from .prompt import check_prompt, position_ids
from .rope import rope_tables

if TYPE_CHECKING:
    import onnx

__all__ = [
    "OPSET", "GenerationTimes", "OnnxDecoder", "decoder_model", "position_ids", "prefill_feeds", "signed_rope_tables",
]

OPSET = 17
"""ai.onnx opset of the graph (Split sizes as an input and ReduceMean axes as an attribute: the
forms of opsets 13-17, which onnxruntime's fusions and the chips' op tables read)."""

MASKED = -65504.0
"""Score given to a masked key: finite in float16 too, so a fully masked row (a padded query)
softmaxes to a uniform row instead of NaN, and exp() of it is 0 next to any real score."""

_IN_MEMORY = "hal-in-memory-weights"
"""External-data location of the weight stubs OnnxDecoder hands onnxruntime with the arrays."""


def _onnx():
    try:
        import onnx
    except ImportError:  # pragma: no cover - a dependency of hal's ONNX side
        raise MissingDependencyError("the ONNX export needs onnx: pip install onnx") from None
    return onnx


# -- RoPE ----------------------------------------------------------------------------------------
def signed_rope_tables(config: DecoderConfig, positions: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """cos and signed sin tables, float32 [positions, head_dim]: row p holds cos(p*f, p*f) and
    (-sin(p*f), sin(p*f)), so x*cos + swap_halves(x)*sin is transformers' x*cos + rotate_half(x)*sin.
    positions defaults to max_position_embeddings."""
    cos, sin = rope_tables(config, config.max_position_embeddings if positions is None else positions)
    return (np.concatenate([cos, cos], axis=1).astype(np.float32),
            np.concatenate([-sin, sin], axis=1).astype(np.float32))


# -- the graph -----------------------------------------------------------------------------------
class _Builder:
    """Nodes, initializers and constants of one graph, each output named after its role. The
    ModelProto exists from the start and weights are written straight into it: helper.make_graph /
    make_model would copy every initializer twice more (seconds for a 100M-parameter model)."""

    def __init__(self, inline: bool = True):
        self.onnx = _onnx()
        self.model = self.onnx.ModelProto()
        self.graph = self.model.graph
        self.inline = inline
        self.arrays: dict[str, np.ndarray] = {}
        """The weights when not inline: each initializer is then an external-data stub."""
        self._consts: dict[tuple, str] = {}
        self._names: set[str] = set()

    def _unique(self, name: str) -> str:
        base, i = name, 1
        while name in self._names:
            i += 1
            name = f"{base}_{i}"
        self._names.add(name)
        return name

    def _initializer(self, name: str, array: np.ndarray) -> str:
        tensor = self.graph.initializer.add()
        tensor.name = name
        tensor.data_type = self.onnx.helper.np_dtype_to_tensor_dtype(array.dtype)
        tensor.dims.extend(array.shape)
        tensor.raw_data = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
        return name

    def weight(self, name: str, array: np.ndarray) -> str:
        array = np.ascontiguousarray(array, dtype=np.float32)
        name = self._unique(name)
        if self.inline:
            return self._initializer(name, array)
        tensor = self.graph.initializer.add()
        tensor.name = name
        tensor.data_type = self.onnx.TensorProto.FLOAT
        tensor.dims.extend(array.shape)
        tensor.data_location = self.onnx.TensorProto.EXTERNAL
        entry = tensor.external_data.add()
        entry.key, entry.value = "location", _IN_MEMORY
        self.arrays[name] = array
        return name

    def const(self, values, dtype) -> str:
        """A small constant initializer (shapes, axes, scalars), shared by every node that reads it."""
        array = np.asarray(values, dtype=dtype)
        key = (array.dtype.str, array.shape, array.tobytes())
        found = self._consts.get(key)
        if found is None:
            found = self._consts[key] = self._initializer(self._unique(f"const_{len(self._consts)}"), array)
        return found

    def ints(self, *values: int) -> str:
        return self.const(list(values), np.int64)

    def scalar(self, value: float) -> str:
        return self.const(value, np.float32)

    def op(self, op_type: str, inputs: Sequence[str], name: str, outputs: int | Sequence[str] = 1, **attrs):
        """Adds a node; returns its output name (or the names, when outputs > 1 or a list)."""
        if isinstance(outputs, int):
            names = [self._unique(name if outputs == 1 else f"{name}_{k}") for k in range(outputs)]
        else:
            names = [self._unique(o) for o in outputs]
        self.graph.node.append(self.onnx.helper.make_node(op_type, list(inputs), names, name=self._unique(f"{name}/{op_type}"), **attrs))
        return names[0] if len(names) == 1 and isinstance(outputs, int) else names


def _get(weights: Mapping[str, np.ndarray], name: str, shape: tuple[int, ...], config: DecoderConfig) -> np.ndarray:
    try:
        array = weights[name]
    except KeyError:
        raise InvalidModelError(f"{config.source}: weight '{name}' is missing; the ONNX export needs every tensor the config implies") from None
    array = np.asarray(array)
    if tuple(array.shape) != shape:
        raise InvalidModelError(f"{config.source}: weight '{name}' has shape {tuple(array.shape)}, the config implies {shape}")
    return array.astype(np.float32, copy=False)


def decoder_model(config: DecoderConfig, weights: Mapping[str, np.ndarray], *, all_logits: bool = False,
                  max_positions: int | None = None) -> onnx.ModelProto:
    """The decoder as an ONNX model (opset 17) whose initializers are the weights, linear weights
    transposed to [in, out]. all_logits: logits for every position instead of the last one.
    max_positions: rows of the RoPE tables (default max_position_embeddings; positions past it
    fail in Gather). A model whose weights pass 2 GiB cannot be serialized as one protobuf: save it
    with onnx.save_model(..., save_as_external_data=True)."""
    return _build(config, weights, all_logits=all_logits, max_positions=max_positions, inline=True)[0]


def _build(config: DecoderConfig, weights: Mapping[str, np.ndarray], *, all_logits: bool, max_positions: int | None,
           inline: bool) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """The model, and when not inline the weights its external-data stubs stand for."""
    from onnx import TensorProto, helper

    c = config
    if c.num_attention_heads % c.num_key_value_heads:
        raise InvalidModelError(f"{c.source}: num_attention_heads={c.num_attention_heads} is not a multiple of num_key_value_heads={c.num_key_value_heads}")
    h, d, heads, kv_heads, groups = c.hidden_size, c.head_dim, c.num_attention_heads, c.num_key_value_heads, c.groups
    q_size, kv_size, inter = c.q_size, c.kv_size, c.intermediate_size
    g = _Builder(inline)

    # embeddings; tied: one [hidden, vocab] table serves the lm_head MatMul and the Gather (on axis 1)
    embed = _get(weights, "model.embed_tokens.weight", (c.vocab_size, h), c)
    if c.tie_word_embeddings:
        table = g.weight("lm_head.weight_t", embed.T)
        gathered = g.op("Gather", [table, "input_ids"], "embed", axis=1)  # [hidden, batch, seq]
        x = g.op("Transpose", [gathered], "embed", perm=[1, 2, 0])
        lm_head = table
    else:
        x = g.op("Gather", [g.weight("model.embed_tokens.weight", embed), "input_ids"], "embed", axis=0)
        lm_head = g.weight("lm_head.weight_t", _get(weights, "lm_head.weight", (c.vocab_size, h), c).T)

    # RoPE: cos / signed sin rows of each position, [batch, seq, 1, head_dim] against [batch, seq, heads, head_dim]
    cos_table, sin_table = signed_rope_tables(c, max_positions)
    rope_shape = g.ints(0, 0, 1, d)
    cos = g.op("Reshape", [g.op("Gather", [g.weight("rope.cos", cos_table), "position_ids"], "rope/cos"), rope_shape], "rope/cos")
    sin = g.op("Reshape", [g.op("Gather", [g.weight("rope.sin", sin_table), "position_ids"], "rope/sin"), rope_shape], "rope/sin")

    # mask [batch, 1, groups*seq, past+seq]: key j is visible to query i when it is a token and
    # (total - j) >= (seq - i), i.e. j <= past + i; both counted from the end with reverse CumSum
    one, zero = g.ints(1), g.ints(0)
    key_ones = g.op("Add", [g.op("Mul", ["attention_mask", zero], "mask/zeros"), one], "mask/key_ones")
    query_ones = g.op("Add", [g.op("Mul", ["position_ids", zero], "mask/zeros"), one], "mask/query_ones")
    key_from_end = g.op("CumSum", [key_ones, one], "mask/key_from_end", reverse=1)
    query_from_end = g.op("CumSum", [query_ones, one], "mask/query_from_end", reverse=1)
    row_key = g.ints(0, 1, 1, -1)
    causal = g.op("GreaterOrEqual", [g.op("Reshape", [key_from_end, row_key], "mask/keys"),
                                     g.op("Reshape", [query_from_end, g.ints(0, 1, -1, 1)], "mask/queries")], "mask/causal")
    tokens = g.op("Equal", [g.op("Reshape", ["attention_mask", row_key], "mask/tokens"), one], "mask/tokens")
    mask = g.op("And", [causal, tokens], "mask")
    if groups > 1:
        mask = g.op("Tile", [mask, g.ints(1, 1, groups, 1)], "mask/groups")
    masked = g.scalar(MASKED)
    scale = g.scalar(1.0 / math.sqrt(d))

    eps = g.scalar(c.rms_norm_eps)
    two = g.scalar(2.0)

    def rms_norm(value: str, weight_name: str, name: str) -> str:
        # x / sqrt(mean(x^2) + eps) * w: onnxruntime's SimplifiedLayerNormFusion pattern
        mean = g.op("ReduceMean", [g.op("Pow", [value, two], f"{name}/square")], f"{name}/mean", axes=[-1], keepdims=1)
        root = g.op("Sqrt", [g.op("Add", [mean, eps], f"{name}/eps")], f"{name}/root")
        normed = g.op("Div", [value, root], f"{name}/normalized")
        return g.op("Mul", [normed, g.weight(weight_name, _get(weights, weight_name, (h,), c))], name)

    def linear(value: str, weight: np.ndarray, bias: np.ndarray | None, name: str) -> str:
        out = g.op("MatMul", [value, g.weight(f"{name}.weight_t", weight)], name)
        return g.op("Add", [out, g.weight(f"{name}.bias", bias)], name) if bias is not None else out

    for layer in range(c.num_hidden_layers):
        p = f"model.layers.{layer}."
        residual = x
        normed = rms_norm(x, p + "input_layernorm.weight", p + "input_layernorm")

        # q, k, v as one MatMul: [batch, seq, q + 2 kv]
        projections = [_get(weights, p + f"self_attn.{n}_proj.weight", (size, h), c)
                       for n, size in (("q", q_size), ("k", kv_size), ("v", kv_size))]
        bias = None
        if c.attention_bias:
            bias = np.concatenate([_get(weights, p + f"self_attn.{n}_proj.bias", (size,), c)
                                   for n, size in (("q", q_size), ("k", kv_size), ("v", kv_size))])
        qkv = linear(normed, np.concatenate(projections, axis=0).T, bias, p + "self_attn.qkv_proj")
        qk, v = g.op("Split", [qkv, g.ints(q_size + kv_size, kv_size)], p + "self_attn/split_qkv", 2, axis=-1)

        # RoPE on q and k heads together: [batch, seq, heads + kv_heads, head_dim]
        qk = g.op("Reshape", [qk, g.ints(0, 0, heads + kv_heads, d)], p + "self_attn/qk_heads")
        halves = g.op("Split", [qk, g.ints(d // 2, d // 2)], p + "self_attn/rope_halves", 2, axis=-1)
        swapped = g.op("Concat", [halves[1], halves[0]], p + "self_attn/rope_swap", axis=-1)
        qk = g.op("Add", [g.op("Mul", [qk, cos], p + "self_attn/rope_cos"),
                          g.op("Mul", [swapped, sin], p + "self_attn/rope_sin")], p + "self_attn/rope")
        q, k = g.op("Split", [qk, g.ints(heads, kv_heads)], p + "self_attn/split_qk", 2, axis=2)

        # the cache: [batch, kv_heads, past + seq, head_dim]
        k = g.op("Transpose", [k], p + "self_attn/k", perm=[0, 2, 1, 3])
        v = g.op("Transpose", [g.op("Reshape", [v, g.ints(0, 0, kv_heads, d)], p + "self_attn/v_heads")], p + "self_attn/v", perm=[0, 2, 1, 3])
        key = g.op("Concat", [f"past_key.{layer}", k], p + "self_attn/key", [f"present_key.{layer}"], axis=2)[0]
        value = g.op("Concat", [f"past_value.{layer}", v], p + "self_attn/value", [f"present_value.{layer}"], axis=2)[0]

        # attention: the query heads of one kv head as rows, [batch, kv_heads, groups*seq, head_dim]
        q = g.op("Transpose", [q], p + "self_attn/q", perm=[0, 2, 1, 3])
        if groups > 1:
            q = g.op("Reshape", [q, g.ints(0, kv_heads, -1, d)], p + "self_attn/q_groups")
        scores = g.op("MatMul", [q, g.op("Transpose", [key], p + "self_attn/key_t", perm=[0, 1, 3, 2])], p + "self_attn/scores")
        scores = g.op("Mul", [scores, scale], p + "self_attn/scaled")
        scores = g.op("Where", [mask, scores, masked], p + "self_attn/masked")
        probs = g.op("Softmax", [scores], p + "self_attn/probs", axis=-1)
        attn = g.op("MatMul", [probs, value], p + "self_attn/context")
        if groups > 1:
            attn = g.op("Reshape", [attn, g.ints(0, heads, -1, d)], p + "self_attn/context_heads")
        attn = g.op("Transpose", [attn], p + "self_attn/context", perm=[0, 2, 1, 3])
        attn = g.op("Reshape", [attn, g.ints(0, 0, q_size)], p + "self_attn/context")
        o_bias = _get(weights, p + "self_attn.o_proj.bias", (h,), c) if c.o_bias else None
        attn = linear(attn, _get(weights, p + "self_attn.o_proj.weight", (h, q_size), c).T, o_bias, p + "self_attn.o_proj")
        x = g.op("Add", [residual, attn], p + "attn_residual")

        # SwiGLU MLP, gate and up as one MatMul
        residual = x
        normed = rms_norm(x, p + "post_attention_layernorm.weight", p + "post_attention_layernorm")
        gate_up = np.concatenate([_get(weights, p + "mlp.gate_proj.weight", (inter, h), c),
                                  _get(weights, p + "mlp.up_proj.weight", (inter, h), c)], axis=0).T
        gate_up_bias = None
        if c.mlp_bias:
            gate_up_bias = np.concatenate([_get(weights, p + "mlp.gate_proj.bias", (inter,), c),
                                           _get(weights, p + "mlp.up_proj.bias", (inter,), c)])
        gate, up = g.op("Split", [linear(normed, gate_up, gate_up_bias, p + "mlp.gate_up_proj"), g.ints(inter, inter)],
                        p + "mlp/split", 2, axis=-1)
        act = g.op("Mul", [gate, g.op("Sigmoid", [gate], p + "mlp/sigmoid")], p + "mlp/silu")
        down_bias = _get(weights, p + "mlp.down_proj.bias", (h,), c) if c.mlp_bias else None
        mlp = linear(g.op("Mul", [act, up], p + "mlp/gated"), _get(weights, p + "mlp.down_proj.weight", (h, inter), c).T,
                     down_bias, p + "mlp.down_proj")
        x = g.op("Add", [residual, mlp], p + "mlp_residual")

    x = rms_norm(x, "model.norm.weight", "model.norm")
    if not all_logits:
        x = g.op("Slice", [x, g.ints(-1), g.ints(2 ** 62), g.ints(1)], "last_position")
    g.op("MatMul", [x, lm_head], "lm_head", ["logits"])

    f32, i64 = TensorProto.FLOAT, TensorProto.INT64
    cache = ["batch", kv_heads, "past_sequence", d]
    present = ["batch", kv_heads, "total_sequence", d]
    inputs = [
        helper.make_tensor_value_info("input_ids", i64, ["batch", "sequence"]),
        helper.make_tensor_value_info("attention_mask", i64, ["batch", "total_sequence"]),
        helper.make_tensor_value_info("position_ids", i64, ["batch", "sequence"]),
    ]
    outputs = [helper.make_tensor_value_info("logits", f32, ["batch", "sequence" if all_logits else 1, c.vocab_size])]
    for layer in range(c.num_hidden_layers):
        inputs += [helper.make_tensor_value_info(f"past_key.{layer}", f32, cache),
                   helper.make_tensor_value_info(f"past_value.{layer}", f32, cache)]
        outputs += [helper.make_tensor_value_info(f"present_key.{layer}", f32, present),
                    helper.make_tensor_value_info(f"present_value.{layer}", f32, present)]
    model, graph = g.model, g.graph
    graph.name = f"{c.model_type}_decoder"
    graph.input.extend(inputs)
    graph.output.extend(outputs)
    model.ir_version = 8
    model.opset_import.append(helper.make_opsetid("", OPSET))
    model.producer_name = "hal.llm.onnx_export"
    helper.set_model_props(model, {"model_type": c.model_type, "num_hidden_layers": str(c.num_hidden_layers),
                                   "logits": "all" if all_logits else "last"})
    return model, g.arrays


# -- feeds ---------------------------------------------------------------------------------------
def prefill_feeds(config: DecoderConfig, input_ids: np.ndarray, attention_mask: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Every input of decoder_model's graph for a prefill: ids, mask, positions and empty caches."""
    ids, mask = check_prompt(input_ids, attention_mask)
    feeds = {"input_ids": ids, "attention_mask": mask, "position_ids": position_ids(mask)}
    empty = np.zeros((ids.shape[0], config.num_key_value_heads, 0, config.head_dim), np.float32)
    for layer in range(config.num_hidden_layers):
        feeds[f"past_key.{layer}"] = empty
        feeds[f"past_value.{layer}"] = empty
    return feeds


# -- generation over onnxruntime -----------------------------------------------------------------
@dataclass(frozen=True)
class GenerationTimes:
    """Wall time of one generate() call: the prefill (to the first new token, argmax included)
    and each decode step after it, in seconds."""

    batch: int
    prompt_tokens: int
    time_to_first_token_s: float
    decode_step_s: tuple[float, ...] = field(default=())

    @property
    def new_tokens(self) -> int:
        """Tokens generated per sequence (the prefill gives the first)."""
        return 1 + len(self.decode_step_s)

    @property
    def decode_ms_per_token(self) -> float:
        """Mean decode step in milliseconds (one token for each sequence of the batch)."""
        return 1e3 * sum(self.decode_step_s) / len(self.decode_step_s) if self.decode_step_s else float("nan")

    @property
    def decode_tokens_per_s(self) -> float:
        """Tokens decoded per second over the whole batch."""
        total = sum(self.decode_step_s)
        return self.batch * len(self.decode_step_s) / total if total else float("nan")


class OnnxDecoder:
    """decoder_model's graph in an onnxruntime CPU session, with greedy generation.

    threads: intra-op threads (default: onnxruntime's, one per physical core).
    io_binding: decode through an IOBinding whose outputs stay OrtValues and are bound as the
      next step's inputs. Off by default: onnxruntime 1.32's run() already hands CPU outputs to
      numpy without a copy and reads numpy inputs in place, and the binding measured no faster
      (a 125M-parameter model, 128-token prompt; a 2048-token cache).
    optimization: onnxruntime's graph optimization level, "disable", "basic", "extended" or "all".
    The graph is built once. onnxruntime gets it with its weights as external-data stubs and the
    arrays themselves through SessionOptions.add_external_initializers: no protobuf copy of the
    weights is made or parsed (seconds for a 100M-parameter model) and no 2 GiB limit applies.
    """

    def __init__(self, config: DecoderConfig, weights: Mapping[str, np.ndarray], *, threads: int | None = None,
                 io_binding: bool = False, optimization: str = "all"):
        try:
            import onnxruntime as ort
        except ImportError:  # pragma: no cover - a dependency of hal's ONNX side
            raise MissingDependencyError("OnnxDecoder needs onnxruntime: pip install onnxruntime") from None
        levels = {"disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL, "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
                  "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED, "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}
        if optimization not in levels:
            raise InvalidArgumentError(f"optimization must be one of {', '.join(levels)}, got {optimization!r}")
        if threads is not None and threads < 1:
            raise InvalidArgumentError(f"threads must be >= 1, got {threads}")
        self.config = config
        self.io_binding = io_binding
        graph, arrays = _build(config, weights, all_logits=False, max_positions=None, inline=False)
        options = ort.SessionOptions()
        options.graph_optimization_level = levels[optimization]
        options.intra_op_num_threads = threads or 0
        options.inter_op_num_threads = 1
        # onnxruntime uses these OrtValues' memory in place (no copy): they and their arrays
        # live as long as the session
        self._arrays = arrays
        self._weights = [ort.OrtValue.ortvalue_from_numpy(a) for a in arrays.values()]
        options.add_external_initializers(list(arrays), self._weights)
        self.session = ort.InferenceSession(graph.SerializeToString(), options, providers=["CPUExecutionProvider"])
        self._ort = ort
        self.last_times: GenerationTimes | None = None
        layers = range(config.num_hidden_layers)
        self._past = [n for i in layers for n in (f"past_key.{i}", f"past_value.{i}")]
        self._present = [n for i in layers for n in (f"present_key.{i}", f"present_value.{i}")]

    def forward(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One run of the graph on numpy feeds: every output by name."""
        outputs = self.session.run(None, dict(feeds))
        return dict(zip([o.name for o in self.session.get_outputs()], outputs))

    def generate(self, input_ids: np.ndarray, max_new_tokens: int, attention_mask: np.ndarray | None = None) -> np.ndarray:
        """Greedy tokens int64 [batch, max_new_tokens] after a left-padded prompt (no stop at EOS:
        always max_new_tokens, as a benchmark wants). Times land in self.last_times."""
        if max_new_tokens < 1:
            raise InvalidArgumentError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        feeds = prefill_feeds(self.config, input_ids, attention_mask)
        step = self._step_bound if self.io_binding else self._step_numpy
        batch, prompt = feeds["input_ids"].shape
        mask = feeds["attention_mask"]
        position = feeds["position_ids"][:, -1:].copy()
        out = np.empty((batch, max_new_tokens), np.int64)
        start = time.perf_counter()
        logits, cache = step(feeds["input_ids"], mask, feeds["position_ids"], None)
        token = out[:, 0] = logits[:, -1].argmax(-1)
        first = time.perf_counter() - start
        steps = []
        column = np.ones((batch, 1), np.int64)
        for i in range(1, max_new_tokens):
            start = time.perf_counter()
            mask = np.concatenate([mask, column], axis=1)
            position = position + 1
            logits, cache = step(token[:, None].copy(), mask, position, cache)
            token = out[:, i] = logits[:, -1].argmax(-1)
            steps.append(time.perf_counter() - start)
        self.last_times = GenerationTimes(batch, prompt, first, tuple(steps))
        return out

    def _empty_cache(self, batch: int) -> np.ndarray:
        return np.zeros((batch, self.config.num_key_value_heads, 0, self.config.head_dim), np.float32)

    def _step_numpy(self, ids, mask, positions, cache):
        feeds = {"input_ids": ids, "attention_mask": mask, "position_ids": positions}
        if cache is None:
            empty = self._empty_cache(ids.shape[0])
            cache = [empty] * len(self._past)
        feeds.update(zip(self._past, cache))
        logits, *presents = self.session.run(["logits", *self._present], feeds)
        return logits, presents

    def _step_bound(self, ids, mask, positions, cache):
        binding = self.session.io_binding()
        binding.bind_cpu_input("input_ids", ids)
        binding.bind_cpu_input("attention_mask", mask)
        binding.bind_cpu_input("position_ids", positions)
        if cache is None:
            empty = self._ort.OrtValue.ortvalue_from_numpy(self._empty_cache(ids.shape[0]))
            cache = [empty] * len(self._past)
        for name, value in zip(self._past, cache):
            binding.bind_ortvalue_input(name, value)
        binding.bind_output("logits", "cpu")
        for name in self._present:
            binding.bind_output(name, "cpu")
        self.session.run_with_iobinding(binding)
        logits, *presents = binding.get_outputs()
        return logits.numpy(), presents
