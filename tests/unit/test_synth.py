"""Executed trajectories from real botocore operations, run in moto's AWS mocks, without Spark."""

from __future__ import annotations

import json
import re
import tempfile
from collections import Counter

import botocore.session
import pyarrow as pa
import pytest

from corpus.apis import botocore_models
from corpus.config import SynthesizeSection
from corpus.extract.rules import imperative
from corpus.spark.envelope import split
from corpus.trajectories import aws
from corpus.trajectories.synthesize import FIELDS, synthesize_group
from corpus.trajectories.values import Values, _fits
from corpus.trajectories.verify import verify


def records_of(client: str, source: str = "botocore") -> list[dict]:
    doc = botocore.session.get_session().get_component("data_loader").load_service_model(client, "service-2")
    out = []
    for i, op in enumerate(botocore_models.operations(doc, client=client)):
        rec = op.record()
        out.append({**{k: rec.get(k) for k in FIELDS}, "id": f"{client}{i:03d}", "source": source})
    return out


@pytest.fixture(scope="module")
def sqs_records() -> list[dict]:
    return records_of("sqs")


def test_intents_from_descriptions_in_any_verb_form():
    assert imperative("Analyzes the data.") == "Analyze the data"
    assert imperative("Initializes the store") == "Initialize the store"
    assert imperative("Does a dry run.") == "Do a dry run"
    assert imperative("Create a new distribution.") == "Create a new distribution"
    assert imperative("List all host URL channels.") == "List all host URL channels"
    assert imperative("Information about a queue.") == ""
    assert imperative("The queue, described.") == ""


def test_the_dependency_graph_of_a_real_service():
    sqs = aws.Service("sqs")
    assert sqs.roots() == ["CreateQueue"]
    follow = sqs.followers("CreateQueue")
    assert follow["GetQueueAttributes"]["QueueUrl"][:2] == ("output", "QueueUrl"), "the id comes from the result"
    assert follow["GetQueueUrl"]["QueueName"] == ("input", "QueueName"), "the name the user chose"
    assert follow["SendMessage"]["MessageBody"] == ("make",)
    assert "ListQueues" in follow and "DeleteQueue" in follow
    dynamo = aws.Service("dynamodb")
    assert "CreateTable" in dynamo.roots() and "PutItem" not in dynamo.roots(), "PutItem needs a table"


def test_values_fit_the_schema_and_are_no_placeholders():
    sqs = aws.Service("sqs")
    shape = sqs.ops["CreateQueue"].input_shape.members["QueueName"]
    names = {Values(f"s{i}", "sqs").value(shape, "QueueName", "Queue") for i in range(40)}
    assert len(names) >= 30 and not any("example" in n for n in names)
    s3 = aws.Service("s3")
    bucket = s3.ops["CreateBucket"].input_shape.members["Bucket"]
    for i in range(20):
        v = Values(f"b{i}", "s3").value(bucket, "Bucket", "Bucket")
        assert re.fullmatch(r"[a-z0-9][a-z0-9.\-_]{2,62}", v), v
    assert Values("x", "sqs").value(
        sqs.ops["ReceiveMessage"].input_shape.members["MaxNumberOfMessages"], "MaxNumberOfMessages", "Message"
    ) in (5, 10)
    table = aws.Service("dynamodb").ops["DescribeTable"].input_shape.members["TableName"]
    assert table.metadata["min"] >= 1 and not _fits("", table) and _fits("orders-table", table)


def _run(client: str, root: str, seed: str, exclude=frozenset()):
    service = aws.Service(client)
    plan = aws.plan(service, root, seed, Values(seed, client, service.examples), exclude)
    with aws.Environment(client) as env:
        return plan, aws.execute(env, plan, seed), service


def _deleting_plan(seed_base: str = "t"):
    for i in range(60):
        seed = f"{seed_base}{i}"
        service = aws.Service("sqs")
        plan = aws.plan(service, "CreateQueue", seed, Values(seed, "sqs", service.examples))
        if (
            plan.expect == "absent"
            and not plan.recovery
            and plan.steps[-1].operation == "DeleteQueue"
            and len(plan.steps) >= 3
            and all(
                s.operation
                not in (
                    "ChangeMessageVisibility",
                    "ChangeMessageVisibilityBatch",
                    "DeleteMessage",
                    "DeleteMessageBatch",
                )
                for s in plan.steps
            )
        ):
            return seed, plan
    raise AssertionError("no deleting plan in 60 seeds")


