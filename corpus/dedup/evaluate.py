"""Measuring near-duplicate removal: seeded edits of real text, exact ground truth, precision and recall.

Used by the tests and by ``bench/run.py``; usable on any set of texts to check dedup settings before a big run.

* :func:`make_near_duplicates` copies a share of the texts with seeded word edits (replace, delete, insert),
  at edit rates that spread the copies' Jaccard similarity across the threshold.
* :func:`true_pairs` finds **every** pair with exact Jaccard ≥ t over word n-gram shingles, with prefix filtering
  (Chaudhuri et al. 2006; Bayardo et al. 2007): order each document's shingles from rarest to most common; two
  sets with Jaccard ≥ t must share one of the first ``|x| - ceil(t·|x|) + 1`` shingles of each. Candidates
  from shared prefix shingles are then checked exactly, so nothing is estimated. Shingles are compared as
  64-bit BLAKE2b hashes of their bytes (a collision has probability ~2⁻⁶⁴ per pair of shingles).
* :func:`removal_scores`: removals are judged per ground-truth component C (the transitive closure of the true
  pairs, as a dedup that keeps one document per cluster sees it): up to |C| - 1 removals in C are correct,
  any other removal is a false positive. Precision = correct / removed; recall = correct / Σ(|C| - 1).
"""

from __future__ import annotations

import hashlib
import math
import random
from collections import defaultdict

import numpy as np

from corpus.dedup import minhash


def make_near_duplicates(
    texts: list[str], seed: int = 0, share: float = 0.3, max_copies: int = 3, max_edit_rate: float = 0.06
) -> list[tuple[str, str, int]]:
    """(text, kind, origin index) for every original text and the edited copies: a ``share`` of the texts get
    1..max_copies copies, each with a word-edit rate drawn uniformly from [0, max_edit_rate]."""
    rng = random.Random(seed)
    vocab = sorted({w for t in texts[:2000] for w in t.split()})
    out = [(t, "original", i) for i, t in enumerate(texts)]
    for i, text in enumerate(texts):
        if rng.random() >= share:
            continue
        words = text.split()
        for _ in range(rng.randint(1, max_copies)):
            out.append((" ".join(edit_words(words, rng, rng.uniform(0, max_edit_rate), vocab)), "copy", i))
    return out


def edit_words(words: list[str], rng: random.Random, rate: float, vocab: list[str]) -> list[str]:
    """The words with seeded edits at ``rate``: each word is replaced, deleted or followed by an inserted word
    with probability rate / 3 each."""
    edited = []
    for w in words:
        r = rng.random()
        if r < rate / 3:
            edited.append(rng.choice(vocab))  # replace
        elif r < 2 * rate / 3:
            continue  # delete
        elif r < rate:
            edited.extend([w, rng.choice(vocab)])  # insert
        else:
            edited.append(w)
    return edited


def shingle_arrays(texts: list[str], ngram: int = 5, mode: str = "words", lowercase: bool = True) -> list[np.ndarray]:
    """Sorted unique 64-bit hashes of each text's shingles (same tokens and shingles as the signatures)."""
    out = []
    for t in texts:
        hs = {
            int.from_bytes(hashlib.blake2b(s, digest_size=8).digest(), "little")
            for s in minhash.shingles(t, ngram, mode, lowercase)
        }
        out.append(np.array(sorted(hs), dtype=np.uint64))
    return out


jaccard = minhash.exact_jaccard  # of two sorted unique hash arrays


def true_pairs(sets: list[np.ndarray], threshold: float) -> dict[tuple[int, int], float]:
    """Every pair (i < j) of non-empty sets with Jaccard ≥ threshold, with its Jaccard (exact; see module doc)."""
    freq: dict[int, int] = defaultdict(int)
    for s in sets:
        for h in s.tolist():
            freq[h] += 1
    postings: dict[int, list[int]] = defaultdict(list)
    for i, s in enumerate(sets):
        if not len(s):
            continue
        ordered = sorted(s.tolist(), key=lambda h: (freq[h], h))
        for h in ordered[: len(s) - math.ceil(threshold * len(s) - 1e-9) + 1]:
            postings[h].append(i)
    candidates = set()
    for docs in postings.values():
        for x in range(len(docs)):
            for y in range(x + 1, len(docs)):
                candidates.add((docs[x], docs[y]))
    found = {}
    for i, j in candidates:
        a, b = sets[i], sets[j]
        if min(len(a), len(b)) < threshold * max(len(a), len(b)):
            continue  # length filter: the Jaccard is at most the ratio of the sizes
        jac = jaccard(a, b)
        if jac >= threshold:
            found[(i, j)] = jac
    return found


def components(n: int, pairs) -> list[int]:
    """Union-find: the smallest member of each index's component."""
    parent = list(range(n))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for i, j in pairs:
        ri, rj = find(i), find(j)
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)
    return [find(i) for i in range(n)]


def removal_scores(n: int, pairs, removed: set[int]) -> dict[str, float]:
    comp = components(n, pairs)
    size: dict[int, int] = defaultdict(int)
    for c in comp:
        size[c] += 1
    should = sum(s - 1 for s in size.values())
    removed_in: dict[int, int] = defaultdict(int)
    for i in removed:
        removed_in[comp[i]] += 1
    correct = sum(min(k, size[c] - 1) for c, k in removed_in.items())
    return {
        "removed": len(removed),
        "should_remove": should,
        "correct": correct,
        "precision": correct / len(removed) if removed else 1.0,
        "recall": correct / should if should else 1.0,
    }
