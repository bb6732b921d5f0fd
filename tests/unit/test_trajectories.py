"""Trajectory importers (each format; BFCL on its real files), verification (every check's failure reason) and
rendering, without Spark."""

from __future__ import annotations

import json

import pytest

from corpus.config import IngestTrajectoriesSection
from corpus.signals import as_dict
from corpus.spark.envelope import Emitter, split
from corpus.trajectories import bfcl, formats
from corpus.trajectories.ingest import process_record
from corpus.trajectories.verify import render, verify

WEATHER = {
    "name": "get_weather",
    "description": "Current weather of a city.",
    "parameters": {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            "days": {"type": "integer", "minimum": 1, "maximum": 14},
        },
        "required": ["city"],
    },
}

OPENAI = {
    "tools": [{"type": "function", "function": WEATHER}],
    "messages": [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": "What's the weather in Paris, in celsius?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris", "unit": "celsius"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": '{"temp": 18}'},
        {"role": "assistant", "content": "It is 18 °C in Paris."},
    ],
}

GLAIVE = {
    "system": "SYSTEM: You are a helpful assistant with access to the following functions. Use them if "
    "required - " + json.dumps(WEATHER),
    "conversations": [
        {"from": "human", "value": "Weather in Paris please"},
        {"from": "function_call", "value": json.dumps({"name": "get_weather", "arguments": {"city": "Paris"}})},
        {"from": "observation", "value": '{"temp": 18}'},
        {"from": "gpt", "value": "18 degrees."},
    ],
}

TOOLACE = {
    "system": "You can call: " + json.dumps([WEATHER]),
    "conversations": [
        {"from": "user", "value": "Paris weather for 3 days"},
        {"from": "assistant", "value": "[get_weather(city='Paris', days=3)]"},
        {"from": "tool", "value": '[{"name": "get_weather", "results": {}}]'},
        {"from": "assistant", "value": "Here it is."},
    ],
}

XLAM = {
    "id": 7,
    "query": "Weather in Paris?",
    "tools": json.dumps([WEATHER]),
    "answers": json.dumps([{"name": "get_weather", "arguments": {"city": "Paris"}}]),
}


def _calls(traj):
    return [(c["name"], json.loads(c["arguments"])) for m in traj["messages"] for c in (m["tool_calls"] or [])]


def test_each_format_imports_to_the_same_shape():
    for rec, fmt in ((OPENAI, "openai"), (GLAIVE, "sharegpt"), (TOOLACE, "sharegpt"), (XLAM, "xlam")):
        got, traj = formats.import_record(rec)
        assert got == fmt
        assert [t["name"] for t in traj["tools"]] == ["get_weather"], fmt
        assert _calls(traj)[0][0] == "get_weather" and _calls(traj)[0][1]["city"] == "Paris"
        assert all(set(m) == {"role", "content", "tool_calls", "tool_name"} for m in traj["messages"])
        assert verify(traj)["schema"] == "pass", fmt
    _, traj = formats.import_record(OPENAI)
    assert traj["messages"][3] == {
        "role": "tool",
        "content": '{"temp": 18}',
        "tool_calls": None,
        "tool_name": "get_weather",
    }
    assert _calls(formats.import_record(TOOLACE)[1]) == [("get_weather", {"city": "Paris", "days": 3})]


def test_bfcl_real_files_import_with_their_answers():
    for category in ("simple_python", "parallel_multiple", "live_multiple"):
        questions = bfcl.load(category)
        for q in questions:
            fmt, traj = formats.import_record(q)
            assert fmt == "bfcl" and traj["messages"][0]["role"] in ("user", "system")
            assert traj["reference_calls"] == q["ground_truth"]
            assert len(_calls(traj)) == len(q["ground_truth"])


