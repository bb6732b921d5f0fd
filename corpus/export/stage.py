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

Each distinct document is tokenized once, however many copies of it ``write`` placed in however many shards
(:mod:`corpus.export.once`: a tokenize job, then a lay-out job per shard). A write manifest without the copy rule
(an older version) or one that does not place the shards' rows is exported shard by shard instead, a repeated
document then tokenized once per shard. The stage fails (nothing committed) when the token ids disagree with the
manifest's counts: then the tokenizer is not the one the shards were counted with.
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
from corpus.export import once
from corpus.export.shard import ShardExporter
from corpus.io import files

STAGE = "export"
MANIFEST = "manifest.json"
DATA_PATH = "data-path.txt"
log = logging.getLogger("corpus")

RESULT_SCHEMA = pa.schema(
    [
        pa.field("output", pa.string()),
        pa.field("shard", pa.int64()),
        pa.field("prefix", pa.string()),
        pa.field("documents", pa.int64()),
        pa.field("tokens", pa.int64()),
        pa.field("trained_tokens", pa.int64()),
        pa.field("tokens_by_part", pa.map_(pa.string(), pa.int64())),
        pa.field("trained_by_part", pa.map_(pa.string(), pa.int64())),
        pa.field("unmarked", pa.int64()),
        pa.field("tokenized", pa.int64()),
        pa.field("files", pa.string()),  # JSON: the files written and their sizes and hashes
    ]
)


def export_shard(source: str, prefix: str, cfg: ExportSection, spec: str) -> ShardExporter:
    """Export the Parquet shard ``source`` to files named ``prefix``*."""
    import pyarrow.parquet as pq

    fs, inner = files.filesystem(source)
    with fs.open_input_file(inner) as f:
        reader = pq.ParquetFile(f)
        remaining = Counter(reader.read(columns=["id"]).column("id").to_pylist())
        exporter = ShardExporter(prefix, cfg, spec)
        for batch in reader.iter_batches(batch_size=1024, columns=["id", "part", "text"]):
            exporter.add(
                batch.column("id").to_pylist(),
                batch.column("part").to_pylist(),
                batch.column("text").to_pylist(),
                remaining,
            )
    return exporter


def _result(task: dict, ex: ShardExporter) -> dict:
    written = ex.close()
    return {
        "output": task["output"],
        "shard": task["shard"],
        "prefix": posixpath.basename(task["prefix"]),
        "documents": ex.documents,
        "tokens": ex.tokens,
        "trained_tokens": ex.trained_tokens,
        "tokens_by_part": sorted(ex.by_part.items()),
        "trained_by_part": sorted(ex.trained_by_part.items()),
        "unmarked": ex.unmarked,
        "tokenized": ex.tokenized,
        "files": json.dumps(written, sort_keys=True),
    }


def export_fn(cfg: ExportSection, spec: str):
    """mapInArrow function over the task list (output, shard, source, prefix): each shard tokenized and written
    on its own; one result row per shard."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        rows = [
            _result(task, export_shard(task["source"], task["prefix"], cfg, spec))
            for batch in batches
            for task in batch.to_pylist()
        ]
        if rows:
            yield pa.RecordBatch.from_pylist(rows, schema=RESULT_SCHEMA)

    return run


def lay_out_fn(cfg: ExportSection, spec: str):
    """mapInArrow function over the lay-out task list (output, shard, source, prefix, path, batches; a shard's
    rows in one task): each shard's ids from the tokenize job's scratch files, written in the shard's order."""

    def lay_out(task: dict, sources: list[tuple[str, list[int]]]) -> dict:
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        bound = once.tokens_for([s for s in sources if s[0] is not None])
        ex = ShardExporter(task["prefix"], cfg, spec)
        fs, inner = files.filesystem(task["source"])
        with fs.open_input_file(inner) as f:
            shard = pq.ParquetFile(f)
            missing = sorted({i for i in shard.read(columns=["id"]).column("id").to_pylist() if i not in bound})
            if missing:
                # documents the copy rule did not send here (a rule that does not describe the shards): tokenized
                # in this shard, so the output never depends on the rule being right; counted, and warned about
                rows = shard.read(columns=["id", "part", "text"])
                rows = rows.filter(pc.is_in(rows.column("id"), pa.array(missing)))
                for doc_id, part, text in zip(*(rows.column(c).to_pylist() for c in ("id", "part", "text"))):
                    if doc_id not in bound:
                        before = ex.unmarked
                        bound[doc_id] = (*ex.tokenize(text, part), ex.unmarked > before)
                ex.unmarked = 0
            for batch in shard.iter_batches(batch_size=4096, columns=["id", "part"]):
                ids, parts = batch.column("id").to_pylist(), batch.column("part").to_pylist()
                docs = [bound[i] for i in ids]
                ex.unmarked += sum(d[3] for d in docs)
                ex.lay_out(parts, docs)
        ex.tokenized = len(missing)  # the tokenize job counts the rest
        return _result(task, ex)

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        groups: dict[tuple[str, int], tuple[dict, list]] = {}
        for batch in batches:
            for row in batch.to_pylist():
                groups.setdefault((row["output"], row["shard"]), (row, []))[1].append((row["path"], row["batches"]))
        rows = [lay_out(task, sources) for task, sources in groups.values()]
        if rows:
            yield pa.RecordBatch.from_pylist(rows, schema=RESULT_SCHEMA)

    return run


