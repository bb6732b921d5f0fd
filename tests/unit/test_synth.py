"""Trajectory synthesis from real botocore operations (APIGen-MT style, templates), without Spark."""

from __future__ import annotations

import json
from collections import Counter

import botocore.session
import pyarrow as pa
import pytest

from corpus.apis import botocore_models
from corpus.config import SynthesizeSection
from corpus.spark.envelope import split
from corpus.trajectories import synth
from corpus.trajectories.score import score_calls
from corpus.trajectories.synthesize import FIELDS, synthesize_group
from corpus.trajectories.verify import verify


@pytest.fixture(scope="module")
def sqs_records() -> list[dict]:
    doc = botocore.session.get_session().get_component("data_loader").load_service_model("sqs", "service-2")
    out = []
    for i, op in enumerate(botocore_models.operations(doc, client="sqs")):
        rec = op.record()
        out.append({**{k: rec.get(k) for k in FIELDS}, "id": f"op{i:03d}", "source": "botocore"})
    return out


def test_blueprints_and_conversations_verify(sqs_records):
    send = next(r for r in sqs_records if r["operation_id"] == "SendMessage")
    bp = synth.blueprint(send)
    assert bp["intent"] == "Deliver a message to the specified queue with the Amazon Simple Queue Service API."
    assert bp["function"] == "sqs_send_message" and set(bp["arguments"]) == {"QueueUrl", "MessageBody"}
    traj, _ = synth.conversation(send, sqs_records, seed=42, distractors=3)
    assert [m["role"] for m in traj["messages"]] == ["user", "assistant", "tool", "assistant"]
    assert len(traj["tools"]) == 4 and "sqs_send_message" in {t["name"] for t in traj["tools"]}
    assert verify(traj) == {"format": "pass", "schema": "pass", "grounding": "pass"}
    assert '"example-queue-url"' in traj["messages"][0]["content"]
    calls = [{"name": c["name"], "arguments": json.loads(c["arguments"])} for c in traj["messages"][1]["tool_calls"]]
    assert score_calls(traj["reference_calls"], calls)["reward"] == 4.0
    again, _ = synth.conversation(send, sqs_records, seed=42, distractors=3)
    assert again == traj, "deterministic for one seed"
    other, _ = synth.conversation(send, sqs_records, seed=7, distractors=3)
    assert {t["name"] for t in other["tools"]} != {t["name"] for t in traj["tools"]} or other["tools"] != traj["tools"]


def test_example_values_fit_their_schema():
    assert synth.example_value({"type": "integer", "minimum": 5, "maximum": 10}) == 5
    assert synth.example_value({"type": "string", "enum": ["a", "b"]}) == "a"
    assert synth.example_value({"type": "array", "items": {"type": "boolean"}}) == [True]
    assert synth.example_value({"type": "object", "properties": {"n": {"type": "number"}, "x": {}},
                                "required": ["n"]}) == {"n": 1.0}
    assert synth.example_value({"type": "string"}, "QueueUrl") == "example-queue-url"
    assert synth.example_value({"type": "string", "format": "date-time"}) == "2026-01-01T00:00:00Z"


def test_group_function_caps_and_rejects(sqs_records):
    bad = {**sqs_records[0], "id": "bad", "operation_id": "Odd", "description": "The queue, described."}
    table = pa.Table.from_pylist(sqs_records + [bad])
    cfg = SynthesizeSection(max_per_api=10)
    docs, rejects, counters = split(synthesize_group(table, cfg, seed=42))
    assert counters["records_in"] == 10 and counters["operations_over_cap"] == len(sqs_records) + 1 - 10
    assert docs.num_rows + rejects.num_rows == 10
    everything = split(synthesize_group(table, SynthesizeSection(max_per_api=1000), seed=42))
    reasons = Counter(everything[1].column("reason").to_pylist())
    assert reasons["no_intent"] >= 1 and set(reasons) == {"no_intent"}
    assert everything[0].num_rows >= 0.7 * len(sqs_records)
    assert all(json.loads(m)["template_made"] for m in everything[0].column("metadata").to_pylist())


def test_an_llm_plays_the_user_and_the_checks_still_apply(sqs_records, monkeypatch, tmp_path):
    from tests.unit.test_extract import FakeLLM

    server = FakeLLM(fail_first=1)
    try:
        cfg = SynthesizeSection(max_per_api=1000, llm={"enabled": True, "base_url": server.url, "model": "sim",
                                                        "backoff_seconds": 0})
        docs, rejects, counters = split(synthesize_group(pa.Table.from_pylist(sqs_records), cfg, seed=42,
                                                         llm_args=(str(tmp_path), 1.0, None)))
        made = docs.num_rows + rejects.num_rows - sum(1 for r in rejects.to_pylist() if r["reason"] == "no_intent")
        assert counters["simulate_ok"] == made and len(server.requests) == made + 1, "one request each, one retry"
        kept = docs.to_pylist()
        assert kept and all(json.loads(d["metadata"])["user_simulated_by"] == "sim" for d in kept)
        assert all(not json.loads(d["metadata"])["template_made"] for d in kept)
        assert all("### User\nHi! " in d["text"] and "All done" in d["text"] for d in kept)
        ungrounded = [r for r in rejects.to_pylist() if r["reason"] == "ungrounded_argument"]
        assert ungrounded and all("delete" in r["detail"] for r in ungrounded), "values left out are caught"
    finally:
        server.close()
