"""`forge run` end to end on real data: shards, manifest, report, resume, determinism, atomic commits."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from corpus import schema
from corpus.cli import main
from corpus.config import parse_config
from corpus.pipeline import run_pipeline
from corpus.stage import StageError, StagePlan, run_stage
from tests.conftest import assert_stage_output

pytestmark = pytest.mark.spark
STAGES = ["ingest-web", "ingest-text", "ingest-apis", "ingest-trajectories", "synthesize", "filter", "dedup",
          "classify", "extract", "write"]
SMALL_CLASSIFIER = {"fasttext": {"dim": 16, "bucket": 10_000, "epoch": 10}}


def _config(sample_dir: Path, out: Path, **extra):
    data = {
        "run": {"name": "test", "output": str(out)},
        "inputs": {"web": [{"path": str(sample_dir / "web"), "source": "pydoc", "part": "tool_doc"}],
                   "text": [{"path": str(sample_dir / "text"), "source": "readmes"}],
                   "apis": [{"path": "pkg:botocore/data/sqs", "source": "botocore"}],
                   "trajectories": [{"path": str(sample_dir / "trajectories" / "bfcl-parallel_multiple.jsonl"),
                                     "source": "bfcl"}]},
        "write": {"target_shard_bytes": "40KiB", "row_group_bytes": "8KiB"},
        "classify": dict(SMALL_CLASSIFIER),
    }
    for k, v in extra.items():
        data.setdefault(k, {}).update(v)
    return parse_config(data)


@pytest.fixture(scope="module")
def run_out(spark, sample_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "out"
    results = run_pipeline(spark, _config(sample_dir, out))
    return out, results


def test_pipeline_writes_valid_shards_and_manifest(run_out):
    out, results = run_out
    assert list(results) == STAGES
    for stage in STAGES[:-1]:
        assert_stage_output(out / stage)
    manifest = json.loads((out / "write" / "manifest.json").read_text())
    schema.validate_json(manifest, schema.load("manifest"))
    write_stats = json.loads((out / "write" / "_stats.json").read_text())
    dedup_stats = results["dedup"]
    assert dedup_stats["rows_out"] == results["classify"]["rows_out"]
    assert manifest["rows"] == write_stats["rows_out"] == results["classify"]["rows_out"] + results["extract"]["rows_out"]
    assert results["extract"]["counters"]["pairs.api_operation"] > 0
    assert len(manifest["shards"]) > 1
    total = 0
    for shard in manifest["shards"]:
        path = out / "write" / shard["path"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == shard["sha256"]
        assert path.stat().st_size == shard["bytes"]
        table = pq.read_table(path)
        schema.validate_table(table, schema.document(), shard["path"])
        assert table.num_rows == shard["rows"]
        assert pq.ParquetFile(path).metadata.row_group(0).column(0).compression == "ZSTD"
        total += table.num_rows
    assert total == manifest["rows"]
    assert sum(manifest["rows_by_part"].values()) == manifest["rows"]
    assert {"text", "tool_doc", "instruction", "trajectory"} <= set(manifest["rows_by_part"]) <= {
        "text", "tool_doc", "agent_web", "instruction", "trajectory"}
    # every stage's counts chain: each stage's output is the next one's input
    assert results["filter"]["rows_in"] == sum(results[s]["rows_out"] for s in STAGES[:5])
    # synthesised trajectories from the SQS operations: all verified, typed beside the documents
    assert results["synthesize"]["rows_out"] >= 10
    typed = pq.read_table(str(out / "synthesize" / "trajectories"))
    schema.validate_table(typed, schema.load("trajectory"), "synthesize/trajectories")
    assert set(typed.column("source_format").to_pylist()) == {"synthesized"}
    assert results["dedup"]["rows_in"] == results["filter"]["rows_out"]


def test_report(run_out, capsys):
    out, _ = run_out
    assert main(["report", str(out)]) == 0
    text = capsys.readouterr().out
    for stage in STAGES:
        assert f"| {stage} |" in text
    assert "## filter: rejects by reason" in text and (out / "report.md").exists()
    assert "### classify: held-out metrics by round" in text and "### classify: top hosts" in text
    assert max(len(line) for line in text.splitlines()) < 400, "long stats (PR curves, host lists) stay in the JSON"


def test_rerun_skips_committed_stages_and_reruns_changed_ones(spark, sample_dir, run_out):
    out, first = run_out
    again = run_pipeline(spark, _config(sample_dir, out))
    assert all(s.get("skipped") for s in again.values())
    # a changed filter threshold reruns filter and everything after it, not the ingest stages
    changed = run_pipeline(spark, _config(sample_dir, out, filter={"lang": {"min_score": 0.9}}))
    assert [n for n, s in changed.items() if not s.get("skipped")] == ["filter", "dedup", "classify", "extract", "write"]
    assert changed["filter"]["rows_out"] <= first["filter"]["rows_out"]
    only = run_pipeline(spark, _config(sample_dir, out), only="dedup")
    assert list(only) == ["dedup"] and not only["dedup"].get("skipped")
    restored = run_pipeline(spark, _config(sample_dir, out), start="write")
    assert [n for n, s in restored.items() if not s.get("skipped")] == ["write"]


def test_shards_are_byte_identical_across_partitioning(spark, sample_dir, run_out, tmp_path):
    """Same input and config → same shard bytes, whatever the shuffle partitions and Arrow batch sizes."""
    out, _ = run_out
    reference = json.loads((out / "write" / "manifest.json").read_text())
    digests = {s["path"]: s["sha256"] for s in reference["shards"]}
    other = tmp_path / "out"
    for stage in ("dedup", "ingest-apis"):  # extract reads ingest-apis' typed records beside its input
        shutil.copytree(out / stage, other / stage)
    old = (spark.conf.get("spark.sql.shuffle.partitions"), spark.conf.get("spark.sql.execution.arrow.maxRecordsPerBatch"))
    try:
        spark.conf.set("spark.sql.shuffle.partitions", "3")
        spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", "7")
        cfg = _config(sample_dir, other)
        from corpus.classify.stage import build as classify
        from corpus.extract.stage import build as extract
        from corpus.output.shards import build

        # the classifier is retrained from the same data under another partitioning: the same model and scores
        run_stage("classify", classify, spark=spark, config=cfg, inputs=[str(other / "dedup")],
                  output=str(other / "classify"), fingerprint="x")
        run_stage("extract", extract, spark=spark, config=cfg, inputs=[str(other / "classify")],
                  output=str(other / "extract"), fingerprint="x")
        run_stage("write", build, spark=spark, config=cfg, inputs=[str(other / "classify"), str(other / "extract")],
                  output=str(other / "write"), fingerprint="x")
    finally:
        spark.conf.set("spark.sql.shuffle.partitions", old[0])
        spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", old[1])
    mine = json.loads((other / "write" / "manifest.json").read_text())
    assert (other / "classify" / "model" / "model.bin").read_bytes() == \
        (out / "classify" / "model" / "model.bin").read_bytes()
    assert {s["path"]: s["sha256"] for s in mine["shards"]} == digests


def test_ingest_is_deterministic_across_partition_counts(spark, sample_dir, tmp_path):
    from corpus.config import InputSpec
    from corpus.pipeline import run_single

    texts = []
    for split in ("300KiB", "20KiB"):  # 4 tasks, or dozens of byte-range splits of each WARC
        cfg = parse_config({"ingest-web": {"split_bytes": split}})
        out = tmp_path / f"p{split}"
        run_single(spark, cfg, "ingest-web", [InputSpec(path=str(sample_dir / "web"))], str(out), False)
        t = pq.read_table(out / "data").sort_by("id")
        texts.append(t.select(["id", "text", "metadata"]).to_pylist())
    assert texts[0] == texts[1]


def test_a_failing_stage_commits_nothing(spark, sample_dir, tmp_path):
    cfg = _config(sample_dir, tmp_path)
    out = tmp_path / "broken"

    def half_then_fail(ctx):
        (Path(ctx.tmp) / "data").mkdir()
        (Path(ctx.tmp) / "data" / "part-0.parquet").write_bytes(b"partial")
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError, match="killed"):
        run_stage("filter", half_then_fail, spark=spark, config=cfg, inputs=[], output=str(out), fingerprint="x")
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith("_tmp-")]

    def loses_a_row(ctx):
        df = spark.createDataFrame([], schema.document().spark)
        from corpus.dedup.stage import _no_rejects

        return StagePlan(documents=df, rejects=_no_rejects(spark), rows_in=1)

    with pytest.raises(StageError, match="unaccounted"):
        run_stage("filter", loses_a_row, spark=spark, config=cfg, inputs=[], output=str(out), fingerprint="x")
    assert not out.exists()


def test_cli_errors_name_the_problem(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("filter:\n  lang:\n    min_scor: 0.5\n")
    assert main(["run", "--config", str(bad)]) == 2
    assert "unknown key 'filter.lang.min_scor'" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "nothing")]) == 2
    assert "no such run output folder" in capsys.readouterr().err


def test_spark_submit_job(sample_dir, tmp_path):
    """`spark-submit jobs/ingest-text.py` takes the same arguments as `forge ingest-text`."""
    spark_submit = Path(sys.executable).parent / "spark-submit"
    if not spark_submit.exists():
        pytest.skip("spark-submit is not in this environment's bin/")
    out = tmp_path / "submitted"
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "SPARK_LOCAL_IP": "127.0.0.1"}
    env.pop("PYSPARK_GATEWAY_PORT", None)
    proc = subprocess.run(
        [str(spark_submit), "--master", "local[1]", "jobs/ingest-text.py", "--input", str(sample_dir / "text"),
         "--output", str(out), "--source", "submitted"],
        env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    docs, _, _ = assert_stage_output(out)
    assert set(docs.column("source").to_pylist()) == {"submitted"}
