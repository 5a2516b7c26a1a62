"""Concurrency (issue #18, part 4): one InferenceSession shared by many threads gives each thread
the single-thread results bit for bit, and streams and allocators of one device used from many
threads stay consistent.

The issue's figure is 8 threads x 1,000 runs: `HAL_STRESS_RUNS=1000 python3 -m pytest -q
tests/reliability/test_concurrency.py`. CI runs fewer (HAL_STRESS_RUNS, default 100) to stay in its
time budget on two cores. Every wait is bounded (HAL_STRESS_TIMEOUT seconds): a deadlock fails the
test instead of hanging the suite.
"""
from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Sequence

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import hal
from hal import registry
from hal.testing.models import IR_VERSION, OPSET, mlp

THREADS = 8
RUNS = int(os.environ.get("HAL_STRESS_RUNS", "100"))
TIMEOUT_S = float(os.environ.get("HAL_STRESS_TIMEOUT", "300"))
DISTINCT_INPUTS = 24
FEATURES = 16


def run_threads(work: Callable[[int], None], threads: int = THREADS, timeout_s: float = TIMEOUT_S) -> None:
    """Runs work(thread_index) on `threads` threads started together; fails when one raised or
    when they are not all done within timeout_s (daemon threads: a hung one cannot block exit)."""
    start = threading.Barrier(threads)
    errors: list[BaseException] = []

    def body(index: int) -> None:
        try:
            start.wait(timeout_s)
            work(index)
        except BaseException as exc:  # reported by the main thread, with the thread's traceback
            errors.append(exc)

    workers = [threading.Thread(target=body, args=(i,), name=f"stress-{i}", daemon=True) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout_s)
    hung = [w.name for w in workers if w.is_alive()]
    assert not hung, f"threads {hung} still running after {timeout_s:.0f} s: deadlock or livelock"
    if errors:
        raise errors[0]


@pytest.fixture
def switch_often():
    """Python hands the GIL over every 5 ms; every microsecond, a check-then-act race between
    threads shows within a short test."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(previous)


def mlp_with_fallback() -> onnx.ModelProto:
    """MatMul, Add, Relu, then an Einsum (simulated Ascend has none: it falls back to the CPU),
    then MatMul, Add: three partitions, ascend -> cpu -> ascend, with copies both ways."""
    rng = np.random.default_rng(7)

    def weight(name: str, shape: Sequence[int]) -> onnx.TensorProto:
        return numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32) * 0.3, name)

    nodes = [
        helper.make_node("MatMul", ["x", "w0"], ["h0"], name="mm0"),
        helper.make_node("Add", ["h0", "b0"], ["h1"], name="add0"),
        helper.make_node("Relu", ["h1"], ["h2"], name="relu0"),
        helper.make_node("Einsum", ["h2", "g"], ["h3"], name="gate", equation="bi,i->bi"),
        helper.make_node("MatMul", ["h3", "w1"], ["h4"], name="mm1"),
        helper.make_node("Add", ["h4", "b1"], ["y"], name="add1"),
    ]
    graph = helper.make_graph(
        nodes, "mlp_with_fallback",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", FEATURES])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 8])],
        [weight("w0", (FEATURES, 32)), weight("b0", (32,)), weight("g", (32,)), weight("w1", (32, 8)), weight("b1", (8,))],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model


def distinct_inputs() -> list[np.ndarray]:
    """Different values and batch sizes (1-3), so a thread that got another's result is caught."""
    rng = np.random.default_rng(2026)
    return [rng.standard_normal((1 + i % 3, FEATURES)).astype(np.float32) for i in range(DISTINCT_INPUTS)]


# name: (model, devices, the partitions' devices in the plan)
SESSIONS = {
    "cpu": (lambda: mlp(features=FEATURES, hidden=32, classes=8), ["cpu"], ["cpu:0"]),
    "ascend": (lambda: mlp(features=FEATURES, hidden=32, classes=8), ["ascend:0"], ["ascend:0"]),
    "ascend+cpu": (mlp_with_fallback, ["ascend:0", "cpu"], ["ascend:0", "cpu:0", "ascend:0"]),
}


