"""Word n-gram hashes for decontamination, as one compiled pass over each batch's UTF-8 bytes.

What an n-gram hash is, exactly (the benchmark side and the corpus side use this same function):

1. **Tokens**: maximal runs of ASCII letters, digits and ``_`` and of non-ASCII bytes — the MinHash ``words``
   tokeniser of :mod:`corpus.dedup.minhash`, so punctuation and whitespace differences never hide a match.
   ASCII letters are lowercased; other bytes are compared as they are (so offsets stay offsets into the
   original text, which span removal needs).
2. **Token hash**: xxh32 of the lowercased token, widened to 64 bits by the SplitMix64 finaliser.
3. **n-gram hash**: the polynomial ``sum(t_i · B^(k-1-i)) mod 2^64`` over the k token hashes, xor k, through the
   SplitMix64 finaliser again. Prefix sums make every k-gram of a document O(1) to compute, for every length the
   benchmarks need. 64 bits because a corpus has billions of n-grams: 32-bit hashes would collide by chance.

An n-gram made only of numbers is skipped on both sides: runs of integers (``36, 37, 38, ...``) are everywhere in
code and tables, and matched a BFCL question listing two data sets against ``heapq`` and ``doctest`` in the
benchmark (bench/RESULTS.md). A benchmark item with at least ``n`` tokens contributes all its n-grams; a shorter
one (but at least
``min_item_tokens``) contributes one hash of all its tokens, which the corpus side then looks for among its
k-grams of that length (GPT-3's rule for short test items, Brown et al. 2020, appendix C).

Optional prefilter: a Bloom filter of the benchmark hashes (bits ``m``, 7 probes) lets the corpus side emit only
candidate n-grams instead of every n-gram of every document; the Spark join on the full 64-bit hash stays the
judge, so the filter's false positives cost rows, never a wrong removal.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from corpus.dedup.minhash import _next_token, _xxh32, njit

BASE = np.uint64(0x9E3779B97F4A7C15)  # odd multiplier of the polynomial hash
PROBES = 7


@njit(cache=True, inline="always")
def _mix64(z):
    """SplitMix64's finaliser: a bijection of uint64 that spreads every input bit."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@njit(cache=True)
def _tokens(data, start, end, starts, ends, prefix, words):
    """Token spans of data[start:end] into starts/ends; prefix[i] = polynomial hash of the first i tokens;
    words[i] = how many of the first i tokens are not all digits. Returns the token count."""
    n = 0
    i = start
    prefix[0] = np.uint64(0)
    words[0] = 0
    while True:
        s, i = _next_token(data, i, end, 0)
        if s == end:
            break
        starts[n] = s
        ends[n] = i
        prefix[n + 1] = prefix[n] * BASE + _mix64(_xxh32(data, s, i))
        digits = True
        for b in range(s, i):
            if data[b] < 48 or data[b] > 57:
                digits = False
                break
        words[n + 1] = words[n] + (0 if digits else 1)
        n += 1
    return n


@njit(cache=True, inline="always")
def _gram(prefix, powers, j, k):
    """Hash of the k tokens starting at token j."""
    return _mix64((prefix[j + k] - prefix[j] * powers[k]) ^ np.uint64(k))


@njit(cache=True, inline="always")
def _maybe(bloom, h):
    """Bloom filter test (double hashing over the two halves of h)."""
    m = np.uint64(bloom.shape[0] * 64)
    h2 = _mix64(h) | np.uint64(1)
    for p in range(PROBES):
        bit = (h + np.uint64(p) * h2) % m
        if not (bloom[bit >> np.uint64(6)] >> (bit & np.uint64(63))) & np.uint64(1):
            return False
    return True


@njit(cache=True)
def _bloom_add(bloom, hashes):
    m = np.uint64(bloom.shape[0] * 64)
    for h in hashes:
        h2 = _mix64(h) | np.uint64(1)
        for p in range(PROBES):
            bit = (h + np.uint64(p) * h2) % m
            bloom[bit >> np.uint64(6)] |= np.uint64(1) << (bit & np.uint64(63))


@njit(cache=True)
def _grow(a, n):
    if n < a.shape[0]:
        return a
    b = np.empty(2 * a.shape[0] + 16, dtype=a.dtype)
    b[:n] = a[:n]
    return b


@njit(cache=True)
def _powers(kmax):
    """BASE^0 .. BASE^kmax (mod 2^64)."""
    powers = np.empty(kmax + 1, dtype=np.uint64)
    powers[0] = np.uint64(1)
    for i in range(1, kmax + 1):
        powers[i] = powers[i - 1] * BASE
    return powers


