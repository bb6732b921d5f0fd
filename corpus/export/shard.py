"""One shard's export: its documents' token ids laid out in the configured formats, in the shard's order.

Used by the ``export`` stage (:mod:`corpus.export.stage`) both ways: tokenizing the shard's rows itself
(:meth:`ShardExporter.add`), or laying out ids tokenized once per document elsewhere (:mod:`corpus.export.once`,
:meth:`ShardExporter.lay_out`).
"""

from __future__ import annotations

import posixpath
from collections import Counter

import numpy as np

from corpus.config import ExportSection
from corpus.export import masks, megatron, packed

CACHE_TOKENS = 32_000_000  # most token ids kept per task for repeated documents (int64: 256 MB)


class ShardExporter:
    """Tokenizes one shard's documents in order and writes the configured formats (``prefix`` None: tokenizes
    only, for :mod:`corpus.export.once`'s tokenize tasks)."""

    def __init__(self, prefix: str | None, cfg: ExportSection, spec: str) -> None:
        from corpus.text.tokenizer import encoder

        self.cfg = cfg
        self.enc = encoder(spec, cfg.eod_token)
        self.prefix = prefix
        self.mask_parts = frozenset(cfg.mask_parts)
        self.trained = frozenset(cfg.trained_blocks)
        self.tokens = self.documents = self.trained_tokens = self.unmarked = self.tokenized = 0
        self.by_part: Counter[str] = Counter()
        self.trained_by_part: Counter[str] = Counter()
        writes = prefix is not None
        self._megatron = (
            megatron.IndexedWriter(prefix, self.enc.dtype) if writes and "megatron" in cfg.formats else None
        )
        self._mask = (
            megatron.IndexedWriter(prefix + megatron.MASK_SUFFIX, np.uint8)
            if self._megatron is not None and self.mask_parts
            else None
        )
        self._packer = (
            packed.Packer(
                prefix + packed.SUFFIX, cfg.sequence_length, self.enc.dtype, self.enc.eod, cfg.packed_compression
            )
            if writes and "packed" in cfg.formats
            else None
        )
        self._cache: dict[str, tuple] = {}
        self._ones = np.ones(1 << 16, np.uint8)
        self._cached = 0

    def tokenize(self, text: str, part: str) -> tuple[np.ndarray, np.ndarray | None, int]:
        """(ids, loss mask or None when every token is trained, whether the end-of-document token is)."""
        self.tokenized += 1
        if part in self.mask_parts:
            spans = masks.trained_spans(text, self.trained)
            if spans is not None:
                ids, starts = self.enc.encode_with_starts(text)
                return ids, masks.token_mask(starts, spans[0]), int(spans[1])
            self.unmarked += 1  # no role headings: trained as plain text, and counted
        return self.enc.encode(text), None, 1

    def add(self, ids_col: list[str], parts: list[str], texts: list[str], remaining: Counter) -> None:
        """A batch of rows: ``remaining`` counts each id's occurrences still to come in this shard."""
        docs = []
        for doc_id, part, text in zip(ids_col, parts, texts):
            hit = self._cache.get(doc_id)
            if hit is None:
                hit = self.tokenize(text, part)
                if remaining[doc_id] > 1 and self._cached + len(hit[0]) <= CACHE_TOKENS:
                    self._cache[doc_id] = hit
                    self._cached += len(hit[0])
            remaining[doc_id] -= 1
            if remaining[doc_id] <= 0 and doc_id in self._cache:
                self._cached -= len(self._cache.pop(doc_id)[0])
            docs.append(hit)
        self.lay_out(parts, docs)

    def lay_out(self, parts: list[str], docs: list[tuple]) -> None:
        """Append documents in order: (ids, mask or None when all is trained, whether the end-of-document token
        is trained) each, ``parts`` theirs."""
        if not docs:
            return
        # one array per batch, in the file's dtype, each document followed by its end-of-document token: one
        # concatenate of the pieces (a Python slice assignment per document cost more than the copy)
        eod = np.full(1, self.enc.eod, docs[0][0].dtype)  # the tokenizer's own dtype: no promotion
        flags = (np.zeros(1, np.uint8), np.ones(1, np.uint8))
        lengths = np.fromiter((len(d[0]) + 1 for d in docs), np.int64, len(docs))
        longest = int(lengths.max())
        if len(self._ones) < longest:
            self._ones = np.ones(max(longest, 2 * len(self._ones)), np.uint8)
        ids = np.concatenate([piece for d in docs for piece in (d[0], eod)]).astype(self.enc.dtype, copy=False)
        mask = np.concatenate(
            [
                piece
                for d, n in zip(docs, lengths.tolist())
                for piece in ((self._ones[:n],) if d[1] is None else (d[1], flags[d[2]]))
            ]
        )
        ends = np.cumsum(lengths)
        trained = np.add.reduceat(mask, ends - lengths, dtype=np.int64)  # per document
        codes = {p: i for i, p in enumerate(dict.fromkeys(parts))}
        index = np.fromiter((codes[p] for p in parts), np.int64, len(parts))
        for part, i in codes.items():
            self.by_part[part] += int(lengths[index == i].sum()) - int((index == i).sum())
            self.trained_by_part[part] += int(trained[index == i].sum())
        self.trained_tokens += int(trained.sum())
        self.documents += len(docs)
        self.tokens += len(ids)
        if self._megatron is not None:
            self._megatron.add(ids, lengths)
        if self._mask is not None:
            self._mask.add(mask, lengths)
        if self._packer is not None:
            self._packer.add(ids, mask, ends - lengths)

    def close(self) -> dict:
        """Finish every file; return what was written, by format."""
        name = posixpath.basename(self.prefix)
        out: dict = {}
        if self._megatron is not None:
            out["megatron"] = {"prefix": name, **self._megatron.close()}
        if self._mask is not None:
            out["mask"] = {"prefix": name + megatron.MASK_SUFFIX, **self._mask.close()}
        if self._packer is not None:
            out["packed"] = {"path": name + packed.SUFFIX, **self._packer.close()}
        return out
