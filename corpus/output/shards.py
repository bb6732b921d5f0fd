"""The ``write`` stage: Parquet shards and ``manifest.json``, byte-identical for the same input and config.

* Outputs: one folder per mix output (``write/stage1/``, ``write/stage2/``; ``write/all/`` when ``mix`` is off),
  each with its shards and ``manifest.json``; the documents of an output are those ``mix`` selected, each
  repeated as many times as it chose (``copies``).
* Order: every row gets a seeded key, ``sha256("<seed>:<output>:<id>:<copy>")``; shards are equal ranges of the
  key's first 60 bits, and rows inside a shard are sorted by (key, id, ...). This is a deterministic global shuffle
  that does not depend on how Spark partitioned the data.
* Size: the number of shards is the output's tokens over ``write.target_shard_tokens`` (from the mix stats, or
  one aggregate over ``token_count``: the text is not read to plan the shards). Each shard is one task, so an
  output's write runs on at most that many cores.
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
import logging
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
from corpus.spark import datasets

STAGE = "write"
log = logging.getLogger("corpus")
MANIFEST = "manifest.json"

RESULT_SCHEMA = pa.schema([
    pa.field("shard", pa.int64()), pa.field("path", pa.string()), pa.field("rows", pa.int64()),
    pa.field("bytes", pa.int64()), pa.field("sha256", pa.string()),
    pa.field("rows_by_part", pa.map_(pa.string(), pa.int64())),
    pa.field("tokens_by_part", pa.map_(pa.string(), pa.int64())),
])


def shard_name(name: str, output: str, index: int) -> str:
    return f"{name}-{output}-{index:05d}.parquet"


def shard_count(total_tokens: int, rows: int, target: int) -> int:
    if rows == 0:
        return 0
    return max(1, min(rows, math.ceil(total_tokens / max(1, target))))


def measure(rows) -> tuple[int, int]:
    """(rows, tokens) of a DataFrame of documents: an aggregate of ``token_count`` alone, unless some lack one
    (then their text is measured: bytes / 4)."""
    from pyspark.sql import functions as F

    first = rows.agg(F.count("*").alias("rows"), F.sum("token_count").alias("tokens"),
                     F.count(F.when(F.col("token_count").isNull(), 1)).alias("missing")).first()
    if not first["missing"]:
        return int(first["rows"]), int(first["tokens"] or 0)
    estimated = rows.agg(F.sum(F.coalesce("token_count", F.ceil(F.octet_length("text") / 4))).alias("t")).first()
    return int(first["rows"]), int(estimated["t"] or 0)


class _HashingSink:
    """A write-only file that hashes what passes through, so a shard's SHA-256 needs no second read."""

    def __init__(self, sink) -> None:
        self._sink = sink
        self.digest = hashlib.sha256()
        self.size = 0
        self.closed = False

    def write(self, data) -> int:
        view = memoryview(data)
        self.digest.update(view)
        self.size += view.nbytes
        self._sink.write(view)
        return view.nbytes

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        self._sink.flush()

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        if not self.closed:
            self._sink.close()
            self.closed = True


class ShardWriter:
    """Writes the rows of one shard, in order, cutting row groups by text bytes."""

    def __init__(self, path: str, cfg: WriteSection) -> None:
        self.path = path
        self.cfg = cfg
        self.arrow = schema.document().arrow
        fs, inner = filesystem(path)
        self._sink = _HashingSink(fs.open_output_stream(inner))
        compression = None if cfg.compression == "none" else cfg.compression
        level = cfg.compression_level if cfg.compression == "zstd" else None
        self._writer = pq.ParquetWriter(self._sink, self.arrow, compression=compression, compression_level=level)
        self._buffer: list[pa.Table] = []
        self._buffered_bytes = 0
        self.rows = 0
        self.parts: Counter[str] = Counter()
        self.tokens: Counter[str] = Counter()

    def add(self, table: pa.Table) -> None:
        """Append rows; flush row groups at the deterministic cut points (the row at which the buffered text
        reaches ``row_group_bytes``), found with a cumulative sum rather than a loop over rows."""
        import numpy as np

        limit = int(self.cfg.row_group_bytes)
        cum = np.cumsum(pa.compute.binary_length(table.column("text")).to_numpy(zero_copy_only=False)) \
            if table.num_rows else np.zeros(0)
        start, consumed = 0, 0  # rows already placed; text bytes of those rows
        while start < table.num_rows:
            need = limit - self._buffered_bytes  # bytes still to buffer before a cut
            cut = int(np.searchsorted(cum, consumed + need, side="left"))  # first row reaching the limit
            if cut >= table.num_rows:
                self._buffer.append(table.slice(start))
                self._buffered_bytes += int(cum[-1]) - consumed
                break
            self._buffer.append(table.slice(start, cut + 1 - start))
            self._flush()
            consumed = int(cum[cut])
            start = cut + 1
        self.rows += table.num_rows
        sums = table.group_by("part").aggregate([("token_count", "sum"), ("part", "count")])
        for part, tokens, count in zip(*(sums.column(c).to_pylist() for c in ("part", "token_count_sum",
                                                                              "part_count"))):
            self.parts[part] += count
            self.tokens[part] += tokens or 0

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
        return self._sink.size, self._sink.digest.hexdigest()


