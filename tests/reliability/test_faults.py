"""Injected faults on simulated chips (hal.sim.faults): HAL_SIM_FAULTS arms them per device, each
surfaces at synchronize on the stream whose work failed, and a lost device shows as lost in
hal.devices() until it is reset. The per-backend API checks are in hal/conformance/api/test_errors.py."""
from __future__ import annotations

import numpy as np
import pytest

import hal
from hal import sim
from hal.sim.faults import faults_from_env
from tests.conftest import run_python


@pytest.fixture
def ascend():
    device = hal.device("ascend:0")
    yield device
    sim.clear_faults(device)


def test_hal_sim_faults_arms_each_named_device(monkeypatch):
    monkeypatch.setenv("HAL_SIM_FAULTS", " kunlun:0=device_lost@3, ascend:1=kernel_error@10,ascend:1=out_of_memory@0 ")
    assert faults_from_env("kunlun:0") == [("device_lost", 3)]
    assert faults_from_env("ascend:1") == [("kernel_error", 10), ("out_of_memory", 0)]
    assert faults_from_env("ascend:0") == []


@pytest.mark.parametrize("entry", [
    "ascend:0=kernel_error", "ascend:0=melt@2", "ascend=kernel_error@1", "ascend:0:kernel_error@1",
    "ascend:0=kernel_error@-1", "ascend:0=kernel_error@x",
])
def test_bad_hal_sim_faults_names_the_entry_and_the_form(monkeypatch, entry):
    monkeypatch.setenv("HAL_SIM_FAULTS", f"kunlun:0=device_lost@3,{entry}")
    with pytest.raises(hal.BackendError, match="ascend:0=kernel_error@3") as caught:
        faults_from_env("kunlun:0")  # a typo in another device's entry is reported too
    assert repr(entry) in str(caught.value)


def test_hal_sim_faults_is_read_when_a_device_is_opened():
    # a fresh process: the registry opens devices once, at their first use
    done = run_python(
        "import numpy as np, hal\n"
        "d = hal.device('kunlun:1')\n"
        "t = hal.tensor(np.ones(4, np.float32), device=d)\n"  # allocation 0, copy_h2d: op 0
        "try:\n"
        "    t.numpy()\n"  # copy_d2h: op 1
        "except hal.DeviceLostError as e:\n"
        "    print('lost:', e)\n"
        "print([x.name for x in hal.devices() if x.lost])\n",
        env={"HAL_SIM_FAULTS": "kunlun:1=device_lost@1", "HAL_BACKENDS": "cpu,kunlun"},
    )
    assert done.returncode == 0, done.stderr
    assert "lost: kunlun:1" in done.stdout and "copy_d2h" in done.stdout
    assert "['kunlun:1']" in done.stdout


def test_a_bad_hal_sim_faults_fails_the_first_use_of_a_device(fresh_registry):
    fresh_registry.setenv("HAL_SIM_FAULTS", "ascend:0=kernel-error@1")
    with pytest.raises(hal.BackendError, match="HAL_SIM_FAULTS entry 'ascend:0=kernel-error@1'"):
        hal.empty((2,), "float32", device="ascend:0")


def test_a_kernel_error_surfaces_on_its_own_stream_only(ascend):
    failing, other = ascend.stream(), ascend.stream()
    ran = []
    sim.inject_fault(ascend, "kernel_error", after_ops=1)
    failing.launch_host_func(lambda: ran.append("first"))
    failing.launch_host_func(lambda: ran.append("fails"))  # the second op on the device: injected
    failing.launch_host_func(lambda: ran.append("skipped"))
    failing.record_event().driver.wait_done()  # the failure happened, and is held
    other.launch_host_func(lambda: ran.append("other"))
    other.synchronize()  # the other stream of the same device is unaffected
    with pytest.raises(hal.DeviceError, match="injected kernel error") as caught:
        failing.synchronize()
    assert "1 later operation(s) on the stream were skipped" in str(caught.value)
    assert ran == ["first", "other"]
    failing.synchronize()  # reported once; the stream works again
    failing.launch_host_func(lambda: ran.append("again"))
    failing.synchronize()
    assert ran[-1] == "again"


def test_a_lost_device_fails_every_stream_until_reset(ascend):
    first, second = ascend.stream(), ascend.stream()
    t = hal.tensor(np.arange(4, dtype=np.float32), device=ascend)
    assert (ascend.lost, ascend.status) == (False, "ok")
    sim.inject_fault(ascend, "device_lost")
    first.launch_host_func(lambda: None)
    with pytest.raises(hal.DeviceLostError, match="ascend:0 was lost"):
        first.synchronize()
    second.launch_host_func(lambda: None)
    with pytest.raises(hal.DeviceLostError):
        second.synchronize()
    with pytest.raises(hal.DeviceLostError, match="allocation of 64 bytes refused"):
        ascend.allocate(64)
    listed = {d.name: d for d in hal.devices()}
    assert listed["ascend:0"].lost and listed["ascend:0"].status == "lost"  # still listed, marked
    assert "(lost)" in repr(listed["ascend:0"])
    assert not listed["ascend:1"].lost
    ascend.reset()
    assert not ascend.lost and ascend.status == "ok"
    t.copy_(np.full(4, 2, np.float32))
    assert t.numpy().tolist() == [2, 2, 2, 2]


def test_clear_faults_recovers_a_lost_device(ascend):
    sim.inject_fault(ascend, "device_lost")
    with pytest.raises(hal.DeviceLostError):
        hal.tensor(np.ones(2, np.float32), device=ascend).numpy()
    assert ascend.lost
    sim.clear_faults(ascend)
    assert not ascend.lost
    assert hal.tensor(np.ones(2, np.float32), device=ascend).numpy().tolist() == [1, 1]


def test_out_of_memory_hits_the_nth_allocation_once(ascend):
    kept = [ascend.allocate(16)]
    sim.inject_fault(ascend, "out_of_memory", after_ops=2)
    kept += [ascend.allocate(16), ascend.allocate(16)]
    with pytest.raises(hal.OutOfMemoryError, match="ascend:0: out of memory \\(injected fault\\): asked 32 bytes"):
        ascend.allocate(32)
    kept.append(ascend.allocate(32))  # once: the next allocation works
    assert len(kept) == 4


def test_faults_only_go_into_simulated_devices():
    with pytest.raises(hal.InvalidArgumentError, match="not a simulated device"):
        sim.inject_fault("cpu", "kernel_error")
