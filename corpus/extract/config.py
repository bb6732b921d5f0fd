"""Config sections of the `extract` package's stage, beside its code; :mod:`corpus.config` assembles them into
the run config (and re-exports them, so ``from corpus.config import ...`` keeps working)."""

from __future__ import annotations

from typing import Literal

from pydantic import (
    Field,
)

from corpus.sections import LlmEndpoint, Part, Section


class LlmSection(LlmEndpoint):
    """An OpenAI-compatible chat-completions endpoint (vLLM, llama.cpp server, a hosted API) for extraction and
    refinement. Off by default; nothing is ever sent unless `enabled` is true and `base_url` is set."""

    extract: bool = Field(
        True,
        description="Ask the model for instruction-response pairs in each document "
        "(MAmmoTH2's extraction; it answers `void` when there are none).",
    )
    refine: bool = Field(
        False,
        description="Ask the model to refine each pair (MAmmoTH2's refinement: fix "
        "format, add missing context and steps).",
    )
    max_document_chars: int = Field(12_000, ge=100, description="Document text sent at most (its start).")


class ExtractStageSection(Section):
    """The `extract` stage: instruction-response pairs from `agent_web` and docs pages (MAmmoTH2-style)."""

    enabled: bool = Field(True, description="Run the stage in `forge run`.")
    parts: list[Part] = Field(["agent_web", "tool_doc", "trajectory"], description="Parts pairs are extracted from.")
    extractors: list[Literal["qa", "code_example", "api_operation", "executed_usage", "doctest"]] = Field(
        ["qa", "code_example", "api_operation", "executed_usage", "doctest"],
        description="Rule-based extractors: `qa` "
        "(question headings and FAQ blocks followed by answers), `code_example` (a description followed by a code "
        'example), `api_operation` (an API operation from ingest-apis\' typed records: "do Y with X" → the call '
        "and its explanation), `executed_usage` (an executed trajectory of `synthesize`: the user's request → the "
        "boto3 / Python code making the same calls, with the results they really returned), `doctest` (a Python "
        "API's documented doctest, run in a sandbox: the prose before it → the session with its real output).",
    )
    doctest_run: bool = Field(
        True,
        description="`doctest`: run each block in the sandboxed worker (a block that "
        "raises, times out or cannot import its module is rejected: `doctest_failed`); off: "
        "pairs carry the documented output, not run.",
    )
    doctest_max_blocks: int = Field(
        3,
        ge=1,
        description="`doctest`: blocks per function at most, run together "
        "and made into one pair (the first ones: the documented, simplest uses).",
    )
    doctest_max_per_api: int = Field(
        3,
        ge=1,
        description="`doctest`: functions per API (a module of a "
        "distribution) whose doctests are made into pairs, chosen by content hash "
        "(functions before classes and methods): one library's hundreds of doctests "
        "would otherwise drown the other extractors.",
    )
    tools: str | None = Field(
        None,
        description="ingest-apis output whose `tools/` records feed `api_operation`; "
        "default: `ingest-apis` beside the input (the same run).",
    )
    api_operation_without_example: bool = Field(
        False,
        description="`api_operation` also makes a pair for an "
        "operation without a documented example, restating its "
        'documentation ("do Y with X" → the call with placeholders): '
        "template text, off by default.",
    )
    max_pairs_per_document: int = Field(50, ge=1, description="Pairs kept per document and extractor at most.")
    min_instruction_words: int = Field(3, ge=1, description="Shorter instructions are rejected.")
    max_instruction_words: int = Field(400, ge=1, description="Longer instructions are rejected.")
    min_response_words: int = Field(3, ge=1, description="Shorter responses are rejected.")
    max_response_words: int = Field(4_000, ge=1, description="Longer responses are rejected.")
    max_copy_overlap: float = Field(
        0.8,
        gt=0,
        le=1,
        description="A response whose words are this much the "
        "instruction's (share of its distinct words found in the instruction) is a "
        "copy and rejected.",
    )
    lang: list[str] = Field(
        ["en"], description="Languages a pair may be in (fastText lid.176 on instruction + response); empty: any."
    )
    min_lang_score: float = Field(
        0.25,
        ge=0,
        le=1,
        description="Least lid.176 probability of the top label "
        "(which must be in `lang`). Low because code dilutes it: an English SQS pair "
        "with its boto3 call scores en 0.43.",
    )
    llm: LlmSection = Field(default_factory=LlmSection)
    max_llm_failure_rate: float = Field(
        0.2,
        ge=0,
        le=1,
        description="Share of LLM calls that may fail (errors, "
        "replies unreadable after one re-ask) before the stage fails, naming the "
        "endpoint; any failure is warned about on the console.",
    )
