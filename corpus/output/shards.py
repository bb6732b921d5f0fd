"""The ``write`` stage: Parquet shards and ``manifest.json``, byte-identical for the same input and config.

* Outputs: one folder per mix output (``write/stage1/``, ``write/stage2/``; ``write/all/`` when ``mix`` is off),
  each with its shards and ``manifest.json``; the documents of an output are those ``mix`` selected, each
  repeated as many times as it chose (``copies``).
* Order: every row gets a seeded key, ``sha256("<seed>:<output>:<id>:<copy>")``; the shard is that key modulo the
  number of shards, and rows inside a shard are sorted by (key, id, ...). This is a deterministic global shuffle
  that does not depend on how Spark partitioned the data.
* Size: the number of shards is the input's text bytes over ``write.target_shard_bytes``.
* Files: each task writes whole shards with pyarrow (zstd), cutting row groups when the buffered text reaches
  ``write.row_group_bytes``, so row-group boundaries depend only on the rows, not on Spark's batch sizes.
  Spark's own Parquet writer would choose file names, row groups and metadata itself.
* Manifest: each shard's path (relative), rows, bytes, SHA-256, rows and tokens by part; the output's
  composition (token shares targeted by ``mix`` and achieved), plus the run's config. Only small per-shard rows
  reach the driver.
"""

from __future__ import annotations

import hashlib
import json
import math
import posixpath
from collections import Counter
from typing import Iterable, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from corpus import __version__, schema
from corpus.config import WriteSection
from corpus.io import files
from corpus.io.files import filesystem

STAGE = "write"
MANIFEST = "manifest.json"

RESULT_SCHEMA = pa.schema([
    pa.field("shard", pa.int64()), pa.field("path", pa.string()), pa.field("rows", pa.int64()),
    pa.field("bytes", pa.int64()), pa.field("sha256", pa.string()),
    pa.field("rows_by_part", pa.map_(pa.string(), pa.int64())),
    pa.field("tokens_by_part", pa.map_(pa.string(), pa.int64())),
])


def shard_name(name: str, output: str, index: int) -> str:
    return f"{name}-{output}-{index:05d}.parquet"


def shard_count(total_text_bytes: int, rows: int, target: int) -> int:
    if rows == 0:
        return 0
    return max(1, min(rows, math.ceil(total_text_bytes / max(1, target))))


class ShardWriter:
    """Writes the rows of one shard, in order, cutting row groups by text bytes."""

    def __init__(self, path: str, cfg: WriteSection) -> None:
        self.path = path
        self.cfg = cfg
        self.arrow = schema.document().arrow
        fs, inner = filesystem(path)
        self._sink = fs.open_output_stream(inner)
        compression = None if cfg.compression == "none" else cfg.compression
        level = cfg.compression_level if cfg.compression == "zstd" else None
        self._writer = pq.ParquetWriter(self._sink, self.arrow, compression=compression, compression_level=level)
        self._buffer: list[pa.Table] = []
        self._buffered_bytes = 0
        self.rows = 0
        self.parts: Counter[str] = Counter()
        self.tokens: Counter[str] = Counter()

    def add(self, table: pa.Table) -> None:
        """Append rows; flush row groups at the deterministic cut points."""
        sizes = pa.compute.binary_length(table.column("text")).to_pylist()
        start = 0
        for i, size in enumerate(sizes):
            self._buffered_bytes += size
            if self._buffered_bytes >= int(self.cfg.row_group_bytes):
                self._buffer.append(table.slice(start, i + 1 - start))
                self._flush()
                start = i + 1
        if start < table.num_rows:
            self._buffer.append(table.slice(start))
        self.rows += table.num_rows
        parts = table.column("part").to_pylist()
        self.parts.update(parts)
        for part, n in zip(parts, table.column("token_count").to_pylist()):
            self.tokens[part] += n or 0

    def _flush(self) -> None:
        if self._buffer:
            group = pa.concat_tables(self._buffer).combine_chunks()
            if group.num_rows:
                self._writer.write_table(group, row_group_size=group.num_rows)
        self._buffer, self._buffered_bytes = [], 0

    def close(self) -> tuple[int, str]:
        """Finish the file; return (bytes, sha256)."""
        self._flush()
        self._writer.close()
        self._sink.close()
        fs, inner = filesystem(self.path)
        digest = hashlib.sha256()
        size = 0
        with fs.open_input_stream(inner) as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
                size += len(chunk)
        return size, digest.hexdigest()