@pytest.mark.parametrize("case", list(SESSIONS))
def test_shared_session_gives_every_thread_the_single_thread_results(case):
    """Half the runs take numpy in and out (run), half a tensor already on the first device
    (run_with_tensors), whose copies share the device's default stream with the other threads'."""
    build, devices, partitions = SESSIONS[case]
    session = hal.InferenceSession(build(), devices=devices)
    assert [p.device for p in session.plan.partitions] == partitions
    first_device = session.devices[0]
    feeds = distinct_inputs()
    expected = [session.run(None, {"x": x})[0] for x in feeds]
    assert len({e.tobytes() for e in expected}) == len(expected), "the inputs must give distinct results"
    output = session.get_outputs()[0].name
    mismatches: list[tuple[int, int, int]] = []

    def work(thread: int) -> None:
        for run in range(RUNS):
            pick = (thread * 7 + run * (thread + 1)) % len(feeds)  # each thread its own order
            if run % 2:
                got = session.run_with_tensors({"x": hal.tensor(feeds[pick], device=first_device)})[output].numpy()
            else:
                got = session.run(None, {"x": feeds[pick]})[0]
            want = expected[pick]
            if got.dtype != want.dtype or got.shape != want.shape or got.tobytes() != want.tobytes():
                mismatches.append((thread, run, pick))

    run_threads(work)
    assert not mismatches, (f"{len(mismatches)} of {THREADS * RUNS} runs differ from the single-thread result; "
                            f"first (thread, run, input): {mismatches[:5]}")


