"""MinHash signatures against datasketch and xxhash, on real text; ground truth against brute force; memory."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest
import xxhash
from datasketch import MinHash, MinHashLSH

from corpus import samples
from corpus.config import parse_config
from corpus.dedup import evaluate, minhash


@pytest.fixture(scope="module")
def real_texts() -> list[str]:
    texts = [samples.pydoc_text(m) for m in ("json", "csv", "textwrap", "shutil", "argparse", "string")]
    return samples.text_chunks([t for t in texts if t], words=200)


EDGE_TEXTS = [
    "",
    "   \n\t ",
    "one",
    "two words",
    "a b c d",
    "a b c d e",
    "Ünïcode wörds — ÀB and `code_x = 1`\n\tnext",
    "MiXeD CaSe, punctuation!!! (parens) [brackets] {braces} x=1;y=2",
    "日本語のテキスト と 空白",
    "\x00\x01 ctrl",
]


def test_xxh32_kernel_equals_xxhash():
    rng = np.random.default_rng(3)
    for n in list(range(0, 70)) + [255, 256, 1000, 4099]:
        buf = rng.integers(0, 256, n, dtype=np.uint8)
        assert int(minhash._xxh32(buf, 0, n)) == xxhash.xxh32_intdigest(buf.tobytes()), n


@pytest.mark.parametrize(
    "num_perm,seed,ngram,mode,lowercase",
    [
        (128, 1, 5, "words", True),
        (64, 7, 3, "words", False),
        (256, 1, 1, "whitespace", True),
        (128, 42, 9, "whitespace", False),
        (32, 0, 2, "words", True),
    ],
)
def test_signatures_equal_datasketch(real_texts, num_perm, seed, ngram, mode, lowercase):
    texts = real_texts[:40] + EDGE_TEXTS
    sigs, counts = minhash.signatures(pa.array(texts), num_perm, seed, ngram, mode, lowercase)
    assert sigs.shape == (len(texts), num_perm)
    for text, sig, count in zip(texts, sigs, counts):
        shingles = minhash.shingles(text, ngram, mode, lowercase)
        ref = MinHash(num_perm=num_perm, seed=seed, hashfunc=minhash.shingle_hash)
        ref.update_batch(shingles)
        assert count == len(shingles)
        assert np.array_equal(ref.hashvalues, sig), text[:60]
        assert minhash.shingle_set(text, ngram, mode, lowercase).tolist() == sorted(
            {minhash.shingle_hash(s) for s in shingles}
        )


def test_signatures_of_sliced_and_chunked_arrays(real_texts):
    """Arrow arrays that are slices or chunked (as Spark batches can be) give the same signatures."""
    arr = pa.array(real_texts[:30])
    whole, _ = minhash.signatures(arr)
    part, _ = minhash.signatures(arr.slice(10, 15))
    chunked, _ = minhash.signatures(pa.chunked_array([arr.slice(0, 12), arr.slice(12)]))
    assert np.array_equal(part, whole[10:25]) and np.array_equal(chunked, whole)
    assert np.array_equal(minhash.fixed_rows(pa.array([s.tobytes() for s in whole]).slice(5), 128), whole[5:])


def test_datasketch_lsh_finds_our_signatures(real_texts):
    """Users can put our signatures straight into datasketch's LSH index."""
    rows = evaluate.make_near_duplicates(real_texts[:30], seed=5, share=1.0, max_copies=1, max_edit_rate=0.005)
    sigs, _ = minhash.signatures(pa.array([r[0] for r in rows]))
    lsh = MinHashLSH(threshold=0.8, num_perm=128)
    for i, s in enumerate(sigs[:30]):
        lsh.insert(str(i), MinHash(num_perm=128, hashvalues=s, scheme="affine32"))
    hits = sum(
        str(r[2]) in lsh.query(MinHash(num_perm=128, hashvalues=s, scheme="affine32"))
        for r, s in zip(rows[30:], sigs[30:])
    )
    assert hits >= 0.9 * (len(rows) - 30)


def test_band_parameters_follow_datasketch():
    mh = parse_config({}).dedup.minhash
    assert mh.band_rows() == (16, 8)  # weights 0.05/0.95 at 0.8, 128 perms
    lsh = MinHashLSH(threshold=0.7, num_perm=256, weights=(0.5, 0.5))
    assert minhash.lsh_params(0.7, 256, (0.5, 0.5)) == (lsh.b, lsh.r)
    explicit = parse_config({"dedup": {"minhash": {"bands": 20, "rows": 6}}}).dedup.minhash
    assert explicit.band_rows() == (20, 6)
    with pytest.raises(ValueError, match="exceeds num_perm"):
        parse_config({"dedup": {"minhash": {"bands": 20, "rows": 7}}}).dedup.minhash.band_rows()
    with pytest.raises(Exception, match="sum to 1"):
        parse_config({"dedup": {"minhash": {"lsh_weights": [0.5, 0.6]}}})
    with pytest.raises(Exception, match="score_signal"):
        parse_config({"dedup": {"keep": "highest_score"}})


