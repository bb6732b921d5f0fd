"""One shard's Parquet file: rows written in order, row groups cut by text bytes, the file hashed as it is written.

Used by the ``write`` stage's gather tasks (:mod:`corpus.write.shuffle`); kept apart from the stage's planning
(:mod:`corpus.write.stage`) so the shuffle and the stage both depend on it and not on each other.
"""

from __future__ import annotations

from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq

from corpus import schema
from corpus.config import WriteSection
from corpus.io.files import filesystem
from corpus.io.hashing import HashingSink


def shard_name(name: str, output: str, index: int) -> str:
    return f"{name}-{output}-{index:05d}.parquet"


class ShardWriter:
    """Writes the rows of one shard, in order, cutting row groups by text bytes."""

    def __init__(self, path: str, cfg: WriteSection) -> None:
        self.path = path
        self.cfg = cfg
        self.arrow = schema.document().arrow
        fs, inner = filesystem(path)
        self._sink = HashingSink(fs.open_output_stream(inner))
        compression = None if cfg.compression == "none" else cfg.compression
        level = cfg.compression_level if cfg.compression == "zstd" else None
        self._writer = pq.ParquetWriter(self._sink, self.arrow, compression=compression, compression_level=level)
        self._buffer: list[pa.Table] = []
        self._buffered_bytes = 0
        self.rows = 0
        self.parts: Counter[str] = Counter()
        self.tokens: Counter[str] = Counter()

    def add(self, table: pa.Table) -> None:
        """Append rows."""
        self._place(table.num_rows, self._text_ends(pa.compute.binary_length(table.column("text"))), table.slice)
        self._count(table)

    def add_ordered(self, table: pa.Table, order: pa.Array) -> None:
        """``add(table.take(order))`` (``order`` may repeat rows: a document's copies) without a copy of the whole
        table: each row group's rows are taken on their own, so the take is the only copy of the text."""
        lengths = pa.compute.binary_length(table.column("text")).take(order)
        self._place(len(order), self._text_ends(lengths), lambda start, n: table.take(order.slice(start, n)))
        self._count(table.select(["part", "token_count"]).take(order))

    @staticmethod
    def _text_ends(lengths):
        import numpy as np

        return np.cumsum(lengths.to_numpy(zero_copy_only=False)) if len(lengths) else np.zeros(0)

    def _place(self, n: int, cum, piece) -> None:
        """Buffer rows 0..n (``piece(start, count)`` gives them as a table; ``cum``: their cumulative text
        bytes) and flush row groups at the deterministic cut points: the row at which the buffered text reaches
        ``row_group_bytes``, found with a binary search rather than a loop over rows. The cuts depend only on
        the rows, never on how they arrive."""
        import numpy as np

        limit = int(self.cfg.row_group_bytes)
        start, consumed = 0, 0  # rows already placed; text bytes of those rows
        while start < n:
            need = limit - self._buffered_bytes  # bytes still to buffer before a cut
            cut = int(np.searchsorted(cum, consumed + need, side="left"))  # first row reaching the limit
            if cut >= n:
                self._buffer.append(piece(start, n - start))
                self._buffered_bytes += int(cum[-1]) - consumed
                break
            self._buffer.append(piece(start, cut + 1 - start))
            self._flush()
            consumed = int(cum[cut])
            start = cut + 1
        self.rows += n

    def _count(self, table: pa.Table) -> None:
        sums = table.group_by("part").aggregate([("token_count", "sum"), ("part", "count")])
        for part, tokens, count in zip(
            *(sums.column(c).to_pylist() for c in ("part", "token_count_sum", "part_count"))
        ):
            self.parts[part] += count
            self.tokens[part] += tokens or 0

    def _flush(self) -> None:
        if self._buffer:
            group = pa.concat_tables(self._buffer)
            if group.column("text").num_chunks > 1:  # a row group is written from one chunk per column
                group = group.combine_chunks()
            if group.num_rows:
                self._writer.write_table(group, row_group_size=group.num_rows)
        self._buffer, self._buffered_bytes = [], 0

    def close(self) -> tuple[int, str]:
        """Finish the file; return (bytes, sha256)."""
        self._flush()
        self._writer.close()
        self._sink.close()
        return self._sink.size, self._sink.digest.hexdigest()
