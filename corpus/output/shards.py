"""The ``write`` stage: Parquet shards and ``manifest.json``, byte-identical for the same input and config.

* Order: every document gets a seeded key, ``sha256("<seed>:<id>")``; the shard is that key modulo the number of
  shards, and rows inside a shard are sorted by (key, id, ...). This is a deterministic global shuffle that
  does not depend on how Spark partitioned the data.
* Size: the number of shards is the input's text bytes over ``write.target_shard_bytes``.
* Files: each task writes whole shards with pyarrow (zstd), cutting row groups when the buffered text reaches
  ``write.row_group_bytes``, so row-group boundaries depend only on the rows, not on Spark's batch sizes.
  Spark's own Parquet writer would choose file names, row groups and metadata itself.
* Manifest: each shard's path (relative), rows, bytes, SHA-256 and rows by part, plus the run's config; only
  small per-shard rows reach the driver.
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
from corpus.io.files import filesystem

STAGE = "write"
MANIFEST = "manifest.json"

RESULT_SCHEMA = pa.schema([
    pa.field("shard", pa.int64()), pa.field("path", pa.string()), pa.field("rows", pa.int64()),
    pa.field("bytes", pa.int64()), pa.field("sha256", pa.string()),
    pa.field("rows_by_part", pa.map_(pa.string(), pa.int64())),
])


def shard_name(name: str, index: int) -> str:
    return f"{name}-{index:05d}.parquet"


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
        self.parts.update(table.column("part").to_pylist())

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


def write_partition(batches: Iterable[pa.RecordBatch], out_dir: str, name: str, cfg: WriteSection
                    ) -> Iterator[pa.RecordBatch]:
    """mapInArrow function: rows sorted by (_shard, _key, ...) → one result row per shard written."""
    arrow = schema.document().arrow
    writer: ShardWriter | None = None
    current = None
    results = []

    def finish() -> None:
        nbytes, digest = writer.close()
        results.append({"shard": current, "path": posixpath.basename(writer.path), "rows": writer.rows,
                        "bytes": nbytes, "sha256": digest, "rows_by_part": sorted(writer.parts.items())})

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
                    writer = ShardWriter(posixpath.join(out_dir, shard_name(name, current)), cfg)
                writer.add(docs.slice(start, i - start))
                start = i
    if writer is not None:
        finish()
    if results:
        yield pa.RecordBatch.from_pylist(results, schema=RESULT_SCHEMA)


def build(ctx):
    """Stage builder: writes the shards into the stage folder and returns the outcome."""
    from pyspark.sql import functions as F
    from pyspark.sql.pandas.types import from_arrow_schema

    from corpus.ids import dumps
    from corpus.schema import validate_json
    from corpus.stage import Outcome, read_documents

    cfg: WriteSection = ctx.config.write
    spark = ctx.spark
    seed = ctx.config.run.seed
    name = ctx.config.run.name
    docs = read_documents(spark, ctx.inputs)
    spark.sparkContext.setJobDescription("write: measure input")
    totals = docs.agg(F.count("*").alias("rows"), F.sum(F.octet_length("text")).alias("bytes")).first()
    rows_in, text_bytes = int(totals["rows"]), int(totals["bytes"] or 0)
    n = shard_count(text_bytes, rows_in, int(cfg.target_shard_bytes))
    results: list[dict] = []
    if n:
        key = F.sha2(F.concat(F.lit(f"{seed}:"), F.col("id")), 256)
        keyed = docs.withColumn("_key", key).withColumn(
            "_shard", F.pmod(F.conv(F.substring("_key", 1, 15), 16, 10).cast("long"), F.lit(n)))
        tasks = min(n, 4 * spark.sparkContext.defaultParallelism)
        ordered = keyed.repartition(tasks, "_shard").sortWithinPartitions("_shard", "_key", "id", "source",
                                                                           "metadata")
        out_dir = ctx.tmp
        spark.sparkContext.setJobDescription(f"write: {n} shards")
        written = ordered.mapInArrow(lambda it: write_partition(it, out_dir, name, cfg),
                                     from_arrow_schema(RESULT_SCHEMA))
        results = sorted((r.asDict() for r in written.collect()), key=lambda r: r["shard"])  # one row per shard
    by_part: Counter[str] = Counter()
    shards = []
    for r in results:
        parts = dict(r["rows_by_part"])
        by_part.update(parts)
        shards.append({"path": r["path"], "rows": r["rows"], "bytes": r["bytes"], "sha256": r["sha256"],
                       "rows_by_part": dict(sorted(parts.items()))})
    manifest = {
        "schema": "manifest",
        "schema_version": schema.load("manifest").version,
        "document_schema_version": schema.document().version,
        "producer": f"corpus {__version__}",
        "name": name,
        "rows": sum(s["rows"] for s in shards),
        "bytes": sum(s["bytes"] for s in shards),
        "rows_by_part": dict(sorted(by_part.items())),
        "shards": shards,
        "write": {**cfg.model_dump(mode="json"), "seed": seed, "shards_planned": n},
        "config": ctx.config.to_dict(),
    }
    validate_json(manifest, schema.load("manifest"))
    from corpus.io.files import write_text

    write_text(posixpath.join(ctx.tmp, MANIFEST), json.dumps(json.loads(dumps(manifest)), indent=2) + "\n")
    return Outcome(rows_in=rows_in, rows_out=manifest["rows"],
                   extra={"shards": len(shards), "bytes": manifest["bytes"], "text_bytes": text_bytes})
