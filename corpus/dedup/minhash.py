"""MinHash signatures, LSH band keys and the candidate check, as batch functions over Arrow arrays.

What a signature is, exactly (so that anyone can reproduce it, e.g. with datasketch):

1. **Text → bytes.** Lowercased with Arrow's ``utf8_lower`` (when ``lowercase`` is on), encoded as UTF-8.
2. **Tokens.** ``words``: maximal runs of ASCII letters, digits and ``_`` and of non-ASCII bytes (so any
   non-ASCII letter is part of a word, and ASCII punctuation separates words); ``whitespace``: maximal runs of
   non-whitespace bytes, as ``bytes.split()``.
3. **Shingles.** Every run of ``ngram`` consecutive tokens, joined by one space; a document with fewer tokens
   has one shingle of all its tokens; a document with none has no shingles (and no signature: it never joins
   LSH, exact dedup handles empty texts).
4. **Shingle hash** (:func:`shingle_hash`): xxh32 (seed 0) of each token, and xxh32 of those 32-bit values
   (little-endian, in order). Hashing each token once and then the short list of token hashes is what lets
   the kernel stream a document without copying shingle bytes.
5. **Signature**: datasketch's default ``affine32`` scheme: ``h' = fmix32(h)``, then for each permutation k,
   ``(a_k · h' + b_k) mod 2^32``, minimum over the shingles. ``a`` and ``b`` are taken from
   ``datasketch.MinHash(num_perm, seed).permutations``, so ``datasketch.MinHash(num_perm, seed,
   hashfunc=shingle_hash)`` updated with :func:`shingles` gives the same ``hashvalues`` (tested).

The compiled kernel (numba) does steps 2–5 in one pass over each document's bytes with O(num_perm) state:
memory per document does not grow with its length (no shingle set is ever built, unlike the implementations
that run out of memory on very long documents, text-dedup #20), and a 100 MB document costs only time. xxh32
and fmix32 are written out here because numba-compiled code cannot call the ``xxhash`` C library; the tests
hold them equal to ``xxhash.xxh32_intdigest`` and datasketch's ``_fmix``.

LSH: the signature is cut into ``bands`` bands of ``rows`` values; a band's key is a 64-bit hash of its values
(FNV-1a over the 32-bit words, then the MurmurHash3 64-bit finaliser), salted by the band index.
"""

from __future__ import annotations

import re
from functools import lru_cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

try:  # numba is a dependency; the fallback keeps the module importable (and slow) where it cannot load
    from numba import njit
except ImportError:  # pragma: no cover

    def njit(*args, **kwargs):
        return (lambda f: f) if not args or not callable(args[0]) else args[0]


MODES = {"words": 0, "whitespace": 1}
_WORD_RE = re.compile(rb"[0-9A-Za-z_\x80-\xff]+")
_MASK32 = np.uint64(0xFFFFFFFF)


# ----------------------------------------------------------------------------------------------------------
# The reference definitions, in plain Python (what users reproduce; what the kernel is tested against)


def tokens(text: str, mode: str = "words", lowercase: bool = True) -> list[bytes]:
    data = pc.utf8_lower(pa.array([text])) if lowercase else pa.array([text])
    raw = data[0].as_py().encode("utf-8", "surrogatepass")
    return _WORD_RE.findall(raw) if mode == "words" else raw.split()


def shingles(text: str, ngram: int = 5, mode: str = "words", lowercase: bool = True) -> list[bytes]:
    toks = tokens(text, mode, lowercase)
    if 0 < len(toks) < ngram:
        return [b" ".join(toks)]
    return [b" ".join(toks[i : i + ngram]) for i in range(len(toks) - ngram + 1)]


def shingle_hash(shingle: bytes) -> int:
    """The 32-bit hash of one shingle (pass as ``hashfunc`` to ``datasketch.MinHash``)."""
    return xxhash.xxh32_intdigest(
        b"".join(xxhash.xxh32_intdigest(t).to_bytes(4, "little") for t in shingle.split(b" "))
    )


@lru_cache(maxsize=8)
def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(a, b) of the affine32 permutations, exactly datasketch's for (num_perm, seed)."""
    from datasketch import MinHash

    perms = MinHash(num_perm=num_perm, seed=seed, scheme="affine32").permutations
    return np.ascontiguousarray(perms[0], dtype=np.uint32), np.ascontiguousarray(perms[1], dtype=np.uint32)


