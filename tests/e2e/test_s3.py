"""Stages reading their inputs from s3:// inside Spark tasks (pyarrow.fs; no Hadoop S3A connector), against a real
S3-protocol server on 127.0.0.1. The whole pipeline on S3 is tested in
test_pipeline.py (test_pipeline_on_s3_gives_the_local_run)."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from corpus.config import InputSpec, parse_config
from corpus.pipeline import run_single
from tests.conftest import assert_stage_output

pytestmark = pytest.mark.spark


def test_ingest_reads_inputs_from_s3_in_tasks(spark, s3, sample_dir, tmp_path):
    local = sample_dir / "text" / "package-readmes.jsonl"
    s3.client().upload_file(str(local), "inputs", "text/readmes.jsonl")
    stats = run_single(
        spark,
        parse_config({}),
        "ingest-text",
        [InputSpec(path="s3://inputs/text", source="r")],
        str(tmp_path / "from-s3"),
        False,
    )
    docs, _, _ = assert_stage_output(tmp_path / "from-s3", stats)
    expected = run_single(
        spark,
        parse_config({}),
        "ingest-text",
        [InputSpec(path=str(local), source="r")],
        str(tmp_path / "from-disk"),
        False,
    )
    assert stats["rows_out"] == expected["rows_out"] > 0
    assert sorted(docs.column("text").to_pylist()) == sorted(
        assert_stage_output(tmp_path / "from-disk")[0].column("text").to_pylist()
    )
    assert "s3://inputs/text/readmes.jsonl" in docs.column("metadata")[0].as_py()
    assert s3.env()["AWS_SECRET_ACCESS_KEY"] not in (tmp_path / "from-s3" / "_stats.json").read_text()


def test_datasets_round_trip_on_s3(spark, s3):
    """corpus.spark.datasets on s3://: one file per partition named after it, an empty DataFrame still leaves a
    readable schema, a given schema's missing columns read as nulls, overwrite replaces, a second write is refused."""
    from corpus.io import files
    from corpus.io.files import InputError
    from corpus.spark import datasets

    s3.client().create_bucket(Bucket="scratch")
    df = spark.range(0, 1000, numPartitions=3).selectExpr("id", "cast(id * 2 as string) as doubled")
    datasets.write(df, "s3://scratch/ds/a")
    names = sorted(e.path.rsplit("/", 1)[1] for e in files.list_files("s3://scratch/ds/a"))
    assert names == [f"part-{i:05d}.zstd.parquet" for i in range(3)]
    back = datasets.read(spark, "s3://scratch/ds/a")
    assert back.schema == df.schema
    assert sorted(map(tuple, back.collect())) == sorted(map(tuple, df.collect()))

    with pytest.raises(InputError, match="already exists"):
        datasets.write(df, "s3://scratch/ds/a")
    datasets.write(df.where("id < 10"), "s3://scratch/ds/a", overwrite=True)
    assert datasets.read(spark, "s3://scratch/ds/a").count() == 10

    datasets.write(df.where("id < 0"), "s3://scratch/ds/empty")
    assert datasets.read(spark, "s3://scratch/ds/empty").schema == df.schema
    assert datasets.read(spark, "s3://scratch/ds/empty").count() == 0

    wider = df.schema.add("extra", "string")
    both = datasets.read(spark, "s3://scratch/ds/a", "s3://scratch/ds/empty", schema=wider)
    assert both.columns == ["id", "doubled", "extra"] and both.where("extra is null").count() == 10

    with pytest.raises(InputError, match="nothing-here: no such file or folder"):
        datasets.read(spark, "s3://scratch/ds/nothing-here")
    files.write_text("s3://scratch/ds/notes/readme.txt", "not parquet")
    with pytest.raises(InputError, match="notes: no Parquet files"):
        datasets.read(spark, "s3://scratch/ds/notes")
    with pytest.raises(InputError, match="mixing"):
        datasets.read(spark, "s3://scratch/ds/a", "/tmp")


def test_crawl_archives_warcs_on_s3_and_resumes_from_them(spark, s3, tmp_path):
    """The crawl stage with its output (and so its WARC archive) on s3://: complete WARCs are uploaded under their
    final names, ingest-web reads them back from S3, and a forced rerun fetches none of the archived URLs."""
    from corpus import samples
    from corpus.io import files
    from tests.unit.test_crawl import Site

    s3.client().create_bucket(Bucket="crawl")
    root = tmp_path / "site"
    root.mkdir()
    for m in ("json", "csv", "textwrap"):
        (root / f"{m}.html").write_text(samples.pydoc_page(m), "utf-8")
    samples.write_site_index(root)
    site = Site(root)
    try:
        seeds = tmp_path / "seeds.txt"
        seeds.write_text(site.url + "/index.html\n")
        cfg = parse_config(
            {"crawl": {"delay_seconds": 0.01, "max_pages": 3, "warc_file_pages": 2, "allow_private_seeds": True}}
        )
        stats = run_single(spark, cfg, "crawl", [str(seeds)], "s3://crawl/run/crawl", False)
        assert stats["rows_out"] == 3 and stats["extra"]["warc_files"] == 2
        warcs = [e.path for e in files.list_files("s3://crawl/run/crawl-warc")]
        assert len(warcs) == 2 and all(w.endswith(".warc.gz") and "/_tmp-" not in w for w in warcs)
        web = run_single(
            spark,
            parse_config({}),
            "ingest-web",
            [InputSpec(path="s3://crawl/run/crawl-warc", source="crawl")],
            str(tmp_path / "web"),
            False,
        )
        assert web["rows_out"] == 3
        fs, inner = files.filesystem("s3://crawl/run/crawl/log")
        log = pq.read_table(inner, filesystem=fs).to_pylist()
        archived = {r["url"] for r in log if r["outcome"] == "archived"}
        assert len(archived) == 3
        site.requests.clear()
        again = run_single(
            spark,
            parse_config({"crawl": {"delay_seconds": 0.01, "max_pages": 5, "allow_private_seeds": True}}),
            "crawl",
            [str(seeds)],
            "s3://crawl/run/crawl",
            True,
        )
        assert again["counters"]["resumed_hosts"] == 1
        fetched = {site.url + p for _, p, _ in site.requests}
        assert fetched and not (fetched & archived)
    finally:
        site.close()
