"""ONNX models built in code, with seeded random weights, for hal's tests, examples and benchmarks.

Every builder returns a checked ``onnx.ModelProto`` (opset 17, default domain, IR version 8) whose
weights are drawn from generators seeded with ``seed``: the same arguments give the same bytes,
on any machine and with any number of threads.
Weights are scaled so that activations stay finite and O(1) through every layer, so comparing the
outputs of two runs (two devices, two partitions) is meaningful. Nothing is downloaded.
"""
from __future__ import annotations

import functools
import math
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

try:
    import onnx
    from onnx import TensorProto, helper, numpy_helper
except ImportError as error:  # onnx is not one of hal's own dependencies
    raise ImportError(f"hal.testing builds ONNX models and needs onnx: pip install onnx ({error})") from error

OPSET = 17
IR_VERSION = 8  # the IR version that introduced opset 17; every onnxruntime since 1.12 loads it
EXTERNAL_DATA_THRESHOLD = 1.5 * 2**30  # bytes; protobuf cannot serialize a message over 2 GiB

__all__ = ["mlp", "small_cnn", "resnet50", "bert_encoder", "transformer_block", "chain", "save",
           "random_inputs", "OPSET", "IR_VERSION"]

Dim = int | str


_BLOCK = 1 << 20  # elements drawn per generator: the weights do not depend on the thread count


@functools.cache
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(min(8, os.cpu_count() or 1), thread_name_prefix="hal.testing")


