"""The ``write`` stage: Parquet shards and ``manifest.json``, byte-identical for the same input and config.

* Outputs: one folder per mix output (``write/stage1/``, ``write/stage2/``; ``write/all/`` when ``mix`` is off),
  each with its shards and ``manifest.json``; the documents of an output are those ``mix`` chose, each repeated
  as many times as it chose (``copies``), found by applying mix's plan to each document's id (the rows then
  must equal mix's count, or the stage fails).
* Order: every row gets a seeded key, a 64-bit hash of seed, output, id and copy number; shards are
  equal ranges of it and rows inside a shard are sorted by it (:mod:`corpus.write.shuffle`, which does the
  global shuffle in the stage's own tasks). The order does not depend on how the tasks were cut.
* Size: the number of shards is the output's tokens over ``write.target_shard_tokens`` (from the mix stats, or
  one aggregate over ``token_count``: the text is not read to plan the shards), and at least
  ``write.min_shards``, so that every data-loader worker gets files. Each shard is one task, the
  shards of all outputs in one job, so the write uses every core while there are shards left.
* Files: each task writes whole shards with pyarrow (zstd), cutting row groups when the buffered text reaches
  ``write.row_group_bytes``, so row-group boundaries depend only on the rows.
  Spark's own Parquet writer would choose file names, row groups and metadata itself.
* Manifest: each shard's path (relative), rows, bytes, SHA-256, rows and tokens by part; the output's
  composition (token shares targeted by ``mix`` and achieved); per part the distinct documents, the rows (with
  copies), epochs and unique tokens (from the corpus-quality figures over the written shards); the tokenizer and
  its file's hash; the run's config. Only small per-shard rows and per-part figures reach the driver.
"""

from __future__ import annotations

import json
import logging
import math
import posixpath
from collections import Counter

import pyarrow as pa

from corpus import __version__, schema
from corpus.config import AFTER_WRITE, WriteSection
from corpus.io import files
from corpus.write import shuffle

STAGE = "write"
log = logging.getLogger("corpus")
MANIFEST = "manifest.json"
SCRATCH = "_scatter"  # the shuffle's scratch files, in the stage's temporary folder until the shards are written

RESULT_SCHEMA = pa.schema(
    [
        pa.field("output", pa.string()),
        pa.field("shard", pa.int64()),
        pa.field("path", pa.string()),
        pa.field("rows", pa.int64()),
        pa.field("bytes", pa.int64()),
        pa.field("sha256", pa.string()),
        pa.field("rows_by_part", pa.map_(pa.string(), pa.int64())),
        pa.field("tokens_by_part", pa.map_(pa.string(), pa.int64())),
    ]
)


def shard_count(total_tokens: int, rows: int, target: int, least: int = 1) -> int:
    """Shards of an output: its tokens over ``target``, at least ``least`` (``write.min_shards``), at most one per
    row."""
    if rows == 0:
        return 0
    return max(1, min(rows, max(least, math.ceil(total_tokens / max(1, target)))))


def measure(rows) -> tuple[int, int]:
    """(rows, tokens) of a DataFrame of documents: an aggregate of ``token_count`` alone, unless some lack one
    (then their text is measured: bytes / 4)."""
    from pyspark.sql import functions as F

    first = rows.agg(
        F.count("*").alias("rows"),
        F.sum("token_count").alias("tokens"),
        F.count(F.when(F.col("token_count").isNull(), 1)).alias("missing"),
    ).first()
    if not first["missing"]:
        return int(first["rows"]), int(first["tokens"] or 0)
    estimated = rows.agg(F.sum(F.coalesce("token_count", F.ceil(F.octet_length("text") / 4))).alias("t")).first()
    return int(first["rows"]), int(estimated["t"] or 0)


OUTPUT_ALL = "all"


def split_inputs(inputs: list) -> tuple[list, str | None]:
    """(document inputs, the mix stage output among them or None): a mix output holds ``selection/``."""
    from corpus.mix.stage import selection_path

    docs, mix = [], None
    for i in inputs:
        path = str(getattr(i, "path", i))
        if files.exists(selection_path(path)):
            mix = path
        else:
            docs.append(i)
    return docs, mix


def part_figures(figures: dict[str, dict]) -> dict[str, dict]:
    """Per part: documents (distinct), rows (with copies), epochs (tokens / unique tokens), tokens, unique tokens,
    from the corpus-quality figures of the output (:func:`corpus.write.quality.figures`, which counts them over
    the written shards)."""
    return {
        part: {
            "documents": f["documents"],
            "rows": f["rows"],
            "epochs": round(f["tokens"] / f["unique_tokens"], 4) if f["unique_tokens"] else 1.0,
            "tokens": f["tokens"],
            "unique_tokens": f["unique_tokens"],
        }
        for part, f in sorted(figures.items())
    }


