"""Trace events and their Chrome/Perfetto JSON: hal.profiler."""
from __future__ import annotations

import itertools
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


# ------------------------------------------------------------------------------ a partition's nodes

NODES = {"proj": "MatMul", "act": "Relu", "bias": "Add"}


def _three_nodes():
    """x [batch, 64] -> MatMul "proj" -> Relu "act" -> Add "bias" -> y [batch, 32]."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array(rng.standard_normal((64, 32)).astype(np.float32), "w"),
               numpy_helper.from_array(rng.standard_normal(32).astype(np.float32), "b")]
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"], name="proj"),
             helper.make_node("Relu", ["h"], ["r"], name="act"),
             helper.make_node("Add", ["r", "b"], ["y"], name="bias")]
    graph = helper.make_graph(nodes, "three_nodes", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 64])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 32])], weights)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _saved_trace(prof, tmp_path) -> list[dict]:
    return json.loads(prof.save(tmp_path / "trace.json").read_text())["traceEvents"]


def _track_names(events: list[dict]) -> dict[tuple[int, int], str]:
    """(pid, tid) -> "ascend:0 (simulated clock) / stream 3"."""
    processes = {e["pid"]: e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "process_name"}
    return {(e["pid"], e["tid"]): f"{processes[e['pid']]} / {e['args']['name']}"
            for e in events if e["ph"] == "M" and e["name"] == "thread_name"}


def _node_slices(events: list[dict], parent: dict) -> list[dict]:
    """The slices of NODES on the parent's track, each checked to lie inside the parent."""
    found = [e for e in events if e["ph"] == "X" and e["args"].get("node") in NODES
             and (e["pid"], e["tid"]) == (parent["pid"], parent["tid"]) and e is not parent]
    for e in found:
        assert e["name"] == f"{NODES[e['args']['node']]} ({e['args']['node']})" and e["args"]["op"] == NODES[e["args"]["node"]]
        assert parent["ts"] - 1e-6 <= e["ts"] and e["ts"] + e["dur"] <= parent["ts"] + parent["dur"] + 1e-6
    return found


def test_cpu_partition_shows_each_node_on_the_wall_clock(tmp_path):
    sess = hal.InferenceSession(_three_nodes(), devices=["cpu"])
    x = np.random.default_rng(1).standard_normal((8, 64)).astype(np.float32)
    expected = sess.run(None, {"x": x})[0]
    with profiler.profile() as prof:
        got = sess.run(None, {"x": x})[0]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)  # node by node, the same results
    events = _saved_trace(prof, tmp_path)
    tracks = _track_names(events)
    (partition,) = [e for e in events if e["ph"] == "X" and e["name"] == sess.plan.partitions[0].name]
    assert tracks[(partition["pid"], partition["tid"])] == "cpu:0 (wall clock) / host"
    nodes = _node_slices(events, partition)
    assert [e["args"]["node"] for e in sorted(nodes, key=lambda e: e["ts"])] == list(NODES)
    proj = next(e for e in nodes if e["args"]["node"] == "proj")
    assert proj["args"]["inputs"] == ["float32[8,64]", "float32[64,32]"] and proj["args"]["outputs"] == ["float32[8,32]"]
    assert proj["args"]["engine"] == "onnxruntime" and "wall_ms" in proj["args"]


@pytest.mark.parametrize("device", SIMULATED)
def test_simulated_partition_lays_its_nodes_out_on_the_simulated_clock(device, tmp_path):
    sess = hal.InferenceSession(_three_nodes(), devices=[device])
    (partition_name,) = [p.name for p in sess.plan.partitions]
    with profiler.profile() as prof:
        sess.run(None, {"x": np.ones((8, 64), np.float32)})
    events = _saved_trace(prof, tmp_path)
    tracks = _track_names(events)
    partitions = {tracks[(e["pid"], e["tid"])].split(" / ")[0]: e for e in events if e["ph"] == "X" and e["name"] == partition_name}
    assert set(partitions) == {f"{device} (simulated clock)", f"{device} (wall clock)"}

    simulated = partitions[f"{device} (simulated clock)"]
    nodes = sorted(_node_slices(events, simulated), key=lambda e: e["ts"])
    assert [e["args"]["node"] for e in nodes] == list(NODES)
    # back to back from the partition's start, adding up to its simulated duration
    assert nodes[0]["ts"] == pytest.approx(simulated["ts"], abs=1e-6)
    for before, after in itertools.pairwise(nodes):
        assert after["ts"] == pytest.approx(before["ts"] + before["dur"], abs=1e-6)
    assert sum(e["dur"] for e in nodes) == pytest.approx(simulated["dur"], rel=1e-9)
    assert sum(e["args"]["device_ms"] for e in nodes) == pytest.approx(simulated["args"]["device_ms"], abs=1e-5)
    assert events.index(simulated) < events.index(nodes[0])  # the parent first: viewers nest by order at equal times
    proj = nodes[0]
    assert proj["cat"] == "compute" and proj["args"]["inputs"] == ["float32[8,64]", "float32[64,32]"]
    assert proj["args"]["compute"] and proj["args"]["bound"] in ("compute", "memory", "launch") and proj["args"]["flops"] == 2 * 8 * 64 * 32
    assert "wall_ms" not in proj["args"]  # a share of the simulated time, not something the host measured

    # on the wall clock the stream op is only the write-back: no node slices there...
    assert _node_slices(events, partitions[f"{device} (wall clock)"]) == []
    # ...they nest in the host's emulation of the partition, each node's own run
    (emulation,) = [e for e in events if e["ph"] == "X" and e["name"] == f"{partition_name} (emulation)"]
    assert tracks[(emulation["pid"], emulation["tid"])] == f"{device} (wall clock) / host"
    assert {e["args"]["node"] for e in _node_slices(events, emulation)} == set(NODES)


def test_cpu_partitions_between_chip_partitions_show_their_nodes(tmp_path):
    from hal.testing import random_inputs, transformer_block

    model = transformer_block(batch="batch", seq=16, hidden=64, heads=2)
    sess = hal.InferenceSession(model, devices=["kunlun:0"])
    on_cpu = {p.name: set(p.nodes) for p in sess.plan.partitions if p.device == "cpu:0"}
    with profiler.profile() as prof:
        sess.run(None, random_inputs(model))
    events = [e for e in _saved_trace(prof, tmp_path) if e["ph"] == "X"]
    for name, members in on_cpu.items():
        (parent,) = [e for e in events if e["name"] == name]
        inside = [e for e in events if (e["pid"], e["tid"]) == (parent["pid"], parent["tid"]) and e["args"].get("node") in members]
        assert inside and all(parent["ts"] <= e["ts"] and e["ts"] + e["dur"] <= parent["ts"] + parent["dur"] for e in inside)


def test_nothing_is_recorded_per_node_without_a_profiler(monkeypatch):
    from hal.graph.host import HostProgram

    sessions = [hal.InferenceSession(_three_nodes(), devices=[device]) for device in ("cpu", "ascend:0")]

    def refuse(*args):
        raise AssertionError("a run without a profiler split its partition node by node")

    monkeypatch.setattr(HostProgram, "_by_node", refuse)
    for sess in sessions:
        assert sess.run(None, {"x": np.ones((2, 64), np.float32)})[0].shape == (2, 32)
    with profiler.profile() as prof:
        pass
    assert prof.events == []
