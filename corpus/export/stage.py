"""The ``export`` stage: ``write``'s Parquet shards as token ids, in the layouts trainers read.

For each output (``export/stage1/``, ``export/stage2/``), one task per shard reads the shard's rows in order,
tokenizes them with ``redact.tokenizer`` (the tokenizer the manifest's counts use) and writes, under the shard's
name:

* ``megatron``: ``<name>.bin`` / ``<name>.idx``, Megatron's indexed dataset (:mod:`corpus.export.megatron`),
  one sequence per document with the end-of-document token appended; and ``<name>_mask.bin/.idx``, the loss
  mask as the same structure in uint8 (:mod:`corpus.export.masks`);
* ``packed``: ``<name>.packed.arrow``, rows of ``sequence_length + 1`` tokens (:mod:`corpus.export.packed`).

Beside them, ``manifest.json`` (schema ``export_manifest``: tokenizer, its file's hash, dtype, per-file
documents, tokens, trained tokens and SHA-256s) and ``data-path.txt``: the ``--data-path`` blend for Megatron,
each file weighted by its share of the output's tokens. Every shard is a random sample of the mix, so that blend
reads the output in the composition ``mix`` chose.

A document chosen more than once (mix's copies) can occur several times in a shard: its ids are kept from the
first time until its last copy, so it is tokenized once per shard. The stage fails (nothing committed) when the
token ids disagree with the manifest's counts: then the tokenizer is not the one the shards were counted with.
"""

from __future__ import annotations

import json
import logging
import posixpath
from collections import Counter
from typing import Iterator

import numpy as np
import pyarrow as pa

from corpus import __version__, schema
from corpus.config import ExportSection
from corpus.export import masks, megatron, packed
from corpus.io import files

STAGE = "export"
MANIFEST = "manifest.json"
DATA_PATH = "data-path.txt"
CACHE_TOKENS = 32_000_000  # most token ids kept per task for repeated documents (int64: 256 MB)
log = logging.getLogger("corpus")

RESULT_SCHEMA = pa.schema([
    pa.field("output", pa.string()), pa.field("shard", pa.int64()), pa.field("prefix", pa.string()),
    pa.field("documents", pa.int64()), pa.field("tokens", pa.int64()), pa.field("trained_tokens", pa.int64()),
    pa.field("tokens_by_part", pa.map_(pa.string(), pa.int64())),
    pa.field("trained_by_part", pa.map_(pa.string(), pa.int64())),
    pa.field("unmarked", pa.int64()), pa.field("tokenized", pa.int64()),
    pa.field("files", pa.string()),  # JSON: the files written and their sizes and hashes
])


class ShardExporter:
    """Tokenizes one shard's documents in order and writes the configured formats."""

    def __init__(self, prefix: str, cfg: ExportSection, spec: str) -> None:
        from corpus.text.tokenizer import encoder

        self.cfg = cfg
        self.enc = encoder(spec, cfg.eod_token)
        self.prefix = prefix
        self.mask_parts = frozenset(cfg.mask_parts)
        self.trained = frozenset(cfg.trained_blocks)
        self.tokens = self.documents = self.trained_tokens = self.unmarked = self.tokenized = 0
        self.by_part: Counter[str] = Counter()
        self.trained_by_part: Counter[str] = Counter()
        self._megatron = megatron.IndexedWriter(prefix, self.enc.dtype) if "megatron" in cfg.formats else None
        self._mask = megatron.IndexedWriter(prefix + megatron.MASK_SUFFIX, np.uint8) \
            if self._megatron is not None and self.mask_parts else None
        self._packer = packed.Packer(prefix + packed.SUFFIX, cfg.sequence_length, self.enc.dtype, self.enc.eod,
                                     cfg.packed_compression) if "packed" in cfg.formats else None
        self._cache: dict[str, tuple] = {}
        self._ones = np.ones(1 << 16, np.uint8)
        self._cached = 0

    def _document(self, text: str, part: str) -> tuple[np.ndarray, np.ndarray | None, int]:
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
                hit = self._document(text, part)
                if remaining[doc_id] > 1 and self._cached + len(hit[0]) <= CACHE_TOKENS:
                    self._cache[doc_id] = hit
                    self._cached += len(hit[0])
            remaining[doc_id] -= 1
            if remaining[doc_id] <= 0 and doc_id in self._cache:
                self._cached -= len(self._cache.pop(doc_id)[0])
            docs.append(hit)
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
        mask = np.concatenate([piece for d, n in zip(docs, lengths.tolist())
                               for piece in ((self._ones[:n],) if d[1] is None else (d[1], flags[d[2]]))])
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


