"""The `decontaminate` and `redact` stages on Spark: real BFCL v4 questions planted in real README text are all
removed (reason naming the benchmark), clean text loses nothing, span mode cuts, user benchmarks, redaction."""

from __future__ import annotations

import json
import random

import pytest

from corpus.config import BenchmarkSpec, InputSpec, parse_config
from corpus.decontaminate import benchmarks, ngrams
from corpus.pipeline import run_single
from corpus.signals import as_dict
from tests.conftest import assert_stage_output

pytestmark = pytest.mark.spark


def _bfcl_questions(n: int, min_tokens: int = 8) -> list[str]:
    spec = BenchmarkSpec(name="bfcl-v4", path="builtin:bfcl-v4", fields=["question"])
    items = [i["text"] for t in benchmarks.tasks(spec) for i in benchmarks.read_items(t)]
    usable = sorted({q for q in items if len(ngrams.tokens(q)) >= min_tokens})
    return random.Random(7).sample(usable, n)


@pytest.fixture(scope="module")
def planted(spark, sample_dir, tmp_path_factory):
    """ingest-text output: every real package README (clean) + 60 READMEs with a BFCL question planted."""
    out = tmp_path_factory.mktemp("decontam")
    readmes = [json.loads(line) for line in (sample_dir / "text" / "package-readmes.jsonl").open()]
    questions = _bfcl_questions(60)
    rows = [{"id": f"clean-{i}", "text": r["text"]} for i, r in enumerate(readmes)]
    for i, q in enumerate(questions):
        host = readmes[i % len(readmes)]["text"]
        cut = len(host) // 2
        rows.append({"id": f"planted-{i}", "text": host[:cut] + "\n\n" + q + "\n\n" + host[cut:]})
    path = out / "docs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    run_single(
        spark,
        parse_config({}),
        "ingest-text",
        [InputSpec(path=str(path), source="mixed")],
        str(out / "ingest-text"),
        False,
    )
    return out, questions, len(readmes)


def test_planted_benchmark_questions_are_all_removed_and_clean_text_kept(spark, planted):
    out, questions, clean = planted
    stats = run_single(
        spark, parse_config({}), "decontaminate", [str(out / "ingest-text")], str(out / "decontaminate"), False
    )
    docs, rejects, _ = assert_stage_output(out / "decontaminate", stats)
    kept_ids = set(docs.column("source_id").to_pylist())
    assert not any(k.startswith("planted-") for k in kept_ids), "a planted question survived"
    assert sum(k.startswith("clean-") for k in kept_ids) == clean, "a clean README was removed"
    assert set(rejects.column("reason").to_pylist()) == {"contaminated:bfcl-v4"}
    assert rejects.num_rows == len(questions)
    assert all("bfcl-v4" in d and "13-grams" in d for d in rejects.column("detail").to_pylist())
    bench = stats["extra"]["benchmarks"]["bfcl-v4"]
    assert bench["items"] > 4000 and bench["items_too_short"] > 0 and stats["extra"]["prefilter"]


