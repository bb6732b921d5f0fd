"""Config sections of the `decontaminate` package's stage, beside its code; :mod:`corpus.config` assembles them into
the run config (and re-exports them, so ``from corpus.config import ...`` keeps working)."""

from __future__ import annotations

from typing import Literal

from pydantic import (
    Field,
    field_validator,
)

from corpus.sections import Part, Section, resolve_package_path


class BenchmarkSpec(Section):
    """A benchmark test set to decontaminate against."""

    name: str = Field(
        description="Name used in reject reasons (`contaminated:<name>`) and stats.", pattern=r"^[A-Za-z0-9_.-]+$"
    )
    path: str = Field(
        description="`builtin:bfcl-v4` (the BFCL v4 questions in the bfcl-eval wheel), or a JSONL / "
        "JSON / Parquet file or folder of them."
    )
    fields: list[str] = Field(
        ["text"],
        description="Fields holding the test items' text; every string inside "
        "them (lists and nested objects included) is one item.",
    )

    @field_validator("path")
    @classmethod
    def _package_path(cls, value: str) -> str:
        return value if value.startswith("builtin:") else resolve_package_path(value)


class DecontaminateSection(Section):
    """The `decontaminate` stage: word n-gram overlap with benchmark test sets, as a Spark join."""

    enabled: bool = Field(True, description="Run the stage in `forge run`.")
    benchmarks: list[BenchmarkSpec] = Field(
        default_factory=lambda: [BenchmarkSpec(name="bfcl-v4", path="builtin:bfcl-v4", fields=["question"])],
        description="Benchmark test sets. Default: BFCL v4's questions (every category's user turns).",
    )
    ngram: int = Field(13, ge=3, le=64, description="n of the word n-grams compared (GPT-3 and most since: 13).")
    min_item_tokens: int = Field(
        8,
        ge=1,
        description="Benchmark items shorter than `ngram` tokens are matched "
        "whole, anywhere in a document, when they have at least this many tokens; shorter "
        'ones ("What is the capital of Brazil?") are too generic to look for inside '
        "text and are matched exactly instead (`exact_short_items`).",
    )
    exact_short_items: bool = Field(
        True,
        description="Remove a document with a line that *is* a benchmark item "
        "shorter than `min_item_tokens` (compared as tokens: case, punctuation and "
        "spacing aside), e.g. a trajectory's user turn.",
    )
    exact_min_tokens: int = Field(
        3,
        ge=1,
        description="Shortest item matched exactly as any line. BFCL v4 has "
        '112 items of 1–2 tokens ("Hello", "Paris", "```bash", "help me"): '
        "fragments that are ordinary lines of ordinary pages, so matching them anywhere "
        "removes clean text; see `exact_turn_items`.",
    )
    exact_turn_items: bool = Field(
        True,
        description="Also match items shorter than `exact_min_tokens` where "
        "they are a whole user turn or instruction (the line after `### User` / `### "
        'Instruction`, alone): there a benchmark\'s "Hello" is its item, not a '
        "fragment.",
    )
    mode: Literal["document", "span"] = Field(
        "document",
        description="`document`: drop a document with a match; "
        "`span`: cut the matched text (plus `span_margin_chars` either side) "
        "and keep the rest (GPT-3's procedure).",
    )
    min_matches: int = Field(
        1, ge=1, description="Distinct matching n-grams needed before a document counts as contaminated."
    )
    span_margin_chars: int = Field(
        200, ge=0, description="`span` mode: bytes of text removed either side of a match (GPT-3: 200 characters)."
    )
    max_pieces: int = Field(
        10, ge=1, description="`span` mode: a document cut into more pieces than this is dropped whole (GPT-3: 10)."
    )
    parts: list[Part] = Field(
        ["text", "agent_web", "tool_doc", "trajectory", "instruction", "code"], description="Parts checked."
    )
    prefilter: bool = Field(
        True,
        description="Emit only the corpus n-grams a Bloom filter of the benchmark "
        "n-grams admits (the join still decides); off: every n-gram goes through the join.",
    )
    prefilter_max_hashes: int = Field(
        50_000_000,
        ge=1,
        description="Benchmarks with more n-grams than this skip "
        "the prefilter (its bits are broadcast to every executor).",
    )
