"""ingest-trajectories on hostile input: deep JSON in each format, valid JSON of the wrong shape, a gzip bomb line,
and JSON arrays streamed item by item. Every case is a reject with its reason, the rest of the file is read, and
in = out + rejects."""

from __future__ import annotations

import gzip
import json

import pyarrow as pa
import pytest

from corpus.config import IngestTrajectoriesSection
from corpus.spark.envelope import split
from corpus.trajectories.ingest import ingest_batch, records
from tests.bombs import RSS_PRINT, deep_json, gz_long_line, peak_rss_mb

WEATHER = {
    "name": "get_weather",
    "description": "Current weather of a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
GOOD = {
    "tools": [WEATHER],
    "messages": [
        {"role": "user", "content": "What's the weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "c1", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}],
        },
    ],
}
DEEP = deep_json(100_000)


def _openai_args(arguments: str) -> dict:
    rec = json.loads(json.dumps(GOOD))
    rec["messages"][1]["tool_calls"][0]["function"]["arguments"] = arguments
    return rec


def _ingest(tmp_path, lines: list[str], name="in.jsonl", **cfg):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return _ingest_file(path, **cfg)


def _ingest_file(path, **cfg):
    cfg = IngestTrajectoriesSection(**cfg)
    task = {"pieces": [{"path": str(path), "size": path.stat().st_size, "source": "t", "part": "trajectory"}]}
    batches = list(ingest_batch([pa.RecordBatch.from_pylist([task])], cfg))
    docs, rejects, counts = split(batches)
    assert counts["records_in"] == docs.num_rows + rejects.num_rows
    return docs, rejects


DEEP_CASES = {
    "openai": json.dumps(_openai_args('{"city": ' + DEEP + "}")),
    "sharegpt": json.dumps(
        {
            "conversations": [
                {"from": "human", "value": "Paris?"},
                {"from": "function_call", "value": '{"name": "get_weather", "arguments": {"city": ' + DEEP + "}}"},
            ],
            "tools": [WEATHER],
        }
    ),
    "xlam": json.dumps(
        {
            "query": "Paris?",
            "tools": json.dumps([WEATHER]),
            "answers": '[{"name": "get_weather", "arguments": {"city": ' + DEEP + "}}]",
        }
    ),
    # BFCL's ground truth is an object in the line itself: the whole line is too deep
    "bfcl": '{"id": "x", "question": [[{"role": "user", "content": "Paris?"}]], "function": ['
    + json.dumps(WEATHER)
    + '], "ground_truth": [{"get_weather": {"city": ['
    + DEEP
    + "]}}]}",
}


@pytest.mark.parametrize("fmt", sorted(DEEP_CASES))
def test_deep_arguments_are_too_deep_in_every_format(tmp_path, fmt):
    docs, rejects = _ingest(tmp_path, [json.dumps(GOOD), DEEP_CASES[fmt], json.dumps(GOOD)])
    assert rejects.column("reason").to_pylist() == ["too_deep"]
    assert rejects.column("location").to_pylist()[0].endswith("in.jsonl:2")
    assert docs.num_rows == 2  # the good lines on either side are read


WRONG_SHAPES = {
    "content a number": (
        _openai_args('{"city": "Paris"}') | {"messages": [{"role": "user", "content": 42}, GOOD["messages"][1]]},
        "bad_message",
    ),
    "content an object": (
        {**GOOD, "messages": [{"role": "user", "content": {"text": "hi"}}, GOOD["messages"][1]]},
        "bad_message",
    ),
    "content a list of non-strings": (
        {**GOOD, "messages": [{"role": "user", "content": [1, 2]}, GOOD["messages"][1]]},
        "bad_message",
    ),
    "parameters a string": ({**GOOD, "tools": [{**WEATHER, "parameters": "city: string"}]}, "malformed_tools"),
    "property a bare type": (
        {**GOOD, "tools": [{**WEATHER, "parameters": {"type": "object", "properties": {"city": "string"}}}]},
        "malformed_tools",
    ),
    "required a string": (
        {**GOOD, "tools": [{**WEATHER, "parameters": {**WEATHER["parameters"], "required": "city"}}]},
        "malformed_tools",
    ),
    "enum a number": (
        {
            **GOOD,
            "tools": [
                {**WEATHER, "parameters": {"type": "object", "properties": {"city": {"type": "string", "enum": 3}}}}
            ],
        },
        "malformed_tools",
    ),
    "tool_calls an object": (
        {**GOOD, "messages": [GOOD["messages"][0], {"role": "assistant", "tool_calls": {"name": "get_weather"}}]},
        "malformed_call",
    ),
    "tool_call_id a list": (
        {**GOOD, "messages": [*GOOD["messages"], {"role": "tool", "tool_call_id": ["c1"], "content": "sunny"}]},
        None,
    ),
    "sharegpt value an object": (
        {
            "tools": [WEATHER],
            "conversations": [
                {"from": "human", "value": {"text": "Paris?"}},
                {"from": "function_call", "value": '{"name": "get_weather", "arguments": {"city": "Paris"}}'},
            ],
        },
        "bad_message",
    ),
    "sharegpt system a list": (
        {"system": [1], "tools": [WEATHER], "conversations": [{"from": "human", "value": "Paris?"}]},
        "bad_message",
    ),
    "sharegpt speaker a list": ({"conversations": [{"from": ["human"], "value": "Paris?"}]}, "bad_message"),
    "xlam query a list": (
        {
            "query": ["Paris?"],
            "tools": json.dumps([WEATHER]),
            "answers": json.dumps([{"name": "get_weather", "arguments": {"city": "Paris"}}]),
        },
        "bad_message",
    ),
    "xlam tools a number": ({"query": "Paris?", "tools": 5, "answers": "[]"}, "malformed_tools"),
    "bfcl content a number": (
        {"id": "b", "question": [[{"role": "user", "content": 7}]], "function": [WEATHER]},
        "bad_message",
    ),
    "description an object": ({**GOOD, "tools": [{**WEATHER, "description": {"en": "x"}}]}, "malformed_tools"),
}


@pytest.mark.parametrize("case", sorted(WRONG_SHAPES))
def test_valid_json_of_the_wrong_shape_is_a_reject(tmp_path, case):
    rec, reason = WRONG_SHAPES[case]
    docs, rejects = _ingest(tmp_path, [json.dumps(rec), json.dumps(GOOD)])
    if reason is None:  # tolerated: the odd field is ignored, the record is kept
        assert rejects.num_rows == 0 and docs.num_rows == 2
        return
    assert rejects.column("reason").to_pylist() == [reason], rejects.to_pylist()
    assert docs.num_rows == 1


def test_gzip_bomb_line_is_too_large_and_memory_stays_bounded(tmp_path):
    bomb = gz_long_line(tmp_path / "bomb.jsonl.gz", 512 << 20, before=[GOOD])
    code = f"""
import pyarrow as pa
from corpus.config import IngestTrajectoriesSection
from corpus.spark.envelope import split
from corpus.trajectories.ingest import ingest_batch
task = {{"pieces": [{{"path": {str(bomb)!r}, "size": 1, "source": "t", "part": "trajectory"}}]}}
docs, rejects, counts = split(list(ingest_batch([pa.RecordBatch.from_pylist([task])], IngestTrajectoriesSection())))
print(docs.num_rows, rejects.column("reason").to_pylist())
{RSS_PRINT}
"""
    peak, out = peak_rss_mb(code)
    assert "1 ['too_large']" in out
    assert peak < 400, f"peak RSS {peak:.0f} MB for a 512 MiB line"


def test_json_array_files_are_streamed_item_by_item(tmp_path):
    items = [GOOD, {"messages": "nope"}, _openai_args('{"city": "Lyon"}')]
    path = tmp_path / "array.json.gz"
    path.write_bytes(gzip.compress(json.dumps(items).encode()))
    docs, rejects = _ingest_file(path)
    assert docs.num_rows == 2 and rejects.column("reason").to_pylist() == ["no_messages"]
    # an item over max_record_bytes: rejected, and the array cannot be followed past it
    big = [GOOD, _openai_args(json.dumps({"city": "x" * 5000})), GOOD]
    (tmp_path / "big.json").write_text(json.dumps(big))
    got = [
        (n, type(r).__name__ if isinstance(r, Exception) else "ok")
        for n, r in records(str(tmp_path / "big.json"), IngestTrajectoriesSection(max_record_bytes=2000))
    ]
    assert got == [(1, "ok"), (2, "OverLimit")]
    docs, rejects = _ingest_file(tmp_path / "big.json", max_record_bytes=2000)
    assert docs.num_rows == 1 and rejects.column("reason").to_pylist() == ["too_large"]


def test_damaged_gzip_keeps_the_records_before_the_damage(tmp_path):
    data = gzip.compress(
        ("\n".join(json.dumps(_openai_args(json.dumps({"city": f"c{i}"}))) for i in range(200)) + "\n").encode()
    )
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(data[: len(data) // 2])
    docs, rejects = _ingest_file(path)
    assert docs.num_rows > 0
    assert rejects.column("reason").to_pylist() == ["unreadable_file"]
