"""List every device, then round-trip a tensor through each one and print what it cost.

    python examples/01_devices.py

Simulated chips report simulated time (what the real card would take over its host link);
the CPU reports wall time. Move the whole script to another chip with HAL_DEVICE, or show more
simulated cards with HAL_SIM_DEVICES=ascend=4.
"""
from __future__ import annotations

import numpy as np

import hal
from hal.memory import format_bytes


def main() -> None:
    print("Devices:")
    width = max(len(d.name) for d in hal.devices())
    for device in hal.devices():
        spec = device.spec
        fp16 = spec.peak_flops.get("float16")
        speed = f", {fp16 / 1e12:.0f} TFLOP/s fp16" if fp16 else ""
        name = spec.name if spec.simulated or "(" in spec.name else f"{spec.name} (real)"  # sim names say "(simulated)"
        print(f"  {device.name:<{width}} {name}: {format_bytes(spec.memory_bytes)}{speed}")

    host = np.random.default_rng(0).standard_normal((1024, 1024)).astype(np.float32)  # 4 MiB
    print(f"\nRound trip of a {host.shape} float32 tensor ({format_bytes(host.nbytes)}) through each device:")
    for device in hal.devices():
        stream = device.stream()
        start = stream.record_event()
        on_device = hal.empty(host.shape, "float32", device=device).copy_(host, stream=stream)
        uploaded = stream.record_event()
        back = on_device.numpy(stream=stream)
        done = stream.record_event()
        done.synchronize()
        assert back.tobytes() == host.tobytes(), f"{device.name} changed the data"
        clock = "simulated" if done.driver.simulated else "wall"
        print(
            f"  {device.name:<{width}} host->device {start.elapsed_time(uploaded):7.3f} ms, "
            f"device->host {uploaded.elapsed_time(done):7.3f} ms ({clock} clock); "
            f"wall {start.wall_elapsed_time(done):6.2f} ms; bit-exact"
        )

    # device -> device: peers of one chip family use their link; different chips go through the host
    chain = [d.name for d in hal.devices()]
    moving = hal.tensor(host, device=chain[0])
    for name in chain[1:]:
        moving = moving.to(name)
    assert moving.numpy().tobytes() == host.tobytes()
    print(f"\nChained copy {' -> '.join(chain)}: bit-exact")
    stats = hal.device(chain[-1]).memory_stats()
    print(f"{chain[-1]} memory: {format_bytes(stats.allocated_bytes)} allocated, "
          f"{format_bytes(stats.reserved_bytes)} reserved, peak {format_bytes(stats.peak_bytes)}")


if __name__ == "__main__":
    main()
