"""Config sections of the `text` package's stage, beside its code; :mod:`corpus.config` assembles them into
the run config (and re-exports them, so ``from corpus.config import ...`` keeps working)."""

from __future__ import annotations


from pydantic import (
    ByteSize,
    Field,
)

from corpus.sections import Section


class IngestTextSection(Section):
    text_field: str = Field("text", description="Column / JSON key holding the text.")
    id_field: str = Field("id", description="Column / key kept as `source_id` when present.")
    url_field: str = Field("url", description="Column / key kept as `url` when present.")
    source_field: str | None = Field(
        None,
        description="Column / key whose value (a non-empty string) names the "
        "record's `source` instead of the input's: one file holding several sources "
        "(the classifier balances and holds out by source).",
    )
    label_field: str | None = Field(
        None,
        description="Column / key holding an evaluation label, `agent` or "
        "`general` (other values are ignored): kept in the document's metadata as "
        "`eval_label`, never trained on; `classify` reports its precision and recall "
        "on the labelled documents it scores.",
    )
    max_text_bytes: ByteSize = Field(ByteSize(8 * 1024**2), description="Longer texts are rejected (`too_large`).")
    normalise_spaces: bool = Field(
        True,
        description="No-break spaces (U+00A0, U+202F) become spaces: typography "
        "and layout, not content, and tokenizers split them apart from words.",
    )
    split_bytes: ByteSize = Field(
        ByteSize(64 * 1024**2),
        description="Uncompressed JSONL files are read in "
        "splits of this size, so one large file is read by many tasks.",
    )