def test_a_task_runs_for_real_and_its_final_state_is_checked():
    seed, plan = _deleting_plan()
    with aws.Environment("sqs") as env:
        run = aws.execute(env, plan, seed)
        assert run.output == "pass" and run.state == "pass", (run.output, run.state)
        url = run.outcomes[0].result["QueueUrl"]
        assert url.startswith("https://sqs.us-east-1.amazonaws.com/123456789012/")
        assert url.endswith(plan.steps[0].arguments["QueueName"]), "a real result of the mock"
        assert any(isinstance(v, aws.Ref) for s in plan.steps[1:] for v in s.arguments.values())
        assert run.calls[-1] == ("DeleteQueue", {"QueueUrl": url}), "the id taken from the earlier result"
        again = aws.execute(env, plan, seed)
        assert [o.text() for o in again.outcomes] == [o.text() for o in run.outcomes], "reproducible"

        # corrupt one call: the deletion names another queue → the real error rejects the task
        wrong = aws.Plan(
            plan.root,
            plan.steps[:-1] + [aws.Step("DeleteQueue", {"QueueUrl": url + "-other"})],
            plan.probe,
            plan.expect,
        )
        bad = aws.execute(env, wrong, seed)
        assert bad.output.startswith("call_failed: DeleteQueue") and "does not exist" in bad.output
        # drop the deletion while the blueprint still expects the queue gone → the state check rejects it
        kept = aws.Plan(plan.root, plan.steps[:-1], plan.probe, "absent")
        assert aws.execute(env, kept, seed).state.startswith("state_mismatch")
        # a task that creates and does not delete must leave the queue there
        assert aws.execute(env, aws.Plan(plan.root, plan.steps[:-1], plan.probe, "present"), seed).state == "pass"


def test_the_group_function_executes_tasks_on_real_services(sqs_records):
    dynamo = records_of("dynamodb")
    google = [
        {
            **r,
            "provider": "google",
            "api": "drive",
            "spec_format": "discovery",
            "sdk_name": None,
            "id": f"g{i}",
            "source": "google-discovery",
        }
        for i, r in enumerate(sqs_records[:5])
    ]
    cfg = SynthesizeSection(max_per_api=12, irrelevance_share=0.1)
    made = []
    for table in (sqs_records, dynamo, google):
        docs, rejects, counters = split(synthesize_group(pa.Table.from_pylist(table), cfg, seed=42))
        assert docs.num_rows + rejects.num_rows == counters.get("records_in", 0)
        made.append((docs, rejects, counters))
    assert made[2][2]["operations_not_executable"] == 5 and made[2][0].num_rows == 0
    docs = made[0][0].to_pylist() + made[1][0].to_pylist()
    assert len(docs) >= 15
    meta = [json.loads(d["metadata"]) for d in docs]
    tasks = [m for m in meta if m["blueprint"]["kind"] != "irrelevance"]
    assert all(m["executed"] and m["checks"]["state"] == "pass" for m in tasks)
    multi = [m for m in tasks if len(m["blueprint"]["calls"]) >= 2 and m["blueprint"]["from_results"]]
    assert len(multi) >= 0.4 * len(docs)
    assert not any("example-" in d["text"] for d in docs)
    assert sum(d["text"].count("### User") >= 2 for d in docs) >= 0.2 * len(docs)
    assert any(m["blueprint"]["kind"] == "irrelevance" for m in meta)
    assert not any("### Tool result (sqs_create_queue)\n{}" in d["text"] for d in docs)
    again = split(synthesize_group(pa.Table.from_pylist(sqs_records), cfg, seed=42))[0]
    assert again.column("text").to_pylist() == made[0][0].column("text").to_pylist(), "deterministic"
    reasons = Counter(made[1][1].column("reason").to_pylist())
    assert set(reasons) <= {
        "call_failed",
        "missing_output",
        "state_mismatch",
        "no_state_check",
        "recovery_not_needed",
    }, reasons


def test_an_llm_plays_the_user_and_the_checks_still_apply(sqs_records, monkeypatch, tmp_path):
    from tests.unit.test_extract import FakeLLM

    server = FakeLLM(fail_first=1)
    try:
        cfg = SynthesizeSection(
            max_per_api=12,
            irrelevance_share=0,
            llm={"enabled": True, "base_url": server.url, "model": "sim", "backoff_seconds": 0},
        )
        docs, rejects, counters = split(
            synthesize_group(pa.Table.from_pylist(sqs_records), cfg, seed=42, llm_args=(str(tmp_path), 1.0, None))
        )
        made = docs.num_rows + sum(1 for r in rejects.to_pylist() if r["reason"] == "ungrounded_argument")
        assert counters["simulate_ok"] == made and len(server.requests) == made + 1, "one request each, one retry"
        kept = docs.to_pylist()
        assert kept and all(json.loads(d["metadata"])["user_simulated_by"] == "sim" for d in kept)
        assert all("### User\nHi! " in d["text"] and "All done" in d["text"] for d in kept)
        ungrounded = [r for r in rejects.to_pylist() if r["reason"] == "ungrounded_argument"]
        assert ungrounded, "values the simulated user left out are caught"
    finally:
        server.close()


