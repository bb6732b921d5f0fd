"""Instruction-response extraction without Spark: the rule-based extractors on real pages, the pair checks, and
the LLM path against a local server speaking the OpenAI chat-completions protocol (retries, cache, budget)."""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from corpus import packages
from corpus.config import ExtractStageSection, parse_config
from corpus.extract import llm, rules
from corpus.extract.stage import check_pair, extract_rows, render
from corpus.spark.envelope import Emitter, split

FAQ = """Frequently asked questions

How do I list the objects in a bucket?
Call list_objects_v2 with the bucket name. The response holds up to 1,000 keys; pass the continuation token
to get the next page.

What does a 403 error mean?
The credentials are valid but not allowed to do this: check the IAM policy of the caller.

# Pricing
Storage is billed per GB-month.
"""


def test_qa_pairs_from_a_faq_page():
    pairs = rules.qa_pairs(FAQ)
    assert [q for q, _ in pairs] == ["How do I list the objects in a bucket?", "What does a 403 error mean?"]
    assert pairs[0][1].startswith("Call list_objects_v2") and "continuation token" in pairs[0][1]
    assert "Pricing" not in pairs[1][1], "a heading ends the answer"
    # a question inside a sentence is not a heading
    assert rules.qa_pairs("If you haven't deployed an agent yet, see Do I need a DataSync agent?\nMore.") == []


def test_code_examples_from_real_readmes():
    readmes = packages.readmes()
    pairs = [p for r in readmes for p in rules.code_example_pairs(r["text"], r["title"])]
    assert len(pairs) >= 3, "installed packages' READMEs have described code examples"
    for instruction, code in pairs:
        assert "Show this with a short code example" in instruction and code.strip()
    doc = "To parse JSON text, use loads:\n\n>>> import json\n>>> json.loads('[1, 2]')\n[1, 2]\n\nMore prose."
    ((instruction, code),) = rules.code_example_pairs(doc)
    assert instruction.startswith("To parse JSON text, use loads.") and code.splitlines() == [
        ">>> import json",
        ">>> json.loads('[1, 2]')",
        "[1, 2]",
    ]


def test_api_operation_pairs_from_real_botocore_records():
    import botocore.session

    from corpus.apis import botocore_models

    session = botocore.session.get_session()
    doc = session.get_component("data_loader").load_service_model("sqs", "service-2")
    ops = {op.operation_id: op for op in botocore_models.operations(doc, client="sqs")}
    record = json.loads(json.dumps(ops["SendMessage"].record()))
    assert rules.api_operation_pair(record) is None, "no documented example: no template pair by default"
    instruction, response = rules.api_operation_pair(record, without_example=True)
    assert instruction.startswith("Deliver") and instruction.endswith("Amazon Simple Queue Service API.")
    assert "boto3.client('sqs')" in response and "client.send_message(QueueUrl=" in response
    assert "MessageBody=" in response and "`QueueUrl`" in response
    assert rules.imperative("Lists the queues.") == "List the queues"
    assert rules.imperative("Modifies a rule.") == "Modify a rule"
    assert rules.imperative("Pushes an event.") == "Push an event"
    assert rules.imperative("The queue URL.") == "", "not a verb: no instruction"


def test_api_operation_pairs_from_documented_examples():
    import botocore.session

    from corpus.apis import botocore_models

    loader = botocore.session.get_session().get_component("data_loader")
    ops = {
        op.operation_id: op
        for op in botocore_models.operations(
            loader.load_service_model("dynamodb", "service-2"),
            loader.load_service_model("dynamodb", "examples-1"),
            client="dynamodb",
        )
    }
    made = {name: rules.api_operation_pair(json.loads(json.dumps(op.record()))) for name, op in ops.items()}
    assert sum(p is not None for p in made.values()) == sum(bool(op.examples) for op in ops.values())
    instruction, response = made["DeleteItem"]
    example = json.loads(ops["DeleteItem"].record()["examples"][0])
    assert instruction.startswith(example["title"][3:].split()[0].capitalize()), instruction
    assert "Amazon DynamoDB" in instruction and json.dumps(example["input"]["TableName"]) in instruction
    assert "client = boto3.client('dynamodb')" in response and "response = client.delete_item(" in response
    assert repr(example["input"]["TableName"]) in response, "the documented values, not placeholders"


