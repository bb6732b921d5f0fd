"""Config sections of the `web` package's stage, beside its code; :mod:`corpus.config` assembles them into
the run config (and re-exports them, so ``from corpus.config import ...`` keeps working)."""

from __future__ import annotations

from typing import Literal

from pydantic import (
    ByteSize,
    Field,
    model_validator,
)

from corpus.sections import Section


class HtmlExtractSection(Section):
    engine: Literal["trafilatura", "resiliparse"] = Field(
        "trafilatura",
        description="Main-text extractor. `trafilatura`: the most exact main text (its settings below). "
        "`resiliparse`: DCLM's extractor, many times faster and a little less exact (bench/RESULTS.md measures "
        "both on the same pages); it keeps tables and lists as text, honours `include_comments` and `metadata` "
        "(the title; no date), and ignores trafilatura's other settings.",
    )
    output_format: Literal["txt", "markdown"] = Field(
        "txt",
        description="trafilatura output format. `txt` keeps code blocks and tables as text; `markdown` adds markup.",
    )
    include_tables: bool = Field(True, description="Keep tables (API docs put parameters in them).")
    clean_layout: bool = Field(
        True,
        description="Before extraction, turn layout tables (a table holding another "
        "table or block elements, or whose rows mostly have fewer than two filled cells, "
        "as pydoc and old docs sites lay pages out) into plain blocks, so their text keeps "
        "its lines instead of becoming `| |  |` rows, and read such a page with recall "
        "(trafilatura's precision heuristics keep its first block only); after it, no-break "
        "spaces become spaces. Off: exactly what `trafilatura.extract` returns.",
    )
    include_comments: bool = Field(True, description="Keep comment sections (trafilatura's default).")
    favor_precision: bool = Field(False, description="trafilatura: prefer less text but correct extraction.")
    favor_recall: bool = Field(False, description="trafilatura: when unsure, prefer more text.")
    metadata: bool = Field(True, description="Extract title (trafilatura) and date (htmldate) from the same parse.")
    extensive_date_search: bool = Field(
        False,
        description="htmldate's extensive search (slow; off: the fast search, which finds dates in markup and URLs).",
    )
    max_date: str = Field(
        "2099-12-31",
        pattern=r"^\d{4}-\d{2}-\d{2}$",
        description="Latest date accepted for "
        "pages without a fetch date (.html files); WARC records use their fetch date. A fixed "
        "bound keeps the output independent of the day the run happens.",
    )

    @model_validator(mode="after")
    def _engine_supports(self):
        if self.engine == "resiliparse" and self.output_format != "txt":
            raise ValueError("engine resiliparse writes plain text only: set output_format: txt")
        return self


class IngestWebSection(Section):
    max_page_bytes: ByteSize = Field(
        ByteSize(8 * 1024**2),
        description="Pages larger than this are rejected (`too_large`) without being read into memory.",
    )
    time_limit_seconds: float = Field(
        10.0,
        gt=0,
        description="Per-page extraction time limit; a page over it "
        "is rejected (`timeout`). datatrove uses 1 s in a subprocess; we run in "
        "process with a timer signal, so the limit can overrun while inside lxml.",
    )
    content_types: list[str] = Field(
        ["text/html", "application/xhtml+xml"],
        description="HTTP Content-Types treated as HTML (parameters ignored); anything else is `not_html`.",
    )
    min_text_chars: int = Field(1, ge=1, description="Extracted text shorter than this is `no_text`.")
    max_replacement_ratio: float = Field(
        0.01,
        ge=0,
        le=1,
        description="Share of undecodable characters above "
        "which a page is `bad_encoding` instead of kept with replacements.",
    )
    split_bytes: ByteSize | None = Field(
        None,
        description="Input bytes per task (`.warc.gz` files are split at "
        "record boundaries; smaller files are grouped). Default: about 16 tasks "
        "per core, between 256 KiB and 64 MiB: pages differ a hundredfold in "
        "extraction cost, and small tasks keep every core busy to the end.",
    )
    warc_reader: Literal["fastwarc", "warcio"] = Field(
        "fastwarc",
        description="How `.warc.gz` records are read. `fastwarc`: FastWARC reads clean records (several times "
        "faster) and hands any record it cannot vouch for to warcio, so pages and rejects are the same. "
        "`warcio`: warcio reads everything.",
    )
    extract: HtmlExtractSection = Field(
        default_factory=HtmlExtractSection, description="Main-text extraction: the engine and its settings."
    )