class _Graph:
    """Builds one model in place: nodes, initializers and their unique names, in creation order.

    Weight i of a model built with seed s is drawn block by block from generators seeded with
    SeedSequence(s, spawn_key=(i, block)), in parallel threads; initializers are written straight
    into the ModelProto, so a 100M-parameter model is copied once (bytes) and never again.
    """

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.proto = onnx.ModelProto()
        self.graph = self.proto.graph
        self._names: set[str] = set()
        self._consts: dict[tuple, str] = {}
        self._draws = 0
        self._count = 0

    def _unique(self, name: str) -> str:
        while name in self._names:
            self._count += 1
            name = f"{name}_{self._count}"
        self._names.add(name)
        return name

    def tensor(self, name: str, array: np.ndarray) -> str:
        """Adds an initializer holding a copy of array."""
        name = self._unique(name)
        array = np.asarray(array, order="C")
        tensor = self.graph.initializer.add()
        tensor.name = name
        tensor.data_type = helper.np_dtype_to_tensor_dtype(array.dtype)
        tensor.dims.extend(array.shape)
        tensor.raw_data = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
        return name

    def _random(self, shape: Sequence[int], draw) -> np.ndarray:
        """float32 array of shape, filled block by block by draw(generator, out)."""
        self._draws += 1
        out = np.empty(math.prod(shape), np.float32)
        key = self._draws

        def fill(block: int) -> None:
            seq = np.random.SeedSequence(self.seed, spawn_key=(key, block))
            draw(np.random.Generator(np.random.PCG64(seq)), out[block * _BLOCK:(block + 1) * _BLOCK])

        blocks = range(-(-out.size // _BLOCK))
        if len(blocks) > 1:
            list(_pool().map(fill, blocks))
        else:
            fill(0)
        return out.reshape(shape)

    def normal(self, name: str, shape: Sequence[int], std: float, mean: float = 0.0) -> str:
        """Adds a float32 initializer drawn from N(mean, std**2)."""
        def draw(rng: np.random.Generator, out: np.ndarray) -> None:
            rng.standard_normal(out=out, dtype=np.float32)
            out *= np.float32(std)
            out += np.float32(mean)
        return self.tensor(name, self._random(shape, draw))

    def uniform(self, name: str, shape: Sequence[int], low: float, high: float) -> str:
        """Adds a float32 initializer drawn from U(low, high)."""
        def draw(rng: np.random.Generator, out: np.ndarray) -> None:
            rng.random(out=out, dtype=np.float32)
            out *= np.float32(high - low)
            out += np.float32(low)
        return self.tensor(name, self._random(shape, draw))

    def const(self, value: float | int | Sequence[int], dtype: type = np.float32) -> str:
        """A shared constant initializer (scalar, or 1-D for int lists), created once per value."""
        array = np.asarray(value, dtype=dtype)
        key = (array.dtype.str, array.shape, array.tobytes())
        if key not in self._consts:
            text = "_".join(str(v) for v in array.ravel()[:4]).replace("-", "m").replace(".", "p")
            self._consts[key] = self.tensor(f"const_{text}", array)
        return self._consts[key]

    def op(self, op_type: str, inputs: Sequence[str], name: str, n_outputs: int = 1, **attrs):
        """Adds one node; returns its output name (or the list of them when n_outputs > 1)."""
        name = self._unique(name)
        outputs = [f"{name}_output_{i}" for i in range(n_outputs)]
        self.graph.node.append(helper.make_node(op_type, list(inputs), outputs, name=name, **attrs))
        return outputs[0] if n_outputs == 1 else outputs

    def model(self, inputs: list[onnx.ValueInfoProto], outputs: list[onnx.ValueInfoProto],
              name: str, doc: str, results: Mapping[str, str]) -> onnx.ModelProto:
        """Renames the values in results to the graph's outputs, then finishes and checks the model."""
        renames = {value: output for output, value in results.items()}
        for node in self.graph.node:
            for i, value in enumerate(node.output):
                if value in renames:
                    node.output[i] = renames[value]
        self.graph.name = name
        self.graph.input.extend(inputs)
        self.graph.output.extend(outputs)
        self.proto.ir_version = IR_VERSION
        self.proto.opset_import.append(helper.make_opsetid("", OPSET))
        self.proto.producer_name = "hal.testing"
        self.proto.doc_string = doc
        _check(self.proto)
        return self.proto


def _check(model: onnx.ModelProto) -> None:
    """onnx.checker on the model with its large weights turned into graph inputs of the same type.

    Checks every node, name and attribute, as check_model does, without serializing the weights
    (2 s for BERT-base); tests run the full check on the real model.
    """
    skeleton = onnx.ModelProto()
    for field in ("ir_version", "producer_name", "doc_string"):
        setattr(skeleton, field, getattr(model, field))
    skeleton.opset_import.extend(model.opset_import)
    graph = skeleton.graph
    graph.name = model.graph.name
    graph.node.extend(model.graph.node)
    graph.input.extend(model.graph.input)
    graph.output.extend(model.graph.output)
    for tensor in model.graph.initializer:
        if len(tensor.raw_data) <= 4096:
            graph.initializer.append(tensor)
        else:
            graph.input.append(helper.make_tensor_value_info(tensor.name, tensor.data_type, tensor.dims))
    onnx.checker.check_model(skeleton)


def _value(name: str, elem_type: int, shape: Sequence[Dim]) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem_type, list(shape))


def _initializer_bytes(model: onnx.ModelProto) -> int:
    """Bytes of the weights held in the model (raw or typed fields; external data not counted)."""
    total = 0
    for tensor in model.graph.initializer:
        if tensor.raw_data or tensor.data_type == TensorProto.STRING:
            total += len(tensor.raw_data) + sum(len(s) for s in tensor.string_data)
        else:
            total += math.prod(tensor.dims) * helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize
    return total


# ------------------------------------------------------------------------------------------ MLP


def mlp(batch: Dim = "batch", features: int = 64, hidden: int = 128, classes: int = 10,
        layers: int = 2, seed: int = 0) -> onnx.ModelProto:
    """A tiny MLP: `layers` x (MatMul, Add, Relu), then MatMul, Add to the classes.

    Input "x" float32 [batch, features], output "logits" [batch, classes]. Defaults: 26k
    parameters (0.1 MB), 8 nodes; batch is symbolic unless given as an int.
    """
    g = _Graph(seed)
    x = "x"
    width = features
    for i in range(layers):
        w = g.normal(f"fc{i}.weight", (width, hidden), math.sqrt(2.0 / width))
        b = g.normal(f"fc{i}.bias", (hidden,), 0.01)
        x = g.op("Relu", [g.op("Add", [g.op("MatMul", [x, w], f"/fc{i}/MatMul"), b], f"/fc{i}/Add")],
                 f"/relu{i}/Relu")
        width = hidden
    w = g.normal("head.weight", (width, classes), math.sqrt(1.0 / width))
    b = g.normal("head.bias", (classes,), 0.01)
    logits = g.op("Add", [g.op("MatMul", [x, w], "/head/MatMul"), b], "/head/Add")
    return g.model([_value("x", TensorProto.FLOAT, [batch, features])],
                   [_value("logits", TensorProto.FLOAT, [batch, classes])],
                   "mlp", mlp.__doc__.splitlines()[0], {"logits": logits})


# ------------------------------------------------------------------------------------ small CNN


def small_cnn(batch: Dim = 1, channels: int = 3, size: int = 32, seed: int = 0) -> onnx.ModelProto:
    """A small CNN with unfolded BatchNormalization, as a training-mode export has it.

    3 x (Conv 3x3, BatchNormalization, Relu) with 16, 32, 64 channels, MaxPool after the first
    two, then GlobalAveragePool, Flatten, Gemm to 10 classes. Input "input" float32
    [batch, channels, size, size], output "logits" [batch, 10]. 25k parameters, 14 nodes.
    """
    g = _Graph(seed)
    x = "input"
    cin = channels
    for i, cout in enumerate((16, 32, 64)):
        w = g.normal(f"conv{i}.weight", (cout, cin, 3, 3), math.sqrt(2.0 / (cin * 9)))
        x = g.op("Conv", [x, w], f"/conv{i}/Conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1])
        bn = [g.normal(f"bn{i}.weight", (cout,), 0.1, 1.0), g.normal(f"bn{i}.bias", (cout,), 0.1),
              g.normal(f"bn{i}.running_mean", (cout,), 0.1),
              g.uniform(f"bn{i}.running_var", (cout,), 0.5, 1.5)]
        x = g.op("BatchNormalization", [x, *bn], f"/bn{i}/BatchNormalization", epsilon=1e-5)
        x = g.op("Relu", [x], f"/relu{i}/Relu")
        if i < 2:
            x = g.op("MaxPool", [x], f"/pool{i}/MaxPool", kernel_shape=[2, 2], strides=[2, 2])
        cin = cout
    x = g.op("Flatten", [g.op("GlobalAveragePool", [x], "/GlobalAveragePool")], "/Flatten", axis=1)
    w = g.normal("fc.weight", (10, cin), math.sqrt(1.0 / cin))
    logits = g.op("Gemm", [x, w, g.normal("fc.bias", (10,), 0.01)], "/fc/Gemm", transB=1)
    return g.model([_value("input", TensorProto.FLOAT, [batch, channels, size, size])],
                   [_value("logits", TensorProto.FLOAT, [batch, 10])],
                   "small_cnn", small_cnn.__doc__.splitlines()[0], {"logits": logits})


# ------------------------------------------------------------------------------------ ResNet-50

_RESIDUAL_SCALE = 0.2  # the last conv of each branch, as a trained net's small last-BN gamma has it


def _conv(g: _Graph, x: str, name: str, cin: int, cout: int, k: int, stride: int = 1,
          relu: bool = True, scale: float = 1.0) -> str:
    """Conv with bias (BatchNorm folded in), then Relu unless relu=False.

    He-initialised (variance 2 / fan_in) before a Relu, variance 1 / fan_in otherwise, times scale.
    """
    gain = 2.0 if relu else 1.0
    w = g.normal(f"{name}.weight", (cout, cin, k, k), scale * math.sqrt(gain / (cin * k * k)))
    b = g.normal(f"{name}.bias", (cout,), 0.01)
    scope = "/" + name.replace(".", "/")
    y = g.op("Conv", [x, w, b], f"{scope}/Conv", kernel_shape=[k, k], strides=[stride, stride],
             pads=[k // 2] * 4, dilations=[1, 1], group=1)
    return g.op("Relu", [y], f"{scope}/Relu") if relu else y


def resnet50(batch: Dim = 1, size: int = 224, seed: int = 0) -> onnx.ModelProto:
    """ResNet-50 v1.5 as an exported inference model: BatchNorm folded into each Conv's bias.

    Stem (7x7/2 Conv, MaxPool), bottleneck blocks 3-4-6-3 (64..2048 channels, stride on the 3x3
    conv), GlobalAveragePool, Flatten, Gemm. Input "input" float32 [batch, 3, size, size], output
    "logits" [batch, 1000]. 25.5M parameters (102 MB), 122 nodes, 4.1 GFLOPs (MACs) at 224.
    """
    g = _Graph(seed)
    x = _conv(g, "input", "conv1", 3, 64, 7, stride=2)
    x = g.op("MaxPool", [x], "/maxpool/MaxPool", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    cin = 64
    for stage, (width, blocks, stride) in enumerate(((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)), 1):
        cout = width * 4
        for i in range(blocks):
            s = stride if i == 0 else 1
            p = f"layer{stage}.{i}"
            y = _conv(g, x, f"{p}.conv1", cin, width, 1)
            y = _conv(g, y, f"{p}.conv2", width, width, 3, stride=s)
            y = _conv(g, y, f"{p}.conv3", width, cout, 1, relu=False, scale=_RESIDUAL_SCALE)
            if i == 0:
                x = _conv(g, x, f"{p}.downsample.0", cin, cout, 1, stride=s, relu=False)
            scope = "/" + p.replace(".", "/")
            x = g.op("Relu", [g.op("Add", [y, x], f"{scope}/Add")], f"{scope}/relu/Relu")
            cin = cout
    x = g.op("Flatten", [g.op("GlobalAveragePool", [x], "/avgpool/GlobalAveragePool")], "/Flatten", axis=1)
    w = g.normal("fc.weight", (1000, cin), math.sqrt(1.0 / cin))
    logits = g.op("Gemm", [x, w, g.normal("fc.bias", (1000,), 0.01)], "/fc/Gemm",
                  alpha=1.0, beta=1.0, transB=1)
    return g.model([_value("input", TensorProto.FLOAT, [batch, 3, size, size])],
                   [_value("logits", TensorProto.FLOAT, [batch, 1000])],
                   "resnet50", resnet50.__doc__.splitlines()[0], {"logits": logits})


# ----------------------------------------------------------------------------------------- BERT

_BERT_STD = 0.02  # BERT's initializer_range
_LN_EPS = 1e-12


def _linear(g: _Graph, x: str, name: str, cin: int, cout: int) -> str:
    """MatMul by a [cin, cout] weight, then Add of the bias, as torch.onnx exports nn.Linear."""
    w = g.normal(f"{name}.weight", (cin, cout), _BERT_STD)
    b = g.normal(f"{name}.bias", (cout,), _BERT_STD)
    scope = "/" + name.replace(".", "/")
    return g.op("Add", [g.op("MatMul", [x, w], f"{scope}/MatMul"), b], f"{scope}/Add")


def _layer_norm(g: _Graph, x: str, name: str, hidden: int) -> str:
    scale = g.normal(f"{name}.weight", (hidden,), _BERT_STD, 1.0)
    bias = g.normal(f"{name}.bias", (hidden,), _BERT_STD)
    return g.op("LayerNormalization", [x, scale, bias], "/" + name.replace(".", "/") + "/LayerNormalization",
                axis=-1, epsilon=_LN_EPS)


def _encoder_layer(g: _Graph, x: str, mask: str | None, p: str, hidden: int, heads: int,
                   intermediate: int) -> str:
    """One BERT encoder layer on x [batch, seq, hidden]; mask is additive [batch, 1, 1, seq] or None.

    The head split/merge shapes come from Shape/Gather/Unsqueeze/Concat on x, as torch.onnx
    exports them, so the graph holds shape-only subgraphs.
    """
    if hidden % heads:
        raise ValueError(f"{p}: hidden {hidden} is not a multiple of heads {heads}")
    d = hidden // heads
    s = f"/{p.replace('.', '/')}/attention/self"
    shape = g.op("Shape", [x], f"{s}/Shape")
    dims = [g.op("Unsqueeze", [g.op("Gather", [shape, g.const(i, np.int64)], f"{s}/Gather", axis=0),
                               g.const([0], np.int64)], f"{s}/Unsqueeze") for i in (0, 1)]
    split = g.op("Concat", [*dims, g.const([heads, d], np.int64)], f"{s}/Concat", axis=0)
    merge = g.op("Concat", [*dims, g.const([hidden], np.int64)], f"{s}/Concat_merge", axis=0)

    def heads_of(name: str, perm: list[int]) -> str:
        y = _linear(g, x, f"{p}.attention.self.{name}", hidden, hidden)
        y = g.op("Reshape", [y, split], f"{s}/{name}/Reshape")
        return g.op("Transpose", [y], f"{s}/{name}/Transpose", perm=perm)

    q = heads_of("query", [0, 2, 1, 3])   # [b, h, s, d]
    k = heads_of("key", [0, 2, 3, 1])     # [b, h, d, s]
    v = heads_of("value", [0, 2, 1, 3])   # [b, h, s, d]
    scores = g.op("Div", [g.op("MatMul", [q, k], f"{s}/MatMul"), g.const(math.sqrt(d))], f"{s}/Div")
    if mask is not None:
        scores = g.op("Add", [scores, mask], f"{s}/Add")
    probs = g.op("Softmax", [scores], f"{s}/Softmax", axis=-1)
    ctx = g.op("Transpose", [g.op("MatMul", [probs, v], f"{s}/MatMul_1")], f"{s}/Transpose", perm=[0, 2, 1, 3])
    ctx = g.op("Reshape", [ctx, merge], f"{s}/Reshape")

    o = f"/{p.replace('.', '/')}/attention/output"
    y = _linear(g, ctx, f"{p}.attention.output.dense", hidden, hidden)
    x = _layer_norm(g, g.op("Add", [y, x], f"{o}/Add"), f"{p}.attention.output.LayerNorm", hidden)

    i = f"/{p.replace('.', '/')}/intermediate"
    y = _linear(g, x, f"{p}.intermediate.dense", hidden, intermediate)
    erf = g.op("Erf", [g.op("Div", [y, g.const(math.sqrt(2.0))], f"{i}/gelu/Div")], f"{i}/gelu/Erf")
    y = g.op("Mul", [g.op("Mul", [y, g.op("Add", [erf, g.const(1.0)], f"{i}/gelu/Add")], f"{i}/gelu/Mul"),
                     g.const(0.5)], f"{i}/gelu/Mul_1")
    o = f"/{p.replace('.', '/')}/output"
    y = _linear(g, y, f"{p}.output.dense", intermediate, hidden)
    return _layer_norm(g, g.op("Add", [y, x], f"{o}/Add"), f"{p}.output.LayerNorm", hidden)


def bert_encoder(batch: Dim = 1, seq: Dim = 128, hidden: int = 768, heads: int = 12, layers: int = 12,
                 intermediate: int = 3072, vocab: int = 30522, seed: int = 0) -> onnx.ModelProto:
    """A BERT encoder (BERT-base by default) as torch.onnx exports it, without the pooler.

    Embeddings (word + position + token type Gathers, LayerNormalization), then `layers` encoder
    layers (attention with the additive -10000 mask, erf-GELU FFN, post-LayerNorm). Inputs
    "input_ids" and "attention_mask" int64 [batch, seq]; output "last_hidden_state" float32
    [batch, seq, hidden]. Defaults: 108.9M parameters (436 MB), 507 nodes; 85.1M of them in
    the 12 encoder layers (7.09M each), 23.8M in the embeddings.
    """
    g = _Graph(seed)
    max_positions = max(512, seq) if isinstance(seq, int) else 512
    ids = "input_ids"
    shape = g.op("Shape", [ids], "/embeddings/Shape")
    seq_len = g.op("Unsqueeze", [g.op("Gather", [shape, g.const(1, np.int64)], "/embeddings/Gather", axis=0),
                                 g.const([0], np.int64)], "/embeddings/Unsqueeze")
    position_ids = g.tensor("embeddings.position_ids", np.arange(max_positions, dtype=np.int64)[None])
    position_ids = g.op("Slice", [position_ids, g.const([0], np.int64), seq_len, g.const([1], np.int64)],
                        "/embeddings/Slice")
    token_types = g.op("ConstantOfShape", [shape], "/embeddings/ConstantOfShape",
                       value=numpy_helper.from_array(np.zeros(1, np.int64)))
    tables = {"word": (vocab, ids), "position": (max_positions, position_ids), "token_type": (2, token_types)}
    x = None
    for kind, (rows, index) in tables.items():
        table = g.normal(f"embeddings.{kind}_embeddings.weight", (rows, hidden), _BERT_STD)
        e = g.op("Gather", [table, index], f"/embeddings/{kind}_embeddings/Gather", axis=0)
        x = e if x is None else g.op("Add", [x, e], f"/embeddings/Add_{kind}")
    x = _layer_norm(g, x, "embeddings.LayerNorm", hidden)

    m = g.op("Unsqueeze", ["attention_mask", g.const([1, 2], np.int64)], "/Unsqueeze")
    m = g.op("Cast", [m], "/Cast", to=TensorProto.FLOAT)
    m = g.op("Mul", [g.op("Sub", [g.const(1.0), m], "/Sub"), g.const(-10000.0)], "/Mul")
    for i in range(layers):
        x = _encoder_layer(g, x, m, f"encoder.layer.{i}", hidden, heads, intermediate)
    return g.model([_value("input_ids", TensorProto.INT64, [batch, seq]),
                    _value("attention_mask", TensorProto.INT64, [batch, seq])],
                   [_value("last_hidden_state", TensorProto.FLOAT, [batch, seq, hidden])],
                   "bert_encoder", bert_encoder.__doc__.splitlines()[0], {"last_hidden_state": x})


def transformer_block(batch: Dim = 1, seq: Dim = 64, hidden: int = 256, heads: int = 4,
                      seed: int = 0) -> onnx.ModelProto:
    """One BERT encoder layer without embeddings or mask, FFN width 4 x hidden.

    Input "hidden_states" float32 [batch, seq, hidden], output "output" of the same shape.
    Defaults: 790k parameters (3.2 MB), 40 nodes.
    """
    g = _Graph(seed)
    y = _encoder_layer(g, "hidden_states", None, "layer", hidden, heads, 4 * hidden)
    return g.model([_value("hidden_states", TensorProto.FLOAT, [batch, seq, hidden])],
                   [_value("output", TensorProto.FLOAT, [batch, seq, hidden])],
                   "transformer_block", transformer_block.__doc__.splitlines()[0], {"output": y})


# ---------------------------------------------------------------------------------------- chain

_CYCLE = ("Add", "Mul", "Relu", "Sigmoid", "Tanh")
_RARE = ("Einsum", "Erf", "CumSum")  # Einsum: none on simulated Ascend; Erf: none on Kunlun; CumSum on both


def chain(nodes: int, width: int = 8, seed: int = 0) -> onnx.ModelProto:
    """A synthetic graph of exactly `nodes` small elementwise nodes, for scaling benchmarks.

    Cycles Add, Mul (with constants), Relu, Sigmoid, Tanh on [1, width] float32; every 10th step
    forks into two branches (Relu, Sigmoid) that rejoin with Add; every ~50th node is one of
    Einsum, Erf, CumSum, which some simulated chips lack. Input "x", output "y"; a Sigmoid or
    Tanh every few nodes keeps values bounded. 50,000 nodes build in 0.4 s (2 cores).
    """
    if nodes < 1:
        raise ValueError(f"chain: nodes must be >= 1, got {nodes}")
    rng = np.random.default_rng(seed)
    consts = [numpy_helper.from_array(rng.uniform(lo, hi, (1, width)).astype(np.float32), f"{kind}_{i}")
              for kind, lo, hi in (("bias", -0.5, 0.5), ("gain", 0.5, 1.0)) for i in range(16)]
    consts.append(numpy_helper.from_array(np.array(1, np.int64), "cumsum_axis"))
    graph = helper.make_graph([], "chain", [_value("x", TensorProto.FLOAT, [1, width])],
                              [_value("y", TensorProto.FLOAT, [1, width])])
    add_node = graph.node.add  # NodeProto built in place: 2x faster than helper.make_node
    count = 0

    def emit(op_type: str, inputs: list[str], **attrs) -> str:
        nonlocal count
        node = add_node()
        node.op_type = op_type
        node.name = f"n{count}"
        node.input.extend(inputs)
        node.output.append(f"t{count}")
        for key, value in attrs.items():
            node.attribute.append(helper.make_attribute(key, value))
        count += 1
        return f"t{count - 1}"

    t, step, rare = "x", 0, 0
    while count < nodes:
        left = nodes - count
        if step % 10 == 9 and left >= 3:
            a, b = emit("Relu", [t]), emit("Sigmoid", [t])
            t = emit("Add", [a, b])
        elif count // 50 > rare and _CYCLE[step % 5] in ("Add", "Mul"):
            kind = _RARE[rare % 3]
            rare += 1
            if kind == "Einsum":
                t = emit("Einsum", [t, consts[16 + rare % 16].name], equation="bi,bi->bi")
            elif kind == "Erf":
                t = emit("Erf", [t])
            else:
                t = emit("CumSum", [t, "cumsum_axis"])
        else:
            op_type = _CYCLE[step % 5]
            if op_type == "Add":
                t = emit("Add", [t, consts[step % 16].name])
            elif op_type == "Mul":
                t = emit("Mul", [t, consts[16 + step % 16].name])
            else:
                t = emit(op_type, [t])
        step += 1
    graph.node[-1].output[0] = "y"
    used = {name for node in graph.node for name in node.input}
    graph.initializer.extend(c for c in consts if c.name in used)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="hal.testing", doc_string=chain.__doc__.splitlines()[0])
    model.ir_version = IR_VERSION
    _check(model)
    return model


# ------------------------------------------------------------------------------ saving, feeding


def save(model: onnx.ModelProto, path: str | os.PathLike) -> Path:
    """Saves model to path; over 1.5 GiB of weights go to one "<name>.data" file beside it.

    The model passed in is left as it was (the external-data conversion works on a copy).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if _initializer_bytes(model) <= EXTERNAL_DATA_THRESHOLD:
        onnx.save_model(model, path)
        return path
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    onnx.save_model(copy, path, save_as_external_data=True, all_tensors_to_one_file=True,
                    location=f"{path.name}.data", size_threshold=1024)
    return path


def random_inputs(model: onnx.ModelProto, seed: int = 0, batch: int = 1,
                  dims: Mapping[str, int] | None = None) -> dict[str, np.ndarray]:
    """Seeded feeds for the model's inputs; each symbolic dim becomes batch unless dims names it.

    Floats are standard normal. Integer inputs that index a Gather table get ids below the
    table's row count (the vocab size for "input_ids"); a "*mask*" input gets 1s followed by
    0s of padding, at least one 1 per row; other integers are 0 or 1.
    """
    rng = np.random.default_rng(seed)
    graph = model.graph
    initialized = {t.name for t in graph.initializer}
    rows = {t.name: t.dims[0] for t in graph.initializer if t.dims}
    bounds = {n.input[1]: rows[n.input[0]] for n in graph.node
              if n.op_type == "Gather" and len(n.input) == 2 and n.input[0] in rows}
    feeds = {}
    for value in graph.input:
        if value.name in initialized:
            continue
        tensor_type = value.type.tensor_type
        shape = tuple(d.dim_value if d.HasField("dim_value") else (dims or {}).get(d.dim_param, batch)
                      for d in tensor_type.shape.dim)
        dtype = helper.tensor_dtype_to_np_dtype(tensor_type.elem_type)
        if np.issubdtype(dtype, np.floating):
            feeds[value.name] = rng.standard_normal(shape).astype(dtype)
        elif "mask" in value.name.lower() and len(shape) == 2:
            lengths = rng.integers(1, shape[1] + 1, size=(shape[0], 1))
            feeds[value.name] = (np.arange(shape[1])[None, :] < lengths).astype(dtype)
        else:
            feeds[value.name] = rng.integers(0, bounds.get(value.name, 2), size=shape).astype(dtype)
    return feeds