def test_pair_checks_name_the_failure():
    cfg = ExtractStageSection()
    ok = ("How do I send a message?", "Call send_message with the queue URL and the body.")
    assert check_pair(*ok, cfg) is None
    assert check_pair("  ", ok[1], cfg)[0] == "empty_instruction"
    assert check_pair(ok[0], "", cfg)[0] == "empty_response"
    assert check_pair("Why?", ok[1], cfg)[0] == "instruction_too_short"
    assert check_pair(ok[0], "Yes.", cfg)[0] == "response_too_short"
    assert check_pair(ok[0], "word " * 5000, cfg)[0] == "response_too_long"
    assert check_pair(" ".join(["word"] * 500), ok[1], cfg)[0] == "instruction_too_long"
    assert check_pair(ok[0], "How do I send a message", cfg)[0] == "response_copies_instruction"
    assert render("Q ", " A") == "### Instruction\nQ\n\n### Response\nA"


def _doc(id_, text, part="agent_web", tool=None):
    return {
        "id": id_,
        "part": part,
        "source": "s",
        "url": f"https://h/{id_}",
        "title": "T",
        "text": text,
        "tool": json.dumps(tool) if tool else None,
    }


def test_extract_rows_rejects_with_reasons_and_counts():
    cfg = ExtractStageSection()
    out = Emitter("extract")
    extract_rows(
        [
            _doc("a", FAQ),
            _doc(
                "b",
                "Wie geht das hier bitte?\nDas ist eine Antwort auf Deutsch, "
                "mit mehreren Wörtern und Sätzen, die nichts erklärt.",
            ),
            _doc("c", FAQ, part="text"),
        ],
        cfg,
        out,
    )
    docs, rejects, counters = split([out.batch()])
    assert docs.num_rows == 2 and set(docs.column("part").to_pylist()) == {"instruction"}
    assert counters["pairs_in"] == 2 + rejects.num_rows and counters["documents_scanned"] == 2
    meta = json.loads(docs.column("metadata")[0].as_py())
    assert meta["extractor"] == "qa" and meta["source_doc_id"] == "a"
    assert docs.column("source_id").to_pylist() == ["a", "a"]


def _python_tool(name: str, examples: list[dict], description: str) -> dict:
    module, _, _ = name.rpartition(".")
    return {
        "spec_format": "python",
        "provider": "python",
        "version": "3.11",
        "api": module,
        "operation_id": name,
        "sdk_name": name,
        "description": description,
        "examples": [json.dumps(e) for e in examples],
    }


def test_doctests_of_real_stdlib_functions_run_in_the_sandbox():
    """statistics' own docstrings, read from source: their doctests pass in the sandbox and the pair carries
    the session; a wrong documented output is replaced by the real one; a block that raises ends the pair
    before it (or fails it when it is the first); the sandbox refuses the network."""
    import os

    from corpus.apis import pysource
    from corpus.config import resolve_package_path
    from corpus.extract import doctests

    ops = {
        o.operation_id: o
        for o in pysource.unit_operations(
            os.path.join(resolve_package_path("python:stdlib"), "statistics.py"),
            __import__("collections").Counter(),
            2 << 20,
            256 << 20,
        )
    }
    median = json.loads(json.dumps(ops["statistics.median"].record()))

    def tool(*blocks):
        return _python_tool("statistics.mean", list(blocks), "Return the sample arithmetic mean of data.\n\nMore.")

    wrong = {"prose": "Average three numbers:", "doctest": ">>> mean([1, 2, 3])\n5"}
    raises = {"prose": "", "doctest": ">>> mean([])\n0"}
    expected_error = {
        "prose": "A string is refused:",
        "doctest": ">>> mean('a')\nTraceback (most recent call "
        "last):\nTypeError: can't convert type 'str' to numerator/denominator",
    }
    network = {"prose": "", "doctest": ">>> import socket\n>>> socket.create_connection(('127.0.0.1', 9))"}
    uses_earlier = {"prose": "Then more:", "doctest": ">>> data = [1, 2]\n>>> mean(data)\n1.5"}
    with doctests.DoctestBox() as box:
        [pair] = doctests.doctest_pairs(median, box)
        assert pair["status"] == "ok" and pair["verified"] and pair["executed"]
        assert pair["response"].startswith("```pycon\n>>> median([1, 3, 5])\n3\n")
        assert "`statistics.median` (python 3.11)" in pair["instruction"]
        [differs] = doctests.doctest_pairs(tool(wrong, expected_error, raises, uses_earlier), box, limit=4)
        [failed] = doctests.doctest_pairs(tool(raises, wrong), box)
        [refused] = doctests.doctest_pairs(tool(network), box)
    assert differs["status"] == "ok" and differs["executed"] and not differs["verified"]
    assert differs["blocks"] == 2  # the raising third block ends the pair; the fourth is not shown
    assert differs["response"].startswith("```pycon\n>>> mean([1, 2, 3])\n2\n```")  # real 2, not the documented 5
    assert "A string is refused:\n\n```pycon\n>>> mean('a')\nTraceback" in differs["response"]
    assert differs["response"].endswith("```\n\nReturn the sample arithmetic mean of data.")
    assert differs["instruction"].startswith("Average three numbers with `statistics.mean` (python 3.11)")
    assert failed["status"] == "failed" and "StatisticsError" in failed["detail"]
    assert refused["status"] == "failed" and "sandbox: socket" in refused["detail"]