def write_partition(batches: Iterable[pa.RecordBatch], out_dir: str, name: str, output: str, cfg: WriteSection
                    ) -> Iterator[pa.RecordBatch]:
    """mapInArrow function: rows sorted by key, each shard's rows together → one result row per shard written."""
    arrow = schema.document().arrow
    writer: ShardWriter | None = None
    current = None
    results = []

    def finish() -> None:
        nbytes, digest = writer.close()
        results.append({"shard": current, "path": posixpath.basename(writer.path), "rows": writer.rows,
                        "bytes": nbytes, "sha256": digest, "rows_by_part": sorted(writer.parts.items()),
                        "tokens_by_part": sorted(writer.tokens.items())})

    import numpy as np

    for batch in batches:
        if not batch.num_rows:
            continue
        table = pa.Table.from_batches([batch])
        shards = table.column("_shard").to_numpy()
        docs = table.select(arrow.names).cast(arrow)
        starts = np.concatenate([[0], np.flatnonzero(np.diff(shards)) + 1, [len(shards)]])  # runs of one shard
        for start, end in zip(starts[:-1], starts[1:]):
            shard = int(shards[start])
            if shard != current:
                if writer is not None:
                    finish()
                current = shard
                writer = ShardWriter(posixpath.join(out_dir, shard_name(name, output, current)), cfg)
            writer.add(docs.slice(int(start), int(end - start)))
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


def write_output(ctx, rows, output: str, composition_target: dict, size: tuple[int, int] | None = None) -> dict:
    """Shards and manifest of one output from ``rows`` (documents with a ``_copy`` column); returns the manifest.
    ``size``: (rows, tokens) when known (from mix), else measured."""
    from pyspark.sql import functions as F
    from pyspark.sql.pandas.types import from_arrow_schema

    from corpus.ids import dumps
    from corpus.schema import validate_json

    cfg: WriteSection = ctx.config.write
    spark = ctx.spark
    seed, name = ctx.config.run.seed, ctx.config.run.name
    out_dir = posixpath.join(ctx.tmp, output)
    files.make_dirs(out_dir)
    import time

    t0 = time.perf_counter()
    spark.sparkContext.setJobDescription(f"write {output}: measure")
    rows_in, tokens_in = size if size is not None else measure(rows)
    n = shard_count(tokens_in, rows_in, int(cfg.target_shard_tokens))
    results: list[dict] = []
    if n:
        key = F.sha2(F.concat_ws(":", F.lit(str(seed)), F.lit(output), F.col("id"), F.col("_copy").cast("string")),
                     256)
        # _k60: the key's first 60 bits. Shards are ranges of it, so sorting by it alone groups each shard's rows
        # together, and a long as the first sort column lets Spark radix-sort on it (a first column that ties
        # within a task, such as the shard number, would leave every comparison to the strings)
        k60 = F.conv(F.substring("_key", 1, 15), 16, 10).cast("long")
        keyed = rows.withColumn("_key", key).withColumn("_k60", k60).withColumn(
            "_shard", F.floor(F.col("_k60") / F.lit(float(1 << 60)) * F.lit(n)).cast("long"))
        tasks = min(n, 4 * spark.sparkContext.defaultParallelism)
        ordered = keyed.repartition(tasks, "_shard").sortWithinPartitions("_k60", "_key", "id", "source",
                                                                           "metadata")
        spark.sparkContext.setJobDescription(f"write {output}: {n} shards")
        written = ordered.mapInArrow(lambda it: write_partition(it, out_dir, name, output, cfg),
                                     from_arrow_schema(RESULT_SCHEMA))
        t1 = time.perf_counter()
        # bigger Arrow batches than the per-record stages use: the writer only slices them (2.3 s instead of 3.6 s
        # to hand 150 MB of text to Python at 4,096 rows instead of 256); the file bytes do not depend on it
        key_conf = "spark.sql.execution.arrow.maxRecordsPerBatch"
        before = spark.conf.get(key_conf)
        spark.conf.set(key_conf, str(max(int(before), cfg.arrow_batch_rows)))
        try:
            results = sorted((r.asDict() for r in written.collect()), key=lambda r: r["shard"])  # a row per shard
        finally:
            spark.conf.set(key_conf, before)
        log.info("write %s: measured in %.1fs, %d shards in %.1fs", output, t1 - t0, n, time.perf_counter() - t1)
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


