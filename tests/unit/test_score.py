"""ToolRL's reward: the maximum on every BFCL ground truth, each component on hand-made perturbations, parsing of
raw model outputs, and `forge score-calls` with bad lines."""

from __future__ import annotations

import json

import pytest

from corpus.cli import main
from corpus.trajectories import bfcl
from corpus.trajectories.score import ParseError, jaccard, parse_calls, score_calls, values_equal


def answer_from_possible(ground_truth: list[dict]) -> list[dict]:
    """A valid BFCL answer: the first allowed value of every argument, optional arguments left out."""
    calls = []
    for item in ground_truth:
        ((name, args),) = item.items()
        calls.append({"name": name, "arguments": {k: v[0] for k, v in args.items() if v and v[0] != ""}})
    return calls


@pytest.mark.parametrize("category", bfcl.SINGLE_TURN)
def test_every_bfcl_ground_truth_scores_the_maximum(category):
    questions = [q for q in bfcl.load(category) if "ground_truth" in q]
    assert len(questions) >= 15, f"{category}: real BFCL data"
    for q in questions:
        result = score_calls(q["ground_truth"], answer_from_possible(q["ground_truth"]))
        assert result["correctness"] == 3.0 and result["reward"] == 4.0, (q["id"], result)


REF = [
    {"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}},
    {"name": "get_time", "arguments": {"zone": "CET"}},
]


def test_components_on_perturbations():
    exact = score_calls(REF, REF)
    assert exact == {
        "format": 1,
        "name": 1.0,
        "param_names": 2.0,
        "param_values": 3.0,
        "correctness": 3.0,
        "reward": 4.0,
    }
    s_max = 1 + (1 + 2) + (1 + 1)
    # wrong name: the second call is not matched
    wrong_name = [REF[0], {"name": "get_clock", "arguments": {"zone": "CET"}}]
    r = score_calls(REF, wrong_name)
    assert r["name"] == pytest.approx(1 / 3) and r["param_names"] == 1.0 and r["param_values"] == 2.0
    assert r["correctness"] == pytest.approx(6 * (1 / 3 + 1 + 2) / s_max - 3, abs=1e-6)
    # missing parameter
    missing = [{"name": "get_weather", "arguments": {"city": "Paris"}}, REF[1]]
    r = score_calls(REF, missing)
    assert r["param_names"] == pytest.approx(0.5 + 1) and r["param_values"] == 2.0 and r["correctness"] < 3
    # extra parameter
    extra = [{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius", "days": 3}}, REF[1]]
    r = score_calls(REF, extra)
    assert r["param_names"] == pytest.approx(2 / 3 + 1) and r["param_values"] == 3.0 and r["correctness"] < 3
    # wrong value
    wrong = [{"name": "get_weather", "arguments": {"city": "Lyon", "unit": "celsius"}}, REF[1]]
    r = score_calls(REF, wrong)
    assert r["param_names"] == 2.0 and r["param_values"] == 2.0
    assert r["correctness"] == pytest.approx(6 * (1 + 2 + 2) / s_max - 3, abs=1e-6)
    # an extra call lowers the name score only
    r = score_calls(REF, REF + [{"name": "get_time", "arguments": {"zone": "UTC"}}])
    assert r["name"] == pytest.approx(2 / 3) and r["param_values"] == 3.0 and r["correctness"] < 3
    # malformed output
    r = score_calls(REF, "get_weather(city='Paris'")
    assert r["format"] == 0 and r["correctness"] == -3.0 and r["reward"] == -3.0 and r["error"]
    # nothing right at all: the floor of a parseable prediction
    r = score_calls(REF, [{"name": "other", "arguments": {}}])
    assert r["correctness"] == -3.0 and r["reward"] == -2.0
    # a reference without calls scores 0
    assert score_calls([], [])["correctness"] == 0.0


def test_bfcl_allowed_values_and_optional_arguments():
    ref = [{"calc.area": {"shape": ["circle", "Circle"], "radius": [2, 2.0], "units": ["cm", ""]}}]
    assert (
        score_calls(ref, [{"name": "calc.area", "arguments": {"shape": "CIRCLE", "radius": 2.0}}])["correctness"] == 3.0
    ), "case-folded strings, numbers by value, the optional argument left out"
    assert (
        score_calls(ref, [{"name": "calc.area", "arguments": {"shape": "circle", "radius": 2, "units": "cm"}}])[
            "correctness"
        ]
        == 3.0
    ), "an optional argument given with an allowed value"
    r = score_calls(ref, [{"name": "calc.area", "arguments": {"shape": "circle", "radius": 2, "units": "m"}}])
    assert r["correctness"] < 3 and r["param_values"] == 2.0
    assert not values_equal(True, 1) and values_equal([1, "A"], [1.0, "a"])


def test_parsing_raw_outputs():
    as_json = '[{"name": "f", "arguments": {"a": 1}}]'
    tagged = '<tool_call>\n{"name": "f", "arguments": {"a": 1}}\n</tool_call>'
    python = "[f(a=1)]"
    openai = {"tool_calls": [{"type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}]}
    fenced = '```json\n{"name": "f", "arguments": {"a": 1}}\n```'
    for raw in (as_json, tagged, python, openai, fenced):
        calls = parse_calls(raw)
        assert [(c.name, c.arguments) for c in calls] == [("f", {"a": 1})], raw
    assert [c.name for c in parse_calls("[math.sqrt(x=4), os.path.join(a='b')]")] == ["math.sqrt", "os.path.join"]
    for bad in ("f(1, 2)", '{"name": 3}', '[{"name": "f", "arguments": "{not json"}]', "plain words", "[1, 2]"):
        with pytest.raises(ParseError):
            parse_calls(bad)
    assert jaccard(__import__("collections").Counter("aab"), __import__("collections").Counter("ab")) == 2 / 3


def test_score_calls_command(tmp_path):
    q = next(q for q in bfcl.load("parallel_multiple") if "ground_truth" in q)
    lines = [
        {"tools": q["function"], "reference": q["ground_truth"], "predicted": answer_from_possible(q["ground_truth"])},
        {"tools": q["function"], "reference": q["ground_truth"], "predicted": "not a call at all"},
        {"tools": [], "reference": REF, "predicted": json.dumps(REF)},
    ]
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(json.dumps(x) for x in lines) + "\n{broken\n" + json.dumps({"reference": []}) + "\n")
    dest = tmp_path / "out.jsonl"
    assert main(["score-calls", "--input", str(src), "--output", str(dest)]) == 0
    out = [json.loads(x) for x in dest.read_text().splitlines()]
    assert [o.get("reward") for o in out[:3]] == [4.0, -3.0, 4.0]
    assert out[0]["tools"] == q["function"] and out[1]["format"] == 0
    assert out[3]["error"].startswith(f"{src}:4:") and "missing predicted" in out[4]["error"]
    assert main(["score-calls", "--input", str(tmp_path / "nope.jsonl"), "--output", str(dest)]) == 2