@njit(cache=True)
def _token_buffers(max_tokens):
    """(starts, ends, prefix, words) arrays for `_tokens`, sized for the longest document of a batch."""
    return (
        np.empty(max_tokens, dtype=np.int64),
        np.empty(max_tokens, dtype=np.int64),
        np.empty(max_tokens + 1, dtype=np.uint64),
        np.empty(max_tokens + 1, dtype=np.int64),
    )


@njit(cache=True)
def _corpus_grams(data, offsets, ks, bloom, use_bloom, max_tokens):
    """Every k-gram (k in ks) of every document, or only the Bloom-filter candidates.
    Returns (doc index, hash, start byte, end byte) arrays."""
    powers = _powers(max(ks.max(), 1))
    starts, ends, prefix, words = _token_buffers(max_tokens)
    cap = 1024
    doc = np.empty(cap, dtype=np.int64)
    hs = np.empty(cap, dtype=np.uint64)
    bs = np.empty(cap, dtype=np.int64)
    be = np.empty(cap, dtype=np.int64)
    n = 0
    for d in range(offsets.shape[0] - 1):
        ntok = _tokens(data, offsets[d], offsets[d + 1], starts, ends, prefix, words)
        for k in ks:
            for j in range(ntok - k + 1):
                if words[j + k] == words[j]:
                    continue  # only numbers: runs of integers are everywhere in code and tables
                h = _gram(prefix, powers, j, k)
                if use_bloom and not _maybe(bloom, h):
                    continue
                doc = _grow(doc, n)
                hs = _grow(hs, n)
                bs = _grow(bs, n)
                be = _grow(be, n)
                doc[n] = d
                hs[n] = h
                bs[n] = starts[j] - offsets[d]
                be[n] = ends[j + k - 1] - offsets[d]
                n += 1
    return doc[:n], hs[:n], bs[:n], be[:n]


@njit(cache=True)
def _item_grams(data, offsets, n_gram, min_tokens, max_tokens):
    """The hashes a benchmark item contributes: all its n-grams, or one hash of all its tokens when it is
    shorter than n (and has at least min_tokens). Returns (item index, hash, length k) arrays."""
    powers = _powers(n_gram)
    starts, ends, prefix, words = _token_buffers(max_tokens)
    cap = 1024
    item = np.empty(cap, dtype=np.int64)
    hs = np.empty(cap, dtype=np.uint64)
    ln = np.empty(cap, dtype=np.int64)
    n = 0
    for d in range(offsets.shape[0] - 1):
        ntok = _tokens(data, offsets[d], offsets[d + 1], starts, ends, prefix, words)
        if ntok < min_tokens:
            continue
        k = min(ntok, n_gram)
        for j in range(ntok - k + 1):
            if words[j + k] == words[j]:
                continue  # only numbers
            item = _grow(item, n)
            hs = _grow(hs, n)
            ln = _grow(ln, n)
            item[n] = d
            hs[n] = _gram(prefix, powers, j, k)
            ln[n] = k
            n += 1
    return item[:n], hs[:n], ln[:n]


