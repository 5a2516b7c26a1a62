"""Keep tensors on the chip between models: run_with_tensors takes and returns hal.DeviceTensor.

    python examples/05_device_resident_io.py

sess.run() has onnxruntime's signature: numpy in, numpy out, so every call uploads its inputs and
downloads its outputs over the host link. When one model feeds another on the same chip, that
round trip is wasted. run_with_tensors() leaves outputs where they were computed, so the next
session reads them in place; only the final .numpy() crosses back to the host. The profiler
counts the copies to show it.
"""
from __future__ import annotations

import numpy as np

import hal
from hal import profiler
from hal.testing import mlp, random_inputs

DEVICE = "ascend:0"


def copies(prof: profiler.Profiler) -> str:
    names = [e.name for e in prof.events if e.category == "copy"]
    """How many copies the profiler saw, and which (copy_h2d: host to device, copy_d2h: back)."""
    count = f"{len(names)} cop{'y' if len(names) == 1 else 'ies'}"
    return count + (f" ({', '.join(names)})" if names else "")


def main() -> None:
    # two small models that chain: the encoder's 32 outputs are the head's 32 inputs
    encoder_model = mlp(features=64, hidden=128, classes=32, seed=1)
    head_model = mlp(features=32, hidden=64, classes=10, seed=2)
    encoder = hal.InferenceSession(encoder_model, devices=[DEVICE])
    head = hal.InferenceSession(head_model, devices=[DEVICE])

    host_input = random_inputs(encoder_model, batch=8, seed=0)["x"]
    x = hal.tensor(host_input, device=DEVICE)  # the one upload, before anything runs
    print(f"input:    {x.device} {x.shape} {x.dtype}")

    with profiler.profile() as prof:
        features = encoder.run_with_tensors({"x": x})["logits"]
        logits = head.run_with_tensors({"x": features})["logits"]
    print(f"encoder:  output on {features.device} {features.shape}")
    print(f"head:     output on {logits.device} {logits.shape}")
    print(f"between the upload and the download: {copies(prof)}")

    with profiler.profile() as prof:
        result = logits.numpy()  # the only trip back to the host
    print(f".numpy(): {copies(prof)} -> numpy {result.shape} {result.dtype}")

    # the numpy path gives the same numbers, with a download and an upload between the models
    with profiler.profile() as prof:
        expected = head.run(None, {"x": encoder.run(None, {"x": host_input})[0]})[0]
    print(f"\nSame chain through run() and numpy: {copies(prof)}")
    print(f"max |difference| between the two paths: {float(np.abs(result - expected).max()):.1e}")
    print(f"predicted classes: {result.argmax(axis=1).tolist()}")


if __name__ == "__main__":
    main()