def test_verify_still_checks_the_calls(sqs_records):
    seed, plan = _deleting_plan("v")
    from corpus.trajectories import tasks

    by_op = {r["operation_id"]: r for r in sqs_records}
    with aws.Environment("sqs") as env:
        run = aws.execute(env, plan, seed)
    offered = [tasks.function(by_op[s.operation]) for s in plan.steps]
    traj = tasks.conversation(plan, run, by_op, offered, seed, "Amazon Simple Queue Service API")
    assert verify(traj) == {"format": "pass", "schema": "pass", "grounding": "pass"}
    tool_msgs = [m["content"] for m in traj["messages"] if m["role"] == "tool"]
    assert json.loads(tool_msgs[0])["QueueUrl"] in traj["messages"][-1]["content"] or len(traj["messages"]) > 4


# ---- the Python sandbox ----------------------------------------------------------------------------------------


def _python_records(module: str, functions: dict[str, list[tuple[str, bool, str | None]]]) -> list[dict]:
    """tool_doc-like records of real standard-library functions, as ingest-apis reads them from pydoc pages."""
    out = []
    for i, (name, params) in enumerate(functions.items()):
        props = {p: {} for p, _, _ in params}
        out.append(
            {
                "id": f"{module}{i}",
                "source": "crawl",
                "provider": "127.0.0.1",
                "api": module,
                "api_title": module,
                "version": "",
                "operation_id": f"{module}.{name}",
                "spec_format": "html",
                "kind": "function",
                "sdk_name": f"{module}.{name}",
                "description": f"Return {name} of text.",
                "response_schema": None,
                "parameters": [
                    {
                        "name": p,
                        "location": "argument",
                        "type": "any",
                        "required": r,
                        "enum": None,
                        "default": d,
                        "description": "",
                    }
                    for p, r, d in params
                ],
                "tool_schema": json.dumps(
                    {
                        "type": "function",
                        "function": {
                            "name": f"{module}_{name}",
                            "description": f"Return {name} of text.",
                            "parameters": {
                                "type": "object",
                                "properties": props,
                                "required": [p for p, r, _ in params if r],
                            },
                        },
                    }
                ),
            }
        )
    return out


def test_the_sandbox_runs_real_calls_and_refuses_what_it_must():
    from corpus.trajectories import python

    with python.Sandbox("textwrap") as box:
        got = box.call("textwrap.wrap", {"text": "The quick brown fox jumps over the lazy dog.", "width": 20})
        assert got.ok and got.result == ["The quick brown fox", "jumps over the lazy", "dog."]
        bad = box.call("textwrap.wrap", {"txt": "x"})
        assert not bad.ok and bad.error_code == "TypeError" and "required positional argument" in bad.error_message
        assert box.call("os.system", {"command": "true"}).error_code == "NotAllowed"
    with pytest.raises(ValueError, match="allow-list"):
        python.Sandbox("os")
    # the audit hook, on a module the allow-list would never admit
    box = python.Sandbox.__new__(python.Sandbox)
    box.module, box._proc, box._dir = "os", None, None
    with box.__class__.__enter__(box) as b:
        assert b.call("system", {"command": "touch /tmp/forge-sandbox-escape"}).error_code == "PermissionError"
        assert b.call("mkdir", {"path": "/tmp/forge-sandbox-dir"}).error_code == "PermissionError"
        assert b.call("mkdir", {"path": "inside"}).ok, "its own scratch directory is writable"
        assert b.call("getcwd", {}).result.startswith(tempfile.gettempdir())
    from pathlib import Path

    assert not Path("/tmp/forge-sandbox-escape").exists() and not Path("/tmp/forge-sandbox-dir").exists()


def test_a_call_that_runs_too_long_is_stopped(monkeypatch):
    from corpus.trajectories import python

    monkeypatch.setattr(python, "CALL_SECONDS", 1.0)
    with python.Sandbox("math") as box:
        slow = box.call("factorial", {"x": 10**7})  # minutes of CPU
        assert not slow.ok and slow.error_code == "Timeout"
        assert box.call("factorial", {"x": 5}).result == 120, "a new worker takes over"


