"""hal.distributed.Communicator: every collective equals numpy's on the same data (bit-exact for
integers and max/min, float tolerance for sums), on 2 and 4 simulated cards, the CPU, chips without
a peer link and a group mixing vendors; the simulated time is the algorithm's formula; bad input is
a HalError on every rank, and nothing waits forever."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import hal
import hal.distributed as hd
from hal import profiler, registry
from hal.sim import ChipCost, clear_faults, inject_fault
from hal.sim.spec import find_chip_spec

COLLECTIVES = ("all_reduce", "all_gather", "reduce_scatter", "broadcast")


@pytest.fixture(scope="module")
def four_cards():
    """Nine Ascend 910B (one more than an HCCS mesh joins) and four Kunlun P800; the R200 pair
    has its own fixture, as a registry holds one model per family."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HAL_SIM_DEVICES", "ascend=9,kunlun=4")
        registry.reset()
        yield
    registry.reset()


@pytest.fixture
def r200_pair():
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HAL_SIM_DEVICES", "kunlun=2:R200")
        registry.reset()
        yield hd.Communicator(["kunlun:0", "kunlun:1"])
    registry.reset()


def _inputs(comm, shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        arrays = [rng.standard_normal(shape).astype(dtype) for _ in comm.devices]
    else:
        arrays = [rng.integers(-1000, 1000, shape).astype(dtype) for _ in comm.devices]
    return arrays, [hal.tensor(a, device=d) for a, d in zip(arrays, comm.devices)]


def _expected(collective, arrays, op, axis, root):
    n = len(arrays)
    if collective == "all_gather":
        return [np.concatenate(arrays, axis=axis)] * n
    if collective == "broadcast":
        return [arrays[root]] * n
    stacked = np.stack(arrays)
    total = {"sum": np.sum, "max": np.max, "min": np.min, "avg": np.mean}[op](stacked, axis=0).astype(arrays[0].dtype)
    if collective == "all_reduce":
        return [total] * n
    return np.split(total, n, axis=axis)


def _run(comm, collective, tensors, op, axis, root):
    if collective == "all_reduce":
        return comm.all_reduce(tensors, op)
    if collective == "all_gather":
        return comm.all_gather(tensors, axis=axis)
    if collective == "reduce_scatter":
        return comm.reduce_scatter(tensors, op, axis=axis)
    return comm.broadcast(tensors, root=root)


def _check_equal(results, expected, exact):
    for got, want in zip(results, expected):
        host = got.numpy()
        assert host.shape == want.shape and host.dtype == want.dtype
        if exact:
            np.testing.assert_array_equal(host, want)
        else:
            np.testing.assert_allclose(host, want, rtol=1e-5, atol=1e-5)


CASES = [  # (collective, dtype, op): integers and max/min are compared bit for bit
    ("all_reduce", np.float32, "sum"), ("all_reduce", np.int32, "sum"), ("all_reduce", np.float32, "max"),
    ("all_reduce", np.int64, "min"), ("all_reduce", np.float32, "avg"),
    ("all_gather", np.float32, None), ("reduce_scatter", np.int32, "sum"), ("reduce_scatter", np.float32, "max"),
    ("broadcast", np.float16, None),
]


def _check_cases(comm):
    for collective, dtype, op in CASES:
        arrays, tensors = _inputs(comm, (comm.size * 2, 3), dtype)
        axis, root = (1 if collective == "all_gather" else 0), comm.size - 1
        results = _run(comm, collective, tensors, op, axis, root)
        exact = np.dtype(dtype).kind != "f" or op in ("max", "min", None)
        _check_equal(results, _expected(collective, arrays, op, axis, root), exact)


@pytest.mark.parametrize("group", [["ascend:0", "ascend:1"], ["kunlun:0", "kunlun:1"], ["ascend:0", "kunlun:0", "cpu:0"], ["cpu:0"]],
                         ids=["ascend-hccs", "kunlun-xlink", "mixed-host", "cpu-alone"])
def test_every_collective_equals_numpy(group):
    _check_cases(hd.Communicator(group))


def test_every_collective_equals_numpy_on_four_cards(four_cards):
    for group in (["ascend:0", "ascend:1", "ascend:2", "ascend:3"], ["kunlun:3", "kunlun:2", "kunlun:1", "kunlun:0"]):
        comm = hd.Communicator(group)
        assert comm.route == "peer_link"
        _check_cases(comm)


def test_a_group_larger_than_the_mesh_goes_through_the_host(four_cards):
    comm = hd.Communicator([f"ascend:{i}" for i in range(9)])
    assert comm.route == "host" and "HCCS joins 8 cards, and a group of 9 leaves it" in comm.describe()
    arrays, tensors = _inputs(comm, (9,), np.int32)
    comm.all_reduce(tensors, "max")
    np.testing.assert_array_equal(tensors[8].numpy(), np.max(arrays, axis=0))


def test_every_collective_equals_numpy_without_a_peer_link(r200_pair):
    assert r200_pair.route == "host"
    _check_cases(r200_pair)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    collective=st.sampled_from(COLLECTIVES),
    dtype=st.sampled_from([np.float32, np.float16, np.int8, np.int32, np.int64, np.uint8]),
    op=st.sampled_from(["sum", "max", "min"]),
    shape=st.lists(st.integers(1, 5), min_size=1, max_size=3).map(lambda s: (2 * s[0], *s[1:])),
)
def test_shapes_and_dtypes_equal_numpy(collective, dtype, op, shape):
    comm = hd.Communicator(["ascend:0", "ascend:1"])
    arrays, tensors = _inputs(comm, shape, dtype, seed=len(shape))
    results = _run(comm, collective, tensors, op, 0, 1)
    exact = np.dtype(dtype).kind != "f" or op != "sum" or collective in ("all_gather", "broadcast")
    expected = _expected(collective, arrays, op, 0, 1)
    if not exact:  # numpy sums float16 pairs in float16 too, in rank order: same rounding
        expected = [np.add(*arrays)] * 2 if collective == "all_reduce" else np.split(np.add(*arrays), 2)
    _check_equal(results, expected, exact=True)


