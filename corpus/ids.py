"""Content-hash ids and text normalisation shared by every stage.

Ids are content hashes so that the same input gives the same ids on any machine, in any partitioning, in any
run: no counters, no ``monotonically_increasing_id`` (whose values depend on partitioning, which is how
text-dedup's Spark port kept a random document per cluster, text-dedup #28).
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np


def content_id(text: str, url: str | None = None) -> str:
    """The document id: first 128 bits of SHA-256 over ``url`` and ``text``, as 32 hex digits.

    The url is part of the id so that one text served at two addresses gives two records (exact dedup then
    keeps one, and says which); the part is not, so a later stage can move a document between parts without
    changing its id.
    """
    h = hashlib.sha256()
    h.update((url or "").encode("utf-8", "surrogatepass"))
    h.update(b"\x00")
    h.update(text.encode("utf-8", "surrogatepass"))
    return h.hexdigest()[:32]


@lru_cache(maxsize=1)
def _collapse_kernel():
    """Compiled on first use (numba is imported only by the stages that normalise texts)."""
    from numba import njit

    @njit(cache=True)
    def collapse(data, offsets, out, out_offsets):
        """Copy each text with runs of ASCII whitespace (incl. \\v) collapsed to one space, trimmed."""
        k = 0
        for d in range(offsets.shape[0] - 1):
            out_offsets[d] = k
            pending = False
            started = False
            for i in range(offsets[d], offsets[d + 1]):
                c = data[i]
                if c == 32 or (9 <= c <= 13):
                    pending = started
                else:
                    if pending:
                        out[k] = 32
                        k += 1
                        pending = False
                    out[k] = c
                    k += 1
                    started = True
        out_offsets[offsets.shape[0] - 1] = k

    return collapse


def _nfkc(texts):
    """NFKC of an Arrow string array, computed (by Arrow) only for the texts that need it: ASCII texts are
    their own NFKC, and most others already are (CPython's quick check says so in ~5 µs per document, where
    normalising costs ~30 µs: on the dedup bench 32% of documents are not ASCII and 1 in 30 of those changes)."""
    import unicodedata

    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    candidates = np.flatnonzero(~pc.string_is_ascii(texts).to_numpy(zero_copy_only=False))
    if not len(candidates):
        return texts
    change = [
        int(i)
        for i, t in zip(candidates, texts.take(pa.array(candidates)).to_pylist())
        if not unicodedata.is_normalized("NFKC", t)
    ]
    if not change:
        return texts
    if len(change) == len(texts):
        return pc.utf8_normalize(texts, "NFKC")
    # splice the normalised texts in: take from [texts, normalised] by index
    normalised = pc.utf8_normalize(texts.take(pa.array(change)), "NFKC")
    index = np.arange(len(texts))
    index[change] = len(texts) + np.arange(len(change))
    return pa.concat_arrays([texts, normalised]).take(pa.array(index))


def normalize_texts(texts):
    """The normal form exact dedup compares, for an Arrow string array: NFKC (skipped when the batch is ASCII,
    where it is the identity), lowercased (Unicode, Arrow's ``utf8_lower``), runs of whitespace collapsed to
    one space, trimmed. NFKC maps the Unicode spaces (no-break, em, ideographic, ...) to a plain space first.
    Arrow kernels plus one compiled pass: ~4 µs per 1 KB document, against ~45 µs for ``re`` + ``unicodedata``."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    texts = texts.fill_null("")
    texts = _nfkc(texts)
    low = pc.utf8_lower(texts)
    offsets = np.frombuffer(low.buffers()[1], dtype=np.int32)[low.offset : low.offset + len(low) + 1]
    data = np.frombuffer(low.buffers()[2], dtype=np.uint8) if low.buffers()[2] is not None else np.zeros(0, np.uint8)
    out = np.empty(max(int(offsets[-1]), 1), dtype=np.uint8)
    out_offsets = np.empty(len(low) + 1, dtype=np.int32)
    _collapse_kernel()(data, offsets.astype(np.int64), out, out_offsets)
    return pa.Array.from_buffers(pa.string(), len(low), [None, pa.py_buffer(out_offsets), pa.py_buffer(out)])


def text_hashes(texts):
    """Hash of each normalised text (what exact dedup groups by): XXH3-128, an Arrow binary array (16 bytes each).
    Not a cryptographic hash: two different texts could be crafted to collide (one would then be dropped as a
    duplicate of the other); by chance, a collision among 10^12 documents has odds of ~10^-15. It was BLAKE2b,
    which cost as much as the MinHash signatures of the same texts (300–600 vs ~4,600 MB/s here)."""
    import numpy as np
    import pyarrow as pa
    import xxhash

    norm = normalize_texts(texts)
    offsets = np.frombuffer(norm.buffers()[1], dtype=np.int32)
    data = memoryview(norm.buffers()[2] if norm.buffers()[2] is not None else b"")
    digest = xxhash.xxh3_128_digest
    return pa.array([digest(data[offsets[i] : offsets[i + 1]]) for i in range(len(norm))], pa.binary())


def normalize_text(text: str) -> str:
    import pyarrow as pa

    return normalize_texts(pa.array([text], pa.string()))[0].as_py()


def text_hash(text: str) -> str:
    import pyarrow as pa

    return text_hashes(pa.array([text], pa.string()))[0].as_py().hex()


def spark_xxhash64(*columns) -> "np.ndarray":
    """Spark's ``xxhash64(c1, c2, ...)`` of Arrow string columns, computed in Python (int64 per row): seed 42,
    each non-null value's UTF-8 bytes hashed by XXH64 with the previous hash as the seed, nulls skipped. Lets a
    batch function tag rows exactly as ``F.xxhash64`` does on the JVM side (tested against Spark)."""
    import numpy as np
    import xxhash

    lists = [c.to_pylist() for c in columns]
    out = np.empty(len(lists[0]) if lists else 0, dtype=np.uint64)
    digest = xxhash.xxh64_intdigest
    for i, values in enumerate(zip(*lists)):
        h = 42
        for v in values:
            if v is not None:
                h = digest(v.encode("utf-8", "surrogatepass"), seed=h)
        out[i] = h
    return out.view(np.int64)


def seeded_key(seed: int, id_: str) -> str:
    """A seeded pseudo-random sort key for an id (used for deterministic shuffles)."""
    return hashlib.sha256(f"{seed}:{id_}".encode()).hexdigest()


def dumps(obj) -> str:
    """Canonical JSON (sorted keys, no spaces): the same object always serialises to the same bytes."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
