"""A Ray cluster of several nodes on this machine, on loopback, for tests and benchmarks that need
more than one node: each node is its own `ray start` (the head, then one per other node), each
declaring the resources it is given, and stop() ends exactly the processes this cluster started.

    with LoopbackCluster([{"hal_sim_ascend": 1}, {"hal_sim_kunlun": 1}]) as cluster:
        ray.init(address=cluster.address)
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["LoopbackCluster", "RAY_ENV"]

RAY_ENV = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
"""The environment of every process of the cluster and of those joining it: Ray's token
authentication would need its token handed to each node; a throwaway loopback cluster does
without. A driver joining the cluster needs the same (set it before ray.init)."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LoopbackCluster:
    """nodes: the custom resources of each node, the head first; num_cpus: CPUs each node offers;
    object_store_bytes: each node's shared-memory store (Ray's default takes 30% of the RAM)."""

    def __init__(self, nodes: Sequence[Mapping[str, float]], num_cpus: int = 1, object_store_bytes: int = 100 * 2**20,
                 timeout_s: float = 180):
        if not nodes:
            raise ValueError("a cluster needs at least its head node")
        self.nodes = [dict(n) for n in nodes]
        self.num_cpus = num_cpus
        self.object_store_bytes = object_store_bytes
        self.timeout_s = timeout_s
        self.port = 0
        self.temp_dir = ""

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> LoopbackCluster:
        # a short folder: Ray's unix sockets live under it, and socket paths are limited to ~100 bytes
        self.temp_dir = tempfile.mkdtemp(prefix="hal_ray_", dir="/tmp")
        self.port = _free_port()
        common = [f"--num-cpus={self.num_cpus}", f"--object-store-memory={self.object_store_bytes}",
                  "--node-ip-address=127.0.0.1", f"--temp-dir={self.temp_dir}", "--disable-usage-stats"]
        try:
            for i, resources in enumerate(self.nodes):
                role = ["--head", f"--port={self.port}", "--include-dashboard=false",
                        f"--ray-client-server-port={_free_port()}"] if i == 0 else [f"--address={self.address}"]
                self._ray_start([*role, f"--resources={json.dumps(resources)}", *common])
        except BaseException:
            self.stop()
            raise
        return self

    def _ray_start(self, args: list[str]) -> None:
        ray_cli = Path(sys.executable).with_name("ray")
        command = [str(ray_cli) if ray_cli.exists() else "ray", "start", *args]
        done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=self.timeout_s, env={**os.environ, **RAY_ENV})
        if done.returncode != 0:
            raise RuntimeError(f"`{' '.join(command)}` failed ({done.returncode}): {(done.stdout + done.stderr)[-2000:]}")

    def processes(self) -> list:
        """This cluster's processes: those naming its folder or port, and their children (Ray's
        agents rename themselves, "ray::DashboardAgent", and keep no such argument)."""
        import psutil  # a dependency of ray

        found: dict[int, psutil.Process] = {}
        marks = (self.temp_dir, f":{self.port}") if self.port else (self.temp_dir,)
        for process in psutil.process_iter(["cmdline"]):
            command = " ".join(process.info["cmdline"] or ())
            if self.temp_dir and any(mark in command for mark in marks):
                found[process.pid] = process
        for process in list(found.values()):
            try:
                found.update((child.pid, child) for child in process.children(recursive=True))
            except psutil.NoSuchProcess:
                pass
        return list(found.values())

    def stop(self) -> None:
        """Ends this cluster's processes, and only them (`ray stop` would end every Ray cluster on
        the machine), and removes its folder."""
        import psutil

        processes = [p for p in self.processes() if p.pid != os.getpid()]
        for process in processes:
            try:
                process.terminate()
            except psutil.NoSuchProcess:
                pass
        _, alive = psutil.wait_procs(processes, timeout=5)
        for process in alive:
            try:
                process.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(alive, timeout=5)
        if self.temp_dir:
            shutil.rmtree(self.temp_dir, ignore_errors=True)

    def __enter__(self) -> LoopbackCluster:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