# -- simulated time -----------------------------------------------------------------------------------
def _elapsed_ms(comm, run):
    starts = [d.default_stream.record_event() for d in comm.devices]
    run()
    ends = [d.default_stream.record_event() for d in comm.devices]
    return [a.elapsed_time(b) for a, b in zip(starts, ends)]


def test_simulated_time_is_the_mesh_formula_on_every_rank():
    comm = hd.Communicator(["ascend:0", "ascend:1"])
    chip = find_chip_spec(hal.device("ascend:0").backend.chips_dir, "910B")
    _, tensors = _inputs(comm, (1024, 256), np.float32)
    nbytes = tensors[0].nbytes
    mesh = hd.collective_time("all_reduce", nbytes, 2, "full_mesh", chip.peer_link_bandwidth.value, chip.host_link_latency.value)
    # 2 steps of S/n over one 56 GB/s HCCS link, each after the link latency
    assert mesh.seconds == pytest.approx(2 * (chip.host_link_latency.value + nbytes / 2 / 56e9))
    for ms in _elapsed_ms(comm, lambda: comm.all_reduce(tensors)):
        assert ms == pytest.approx(mesh.seconds * 1e3)
    gather = hd.collective_time("all_gather", nbytes, 2, "full_mesh", 56e9, chip.host_link_latency.value)
    for ms in _elapsed_ms(comm, lambda: comm.all_gather(tensors)):
        assert ms == pytest.approx(gather.seconds * 1e3)


def test_a_ring_takes_the_ring_or_the_tree_formula(four_cards):
    comm = hd.Communicator([f"kunlun:{i}" for i in range(4)])
    assert "ring" in comm.describe() and "XPU Link" in comm.describe()
    chip = find_chip_spec(hal.device("kunlun:0").backend.chips_dir, "P800")
    bandwidth, latency = chip.peer_link_bandwidth.value, chip.host_link_latency.value
    for shape, algorithm in (((4,), "tree"), ((1 << 20,), "ring")):
        _, tensors = _inputs(comm, shape, np.float32)
        timing = hd.collective_time("all_reduce", tensors[0].nbytes, 4, "ring", bandwidth, latency)
        assert timing.algorithm == algorithm
        for ms in _elapsed_ms(comm, lambda: comm.all_reduce(tensors)):
            assert ms == pytest.approx(timing.seconds * 1e3)