def test_python_tasks_carry_real_results_and_chain_them():
    records = _python_records(
        "html", {"escape": [("s", True, None), ("quote", False, "true")], "unescape": [("s", True, None)]}
    )
    records += _python_records("html", {"nothing": [("s", True, None)]})[:1]
    records[-1]["id"], records[-1]["operation_id"] = "html9", "html.nothing"
    docs, rejects, counters = split(
        synthesize_group(pa.Table.from_pylist(records), SynthesizeSection(max_per_api=12, irrelevance_share=0), seed=3)
    )
    assert docs.num_rows >= 6 and counters["records_in"] == docs.num_rows + rejects.num_rows
    assert Counter(rejects.column("reason").to_pylist()) == {"call_failed": 1}, "html.nothing does not exist"
    texts = docs.column("text").to_pylist()
    assert any("&lt;friends&gt;" in t for t in texts), "html.escape's real output"
    chained = [json.loads(m)["blueprint"] for m in docs.column("metadata").to_pylist()]
    assert any(len(b["calls"]) == 2 and b["from_results"] for b in chained)


def test_executed_trajectories_give_usage_pairs_with_real_results(sqs_records):
    from corpus.config import ExtractStageSection
    from corpus.extract.stage import executed_usage_pair, extract_rows
    from corpus.spark.envelope import Emitter

    docs, _, _ = split(
        synthesize_group(
            pa.Table.from_pylist(sqs_records), SynthesizeSection(max_per_api=12, irrelevance_share=0), seed=42
        )
    )
    rows = [{**d, "part": "trajectory"} for d in docs.to_pylist()]
    pair = executed_usage_pair(rows[0])
    assert pair is not None
    instruction, response = pair
    assert instruction.split("\n")[0] in rows[0]["text"], "the user's own request"
    assert "import boto3" in response and "sqs = boto3.client('sqs')" in response
    url = next(line for line in response.splitlines() if '"QueueUrl"' in line)
    assert url.startswith("# → ") and "https://sqs.us-east-1.amazonaws.com/123456789012/" in url, "a real result"
    out = Emitter("extract")
    extract_rows(rows, ExtractStageSection(lang=[]), out)
    made = [r for r in out.rows if r.get("_kind") == "doc"]
    assert len(made) >= 0.8 * len(rows)
    assert all(json.loads(r["metadata"])["extractor"] == "executed_usage" for r in made)
    broken = {**rows[0], "text": rows[0]["text"].replace("### Tool result", "### Tool output")}
    assert executed_usage_pair(broken) is None, "a text changed on the way gives no pair"


def test_ids_moto_makes_with_uuid4_are_the_same_in_every_run():
    """CodeDeploy's mock makes application ids with ``uuid.uuid4()``, not moto's seeded generator: the task's
    seed decides them too (two environments, as two runs would have), a different seed gives others, and the
    process's own generators are left as they were."""
    import os
    import random

    def application_id(seed: str) -> str:
        with aws.Environment("codedeploy") as env:
            env.reset(seed)
            got = env.call("CreateApplication", {"applicationName": "billing"})
            assert got.ok, got
            return got.result["applicationId"]

    state = random.getstate()
    first, again, other = application_id("task-1"), application_id("task-1"), application_id("task-2")
    assert first == again and first != other
    assert random.getstate() == state
    assert os.urandom(16) != os.urandom(16)


def test_binary_results_are_base64_and_text_results_stay_text():
    """A KMS public key (DER bytes) reaches the trajectory as base64, as the AWS CLI prints it, not as bytes
    decoded into replacement characters; a blob that is UTF-8 (an S3 text object) stays readable text."""
    import base64

    with aws.Environment("kms") as env:
        env.reset("binary")
        key = env.call("CreateKey", {"KeySpec": "RSA_2048", "KeyUsage": "ENCRYPT_DECRYPT"})
        assert key.ok, key
        got = env.call("GetPublicKey", {"KeyId": key.result["KeyMetadata"]["KeyId"]})
        assert got.ok, got
        der = base64.b64decode(json.loads(got.full)["PublicKey"])
        assert der[:1] == b"\x30" and len(der) > 250, "the whole DER key, from the untruncated result"
        assert "\ufffd" not in got.text()
    assert aws.jsonable({"Body": "héllo wörld".encode()}) == {"Body": "héllo wörld"}  # an S3 text object
