"""A real Spark standalone cluster (a master and two one-core workers on 127.0.0.1, started from the installed pyspark
by corpus.spark.standalone): `forge run` and `spark-submit` against it, byte-identical shards on local[1], local[2]
and the cluster, a worker killed in the middle of a job, and a driver killed in the middle of the pipeline."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from corpus.io import files
from corpus.spark.standalone import Cluster, free_port
from tests.e2e.conftest import STAGES, _config, baseline_digests, config_yaml, shard_digests

pytestmark = pytest.mark.spark


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(
        folder=str(tmp_path_factory.mktemp("cluster")),
        master_port=free_port(),
        ui_port=free_port(),
        workers=2,
        cores=1,
        memory="3g",
    ).up()
    yield c
    c.down()


def _env() -> dict[str, str]:
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "SPARK_LOCAL_IP": "127.0.0.1"}
    env.pop("PYSPARK_GATEWAY_PORT", None)
    return env


def _forge_run(config: Path, master: str, **popen) -> subprocess.Popen:
    """`forge run` in its own process group (so the test can kill the driver and its JVM together)."""
    return subprocess.Popen(
        [sys.executable, "-m", "corpus", "run", "--config", str(config), "--master", master],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        **popen,
    )


def _finish(proc: subprocess.Popen, timeout: float = 900) -> str:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-4000:]
    return out


def _wait_for(predicate, proc: subprocess.Popen, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert proc.poll() is None, f"the run ended before the moment to interrupt it: {proc.stdout.read()[-3000:]}"
        assert time.monotonic() < deadline, "timed out waiting for the moment to interrupt the run"
        time.sleep(0.1)


def _in_flight(out: Path, stage: str) -> bool:
    """``stage`` is being written: its temporary folder exists and holds some data."""
    return any(any(Path(t).rglob("*.parquet")) for t in files.temporary_siblings(str(out / stage)))


def test_cluster_and_local_runs_give_byte_identical_shards(cluster, run_out, sample_dir, tmp_path):
    """The same config on local[1], on the standalone cluster and (the shared run) local[2]: the same shard bytes."""
    expected = baseline_digests(run_out)
    for name, master in (("local1", "local[1]"), ("cluster", cluster.master_url)):
        out = tmp_path / name
        _finish(_forge_run(config_yaml(_config(sample_dir, out), tmp_path / f"{name}.yaml"), master))
        assert shard_digests(out) == expected, name


def test_spark_submit_to_the_cluster(cluster, sample_dir, tmp_path):
    """spark-submit with the project packaged as a zip on --py-files (executors import the package from it)."""
    import shutil

    import corpus

    spark_submit = Path(sys.executable).parent / "spark-submit"
    package = shutil.make_archive(str(tmp_path / "corpus"), "zip", Path(corpus.__file__).parent.parent, "corpus")
    out = tmp_path / "submitted"
    proc = subprocess.run(
        [
            str(spark_submit),
            "--master",
            cluster.master_url,
            "--py-files",
            package,
            "jobs/ingest-text.py",
            "--input",
            str(sample_dir / "text"),
            "--output",
            str(out),
            "--source",
            "submitted",
        ],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    import pyarrow.parquet as pq

    docs = pq.read_table(out / "data")
    assert docs.num_rows > 1000 and set(docs.column("source").to_pylist()) == {"submitted"}


def test_worker_killed_mid_job_the_run_completes_with_identical_output(cluster, run_out, sample_dir, tmp_path):
    """Kill one of the two workers (and its executor) while dedup is writing: Spark reruns the lost tasks on the
    other worker, and the shards are the undisturbed run's, byte for byte."""
    out = tmp_path / "out"
    proc = _forge_run(config_yaml(_config(sample_dir, out), tmp_path / "run.yaml"), cluster.master_url)
    try:
        _wait_for(lambda: _in_flight(out, "dedup"), proc)
        cluster.kill_worker(0)
        log = _finish(proc)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert "Lost executor" in log or "lost worker" in log.lower(), log[-3000:]
    assert cluster.alive_workers() == 1
    assert shard_digests(out) == baseline_digests(run_out)


def test_driver_killed_mid_pipeline_rerun_completes_identically(run_out, sample_dir, tmp_path):
    """Kill the driver (and its JVM) while dedup is writing: nothing of dedup is committed, and a rerun skips the
    committed stages, removes the unfinished write and gives the undisturbed run's shards."""
    out = tmp_path / "out"
    config = config_yaml(_config(sample_dir, out), tmp_path / "run.yaml")
    proc = _forge_run(config, "local[2]")
    try:
        _wait_for(lambda: _in_flight(out, "dedup"), proc)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    committed = [s for s in STAGES if (out / s / "_SUCCESS").exists()]
    assert committed == STAGES[: STAGES.index("dedup")]
    assert not (out / "dedup").exists() and list(out.glob("_tmp-dedup-*"))
    log = _finish(_forge_run(config, "local[2]"))
    assert log.count("skipped: committed") == len(committed)
    assert not list(out.glob("_tmp-*"))
    assert shard_digests(out) == baseline_digests(run_out)