@lru_cache(maxsize=32)
def lsh_params(threshold: float, num_perm: int, weights: tuple[float, float]) -> tuple[int, int]:
    """(bands, rows): datasketch's optimal-parameter search (minimising the weighted false positive and false
    negative probability mass around ``threshold``), through its public ``MinHashLSH`` constructor."""
    from datasketch import MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm, weights=tuple(weights))
    return int(lsh.b), int(lsh.r)


# ----------------------------------------------------------------------------------------------------------
# The compiled kernel


@njit(cache=True, inline="always")
def _rotl32(x, r):
    return ((x << np.uint64(r)) | (x >> np.uint64(32 - r))) & np.uint64(0xFFFFFFFF)


@njit(cache=True, inline="always")
def _lane(buf, i):
    """The little-endian 32-bit word at buf[i:i+4]."""
    return (
        np.uint64(buf[i])
        | (np.uint64(buf[i + 1]) << np.uint64(8))
        | (np.uint64(buf[i + 2]) << np.uint64(16))
        | (np.uint64(buf[i + 3]) << np.uint64(24))
    )


@njit(cache=True)
def _xxh32(buf, start, end):
    """xxh32 with seed 0 of buf[start:end] (uint8 array): the published XXH32 algorithm."""
    m = np.uint64(0xFFFFFFFF)
    p1, p2, p3 = np.uint64(2654435761), np.uint64(2246822519), np.uint64(3266489917)
    p4, p5 = np.uint64(668265263), np.uint64(374761393)
    n = end - start
    i = start
    if n >= 16:
        v1 = (p1 + p2) & m
        v2 = p2
        v3 = np.uint64(0)
        v4 = (np.uint64(1 << 32) - p1) & m
        limit = end - 16
        while i <= limit:
            lane = _lane(buf, i)
            v1 = (_rotl32((v1 + lane * p2) & m, 13) * p1) & m
            lane = _lane(buf, i + 4)
            v2 = (_rotl32((v2 + lane * p2) & m, 13) * p1) & m
            lane = _lane(buf, i + 8)
            v3 = (_rotl32((v3 + lane * p2) & m, 13) * p1) & m
            lane = _lane(buf, i + 12)
            v4 = (_rotl32((v4 + lane * p2) & m, 13) * p1) & m
            i += 16
        h = (_rotl32(v1, 1) + _rotl32(v2, 7) + _rotl32(v3, 12) + _rotl32(v4, 18)) & m
    else:
        h = p5
    h = (h + np.uint64(n)) & m
    while i + 4 <= end:
        lane = _lane(buf, i)
        h = (_rotl32((h + lane * p3) & m, 17) * p4) & m
        i += 4
    while i < end:
        h = (_rotl32((h + np.uint64(buf[i]) * p5) & m, 11) * p1) & m
        i += 1
    h ^= h >> np.uint64(15)
    h = (h * p2) & m
    h ^= h >> np.uint64(13)
    h = (h * p3) & m
    h ^= h >> np.uint64(16)
    return h


@njit(cache=True)
def _fmix32(h):
    m = np.uint64(0xFFFFFFFF)
    h ^= h >> np.uint64(16)
    h = (h * np.uint64(0x85EBCA6B)) & m
    h ^= h >> np.uint64(13)
    h = (h * np.uint64(0xC2B2AE35)) & m
    return h ^ (h >> np.uint64(16))


@njit(cache=True, inline="always")
def _is_token_byte(c, mode):
    if mode == 1:  # whitespace: split on ASCII whitespace, as bytes.split()
        return not (c == 32 or (9 <= c <= 13))
    return c >= 128 or (48 <= c <= 57) or (65 <= c <= 90) or (97 <= c <= 122) or c == 95


@njit(cache=True)
def _shingle_hash(toks, filled):
    """xxh32 of toks[:filled] (token hashes, oldest first) as little-endian bytes. XXH32 reads its input as
    little-endian 32-bit lanes, so the token hashes are fed as lanes directly, with no byte buffer."""
    m = np.uint64(0xFFFFFFFF)
    p1, p2, p3 = np.uint64(2654435761), np.uint64(2246822519), np.uint64(3266489917)
    p4, p5 = np.uint64(668265263), np.uint64(374761393)
    j = 0
    if filled >= 4:
        v1 = (p1 + p2) & m
        v2 = p2
        v3 = np.uint64(0)
        v4 = (np.uint64(1 << 32) - p1) & m
        while j + 4 <= filled:
            v1 = (_rotl32((v1 + toks[j] * p2) & m, 13) * p1) & m
            v2 = (_rotl32((v2 + toks[j + 1] * p2) & m, 13) * p1) & m
            v3 = (_rotl32((v3 + toks[j + 2] * p2) & m, 13) * p1) & m
            v4 = (_rotl32((v4 + toks[j + 3] * p2) & m, 13) * p1) & m
            j += 4
        h = (_rotl32(v1, 1) + _rotl32(v2, 7) + _rotl32(v3, 12) + _rotl32(v4, 18)) & m
    else:
        h = p5
    h = (h + np.uint64(4 * filled)) & m
    while j < filled:
        h = (_rotl32((h + toks[j] * p3) & m, 17) * p4) & m
        j += 1
    h ^= h >> np.uint64(15)
    h = (h * p2) & m
    h ^= h >> np.uint64(13)
    h = (h * p3) & m
    h ^= h >> np.uint64(16)
    return h