def test_bad_records_name_their_reason():
    cases = {
        "not_an_object": [1, 2],
        "unknown_format": {"text": "hello"},
        "no_messages": {"messages": []},
        "bad_message": {"messages": [{"role": "robot", "content": "x"}]},
        "malformed_tools": {"messages": [{"role": "user", "content": "x"}], "tools": "{not json"},
        "malformed_call": {"query": "q", "tools": "[]", "answers": '[{"name": "f", "arguments": "{bad"}]'},
    }
    for reason, rec in cases.items():
        with pytest.raises(formats.FormatError) as err:
            formats.import_record(rec)
        assert err.value.reason == reason, (reason, err.value)


def _with_call(args: dict, name: str = "get_weather", user: str = "Weather in Paris in celsius for 3 days"):
    return {
        "tools": [WEATHER],
        "reference_calls": None,
        "messages": [
            formats.message("user", user),
            formats.message("assistant", None, [{"name": name, "arguments": json.dumps(args)}]),
        ],
    }


def test_each_check_names_its_failure():
    assert verify(_with_call({"city": "Paris", "unit": "celsius", "days": 3})) == {
        "format": "pass",
        "schema": "pass",
        "grounding": "pass",
    }
    cases = {
        "unknown_function": _with_call({"city": "Paris"}, name="get_forecast"),
        "missing_required": _with_call({"unit": "celsius"}),
        "unknown_parameter": _with_call({"city": "Paris", "country": "FR"}),
        "wrong_type": _with_call({"city": "Paris", "days": "three"}),
        "not_in_enum": _with_call({"city": "Paris", "unit": "kelvin"}),
        "out_of_range": _with_call({"city": "Paris", "days": 30}),
    }
    for reason, traj in cases.items():
        assert verify(traj)["schema"].startswith(reason + ":"), (reason, verify(traj))
    assert verify(_with_call({"city": "Lyon"}))["grounding"] == "ungrounded_argument: get_weather.city"
    no_calls = {"tools": [WEATHER], "messages": [formats.message("user", "hi")], "reference_calls": None}
    assert verify(no_calls) == {"format": "no_tool_calls", "schema": "skipped", "grounding": "skipped"}
    assert not verify(_with_call({"city": "Paris", "days": True}))["schema"] == "pass", "a bool is not an integer"


def test_process_record_rejects_and_scores():
    cfg = IngestTrajectoriesSection()
    out = Emitter("ingest-trajectories")
    q = bfcl.load("simple_python")[0]
    process_record(q, "f.jsonl:1", "bfcl", "trajectory", cfg, out)
    process_record(ValueError("Expecting value"), "f.jsonl:2", "bfcl", "trajectory", cfg, out)
    process_record(_with_call({"city": "Paris", "days": 30}), "f.jsonl:3", "x", "trajectory", cfg, out)
    process_record(_with_call({"city": "Lyon"}), "f.jsonl:4", "x", "trajectory", cfg, out)
    process_record(
        _with_call({"city": "Lyon"}), "f.jsonl:5", "x", "trajectory", IngestTrajectoriesSection(grounding="reject"), out
    )
    docs, rejects, counters = split([out.batch()])
    assert docs.num_rows == 2 and counters["records_in"] == 5
    assert [(r["reason"], r["location"]) for r in rejects.to_pylist()] == [
        ("malformed_json", "f.jsonl:2"),
        ("out_of_range", "f.jsonl:3"),
        ("ungrounded_argument", "f.jsonl:5"),
    ]
    first = docs.to_pylist()[0]
    assert as_dict(first["signals"]) == {"tool_reward": 4.0} and first["source_id"] == q["id"]
    assert first["text"].startswith("### Tools\n") and "<tool_call>" in first["text"]
    assert json.loads(docs.to_pylist()[1]["metadata"])["checks"]["grounding"].startswith("ungrounded_argument")


def test_render_format():
    text = render(formats.import_record(OPENAI)[1])
    assert text.splitlines()[0] == "### Tools"
    assert "### System\nYou are helpful." in text and "### User\nWhat's the weather in Paris" in text
    assert '<tool_call>{"name": "get_weather", "arguments": {"city":"Paris","unit":"celsius"}}</tool_call>' in text
    assert '### Tool result (get_weather)\n{"temp": 18}' in text and text.endswith("It is 18 °C in Paris.")


