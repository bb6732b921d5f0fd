"""Config sections of the `write` package's stage, beside its code; :mod:`corpus.config` assembles them into
the run config (and re-exports them, so ``from corpus.config import ...`` keeps working)."""

from __future__ import annotations

from typing import Literal

from pydantic import (
    ByteSize,
    Field,
)

from corpus.sections import Section


class WriteSection(Section):
    target_shard_tokens: int = Field(
        64_000_000,
        ge=1,
        description="Target tokens per shard (`token_count`; a "
        "document without one counts its UTF-8 bytes / 4). 64M tokens is about 256 MB "
        "of English text; zstd files come out ~3-4× smaller. Tokens, not bytes, because "
        "mix already knows them: no pass over the text is needed to plan the shards.",
    )
    row_group_bytes: ByteSize = Field(
        ByteSize(16 * 1024**2),
        description="Target uncompressed text bytes per "
        "row group: small enough for streaming readers to hold one in memory.",
    )
    compression: Literal["zstd", "snappy", "gzip", "none"] = Field("zstd", description="Parquet compression.")
    scratch_compression: Literal["none", "lz4", "zstd"] = Field(
        "none",
        description="Compression of the "
        "shuffle's scratch Arrow files (written and read "
        "once, then deleted). On a local disk none is "
        "fastest; on an object store lz4 (2.7× smaller "
        "on the default run's documents) or zstd (4.1×) "
        "cut the extra upload and download of the text.",
    )
    compression_level: int | None = Field(3, description="zstd level (1-22).")
    min_shards: int = Field(
        8,
        ge=1,
        description="Least shards per output (fewer only when it has fewer rows): "
        "a data loader gives each worker whole files, so an output smaller than "
        "`target_shard_tokens` in one file would keep all but one worker idle.",
    )
