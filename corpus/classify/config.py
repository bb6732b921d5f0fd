"""Config sections of the `classify` package's stage, beside its code; :mod:`corpus.config` assembles them into
the run config (and re-exports them, so ``from corpus.config import ...`` keeps working)."""

from __future__ import annotations

from typing import Literal

from pydantic import (
    Field,
)

from corpus.sections import Part, Section


class FastTextTrainSection(Section):
    """fastText supervised training. MAmmoTH2's recall classifier (Yue et al. 2024, §2.1) uses dim 256, lr 0.1,
    word n-grams up to 3, minCount 3, 3 epochs on 100K + 100K documents; the defaults here were chosen on
    out-of-source evaluation (bench/RESULTS.md, issue #23), where words alone, lr 0.5, bigrams and enough epochs for
    the data's size matter and the vector size does not."""

    dim: int = Field(
        64,
        ge=2,
        le=1024,
        description="Vector size. MAmmoTH2 uses 256; out of source it scores the "
        "same as 64, at four times the model size and scoring time.",
    )
    lr: float = Field(
        0.5, gt=0, le=10, description="Learning rate (MAmmoTH2: 0.1, which underfits a few thousand documents)."
    )
    word_ngrams: int = Field(
        2,
        ge=1,
        le=6,
        description="Word n-grams up to this length (MAmmoTH2: 3; 2 measured "
        "as good out of source, with a smaller model).",
    )
    min_count: int = Field(3, ge=1, description="Words seen fewer times are dropped.")
    epoch: int | None = Field(
        None,
        ge=1,
        le=100,
        description="Passes over the training set; default: enough to "
        "see about 20M tokens, between 3 (MAmmoTH2's 3 on 200K documents) and 25.",
    )
    tokens: Literal["words", "words_and_symbols"] = Field(
        "words",
        description="What the model sees: `words` "
        "(words and identifiers) or `words_and_symbols` (also "
        "punctuation, which makes it a formatting detector "
        "on sources it never saw).",
    )
    bucket: int = Field(
        200_000,
        ge=1_000,
        description="Hash buckets for word n-grams. fastText's default 2M "
        "makes a 2 GB model at dim 256 for the same held-out F1 on our data; 200k at dim 64 makes "
        "~55 MB.",
    )
    threads: int = Field(
        1,
        ge=1,
        le=64,
        description="Training threads. 1 is reproducible (same data, same "
        "seed, same model); fastText's threads update the model without locks, so more "
        "threads train faster but not identically.",
    )
    max_words: int = Field(1_000, ge=10, description="Tokens of each document used to train and to score (its start).")


