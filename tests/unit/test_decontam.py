"""Decontamination n-grams, benchmark items and span cutting, without Spark."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from corpus.config import BenchmarkSpec, DecontaminateSection
from corpus.decontaminate import benchmarks, ngrams
from corpus.io.files import InputError
from corpus.decontaminate.stage import cut_spans, decontaminate_rows
from corpus.signals import as_dict
from corpus.spark.envelope import Emitter

QUESTION = (
    "Find the area of a triangle with a base of 10 units and a height of 5 units, and tell me the perimeter as well."
)


def _matches(doc: str, item: str, n: int = 13, min_tokens: int = 8) -> int:
    _, item_h, lengths = ngrams.item_hashes(pa.array([item]), n, min_tokens)
    _, doc_h, _, _ = ngrams.corpus_hashes(pa.array([doc]), sorted(set(lengths.tolist())))
    return int(np.isin(doc_h, item_h).sum())


def test_match_ignores_case_punctuation_and_spacing():
    doc = "Intro.\n" + QUESTION.upper().replace(",", " ;").replace(" ", "   ") + "\nOutro."
    assert _matches(doc, QUESTION) == len(ngrams.tokens(QUESTION)) - 13 + 1
    assert _matches("Find the area of a circle with a radius of 10 units and tell me more.", QUESTION) == 0


def test_short_items_match_whole_and_too_short_items_are_skipped():
    short = "What is the weather like in Boston today?"  # 8 tokens: matched whole
    assert _matches(f"Q: {short.lower()} A: sunny.", short) == 1
    assert _matches("Q: what is the weather like in Boston tomorrow", short) == 0
    item, _, _ = ngrams.item_hashes(pa.array(["play baby shark song"]), 13, 8)
    assert len(item) == 0  # 4 tokens < min_item_tokens


def test_number_only_ngrams_never_match():
    item = (
        "You are given two sets of data, the first set is [12, 15, 11, 14, 18, 19, 13, 14, 15, 16, 17, 18, 19, "
        "20, 21, 22, 23, 24, 25, 26]. Can you create a histogram?"
    )
    code = "table = [" + ", ".join(str(i) for i in range(10, 40)) + "]"
    assert _matches(code, item) == 0
    assert _matches("Intro. " + item, item) > 0


def test_corpus_hashes_report_byte_spans_of_the_original_text():
    doc = "Ünïcode first — " + QUESTION
    _, item_h, _ = ngrams.item_hashes(pa.array([QUESTION]), 13, 8)
    _, hs, bs, be = ngrams.corpus_hashes(pa.array([doc]), [13])
    hit = np.isin(hs, item_h)
    raw = doc.encode()
    assert raw[bs[hit][0] : be[hit][0]].decode().startswith("Find the area")


def test_bloom_filter_has_no_false_negatives_and_few_false_positives():
    rng = np.random.default_rng(0)
    members = rng.integers(-(2**63), 2**63 - 1, 20_000, dtype=np.int64)
    bloom = ngrams.bloom_filter(members)
    doc = " ".join(f"w{i}" for i in range(5000))
    _, all_h, _, _ = ngrams.corpus_hashes(pa.array([doc]), [13])
    _, kept, _, _ = ngrams.corpus_hashes(pa.array([doc]), [13], bloom)
    assert len(kept) <= 0.01 * len(all_h)  # non-members: ~0.05% pass
    bloom2 = ngrams.bloom_filter(all_h[:100])
    _, kept2, _, _ = ngrams.corpus_hashes(pa.array([doc]), [13], bloom2)
    assert set(all_h[:100].tolist()) <= set(kept2.tolist())


def test_cut_spans_widens_merges_and_respects_utf8():
    text = "é" * 50 + " SECRET BENCHMARK TEXT " + "ü" * 50
    raw = text.encode()
    s = raw.index(b"SECRET")
    pieces, removed = cut_spans(text, [(s, s + len("SECRET BENCHMARK TEXT"))], margin=5)
    assert len(pieces) == 2 and all("SECRET" not in p for p in pieces)
    assert removed >= 21 + 10 - 2
    assert pieces[0].startswith("é") and pieces[1].endswith("ü")  # still valid text (no split characters)
    pieces, _ = cut_spans("a b c d e f", [(0, 1), (2, 3)], margin=0)
    assert pieces == ["c d e f"]


def _row(text, **match):
    base = {
        "id": "d1",
        "part": "text",
        "source": "s",
        "source_id": None,
        "url": None,
        "title": None,
        "date": None,
        "lang": "en",
        "lang_score": 1.0,
        "text": text,
        "metadata": "{}",
        "signals": None,
        "dedup_cluster": None,
        "agent_score": None,
        "token_count": None,
    }
    return {**base, **match}


def test_rows_are_kept_cut_or_rejected_with_the_benchmark_in_the_reason():
    cfg = DecontaminateSection()
    out = Emitter("decontaminate")
    rows = [_row("clean"), _row("bad " + QUESTION, id="d2", _grams=3, _benchmarks=["bfcl-v4"], _example="x#0")]
    decontaminate_rows(rows, cfg, out)
    kinds = [(r["_kind"], r.get("_reason")) for r in out.rows]
    assert kinds == [("doc", None), ("reject", "contaminated:bfcl-v4")]
    span = DecontaminateSection(mode="span", span_margin_chars=0)
    text = "Keep this part. " + QUESTION + " And keep this."
    s = text.encode().index(b"Find")
    out = Emitter("decontaminate")
    decontaminate_rows(
        [_row(text, _grams=1, _benchmarks=["b"], _example="x", _spans=[{"start": s, "end": s + 40}])], span, out
    )
    assert out.rows[0]["_kind"] == "doc" and "Find the area" not in out.rows[0]["text"]
    assert as_dict(out.rows[0]["signals"])["decontaminated_bytes"] >= 40


def test_bfcl_builtin_items_are_user_turns(tmp_path):
    tasks = benchmarks.tasks(BenchmarkSpec(name="bfcl-v4", path="builtin:bfcl-v4", fields=["question"]))
    assert len(tasks) >= 15 and all(t["member"].startswith("bfcl_eval/data/BFCL_v4_") for t in tasks)
    simple = next(t for t in tasks if t["member"].endswith("BFCL_v4_simple_python.json"))
    items = list(benchmarks.read_items(simple))
    assert len(items) >= 400 and all(i["text"] not in ("user", "system") for i in items)
    assert items[0]["item"].startswith("BFCL_v4_simple_python:simple_python_0#")


def test_user_benchmark_files_and_bad_ones_name_the_file(tmp_path):
    (tmp_path / "b.jsonl").write_text(json.dumps({"id": 7, "prompt": ["first item text", {"x": "second"}]}) + "\n")
    tasks = benchmarks.tasks(BenchmarkSpec(name="mine", path=str(tmp_path), fields=["prompt"]))
    assert [i["text"] for i in benchmarks.read_items(tasks[0])] == ["first item text", "second"]
    (tmp_path / "bad.jsonl").write_text('{"prompt": "ok"}\n{not json\n')
    bad = next(
        t
        for t in benchmarks.tasks(BenchmarkSpec(name="m", path=str(tmp_path), fields=["prompt"]))
        if t["path"].endswith("bad.jsonl")
    )
    with pytest.raises(benchmarks.BenchmarkError, match=r"bad.jsonl: line 2: not JSON"):
        list(benchmarks.read_items(bad))
    with pytest.raises(InputError, match="nothing: no such file"):
        benchmarks.tasks(BenchmarkSpec(name="m", path=str(tmp_path / "nothing"), fields=["text"]))
    (tmp_path / "empty").mkdir()
    with pytest.raises(benchmarks.BenchmarkError, match="empty: benchmark 'm' has no .jsonl"):
        benchmarks.tasks(BenchmarkSpec(name="m", path=str(tmp_path / "empty"), fields=["text"]))


def test_one_and_two_word_items_match_only_as_whole_turns():
    """BFCL's "Hello" is a fragment on a page but the benchmark's item as a user's whole request."""
    import pyarrow as pa

    from corpus.decontaminate import ngrams

    texts = pa.array(
        [
            "### User\nHello!\n\n### Assistant\nHello",
            "Hello\nThe page goes on, as pages do.",
            "### Instruction\nhelp me\n\n### Response\nSure.",
            "### User\nHello there, how are you",
        ]
    )
    doc, hs, starts, ends = ngrams.line_hashes(texts, 7, turn_only_below=3)
    item_idx, item_hs = ngrams.short_item_hashes(pa.array(["hello", "Help me"]), 7)
    hit = sorted({int(d) for d, h in zip(doc, hs) if h in set(item_hs.tolist())})
    assert hit == [0, 2] and len(item_idx) == 2
    assert texts[0].as_py().encode()[starts[0] : ends[0]] == b"Hello!"


def test_corpus_hashes_of_a_slice_are_those_of_its_rows_alone():
    """A batch of a row group is a slice sharing its parent's data buffer: its hashes and byte offsets are the
    same as for the same texts in an array of their own (and only the slice's bytes are read)."""
    texts = [f"Doc {i}. " + QUESTION.replace("triangle", f"shape{i}") * (1 + i % 3) for i in range(40)]
    whole = pa.array(texts)
    for lo, n in ((0, 7), (13, 9), (33, 7)):
        got = ngrams.corpus_hashes(whole.slice(lo, n), [8, 13])
        want = ngrams.corpus_hashes(pa.array(texts[lo : lo + n]), [8, 13])
        assert len(got[0]) > 0
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a, b)