def _utf8(texts: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(ASCII-lowercased bytes, int64 offsets) of a string array: byte positions are the original text's."""
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    texts = pc.cast(texts.fill_null(""), pa.large_string())
    off = np.frombuffer(texts.buffers()[1], dtype=np.int64)[texts.offset : texts.offset + len(texts) + 1]
    raw = texts.buffers()[2]
    # only this array's bytes: a slice (a batch of a row group) shares its parent's whole data buffer, and
    # lowercasing all of it for every slice cost more than the hashing
    lo, hi = (int(off[0]), int(off[-1])) if len(off) else (0, 0)
    data = np.frombuffer(raw, dtype=np.uint8)[lo:hi] if raw is not None else np.zeros(0, dtype=np.uint8)
    upper = (data >= 65) & (data <= 90)
    return np.where(upper, data + 32, data).astype(np.uint8), (off - lo).astype(np.int64)


def _max_tokens(offsets: np.ndarray) -> int:
    return int(np.diff(offsets).max(initial=0)) // 2 + 2  # a token and a separator take at least 2 bytes


def item_hashes(texts: pa.Array, n: int = 13, min_tokens: int = 8) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(item index, hash as int64, gram length) of every hash the benchmark items contribute."""
    data, offsets = _utf8(texts)
    item, hs, ln = _item_grams(data, offsets, n, min_tokens, _max_tokens(offsets))
    return item, hs.view(np.int64), ln


def corpus_hashes(
    texts: pa.Array, lengths: list[int], bloom: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(document index, hash as int64, start byte, end byte) of the documents' k-grams for k in ``lengths``;
    with a Bloom filter, only those it admits."""
    data, offsets = _utf8(texts)
    ks = np.array(sorted(set(lengths)) or [1], dtype=np.int64)
    use = bloom is not None
    doc, hs, bs, be = _corpus_grams(
        data, offsets, ks, bloom if use else np.zeros(1, np.uint64), use, _max_tokens(offsets)
    )
    return doc, hs.view(np.int64), bs, be


def bloom_filter(hashes: np.ndarray, bits_per_item: int = 16) -> np.ndarray:
    """A Bloom filter (uint64 words) of int64 hashes: 16 bits per item and 7 probes give ~0.05% false positives."""
    words = max(1, (len(hashes) * bits_per_item + 63) // 64)
    bloom = np.zeros(words, dtype=np.uint64)
    _bloom_add(bloom, np.ascontiguousarray(hashes).view(np.uint64))
    return bloom


def gram_hash(text: str, k: int | None = None) -> list[int]:
    """Reference helper for tests: hashes of every k-gram of ``text`` (all its tokens when k is None)."""
    ks = [k] if k else [len(tokens(text))]
    return corpus_hashes(pa.array([text]), ks)[1].tolist()


def tokens(text: str) -> list[str]:
    """The tokens as the kernel sees them (ASCII-lowercased)."""
    import re

    raw = text.encode("utf-8")
    return [m.group().decode("utf-8", "replace") for m in re.finditer(rb"[0-9A-Za-z_\x80-\xff]+", raw.lower())]


_TOKEN = None


TURN_HEADINGS = (b"### User", b"### Instruction")


def line_hashes(
    texts: pa.Array, max_tokens: int, max_line_bytes: int = 400, turn_only_below: int = 1
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(document index, hash as int64, start byte, end byte) of every line of 1..``max_tokens`` tokens, hashed
    over all its tokens — the same hash a benchmark item of that many tokens gets — so a line that *is* a short
    benchmark item (normalised: case, punctuation and spacing aside) matches it exactly. A line of fewer than
    ``turn_only_below`` tokens counts only when it is a whole user turn or instruction (the line after a
    ``### User`` / ``### Instruction`` heading, then a blank line, a heading or the end): "Hello" as a page's
    line is ordinary text, as a user's whole request it is the benchmark's item."""
    import re

    global _TOKEN
    _TOKEN = _TOKEN or re.compile(rb"[0-9A-Za-z_\x80-\xff]+")
    by_k: dict[int, list] = {}
    for d, text in enumerate(texts.to_pylist()):
        raw = (text or "").encode("utf-8", "surrogatepass")
        pos = 0
        lines = raw.split(b"\n")
        for j, line in enumerate(lines):
            start, pos = pos, pos + len(line) + 1
            if not line or len(line) > max_line_bytes or line.startswith(b"#"):
                continue
            k = len(_TOKEN.findall(line))
            if k < turn_only_below and not (
                j
                and lines[j - 1].strip() in TURN_HEADINGS
                and (j + 1 == len(lines) or not lines[j + 1].strip() or lines[j + 1].startswith(b"#"))
            ):
                continue
            if 1 <= k <= max_tokens:
                by_k.setdefault(k, []).append((d, start, start + len(line), line))
    docs, hs, starts, ends = [], [], [], []
    for k, units in by_k.items():
        arr = pa.array([u[3].decode("utf-8", "surrogatepass") for u in units])
        idx, h, _, _ = corpus_hashes(arr, [k])
        docs.append(np.array([units[i][0] for i in idx], dtype=np.int64))
        hs.append(h)
        starts.append(np.array([units[i][1] for i in idx], dtype=np.int64))
        ends.append(np.array([units[i][2] for i in idx], dtype=np.int64))
    if not docs:
        empty = np.zeros(0, np.int64)
        return empty, empty, empty, empty
    return np.concatenate(docs), np.concatenate(hs), np.concatenate(starts), np.concatenate(ends)


def short_item_hashes(texts: pa.Array, max_tokens: int, min_tokens: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(item index, hash as int64) of the items with ``min_tokens``..``max_tokens`` tokens: one hash over all
    their tokens."""
    short = [i for i, t in enumerate(texts.to_pylist()) if min_tokens <= len(tokens(t or "")) <= max_tokens]
    if not short:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    picked = pa.array([texts[i].as_py() for i in short], pa.string())
    data, offsets = _utf8(picked)
    item, hs, _ = _item_grams(data, offsets, max_tokens + 1, 1, _max_tokens(offsets))
    return np.array(short, dtype=np.int64)[item], hs.view(np.int64)
