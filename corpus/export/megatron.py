"""Megatron's indexed dataset (``MMIDIDX``): a ``.bin`` of token ids and a ``.idx`` that says where each
sequence starts, written and read without megatron-core (it needs torch; a test reads our files with it).

The layout, as megatron-core's ``indexed_dataset`` reads it (all little-endian):

* ``.idx``: the header ``b"MMIDIDX\\x00\\x00"``, version ``<Q`` = 1, dtype code ``<B`` (1 uint8, 2 int8, 3 int16,
  4 int32, 5 int64, 6 float64, 7 float32, 8 uint16), sequence count ``<Q``, document-index count ``<Q``, then
  int32 sequence lengths, int64 byte offsets of the sequences in ``.bin``, and int64 document indices (the
  sequence index where each document starts, plus one past the end).
* ``.bin``: the sequences' values, back to back.

As Megatron's own preprocessing does, each document is one sequence with its end-of-document token appended,
so the document indices are ``0, 1, ..., n``. A loss mask is the same structure in uint8 (``<prefix>_mask``):
same lengths, one byte per token, so ``IndexedDataset(prefix + "_mask")[i]`` lines up with
``IndexedDataset(prefix)[i]``.
"""

from __future__ import annotations

import struct

import numpy as np

from corpus.io.files import filesystem
from corpus.io.hashing import HashingSink

HEADER = b"MMIDIDX\x00\x00"
VERSION = 1
CODES = {
    np.dtype(np.uint8): 1,
    np.dtype(np.int8): 2,
    np.dtype(np.int16): 3,
    np.dtype(np.int32): 4,
    np.dtype(np.int64): 5,
    np.dtype(np.float64): 6,
    np.dtype(np.float32): 7,
    np.dtype(np.uint16): 8,
}
DTYPES = {code: dtype for dtype, code in CODES.items()}
MASK_SUFFIX = "_mask"


def index_bytes(lengths: np.ndarray, dtype) -> bytes:
    """The ``.idx`` of sequences of ``lengths`` (one document each) over values of ``dtype``."""
    dtype = np.dtype(dtype)
    lengths = np.asarray(lengths, np.int64)
    pointers = (
        np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64) * dtype.itemsize
        if len(lengths)
        else np.zeros(0, np.int64)
    )
    documents = np.arange(len(lengths) + 1, dtype=np.int64)
    return b"".join(
        [
            HEADER,
            struct.pack("<Q", VERSION),
            struct.pack("<B", CODES[dtype]),
            struct.pack("<Q", len(lengths)),
            struct.pack("<Q", len(documents)),
            lengths.astype("<i4").tobytes(),
            pointers.astype("<i8").tobytes(),
            documents.astype("<i8").tobytes(),
        ]
    )


class IndexedWriter:
    """Streams sequences into ``<prefix>.bin`` (hashing it on the way) and writes ``<prefix>.idx`` on close."""

    def __init__(self, prefix: str, dtype) -> None:
        self.prefix = prefix
        self.dtype = np.dtype(dtype)
        fs, inner = filesystem(prefix + ".bin")
        self._fs = fs
        self._bin = HashingSink(fs.open_output_stream(inner))
        self._lengths: list[np.ndarray] = []

    def add(self, values: np.ndarray, lengths: np.ndarray) -> None:
        """Append sequences: ``values`` back to back, ``lengths`` each one's length."""
        self._bin.write(np.ascontiguousarray(values, self.dtype).view(np.uint8))
        self._lengths.append(np.asarray(lengths, np.int64))

    def close(self) -> dict:
        """Finish both files: {sequences, bin: {bytes, sha256}, idx: {bytes, sha256}}."""
        import hashlib

        self._bin.close()
        lengths = np.concatenate(self._lengths) if self._lengths else np.zeros(0, np.int64)
        idx = index_bytes(lengths, self.dtype)
        _, inner = filesystem(self.prefix + ".idx")
        with self._fs.open_output_stream(inner) as out:
            out.write(idx)
        return {
            "sequences": int(len(lengths)),
            "bin": {"bytes": self._bin.size, "sha256": self._bin.digest.hexdigest()},
            "idx": {"bytes": len(idx), "sha256": hashlib.sha256(idx).hexdigest()},
        }


class IndexedReader:
    """Reads a ``.bin``/``.idx`` pair (local files, memory-mapped): ``len(r)``, ``r[i]`` (a numpy view)."""

    def __init__(self, prefix: str) -> None:
        with open(prefix + ".idx", "rb") as f:
            head = f.read(len(HEADER) + 8 + 1 + 8 + 8)
        if head[: len(HEADER)] != HEADER:
            raise ValueError(f"{prefix}.idx: not a Megatron indexed dataset (bad header)")
        offset = len(HEADER)
        (version,) = struct.unpack_from("<Q", head, offset)
        if version != VERSION:
            raise ValueError(f"{prefix}.idx: version {version}, expected {VERSION}")
        (code,) = struct.unpack_from("<B", head, offset + 8)
        count, doc_count = struct.unpack_from("<QQ", head, offset + 9)
        self.dtype = DTYPES[code]
        index = np.memmap(prefix + ".idx", np.uint8, mode="r")
        at = len(head)
        self.lengths = index[at : at + 4 * count].view("<i4")
        at += 4 * count
        self.pointers = index[at : at + 8 * count].view("<i8")
        at += 8 * count
        self.document_indices = index[at : at + 8 * doc_count].view("<i8")
        self._bin = np.memmap(prefix + ".bin", np.uint8, mode="r") if count else np.zeros(0, np.uint8)

    def __len__(self) -> int:
        return len(self.lengths)

    def __getitem__(self, i: int) -> np.ndarray:
        start = int(self.pointers[i])
        return self._bin[start : start + int(self.lengths[i]) * self.dtype.itemsize].view(self.dtype)

    def tokens(self) -> int:
        return int(self.lengths.sum())
