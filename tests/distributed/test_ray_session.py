"""hal.distributed.ray on a local Ray cluster started here: a plan's partitions on Ray actors give
what a local session gives; a device no node offers, or one whose every unit is taken, is a hal
error after a bounded wait; an actor that dies is a DeviceLostError naming device, partition and
node."""
from __future__ import annotations

import dataclasses
import os
import signal
import sys

import numpy as np
import pytest

import hal
from hal.device import Device
from hal.distributed.ray import RaySession, ray_options, resource_for
from hal.distributed.ray.cluster import require_ray
from hal.testing import chain

ray = pytest.importorskip("ray")

# chain(110) holds an Einsum (no simulated Ascend has one) near node 50 and an Erf (no Kunlun has
# one) near node 100, so both device lists below cut it into three partitions on two devices
MODEL_NODES = 110


@pytest.fixture(scope="module")
def local_cluster():
    ray.init(num_cpus=2, resources={"hal_sim_ascend": 2, "hal_sim_kunlun": 1}, include_dashboard=False,
             log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def feeds():
    return {"x": np.random.default_rng(0).standard_normal((1, 8)).astype(np.float32)}


def test_resource_names_follow_rays_accelerators_and_declared_simulators():
    assert resource_for("cpu") == "CPU"
    assert resource_for("ascend:0") == "hal_sim_ascend"  # a simulator claims no real card's NPU
    assert resource_for("kunlun:1") == "hal_sim_kunlun"
    simulated = hal.device("ascend:0")
    real = Device(simulated.backend, dataclasses.replace(simulated.spec, simulated=False))
    assert resource_for(real) == "NPU"  # as Ray's accelerator manager names Ascend
    real_kunlun = hal.device("kunlun:0")
    assert resource_for(Device(real_kunlun.backend, dataclasses.replace(real_kunlun.spec, simulated=False))) == "hal_kunlun"
    assert ray_options({"CPU": 1}) == {"num_cpus": 1}
    assert ray_options({"GPU": 1}) == {"num_cpus": 0, "num_gpus": 1}
    assert ray_options({"hal_sim_ascend": 1}, num_cpus=1) == {"num_cpus": 1, "resources": {"hal_sim_ascend": 1}}


def test_missing_ray_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(hal.MissingDependencyError, match=r'hal\[ray\]'):
        require_ray("RaySession")


def test_partitions_on_actors_give_the_local_sessions_results(local_cluster, feeds):
    devices = ["ascend:0", "kunlun:0"]
    local = hal.InferenceSession(chain(MODEL_NODES), devices=devices)
    with RaySession(chain(MODEL_NODES), devices=devices) as remote:
        assert remote.plan.to_dict() == local.plan.to_dict()
        assert len(remote.plan.partitions) == 3
        assert set(remote.placements) == {p.device for p in remote.plan.partitions}
        for _ in range(2):  # the second run reuses the compiled partitions
            got = remote.run(None, feeds)
            np.testing.assert_array_equal(got[0], local.run(None, feeds)[0])
        got[0][0, 0] = 1.0  # writable, as onnxruntime's outputs are


def test_a_resource_no_node_offers_is_a_clear_error_at_once(local_cluster):
    with pytest.raises(hal.DeviceNotFoundError, match="hal_sim_mlu.*ray start"):
        RaySession(chain(12), devices=["mlu:0"], start_timeout_s=600)


def test_a_device_whose_every_unit_is_taken_times_out(local_cluster, feeds):
    with RaySession(chain(12), devices=["kunlun:0"]) as holder:
        with pytest.raises(hal.TimeoutError, match="kunlun:0.*hal_sim_kunlun"):
            RaySession(chain(12), devices=["kunlun:0"], start_timeout_s=1)
        assert holder.run(None, feeds)[0].shape == (1, 8)  # the holder is untouched


def test_an_actor_that_dies_is_a_lost_device(local_cluster, feeds):
    devices = ["kunlun:0", "cpu"]  # the Erf falls back to a CPU actor, between two Kunlun partitions
    session = RaySession(chain(MODEL_NODES), devices=devices)
    expected = hal.InferenceSession(chain(MODEL_NODES), devices=devices).run(None, feeds)
    np.testing.assert_array_equal(session.run(None, feeds)[0], expected[0])
    kunlun = session.placements["kunlun:0"]
    os.kill(kunlun.pid, signal.SIGKILL)  # a crash: the process ends without a word
    partition = next(p.name for p in session.plan.partitions if p.device == "kunlun:0")
    with pytest.raises(hal.DeviceLostError, match=f"kunlun:0 on Ray node {kunlun.ip}.*{partition}"):
        session.run(None, feeds)
    with pytest.raises(hal.DeviceLostError, match="kunlun:0"):  # and every later run
        session.run(None, feeds)
    session.close()


def test_conformance_on_a_cluster_without_the_chip_is_a_clear_error_at_once(local_cluster):
    from hal.conformance.ray_runner import run_conformance_on_ray
    from hal.conformance.runner import RunOptions

    with pytest.raises(hal.DeviceNotFoundError, match="mlu.*hal_sim_mlu"):
        run_conformance_on_ray(RunOptions(backends=["ascend", "mlu"], suite="api"), "auto")
