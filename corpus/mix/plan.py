"""Token quotas for a mix, and the threshold that meets a quota with a seeded choice of whole documents.

Pure functions over small aggregates (tokens by part, token histograms over the seeded key), so they are
tested without Spark; :mod:`corpus.mix.stage` computes the aggregates and applies the result.

How a part p with ``T`` tokens meets a quota ``Q``: every document gets ``floor(Q / T)`` copies, and the
remaining ``R = Q - floor(Q / T)·T`` tokens come from the documents whose seeded key ``u`` (uniform in [0, 1),
from a hash of seed, output and id) is below a threshold ``t``. ``t`` is found from two token histograms over
``u`` — 4,096 buckets, then 4,096 sub-buckets of the bucket where the running sum crosses ``R`` — so the
choice is exact to about one document without sorting the part (a sort of billions of rows, or a window over
one partition per part, would not scale).
"""

from __future__ import annotations

import math

BUCKETS = 4096


def quotas(
    available: dict[str, int],
    shares: dict[str, float],
    epochs: dict[str, float],
    when_short: str,
    max_tokens: int | None,
) -> tuple[dict[str, float], list[str]]:
    """Tokens each part contributes, and warnings. ``available``: tokens by part in the input."""
    warnings = []
    live = {p: s for p, s in shares.items() if available.get(p, 0) > 0}
    for p in sorted(set(shares) - set(live)):
        warnings.append(f"part {p!r} has no tokens in the input: its share ({shares[p]:.3f}) cannot be met")
    if not live:
        return {}, warnings
    total = sum(live.values())
    live = {p: s / total for p, s in live.items()}
    cap = {p: available[p] * epochs[p] for p in live}
    limit = math.inf if max_tokens is None else float(max_tokens)
    if when_short == "shrink":
        n = min(min(cap[p] / s for p, s in live.items()), limit)
        binding = min(live, key=lambda p: cap[p] / live[p])
        if n < limit:
            warnings.append(
                f"size set by part {binding!r}: {available[binding]:,} tokens × {epochs[binding]:g} "
                f"epochs = {live[binding]:.3f} of {n:,.0f} tokens"
            )
        return {p: s * n for p, s in live.items()}, warnings
    # redistribute: water-filling. Parts that run out are used up; the rest share what is left in proportion.
    out: dict[str, float] = {}
    open_parts = dict(live)
    remaining = min(sum(cap.values()), limit)
    while open_parts:
        weight = sum(open_parts.values())
        full = [p for p, s in open_parts.items() if cap[p] < remaining * s / weight]
        if not full:
            for p, s in open_parts.items():
                out[p] = remaining * s / weight
            break
        for p in full:
            out[p] = cap[p]
            remaining -= cap[p]
            warnings.append(f"part {p!r} used up at {epochs[p]:g} epochs ({cap[p]:,.0f} tokens): below its share")
            del open_parts[p]
    return out, warnings


def copies(quota: float, available: int) -> tuple[int, float]:
    """(whole copies of every document, tokens still to choose)."""
    whole = int(quota // available)
    return whole, quota - whole * available


def crossing(hist: dict[int, int], target: float) -> tuple[int, float]:
    """(bucket where the running token sum crosses ``target``, tokens of the buckets before it).
    ``hist``: bucket → tokens."""
    before = 0.0
    for b in sorted(hist):
        if before + hist[b] >= target:
            return b, before
        before += hist[b]
    return max(hist) if hist else 0, before


def best_cut(hist: dict[int, int], target: float) -> int:
    """Sub-bucket boundary c (select sub-buckets < c) whose running sum is closest to ``target``."""
    best, best_err, run = 0, abs(target), 0.0
    for b in sorted(hist):
        run += hist[b]
        if abs(target - run) < best_err:
            best, best_err = b + 1, abs(target - run)
    return best


def threshold(level1: dict[int, int], level2_for, remainder: float) -> float:
    """The key threshold t for ``remainder`` tokens. ``level1``: bucket → tokens; ``level2_for(b)``: sub-bucket →
    tokens of bucket b (computed only for the one bucket that needs it)."""
    if remainder <= 0 or not level1:
        return 0.0
    b, before = crossing(level1, remainder)
    cut = best_cut(level2_for(b), remainder - before)
    return (b + cut / BUCKETS) / BUCKETS


def copies_by_rule(whole: dict[str, int], thresholds: dict[str, float], parts, u):
    """The copies of each document under a plan (numpy arrays ``parts`` (str) and ``u`` → int64 array):
    ``whole[p]`` plus one when ``u < thresholds[p]``; 0 for a part not in the plan. What the mix stage's
    selection holds, recomputed in ``write``'s tasks so that they need no join with it."""
    import numpy as np

    out = np.zeros(len(u), np.int64)
    for p, w in whole.items():
        mask = parts == p
        out[mask] = w + (u[mask] < thresholds.get(p, 0.0))
    return out
