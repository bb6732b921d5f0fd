"""Config sections of the `dedup` package's stage, beside its code; :mod:`corpus.config` assembles them into
the run config (and re-exports them, so ``from corpus.config import ...`` keeps working)."""

from __future__ import annotations

from typing import Literal

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from corpus.sections import Section


class ExactDedupSection(Section):
    enabled: bool = Field(
        True,
        description="Drop documents whose normalised text (NFKC, lowercased, whitespace collapsed) equals another's.",
    )


class MinHashSection(Section):
    enabled: bool = Field(
        True,
        description="Near-duplicate removal: MinHash signatures, LSH candidates, a "
        "Jaccard check and connected components (after exact dedup).",
    )
    ngram: int = Field(5, ge=1, le=64, description="Shingle size in tokens (5 as in datatrove and text-dedup).")
    tokenizer: Literal["words", "whitespace"] = Field(
        "words",
        description="`words`: runs of letters, digits, "
        "`_` and non-ASCII characters (ASCII punctuation splits); "
        "`whitespace`: `str.split()`-style tokens.",
    )
    lowercase: bool = Field(True, description="Lowercase (Unicode) before tokenising.")
    num_perm: int = Field(128, ge=16, le=1024, description="Permutations (signature length).")
    seed: int = Field(
        1,
        ge=0,
        description="Permutation seed (datasketch's default, so its `MinHash(num_perm, "
        "seed, hashfunc=corpus.dedup.minhash.shingle_hash)` gives the same signatures).",
    )
    threshold: float = Field(
        0.8,
        gt=0,
        le=1,
        description="Jaccard similarity (5-gram shingles) at or above which two documents are near-duplicates.",
    )
    lsh_weights: tuple[float, float] = Field(
        (0.05, 0.95),
        description="[false positive, false negative] "
        "weights of datasketch's optimal band/row search. Candidates are "
        "checked afterwards, so false positives cost only checking time "
        "and the default leans 19:1 to recall (128 perms, 0.8: 16 bands "
        "× 8 rows; datasketch's 0.5/0.5 gives 9 × 13, which finds only "
        "40% of pairs at Jaccard 0.8).",
    )
    bands: int | None = Field(
        None, ge=1, description="Set bands and rows explicitly instead (bands × rows ≤ num_perm)."
    )
    rows: int | None = Field(None, ge=1, description="See `bands`.")
    verify: Literal["exact", "estimate", "off"] = Field(
        "exact",
        description="Candidate check: `exact` "
        "Jaccard of the two shingle sets, `estimate` from the "
        "signatures (±0.035 at 0.8 with 128 perms), `off`.",
    )
    verify_max_shingles: int = Field(
        2_000_000,
        ge=1,
        description="Documents with more distinct shingles are checked "
        "by the signature estimate (bounds the memory of the exact check).",
    )
    max_iterations: int = Field(
        100,
        ge=1,
        description="Connected-components rounds before giving up (large-"
        "star/small-star converges in O(log² n) rounds; a 100k-node chain takes ~20).",
    )
    components_local_max_edges: int = Field(
        4_000_000,
        ge=0,
        description="Checked edges up to which connected "
        "components are labelled in one Spark task (scipy's union-find, "
        "~100 B per edge: ~400 MB at the default) instead of distributed "
        "large-star/small-star rounds (~1 s of Spark jobs each). 0: always "
        "distributed.",
    )
    previous_index: str | None = Field(
        None,
        description="A previous run's signature index (`OUT/dedup/index`)"
        ": documents near-duplicate to one in it are removed, so scheduled runs "
        "don't re-admit what the corpus already has.",
    )
    write_index: bool = Field(
        True,
        description="Write this run's index (`OUT/dedup/index`): the kept "
        "documents' signatures plus the previous index's.",
    )

    @field_validator("lsh_weights")
    @classmethod
    def _weights(cls, v: tuple[float, float]) -> tuple[float, float]:
        if any(w < 0 or w > 1 for w in v) or abs(sum(v) - 1) > 1e-9:
            raise ValueError(f"weights must be in [0, 1] and sum to 1 (got {list(v)})")
        return v

    def band_rows(self) -> tuple[int, int]:
        from corpus.dedup.minhash import lsh_params

        if (self.bands is None) != (self.rows is None):
            raise ValueError("dedup.minhash: set both bands and rows, or neither")
        if self.bands is not None:
            if self.bands * self.rows > self.num_perm:
                raise ValueError(
                    f"dedup.minhash: bands × rows = {self.bands * self.rows} exceeds num_perm {self.num_perm}"
                )
            return self.bands, self.rows
        return lsh_params(self.threshold, self.num_perm, self.lsh_weights)


class DedupSection(Section):
    keep: Literal["smallest_id", "longest_text", "highest_score"] = Field(
        "smallest_id",
        description="Which document of a duplicate group is kept: the smallest id, the longest "
        "text, or the highest `score_signal` (documents without it rank last). Ties: smallest id.",
    )
    score_signal: str | None = Field(None, description="For `keep: highest_score`: the key in `signals` to rank by.")
    exact: ExactDedupSection = Field(default_factory=ExactDedupSection)
    minhash: MinHashSection = Field(default_factory=MinHashSection)

    @model_validator(mode="after")
    def _signal(self) -> "DedupSection":
        if self.keep == "highest_score" and not self.score_signal:
            raise ValueError("keep: highest_score needs score_signal (the signal to rank by)")
        return self
