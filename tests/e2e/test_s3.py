"""Stages reading their inputs from s3:// inside Spark tasks (pyarrow.fs; no Hadoop S3A connector), against a real
S3-protocol server on 127.0.0.1. Issue #8 builds the rest (stage datasets, shards and manifests on S3)."""

from __future__ import annotations

import pytest

from corpus.config import InputSpec, parse_config
from corpus.io import files
from corpus.pipeline import run_single
from tests.conftest import assert_stage_output
from tests.s3server import S3Server

pytestmark = pytest.mark.spark


@pytest.fixture(scope="module")
def s3(spark, tmp_path_factory):
    server = S3Server(tmp_path_factory.mktemp("weed"))
    server.client().create_bucket(Bucket="inputs")
    mp = pytest.MonkeyPatch()
    env = spark.sparkContext.environment  # what Python workers get (spark.executorEnv.* on a cluster)
    saved = dict(env)
    for k, v in server.env().items():
        mp.setenv(k, v)
        env[k] = v
    files._S3.clear()
    yield server
    env.clear()
    env.update(saved)
    mp.undo()
    files._S3.clear()
    server.stop()


def test_ingest_reads_inputs_from_s3_in_tasks(spark, s3, sample_dir, tmp_path):
    local = sample_dir / "text" / "package-readmes.jsonl"
    s3.client().upload_file(str(local), "inputs", "text/readmes.jsonl")
    stats = run_single(spark, parse_config({}), "ingest-text", [InputSpec(path="s3://inputs/text", source="r")],
                       str(tmp_path / "from-s3"), False)
    docs, _, _ = assert_stage_output(tmp_path / "from-s3", stats)
    expected = run_single(spark, parse_config({}), "ingest-text", [InputSpec(path=str(local), source="r")],
                          str(tmp_path / "from-disk"), False)
    assert stats["rows_out"] == expected["rows_out"] > 0
    assert sorted(docs.column("text").to_pylist()) == sorted(
        assert_stage_output(tmp_path / "from-disk")[0].column("text").to_pylist())
    assert "s3://inputs/text/readmes.jsonl" in docs.column("metadata")[0].as_py()
    assert s3.env()["AWS_SECRET_ACCESS_KEY"] not in (tmp_path / "from-s3" / "_stats.json").read_text()