def write_partition(batches: Iterable[pa.RecordBatch], out_dir: str, name: str, output: str, cfg: WriteSection
                    ) -> Iterator[pa.RecordBatch]:
    """mapInArrow function: rows sorted by (_shard, _key, ...) → one result row per shard written."""
    arrow = schema.document().arrow
    writer: ShardWriter | None = None
    current = None
    results = []

    def finish() -> None:
        nbytes, digest = writer.close()
        results.append({"shard": current, "path": posixpath.basename(writer.path), "rows": writer.rows,
                        "bytes": nbytes, "sha256": digest, "rows_by_part": sorted(writer.parts.items()),
                        "tokens_by_part": sorted(writer.tokens.items())})

    for batch in batches:
        table = pa.Table.from_batches([batch])
        shards = table.column("_shard").to_pylist()
        docs = table.select(arrow.names).cast(arrow)
        start = 0
        for i in range(1, len(shards) + 1):
            if i == len(shards) or shards[i] != shards[start]:
                if shards[start] != current:
                    if writer is not None:
                        finish()
                    current = shards[start]
                    writer = ShardWriter(posixpath.join(out_dir, shard_name(name, output, current)), cfg)
                writer.add(docs.slice(start, i - start))
                start = i
    if writer is not None:
        finish()
    if results:
        yield pa.RecordBatch.from_pylist(results, schema=RESULT_SCHEMA)


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


def write_output(ctx, rows, output: str, composition_target: dict) -> dict:
    """Shards and manifest of one output from ``rows`` (documents with a ``_copy`` column); returns the manifest."""
    from pyspark.sql import functions as F
    from pyspark.sql.pandas.types import from_arrow_schema

    from corpus.ids import dumps
    from corpus.schema import validate_json

    cfg: WriteSection = ctx.config.write
    spark = ctx.spark
    seed, name = ctx.config.run.seed, ctx.config.run.name
    out_dir = posixpath.join(ctx.tmp, output)
    files.make_dirs(out_dir)
    spark.sparkContext.setJobDescription(f"write {output}: measure")
    totals = rows.agg(F.count("*").alias("rows"), F.sum(F.octet_length("text")).alias("bytes")).first()
    rows_in, text_bytes = int(totals["rows"]), int(totals["bytes"] or 0)
    n = shard_count(text_bytes, rows_in, int(cfg.target_shard_bytes))
    results: list[dict] = []
    if n:
        key = F.sha2(F.concat_ws(":", F.lit(str(seed)), F.lit(output), F.col("id"), F.col("_copy").cast("string")),
                     256)
        keyed = rows.withColumn("_key", key).withColumn(
            "_shard", F.pmod(F.conv(F.substring("_key", 1, 15), 16, 10).cast("long"), F.lit(n)))
        tasks = min(n, 4 * spark.sparkContext.defaultParallelism)
        ordered = keyed.repartition(tasks, "_shard").sortWithinPartitions("_shard", "_key", "id", "source",
                                                                           "metadata")
        spark.sparkContext.setJobDescription(f"write {output}: {n} shards")
        written = ordered.mapInArrow(lambda it: write_partition(it, out_dir, name, output, cfg),
                                     from_arrow_schema(RESULT_SCHEMA))
        results = sorted((r.asDict() for r in written.collect()), key=lambda r: r["shard"])  # one row per shard
    by_part: Counter[str] = Counter()
    tokens: Counter[str] = Counter()
    shards = []
    for r in results:
        parts, toks = dict(r["rows_by_part"]), dict(r["tokens_by_part"])
        by_part.update(parts)
        tokens.update(toks)
        shards.append({"path": r["path"], "rows": r["rows"], "bytes": r["bytes"], "sha256": r["sha256"],
                       "tokens": sum(toks.values()), "rows_by_part": dict(sorted(parts.items())),
                       "tokens_by_part": dict(sorted(toks.items()))})
    total_tokens = sum(tokens.values())
    manifest = {
        "schema": "manifest",
        "schema_version": schema.load("manifest").version,
        "document_schema_version": schema.document().version,
        "producer": f"corpus {__version__}",
        "name": name,
        "output": output,
        "rows": sum(s["rows"] for s in shards),
        "bytes": sum(s["bytes"] for s in shards),
        "tokens": total_tokens,
        "tokenizer": ctx.config.redact.tokenizer,
        "rows_by_part": dict(sorted(by_part.items())),
        "tokens_by_part": dict(sorted(tokens.items())),
        "composition": {"target": dict(sorted(composition_target.items())),
                        "achieved": {p: round(t / total_tokens, 6) for p, t in sorted(tokens.items())}
                        if total_tokens else {}},
        "shards": shards,
        "write": {**cfg.model_dump(mode="json"), "seed": seed, "shards_planned": n},
        "config": ctx.config.to_dict(),
    }
    validate_json(manifest, schema.load("manifest"))
    files.write_text(posixpath.join(out_dir, MANIFEST), json.dumps(json.loads(dumps(manifest)), indent=2) + "\n")
    return manifest