def test_llm_judge_committee_rejects_by_majority_and_caches(tmp_path, monkeypatch):
    from corpus.config import JudgeSection
    from corpus.trajectories.judge import Judge
    from corpus.trajectories.ingest import emit
    from tests.unit.test_extract import FakeLLM

    server = FakeLLM(fail_first=1)
    monkeypatch.setenv("FORGE_TEST_KEY", "k")
    try:
        cfg = IngestTrajectoriesSection(
            judge=JudgeSection(
                enabled=True, base_url=server.url, votes=3, backoff_seconds=0, api_key_env="FORGE_TEST_KEY"
            )
        )
        failing = {
            "tools": [WEATHER],
            "messages": [
                {"role": "user", "content": "Weather in fail-me"},
                {
                    "role": "assistant",
                    "tool_calls": [{"function": {"name": "get_weather", "arguments": '{"city": "fail-me"}'}}],
                },
            ],
        }

        def run():
            out, kept = Emitter("ingest-trajectories"), []
            for i, rec in enumerate((OPENAI, failing)):
                process_record(rec, f"f.jsonl:{i + 1}", "s", "trajectory", cfg, out, kept)
            emit(out, kept, Judge(cfg.judge, str(tmp_path / "cache"), 1.0, "k"))
            return split([out.batch()])

        docs, rejects, counters = run()
        assert docs.num_rows == 1 and rejects.to_pylist()[0]["reason"] == "judge_rejected"
        assert rejects.to_pylist()[0]["detail"].startswith("3 of 3: the call ignores the request")
        assert rejects.to_pylist()[0]["location"] == "f.jsonl:2"
        assert counters["judge_ok"] == 6 and len(server.requests) == 6 + 1, "three judges each, one retry"
        docs2, _, counters2 = run()
        assert counters2["judge_cached"] == 6 and len(server.requests) == 7 and docs2.num_rows == 1
    finally:
        server.close()


@pytest.mark.parametrize("on_no_verdict", ["reject", "keep"])
def test_a_judge_without_a_verdict_rejects_unless_told_to_keep(tmp_path, monkeypatch, on_no_verdict):
    """The judge's replies are prose (no verdict after one re-ask) or the endpoint is down: nothing passes on a
    missing verdict by default, and the stage's check sees every failure."""
    from corpus.config import JudgeSection
    from corpus.extract import llm
    from corpus.trajectories.judge import Judge
    from corpus.trajectories.ingest import emit
    from tests.unit.test_extract import FakeLLM

    for server in (FakeLLM(garbage=True), None):
        url = server.url if server else "http://127.0.0.1:9/v1"
        cfg = IngestTrajectoriesSection(
            judge=JudgeSection(
                enabled=True, base_url=url, retries=0, backoff_seconds=0, timeout_seconds=2, on_no_verdict=on_no_verdict
            )
        )
        out, kept = Emitter("ingest-trajectories"), []
        process_record(OPENAI, "f.jsonl:1", "s", "trajectory", cfg, out, kept)
        emit(out, kept, Judge(cfg.judge, None, 1.0, None))
        docs, rejects, counters = split([out.batch()])
        if on_no_verdict == "reject":
            assert docs.num_rows == 0 and rejects.to_pylist()[0]["reason"] == "judge_no_verdict"
            assert ("unreadable" if server else "error") in rejects.to_pylist()[0]["detail"]
        else:
            assert docs.num_rows == 1
        assert counters["judge_no_verdict"] == 1
        assert counters["judge_unreadable" if server else "judge_error"] == 1
        with pytest.raises(llm.LlmError, match="judge calls"):
            llm.check_failures("ingest-trajectories", {"judge": cfg.judge}, counters, 0.2)
        if server:
            server.close()


def test_a_verdict_must_be_a_boolean():
    from corpus.trajectories.judge import parse_verdict

    assert parse_verdict('{"pass": true, "reason": "ok"}') == (True, "ok")
    assert parse_verdict('{"pass": "maybe"}') is None and parse_verdict("I think it passes.") is None
