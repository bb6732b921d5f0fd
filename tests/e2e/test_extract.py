"""The `extract` stage on Spark: API-operation pairs from real botocore records, Q&A pairs, duplicate pairs,
language rejects, the typed pairs dataset, and the LLM path against the local protocol server."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from corpus import schema
from corpus.config import InputSpec, parse_config
from corpus.ids import content_id
from corpus.pipeline import run_single
from tests.conftest import assert_stage_output
from tests.unit.test_extract import FAQ, FakeLLM

pytestmark = pytest.mark.spark

GERMAN_FAQ = (
    "Q: Wie kann ich die Schlüssel eines Dienstes wechseln?\nErstellen Sie einen neuen Schlüssel, verteilen "
    "Sie ihn an alle Programme und schalten Sie danach den alten Schlüssel ab.\n"
)


@pytest.fixture(scope="module")
def run_dir(spark, tmp_path_factory):
    """A run folder: ingest-apis over botocore's SQS model, and a documents dataset beside it with the SQS tool
    docs, the same FAQ page twice (two URLs), a German FAQ and a page of part text (not extracted)."""
    out = tmp_path_factory.mktemp("extract-run")
    run_single(
        spark,
        parse_config({}),
        "ingest-apis",
        [
            InputSpec(path="pkg:botocore/data/sqs", part="tool_doc"),
            InputSpec(path="pkg:botocore/data/dynamodb", part="tool_doc"),
        ],
        str(out / "ingest-apis"),
        False,
    )
    tools = pq.read_table(str(out / "ingest-apis" / "data")).to_pylist()
    base = {n: None for n in schema.document().names}
    extra = [
        {"part": "agent_web", "text": FAQ, "url": "https://a.example/faq"},
        {"part": "agent_web", "text": FAQ, "url": "https://b.example/faq-copy"},
        {"part": "agent_web", "text": GERMAN_FAQ, "url": "https://c.example/de"},
        {"part": "text", "text": FAQ, "url": "https://d.example/plain"},
    ]
    rows = tools + [
        {**base, "source": "web", "metadata": "{}", "id": content_id(r["text"], r["url"]), **r} for r in extra
    ]
    (out / "docs").mkdir()
    pq.write_table(pa.Table.from_pylist(rows, schema=schema.document().arrow), out / "docs" / "part-0.parquet")
    return out, len(tools)


def test_extract_stage_pairs_rejects_and_typed_output(spark, run_dir):
    out, n_tools = run_dir
    cfg = parse_config({"extract": {"api_operation_without_example": True}})  # SQS documents no examples
    stats = run_single(spark, cfg, "extract", [str(out / "docs")], str(out / "extract"), False)
    data, rejects, stats = assert_stage_output(out / "extract", stats)
    c = stats["counters"]
    assert stats["rows_in"] == c["pairs_in"] and c["documents_scanned"] == n_tools + 3
    assert stats["extra"]["tools"].endswith("ingest-apis/tools")
    assert 0.7 * n_tools <= c["pairs.api_operation"] <= n_tools, "most SQS descriptions start with a verb"
    assert c["pairs.qa"] == 2 + 2 + 1
    reasons = rejects.column("reason").to_pylist()
    assert reasons.count("duplicate_pair") == 2, "the copied FAQ's two pairs are kept once"
    assert reasons.count("lang_not_kept") == 1
    dup = next(r for r in rejects.to_pylist() if r["reason"] == "duplicate_pair")
    assert dup["duplicate_of"] == dup["id"] and dup["id"] in set(data.column("id").to_pylist())
    rows = data.to_pylist()
    assert all(r["part"] == "instruction" and r["text"].startswith("### Instruction\n") for r in rows)
    assert len({r["id"] for r in rows}) == len(rows)
    pairs = pq.read_table(str(out / "extract" / "pairs"))
    schema.validate_table(pairs, schema.load("instruction"), "pairs")
    assert sorted(pairs.column("id").to_pylist()) == sorted(r["id"] for r in rows)
    send = next(p for p in pairs.to_pylist() if "client.send_message(" in p["response"])
    assert send["extractor"] == "api_operation" and json.loads(send["metadata"])["operation"]["api"] == "sqs"
    documented = [p for p in pairs.to_pylist() if "The documented response" in p["response"]]
    assert len(documented) >= 10 and all("dynamodb" in p["response"] for p in documented), "examples-1.json"
    assert not any(json.loads(p["metadata"])["template_made"] for p in documented)
    sample = stats["extra"]["samples"]
    assert set(sample) == {"api_operation", "qa"} and 10 <= len(sample["api_operation"]) <= 50


def test_extract_stage_with_an_llm_endpoint(spark, run_dir, tmp_path, monkeypatch):
    out, _ = run_dir
    server = FakeLLM(fail_first=2)
    monkeypatch.setenv("FORGE_TEST_KEY", "sekrit-key-123")
    try:
        cfg = parse_config(
            {
                "run": {"output": str(tmp_path)},
                "extract": {
                    "extractors": [],
                    "parts": ["agent_web"],
                    "lang": [],
                    "llm": {
                        "enabled": True,
                        "base_url": server.url,
                        "model": "m",
                        "backoff_seconds": 0,
                        "api_key_env": "FORGE_TEST_KEY",
                    },
                },
            }
        )
        stats = run_single(spark, cfg, "extract", [str(out / "docs")], str(tmp_path / "extract"), False)
        c = stats["counters"]
        assert c["llm_ok"] == 3 and len(server.requests) == 3 + 2, "three agent_web pages, two retried failures"
        assert stats["rows_out"] == 2, "the two copies of the FAQ give one pair once"
        assert (tmp_path / "llm-cache").is_dir()
        again = run_single(spark, cfg, "extract", [str(out / "docs")], str(tmp_path / "extract"), True)
        assert again["counters"]["llm_cached"] == 3 and len(server.requests) == 5
        assert "base_url" in again["extra"]["llm"] and "sekrit-key-123" not in json.dumps(again)
    finally:
        server.close()


@pytest.mark.parametrize("down", [True, False])
def test_extract_stage_fails_closed(spark, run_dir, tmp_path, down, caplog):
    """The endpoint down, or answering prose: the stage fails before committing, naming the endpoint and the
    counts; nothing is written where the output would be."""
    from corpus.extract.llm import LlmError

    out, _ = run_dir
    server = None if down else FakeLLM(garbage=True)
    url = "http://127.0.0.1:9/v1" if down else server.url
    try:
        cfg = parse_config(
            {
                "run": {"output": str(tmp_path)},
                "extract": {
                    "extractors": [],
                    "parts": ["agent_web"],
                    "lang": [],
                    "llm": {
                        "enabled": True,
                        "base_url": url,
                        "model": "m",
                        "retries": 0,
                        "backoff_seconds": 0,
                        "timeout_seconds": 5,
                    },
                },
            }
        )
        what = "error" if down else "unreadable"
        with pytest.raises(LlmError, match=rf"3 of 3 llm calls to {url} \(model m\) failed \(3 {what}\)"):
            run_single(spark, cfg, "extract", [str(out / "docs")], str(tmp_path / "extract"), False)
        assert not (tmp_path / "extract").exists()
        assert not list(tmp_path.glob("_tmp-extract-*"))
        assert "3 of 3 llm calls" in caplog.text
    finally:
        if server:
            server.close()