class ClassifySection(Section):
    """The `classify` stage: a fastText agent-relevance classifier trained on the run's own agent data (as
    Hephaestus and MAmmoTH2 recall web pages like their seeds), applied to every document of `apply_parts`."""

    enabled: bool = Field(True, description="Run the stage in `forge run` (off: documents pass unscored).")
    apply_parts: list[Part] = Field(
        ["text"], description="Parts scored; documents at or above the threshold move to part `agent_web`."
    )
    positive_parts: list[Part] = Field(
        ["tool_doc", "trajectory"], description="Parts whose documents are positives (agent data)."
    )
    seed_domains: list[str] = Field(
        default_factory=list,
        description="Hosts whose pages are positives too (subdomains included), e.g. docs sites of APIs.",
    )
    seed_urls: list[str] = Field(default_factory=list, description="URL prefixes whose pages are positives.")
    positive_sources: list[str] = Field(
        default_factory=list,
        description="Sources (the `source` names of "
        "inputs) whose documents are positives whatever their part: docs pages, "
        "man pages, READMEs you know are agent-relevant.",
    )
    negative_parts: list[Part] = Field(
        ["text"], description="Parts sampled for negatives (general web text), less the seed domains and URLs."
    )
    negative_sources: list[str] | None = Field(
        None,
        description="When set, only documents of `negative_parts` "
        "from these sources are negatives; the others (an unlabelled crawl "
        "to recall from) are only scored. Null: all of them.",
    )
    balance_sources: bool = Field(
        True,
        description="Give every source of a class an equal share of the class's "
        "sample (a source with fewer documents keeps all it has and leaves the rest to "
        "the others), so one large source cannot dominate what the model learns.",
    )
    max_positives: int = Field(100_000, ge=10, description="Positives sampled at most (MAmmoTH2: 100K).")
    max_negatives: int = Field(100_000, ge=10, description="Negatives sampled at most (MAmmoTH2: 100K).")
    max_class_ratio: float | None = Field(
        1.0,
        gt=0,
        description="The larger class is sampled down to this "
        "many times the smaller (MAmmoTH2 trains 1:1); null keeps both caps "
        "only.",
    )
    holdout: float = Field(
        0.2,
        gt=0,
        lt=1,
        description="Share of dedup clusters of the training sources held "
        "out to measure in-distribution precision and recall (near-duplicates never straddle "
        "the split).",
    )
    split_by: Literal["source", "host", "cluster"] = Field(
        "source",
        description="What is held out to measure "
        "how the model does on data unlike its training data "
        "(out of source): whole `source`s (a share "
        "`holdout_sources` of each class's sources), whole URL "
        "`host`s (a share `holdout` of them), or nothing beyond "
        "the in-distribution split (`cluster`).",
    )
    holdout_sources: float = Field(
        0.25,
        gt=0,
        lt=1,
        description="`split_by: source`: share of each class's "
        "sources held out (at least one when a class has two or more).",
    )
    threshold: float | None = Field(
        None,
        ge=0,
        le=1,
        description="Score at or above which a document becomes "
        "`agent_web`. Null: of the thresholds whose precision reaches "
        "`target_precision` on the out-of-source split (the in-distribution one when "
        "there is none), the one of best F1.",
    )
    target_precision: float = Field(
        0.9,
        gt=0,
        le=1,
        description="Held-out precision the chosen threshold "
        "must reach (when `threshold` is null). If none does, the threshold of "
        "highest precision is used and the stats say so.",
    )
    rounds: int = Field(
        1,
        ge=1,
        le=10,
        description="Training rounds. Each round after the first adds the "
        "previous round's recalled documents to the positives (and takes them out of the "
        "negatives), as MAmmoTH2 and DeepSeekMath do; stats are kept per round.",
    )
    promote_domains: list[str] = Field(
        default_factory=list,
        description="Hosts whose scored pages always become `agent_web` (after reading the per-host view).",
    )
    promote_share: float | None = Field(
        0.8,
        gt=0,
        le=1,
        description="MAmmoTH2's domain step, after the model "
        "scores: a host with at least `min_host_documents` scored pages of which "
        "this share or more is recalled is promoted — all its scored pages become "
        "`agent_web`, and a next round trains on them as positives. Null: off.",
    )
    demote_share: float | None = Field(
        0.05,
        ge=0,
        lt=1,
        description="... and a host with at least "
        "`min_host_documents` scored pages of which this share or less is recalled "
        "is demoted: its few recalled pages (likely false positives on a general "
        "site) stay `text`. Null: off.",
    )
    min_host_documents: int = Field(
        20, ge=1, description="Scored pages a host needs before it can be promoted or demoted."
    )
    block_domains: list[str] = Field(
        default_factory=list,
        description="Hosts whose pages never become `agent_web`, and are never recalled as positives.",
    )
    model: str | None = Field(
        None,
        description="Apply this saved model (a `model.bin`, or a finished run's "
        "`classify` output folder) instead of training. `forge classify --model` sets it.",
    )
    fasttext: FastTextTrainSection = Field(default_factory=FastTextTrainSection)
    top_hosts: int = Field(
        25, ge=0, description="Hosts listed in the stats' per-host view (all are in `OUT/classify/hosts`)."
    )