def test_estimate_tracks_exact_jaccard(real_texts):
    rows = evaluate.make_near_duplicates(real_texts, seed=2, share=1.0, max_copies=1)
    texts = [r[0] for r in rows]
    sigs, _ = minhash.signatures(pa.array(texts), num_perm=256)
    n = len(real_texts)
    errors = []
    for k, (_, _, origin) in enumerate(rows[n:], start=n):
        exact = minhash.exact_jaccard(minhash.shingle_set(texts[k]), minhash.shingle_set(texts[origin]))
        errors.append(minhash.estimated_jaccard(sigs[k : k + 1], sigs[origin : origin + 1])[0] - exact)
    assert abs(np.mean(errors)) < 0.02 and np.std(errors) < 0.05


def test_ground_truth_equals_brute_force(real_texts):
    rows = evaluate.make_near_duplicates(real_texts, seed=9)
    sets = evaluate.shingle_arrays([r[0] for r in rows])
    for t in (0.5, 0.8, 0.95):
        brute = {
            (i, j)
            for i, j in itertools.combinations(range(len(sets)), 2)
            if len(sets[i]) and len(sets[j]) and evaluate.jaccard(sets[i], sets[j]) >= t
        }
        assert set(evaluate.true_pairs(sets, t)) == brute
    assert brute, "the seeded edits must produce near-duplicates"


def test_removal_scores():
    pairs = [(0, 1), (1, 2), (4, 5)]  # truth components {0,1,2}, {4,5}; 3 and 6 are unique
    assert evaluate.removal_scores(7, pairs, {1, 2, 5}) == {
        "removed": 3,
        "should_remove": 3,
        "correct": 3,
        "precision": 1.0,
        "recall": 1.0,
    }
    s = evaluate.removal_scores(7, pairs, {0, 1, 2, 3})  # all of a component, and a unique document
    assert s["correct"] == 2 and s["precision"] == 0.5 and s["recall"] == 2 / 3


def test_long_document_memory_stays_flat():
    """A 120 MB document: the kernel's working memory is O(num_perm); what grows is the input and its lowercased
    copy, never a shingle set (which would be ~20 M Python objects here, gigabytes)."""
    code = r"""
import json, resource, numpy as np, pyarrow as pa
from corpus.dedup import minhash
minhash.signatures(pa.array(["warm up the compiled kernel " * 10]))
words = np.array("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu".split())
rng = np.random.default_rng(0)
text = " ".join(words[rng.integers(0, len(words), 20_000_000)])
arr = pa.array([text]); del text
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
sigs, counts = minhash.signatures(arr)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"bytes": arr.nbytes, "growth": (after - before) * 1024, "shingles": int(counts[0])}))
"""
    out = json.loads(
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
        .stdout.strip()
        .splitlines()[-1]
    )
    assert out["shingles"] == 20_000_000 - 4
    assert out["growth"] < 1.2 * out["bytes"] + 64 * 2**20, out


