"""The dedup stage on Spark: connected components against union-find, near-duplicates of real text against exact
ground truth, keep rules, determinism across partitionings, and dedup against a previous run's index."""

from __future__ import annotations

import json
import random

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from corpus import samples
from corpus.config import parse_config
from corpus.dedup import evaluate
from corpus.dedup.components import connected_components
from corpus.ids import content_id
from corpus.pipeline import run_single
from corpus.schema import document
from tests.conftest import assert_stage_output

pytestmark = pytest.mark.spark


def _graphs():
    rng = random.Random(11)
    ids = [f"n{rng.getrandbits(40):012x}" for _ in range(3000)]
    chain = ids[:1500]
    rng.shuffle(chain)  # a long path whose ids are in random order
    center = sorted(ids[1500:2500])[500]  # a giant star whose center is not its smallest id
    star = [(center, v) for v in ids[1500:2500] if v != center]
    rand = [(rng.choice(ids[2500:]), rng.choice(ids[2500:])) for _ in range(450)]  # many small components
    return {
        "chain": list(zip(chain, chain[1:])),
        "star": star,
        "random": rand,
        "all": list(zip(chain, chain[1:])) + star + rand,
    }


@pytest.mark.parametrize("aqe,local", [("true", False), ("false", False), ("true", True)])
def test_components_equal_union_find(spark, tmp_path, aqe, local):
    """Distributed rounds with adaptive execution on and off, and the one-task path for small graphs."""
    spark.conf.set("spark.sql.adaptive.enabled", aqe)
    try:
        for name, edges in _graphs().items():
            nodes = sorted({x for e in edges for x in e})
            index = {v: i for i, v in enumerate(nodes)}  # sorted order, so union-find's min is the min id
            roots = evaluate.components(len(nodes), [(index[a], index[b]) for a, b in edges])
            expected = {v: nodes[roots[index[v]]] for v in nodes}
            df = spark.createDataFrame(edges, "a string, b string")
            comps, rounds = connected_components(
                spark,
                df,
                str(tmp_path / f"{name}-{aqe}-{local}"),
                n_edges=len(edges),
                local_max_edges=len(edges) if local else 0,
            )
            got = {r["id"]: r["component"] for r in comps.collect()}  # test graph, not corpus data
            assert got == expected, name
            assert rounds == 0 if local else 0 < rounds < 40
    finally:
        spark.conf.unset("spark.sql.adaptive.enabled")