@njit(cache=True, inline="always")
def _next_token(data, i, end, mode):
    """(start, stop) of the next token at or after i; (end, end) when there is none."""
    while i < end and not _is_token_byte(data[i], mode):
        i += 1
    s = i
    while i < end and _is_token_byte(data[i], mode):
        i += 1
    return s, i


@njit(cache=True, inline="always")
def _append(out, n, value):
    """out[n] = value, doubling out when full; returns out."""
    if n == out.shape[0]:
        grown = np.empty(2 * out.shape[0] + 1, dtype=np.uint32)
        grown[:n] = out
        out = grown
    out[n] = value
    return out


@njit(cache=True, inline="always")
def _push(toks, ntok, h):
    """Append a token hash to the window of the last len(toks) tokens (shifting: no modulo on the hot path)."""
    n = toks.shape[0]
    if ntok < n:
        toks[ntok] = h
    else:
        for j in range(n - 1):
            toks[j] = toks[j + 1]
        toks[n - 1] = h


CHUNK = 1024  # shingle hashes buffered per flush: fixed memory, and a loop the compiler vectorises


@njit(cache=True)
def _flush(buf, n, a, b, sig):
    """sig[k] = min(sig[k], min over buf[:n] of (a_k * h + b_k) mod 2^32): the permutation step, with the
    shingles as the inner loop so that it compiles to a vectorised min-reduction (~8x the per-shingle order)."""
    for k in range(a.shape[0]):
        ak = a[k]
        bk = b[k]
        m = sig[k]
        for s in range(n):
            m = min(m, np.uint32(ak * buf[s] + bk))
        sig[k] = m


@njit(cache=True)
def _sign(data, offsets, ngram, mode, a, b, sigs, counts):
    """Signatures of documents data[offsets[i]:offsets[i+1]] into sigs[i]; shingle counts into counts[i]."""
    toks = np.zeros(ngram, dtype=np.uint64)
    buf = np.empty(CHUNK, dtype=np.uint32)
    for d in range(offsets.shape[0] - 1):
        sig = sigs[d]
        sig[:] = np.uint32(0xFFFFFFFF)
        end = offsets[d + 1]
        i = offsets[d]
        ntok = 0
        nsh = 0
        nbuf = 0
        while True:
            s, i = _next_token(data, i, end, mode)
            if s == end:
                break
            _push(toks, ntok, _xxh32(data, s, i))
            ntok += 1
            if ntok >= ngram:
                buf[nbuf] = np.uint32(_fmix32(_shingle_hash(toks, ngram)))
                nbuf += 1
                nsh += 1
                if nbuf == CHUNK:
                    _flush(buf, nbuf, a, b, sig)
                    nbuf = 0
        if 0 < ntok < ngram:
            buf[0] = np.uint32(_fmix32(_shingle_hash(toks, ntok)))
            nbuf = 1
            nsh = 1
        _flush(buf, nbuf, a, b, sig)
        counts[d] = nsh


@njit(cache=True)
def _shingle_hashes(data, offsets, ngram, mode, out, out_offsets):
    """Every document's shingle hashes, concatenated into out (grown as needed); returns out."""
    toks = np.zeros(ngram, dtype=np.uint64)
    n = 0
    for d in range(offsets.shape[0] - 1):
        out_offsets[d] = n
        i = offsets[d]
        end = offsets[d + 1]
        ntok = 0
        while True:
            s, i = _next_token(data, i, end, mode)
            if s == end:
                break
            _push(toks, ntok, _xxh32(data, s, i))
            ntok += 1
            if ntok >= ngram:
                out = _append(out, n, np.uint32(_shingle_hash(toks, ngram)))
                n += 1
        if 0 < ntok < ngram:
            out = _append(out, n, np.uint32(_shingle_hash(toks, ntok)))
            n += 1
    out_offsets[offsets.shape[0] - 1] = n
    return out


