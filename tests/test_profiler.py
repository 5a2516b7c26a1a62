"""Trace events and their Chrome/Perfetto JSON: hal.profiler."""
from __future__ import annotations

import json

import numpy as np
import pytest

import hal
from hal import profiler

SIMULATED = ("ascend:0", "kunlun:0")


def _round_trip(device: str) -> None:
    """One host -> device copy and one device -> host copy on the device's default stream."""
    x = np.arange(4096, dtype=np.float32)
    assert hal.tensor(x, device=device).numpy().tobytes() == x.tobytes()


@pytest.mark.parametrize("device", SIMULATED)
def test_copies_on_a_simulated_chip_carry_its_clock(device):
    with profiler.profile() as prof:
        _round_trip(device)
    copies = [e for e in prof.events if e.category == "copy"]
    assert [e.name for e in copies] == ["copy_h2d", "copy_d2h"]
    for e in copies:
        assert e.device == device and e.simulated and e.track.startswith("stream ")
        assert e.device_start is not None and e.device_end is not None
        assert 0 <= e.device_start < e.device_end
        assert e.wall_start <= e.wall_end
    # one stream, in order: the download starts on the device's clock where the upload ended
    assert copies[1].device_start == pytest.approx(copies[0].device_end)


def test_copies_on_the_cpu_have_wall_time_only():
    with profiler.profile() as prof:
        _round_trip("cpu")
    copies = [e for e in prof.events if e.category == "copy"]
    assert copies and all(e.device == "cpu:0" for e in copies)
    for e in copies:
        assert not e.simulated and e.device_start is None and e.device_end is None
        assert e.wall_start <= e.wall_end


def test_work_queued_inside_the_block_is_recorded_when_it_ends():
    x = np.ones((256, 256), np.float32)
    target = hal.empty(x.shape, "float32", device="ascend:0")
    with profiler.profile() as prof:
        target.copy_(x, non_blocking=True)  # no synchronize: the block's end drains the streams
    assert [e.name for e in prof.events] == ["copy_h2d"]


def test_nothing_is_recorded_outside_a_profile_block():
    _round_trip("ascend:0")
    with profiler.profile() as prof:
        assert profiler.active() is prof
    assert profiler.active() is None
    _round_trip("ascend:0")
    _round_trip("cpu")
    assert prof.events == []


def test_nested_profile_blocks_are_refused():
    with profiler.profile() as outer:
        with pytest.raises(hal.InvalidArgumentError, match="already recording"):
            with profiler.profile():
                pass
        assert profiler.active() is outer
    assert profiler.active() is None


def test_an_error_inside_the_block_stops_the_profiler():
    with pytest.raises(RuntimeError):
        with profiler.profile():
            raise RuntimeError("user code failed")
    assert profiler.active() is None
    with profiler.profile() as prof:  # a new block can start
        _round_trip("kunlun:0")
    assert len(prof.events) == 2


def test_chrome_trace_structure():
    with profiler.profile() as prof:
        _round_trip("ascend:0")
        _round_trip("cpu")
    trace = prof.chrome_trace()
    assert json.loads(json.dumps(trace)) == trace
    events = trace["traceEvents"]
    complete = [e for e in events if e["ph"] == "X"]
    metadata = [e for e in events if e["ph"] == "M"]
    assert {e["ph"] for e in events} == {"X", "M"}

    processes = {e["pid"]: e["args"]["name"] for e in metadata if e["name"] == "process_name"}
    assert set(processes.values()) == {"ascend:0 (wall clock)", "ascend:0 (simulated clock)", "cpu:0 (wall clock)"}
    threads = {(e["pid"], e["tid"]) for e in metadata if e["name"] == "thread_name"}
    assert all(e["args"]["name"].startswith("stream ") for e in metadata if e["name"] == "thread_name")

    # every copy twice on the simulated chip (both clocks), once on the CPU (wall clock only)
    assert len(complete) == 2 * 2 + len([e for e in prof.events if e.device == "cpu:0"])
    for e in complete:
        assert e["cat"] == "copy" and e["name"] in ("copy_h2d", "copy_d2h")
        assert e["pid"] in processes and (e["pid"], e["tid"]) in threads
        assert e["ts"] >= 0 and e["dur"] > 0
        assert e["args"]["wall_ms"] >= 0
        assert ("device_ms" in e["args"]) == processes[e["pid"]].startswith("ascend:0")


def test_save_writes_loadable_json(tmp_path):
    with profiler.profile() as prof:
        _round_trip("kunlun:0")
    path = prof.save(tmp_path / "traces" / "run.json")  # the folder is created
    assert path == tmp_path / "traces" / "run.json"
    assert json.loads(path.read_text()) == prof.chrome_trace()


def test_cpu_partitions_of_a_session_are_on_the_host_track():
    from hal.testing import random_inputs, transformer_block

    # a dynamic batch keeps the shape arithmetic (on the host) between the chip's partitions
    model = transformer_block(batch="batch", seq=16, hidden=64, heads=2)
    sess = hal.InferenceSession(model, devices=["kunlun:0"])
    on_cpu = {p.name for p in sess.plan.partitions if p.device == "cpu:0"}
    assert on_cpu
    feeds = random_inputs(model)
    with profiler.profile() as prof:
        sess.run(None, feeds)
    assert on_cpu <= {e.name for e in prof.events if e.track == "host"}
