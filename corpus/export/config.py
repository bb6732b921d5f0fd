"""Config sections of the `export` package's stage, beside its code; :mod:`corpus.config` assembles them into
the run config (and re-exports them, so ``from corpus.config import ...`` keeps working)."""

from __future__ import annotations

from typing import Literal

from pydantic import (
    Field,
)

from corpus.sections import Part, Section


class ExportSection(Section):
    """The `export` stage: the shards as token ids for trainers that read pre-tokenized data (Megatron's
    indexed datasets, packed sequences), with loss masks for agent data."""

    enabled: bool = Field(False, description="Run the stage in `forge run`.")
    outputs: list[str] = Field([], description="Outputs exported (`write`'s output names); empty: all.")
    formats: list[Literal["megatron", "packed"]] = Field(
        ["megatron"],
        description="`megatron`: a `.bin`/`.idx` "
        "pair per shard, one sequence per document ending in "
        "the end-of-document token (plus a `_mask` pair when "
        "`mask_parts` is set); `packed`: an Arrow IPC file per "
        "shard of fixed-length rows (`sequence_length` + 1 "
        "tokens) with loss masks and document starts.",
    )
    mask_parts: list[Part] = Field(
        ["trajectory", "instruction"],
        description="Parts whose loss mask covers only "
        "the bodies of `trained_blocks`; every token of the other parts is trained. "
        "Empty: no mask files.",
    )
    trained_blocks: list[Literal["Tools", "System", "User", "Assistant", "Tool result", "Instruction", "Response"]] = (
        Field(
            ["Assistant", "Response"],
            description="Blocks of a "
            "trajectory or instruction pair whose body is trained: by "
            "default the assistant's words and tool calls and a pair's "
            "response; not tool schemas, system prompts, user turns or "
            "tool results.",
        )
    )
    sequence_length: int = Field(
        4096, ge=8, description="`packed`: input tokens per row (each row stores one more, the last target)."
    )
    packed_compression: Literal["none", "zstd", "lz4"] = Field(
        "none",
        description="`packed`: compression of the "
        "Arrow file's buffers. `none`: a trainer "
        "memory-maps it and reads rows in place; `zstd`: "
        "~5× smaller with int32 ids, decoded per batch of "
        "256 rows.",
    )
    eod_token: str | None = Field(
        None,
        description="Token appended to every document; default: the tokenizer's "
        "`<|endoftext|>` (a tokenizer.json: the first of `<|endoftext|>`, "
        "`<|end_of_text|>`, `</s>`, `<eos>`, `<|eot_id|>` it has). The tokenizer is "
        "`redact.tokenizer`, the one the manifest's token counts use.",
    )