@njit(cache=True)
def _unique_segments(values, offsets, out_offsets):
    """Sort each document's segment of ``values`` and drop repeats, compacting in place; returns the new length.
    (One compiled pass instead of a ``np.unique`` call per document.)"""
    k = 0
    for d in range(offsets.shape[0] - 1):
        out_offsets[d] = k
        start, end = offsets[d], offsets[d + 1]
        if end > start:
            seg = np.sort(values[start:end])
            values[k] = seg[0]
            k += 1
            for i in range(1, seg.shape[0]):
                if seg[i] != seg[i - 1]:
                    values[k] = seg[i]
                    k += 1
    out_offsets[offsets.shape[0] - 1] = k
    return k


@njit(cache=True)
def _pair_jaccards(va, oa, vb, ob, out):
    """Exact Jaccard of the sorted unique sets a[i] = va[oa[i]:oa[i+1]] and b[i], for every pair i (a merge)."""
    for p in range(oa.shape[0] - 1):
        i, ie, j, je = oa[p], oa[p + 1], ob[p], ob[p + 1]
        na, nb = ie - i, je - j
        if na == 0 and nb == 0:
            out[p] = 1.0
            continue
        inter = 0
        while i < ie and j < je:
            if va[i] == vb[j]:
                inter += 1
                i += 1
                j += 1
            elif va[i] < vb[j]:
                i += 1
            else:
                j += 1
        out[p] = inter / (na + nb - inter)


@njit(cache=True)
def _band_keys(sigs, bands, rows):
    out = np.empty((sigs.shape[0], bands), dtype=np.int64)
    for d in range(sigs.shape[0]):
        for j in range(bands):
            h = np.uint64(0xCBF29CE484222325) ^ np.uint64(j)
            for i in range(j * rows, (j + 1) * rows):
                h = (h ^ np.uint64(sigs[d, i])) * np.uint64(0x100000001B3)
            h ^= h >> np.uint64(33)
            h *= np.uint64(0xFF51AFD7ED558CCD)
            h ^= h >> np.uint64(33)
            h *= np.uint64(0xC4CEB9FE1A85EC53)
            h ^= h >> np.uint64(33)
            out[d, j] = np.int64(h)
    return out


# ----------------------------------------------------------------------------------------------------------
# Arrow-facing functions


def _utf8(texts: pa.Array, lowercase: bool) -> tuple[np.ndarray, np.ndarray]:
    """(bytes, offsets) of a string array, lowercased if asked: zero-copy views of the Arrow buffers."""
    arr = pc.utf8_lower(texts) if lowercase else texts
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    arr = arr.fill_null("")
    if pa.types.is_string(arr.type) or pa.types.is_binary(arr.type):
        off = np.frombuffer(arr.buffers()[1], dtype=np.int32)[arr.offset : arr.offset + len(arr) + 1]
    else:
        off = np.frombuffer(arr.buffers()[1], dtype=np.int64)[arr.offset : arr.offset + len(arr) + 1]
    data = arr.buffers()[2]
    buf = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, dtype=np.uint8)
    return buf, off.astype(np.int64)