def test_doctest_extractor_in_the_stage_rejects_failed_blocks():
    cfg = ExtractStageSection()
    tool = _python_tool(
        "statistics.median",
        [
            {"prose": "Find the middle value of a list of numbers:", "doctest": ">>> median([1, 3, 5])\n3"},
            {"prose": "", "doctest": ">>> median([4, 1, 2])\n2"},
        ],
        "Return the median (middle value) of numeric data.",
    )
    failing = _python_tool(
        "statistics.mean", [{"prose": "", "doctest": ">>> mean([])\n1"}], "Return the sample arithmetic mean of data."
    )
    over_cap = {**tool, "doctest_rank": cfg.doctest_max_per_api + 1}
    out = Emitter("extract")
    from corpus.extract import doctests

    with doctests.DoctestBox() as box:
        extract_rows(
            [
                {**_doc(k, "# statistics", part="tool_doc"), "tool": json.dumps(t)}
                for k, t in (("t", tool), ("f", failing), ("o", over_cap))
            ],
            cfg,
            out,
            box=box,
        )
    docs, rejects, counters = split([out.batch()])
    assert docs.num_rows == 1 and [(r["reason"], r["location"]) for r in rejects.to_pylist()] == [
        ("doctest_failed", "f")
    ]
    meta = json.loads(docs.column("metadata")[0].as_py())
    assert meta["extractor"] == "doctest" and meta["verified"] and meta["executed"]
    assert counters["doctest_pairs:verified"] == 1 and counters["doctest_pairs:failed"] == 1
    assert counters["doctest_functions_over_api_cap"] == 1


# ---------------------------------------------------------------------------------------------- the LLM path


