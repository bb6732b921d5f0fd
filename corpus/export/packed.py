"""Packed sequences: a shard's token stream (documents in the shard's order, each ending in the end-of-document
token) cut into rows of ``sequence_length + 1`` tokens, for trainers that want fixed shapes.

The rows are an Arrow IPC stream (``<name>.packed.arrow``), the format Hugging Face ``datasets`` keeps its own
data in, not Parquet: uncompressed (``export.packed_compression: none``) a trainer memory-maps it and reads rows
without decoding (``datasets.Dataset.from_file`` opens it in place), and writing it is a copy, where Parquet's
list encoding cost a tenth of the stage's time. ``zstd`` shrinks int32 ids about 5× (to Parquet's size) for
storage or transfer, at the cost of decoding record batches.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from corpus.io.files import filesystem
from corpus.io.hashing import HashingSink

SUFFIX = ".packed.arrow"
ROWS_PER_BATCH = 256  # rows per record batch: the unit a reader of a compressed file decodes


def arrow_schema(dtype, length: int) -> pa.Schema:
    ids = pa.uint16() if np.dtype(dtype) == np.uint16 else pa.int32()
    return pa.schema(
        [
            pa.field("input_ids", pa.list_(ids, length + 1)),
            pa.field("loss_mask", pa.list_(pa.uint8(), length + 1)),
            pa.field("doc_starts", pa.list_(pa.int32())),
        ]
    )


class Packer:
    """Cuts a stream of documents into packed rows and writes them to one Arrow IPC stream file."""

    def __init__(self, path: str, length: int, dtype, pad: int, compression: str | None = None) -> None:
        self.path = path
        self.length = length
        self.dtype = np.dtype(dtype)
        self.pad = pad
        self.schema = arrow_schema(dtype, length)
        fs, inner = filesystem(path)
        self._sink = HashingSink(fs.open_output_stream(inner))
        self._writer = pa.ipc.new_stream(
            self._sink,
            self.schema,
            options=pa.ipc.IpcWriteOptions(compression=None if compression in (None, "none") else compression),
        )
        self._ids = np.zeros(0, self.dtype)
        self._mask = np.zeros(0, np.uint8)
        self._starts = np.zeros(0, np.int64)  # document starts, relative to the buffer
        self._rows: list[tuple[np.ndarray, np.ndarray, list[np.ndarray]]] = []
        self.sequences = 0
        self.padding = 0

    def add(self, ids: np.ndarray, mask: np.ndarray, starts: np.ndarray) -> None:
        """Append documents: their ids and mask back to back, ``starts`` where each begins (relative to ``ids``)."""
        base = len(self._ids)
        self._ids = np.concatenate([self._ids, ids.astype(self.dtype, copy=False)])
        self._mask = np.concatenate([self._mask, mask])
        self._starts = np.concatenate([self._starts, starts + base])
        full = (len(self._ids) - 1) // self.length
        if full > 0:
            self._emit(full)

    def _emit(self, n: int) -> None:
        L = self.length
        windows = np.lib.stride_tricks.sliding_window_view  # rows overlap by one token: strided views, one copy
        bounds = np.searchsorted(self._starts // L, np.arange(n + 1), "left")  # starts of row k: bounds[k:k+2]
        starts = [self._starts[bounds[k] : bounds[k + 1]] - k * L for k in range(n)]
        cut = bounds[-1]
        self._rows.append(
            (
                np.ascontiguousarray(windows(self._ids[: n * L + 1], L + 1)[::L]),
                np.ascontiguousarray(windows(self._mask[: n * L + 1], L + 1)[::L]),
                starts,
            )
        )
        self._ids, self._mask = self._ids[n * L :], self._mask[n * L :]
        self._starts = self._starts[cut:] - n * L
        self.sequences += n
        if sum(len(r[0]) for r in self._rows) >= ROWS_PER_BATCH:
            self._flush()

    def _flush(self) -> None:
        if not self._rows:
            return
        ids = np.concatenate([r[0] for r in self._rows])
        mask = np.concatenate([r[1] for r in self._rows])
        starts = [s for r in self._rows for s in r[2]]
        width = self.length + 1
        offsets = np.concatenate([[0], np.cumsum([len(s) for s in starts])]).astype(np.int32)
        flat = np.concatenate(starts).astype(np.int32) if starts else np.zeros(0, np.int32)
        table = pa.table(
            [
                pa.FixedSizeListArray.from_arrays(
                    pa.array(ids.reshape(-1), self.schema.field(0).type.value_type), width
                ),
                pa.FixedSizeListArray.from_arrays(pa.array(mask.reshape(-1), pa.uint8()), width),
                pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat, pa.int32())),
            ],
            schema=self.schema,
        )
        self._writer.write_table(table, max_chunksize=ROWS_PER_BATCH)
        self._rows = []

    def close(self) -> dict:
        """Pad and write the last row; finish the file: {path, sequences, padding, bytes, sha256}."""
        if len(self._ids) > 1 or (len(self._ids) == 1 and self.sequences == 0):
            missing = self.length + 1 - len(self._ids)
            self.padding += missing
            self._ids = np.concatenate([self._ids, np.full(missing, self.pad, self.dtype)])
            self._mask = np.concatenate([self._mask, np.zeros(missing, np.uint8)])
            self._emit(1)
        self._flush()
        self._writer.close()
        self._sink.close()
        return {
            "sequences": self.sequences,
            "padding": self.padding,
            "bytes": self._sink.size,
            "sha256": self._sink.digest.hexdigest(),
        }
