"""hal.testing.models: every builder gives a valid model that onnxruntime runs to finite outputs."""
from __future__ import annotations

import time

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from hal import testing  # noqa: E402  (needs onnx)
from hal.testing import (  # noqa: E402
    bert_encoder, chain, mlp, random_inputs, resnet50, save, small_cnn, transformer_block,
)


def build(builder, **kwargs) -> onnx.ModelProto:
    """Builds a model and prints how long it took (seen with pytest -s; no timing is asserted)."""
    start = time.perf_counter()
    model = builder(**kwargs)
    args = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
    print(f"\n{builder.__name__}({args}): built in {time.perf_counter() - start:.2f} s, "
          f"{len(model.graph.node)} nodes, {parameters(model):,} parameters")
    return model


def parameters(model: onnx.ModelProto) -> int:
    """Number of float32 weight elements (scalar constants and int64 index tables left out)."""
    return sum(int(np.prod(t.dims)) for t in model.graph.initializer
               if t.data_type == onnx.TensorProto.FLOAT and t.dims)


def run(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def check_runs(model: onnx.ModelProto, shape: tuple[int, ...], batch: int = 1) -> np.ndarray:
    """Full onnx check, one onnxruntime run on random_inputs: one finite output of shape."""
    onnx.checker.check_model(model, full_check=True)
    assert model.opset_import[0].domain == "" and model.opset_import[0].version == testing.OPSET
    (out,) = run(model, random_inputs(model, batch=batch))
    assert out.dtype == np.float32 and out.shape == shape
    assert np.isfinite(out).all()
    assert 0.01 < float(np.abs(out).mean()) < 100, "activations should stay O(1)"
    return out


def test_public_api():
    assert set(testing.__all__) >= {"mlp", "small_cnn", "resnet50", "bert_encoder", "transformer_block",
                                    "chain", "save", "random_inputs"}
    for name in testing.__all__:
        if callable(getattr(testing, name)):
            assert getattr(testing, name).__doc__, name


@pytest.mark.parametrize("batch", [1, 7])
def test_mlp_symbolic_batch(batch):
    model = build(mlp)
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    check_runs(model, (batch, 10), batch=batch)


def test_mlp_layers_and_sizes():
    model = build(mlp, batch=3, features=5, hidden=7, classes=2, layers=4)
    assert [n.op_type for n in model.graph.node].count("Relu") == 4
    assert parameters(model) == (5 * 7 + 7) + 3 * (7 * 7 + 7) + (7 * 2 + 2)
    check_runs(model, (3, 2))


def test_small_cnn():
    model = build(small_cnn, batch=2)
    assert {"Conv", "BatchNormalization", "MaxPool", "GlobalAveragePool", "Flatten", "Gemm"} <= op_types(model)
    check_runs(model, (2, 10))


def test_transformer_block():
    model = build(transformer_block)
    assert model.graph.input[0].name == "hidden_states"
    check_runs(model, (1, 64, 256))


def test_same_seed_same_weights():
    a, b, c = transformer_block(seed=3), transformer_block(seed=3), transformer_block(seed=4)
    assert a.SerializeToString() == b.SerializeToString()
    assert a.graph.initializer[-1].raw_data != c.graph.initializer[-1].raw_data


def op_types(model: onnx.ModelProto) -> set[str]:
    return {n.op_type for n in model.graph.node}


def test_resnet50():
    # Takes a few seconds: builds and runs the full 25.5M-parameter network at 224x224.
    model = build(resnet50)
    assert op_types(model) == {"Conv", "Relu", "Add", "MaxPool", "GlobalAveragePool", "Flatten", "Gemm"}
    assert sum(n.op_type == "Conv" for n in model.graph.node) == 53  # 1 + 16 * 3 + 4 downsample
    assert abs(parameters(model) - 25.5e6) < 0.2e6
    assert model.graph.input[0].name == "input" and model.graph.output[0].name == "logits"
    check_runs(model, (1, 1000))


def test_bert_encoder():
    # Takes a few seconds: two BERT-base layers with the full 30522-word embedding, seq 16.
    model = build(bert_encoder, layers=2, seq=16)
    assert [i.name for i in model.graph.input] == ["input_ids", "attention_mask"]
    assert model.graph.output[0].name == "last_hidden_state"
    assert {"Shape", "Gather", "Unsqueeze", "Concat", "Reshape", "Transpose", "Softmax", "Erf",
            "LayerNormalization", "Cast", "Sub"} <= op_types(model)
    check_runs(model, (1, 16, 768))

    one_layer = parameters(bert_encoder(layers=1, seq=16)) - parameters(bert_encoder(layers=0, seq=16))
    assert one_layer == 4 * (768 * 768 + 768) + 2 * 768 * 3072 + 3072 + 768 + 4 * 768
    assert abs(12 * one_layer - 85e6) < 0.5e6  # the 12 encoder layers of BERT-base
    embeddings = parameters(bert_encoder(layers=0))
    assert abs(embeddings + 12 * one_layer - 109e6) < 1e6  # BERT-base without its pooler


def test_bert_mask_is_applied():
    model = bert_encoder(layers=1, seq=8, hidden=64, heads=4, intermediate=128, vocab=100)
    feeds = random_inputs(model)
    assert feeds["input_ids"].max() < 100 and set(np.unique(feeds["attention_mask"])) <= {0, 1}
    full = dict(feeds, attention_mask=np.ones_like(feeds["attention_mask"]))
    half = dict(full, attention_mask=np.array([[1, 1, 1, 1, 0, 0, 0, 0]]))
    changed = dict(half, input_ids=np.concatenate([half["input_ids"][:, :4], (half["input_ids"][:, 4:] + 1) % 100], 1))
    (a,), (b,), (c,) = run(model, full), run(model, half), run(model, changed)
    assert not np.allclose(a, b)
    np.testing.assert_allclose(b[:, :4], c[:, :4], rtol=1e-5, atol=1e-5)  # padding is not attended


def test_bert_symbolic_dims():
    model = bert_encoder(batch="batch", seq="seq", layers=1, hidden=64, heads=4, intermediate=128, vocab=100)
    (out,) = run(model, random_inputs(model, batch=3, dims={"seq": 11}))
    assert out.shape == (3, 11, 64)


def test_chain_1000():
    model = build(chain, nodes=1000)
    assert len(model.graph.node) == 1000
    assert {"Add", "Mul", "Relu", "Sigmoid", "Tanh", "Einsum", "Erf", "CumSum"} <= op_types(model)
    consumers = {}
    for node in model.graph.node:
        for name in node.input:
            consumers[name] = consumers.get(name, 0) + 1
    assert max(consumers.values()) >= 2  # branches that rejoin
    check_runs(model, (1, 8))


@pytest.mark.parametrize("nodes", [1, 2, 3, 49, 50, 51])
def test_chain_exact_count(nodes):
    model = chain(nodes, width=4)
    assert len(model.graph.node) == nodes
    check_runs(model, (1, 4))


def test_chain_50k_builds():
    model = build(chain, nodes=50_000)
    assert len(model.graph.node) == 50_000


def test_save_round_trip(tmp_path):
    model = transformer_block(hidden=32, heads=2, seq=4)
    path = save(model, tmp_path / "sub" / "block.onnx")
    assert path.exists() and path.stat().st_size > 4 * 32 * 32 * 4
    assert onnx.load(path).SerializeToString() == model.SerializeToString()


def test_save_external_data(tmp_path, monkeypatch):
    monkeypatch.setattr(testing.models, "EXTERNAL_DATA_THRESHOLD", 1024)  # as if the model were > 1.5 GiB
    model = transformer_block(hidden=32, heads=2, seq=4)
    before = model.SerializeToString()
    path = save(model, tmp_path / "block.onnx")
    data = (tmp_path / "block.onnx.data").stat().st_size
    assert data >= 12 * 32 * 32 * 4 > 4 * path.stat().st_size  # the weight matrices out, the rest in
    assert model.SerializeToString() == before  # the caller's model keeps its weights
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = random_inputs(model)
    np.testing.assert_allclose(session.run(None, feeds)[0], run(model, feeds)[0], rtol=1e-6)


def test_random_inputs_deterministic():
    model = bert_encoder(layers=0, seq=16, hidden=32, heads=2, vocab=50)
    a, b, c = random_inputs(model, seed=1), random_inputs(model, seed=1), random_inputs(model, seed=2)
    assert a.keys() == {"input_ids", "attention_mask"}
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["input_ids"], c["input_ids"])
    assert a["input_ids"].dtype == np.int64 and 0 <= a["input_ids"].min() and a["input_ids"].max() < 50
    assert a["attention_mask"][:, 0].all()  # every row attends to at least one token
