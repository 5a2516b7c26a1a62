"""hal on a two-node Ray cluster on loopback (two `ray start`s on this machine, each declaring
one simulated chip): a partition lands on the node that declares its chip, and `hal conformance
--ray` runs each backend's suite there and merges one report. Every process of the cluster ends
with the module, whatever happens. The drivers run in fresh processes: Ray 2.60 cancels the
actors of a process that joins a second cluster after leaving a first (as test_ray_session's
local cluster would be)."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from ..conftest import run_python

pytest.importorskip("ray")
from hal.testing.ray_cluster import RAY_ENV, LoopbackCluster

HEAD, WORKER = {"hal_sim_ascend": 1}, {"hal_sim_kunlun": 1}


@pytest.fixture(scope="module")
def cluster(request):
    found = LoopbackCluster([HEAD, WORKER])
    request.addfinalizer(found.stop)  # also when start or a test fails
    return found.start()


def test_each_partition_runs_on_the_node_that_declares_its_chip(cluster):
    done = run_python(f"""
import json, numpy as np, ray, hal
from hal.distributed.ray import RaySession
from hal.testing import chain
ray.init(address="{cluster.address}", log_to_driver=False)
devices = ["ascend:0", "kunlun:0"]
feeds = {{"x": np.random.default_rng(1).standard_normal((1, 8)).astype(np.float32)}}
with RaySession(chain(110), devices=devices) as remote:
    same = np.array_equal(remote.run(None, feeds)[0], hal.InferenceSession(chain(110), devices=devices).run(None, feeds)[0])
    placed = {{device: where.node_id for device, where in remote.placements.items()}}
offering = {{name: n["NodeID"] for n in ray.nodes() if n["Alive"] for name in n["Resources"] if name.startswith("hal_sim_")}}
print(json.dumps({{"same": same, "placed": placed, "offering": offering}}))
""", env=RAY_ENV, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["same"]  # the outputs equal a local session's, bit for bit
    assert found["placed"] == {"ascend:0": found["offering"]["hal_sim_ascend"], "kunlun:0": found["offering"]["hal_sim_kunlun"]}
    assert found["placed"]["ascend:0"] != found["placed"]["kunlun:0"]


def test_conformance_fans_out_over_the_nodes_and_merges_one_report(cluster, tmp_path):
    command = [sys.executable, "-m", "hal.cli", "conformance", "ascend", "kunlun", "--suite", "api",
               "-k", "test_allocate_returns_buffer_of_requested_size", "--ray", cluster.address, "--report", str(tmp_path)]
    done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=300, env={**os.environ, **RAY_ENV})
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert {(r["backend"], r["status"]) for r in report["api_results"]} == {("ascend", "passed"), ("kunlun", "passed")}
    # each node declares one chip: the two suites ran on two nodes
    nodes = dict(re.findall(r"(\w+) \(API suite\) on \S+ \(node (\w+)\)", report["environment"]["ray"]))
    assert set(nodes) == {"ascend", "kunlun"} and nodes["ascend"] != nodes["kunlun"]
    assert (tmp_path / "report.html").is_file() and (tmp_path / "report.md").is_file()