def signatures(
    texts: pa.Array,
    num_perm: int = 128,
    seed: int = 1,
    ngram: int = 5,
    mode: str = "words",
    lowercase: bool = True,
    perms: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(signatures uint32[n, num_perm], shingle counts int64[n]) of a string array. ``perms``: the
    ``permutations(num_perm, seed)``, computed once by the caller (a batch function gets them from the driver, so
    Spark's Python workers need not import datasketch and scipy: ~0.25 s each)."""
    data, offsets = _utf8(texts, lowercase)
    a, b = perms if perms is not None else permutations(num_perm, seed)
    sigs = np.empty((len(offsets) - 1, num_perm), dtype=np.uint32)
    counts = np.zeros(len(offsets) - 1, dtype=np.int64)
    _sign(data, offsets, ngram, MODES[mode], a, b, sigs, counts)
    return sigs, counts


def _sets(texts: pa.Array, ngram: int, mode: str, lowercase: bool) -> tuple[np.ndarray, np.ndarray]:
    """(values uint32, offsets int64[n + 1]): each text's sorted unique shingle hashes, concatenated."""
    data, offsets = _utf8(texts, lowercase)
    raw_offsets = np.empty(len(offsets), dtype=np.int64)
    values = _shingle_hashes(
        data, offsets, ngram, MODES[mode], np.empty(max(len(data) // 4, 16), dtype=np.uint32), raw_offsets
    )
    set_offsets = np.empty(len(offsets), dtype=np.int64)
    n = _unique_segments(values, raw_offsets, set_offsets)
    return values[:n], set_offsets


def shingle_sets(texts: pa.Array, ngram: int = 5, mode: str = "words", lowercase: bool = True) -> list[np.ndarray]:
    """Sorted unique shingle hashes of each text (for the exact Jaccard check), one compiled pass per batch."""
    values, offsets = _sets(texts, ngram, mode, lowercase)
    return [values[offsets[i] : offsets[i + 1]] for i in range(len(offsets) - 1)]


def shingle_set_array(
    texts: pa.Array, ngram: int = 5, mode: str = "words", lowercase: bool = True, max_shingles: int | None = None
) -> pa.Array:
    """The shingle sets as an Arrow binary array (each value the set's uint32 hashes), built from the buffers
    without a Python object per text; null where a set has more than ``max_shingles`` hashes."""
    values, offsets = _sets(texts, ngram, mode, lowercase)
    sizes = np.diff(offsets)
    mask = sizes > max_shingles if max_shingles is not None else np.zeros(len(sizes), dtype=bool)
    if mask.any():  # drop the oversized sets' bytes
        keep = np.repeat(~mask, sizes)
        values = values[keep]
        sizes = np.where(mask, 0, sizes)
    byte_offsets = np.zeros(len(sizes) + 1, dtype=np.int64)
    np.cumsum(sizes * 4, out=byte_offsets[1:])
    typ = pa.binary() if byte_offsets[-1] < 2**31 else pa.large_binary()
    off = byte_offsets.astype(np.int32) if typ == pa.binary() else byte_offsets
    validity = pa.array(~mask).buffers()[1] if mask.any() else None
    return pa.Array.from_buffers(
        typ, len(sizes), [validity, pa.py_buffer(off.tobytes()), pa.py_buffer(np.ascontiguousarray(values).tobytes())]
    )


def pair_jaccards(a: pa.Array, b: pa.Array) -> np.ndarray:
    """Exact Jaccard of two aligned binary arrays of shingle sets (as ``shingle_set_array`` makes; no nulls)."""
    va, oa = _binary_values(a)
    vb, ob = _binary_values(b)
    out = np.empty(len(a), dtype=np.float64)
    _pair_jaccards(va, oa, vb, ob, out)
    return out


def _binary_values(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(uint32 values, element offsets int64) of a binary array of uint32 sets, without copying the values."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    kind = np.int64 if pa.types.is_large_binary(arr.type) else np.int32
    off = np.frombuffer(arr.buffers()[1], dtype=kind)[arr.offset : arr.offset + len(arr) + 1].astype(np.int64)
    data = arr.buffers()[2]
    raw = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, np.uint8)
    base = off[0] if len(off) else 0
    values = raw[base : off[-1]].view(np.uint32) if len(off) else np.zeros(0, np.uint32)
    return values, (off - base) // 4


def shingle_set(text: str, ngram: int = 5, mode: str = "words", lowercase: bool = True) -> np.ndarray:
    return shingle_sets(pa.array([text], pa.string()), ngram, mode, lowercase)[0]


def band_keys(sigs: np.ndarray, bands: int, rows: int) -> np.ndarray:
    return _band_keys(sigs, bands, rows)


def fixed_rows(arr: pa.Array, width: int, dtype=np.uint32) -> np.ndarray:
    """A binary array of equal-length values (signatures) as a 2-D numpy array, without a copy per value."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    kind = np.int64 if pa.types.is_large_binary(arr.type) else np.int32
    off = np.frombuffer(arr.buffers()[1], dtype=kind)[arr.offset : arr.offset + len(arr) + 1]
    item = np.dtype(dtype).itemsize
    if len(arr) and (np.diff(off) != width * item).any():
        raise ValueError(f"signatures of unequal length (expected {width} values each)")
    raw = np.frombuffer(arr.buffers()[2], dtype=np.uint8)[off[0] : off[-1]] if len(arr) else np.zeros(0, np.uint8)
    return raw.view(dtype).reshape(len(arr), width)


def estimated_jaccard(sa: np.ndarray, sb: np.ndarray) -> np.ndarray:
    """Share of equal signature values, row by row."""
    return (sa == sb).mean(axis=1)


def exact_jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Jaccard of two sorted unique hash arrays."""
    if not len(a) and not len(b):
        return 1.0
    inter = np.intersect1d(a, b, assume_unique=True).shape[0]
    return inter / (len(a) + len(b) - inter)