def test_through_the_host_each_rank_pays_its_own_copies(r200_pair):
    chip = find_chip_spec(hal.device("kunlun:0").backend.chips_dir, "R200")
    _, tensors = _inputs(r200_pair, (256, 256), np.float32)
    cost = ChipCost(chip)
    expected = cost.device_to_host(tensors[0].nbytes) + cost.host_to_device(tensors[0].nbytes)
    for ms in _elapsed_ms(r200_pair, lambda: r200_pair.all_reduce(tensors)):
        assert ms == pytest.approx(expected * 1e3)
    assert "PCIe through the host" in r200_pair.describe() and "no peer link" in r200_pair.describe()


def test_the_collective_starts_when_the_last_rank_arrives():
    comm = hd.Communicator(["ascend:0", "ascend:1"])
    chip = find_chip_spec(hal.device("ascend:0").backend.chips_dir, "910B")
    _, tensors = _inputs(comm, (64, 64), np.float32)
    late = hal.tensor(np.zeros((1024, 1024), np.float32), device="ascend:0")
    comm.barrier()  # both clocks at the same point
    starts = [d.default_stream.record_event() for d in comm.devices]
    late.copy_(np.ones((1024, 1024), np.float32), non_blocking=True)  # rank 0 is busy with a 4 MiB upload first
    comm.all_reduce(tensors)
    ends = [d.default_stream.record_event() for d in comm.devices]
    upload = ChipCost(chip).host_to_device(late.nbytes)
    collective = hd.collective_time("all_reduce", tensors[0].nbytes, 2, "full_mesh", 56e9, chip.host_link_latency.value).seconds
    for start, end in zip(starts, ends):  # rank 1 waited for rank 0, as a card waits for the slowest peer
        assert start.elapsed_time(end) == pytest.approx((upload + collective) * 1e3)
    assert ends[0].driver.device_time_s() == pytest.approx(ends[1].driver.device_time_s())


def test_profiler_records_each_rank_as_a_collective():
    comm = hd.Communicator(["ascend:0", "ascend:1"])
    _, tensors = _inputs(comm, (8, 8), np.float32)
    with profiler.profile() as prof:
        comm.all_reduce(tensors)
        for t in tensors:
            t.numpy()
    slices = [e for e in prof.events if e.category == "collective"]
    assert sorted(e.device for e in slices) == ["ascend:0", "ascend:1"]
    assert all(e.name.startswith("all_reduce(sum)") and e.device_end > e.device_start for e in slices)
    mixed = hd.Communicator(["ascend:0", "cpu:0"])
    tensors = [hal.tensor(np.ones(4, np.float32), device=d) for d in mixed.devices]
    with profiler.profile() as prof:
        mixed.all_gather(tensors)[1].numpy()
        tensors[0].numpy()
    through_host = [e for e in prof.events if e.category in ("collective", "copy")]
    assert {(e.device, e.category) for e in through_host} >= {("ascend:0", "copy"), ("ascend:0", "collective"), ("cpu:0", "collective")}


# -- streams and events -------------------------------------------------------------------------------
def test_collectives_run_in_the_order_of_the_given_streams():
    comm = hd.Communicator(["ascend:0", "ascend:1"])
    streams = [d.stream() for d in comm.devices]
    tensors = [hal.empty((128,), "int32", device=d) for d in comm.devices]
    for i, (t, s) in enumerate(zip(tensors, streams)):  # queued, not yet done, when the collective is queued
        t.copy_(np.full(128, i + 1, np.int32), stream=s, non_blocking=True)
    comm.all_reduce(tensors, streams=streams)
    gathered = comm.all_gather(tensors, streams=streams)
    done = [s.record_event() for s in streams]
    for event, t, g in zip(done, tensors, gathered):
        event.synchronize()
        np.testing.assert_array_equal(t.numpy(stream=event.stream), np.full(128, 3, np.int32))
        np.testing.assert_array_equal(g.numpy(stream=event.stream), np.full(256, 3, np.int32))


# -- per-rank form -------------------------------------------------------------------------------------
def _per_rank(comm, work):
    with ThreadPoolExecutor(comm.size) as pool:
        futures = [pool.submit(work, comm.rank(r)) for r in range(comm.size)]
        return [f.result(timeout=30) for f in futures]