def histograms(docs) -> dict:
    """Token-length (log2 buckets) histograms by part and score histograms (0.05 bins) of the documents, for the
    report: a few hundred aggregate rows."""
    from pyspark.sql import functions as F

    length = docs.where(F.col("token_count") > 0).groupBy(
        "part", F.floor(F.log2(F.col("token_count"))).cast("int").alias("b")).count().collect()
    out: dict = {"tokens_log2": {}}
    for r in length:
        out["tokens_log2"].setdefault(r["part"], {})[int(r["b"])] = int(r["count"])
    for col in ("lang_score", "agent_score"):
        rows = docs.where(F.col(col).isNotNull()).groupBy(
            F.least(F.floor(F.col(col) * 20), F.lit(19)).cast("int").alias("b")).count().collect()
        out[col] = {int(r["b"]): int(r["count"]) for r in rows}
    out["tokens_log2"] = {p: dict(sorted(v.items())) for p, v in sorted(out["tokens_log2"].items())}
    return {k: (dict(sorted(v.items())) if k != "tokens_log2" else v) for k, v in out.items()}


def build(ctx):
    """Stage builder: the shards of every output, each with its manifest; the dataset card beside them."""
    from pyspark.sql import functions as F

    from corpus.stage import Outcome, read_documents, read_stats

    doc_inputs, mix = split_inputs(ctx.inputs)
    docs = read_documents(ctx.spark, doc_inputs)
    manifests = {}
    if mix is None:
        manifests[OUTPUT_ALL] = write_output(ctx, docs.withColumn("_copy", F.lit(1)), OUTPUT_ALL, {})
    else:
        from corpus.mix.stage import selection_path

        mix_stats = read_stats(mix)["extra"]["outputs"]
        selection = ctx.spark.read.parquet(selection_path(mix))
        for output, info in mix_stats.items():
            chosen = selection.where(F.col("output") == output).select("id", "copies")
            rows = docs.join(chosen, "id").withColumn("_copy", F.explode(F.sequence(F.lit(1), F.col("copies")))) \
                .drop("copies")
            manifests[output] = write_output(ctx, rows, output, info["target"])
    ctx.spark.sparkContext.setJobDescription("write: histograms and counts")
    rows_in = docs.count()
    extra = {"outputs": {o: {"rows": m["rows"], "tokens": m["tokens"], "shards": len(m["shards"]),
                             "bytes": m["bytes"], "composition": m["composition"]} for o, m in manifests.items()},
             "histograms": histograms(docs)}
    from corpus.output import card

    card.write(ctx, manifests)
    return Outcome(rows_in=rows_in, rows_out=rows_in, extra=extra)