def test_short_benchmark_items_are_matched_exactly_as_lines(spark, sample_dir, tmp_path):
    """Items under `min_item_tokens` words ("What is the capital of Brazil?"): a line that *is* one (a user turn, a
    question line) removes its document; the same words inside a longer line do not."""
    spec = BenchmarkSpec(name="bfcl-v4", path="builtin:bfcl-v4", fields=["question"])
    items = [i["text"] for t in benchmarks.tasks(spec) for i in benchmarks.read_items(t)]
    short = sorted({q for q in items if 3 <= len(ngrams.tokens(q)) < 8 and "\n" not in q})
    picked = random.Random(3).sample(short, 30)
    readme = json.loads((sample_dir / "text" / "package-readmes.jsonl").open().readline())["text"]
    rows = []
    for i, q in enumerate(picked[:10]):  # as a trajectory's user turn, case and punctuation changed
        rows.append(
            {
                "id": f"turn-{i}",
                "text": f"### Tools\n{{}}\n\n### User\n{q.upper().rstrip('?.!')} \n\n### Assistant\nSure.",
            }
        )
    for i, q in enumerate(picked[10:20]):  # as a line of a page
        rows.append({"id": f"line-{i}", "text": readme[:800] + "\n" + q + "\n" + readme[800:1600]})
    for i, q in enumerate(picked[20:]):  # inside a longer sentence: not the item itself
        rows.append({"id": f"inside-{i}", "text": f"Our FAQ once asked: {q} We answer that below, with examples."})
    path = tmp_path / "short.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    run_single(
        spark,
        parse_config({}),
        "ingest-text",
        [InputSpec(path=str(path), source="mixed")],
        str(tmp_path / "ingest-text"),
        False,
    )
    stats = run_single(
        spark,
        parse_config({}),
        "decontaminate",
        [str(tmp_path / "ingest-text")],
        str(tmp_path / "decontaminate"),
        False,
    )
    docs, rejects, _ = assert_stage_output(tmp_path / "decontaminate", stats)
    kept = set(docs.column("source_id").to_pylist())
    assert kept == {f"inside-{i}" for i in range(10)}, sorted(kept)
    assert all("exact match" in d for d in rejects.column("detail").to_pylist())
    assert stats["counters"]["documents_matching_exact:bfcl-v4"] == 20
    assert stats["extra"]["short_items_exact"] > 500
    off = run_single(
        spark,
        parse_config({"decontaminate": {"exact_short_items": False}}),
        "decontaminate",
        [str(tmp_path / "ingest-text")],
        str(tmp_path / "off"),
        False,
    )
    assert off["rows_rejected"] == 0


def test_without_prefilter_the_join_alone_gives_the_same_answer(spark, planted):
    out, questions, _ = planted
    cfg = parse_config({"decontaminate": {"prefilter": False}})
    stats = run_single(spark, cfg, "decontaminate", [str(out / "ingest-text")], str(out / "no-prefilter"), False)
    assert stats["rows_rejected"] == len(questions) and not stats["extra"]["prefilter"]


@pytest.mark.parametrize("mode", ["document", "span"])
def test_many_matches_go_through_spark_joins_with_the_same_output(spark, planted, monkeypatch, mode):
    """Above BROADCAST_MATCHES matched documents the documents are joined with their matches by Spark instead of
    each task reading the matches whole: the same documents, rejects and counters either way."""
    from corpus.decontaminate import stage as decontaminate

    out, questions, _ = planted
    cfg = parse_config({"decontaminate": {"mode": mode}})
    results = []
    for limit in (decontaminate.BROADCAST_MATCHES, 0):
        monkeypatch.setattr(decontaminate, "BROADCAST_MATCHES", limit)
        dest = out / f"matches-{mode}-{limit}"
        stats = run_single(spark, cfg, "decontaminate", [str(out / "ingest-text")], str(dest), False)
        docs, rejects, _ = assert_stage_output(dest, stats)
        assert stats["extra"]["documents_matched"] >= len(questions) - 5
        results.append(
            (
                sorted(zip(docs.column("id").to_pylist(), docs.column("text").to_pylist())),
                sorted(zip(rejects.column("id").to_pylist(), rejects.column("detail").to_pylist())),
                stats["counters"],
            )
        )
    assert results[0] == results[1]


def test_span_mode_cuts_the_question_and_keeps_the_rest(spark, planted):
    out, questions, clean = planted
    cfg = parse_config({"decontaminate": {"mode": "span", "span_margin_chars": 20}})
    stats = run_single(spark, cfg, "decontaminate", [str(out / "ingest-text")], str(out / "span"), False)
    docs, rejects, _ = assert_stage_output(out / "span", stats)
    cut = [r for r in docs.to_pylist() if r["source_id"].startswith("planted-")]
    assert len(cut) + rejects.num_rows == len(questions) and len(cut) >= len(questions) - 5
    for r in cut:
        q = questions[int(r["source_id"].split("-")[1])]
        assert q not in r["text"] and as_dict(r["signals"])["decontaminated_bytes"] >= len(q.encode())
    assert stats["counters"]["documents_cut"] == len(cut)