def export_shard(source: str, prefix: str, cfg: ExportSection, spec: str) -> ShardExporter:
    """Export the Parquet shard ``source`` to files named ``prefix``*."""
    import pyarrow.parquet as pq

    fs, inner = files.filesystem(source)
    with fs.open_input_file(inner) as f:
        reader = pq.ParquetFile(f)
        remaining = Counter(reader.read(columns=["id"]).column("id").to_pylist())
        exporter = ShardExporter(prefix, cfg, spec)
        for batch in reader.iter_batches(batch_size=1024, columns=["id", "part", "text"]):
            exporter.add(batch.column("id").to_pylist(), batch.column("part").to_pylist(),
                         batch.column("text").to_pylist(), remaining)
    return exporter


def export_fn(cfg: ExportSection, spec: str):
    """mapInArrow function over the task list (output, shard, source, prefix): one result row per shard."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        rows = []
        for batch in batches:
            for task in batch.to_pylist():
                ex = export_shard(task["source"], task["prefix"], cfg, spec)
                written = ex.close()
                rows.append({"output": task["output"], "shard": task["shard"],
                             "prefix": posixpath.basename(task["prefix"]), "documents": ex.documents,
                             "tokens": ex.tokens, "trained_tokens": ex.trained_tokens,
                             "tokens_by_part": sorted(ex.by_part.items()),
                             "trained_by_part": sorted(ex.trained_by_part.items()), "unmarked": ex.unmarked,
                             "tokenized": ex.tokenized, "files": json.dumps(written, sort_keys=True)})
        if rows:
            yield pa.RecordBatch.from_pylist(rows, schema=RESULT_SCHEMA)

    return run


def write_outputs(write_dir: str) -> dict[str, dict]:
    """The manifests of ``write``'s outputs, by output name."""
    from corpus.output.shards import MANIFEST as WRITE_MANIFEST

    out = {}
    for entry in sorted(files.list_files(write_dir, (WRITE_MANIFEST,)), key=lambda e: e.path):
        if posixpath.basename(entry.path) != WRITE_MANIFEST:
            continue
        data = json.loads(files.read_text(entry.path))
        if data.get("schema") == "manifest":
            out[data["output"]] = {"dir": posixpath.dirname(entry.path), "manifest": data}
    return out


def data_path(results: list[dict]) -> str:
    """Megatron's ``--data-path`` blend: ``weight prefix`` per file, weights the files' shares of the tokens."""
    total = sum(r["tokens"] for r in results) or 1
    return " ".join(f"{r['tokens'] / total:.6f} {r['prefix']}" for r in results if r["tokens"])


def manifest(ctx, output: str, source: dict, results: list[dict], enc) -> dict:
    """The export manifest of one output, written beside its files with ``data-path.txt``."""
    from corpus.ids import dumps
    from corpus.schema import validate_json

    cfg: ExportSection = ctx.config.export
    results = sorted(results, key=lambda r: r["shard"])
    by_part: Counter[str] = Counter()
    trained: Counter[str] = Counter()
    file_rows = []
    for r in results:
        by_part.update(dict(r["tokens_by_part"]))
        trained.update(dict(r["trained_by_part"]))
        file_rows.append({"shard": source["manifest"]["shards"][r["shard"]]["path"], "documents": r["documents"],
                          "tokens": r["tokens"], "trained_tokens": r["trained_tokens"],
                          **json.loads(r["files"])})
    documents = sum(r["documents"] for r in results)
    packed_rows = [f["packed"] for f in file_rows if "packed" in f]
    out = {
        "schema": "export_manifest",
        "schema_version": schema.load("export_manifest").version,
        "producer": f"corpus {__version__}",
        "name": ctx.config.run.name,
        "output": output,
        "tokenizer": {"spec": enc.spec, "sha256": enc.sha256, "vocab_size": enc.vocab_size,
                      "eod_token": enc.eod_token, "eod": enc.eod, "dtype": np.dtype(enc.dtype).name},
        "documents": documents,
        "tokens": sum(r["tokens"] for r in results),
        "document_tokens": sum(by_part.values()),
        "trained_tokens": sum(trained.values()),
        "tokens_by_part": dict(sorted(by_part.items())),
        "trained_tokens_by_part": dict(sorted(trained.items())),
        "formats": list(cfg.formats),
        "mask": {"parts": list(cfg.mask_parts), "trained_blocks": list(cfg.trained_blocks),
                 "unmarked_documents": sum(r["unmarked"] for r in results)},
        "packed": {"format": "arrow", "compression": cfg.packed_compression, "sequence_length": cfg.sequence_length,
                   "sequences": sum(p["sequences"] for p in packed_rows),
                   "padding_tokens": sum(p["padding"] for p in packed_rows)} if "packed" in cfg.formats else None,
        "data_path": data_path(results) if "megatron" in cfg.formats else None,
        "source_manifest": {"rows": source["manifest"]["rows"], "tokens": source["manifest"]["tokens"]},
        "files": file_rows,
    }
    validate_json(out, schema.load("export_manifest"))
    out_dir = ctx.path(output)
    files.make_dirs(out_dir)
    files.write_text(posixpath.join(out_dir, MANIFEST), json.dumps(json.loads(dumps(out)), indent=2) + "\n")
    if out["data_path"] is not None:
        files.write_text(posixpath.join(out_dir, DATA_PATH), out["data_path"] + "\n")
    return out


