"""The `classify` stage on Spark: training on real tool docs vs real general text, recall rounds, the per-host
view, applying a saved model with `forge classify --model`, and the errors a user can hit."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from corpus import packages, samples, schema
from corpus.classify.stage import ClassifyError
from corpus.cli import main
from corpus.config import parse_config
from corpus.ids import content_id
from corpus.pipeline import run_single
from tests.conftest import assert_stage_output
from tests.unit.test_classify import botocore_texts

pytestmark = pytest.mark.spark

SMALL = {"fasttext": {"dim": 16, "bucket": 10_000, "epoch": 10}}


def _write_docs(path: Path, rows: list[dict]) -> str:
    base = {n: None for n in schema.document().names}
    full = [{**base, "source": "test", "metadata": "{}", "id": content_id(r["text"], r.get("url")), **r} for r in rows]
    path.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(full, schema=schema.document().arrow), path / "part-0.parquet")
    return str(path)


@pytest.fixture(scope="module")
def docs(tmp_path_factory) -> str:
    """Real documents: botocore tool docs (positives), Wikipedia and news text (negatives, part text), and web
    pages of part text that are in fact API docs, on a docs host (to be recalled)."""
    tools = botocore_texts()
    general = packages.general_text()
    rows = [{"part": "tool_doc", "text": t} for t in tools[:900]]
    rows += [{"part": "text", "text": g["text"], "url": g["url"]} for g in general]
    rows += [
        {"part": "text", "text": t, "url": f"https://docs.example.com/api/{i}"}
        for i, t in enumerate(botocore_texts(("sqs", "sns"))[:60])
    ]
    return _write_docs(tmp_path_factory.mktemp("classify") / "docs", rows)


def test_trains_scores_and_recalls_api_pages(spark, docs, tmp_path, monkeypatch):
    out = tmp_path / "classify"
    cfg = parse_config({"classify": {**SMALL, "rounds": 2}})
    stats = run_single(spark, cfg, "classify", [docs], str(out), force=False)
    data, rejects, stats = assert_stage_output(out, stats)
    assert rejects.num_rows == 0 and stats["rows_in"] == stats["rows_out"]
    rounds = stats["extra"]["rounds"]
    assert [r["round"] for r in rounds] == [1, 2]
    for r in rounds:
        assert r["chosen"]["f1"] > 0.9 and r["test_positives"] > 20 and r["test_negatives"] > 20, r
        assert len(r["pr_curve"]) == 21 and r["train_positives"] + r["train_negatives"] > 500
    assert rounds[0]["recalled"] >= 50, "round 1 recalls the API pages of part text"
    threshold = stats["extra"]["threshold"]
    rows = data.to_pylist()
    for r in rows:
        if r["part"] == "tool_doc":
            assert r["agent_score"] is None
        else:
            assert r["agent_score"] is not None
            assert (r["part"] == "agent_web") == (r["agent_score"] >= threshold)
    api_pages = [r for r in rows if (r["url"] or "").startswith("https://docs.example.com/")]
    wiki = [r for r in rows if (r["url"] or "").startswith("https://en.wikipedia.org/")]
    assert sum(r["part"] == "agent_web" for r in api_pages) >= 0.9 * len(api_pages)
    assert sum(r["part"] == "agent_web" for r in wiki) <= 0.05 * len(wiki)
    assert stats["counters"]["scored"] == len(api_pages) + sum(
        r["part"] in ("text", "agent_web") for r in rows if r not in api_pages
    )
    # the per-host view: a dataset and the top hosts in the stats
    hosts = pq.read_table(str(out / "hosts"))
    schema.validate_table(hosts, schema.load("classify_hosts"), "hosts")
    by_host = {h["host"]: h for h in hosts.to_pylist()}
    assert by_host["docs.example.com"]["share_of_host"] >= 0.9
    assert by_host["docs.example.com"]["share_of_recalled"] > 0.5
    assert sum(h["documents"] for h in by_host.values()) == stats["counters"]["scored"]
    assert stats["extra"]["hosts"][0]["host"] == "docs.example.com"
    meta = json.loads((out / "model" / "model.json").read_text())
    assert meta["threshold"] == threshold and meta["fasttext"]["dim"] == 16

    # apply the saved model to the same documents, without training: the same scores; the per-host view summed
    # by Spark this time (as for more host counts than the driver sums) is the same as the driver's
    from corpus.classify import stage as classify_stage

    monkeypatch.setattr(classify_stage, "HOSTS_IN_DRIVER", 0)
    applied = tmp_path / "applied"
    assert main(["classify", "--model", str(out), "--input", docs, "--output", str(applied)]) == 0
    again, _, astats = assert_stage_output(applied)
    assert astats["extra"]["trained"] is False and astats["extra"]["threshold"] == threshold
    assert {r["id"]: r["agent_score"] for r in again.to_pylist()} == {r["id"]: r["agent_score"] for r in rows}
    assert (applied / "model" / "model.bin").read_bytes() == (out / "model" / "model.bin").read_bytes()
    by_spark = pq.read_table(str(applied / "hosts"))
    schema.validate_table(by_spark, schema.load("classify_hosts"), "hosts")
    for a, b in zip(
        sorted(by_spark.to_pylist(), key=lambda h: h["host"]),
        sorted(hosts.to_pylist(), key=lambda h: h["host"]),
        strict=True,
    ):
        assert a == pytest.approx(b, abs=1e-6)
    assert astats["extra"]["hosts"] == stats["extra"]["hosts"]


def test_block_and_promote_domains_and_seed_positives(spark, docs, tmp_path):
    out = tmp_path / "classify"
    cfg = parse_config(
        {
            "classify": {
                **SMALL,
                "block_domains": ["docs.example.com"],
                "promote_domains": ["en.wikipedia.org"],
                "threshold": 0.5,
            }
        }
    )
    run_single(spark, cfg, "classify", [docs], str(out), force=False)
    rows = pq.read_table(str(out / "data")).to_pylist()
    assert not any(r["part"] == "agent_web" and "docs.example.com" in (r["url"] or "") for r in rows)
    assert all(r["part"] == "agent_web" for r in rows if "en.wikipedia.org" in (r["url"] or ""))
    # seed domains make a host's pages positives although their part is text
    seeded = parse_config({"classify": {**SMALL, "seed_domains": ["example.com"], "split_by": "host"}})
    stats = run_single(spark, seeded, "classify", [docs], str(tmp_path / "seeded"), force=False)
    assert stats["extra"]["rounds"][0]["available"]["positives"] == 900 + 60


def test_errors_name_what_is_missing(spark, tmp_path):
    only_tools = _write_docs(tmp_path / "tools", [{"part": "tool_doc", "text": t} for t in botocore_texts(("sqs",))])
    with pytest.raises(ClassifyError, match=r"0 negatives \(parts \['text'\]\)"):
        run_single(spark, parse_config({"classify": SMALL}), "classify", [only_tools], str(tmp_path / "o"), False)
    assert not (tmp_path / "o").exists(), "nothing committed"
    with pytest.raises(ClassifyError, match="no classifier model"):
        run_single(
            spark,
            parse_config({"classify": {"model": str(tmp_path)}}),
            "classify",
            [only_tools],
            str(tmp_path / "o2"),
            False,
        )
    assert (
        main(
            ["classify", "--model", str(tmp_path / "nowhere"), "--input", only_tools, "--output", str(tmp_path / "o3")]
        )
        == 2
    )


def test_sources_held_out_and_labelled_pool(spark, tmp_path):
    """Sources drive the split: whole sources are held out (one positive, one negative), only the named
    negative sources are trained against, and the labelled pool (READMEs, newsgroup posts) is scored and measured,
    never trained on."""
    from corpus import webpool

    general = webpool.general_training(limit=150)
    rows = [{"part": "tool_doc", "source": "botocore", "text": t} for t in botocore_texts()[:300]]
    rows += [
        {"part": "tool_doc", "source": "pydoc", "text": t}
        for t in (samples.pydoc_text(m) for m in samples.stdlib_modules(120))
        if t
    ]
    rows += [{"part": "tool_doc", "source": "sns-sqs", "text": t} for t in botocore_texts(("sqs", "sns"))[:80]]
    rows += [{"part": "text", "source": g["source"], "text": g["text"], "url": g.get("url")} for g in general]
    pool = webpool.readme_documents()[:60] + webpool.newsgroups()[:60]
    rows += [
        {
            "part": "text",
            "source": "pool",
            "text": p["text"],
            "url": p.get("url"),
            "metadata": json.dumps({"eval_label": "agent" if p["source"] == "readmes" else "general"}),
        }
        for p in pool
    ]
    docs = _write_docs(tmp_path / "docs", rows)
    cfg = parse_config(
        {
            "classify": {
                "negative_sources": ["wikipedia", "lee-news", "kjv", "shakespeare"],
                "fasttext": {"bucket": 20_000},
            }
        }
    )
    stats = run_single(spark, cfg, "classify", [docs], str(tmp_path / "classify"), False)
    data, _, stats = assert_stage_output(tmp_path / "classify", stats)
    r = stats["extra"]["rounds"][0]
    assert "pool" not in r["sources"]["negative"] and "chatterbot" not in r["sources"]["negative"]
    assert len(r["held_out"]) == 2 and r["evaluated_on"] == "out_of_source"
    assert set(r["held_out_sources"]) == set(r["held_out"])
    assert r["in_distribution"]["chosen"]["f1"] > 0.9 and r["out_of_source"]["test_positives"] > 0
    lab = stats["extra"]["labelled"]
    assert lab["documents"] == len(pool) and lab["agent"] == 60 and lab["general"] == 60
    assert lab["false_positive_rate"] <= 0.1 and lab["recall"] > 0.3, lab
    sample = stats["extra"]["sample"]
    assert sample["recalled"] and all(s["eval_label"] for s in sample["recalled"] if s["source"] == "pool")
    # the pool's documents are scored; the labels stay in the metadata, untouched
    pool_rows = [d for d in data.to_pylist() if d["source"] == "pool"]
    assert all(d["agent_score"] is not None for d in pool_rows) and len(pool_rows) == len(pool)


def test_domain_step_promotes_and_demotes_hosts(spark, tmp_path):
    """A docs host whose pages are mostly recalled is promoted (its other pages become agent_web too); a general
    host with one recalled page among many is demoted (that page stays text)."""
    general = packages.general_text()
    wiki = [g for g in general if g["url"]]
    news = [g for g in general if not g["url"]]
    api = botocore_texts(("sqs", "sns"))
    rows = [{"part": "tool_doc", "source": "botocore", "text": t} for t in botocore_texts()[:400]]
    rows += [{"part": "text", "source": "general", "text": g["text"], "url": g["url"]} for g in wiki]
    rows += [{"part": "text", "source": "general", "text": g["text"]} for g in news[:200]]
    rows += [
        {"part": "text", "source": "crawl", "text": t, "url": f"https://docs.acme.io/api/{i}"}
        for i, t in enumerate(api[:30])
    ]
    rows += [
        {"part": "text", "source": "crawl", "text": g["text"], "url": f"https://docs.acme.io/news/{i}"}
        for i, g in enumerate(news[200:204])
    ]
    stray = {"part": "text", "source": "crawl", "text": api[40], "url": "https://en.wikipedia.org/wiki/Stray_api_page"}
    rows.append(stray)
    docs = _write_docs(tmp_path / "docs", rows)
    cfg = parse_config({"classify": {"negative_sources": ["general"], "split_by": "cluster", **SMALL}})
    stats = run_single(spark, cfg, "classify", [docs], str(tmp_path / "classify"), False)
    data, _, stats = assert_stage_output(tmp_path / "classify", stats)
    domains = stats["extra"]["domains"]
    assert domains["hosts"]["docs.acme.io"]["share"] >= 0.8 and "en.wikipedia.org" in domains["hosts"]
    by_url = {d["url"]: d for d in data.to_pylist() if d["url"]}
    assert all(by_url[f"https://docs.acme.io/news/{i}"]["part"] == "agent_web" for i in range(4)), "promoted"
    assert by_url[stray["url"]]["part"] == "text" and by_url[stray["url"]]["agent_score"] >= 0.5, "demoted"