def test_per_rank_calls_equal_numpy(four_cards):
    comm = hd.Communicator([f"ascend:{i}" for i in range(4)], timeout=20)
    arrays, tensors = _inputs(comm, (8, 2), np.int32)

    def work(rank):
        mine = tensors[rank.rank]
        gathered = rank.all_gather(mine, axis=1)
        scattered = rank.reduce_scatter(mine, "max")
        rank.all_reduce(mine, "sum")
        rank.barrier()
        received = hal.empty((8, 2), "int32", device=rank.device)
        if rank.rank == 0:
            rank.send(mine, 3)
        if rank.rank == 3:
            rank.recv(received, 0)
        rank.broadcast(received, root=3)
        return gathered.numpy(), scattered.numpy(), mine.numpy(), received.numpy()

    total = np.sum(arrays, axis=0).astype(np.int32)
    for rank, (gathered, scattered, reduced, received) in enumerate(_per_rank(comm, work)):
        np.testing.assert_array_equal(gathered, np.concatenate(arrays, axis=1))
        np.testing.assert_array_equal(scattered, np.split(np.max(arrays, axis=0), 4)[rank])
        np.testing.assert_array_equal(reduced, total)
        np.testing.assert_array_equal(received, total)  # rank 0 sent its all-reduced tensor to rank 3, which broadcast it


def test_send_recv_over_the_link_takes_one_step():
    comm = hd.Communicator(["ascend:0", "ascend:1"], timeout=20)
    chip = find_chip_spec(hal.device("ascend:0").backend.chips_dir, "910B")
    payload = np.arange(1 << 16, dtype=np.float32)
    source = hal.tensor(payload, device="ascend:0")
    target = hal.empty(payload.shape, "float32", device="ascend:1")
    comm.barrier()
    before = hal.device("ascend:1").default_stream.record_event()
    _per_rank(comm, lambda rank: rank.send(source, 1) if rank.rank == 0 else rank.recv(target, 0))
    after = hal.device("ascend:1").default_stream.record_event()
    np.testing.assert_array_equal(target.numpy(), payload)
    step = hd.collective_time("send_recv", source.nbytes, 2, "full_mesh", 56e9, chip.host_link_latency.value).seconds
    assert before.elapsed_time(after) == pytest.approx(step * 1e3)


def test_send_recv_through_the_host_between_vendors():
    comm = hd.Communicator(["ascend:0", "cpu:0"], timeout=20)
    payload = np.arange(12, dtype=np.float32).reshape(3, 4)
    source = hal.tensor(payload, device="ascend:0")
    target = hal.empty((3, 4), "float32", device="cpu:0")
    _per_rank(comm, lambda rank: rank.send(source, 1) if rank.rank == 0 else rank.recv(target, 0))
    np.testing.assert_array_equal(target.numpy(), payload)


# -- bad input ------------------------------------------------------------------------------------------
def test_a_device_listed_twice_is_refused():
    with pytest.raises(hal.InvalidArgumentError, match=r"ascend:1 is listed twice.*ranks 1 and 2"):
        hd.Communicator(["ascend:0", "ascend:1", "ascend:1"])


@pytest.mark.parametrize("call, message", [
    (lambda c, t: c.all_reduce(t[:1]), "got 1 tensors for a group of 2 ranks"),
    (lambda c, t: c.all_reduce(t[::-1]), "rank 0's tensor is on ascend:1, but rank 0 is ascend:0"),
    (lambda c, t: c.all_reduce(t, "prod"), "unknown reduction op 'prod'"),
    (lambda c, t: c.all_reduce([hal.tensor(np.ones(3, np.int32), device=d) for d in c.devices], "avg"), "avg of int32"),
    (lambda c, t: c.reduce_scatter([hal.tensor(np.ones(3), device=d) for d in c.devices]), "does not split into 2"),
    (lambda c, t: c.all_gather(t, axis=2), "axis must be an int in -1..0"),
    (lambda c, t: c.all_reduce([t[0], hal.tensor(np.ones(4, np.float64), device="ascend:1")]), "rank 1 has shape"),
    (lambda c, t: c.broadcast(t, root=2), "rank must be an int in 0..1"),
    (lambda c, t: c.all_reduce(t, streams=[d.default_stream for d in c.devices[::-1]]), "rank 0's stream must be"),
], ids=["count", "device", "op", "avg-int", "split", "axis", "dtype", "root", "stream"])
def test_bad_input_is_an_invalid_argument_error(call, message):
    comm = hd.Communicator(["ascend:0", "ascend:1"])
    tensors = [hal.tensor(np.ones(4, np.float32), device=d) for d in comm.devices]
    with pytest.raises(hal.InvalidArgumentError, match=message):
        call(comm, tensors)


