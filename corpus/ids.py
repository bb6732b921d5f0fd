"""Content-hash ids and text normalisation shared by every stage.

Ids are content hashes so that the same input gives the same ids on any machine, in any partitioning, in any
run: no counters, no ``monotonically_increasing_id`` (whose values depend on partitioning, which is how
text-dedup's Spark port kept a random document per cluster, text-dedup #28).
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata

_WS = re.compile(r"\s+")


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


def normalize_text(text: str) -> str:
    """The normal form exact dedup compares: NFKC, case-folded, runs of whitespace collapsed, trimmed."""
    return _WS.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def text_hash(text: str) -> str:
    """Hash of the normalised text (what exact dedup groups by), 128 bits as hex."""
    return hashlib.sha256(normalize_text(text).encode("utf-8", "surrogatepass")).hexdigest()[:32]


def seeded_key(seed: int, id_: str) -> str:
    """A seeded pseudo-random sort key for an id (used for deterministic shuffles)."""
    return hashlib.sha256(f"{seed}:{id_}".encode()).hexdigest()


def dumps(obj) -> str:
    """Canonical JSON (sorted keys, no spaces): the same object always serialises to the same bytes."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
