"""Each stage alone on Spark (local[2]), on real data and on bad input; outputs checked against the schemas."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from corpus.config import InputSpec, parse_config
from corpus.pipeline import run_single
from tests.conftest import assert_stage_output

pytestmark = pytest.mark.spark


def _cfg(**sections):
    return parse_config(sections)


def test_ingest_web_real_pages(spark, sample_dir, tmp_path):
    counts = json.loads((sample_dir / "_SUCCESS").read_text())
    out = tmp_path / "ingest-web"
    stats = run_single(spark, _cfg(), "ingest-web", [InputSpec(path=str(sample_dir / "web"), source="pydoc")],
                       str(out), force=False)
    docs, rejects, stats = assert_stage_output(out, stats)
    assert stats["rows_in"] == counts["pydoc_pages"] and docs.num_rows == counts["pydoc_pages"]
    assert stats["counters"]["warc_records.response"] == counts["warc_pages"]
    assert stats["counters"]["warc_records.request"] == counts["warc_pages"]
    rows = docs.to_pylist()
    from_warc = [r for r in rows if r["url"]]
    assert len(from_warc) == counts["warc_pages"] and len(rows) - len(from_warc) == counts["html_files"]
    assert all(r["title"] for r in rows)
    assert all(r["source"] == "pydoc" and r["part"] == "text" and r["lang"] is None for r in rows)
    meta = json.loads(from_warc[0]["metadata"])
    assert meta["encoding"] == "utf-8" and meta["http_status"] == 200 and "@" in meta["location"]


def test_ingest_web_survives_every_bad_input(spark, bad_web_dir, tmp_path):
    out = tmp_path / "ingest-web"
    stats = run_single(spark, _cfg(), "ingest-web", [InputSpec(path=str(bad_web_dir))], str(out), force=False)
    docs, rejects, stats = assert_stage_output(out, stats)
    by_file = Counter((r["location"].split("@")[0].rsplit("/", 1)[-1], r["reason"]) for r in rejects.to_pylist())
    assert by_file == Counter({
        ("empty.warc.gz", "empty_file"): 1, ("empty.html", "empty_file"): 1,
        ("notwarc.warc.gz", "corrupt_file"): 1, ("random.warc", "corrupt_file"): 1,
        ("truncated.warc.gz", "truncated_record"): 1, ("corrupt-middle.warc.gz", "corrupt_record"): 1,
        ("nonhtml.warc.gz", "not_html"): 2, ("binary.html", "not_html"): 1,
        ("garbage.html", "bad_encoding"): 1, ("big.warc.gz", "too_large"): 1, ("big.html", "too_large"): 1,
    })
    kept = {(r["url"] or json.loads(r["metadata"])["location"].rsplit("/", 1)[-1]): r for r in docs.to_pylist()}
    assert {"http://t/good", "http://t/trunc0", "http://t/trunc1", "http://t/odd", "latin1.html",
            "invalid-utf8.html"} <= set(kept)
    assert "http://t/trunc2" in kept, "the record after the corrupt member must be recovered"
    assert "café crème" in kept["latin1.html"]["text"]
    assert json.loads(kept["latin1.html"]["metadata"])["encoding_from"] == "meta"


def test_ingest_text_stage(spark, text_inputs, tmp_path):
    out = tmp_path / "ingest-text"
    stats = run_single(spark, _cfg(), "ingest-text", [InputSpec(path=str(text_inputs), source="readmes")],
                       str(out), force=False)
    docs, rejects, stats = assert_stage_output(out, stats)
    assert docs.num_rows == 30  # 20 jsonl + 5 gz + 5 parquet
    assert Counter(rejects.column("reason").to_pylist()) == Counter(
        {"malformed_json": 2, "invalid_utf8": 2, "missing_text": 2, "bad_text_type": 1, "empty_text": 1})


def test_filter_and_dedup_stages(spark, sample_dir, tmp_path):
    ing = tmp_path / "ingest-text"
    run_single(spark, _cfg(), "ingest-text", [InputSpec(path=str(sample_dir / "text"))], str(ing), False)
    # the same file twice: every document gets an exact duplicate with a different source
    ing2 = tmp_path / "ingest-text-2"
    run_single(spark, _cfg(), "ingest-text", [InputSpec(path=str(sample_dir / "text"), source="again")],
               str(ing2), False)
    filt = tmp_path / "filter"
    run_single(spark, _cfg(), "filter", [str(ing), str(ing2)], str(filt), False)
    docs, rejects, stats = assert_stage_output(filt)
    assert docs.num_rows > 0 and set(docs.column("lang").to_pylist()) == {"en"}
    assert all(dict(s)["words"] > 0 for s in docs.column("signals").to_pylist())
    assert all(r["text"] and r["detail"] for r in rejects.to_pylist()), "filter rejects keep text and detail"
    dd = tmp_path / "dedup"
    run_single(spark, _cfg(), "dedup", [str(filt)], str(dd), False)
    kept, dropped, stats = assert_stage_output(dd)
    assert kept.num_rows * 2 == docs.num_rows and set(dropped.column("reason").to_pylist()) == {"exact_duplicate"}
    kept_ids = set(kept.column("id").to_pylist())
    assert set(dropped.column("duplicate_of").to_pylist()) <= kept_ids
    assert kept.column("dedup_cluster").to_pylist() == kept.column("id").to_pylist()


def test_uncommitted_input_is_refused(spark, tmp_path):
    from corpus.stage import StageError

    (tmp_path / "half" / "data").mkdir(parents=True)
    with pytest.raises(StageError, match="not committed"):
        run_single(spark, _cfg(), "filter", [str(tmp_path / "half")], str(tmp_path / "f"), False)


def test_time_limit_is_enforced_inside_spark_workers(spark, tmp_path):
    """A page over the limit becomes a `timeout` reject in the Spark stage; the other page is kept."""
    from corpus.web.warc import write_warc

    slow = ("<html><body>" + "".join(f"<div><p>Paragraph {i} with some words in it.</p></div>"
                                     for i in range(30000)) + "</body></html>").encode()
    fine = b"<html><body><article><p>" + b"A short page with a few plain words in one paragraph. " * 5 + \
        b"</p></article></body></html>"
    (tmp_path / "in").mkdir()
    write_warc(str(tmp_path / "in" / "pages.warc.gz"), [("http://t/slow", slow, "text/html"),
                                                        ("http://t/fine", fine, "text/html")])
    out = tmp_path / "out"
    run_single(spark, _cfg(**{"ingest-web": {"time_limit_seconds": 0.3}}), "ingest-web",
               [InputSpec(path=str(tmp_path / "in"))], str(out), False)
    docs, rejects, stats = assert_stage_output(out)
    assert docs.column("url").to_pylist() == ["http://t/fine"]
    assert rejects.column("reason").to_pylist() == ["timeout"]
    assert "time_limit_not_enforced" not in stats["counters"]