@pytest.fixture(scope="module")
def near_dup_docs(tmp_path_factory):
    """Documents from real text (the standard library's pydoc), with seeded near-duplicate copies, as a Parquet
    dataset; plus the exact ground truth."""
    texts = [samples.pydoc_text(m) for m in samples.stdlib_modules(45)]
    chunks = samples.text_chunks([t for t in texts if t], words=250)
    rows = evaluate.make_near_duplicates(chunks, seed=4)
    rows.append((rows[0][0], "exact", 0))  # one exact copy under another url
    pairs = evaluate.true_pairs(evaluate.shingle_arrays([r[0] for r in rows]), 0.8)
    d = tmp_path_factory.mktemp("near") / "docs"
    d.mkdir()
    recs = []
    for i, (text, kind, origin) in enumerate(rows):
        url = f"http://docs.test/{i}"
        recs.append(
            {
                "id": content_id(text, url),
                "part": "text",
                "source": kind,
                "url": url,
                "text": text,
                "metadata": json.dumps({"row": i, "origin": origin}),
                "signals": [{"key": "words", "value": float(len(text.split()))}],
            }
        )
    full = pa.Table.from_pylist([{n: r.get(n) for n in document().names} for r in recs], schema=document().arrow)
    for k in range(3):
        pq.write_table(
            full.slice(k * len(recs) // 3, (k + 1) * len(recs) // 3 - k * len(recs) // 3), str(d / f"part-{k}.parquet")
        )
    assert full.num_rows == len(rows)
    return d, rows, pairs, [r["id"] for r in recs]


def _dedup(spark, inp, out, **minhash):
    cfg = parse_config({"dedup": {"minhash": minhash}} if minhash else {})
    stats = run_single(spark, cfg, "dedup", [str(inp)], str(out), True)
    return assert_stage_output(out, stats)


def test_near_duplicates_of_real_text(spark, near_dup_docs, tmp_path):
    inp, rows, pairs, ids = near_dup_docs
    kept, rejects, stats = _dedup(spark, inp, tmp_path / "dedup")
    reasons = rejects.column("reason").to_pylist()
    from corpus.ids import text_hash

    assert reasons.count("exact_duplicate") == len(rows) - len({text_hash(r[0]) for r in rows}) > 0
    assert reasons.count("near_duplicate") > 20
    removed = {ids.index(i) for i in rejects.column("id").to_pylist()}
    scores = evaluate.removal_scores(len(rows), pairs, removed)
    assert scores["precision"] == 1.0, scores  # every removal is backed by an exactly checked Jaccard ≥ 0.8 edge
    assert scores["recall"] >= 0.95, scores
    kept_ids = set(kept.column("id").to_pylist())
    assert set(rejects.column("duplicate_of").to_pylist()) <= kept_ids
    by_id = {r["id"]: r for r in kept.to_pylist()}
    for r in rejects.to_pylist():  # smallest id kept: the kept document sorts before the removed one
        assert r["duplicate_of"] < r["id"]
    assert all(by_id[k]["dedup_cluster"] == k for k in by_id)
    mh = stats["extra"]["minhash"]
    assert (mh["bands"], mh["rows"]) == (16, 8)
    assert stats["extra"]["pairs_passed"] <= stats["extra"]["candidate_pairs"]
    assert stats["extra"]["pairs_checked_exactly"] == stats["extra"]["candidate_pairs"]
    # the report's cluster sizes: the clusters of the rejects' duplicate_of, by size (kept + removed)
    from collections import Counter

    per_kept = Counter(rejects.column("duplicate_of").to_pylist())
    want = Counter()
    for n in per_kept.values():
        k = n.bit_length()  # ceil(log2(n + 1)): the cluster is the kept document and its n removed ones
        want["2" if k == 1 else f"{2 ** (k - 1) + 1}-{2**k}"] += 1
    got = stats["extra"]["cluster_sizes"]
    assert got == {**want, "largest": max(per_kept.values()) + 1}, (got, want)
    index = pq.read_table(str(tmp_path / "dedup" / "index" / "data"))
    assert sorted(index.column("id").to_pylist()) == sorted(
        kept_ids - {ids[i] for i, r in enumerate(rows) if not r[0].split()}
    )


def test_same_output_for_any_partitioning(spark, near_dup_docs, tmp_path):
    """Other partitionings and the distributed components rounds (a) give what the defaults (b) give."""
    inp = near_dup_docs[0]
    spark.conf.set("spark.sql.files.maxPartitionBytes", "20000")
    spark.conf.set("spark.sql.shuffle.partitions", "7")
    try:
        kept_a, rej_a, stats_a = _dedup(spark, inp, tmp_path / "a", components_local_max_edges=0)
        assert stats_a["extra"]["components_method"] == "large-star/small-star"
        assert stats_a["extra"]["components_rounds"] > 0
    finally:
        spark.conf.unset("spark.sql.files.maxPartitionBytes")
        spark.conf.set("spark.sql.shuffle.partitions", "4")
    kept_b, rej_b, stats_b = _dedup(spark, inp, tmp_path / "b")
    assert (stats_b["extra"]["components_method"], stats_b["extra"]["components_rounds"]) == ("one task", 0)
    key = lambda t: sorted(zip(t.column("id").to_pylist(), t.column("text").to_pylist()))  # noqa: E731
    assert key(kept_a) == key(kept_b)
    assert sorted(zip(rej_a.column("id").to_pylist(), rej_a.column("duplicate_of").to_pylist())) == sorted(
        zip(rej_b.column("id").to_pylist(), rej_b.column("duplicate_of").to_pylist())
    )


def test_keep_longest_text_and_estimate_check(spark, near_dup_docs, tmp_path):
    inp = near_dup_docs[0]
    cfg = parse_config({"dedup": {"keep": "longest_text", "minhash": {"verify": "estimate"}}})
    out = tmp_path / "dedup"
    assert_stage_output(out, run_single(spark, cfg, "dedup", [str(inp)], str(out), True))
    kept = {r["id"]: r for r in pq.read_table(str(out / "data")).to_pylist()}
    rejects = pq.read_table(str(out / "rejects")).to_pylist()
    assert rejects
    for r in rejects:
        assert len(kept[r["duplicate_of"]]["text"]) >= len(r["text"])


def test_dedup_against_previous_index(spark, near_dup_docs, tmp_path):
    inp, rows, pairs, ids = near_dup_docs
    originals = [i for i, r in enumerate(rows) if r[1] == "original"]
    copies = [i for i, r in enumerate(rows) if r[1] == "copy"]
    table = pq.read_table(str(inp))
    order = {v: k for k, v in enumerate(table.column("id").to_pylist())}
    day1, day2 = tmp_path / "day1", tmp_path / "day2"
    day1.mkdir(), day2.mkdir()
    pq.write_table(table.take([order[ids[i]] for i in originals]), str(day1 / "d.parquet"))
    again = originals[:3]  # three of day 1's documents come again on day 2
    pq.write_table(table.take([order[ids[i]] for i in copies + again]), str(day2 / "d.parquet"))
    _dedup(spark, day1, tmp_path / "run1")
    index1 = str(tmp_path / "run1" / "index")
    kept2, rej2, _ = _dedup(spark, day2, tmp_path / "run2", previous_index=index1)
    day1_ids = {ids[i] for i in originals}
    repeated = [r for r in rej2.to_pylist() if r["id"] in {ids[i] for i in again}]
    assert len(repeated) == 3 and all(
        r["reason"] == "exact_duplicate" and "already in the previous index" in r["detail"] for r in repeated
    )
    from_index = [r for r in rej2.to_pylist() if r["duplicate_of"] in day1_ids and r not in repeated]
    # the copies that are true near-duplicates of their original (exact Jaccard ≥ 0.8) must go; against an
    # index the check is the signature estimate (the index keeps no text), so allow for its ±0.035 noise
    near = {ids[c] for c in copies if (rows[c][2], c) in pairs}
    rejected = set(rej2.column("id").to_pylist())
    assert len(near & rejected) >= 0.85 * len(near) and len(from_index) >= 0.5 * len(near)
    assert all("previous index" in r["detail"] for r in from_index if r["reason"] == "near_duplicate")
    index2 = set(pq.read_table(str(tmp_path / "run2" / "index" / "data")).column("id").to_pylist())
    index1_ids = set(pq.read_table(index1 + "/data").column("id").to_pylist())
    assert index1_ids | set(kept2.column("id").to_pylist()) == index2  # the index accumulates
    from corpus.dedup.stage import IndexMismatch

    with pytest.raises(IndexMismatch, match="num_perm 128 \\(this run: 64\\)"):
        _dedup(spark, day2, tmp_path / "run3", previous_index=index1, num_perm=64)


def test_the_same_dataset_twice(spark, near_dup_docs, tmp_path):
    """Fully identical rows (one dataset given twice): one of each stays, and the result equals one pass's."""
    inp = near_dup_docs[0]
    once, _, _ = _dedup(spark, inp, tmp_path / "once")
    stats = run_single(spark, parse_config({}), "dedup", [str(inp), str(inp)], str(tmp_path / "twice"), True)
    twice, rejects, stats = assert_stage_output(tmp_path / "twice", stats)
    assert stats["rows_in"] == 2 * pq.read_table(str(inp)).num_rows
    assert sorted(twice.column("id").to_pylist()) == sorted(once.column("id").to_pylist())
    assert sum("identical row" in r for r in rejects.column("detail").to_pylist()) == len(near_dup_docs[3])
    index = pq.read_table(str(tmp_path / "twice" / "index" / "data"), columns=["id"]).column("id").to_pylist()
    assert sorted(index) == sorted(set(index)) == sorted(twice.column("id").to_pylist())


def test_row_tags_computed_in_python_equal_spark(spark, near_dup_docs):
    """The signature pass tags rows in Python (texts never pass the JVM) and the final join tags them with
    Spark's ``xxhash64``: the two must agree, or removals would miss their documents."""
    from pyspark.sql import functions as F

    from corpus.ids import spark_xxhash64

    inp = near_dup_docs[0]
    extra = [("x", None, "ünïcode ✓ \U0001f600"), (None, None, None), ("", "code", '{"a": "b"}')]
    df = (
        spark.read.parquet(str(inp))
        .select("source", "part", "metadata")
        .unionByName(spark.createDataFrame(extra, "source string, part string, metadata string"))
    )
    table = pa.Table.from_pylist([r.asDict() for r in df.collect()])  # a test set of tags, not corpus data
    want = [r[0] for r in df.select(F.xxhash64("source", "part", "metadata")).collect()]
    assert spark_xxhash64(table.column("source"), table.column("part"), table.column("metadata")).tolist() == want


def test_keep_highest_score(spark, near_dup_docs, tmp_path):
    """keep: highest_score with the score read from a signal (by the signature pass, in Python)."""
    inp = near_dup_docs[0]
    cfg = parse_config({"dedup": {"keep": "highest_score", "score_signal": "words"}})
    out = tmp_path / "dedup"
    assert_stage_output(out, run_single(spark, cfg, "dedup", [str(inp)], str(out), True))
    words = {
        r["id"]: dict((s["key"], s["value"]) for s in r["signals"])["words"]
        for r in pq.read_table(str(inp)).to_pylist()
    }
    rejects = pq.read_table(str(out / "rejects")).to_pylist()
    assert sum(r["reason"] == "near_duplicate" for r in rejects) > 20
    assert all(words[r["duplicate_of"]] >= words[r["id"]] for r in rejects)
    assert any(words[r["duplicate_of"]] > words[r["id"]] and r["duplicate_of"] > r["id"] for r in rejects)


def test_check_through_joins_gives_the_same_output(spark, near_dup_docs, tmp_path, monkeypatch):
    """Above the broadcast limits the exact check joins the sets to the edges in Spark instead of sending them to
    their stars' tasks, and the decisions are applied by a Spark join instead of in the tasks that write: the same
    output either way."""
    from corpus.dedup import stage

    inp = near_dup_docs[0]
    kept_a, rej_a, _ = _dedup(spark, inp, tmp_path / "stars")
    monkeypatch.setattr(stage, "BROADCAST_IDS", 0)
    monkeypatch.setattr(stage, "BROADCAST_DECISIONS", 0)
    kept_b, rej_b, stats_b = _dedup(spark, inp, tmp_path / "joins")
    assert stats_b["extra"]["pairs_checked_exactly"] == stats_b["extra"]["candidate_pairs"] > 0

    # whole rows: the first run applied the decisions in its tasks, the second with Spark's join and writers
    def rows(table):
        return sorted(table.to_pylist(), key=lambda r: (r["id"], r["source"], r["metadata"]))

    assert rows(kept_a) == rows(kept_b) and rows(rej_a) == rows(rej_b)
    # the signature index: filtered from the features in the tasks (a), written by Spark after a join (b)
    index_a, index_b = (
        sorted(pq.read_table(str(tmp_path / k / "index" / "data")).to_pylist(), key=lambda r: r["id"])
        for k in ("stars", "joins")
    )
    assert index_a == index_b and len(index_a) == kept_a.num_rows
    assert {r["reason"] for r in rej_a.to_pylist()} == {"exact_duplicate", "near_duplicate"}


def test_keep_rule_the_same_in_one_task_and_distributed(spark, near_dup_docs, tmp_path):
    """The keep rule applied in the one-task components path (Arrow sort) and after the distributed rounds (Spark
    windows) keeps the same documents."""
    inp = near_dup_docs[0]
    runs = []
    for name, limit in (("local", 4_000_000), ("rounds", 0)):
        cfg = parse_config({"dedup": {"keep": "longest_text", "minhash": {"components_local_max_edges": limit}}})
        out = tmp_path / name
        kept, rejects, stats = assert_stage_output(out, run_single(spark, cfg, "dedup", [str(inp)], str(out), True))
        runs.append(
            (
                sorted(kept.column("id").to_pylist()),
                sorted(
                    zip(
                        rejects.column("id").to_pylist(),
                        rejects.column("duplicate_of").to_pylist(),
                        rejects.column("detail").to_pylist(),
                    )
                ),
            )
        )
    assert runs[0] == runs[1]


def test_partition_labels_computed_in_python_equal_spark(spark):
    """The blob shuffles label each blob with an int that Spark's hash partitioning sends to the wanted task;
    the labels are computed in Python (spark_hash_int), so they must agree with Spark's own hash."""
    from pyspark.sql import functions as F

    from corpus.dedup.stage import partition_labels, spark_hash_int

    values = [0, 1, -1, 7, 42, 2**31 - 1, -(2**31), 123456789]
    got = spark.createDataFrame([(v,) for v in values], "v int").select(F.hash("v")).collect()
    assert [r[0] for r in got] == [spark_hash_int(v) for v in values]
    for n in (1, 3, 8, 200):
        labels = partition_labels(n)
        assert len(set(labels)) == n
        df = spark.createDataFrame([(v,) for v in labels], "v int").repartition(n, "v")
        placed = df.rdd.mapPartitionsWithIndex(lambda i, rows: [(i, r[0]) for r in rows]).collect()
        assert sorted(placed) == sorted(enumerate(labels))