def export_once(
    ctx, tasks: list[dict], plans: list, seed: int, cfg: ExportSection, spec: str
) -> tuple[list[dict], int]:
    """Both jobs of :mod:`corpus.export.once`: (result rows per shard, documents tokenized)."""
    from pyspark.sql.pandas.types import from_arrow_schema

    from corpus.spark.datasets import map_tasks

    scratch = ctx.path(once.SCRATCH_DIR)
    files.make_dirs(scratch)
    try:
        table = pa.table({k: [t[k] for t in tasks] for k in ("output", "number", "source")})
        ctx.spark.sparkContext.setJobDescription(f"forge {STAGE}: tokenize each document once ({len(tasks)} shards)")
        scattered = [
            r.asDict()
            for r in map_tasks(
                ctx.spark,
                table,
                once.tokenize_fn(cfg, spec, plans, seed, scratch),
                from_arrow_schema(once.TOKENIZED),
                len(tasks),
            ).collect()
        ]
        tokenized = sum(r["documents"] for r in scattered if r["output"] is None)
        sources: dict[tuple[str, int], list] = {}
        for r in sorted((r for r in scattered if r["output"] is not None), key=lambda r: r["path"]):
            sources.setdefault((r["output"], r["shard"]), []).append((r["path"], list(r["batches"])))
        # every shard, also one no document was sent to (its rows are then tokenized in its own task)
        rows = [
            (t, path, numbers) for t in tasks for path, numbers in sources.get((t["output"], t["number"]), [(None, [])])
        ]
        table = pa.table(
            {
                "output": [r[0]["output"] for r in rows],
                "shard": [r[0]["shard"] for r in rows],
                "source": [r[0]["source"] for r in rows],
                "prefix": [r[0]["prefix"] for r in rows],
                "path": [r[1] for r in rows],
                "batches": pa.array([r[2] for r in rows], pa.list_(pa.int32())),
            }
        )
        order = {(t["output"], t["shard"]): i for i, t in enumerate(tasks)}
        ctx.spark.sparkContext.setJobDescription(f"forge {STAGE}: lay out {len(tasks)} shards")
        results = [
            r.asDict()
            for r in map_tasks(
                ctx.spark,
                table,
                lay_out_fn(cfg, spec),
                from_arrow_schema(RESULT_SCHEMA),
                len(tasks),
                [order[(r[0]["output"], r[0]["shard"])] for r in rows],
            ).collect()
        ]
        return results, tokenized
    finally:
        files.remove(scratch)