def build(ctx):
    """Stage builder: every shard of every chosen output exported, one task per shard, largest first."""
    from pyspark.sql.pandas.types import from_arrow_schema

    from corpus.spark.datasets import map_tasks
    from corpus.stage import Outcome, StageError
    from corpus.text.tokenizer import encoder

    cfg: ExportSection = ctx.config.export
    spec = ctx.config.redact.tokenizer
    enc = encoder(spec, cfg.eod_token)  # on the driver first: a bad tokenizer fails before any task
    found: dict[str, dict] = {}
    for source in ctx.inputs:
        found.update(write_outputs(str(source)))
    if not found:
        raise StageError(f"{STAGE}: no manifest.json of a `write` output under {', '.join(map(str, ctx.inputs))}")
    unknown = sorted(set(cfg.outputs) - set(found))
    if unknown:
        raise StageError(f"{STAGE}: export.outputs names {', '.join(unknown)}, which `write` did not write (it "
                         f"wrote {', '.join(sorted(found))})")
    chosen = {o: found[o] for o in (cfg.outputs or sorted(found))}
    for o, src in chosen.items():
        if src["manifest"]["tokenizer"] != spec:
            raise StageError(f"{STAGE}: output {o!r} was counted with {src['manifest']['tokenizer']!r}, not "
                             f"redact.tokenizer {spec!r}: rerun from redact with one tokenizer")
    tasks = []
    for o, src in chosen.items():
        files.make_dirs(ctx.path(o))
        for i, shard in enumerate(src["manifest"]["shards"]):
            tasks.append({"output": o, "shard": i, "source": posixpath.join(src["dir"], shard["path"]),
                          "prefix": ctx.path(o, shard["path"].removesuffix(".parquet")), "tokens": shard["tokens"]})
    tasks.sort(key=lambda t: (-t["tokens"], t["output"], t["shard"]))  # the largest first
    table = pa.table({k: [t[k] for t in tasks] for k in ("output", "shard", "source", "prefix")})
    ctx.spark.sparkContext.setJobDescription(f"{STAGE}: {len(tasks)} shards")
    results = [r.asDict() for r in map_tasks(ctx.spark, table, export_fn(cfg, spec),
                                             from_arrow_schema(RESULT_SCHEMA), len(tasks)).collect()] \
        if tasks else []
    manifests, counters = {}, Counter()
    for o, src in chosen.items():
        mine = [r for r in results if r["output"] == o]
        m = manifest(ctx, o, src, mine, enc)
        manifests[o] = m
        want_rows, want_tokens = src["manifest"]["rows"], src["manifest"]["tokens"]
        if m["documents"] != want_rows or m["document_tokens"] != want_tokens:
            raise StageError(f"{STAGE}: output {o!r}: exported {m['documents']:,} documents and "
                             f"{m['document_tokens']:,} tokens where its manifest has {want_rows:,} and "
                             f"{want_tokens:,}; nothing committed")
        counters[f"{o}:documents"] = m["documents"]
        counters[f"{o}:tokens"] = m["tokens"]
        counters[f"{o}:trained_tokens"] = m["trained_tokens"]
        counters[f"{o}:unmarked_documents"] = m["mask"]["unmarked_documents"]
        counters["tokenized_documents"] += sum(r["tokenized"] for r in mine)
    rows = sum(m["documents"] for m in manifests.values())
    for o, m in manifests.items():
        if m["mask"]["unmarked_documents"]:
            log.warning("%s: %s: %d documents of masked parts have no role headings; trained as plain text",
                        STAGE, o, m["mask"]["unmarked_documents"])
    extra = {"outputs": {o: {"documents": m["documents"], "tokens": m["tokens"],
                             "trained_tokens": m["trained_tokens"], "files": len(m["files"]),
                             "tokenizer": m["tokenizer"], "packed": m["packed"]} for o, m in manifests.items()}}
    return Outcome(rows_in=rows, rows_out=rows, counters=dict(counters), extra=extra)
