"""The `ingest-trajectories` stage on Spark: the real BFCL v4 files, and every kind of bad input file."""

from __future__ import annotations

import gzip
import json
from collections import Counter

import pyarrow.parquet as pq
import pytest

from corpus import schema
from corpus.config import InputSpec, parse_config
from corpus.pipeline import run_single
from corpus.signals import as_dict
from tests.conftest import assert_stage_output
from tests.unit.test_trajectories import GLAIVE, OPENAI, TOOLACE, XLAM, _with_call

pytestmark = pytest.mark.spark


def test_bfcl_files_and_bad_input(spark, sample_dir, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "mixed.jsonl").write_text(
        "\n".join(
            [
                json.dumps(OPENAI),
                json.dumps(GLAIVE),
                json.dumps(TOOLACE),
                json.dumps(XLAM),
                "{not json",
                json.dumps({"text": "no format"}),
                json.dumps({"messages": []}),
                json.dumps(_with_call({"city": "Paris"}, name="get_forecast")),
                json.dumps({"messages": [{"role": "user", "content": "hi"}], "tools": []}),
            ]
        )
        + "\n"
    )
    (bad / "array.json").write_text(json.dumps([XLAM, XLAM]))
    (bad / "empty.jsonl").write_text("")
    (bad / "corrupt.jsonl.gz").write_bytes(gzip.compress(b'{"query": "q"}\n')[:-8])
    (bad / "latin1.jsonl").write_bytes(json.dumps(XLAM).encode() + b"\n\xe9\xff\n")
    inputs = [
        InputSpec(path=str(sample_dir / "trajectories"), source="bfcl", part="trajectory"),
        InputSpec(path=str(bad), source="mixed", part="trajectory"),
    ]
    out = tmp_path / "out"
    stats = run_single(spark, parse_config({}), "ingest-trajectories", inputs, str(out), False)
    docs, rejects, stats = assert_stage_output(out, stats)
    counts = json.loads((sample_dir / "_SUCCESS").read_text())
    by_reason = Counter(r["reason"] for r in rejects.to_pylist() if r["source"] == "mixed")
    assert sum(by_reason.values()) == 8
    # the cut gzip file's one record is read (unknown_format) before its damage (unreadable_file)
    assert by_reason["malformed_json"] == 1 and by_reason["unknown_format"] == 2 and by_reason["no_messages"] == 1
    assert by_reason["unknown_function"] == 1 and by_reason["no_tool_calls"] == 1
    assert by_reason["unreadable_file"] == 1, "the cut gzip file, named"
    assert by_reason["invalid_utf8"] == 1, "the latin-1 line; the file's good line is kept"
    locations = {r["reason"]: r["location"] for r in rejects.to_pylist()}
    assert locations["malformed_json"].endswith("mixed.jsonl:5")
    assert stats["counters"]["format:bfcl"] == counts["bfcl_questions"]
    assert stats["counters"]["format:openai"] == 3 and stats["counters"]["format:sharegpt"] == 2
    assert stats["counters"]["format:xlam"] == 4  # mixed.jsonl 1, array.json 2, the good line of latin1.jsonl
    # BFCL: every kept question with answers scores ToolRL's maximum against its own ground truth
    bfcl_docs = [d for d in docs.to_pylist() if d["source"] == "bfcl"]
    assert len(bfcl_docs) > 0.95 * counts["bfcl_questions"]
    assert all(as_dict(d["signals"])["tool_reward"] == 4.0 for d in bfcl_docs)
    typed = pq.read_table(str(out / "trajectories"))
    schema.validate_table(typed, schema.load("trajectory"), "trajectories")
    assert sorted(typed.column("id").to_pylist()) == sorted(docs.column("id").to_pylist())
    assert set(typed.column("source_format").to_pylist()) == {"bfcl", "openai", "sharegpt", "xlam"}


def test_judge_endpoint_down_fails_the_stage(spark, tmp_path):
    """With the judge's endpoint down the stage fails closed: an error naming the endpoint, nothing committed."""
    from corpus.extract.llm import LlmError

    (tmp_path / "in.jsonl").write_text(json.dumps(OPENAI) + "\n" + json.dumps(XLAM) + "\n")
    cfg = parse_config(
        {
            "run": {"output": str(tmp_path)},
            "ingest-trajectories": {
                "judge": {"enabled": True, "base_url": "http://127.0.0.1:9/v1", "retries": 0, "timeout_seconds": 5}
            },
        }
    )
    with pytest.raises(LlmError, match=r"2 of 2 judge calls to http://127.0.0.1:9/v1"):
        run_single(
            spark,
            cfg,
            "ingest-trajectories",
            [InputSpec(path=str(tmp_path / "in.jsonl"))],
            str(tmp_path / "out"),
            False,
        )
    assert not (tmp_path / "out").exists()