def histograms(docs) -> tuple[int, dict]:
    """(documents, histograms): token length (log2 buckets) by part, and the language and agent scores (0.05
    bins), for the report. One aggregation over four small columns; at most a few thousand rows reach the driver."""
    from pyspark.sql import functions as F

    def score_bin(col: str):
        return F.least(F.floor(F.col(col) * 20), F.lit(19)).cast("int").alias(col)

    tokens = F.when(F.col("token_count") > 0, F.floor(F.log2("token_count"))).cast("int").alias("tokens")
    rows = docs.groupBy("part", tokens, score_bin("lang_score"), score_bin("agent_score")).count().collect()
    out: dict = {"tokens_log2": {}, "lang_score": {}, "agent_score": {}}
    total = 0
    for r in rows:
        n = int(r["count"])
        total += n
        if r["tokens"] is not None:
            by_part = out["tokens_log2"].setdefault(r["part"], {})
            by_part[r["tokens"]] = by_part.get(r["tokens"], 0) + n
        for col in ("lang_score", "agent_score"):
            if r[col] is not None:
                out[col][r[col]] = out[col].get(r[col], 0) + n
    out["tokens_log2"] = {p: dict(sorted(v.items())) for p, v in sorted(out["tokens_log2"].items())}
    return total, {k: (dict(sorted(v.items())) if k != "tokens_log2" else v) for k, v in out.items()}


def build(ctx):
    """Stage builder: the shards of every output, each with its manifest; the dataset card beside them."""
    from pyspark.sql import functions as F

    from corpus.stage import Outcome, read_documents, read_stats

    import time

    cfg: WriteSection = ctx.config.write
    doc_inputs, mix = split_inputs(ctx.inputs)
    docs = read_documents(ctx.spark, doc_inputs)
    manifests = {}
    t0 = time.perf_counter()
    if mix is None:
        manifests[OUTPUT_ALL] = write_output(ctx, docs.withColumn("_copy", F.lit(1)), OUTPUT_ALL, {})
    else:
        from corpus.mix.stage import selection_path

        mix_stats = read_stats(mix)["extra"]["outputs"]
        selection = datasets.read(ctx.spark, selection_path(mix))
        for output, info in mix_stats.items():
            chosen = selection.where(F.col("output") == output).select("id", "copies")
            if info["documents"] <= cfg.broadcast_selection_rows:  # ids and copies only: join without shuffling text
                chosen = F.broadcast(chosen)
            rows = docs.join(chosen, "id").withColumn("_copy", F.explode(F.sequence(F.lit(1), F.col("copies")))) \
                .drop("copies")
            manifests[output] = write_output(ctx, rows, output, info["target"], (info["rows"], info["tokens"]))
    t1 = time.perf_counter()
    ctx.spark.sparkContext.setJobDescription("write: histograms and counts")
    rows_in, hists = histograms(docs)
    extra = {"outputs": {o: {"rows": m["rows"], "tokens": m["tokens"], "shards": len(m["shards"]),
                             "bytes": m["bytes"], "composition": m["composition"]} for o, m in manifests.items()},
             "histograms": hists}
    extra["seconds"] = {"outputs": round(t1 - t0, 2), "summary": round(time.perf_counter() - t1, 2)}
    from corpus.output import card

    card.write(ctx, manifests)
    return Outcome(rows_in=rows_in, rows_out=rows_in, extra=extra)
