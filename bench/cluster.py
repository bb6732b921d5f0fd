"""The standalone-cluster benchmark (issue #8), run by bench/run.py (`--only cluster`).

Data: the default run (`configs/default.yaml`: the sample docs site crawled on 127.0.0.1, pydoc pages, package
READMEs, general text, the standard library's code, BFCL v4, every botocore and Google API spec), each run into
a fresh folder, `forge run` in its own process as a user would start it.

overhead
    The run on a standalone cluster (master + two workers of one core each, started by corpus.spark.standalone;
    executors get 3 GB) against the same run on local[2] (the same two cores in one JVM). Reported: wall seconds
    of each, the ratio cluster / local[2], per-stage seconds, and whether the shards are identical (byte for byte,
    and apart from the crawl's provenance: see CRAWL_PROVENANCE).
worker kill
    The same cluster run, with worker 0 and its executor killed (SIGKILL to its process group) as soon as dedup
    starts writing, and no replacement: the run finishes on the other worker. Reported: wall seconds, the ratio
    to the undisturbed cluster run, and whether the shards are identical to it (both ways).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = HERE / "work" / "cluster"
sys.path.insert(0, str(ROOT))

from corpus.io import files  # noqa: E402
from corpus.spark.standalone import Cluster, free_port  # noqa: E402


def _config(executor_memory: str) -> Path:
    data = yaml.safe_load((ROOT / "configs" / "default.yaml").read_text())
    spark = data.setdefault("spark", {})
    spark.update(progress=False, log_level="ERROR")
    spark.setdefault("conf", {})["spark.executor.memory"] = executor_memory
    path = WORK / "default.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


# Each run crawls the sample site afresh, and a fetch records its own provenance: the WARC-Date, the WARC record id
# and where the record sits (the run's own WARC file and offset), in `location` for pages and in `spec_file` for API
# pages found by the crawl. Two crawling runs therefore differ in exactly these metadata keys, and the shards are
# compared twice: byte for byte, and with these keys left out of every row (everything else must match).
CRAWL_PROVENANCE = ("fetch_date", "warc_record_id", "location", "spec_file")


def _digests(out: Path) -> dict:
    return {
        m.parent.name: {s["path"]: s["sha256"] for s in json.loads(m.read_text())["shards"]}
        for m in sorted((out / "write").glob("*/manifest.json"))
    }


def _content_digests(out: Path) -> dict:
    """Per shard, a hash of its rows (in order) with CRAWL_PROVENANCE left out of the metadata."""
    import hashlib

    import pyarrow.parquet as pq

    result = {}
    for shard in sorted((out / "write").glob("*/*.parquet")):
        h = hashlib.sha256()
        for batch in pq.ParquetFile(shard).iter_batches(batch_size=8192):
            for row in batch.to_pylist():
                meta = json.loads(row["metadata"] or "{}")
                row["metadata"] = {k: v for k, v in meta.items() if k not in CRAWL_PROVENANCE}
                h.update(json.dumps(row, sort_keys=True, default=str).encode())
        result[str(shard.relative_to(out))] = h.hexdigest()
    return result


def _in_flight(out: Path, stage: str) -> bool:
    """``stage`` is being written: its temporary folder exists and holds some data."""
    return any(any(Path(t).rglob("*.parquet")) for t in files.temporary_siblings(str(out / stage)))


def _run(name: str, master: str, config: Path, on_stage=None) -> dict:
    """`forge run` into WORK/name; ``on_stage=(stage, action)`` calls action() once ``stage`` is being written."""
    from run import stage_times

    out = WORK / name
    shutil.rmtree(out, ignore_errors=True)
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "SPARK_LOCAL_IP": "127.0.0.1"}
    log = open(WORK / f"{name}.log", "w")
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "corpus", "run", "--config", str(config), "--master", master, "--output", str(out)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    acted_at = None
    try:
        if on_stage:
            stage, action = on_stage
            while not _in_flight(out, stage):
                if proc.poll() is not None:
                    raise RuntimeError(f"{name}: the run ended before {stage} started; see {log.name}")
                time.sleep(0.1)
            acted_at = time.perf_counter() - t0
            action()
        proc.wait(timeout=3600)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{name}: forge run failed ({proc.returncode}); see {log.name}")
    result = {
        "master": master,
        "wall_seconds": round(wall, 1),
        "stages": {k: v["seconds"] for k, v in stage_times(out).items()},
    }
    if acted_at is not None:
        result["killed_at_seconds"] = round(acted_at, 1)
        result["lost_executor_logged"] = "Lost executor" in (WORK / f"{name}.log").read_text()
    return result, (_digests(out), _content_digests(out))


def bench() -> dict:
    from run import FORGE, sample_site, sh

    WORK.mkdir(parents=True, exist_ok=True)
    sh(FORGE + ["-q", "sample-data", "--output", "data/samples"], cwd=ROOT, capture_output=True)
    config = _config("3g")
    result: dict = {}
    with sample_site():
        local, local_digests = _run("local2", "local[2]", config)
        result["local2"] = local
        print(f"local[2]: {local['wall_seconds']} s", flush=True)
        cluster = Cluster(
            folder=str(WORK / "daemons"), master_port=free_port(), ui_port=free_port(), workers=2, cores=1, memory="4g"
        ).up()
        try:
            undisturbed, cluster_digests = _run("cluster", cluster.master_url, config)
            print(f"cluster: {undisturbed['wall_seconds']} s", flush=True)
            killed, killed_digests = _run(
                "cluster-kill", cluster.master_url, config, on_stage=("dedup", lambda: cluster.kill_worker(0))
            )
            print(f"cluster, worker killed: {killed['wall_seconds']} s", flush=True)
        finally:
            cluster.down()
    result["cluster"] = undisturbed
    result["cluster_worker_killed"] = killed
    result["cluster_over_local2"] = round(undisturbed["wall_seconds"] / local["wall_seconds"], 3)
    result["killed_over_undisturbed"] = round(killed["wall_seconds"] / undisturbed["wall_seconds"], 3)
    for name, a, b in (
        ("cluster_vs_local2", cluster_digests, local_digests),
        ("killed_vs_undisturbed", killed_digests, cluster_digests),
    ):
        result[f"shards_byte_identical_{name}"] = a[0] == b[0]
        result[f"shards_identical_but_crawl_provenance_{name}"] = a[1] == b[1]
    result["shard_files"] = len(local_digests[1])
    return result