def test_candidate_check_exact_and_estimate(real_texts):
    """The check batch function: exact Jaccard where both shingle sets are present, the signature estimate where
    one is missing (above verify_max_shingles, or a previous-index document); threshold applied to both."""
    from corpus.dedup.batches import _binary_rows, check_fn, shingle_sets_fn

    rows = evaluate.make_near_duplicates(real_texts[:8], seed=3, share=1.0, max_copies=1, max_edit_rate=0.01)
    texts = [r[0] for r in rows]
    ids = [f"d{i}" for i in range(len(texts))]
    sigs, counts = minhash.signatures(pa.array(texts))
    distinct = [len(minhash.shingle_set(t)) for t in texts]
    cap = sorted(distinct)[len(distinct) // 2]
    mh = parse_config({"dedup": {"minhash": {"verify_max_shingles": cap}}}).dedup.minhash
    sets = next(shingle_sets_fn(mh)(iter([pa.record_batch({"id": ids, "text": texts})]))).column("sh").to_pylist()
    assert [s is None for s in sets] == [c > cap for c in distinct]  # long documents get no set
    a = [8 + i for i in range(len(rows) - 8)]
    b = [r[2] for r in rows[8:]]
    sig = _binary_rows(sigs)
    batch = pa.record_batch(
        {
            "a": [ids[i] for i in a],
            "b": [ids[j] for j in b],
            "sig_a": sig.take(a),
            "sig_b": sig.take(b),
            "sh_a": pa.array([sets[i] for i in a], pa.binary()),
            "sh_b": pa.array([sets[j] for j in b], pa.binary()),
        }
    )
    out = next(check_fn(mh)(iter([batch]))).to_pylist()
    assert {r["exact"] for r in out} == {True, False}
    for row, i, j in zip(out, a, b):
        assert row["exact"] == (sets[i] is not None and sets[j] is not None)
        want = (
            minhash.exact_jaccard(minhash.shingle_set(texts[i]), minhash.shingle_set(texts[j]))
            if row["exact"]
            else float(minhash.estimated_jaccard(sigs[i : i + 1], sigs[j : j + 1])[0])
        )
        assert row["jaccard"] == pytest.approx(want) and row["passed"] == (want >= 0.8)


def test_label_components_in_one_task_equal_union_find():
    """The one-task path of connected components: random graphs, a long chain and a star whose center is not its
    smallest id, split over several Arrow batches, against the reference union-find."""
    from corpus.dedup.components import label_components

    rng = np.random.default_rng(5)
    ids = [f"n{v:012x}" for v in rng.integers(0, 2**40, 4000)]
    chain = list(rng.permutation(ids[:1500]))
    star = [(sorted(ids[1500:2500])[500], v) for v in ids[1500:2500]]  # includes a self-loop at the center
    rand = [(ids[i], ids[j]) for i, j in rng.integers(2500, 4000, (900, 2))]
    edges = list(zip(chain, chain[1:])) + star + rand
    nodes = sorted({x for e in edges for x in e})
    index = {v: i for i, v in enumerate(nodes)}
    roots = evaluate.components(len(nodes), [(index[a], index[b]) for a, b in edges])
    batches = [
        pa.RecordBatch.from_pylist([{"a": a, "b": b} for a, b in edges[k : k + 777]]) for k in range(0, len(edges), 777)
    ]
    got = {}
    for batch in label_components(iter(batches)):
        got.update(zip(batch.column("id").to_pylist(), batch.column("component").to_pylist()))
    assert got == {v: nodes[roots[index[v]]] for v in nodes}
    assert list(label_components(iter([]))) == []


def test_shingle_set_array_equals_per_document_sets(real_texts):
    """The Arrow-built sets (one compiled sort-and-unique pass per batch) equal each text's own sorted unique
    hashes, for edge cases and real text, sliced or not; sets over the cap are null."""
    texts = EDGE_TEXTS + real_texts[:30]
    arr = pa.array(texts)
    for view, expected in ((arr, texts), (arr.slice(3, 20), texts[3:23])):
        got = minhash.shingle_set_array(view).to_pylist()
        assert got == [minhash.shingle_set(t).tobytes() for t in expected]
    sizes = [len(minhash.shingle_set(t)) for t in texts]
    cap = sorted(sizes)[len(sizes) // 2]
    capped = minhash.shingle_set_array(arr, max_shingles=cap)
    assert [v is None for v in capped.to_pylist()] == [n > cap for n in sizes]
    kept = [t for t, n in zip(texts, sizes) if n <= cap]
    assert [v for v in capped.to_pylist() if v is not None] == [minhash.shingle_set(t).tobytes() for t in kept]
    pairs = minhash.pair_jaccards(
        minhash.shingle_set_array(pa.array(texts[:-1])), minhash.shingle_set_array(pa.array(texts[1:]))
    )
    assert pairs.tolist() == pytest.approx(
        [minhash.exact_jaccard(minhash.shingle_set(x), minhash.shingle_set(y)) for x, y in zip(texts[:-1], texts[1:])]
    )


def test_features_read_from_the_files(tmp_path, real_texts):
    """The signature pass reads the Parquet row groups itself (texts never pass the JVM): the same features as
    the batch function given the same rows, a file lacking a column reads it as null, the score is the named
    signal, and a row-group filter applies before batching."""
    import pyarrow.parquet as pq

    from corpus import schema
    from corpus.dedup.batches import _signal, features_fn, features_from_files_fn
    from corpus.ids import spark_xxhash64
    from corpus.spark import datasets

    doc = schema.document().arrow
    n = len(real_texts)
    rows = [
        {
            "id": f"{i:032x}",
            "part": "text",
            "source": "s",
            "text": t,
            "metadata": f'{{"i":{i}}}',
            "signals": [{"key": "q", "value": float(i)}] if i % 3 else None,
        }
        for i, t in enumerate(real_texts)
    ]
    full = pa.Table.from_pylist(rows, schema=doc)
    pq.write_table(full.slice(0, n // 2), str(tmp_path / "a.parquet"), row_group_size=7)
    pq.write_table(full.slice(n // 2).drop_columns(["signals"]), str(tmp_path / "b.parquet"), row_group_size=7)
    groups = [
        (str(tmp_path / f), k)
        for f in ("a.parquet", "b.parquet")
        for k in range(pq.ParquetFile(str(tmp_path / f)).num_row_groups)
    ]
    listing = pa.record_batch({"path": [p for p, _ in groups], "row_group": [k for _, k in groups]})
    mh = parse_config({}).dedup.minhash

    got = pa.Table.from_batches(list(features_from_files_fn(mh, True, "q", 5)(iter([listing]))))
    assert max(len(b) for b in features_from_files_fn(mh, True, "q", 5)(iter([listing]))) <= 5
    expect_scores = [float(i) if i % 3 and i < n // 2 else None for i in range(n)]
    assert got.column("score").to_pylist() == expect_scores
    given = pa.record_batch(
        {
            "id": full.column("id").combine_chunks(),
            "text": full.column("text").combine_chunks(),
            "score": pa.array(expect_scores, pa.float64()),
            "_row": pa.array(
                spark_xxhash64(full.column("source"), full.column("part"), full.column("metadata")), pa.int64()
            ),
        }
    )
    assert got == pa.Table.from_batches(list(features_fn(mh, True)(iter([given]))))
    assert _signal(full.column("signals").combine_chunks(), None).null_count == n

    arrow = pa.schema([doc.field("id"), doc.field("signals")])
    chosen = pa.array([r["id"] for r in rows[::2]])
    read = pa.Table.from_batches(
        list(
            datasets.read_row_groups(
                iter([listing]), arrow, 4, where=lambda t: t.filter(pa.compute.is_in(t.column("id"), value_set=chosen))
            )
        )
    )
    assert read.column("id").to_pylist() == chosen.to_pylist()
    assert all(
        s is None
        for s, i in zip(read.column("signals").to_pylist(), read.column("id").to_pylist())
        if int(i, 16) >= n // 2
    )


def test_apply_decisions_keeps_order_sets_clusters_and_builds_rejects():
    """The dedup decisions applied to a batch of documents in a task: kept rows in their order with their
    cluster (their own id when undecided), removed rows as rejects with the decision's reason and target."""
    from corpus import schema
    from corpus.dedup.batches import DECISION_COLUMNS, Decisions, apply_decisions

    doc = schema.document().arrow
    rows = [
        {
            "id": f"d{k}",
            "part": "text",
            "source": "s",
            "text": f"text {k}",
            "metadata": json.dumps({"location": f"f.warc.gz@{k}"}),
        }
        for k in range(6)
    ]
    batch = pa.RecordBatch.from_pylist(rows, schema=doc)
    row = np.arange(100, 106, dtype=np.int64)
    decisions = pa.Table.from_pylist(
        [
            {"id": "d4", "_row": 104, "reason": "near_duplicate", "duplicate_of": "d1", "cluster": "d1", "detail": "J"},
            {"id": "d1", "_row": 101, "reason": None, "duplicate_of": None, "cluster": "d1", "detail": None},
            {
                "id": "d2",
                "_row": 102,
                "reason": "exact_duplicate",
                "duplicate_of": "d0",
                "cluster": "d0",
                "detail": "x",
            },
            {
                "id": "d3",
                "_row": 999,
                "reason": "exact_duplicate",
                "duplicate_of": "d0",
                "cluster": "d0",
                "detail": "x",
            },
        ],
        schema=pa.schema(
            [
                ("id", pa.string()),
                ("_row", pa.int64()),
                ("reason", pa.string()),
                ("duplicate_of", pa.string()),
                ("cluster", pa.string()),
                ("detail", pa.string()),
            ]
        ),
    )
    assert decisions.column_names == DECISION_COLUMNS
    docs, rejects = apply_decisions(batch, row, Decisions(decisions), "dedup")
    assert docs.schema == doc and rejects.schema == schema.rejects().arrow
    # d3's decision names another record (_row 999): d3 itself stays
    assert docs.column("id").to_pylist() == ["d0", "d1", "d3", "d5"]
    assert docs.column("dedup_cluster").to_pylist() == ["d0", "d1", "d3", "d5"]
    assert [
        (r["id"], r["stage"], r["reason"], r["duplicate_of"], r["detail"], r["location"], r["text"])
        for r in rejects.to_pylist()
    ] == [
        ("d2", "dedup", "exact_duplicate", "d0", "x", "f.warc.gz@2", "text 2"),
        ("d4", "dedup", "near_duplicate", "d1", "J", "f.warc.gz@4", "text 4"),
    ]