def test_user_benchmark_sets_from_jsonl(spark, planted, tmp_path):
    out, questions, _ = planted
    bench = tmp_path / "mine.jsonl"
    bench.write_text("".join(json.dumps({"prompt": q}) + "\n" for q in questions[:5]))
    cfg = parse_config({"decontaminate": {"benchmarks": [{"name": "mine", "path": str(bench), "fields": ["prompt"]}]}})
    stats = run_single(spark, cfg, "decontaminate", [str(out / "ingest-text")], str(tmp_path / "d"), False)
    assert stats["rejects_by_reason"] == {"contaminated:mine": 5}


def test_redact_stage_redacts_and_counts_tokens(spark, planted, tmp_path):
    """Real READMEs (whatever PII they hold) plus documents with known secrets."""
    out, _, _ = planted
    secrets = tmp_path / "secrets.jsonl"
    secrets.write_text(
        "".join(
            json.dumps({"id": f"s{i}", "text": t}) + "\n"
            for i, t in enumerate(
                [
                    "Write to jane.roe@gmail.com for access; the server is 8.8.8.8.",
                    "aws_access_key_id = AKIAZ3MSJV4WXYZ12345 (the docs use AKIAIOSFODNN7EXAMPLE)",
                    'config = {"api_key": "3f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c"}',
                ]
            )
        )
    )
    run_single(
        spark,
        parse_config({}),
        "ingest-text",
        [InputSpec(path=str(secrets), source="secrets")],
        str(tmp_path / "secrets"),
        False,
    )
    stats = run_single(
        spark,
        parse_config({}),
        "redact",
        [str(out / "ingest-text"), str(tmp_path / "secrets")],
        str(tmp_path / "r"),
        False,
    )
    docs, rejects, _ = assert_stage_output(tmp_path / "r", stats)
    assert rejects.num_rows == 0 and all(n and n > 0 for n in docs.column("token_count").to_pylist())
    assert sum(docs.column("token_count").to_pylist()) == sum(
        n for k, n in stats["counters"].items() if k.startswith("tokens:")
    )
    import pyarrow.parquet as pq

    texts = docs.column("text").to_pylist()
    before = [
        t
        for d in (out / "ingest-text", tmp_path / "secrets")
        for t in pq.read_table(str(d / "data"), columns=["text"]).column("text").to_pylist()
    ]

    def added(placeholder: str) -> int:  # placeholders the stage wrote (a README may show one literally)
        return sum(t.count(placeholder) for t in texts) - sum(t.count(placeholder) for t in before)

    for kind in ("email", "ip_address", "aws_access_key"):
        assert stats["counters"][f"redacted:{kind}"] == added(f"<{kind.upper()}>") >= 1
    assert stats["counters"]["redacted:key_assignment"] == added("<SECRET>") >= 1
    mine = {r["source_id"]: r["text"] for r in docs.to_pylist() if r["source"] == "secrets"}
    assert "jane.roe" not in mine["s0"] and "AKIAIOSFODNN7EXAMPLE" in mine["s1"] and "3f9a8b" not in mine["s2"]


def test_no_benchmarks_keeps_everything(spark, planted, tmp_path):
    out, _, _ = planted
    stats = run_single(
        spark,
        parse_config({"decontaminate": {"benchmarks": []}}),
        "decontaminate",
        [str(out / "ingest-text")],
        str(tmp_path / "none"),
        False,
    )
    assert stats["rows_rejected"] == 0 and stats["rows_out"] == stats["rows_in"] > 0
