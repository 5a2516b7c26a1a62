"""Builders of ONNX models for hal's tests, examples and benchmarks; numpy-testing style.

    from hal.testing import resnet50, random_inputs
    model = resnet50(batch=1)               # onnx.ModelProto, seeded weights, nothing downloaded
    feeds = random_inputs(model, seed=0)    # {"input": float32 [1, 3, 224, 224]}
"""
from __future__ import annotations

from .models import (
    IR_VERSION,
    OPSET,
    bert_encoder,
    chain,
    mlp,
    random_inputs,
    resnet50,
    save,
    small_cnn,
    transformer_block,
)

__all__ = ["mlp", "small_cnn", "resnet50", "bert_encoder", "transformer_block", "chain", "save",
           "random_inputs", "OPSET", "IR_VERSION"]
