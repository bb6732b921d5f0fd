"""A Spark standalone cluster on this machine, from the pip-installed pyspark: one master and N workers on 127.0.0.1.

``forge cluster up|down|status`` (``make cluster-up`` / ``make cluster-down``) start and stop it; the tests start
one on free ports and kill a worker in the middle of a job. Each daemon runs in its own process group, so a
worker and the executors it launched can be killed together, as when a machine is lost. The cluster's state
(ports, process ids, logs, the workers' scratch folders) lives in one folder, ``.cluster/`` by default.

Written here rather than using Spark's ``sbin/start-*.sh``: the pip package does not ship ``start-master.sh`` or
``start-worker.sh``, only ``spark-class``, which is what those scripts call.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import closing
from dataclasses import asdict, dataclass, field
from pathlib import Path

HOST = "127.0.0.1"
STATE = "cluster.json"


class ClusterError(RuntimeError):
    """The cluster could not be started, found or stopped (the message says why and where the logs are)."""


def spark_class() -> str:
    """The ``spark-class`` launcher of the installed pyspark."""
    beside = Path(sys.executable).parent / "spark-class"
    if beside.exists():
        return str(beside)
    import pyspark

    return str(Path(pyspark.__file__).parent / "bin" / "spark-class")


def free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


@dataclass
class Cluster:
    folder: str = ".cluster"
    master_port: int = 7077
    ui_port: int = 8080
    workers: int = 2
    cores: int = 1  # per worker
    memory: str = "4g"  # per worker: what its executors may use
    pids: dict[str, int] = field(default_factory=dict)  # daemon name -> process (group) id

    @property
    def master_url(self) -> str:
        return f"spark://{HOST}:{self.master_port}"

    @property
    def ui_url(self) -> str:
        return f"http://{HOST}:{self.ui_port}"

    # ------------------------------------------------------------------------------------------- state

    def save(self) -> None:
        Path(self.folder).mkdir(parents=True, exist_ok=True)
        (Path(self.folder) / STATE).write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, folder: str = ".cluster") -> "Cluster":
        path = Path(folder) / STATE
        if not path.exists():
            raise ClusterError(f"{path}: no cluster started from this folder (run `forge cluster up`)")
        return cls(**json.loads(path.read_text()))

    # ------------------------------------------------------------------------------------------- up / down

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            SPARK_LOCAL_IP=HOST,
            PYSPARK_PYTHON=os.environ.get("PYSPARK_PYTHON", sys.executable),
            SPARK_LOG_DIR=str(Path(self.folder, "logs").resolve()),
            SPARK_WORKER_DIR=str(Path(self.folder, "work").resolve()),
        )
        env.pop("PYSPARK_GATEWAY_PORT", None)
        return env

    def _start(self, name: str, args: list[str]) -> None:
        logs = Path(self.folder, "logs")
        logs.mkdir(parents=True, exist_ok=True)
        with open(logs / f"{name}.log", "ab") as log:
            proc = subprocess.Popen(
                [spark_class(), *args],
                env=self._env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.pids[name] = proc.pid

    def up(self, timeout: float = 120.0) -> "Cluster":
        """Start the master and the workers; return once every worker has registered with the master."""
        if self.pids and any(_alive(p) for p in self.pids.values()):
            raise ClusterError(f"{self.folder}: a cluster is already running ({self.master_url}); `forge cluster down`")
        self.pids = {}
        self._start(
            "master",
            [
                "org.apache.spark.deploy.master.Master",
                "--host",
                HOST,
                "--port",
                str(self.master_port),
                "--webui-port",
                str(self.ui_port),
            ],
        )
        self.save()
        for i in range(self.workers):
            self._start(
                f"worker-{i}",
                [
                    "org.apache.spark.deploy.worker.Worker",
                    self.master_url,
                    "--host",
                    HOST,
                    "--cores",
                    str(self.cores),
                    "--memory",
                    self.memory,
                    "--webui-port",
                    "0",
                ],
            )
            self.save()
        self.wait_for_workers(self.workers, timeout)
        return self

    def down(self) -> None:
        """Stop every daemon of the cluster (and the executors and Python workers they started)."""
        for name, pid in sorted(self.pids.items(), key=lambda kv: kv[0] == "master"):  # workers first
            _kill_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        while any(_alive(p) for p in self.pids.values()) and time.monotonic() < deadline:
            time.sleep(0.2)
        for pid in self.pids.values():
            _kill_group(pid, signal.SIGKILL)
        self.pids = {}
        self.save()

    def kill_worker(self, i: int) -> None:
        """Kill worker ``i`` and its executors at once (SIGKILL to its process group): a lost machine."""
        pid = self.pids.pop(f"worker-{i}")
        _kill_group(pid, signal.SIGKILL)
        self.save()

    # ------------------------------------------------------------------------------------------- status

    def status(self) -> dict:
        """The master's own view (its JSON endpoint): workers and applications."""
        with urllib.request.urlopen(f"{self.ui_url}/json/", timeout=5) as r:
            return json.loads(r.read())

    def alive_workers(self) -> int:
        try:
            return sum(1 for w in self.status().get("workers", []) if w.get("state") == "ALIVE")
        except OSError:
            return 0

    def wait_for_workers(self, n: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.alive_workers() < n:
            dead = [name for name, pid in self.pids.items() if not _alive(pid)]
            if dead or time.monotonic() > deadline:
                self.down()
                why = f"{', '.join(dead)} exited" if dead else f"{n} workers not registered within {timeout:.0f} s"
                raise ClusterError(f"cluster did not start: {why}; logs in {Path(self.folder, 'logs')}")
            time.sleep(0.5)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of this process counts as gone
        waited, _ = os.waitpid(pid, os.WNOHANG)
        return waited == 0
    except ChildProcessError:
        return True


def _kill_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def main(argv: list[str]) -> int:
    """``forge cluster up|down|status [--folder F] [--workers N] [--cores C] [--memory M] [--port P]
    [--ui-port U]``."""
    import argparse

    p = argparse.ArgumentParser(prog="forge cluster", description="A Spark standalone cluster on 127.0.0.1.")
    p.add_argument(
        "action",
        choices=["up", "down", "status"],
        help="up: start a master and workers (or the missing ones); down: stop them; status: show them",
    )
    p.add_argument("--folder", default=".cluster", help="state, logs and worker scratch (default .cluster)")
    p.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    p.add_argument("--cores", type=int, default=1, help="cores per worker (default 1)")
    p.add_argument("--memory", default="4g", help="memory per worker for its executors (default 4g)")
    p.add_argument("--port", type=int, default=7077, help="the master's port (default 7077)")
    p.add_argument("--ui-port", type=int, default=8080, help="the master's web UI port (default 8080)")
    a = p.parse_args(argv)
    try:
        if a.action == "up":
            c = Cluster(a.folder, a.port, a.ui_port, a.workers, a.cores, a.memory)
            if Path(a.folder, STATE).exists():
                c.pids = Cluster.load(a.folder).pids
            c.up()
            print(
                f"master {c.master_url} (UI {c.ui_url}), {c.workers} workers × {c.cores} core(s); "
                f"logs in {Path(a.folder, 'logs')}\nrun: forge run --master {c.master_url}"
            )
        elif a.action == "down":
            Cluster.load(a.folder).down()
            print("cluster stopped")
        else:
            c = Cluster.load(a.folder)
            print(json.dumps({"master": c.master_url, "alive_workers": c.alive_workers(), "pids": c.pids}, indent=2))
    except ClusterError as err:
        print(f"forge cluster: {err}", file=sys.stderr)
        return 1
    return 0
