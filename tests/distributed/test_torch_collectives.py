"""hal.distributed.init_process_group: real torch.distributed (gloo, on torch's CPU device) in two
processes, one per rank, as a program on NCCL or HCCL would run; results equal numpy's, a mismatch is
an InvalidArgumentError on both ranks, and a rank that does not come is a hal.TimeoutError."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import REPO

pytest.importorskip("torch")

RANK_PROGRAM = r'''
import json, sys, time
import numpy as np
import hal, hal.distributed as hd

rank = int(sys.argv[1])
comm = hd.init_process_group("torch.cpu:0", rank=rank, world_size=2, init_method=sys.argv[2], timeout=1)
data = [np.arange(12, dtype=np.float32).reshape(4, 3) * (r + 1) + r for r in range(2)]
mine = lambda: hal.tensor(data[rank], device="torch.cpu:0")
out = {}
t = mine(); comm.all_reduce(t, "sum"); out["sum"] = t.numpy().tolist()
t = mine(); comm.all_reduce(t, "max"); out["max"] = t.numpy().tolist()
t = mine(); comm.all_reduce(t, "avg"); out["avg"] = t.numpy().tolist()
out["gather"] = comm.all_gather(mine(), axis=1).numpy().tolist()
out["scatter"] = comm.reduce_scatter(mine(), "min", axis=0).numpy().tolist()
t = mine(); comm.broadcast(t, root=1); out["broadcast"] = t.numpy().tolist()
t = hal.empty((4, 3), "float32", device="torch.cpu:0")
if rank == 0:
    comm.send(mine(), 1)
else:
    comm.recv(t, 0); out["recv"] = t.numpy().tolist()
comm.barrier()
try:
    comm.all_reduce(hal.tensor(np.ones(3 + rank, np.int32), device="torch.cpu:0"))
except hal.InvalidArgumentError as exc:
    out["mismatch"] = str(exc)
if rank == 1:
    time.sleep(2)  # rank 1 does not come to the last all_reduce
else:
    try:
        comm.all_reduce(mine())
    except hal.TimeoutError as exc:
        out["timeout"] = str(exc)
print(json.dumps(out), flush=True)
# After a collective timed out, gloo's worker thread may still be waiting when the interpreter tears
# torch down, and that teardown then aborts ("terminate called without an active exception"; seen
# once in three CI runs): the results are out, so the rank leaves without the teardown.
import os; os._exit(0)
'''


def test_two_processes_over_gloo_equal_numpy(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    init = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    ranks = [subprocess.Popen([sys.executable, "-c", RANK_PROGRAM, str(r), init], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for r in range(2)]
    outputs = []
    for proc in ranks:
        stdout, stderr = proc.communicate(timeout=90)
        assert proc.returncode == 0, stderr[-3000:]
        outputs.append(json.loads(stdout.strip().splitlines()[-1]))
    data = [np.arange(12, dtype=np.float32).reshape(4, 3) * (r + 1) + r for r in range(2)]
    for rank, out in enumerate(outputs):
        np.testing.assert_allclose(out["sum"], data[0] + data[1])
        np.testing.assert_array_equal(out["max"], np.maximum(*data))
        np.testing.assert_allclose(out["avg"], (data[0] + data[1]) / 2)
        np.testing.assert_array_equal(out["gather"], np.concatenate(data, axis=1))
        np.testing.assert_array_equal(out["scatter"], np.split(np.minimum(*data), 2)[rank])
        np.testing.assert_array_equal(out["broadcast"], data[1])
        assert "rank 1 has shape (4,) int32 but rank 0 has (3,) int32" in out["mismatch"]
    np.testing.assert_array_equal(outputs[1]["recv"], data[0])
    assert "rank 1 did not arrive within 1 s" in outputs[0]["timeout"]
