"""Config sections of the `trajectories` package's stage, beside its code; :mod:`corpus.config` assembles them into
the run config (and re-exports them, so ``from corpus.config import ...`` keeps working)."""

from __future__ import annotations

from typing import Literal

from pydantic import (
    ByteSize,
    Field,
)

from corpus.sections import LlmEndpoint, Section


class JudgeSection(LlmEndpoint):
    """An LLM judge of trajectories (APIGen's semantic check: do the calls and results fulfil every request?),
    through an OpenAI-compatible endpoint. Off by default."""

    votes: int = Field(
        1,
        ge=1,
        le=9,
        description="Judges asked (a committee, at `temperature`); the majority "
        "decides. APIGen-MT reviews blueprints with a committee.",
    )
    on_no_verdict: Literal["reject", "keep"] = Field(
        "reject",
        description="A trajectory for which no judge gave a "
        "readable verdict (errors, unreadable replies, budget spent): "
        "`reject` (`judge_no_verdict`) or `keep` it on the other "
        "checks' word.",
    )


class IngestTrajectoriesSection(Section):
    """The `ingest-trajectories` stage: import, verify (APIGen's checks) and score function-calling data."""

    format: Literal["auto", "openai", "sharegpt", "xlam", "bfcl"] = Field(
        "auto", description="Record format; `auto` detects it per record from its keys."
    )
    require_calls: bool = Field(True, description="Reject conversations without any tool call (`no_tool_calls`).")
    grounding: Literal["flag", "reject", "off"] = Field(
        "flag",
        description="String arguments not found in the "
        "conversation before the call: `flag` records it in the "
        "checks, `reject` drops the trajectory "
        "(`ungrounded_argument`).",
    )
    max_record_bytes: ByteSize = Field(
        ByteSize(64 * 1024**2),
        description="Records (JSON lines, or items of a "
        "file holding one JSON array) longer than this after decompression are "
        "rejected (`too_large`) without being held whole. Files are streamed a "
        "record at a time and have no size limit.",
    )
    judge: JudgeSection = Field(default_factory=JudgeSection)
    max_llm_failure_rate: float = Field(
        0.2,
        ge=0,
        le=1,
        description="Share of LLM calls that may fail (errors, "
        "replies unreadable after one re-ask) before the stage fails, naming the "
        "endpoint; any failure is warned about on the console.",
    )


class SynthesizeSection(Section):
    """The `synthesize` stage: trajectories made by executing tasks planned from ingest-apis' operations (APIGen-MT
    blueprints, run in moto's AWS mocks, kept when the final state checks out)."""

    enabled: bool = Field(True, description="Run the stage in `forge run` (when the run ingests API specs).")
    max_per_api: int = Field(
        40,
        ge=1,
        description="Tasks per executable API version at most (roots taken in a "
        "seeded order), so APIs with hundreds of operations do not crowd out small ones.",
    )
    irrelevance_share: float = Field(
        0.05,
        ge=0,
        le=1,
        description="Share of tasks that are irrelevance cases: a "
        "request none of the offered tools fits, which the assistant declines (as "
        "in BFCL and Toucan).",
    )
    distractors: int = Field(3, ge=0, le=32, description="Other operations of the same API offered as tools.")
    sources: list[str] = Field(
        default_factory=list, description="Only operations from these `source` names (empty: all)."
    )
    judge: JudgeSection = Field(default_factory=JudgeSection)
    llm: LlmEndpoint = Field(
        default_factory=LlmEndpoint,
        description="An LLM that plays the user (and words the "
        "assistant's last reply) for each blueprint; the checks still verify the result "
        "(grounding: the user must state the argument values). Off: templates.",
    )
    max_llm_failure_rate: float = Field(
        0.2,
        ge=0,
        le=1,
        description="Share of LLM calls that may fail (errors, "
        "replies unreadable after one re-ask) before the stage fails, naming the "
        "endpoint; any failure is warned about on the console.",
    )