def write_outputs(write_dir: str) -> dict[str, dict]:
    """The manifests of ``write``'s outputs, by output name."""
    from corpus.write.stage import MANIFEST as WRITE_MANIFEST

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
        file_rows.append(
            {
                "shard": source["manifest"]["shards"][r["shard"]]["path"],
                "documents": r["documents"],
                "tokens": r["tokens"],
                "trained_tokens": r["trained_tokens"],
                **json.loads(r["files"]),
            }
        )
    documents = sum(r["documents"] for r in results)
    packed_rows = [f["packed"] for f in file_rows if "packed" in f]
    out = {
        "schema": "export_manifest",
        "schema_version": schema.load("export_manifest").version,
        "producer": f"corpus {__version__}",
        "name": ctx.config.run.name,
        "output": output,
        "tokenizer": {
            "spec": enc.spec,
            "sha256": enc.sha256,
            "vocab_size": enc.vocab_size,
            "eod_token": enc.eod_token,
            "eod": enc.eod,
            "dtype": np.dtype(enc.dtype).name,
        },
        "documents": documents,
        "tokens": sum(r["tokens"] for r in results),
        "document_tokens": sum(by_part.values()),
        "trained_tokens": sum(trained.values()),
        "tokens_by_part": dict(sorted(by_part.items())),
        "trained_tokens_by_part": dict(sorted(trained.items())),
        "formats": list(cfg.formats),
        "mask": {
            "parts": list(cfg.mask_parts),
            "trained_blocks": list(cfg.trained_blocks),
            "unmarked_documents": sum(r["unmarked"] for r in results),
        },
        "packed": {
            "format": "arrow",
            "compression": cfg.packed_compression,
            "sequence_length": cfg.sequence_length,
            "sequences": sum(p["sequences"] for p in packed_rows),
            "padding_tokens": sum(p["padding"] for p in packed_rows),
        }
        if "packed" in cfg.formats
        else None,
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
        raise StageError(
            f"{STAGE}: export.outputs names {', '.join(unknown)}, which `write` did not write (it "
            f"wrote {', '.join(sorted(found))})"
        )
    chosen = {o: found[o] for o in (cfg.outputs or sorted(found))}
    for o, src in chosen.items():
        if src["manifest"]["tokenizer"] != spec:
            raise StageError(
                f"{STAGE}: output {o!r} was counted with {src['manifest']['tokenizer']!r}, not "
                f"redact.tokenizer {spec!r}: rerun from redact with one tokenizer"
            )
    tasks = []
    for o, src in chosen.items():
        files.make_dirs(ctx.path(o))
        for i, shard in enumerate(src["manifest"]["shards"]):
            name = shard["path"].removesuffix(".parquet")
            # "shard": its place in the manifest; "number": write's shard number (a planned shard with no rows
            # has no file), the one its copy rule gives
            tasks.append(
                {
                    "output": o,
                    "shard": i,
                    "number": int(name.rsplit("-", 1)[1]),
                    "source": posixpath.join(src["dir"], shard["path"]),
                    "prefix": ctx.path(o, name),
                    "tokens": shard["tokens"],
                }
            )
    tasks.sort(key=lambda t: (-t["tokens"], t["output"], t["shard"]))  # the largest first
    routes = [once.plan_of(o, src["manifest"]) for o, src in chosen.items()]
    method, tokenized = "per_shard", None
    results: list[dict] = []
    if tasks and all(routes) and len({seed for _, seed in routes}) == 1:
        results, tokenized = export_once(ctx, tasks, [plan for plan, _ in routes], routes[0][1], cfg, spec)
        method = "once"
    if method == "per_shard" and tasks:
        table = pa.table({k: [t[k] for t in tasks] for k in ("output", "shard", "source", "prefix")})
        ctx.spark.sparkContext.setJobDescription(f"forge {STAGE}: {len(tasks)} shards")
        results = [
            r.asDict()
            for r in map_tasks(
                ctx.spark, table, export_fn(cfg, spec), from_arrow_schema(RESULT_SCHEMA), len(tasks)
            ).collect()
        ]
    manifests, counters = {}, Counter()
    for o, src in chosen.items():
        mine = [r for r in results if r["output"] == o]
        m = manifest(ctx, o, src, mine, enc)
        manifests[o] = m
        want_rows, want_tokens = src["manifest"]["rows"], src["manifest"]["tokens"]
        if m["documents"] != want_rows or m["document_tokens"] != want_tokens:
            raise StageError(
                f"{STAGE}: output {o!r}: exported {m['documents']:,} documents and "
                f"{m['document_tokens']:,} tokens where its manifest has {want_rows:,} and "
                f"{want_tokens:,}; nothing committed"
            )
        counters[f"{o}:documents"] = m["documents"]
        counters[f"{o}:tokens"] = m["tokens"]
        counters[f"{o}:trained_tokens"] = m["trained_tokens"]
        counters[f"{o}:unmarked_documents"] = m["mask"]["unmarked_documents"]
        counters["tokenized_documents"] += sum(r["tokenized"] for r in mine)
        if tokenized is not None:
            counters["not_placed_by_copy_rule"] += sum(r["tokenized"] for r in mine)
    if tokenized is not None:
        counters["tokenized_documents"] += tokenized
        if counters["not_placed_by_copy_rule"]:
            log.warning(
                "%s: write's copy rule did not place %d documents of the shards (an edited manifest or "
                "shards?); they were tokenized in their own shards",
                STAGE,
                counters["not_placed_by_copy_rule"],
            )
    rows = sum(m["documents"] for m in manifests.values())
    for o, m in manifests.items():
        if m["mask"]["unmarked_documents"]:
            log.warning(
                "%s: %s: %d documents of masked parts have no role headings; trained as plain text",
                STAGE,
                o,
                m["mask"]["unmarked_documents"],
            )
    extra = {
        "tokenized": method,
        "outputs": {
            o: {
                "documents": m["documents"],
                "tokens": m["tokens"],
                "trained_tokens": m["trained_tokens"],
                "files": len(m["files"]),
                "tokenizer": m["tokenizer"],
                "packed": m["packed"],
            }
            for o, m in manifests.items()
        },
    }
    return Outcome(rows_in=rows, rows_out=rows, counters=dict(counters), extra=extra)