class FakeLLM:
    """A local server speaking the chat-completions protocol. The first ``fail_first`` requests get 503 (then
    429 with Retry-After), to exercise the retries; documents mentioning 'nothing' get 'void'."""

    def __init__(self, fail_first: int = 0, garbage: bool = False, refuse: tuple[str, ...] = ()) -> None:
        self.requests: list[dict] = []
        self.auth: list[str | None] = []
        self.fail_first = fail_first
        self.garbage = garbage  # every reply is prose, not JSON (a small model without structured output)
        self.refuse = refuse  # response_format types answered with HTTP 400, as servers that lack them do
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.auth.append(self.headers.get("Authorization"))
                outer.requests.append(body)
                if len(outer.requests) <= outer.fail_first:
                    code = 503 if len(outer.requests) % 2 else 429
                    self.send_response(code)
                    self.send_header("Retry-After", "0")
                    self.end_headers()
                    return
                kind = (body.get("response_format") or {}).get("type")
                if kind in outer.refuse:
                    data = json.dumps({"error": {"message": f"response_format type {kind} is not supported"}})
                    self.send_response(400)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data.encode())
                    return
                user = body["messages"][-1]["content"]
                if outer.garbage:
                    content = "Sure! Here are some thoughts about the document, in prose."
                elif "You write training conversations" in body["messages"][0]["content"]:
                    bp = json.loads(user)
                    request = bp["request"]
                    if any("delete" in c["name"] for c in bp["calls"]):
                        request = re.sub(r'"[^"]*"', "it", request)  # a careless simulated user: the values left
                    content = json.dumps(
                        {
                            "user": f"Hi! {request}",  # out must be caught by the grounding check
                            "assistant": "All done, here is what came back.",
                        }
                    )
                elif "You check function-calling conversations" in body["messages"][0]["content"]:
                    ok = "fail-me" not in user
                    content = json.dumps({"pass": ok, "reason": "fine" if ok else "the call ignores the request"})
                elif "refine" in body["messages"][0]["content"]:
                    pair = json.loads(user)
                    content = json.dumps(
                        {
                            "instruction": pair["instruction"] + " (refined)",
                            "response": pair["response"] + " Step by step.",
                        }
                    )
                elif "nothing" in user:
                    content = "void"
                else:
                    first = user.split("\n")[0]
                    content = (
                        "```json\n"
                        + json.dumps(
                            {
                                "pairs": [
                                    {
                                        "instruction": f"Explain: {first}",
                                        "response": "Create a new key, deploy it to every "
                                        "client, then disable the old key.",
                                    }
                                ]
                            }
                        )
                        + "\n```"
                    )
                data = json.dumps(
                    {
                        "choices": [{"message": {"role": "assistant", "content": content}}],
                        "usage": {"prompt_tokens": 100, "completion_tokens": 20},
                    }
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


@pytest.fixture
def fake_llm():
    server = FakeLLM(fail_first=3)
    yield server
    server.close()


DOCS = [
    _doc(f"d{i}", f"Topic {i}: how to rotate the access keys of service number {i} safely and often.") for i in range(6)
] + [_doc("empty", "There is nothing to learn here at all, only words about words.")]


def _cfg(url, **llm_cfg):
    return parse_config(
        {
            "extract": {
                "extractors": ["qa"],
                "lang": [],
                "llm": {
                    "enabled": True,
                    "base_url": url,
                    "model": "m",
                    "backoff_seconds": 0,
                    "api_key_env": "FORGE_TEST_KEY",
                    **llm_cfg,
                },
            }
        }
    ).extract


def test_llm_extracts_with_retries_then_serves_the_cache(fake_llm, tmp_path, monkeypatch):
    from corpus.extract.stage import _Llm

    monkeypatch.setenv("FORGE_TEST_KEY", "sekrit")
    cfg = _cfg(fake_llm.url, refine=True, concurrency=3)
    out = Emitter("extract")
    extract_rows(DOCS, cfg, out, _Llm(cfg, str(tmp_path / "cache"), 1.0))
    docs, rejects, counters = split([out.batch()])
    assert docs.num_rows == 6 and rejects.num_rows == 0
    assert counters["llm_void"] == 1 and counters["llm_documents_with_pairs"] == 6
    assert counters["llm_ok"] == 7 and counters["refine_ok"] == 6, "after the retried failures"
    assert len(fake_llm.requests) == 3 + 13, "3 failed attempts were retried"
    assert fake_llm.requests[-1]["response_format"]["type"] == "json_schema"  # structured output asked for
    assert counters["llm_prompt_tokens"] + counters["refine_prompt_tokens"] == 1300
    assert counters["llm_completion_tokens"] + counters["refine_completion_tokens"] == 260
    assert set(fake_llm.auth) == {"Bearer sekrit"}
    text = docs.column("text")[0].as_py()
    assert "(refined)" in text and "Step by step." in text
    assert all(json.loads(m)["refined"] for m in docs.column("metadata").to_pylist())
    # a rerun is served from the cache: no request reaches the server, the same pairs come out
    before = len(fake_llm.requests)
    again = Emitter("extract")
    extract_rows(DOCS, cfg, again, _Llm(cfg, str(tmp_path / "cache"), 1.0))
    docs2, _, counters2 = split([again.batch()])
    assert len(fake_llm.requests) == before and counters2["llm_cached"] + counters2["refine_cached"] == 13
    assert docs2.column("id").to_pylist() == docs.column("id").to_pylist()


def test_llm_budget_stops_cleanly(fake_llm, tmp_path, monkeypatch):
    from corpus.extract.stage import _Llm

    monkeypatch.setenv("FORGE_TEST_KEY", "k")
    fake_llm.fail_first = 0
    # each request reserves prompt chars / 2 + max_tokens (~200 + 64): three fit in 1,000 tokens, not four
    cfg = _cfg(fake_llm.url, max_tokens=64, max_total_tokens=1000, concurrency=1)
    out = Emitter("extract")
    task = _Llm(cfg, None, 1.0)
    extract_rows(DOCS, cfg, out, task)
    docs, _, counters = split([out.batch()])
    sent = len(fake_llm.requests)
    assert 1 <= sent < len(DOCS) and counters["llm_skipped_budget"] == len(DOCS) - sent
    assert task.client.budget.tokens == 120 * sent <= 1000
    assert docs.num_rows == sent


def test_llm_errors_are_counted_and_fail_the_check(tmp_path, monkeypatch, caplog):
    from corpus.extract.stage import _Llm

    monkeypatch.setenv("FORGE_TEST_KEY", "k")
    cfg = _cfg("http://127.0.0.1:9/v1", retries=0, timeout_seconds=2)  # nothing listens on port 9
    out = Emitter("extract")
    extract_rows(DOCS[:2], cfg, out, _Llm(cfg, None, 1.0))
    _, _, counters = split([out.batch()])
    assert counters["llm_error"] == 2
    with pytest.raises(llm.LlmError, match=r"2 of 2 llm calls to http://127.0.0.1:9/v1 \(model m\) failed"):
        llm.check_failures("extract", {"llm": cfg.llm}, counters, 0.2)
    assert "2 of 2 llm calls" in caplog.text  # the console warning, before the error
    # under the limit: a warning, and the figures for the stats
    caplog.clear()
    fine = {"llm_ok": 9, "llm_error": 1}
    assert llm.check_failures("extract", {"llm": cfg.llm}, fine, 0.2)["llm"]["calls"] == 10
    assert "1 of 10 llm calls" in caplog.text
    monkeypatch.delenv("FORGE_TEST_KEY")
    with pytest.raises(llm.LlmError, match="FORGE_TEST_KEY"):
        _Llm(cfg, None, 1.0)


def test_llm_parse_helpers():
    assert llm.parse_pairs("void") == [] and llm.parse_pairs("no json here") is None
    assert llm.parse_pairs('{"pairs": []}') == [] and llm.parse_pairs('{"pairs": "x"}') is None
    assert llm.parse_pairs('{"pairs": [{"instruction": "a", "response": "b"}]}') == [("a", "b")]


def test_unreadable_replies_are_asked_again_once_counted_and_never_cached(tmp_path, monkeypatch):
    from corpus.extract.stage import _Llm

    monkeypatch.setenv("FORGE_TEST_KEY", "k")
    server = FakeLLM(garbage=True)
    try:
        cfg = _cfg(server.url)
        out = Emitter("extract")
        extract_rows(DOCS[:3], cfg, out, _Llm(cfg, str(tmp_path / "cache"), 1.0))
        docs, _, counters = split([out.batch()])
        assert docs.num_rows == 0
        assert counters["llm_unreadable"] == 3 and counters["llm_reasked"] == 3 and len(server.requests) == 6
        asked_again = [r["messages"] for r in server.requests if len(r["messages"]) > 2]
        assert len(asked_again) == 3
        assert asked_again[0][-2]["role"] == "assistant" and "could not be read" in asked_again[0][-1]["content"]
        assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").rglob("*.json"))
        with pytest.raises(llm.LlmError, match="3 unreadable"):
            llm.check_failures("extract", {"llm": cfg.llm}, counters, 0.2)
    finally:
        server.close()


def test_response_format_steps_down_when_the_server_refuses_it(tmp_path, monkeypatch):
    from corpus.extract.stage import _Llm

    monkeypatch.setenv("FORGE_TEST_KEY", "k")
    server = FakeLLM(refuse=("json_schema",))
    try:
        cfg = _cfg(server.url, concurrency=1)
        out = Emitter("extract")
        task = _Llm(cfg, None, 1.0)
        extract_rows(DOCS[:3], cfg, out, task)
        docs, _, counters = split([out.batch()])
        assert counters["llm_ok"] == 3 and counters["llm_error"] == 0 and docs.num_rows == 3
        assert [r.get("response_format", {}).get("type") for r in server.requests] == [
            "json_schema",
            "json_object",
            "json_object",
            "json_object",
        ]
        assert server.requests[-1]["response_format"]["schema"]["required"] == ["pairs"]
        assert counters["llm_response_format:json_schema -> json_object"] == 1
    finally:
        server.close()


def test_a_failing_endpoint_stops_being_called(monkeypatch):
    """After a few calls failing above max_llm_failure_rate, a task stops calling (skipped_failing)."""
    monkeypatch.setenv("FORGE_TEST_KEY", "k")
    cfg = _cfg("http://127.0.0.1:9/v1", retries=0, timeout_seconds=2, concurrency=1).llm
    client = llm.Client(cfg, None, llm.Budget(), "k", max_failure_rate=0.2, scope="t-stop")
    replies = [client.complete([{"role": "user", "content": f"q{i}"}]) for i in range(30)]
    assert [r.status for r in replies].count("error") == llm.MIN_CALLS_BEFORE_STOP
    assert [r.status for r in replies].count("skipped_failing") == 30 - llm.MIN_CALLS_BEFORE_STOP
    # another client of the same stage run in this worker shares the count
    other = llm.Client(cfg, None, llm.Budget(), "k", max_failure_rate=0.2, scope="t-stop")
    assert other.complete([{"role": "user", "content": "q"}]).status == "skipped_failing"


def test_doctest_output_is_the_same_in_every_run_and_the_limit_is_cpu_time():
    """Random draws in a block (random, numpy's global generator, an unseeded default_rng()) give the same output
    in two separate sandboxes, as a run on another day would; a block that computes past the CPU budget stops
    with a CPU limit, whatever the machine's load."""
    from corpus.extract import doctests

    block = (
        ">>> import random\n>>> random.random()\n0.1\n"
        ">>> import numpy as np\n>>> float(np.random.rand())\n0.1\n"
        ">>> float(np.random.default_rng().normal())\n0.1\n"
        ">>> float(np.random.default_rng(7).normal())\n0.1\n"
    )
    runs = []
    for _ in range(2):
        with doctests.DoctestBox() as box:
            got = box.run("statistics", "statistics.mean", block)
        assert got["ok"], got
        runs.append([e["got"] for e in got["examples"]])
    values = [g for g in runs[0] if g]  # the imports print nothing
    assert runs[0] == runs[1] and len(set(values)) == 4, runs
    import numpy as np

    assert float(values[3]) == float(np.random.default_rng(7).normal())  # a seed the block gives is kept
    with doctests.DoctestBox() as box:
        busy = box.run("statistics", "statistics.mean", ">>> while True: pass\n")
    assert not busy["ok"] and busy["code"] == "CpuLimit", busy


def test_every_extractor_object_is_a_config_choice_and_the_reverse():
    """The rule extractors (corpus.extract.extractors.EXTRACTORS) and `extract.extractors`' choices are the same
    names, and the default enables them all."""
    import typing

    from corpus.config import ExtractStageSection
    from corpus.extract.extractors import EXTRACTORS

    field = ExtractStageSection.model_fields["extractors"]
    choices = typing.get_args(typing.get_args(field.annotation)[0])
    assert sorted(choices) == sorted(e.name for e in EXTRACTORS)
    assert sorted(field.default) == sorted(choices)
    assert {e.reads for e in EXTRACTORS} == {"trajectory", "tool", "text"}


class _Watched(dict):
    """A row that records the columns read from it."""

    read: set = set()

    def __getitem__(self, key):
        _Watched.read.add(key)
        return super().__getitem__(key)

    def get(self, key, default=None):
        _Watched.read.add(key)
        return super().get(key, default)


def test_extract_rows_reads_only_the_columns_the_stage_reads_from_the_files():
    """The stage's tasks read READ_COLUMNS from the row groups (and tool docs get ``tool`` by a join); an
    extractor that read another column would see None there."""
    from corpus import schema
    from corpus.extract.stage import READ_COLUMNS

    blank = {f.name: None for f in schema.document().arrow}
    code = (
        "Install the client and list the buckets:\n\n```python\nimport boto3\nboto3.client('s3').list_buckets()\n```\n"
    )
    tool = _python_tool("statistics.median", [{"prose": "The middle:", "doctest": ">>> median([1, 3])\n2.0"}], "x")
    trajectory = {
        "executed": True,
        "blueprint": {"library": "boto3", "sdk_calls": ["s3.list_buckets"]},
    }
    rows = [
        _Watched({**blank, **_doc("a", FAQ)}),
        _Watched({**blank, **_doc("b", code, part="text")}),
        _Watched({**blank, **_doc("t", "# statistics", part="tool_doc", tool=tool)}),
        _Watched(
            {**blank, **_doc("j", "user: list my buckets", part="trajectory"), "metadata": json.dumps(trajectory)}
        ),
    ]
    _Watched.read = set()
    cfg = ExtractStageSection(parts=["agent_web", "text", "tool_doc", "trajectory"])
    out = Emitter("extract")
    extract_rows(rows, cfg, out)
    assert split([out.batch()])[0].num_rows >= 2  # the FAQ's pairs and the code example at least
    assert {"id", "part", "text", "metadata"} <= _Watched.read
    assert _Watched.read <= set(READ_COLUMNS) | {"tool"}