def manifest(
    ctx, output: str, results: list[dict], composition_target: dict, plan: shuffle.OutputPlan, figures: dict[str, dict]
) -> dict:
    """The manifest of one output from its shards' result rows (as the gather tasks return them); written
    beside the shards. ``figures``: the output's corpus-quality figures by part (distinct documents, unique
    tokens)."""
    from corpus.ids import dumps
    from corpus.schema import validate_json
    from corpus.text.tokenizer import sha256

    cfg: WriteSection = ctx.config.write
    by_part: Counter[str] = Counter()
    tokens: Counter[str] = Counter()
    shards = []
    for r in sorted(results, key=lambda r: r["shard"]):
        parts, toks = dict(r["rows_by_part"]), dict(r["tokens_by_part"])
        by_part.update(parts)
        tokens.update(toks)
        shards.append(
            {
                "path": r["path"],
                "rows": r["rows"],
                "bytes": r["bytes"],
                "sha256": r["sha256"],
                "tokens": sum(toks.values()),
                "rows_by_part": dict(sorted(parts.items())),
                "tokens_by_part": dict(sorted(toks.items())),
            }
        )
    total_tokens = sum(tokens.values())
    parts = part_figures(figures)
    out = {
        "schema": "manifest",
        "schema_version": schema.load("manifest").version,
        "document_schema_version": schema.document().version,
        "producer": f"corpus {__version__}",
        "name": ctx.config.run.name,
        "output": output,
        "rows": sum(s["rows"] for s in shards),
        "bytes": sum(s["bytes"] for s in shards),
        "tokens": total_tokens,
        "unique_documents": sum(p["documents"] for p in parts.values()),
        "unique_tokens": sum(p["unique_tokens"] for p in parts.values()),
        "tokenizer": ctx.config.redact.tokenizer,
        "tokenizer_sha256": sha256(ctx.config.redact.tokenizer),
        "rows_by_part": dict(sorted(by_part.items())),
        "tokens_by_part": dict(sorted(tokens.items())),
        "parts": parts,
        "composition": {
            "target": dict(sorted(composition_target.items())),
            "achieved": {p: round(t / total_tokens, 6) for p, t in sorted(tokens.items())} if total_tokens else {},
        },
        "shards": shards,
        # the rule that placed every copy (shuffle.copy_locations): export recomputes where a document's copies are
        "write": {
            **cfg.model_dump(mode="json"),
            "seed": ctx.config.run.seed,
            "shards_planned": plan.shards,
            "copies": {"whole": plan.whole, "thresholds": plan.thresholds},
        },
        "config": {k: v for k, v in ctx.config.to_dict().items() if k not in AFTER_WRITE},
    }
    validate_json(out, schema.load("manifest"))
    out_dir = posixpath.join(ctx.tmp, output)
    files.make_dirs(out_dir)
    files.write_text(posixpath.join(out_dir, MANIFEST), json.dumps(json.loads(dumps(out)), indent=2) + "\n")
    return out


def plans(ctx, mix: str | None, doc_inputs: list) -> tuple[list[shuffle.OutputPlan], dict[str, dict], dict[str, int]]:
    """(what to shard, each output's target composition, each output's rows as planned). With mix: its stats
    (rows, tokens, the plan's rule); without: every document once, measured with one aggregate."""
    from corpus.stage import read_documents, read_stats

    target = int(ctx.config.write.target_shard_tokens)
    least = int(ctx.config.write.min_shards)
    if mix is None:
        rows, tokens = measure(read_documents(ctx.spark, doc_inputs))
        return (
            [shuffle.OutputPlan(OUTPUT_ALL, shard_count(tokens, rows, target, least))],
            {OUTPUT_ALL: {}},
            {OUTPUT_ALL: rows},
        )
    outputs = read_stats(mix)["extra"]["outputs"]
    return (
        [
            shuffle.OutputPlan(
                o, shard_count(info["tokens"], info["rows"], target, least), info["whole_copies"], info["thresholds"]
            )
            for o, info in outputs.items()
        ],
        {o: info["target"] for o, info in outputs.items()},
        {o: info["rows"] for o, info in outputs.items()},
    )


def build(ctx):
    """Stage builder: the shards of every output (:mod:`corpus.write.shuffle`), each with its manifest; the
    dataset card beside them."""
    import time

    from corpus.stage import Outcome, StageError, document_paths

    doc_inputs, mix = split_inputs(ctx.inputs)
    sc = ctx.spark.sparkContext
    t0 = time.perf_counter()
    sc.setJobDescription(f"forge {STAGE}: plan")
    todo, targets, planned = plans(ctx, mix, doc_inputs)
    out_dirs = {p.name: posixpath.join(ctx.tmp, p.name) for p in todo}
    results, counts = shuffle.run(
        ctx.spark,
        document_paths(doc_inputs),
        todo,
        ctx.config.run.seed,
        ctx.config.run.name,
        out_dirs,
        posixpath.join(ctx.tmp, SCRATCH),
        ctx.config.write,
        RESULT_SCHEMA,
        progress=lambda label: sc.setJobDescription(f"forge {STAGE}: {label}"),
    )
    for p in todo:
        rows = sum(r["rows"] for r in results if r["output"] == p.name)
        if rows != planned[p.name]:
            raise StageError(
                f"{STAGE}: output {p.name!r} has {rows:,} rows where the plan chose "
                f"{planned[p.name]:,}: the documents are not those mix planned from (rerun mix with "
                f"--force); nothing committed"
            )
    seconds = {"outputs": round(time.perf_counter() - t0, 2)}
    from corpus.write import card, quality

    t1 = time.perf_counter()
    sc.setJobDescription(f"forge {STAGE}: corpus-quality figures")
    figures = quality.figures(
        ctx.spark, out_dirs, posixpath.dirname(ctx.output.rstrip("/")) or None, ctx.config.run.seed
    )
    seconds["quality"] = round(time.perf_counter() - t1, 2)
    manifests = {
        p.name: manifest(
            ctx, p.name, [r for r in results if r["output"] == p.name], targets[p.name], p, figures.get(p.name, {})
        )
        for p in todo
    }
    rows_in, hists = shuffle.histograms(counts)
    extra = {
        "outputs": {
            o: {
                "rows": m["rows"],
                "tokens": m["tokens"],
                "shards": len(m["shards"]),
                "bytes": m["bytes"],
                "composition": m["composition"],
                "parts": m["parts"],
            }
            for o, m in manifests.items()
        },
        "histograms": hists,
        "seconds": seconds,
        "quality": figures,
    }
    card.write(ctx, manifests, extra["quality"])
    return Outcome(rows_in=rows_in, rows_out=rows_in, extra=extra)