@pytest.mark.parametrize("name", ["cpu:0", "ascend:0"])
def test_allocate_free_copy_from_many_threads_keeps_data_and_stats(name):
    """Each thread allocates, fills, copies on its own stream and on the shared default stream,
    orders the two with events, reads back and frees; no byte is lost or crossed between threads,
    and the device's allocated bytes return to where they were."""
    device = hal.device(name)
    device.synchronize()
    before = device.memory_stats()
    rounds = max(RUNS // 2, 10)

    def work(thread: int) -> None:
        own = device.stream()
        shared = device.default_stream
        rng = np.random.default_rng(thread)
        for i in range(rounds):
            size = int(rng.integers(1, 4096))
            data = np.full(size, (thread * 131 + i) % 251, np.uint8)
            data[: min(size, 8)] = thread  # the owner's mark, first bytes
            first = hal.empty(size, "uint8", device=device)
            first.copy_(data, stream=own, non_blocking=True)
            ready = own.record_event()
            second = hal.empty(size, "uint8", device=device)
            shared.wait_event(ready)  # the device-to-device copy on the shared stream waits for the fill
            second.copy_(first, stream=shared, non_blocking=True)
            back = second.numpy(stream=shared, non_blocking=True)
            shared.record_event().synchronize()
            np.testing.assert_array_equal(back, data, err_msg=f"thread {thread}, round {i}")
            raw = device.allocate(int(rng.integers(0, 1 << 16)))
            del first, second
            raw.free()
        own.synchronize()

    run_threads(work)
    device.synchronize()
    after = device.memory_stats()
    assert after.allocated_bytes == before.allocated_bytes
    assert after.active_allocs == before.active_allocs
    assert after.num_allocs - before.num_allocs == after.num_frees - before.num_frees == THREADS * rounds * 3


def test_first_use_from_many_threads_opens_one_driver_and_one_default_stream(fresh_registry, switch_often):
    """A device's driver (its memory arena) and default stream are made on first use: threads that
    get there together must share one of each, or their buffers land in different arenas. Five
    fresh devices: before Device opened them under a lock, 13 of 20 such tries made two."""
    for _ in range(5):
        registry.reset()
        device = hal.device("ascend:0")
        drivers, streams = [], []

        def work(thread: int) -> None:
            drivers.append(device.driver)
            streams.append(device.default_stream)

        run_threads(work)
        assert len({id(d) for d in drivers}) == 1
        assert len({id(s) for s in streams}) == 1


def test_synchronize_while_other_threads_make_streams(switch_often):
    """Device.synchronize walks the device's streams while other threads add new ones and drop
    old ones. Before Device kept its streams under a lock, 1,000 synchronize calls so raised
    "RuntimeError: Set changed size during iteration" in 4 of 5 tries."""
    device = hal.device("ascend:0")
    stop = threading.Event()

    def work(thread: int) -> None:
        if thread == 0:
            try:
                for _ in range(RUNS * 20):
                    device.synchronize()
            finally:
                stop.set()
            return
        kept = []
        while not stop.is_set():
            kept.append(device.stream())
            if len(kept) > 16:
                kept.pop(0)  # dropped streams leave the device's set while it is walked

    run_threads(work)


def test_events_across_streams_order_work_from_many_threads():
    """Threads append to one list from host functions on their own streams, each waiting on the
    event of the stream before it: the appends come out in the chain's order."""
    device = hal.device("ascend:0")
    streams = [device.stream() for _ in range(THREADS)]
    order: list[int] = []
    gates = [threading.Event() for _ in range(THREADS)]
    events: list[hal.Event | None] = [None] * THREADS

    def work(thread: int) -> None:
        stream = streams[thread]
        if thread > 0:
            assert gates[thread - 1].wait(TIMEOUT_S)
            stream.wait_event(events[thread - 1])
        stream.launch_host_func(lambda: order.append(thread))
        events[thread] = stream.record_event()
        gates[thread].set()
        stream.synchronize()

    run_threads(work)
    assert order == list(range(THREADS))


def test_a_failure_on_one_threads_stream_reaches_that_thread_only():
    """Even threads fail host work on their own streams, odd threads copy on theirs: each failing
    thread gets a DeviceError at its synchronize and its stream works again afterwards; the others
    see no error and their data intact."""
    device = hal.device("ascend:0")

    def fail() -> None:
        raise RuntimeError("injected by the test")

    def work(thread: int) -> None:
        stream = device.stream()
        for i in range(max(RUNS // 4, 5)):
            if thread % 2 == 0:
                stream.launch_host_func(fail)
                with pytest.raises(hal.DeviceError, match="injected by the test"):
                    stream.synchronize()
                stream.synchronize()  # the error was reported once; the stream is usable again
            else:
                data = np.full(256, thread * 16 + i % 16, np.uint8)
                copied = hal.empty(256, "uint8", device=device).copy_(data, stream=stream)
                np.testing.assert_array_equal(copied.numpy(stream=stream), data)

    run_threads(work)


def test_kernels_from_many_threads_share_the_thread_pool_and_output_cache():
    """hal.ops kernels called from many threads at once: one call at a time gets the native thread
    pool, the others run alone; outputs of 1 MiB or more come from one shared cache. Each thread
    must get its own input's result, and the cache must hold no output once they are dropped."""
    rng = np.random.default_rng(11)
    inputs = [rng.standard_normal((256, 1024)).astype(np.float32) for _ in range(THREADS)]  # 1 MiB each
    live_before = hal.ops.output_cache_stats()["live_bytes"]
    expected = [(hal.ops.gelu(x), hal.ops.softmax(x)) for x in inputs]
    wrong: list[tuple[int, int]] = []

    def work(thread: int) -> None:
        for run in range(max(RUNS // 4, 5)):
            pick = (thread + run) % THREADS
            gelu, softmax = hal.ops.gelu(inputs[pick]), hal.ops.softmax(inputs[pick])
            if not (np.array_equal(gelu, expected[pick][0]) and np.array_equal(softmax, expected[pick][1])):
                wrong.append((thread, run))

    run_threads(work)
    assert not wrong, f"kernel results differ from the single-thread ones at (thread, run) {wrong[:5]}"
    del expected
    assert hal.ops.output_cache_stats()["live_bytes"] == live_before
