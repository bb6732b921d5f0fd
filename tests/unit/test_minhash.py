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


EDGE_TEXTS = ["", "   \n\t ", "one", "two words", "a b c d", "a b c d e", "Ünïcode wörds — ÀB and `code_x = 1`\n\tnext",
              "MiXeD CaSe, punctuation!!! (parens) [brackets] {braces} x=1;y=2", "日本語のテキスト と 空白", "\x00\x01 ctrl"]


def test_xxh32_kernel_equals_xxhash():
    rng = np.random.default_rng(3)
    for n in list(range(0, 70)) + [255, 256, 1000, 4099]:
        buf = rng.integers(0, 256, n, dtype=np.uint8)
        assert int(minhash._xxh32(buf, 0, n)) == xxhash.xxh32_intdigest(buf.tobytes()), n


@pytest.mark.parametrize("num_perm,seed,ngram,mode,lowercase", [
    (128, 1, 5, "words", True), (64, 7, 3, "words", False), (256, 1, 1, "whitespace", True),
    (128, 42, 9, "whitespace", False), (32, 0, 2, "words", True),
])
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
            {minhash.shingle_hash(s) for s in shingles})


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
    hits = sum(str(r[2]) in lsh.query(MinHash(num_perm=128, hashvalues=s, scheme="affine32"))
               for r, s in zip(rows[30:], sigs[30:]))
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
        errors.append(minhash.estimated_jaccard(sigs[k:k + 1], sigs[origin:origin + 1])[0] - exact)
    assert abs(np.mean(errors)) < 0.02 and np.std(errors) < 0.05


def test_ground_truth_equals_brute_force(real_texts):
    rows = evaluate.make_near_duplicates(real_texts, seed=9)
    sets = evaluate.shingle_arrays([r[0] for r in rows])
    for t in (0.5, 0.8, 0.95):
        brute = {(i, j) for i, j in itertools.combinations(range(len(sets)), 2)
                 if len(sets[i]) and len(sets[j]) and evaluate.jaccard(sets[i], sets[j]) >= t}
        assert set(evaluate.true_pairs(sets, t)) == brute
    assert brute, "the seeded edits must produce near-duplicates"


def test_removal_scores():
    pairs = [(0, 1), (1, 2), (4, 5)]  # truth components {0,1,2}, {4,5}; 3 and 6 are unique
    assert evaluate.removal_scores(7, pairs, {1, 2, 5}) == {
        "removed": 3, "should_remove": 3, "correct": 3, "precision": 1.0, "recall": 1.0}
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
    out = json.loads(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                                    text=True).stdout.strip().splitlines()[-1])
    assert out["shingles"] == 20_000_000 - 4
    assert out["growth"] < 1.2 * out["bytes"] + 64 * 2**20, out


def test_candidate_check_exact_and_estimate(real_texts):
    """The check batch function: exact Jaccard where both shingle sets are present, the signature estimate where
    one is missing (above verify_max_shingles, or a previous-index document); threshold applied to both."""
    from corpus.dedup.stage import _binary_rows, check_fn, shingle_sets_fn

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
    batch = pa.record_batch({"a": [ids[i] for i in a], "b": [ids[j] for j in b],
                             "sig_a": sig.take(a), "sig_b": sig.take(b),
                             "sh_a": pa.array([sets[i] for i in a], pa.binary()),
                             "sh_b": pa.array([sets[j] for j in b], pa.binary())})
    out = next(check_fn(mh)(iter([batch]))).to_pylist()
    assert {r["exact"] for r in out} == {True, False}
    for row, i, j in zip(out, a, b):
        assert row["exact"] == (sets[i] is not None and sets[j] is not None)
        want = (minhash.exact_jaccard(minhash.shingle_set(texts[i]), minhash.shingle_set(texts[j])) if row["exact"]
                else float(minhash.estimated_jaccard(sigs[i:i + 1], sigs[j:j + 1])[0]))
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
    batches = [pa.RecordBatch.from_pylist([{"a": a, "b": b} for a, b in edges[k:k + 777]])
               for k in range(0, len(edges), 777)]
    got = {}
    for batch in label_components(iter(batches)):
        got.update(zip(batch.column("id").to_pylist(), batch.column("component").to_pylist()))
    assert got == {v: nodes[roots[index[v]]] for v in nodes}
    assert list(label_components(iter([]))) == []