def test_mismatched_shapes_raise_on_every_rank():
    comm = hd.Communicator(["ascend:0", "ascend:1"], timeout=20)
    tensors = [hal.tensor(np.ones(4, np.float32), device="ascend:0"), hal.tensor(np.ones(5, np.float32), device="ascend:1")]

    def work(rank):
        with pytest.raises(hal.InvalidArgumentError, match=r"rank 1 has shape \(5,\)"):
            rank.all_reduce(tensors[rank.rank])
        return True

    assert _per_rank(comm, work) == [True, True]


def test_a_missing_rank_times_out_on_every_waiting_rank_naming_it():
    comm = hd.Communicator(["ascend:0", "ascend:1"], timeout=0.5)
    tensors = [hal.tensor(np.ones(4, np.float32), device=d) for d in comm.devices]
    with pytest.raises(hal.TimeoutError, match=r"rank 1 \(ascend:1\) did not arrive within 0.5 s"):
        comm.rank(0).all_reduce(tensors[0])
    with pytest.raises(hal.TimeoutError, match="arrived after the other ranks gave up"):
        comm.rank(1).all_reduce(tensors[1])
    # the ranks are in step again: the next collective works
    _per_rank(comm, lambda rank: rank.all_reduce(tensors[rank.rank]))
    np.testing.assert_array_equal(tensors[1].numpy(), np.full(4, 2, np.float32))


def test_a_lost_device_fails_the_collective_on_every_rank():
    comm = hd.Communicator(["ascend:0", "ascend:1"])
    tensors = [hal.tensor(np.ones(4, np.float32), device=d) for d in comm.devices]
    inject_fault("ascend:1", "device_lost")
    try:
        comm.all_reduce(tensors)
        for rank, device in enumerate(comm.devices):
            with pytest.raises(hal.DeviceLostError, match="ascend:1"):
                device.default_stream.synchronize()
        with pytest.raises(hal.DeviceLostError, match=r"rank 1 \(ascend:1\) was lost"):
            comm.all_reduce(tensors)  # known lost: refused at once
    finally:
        clear_faults("ascend:1")
    np.testing.assert_array_equal(tensors[0].numpy(), np.ones(4, np.float32))  # rank 0's data is unchanged


def test_barrier_waits_for_every_stream():
    comm = hd.Communicator(["ascend:0", "cpu:0"])
    release = threading.Event()
    hal.device("cpu:0").default_stream.launch_host_func(lambda: release.wait(5))
    with pytest.raises(hal.TimeoutError, match=r"rank 1 \(cpu:0\) did not reach the barrier within 0.2 s"):
        comm.barrier(timeout=0.2)
    release.set()
    comm.barrier(timeout=5)


def test_describe_says_link_and_why():
    assert "HCCS full mesh" in hd.Communicator(["ascend:0", "ascend:1"]).describe()
    mixed = hd.Communicator(["ascend:0", "kunlun:0", "cpu:0"]).describe()
    assert "PCIe through the host" in mixed and "mixes ascend, cpu, kunlun" in mixed


def test_algorithm_bandwidths_are_nccl_tests_definitions():
    # a ring's busbw is the link's bandwidth, a full mesh's (n-1) links', once latency is negligible
    for topology, links in (("ring", 1), ("full_mesh", 7)):
        for collective, size in (("all_reduce", 1 << 30), ("all_gather", (1 << 30) // 8), ("reduce_scatter", 1 << 30)):
            t = hd.collective_time(collective, size, 8, topology, 56e9, 0.0).seconds
            reported = size * 8 if collective == "all_gather" else size
            assert hd.busbw(collective, reported, t, 8) == pytest.approx(links * 56e9)
            assert hd.link_busbw(collective, topology, 56e9, 8) == pytest.approx(links * 56e9)
    assert hd.collective_time("all_reduce", 1 << 30, 1, "ring", 56e9, 1e-5).seconds == 0
