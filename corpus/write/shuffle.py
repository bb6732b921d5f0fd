"""The ``write`` stage's global shuffle, done by its own tasks through scratch Arrow files.

Every row of an output gets a seeded 64-bit key, a hash of seed, output, id and copy number (:func:`row_keys`). Its
shard is the key's range (``n`` equal ranges), and a shard's rows are in key order (ties, which need equal 64-bit
keys: the row's position in the input). Nothing depends on how the tasks were cut, so the shards are the same
on any cluster.

Two Spark jobs, in which only file names and counts pass through the JVM:

1. **scatter**: one task per run of the documents' row groups (:func:`corpus.spark.datasets.row_groups`).
   pyarrow reads them. For each output, the task computes each document's copies by the mix plan's rule of its
   id (:func:`corpus.mix.plan.copies_by_rule`: no join with the selection), each copy's key and shard, and
   appends the rows to ONE Arrow IPC file, in record batches that each hold rows of one (output, shard). It
   returns, per (output, shard), the numbers of those batches.
2. **gather**: one task per shard, the largest first. It reads its batches from every scatter file (memory-mapped
   when local, by range on an object store), sorts them by key and writes the shard (:class:`ShardWriter`).

Why not Spark's shuffle (``repartition`` + ``sortWithinPartitions``, which this replaced): it copies every text
into the JVM (decoding the Parquet), through its shuffle files and sort, and back to Python as Arrow for the
writer. On the default run (211,138 rows, 317 MB of text) that took 6.6 s around a 1.4 s write, the hand-over to
Python alone ~3 s. This file's work is what Spark's sort-based shuffle does (a file per map task, read by range
per reducer), kept in Arrow.

The scratch files go in the stage's temporary folder, on the output's file system (a cluster's tasks need
shared storage, which executors' local disks are not), and are deleted once the shards are written. On an
object store they cost one more upload and download of the text (``write.scratch_compression`` shrinks that).
"""

from __future__ import annotations

import logging
import posixpath
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from corpus import schema
from corpus.io import files

log = logging.getLogger("corpus")
KEY, ORD = "_key", "_ord"

BIN = pa.struct(
    [("part", pa.string()), ("tokens", pa.int32()), ("lang", pa.int32()), ("agent", pa.int32()), ("n", pa.int64())]
)
# a scatter task's result rows: one per (output, shard) it routed rows to (where, how many), and one with a null
# output holding the counts of its documents by part and histogram bins (``bins``), for the report
SCATTERED = pa.schema(
    [
        pa.field("output", pa.string()),
        pa.field("shard", pa.int64()),
        pa.field("path", pa.string()),
        pa.field("batches", pa.list_(pa.int32())),
        pa.field("rows", pa.int64()),
        pa.field("bytes", pa.int64()),
        pa.field("bins", pa.list_(BIN)),
    ]
)


@dataclass(frozen=True)
class OutputPlan:
    """One output to shard: its name, shard count and the mix plan's rule (``whole`` copies by part and the
    threshold on ``u``; ``whole=None``: every document once, when mix is off)."""

    name: str
    shards: int
    whole: dict[str, int] | None = None
    thresholds: dict[str, float] = field(default_factory=dict)


def scratch_schema() -> pa.Schema:
    """A scratch row: a document once per shard its copies land in, with the keys of those copies (KEY) and
    its position in the input (ORD)."""
    return schema.document().arrow.append(pa.field(KEY, pa.list_(pa.uint64()))).append(pa.field(ORD, pa.uint64()))


def copies(plan: OutputPlan, words: np.ndarray, parts: np.ndarray) -> np.ndarray:
    """Copies of each document in the output (int64; 0 = not chosen); ``words``: its seeded hash words."""
    from corpus.mix.plan import copies_by_rule
    from corpus.mix.stage import seeded_u

    if plan.whole is None:
        return np.ones(len(words), np.int64)
    return copies_by_rule(plan.whole, plan.thresholds, parts, seeded_u(words))


def row_keys(words: np.ndarray, copy_numbers: np.ndarray) -> np.ndarray:
    """uint64 keys of rows: splitmix64's finalizer over word 1 of the document's seeded hash
    (``sha256("<seed>:<output>:<id>")``, :func:`corpus.mix.stage.seeded_words`) mixed with the copy number.
    One SHA-256 per document and output serves both mix's rule and every copy's key; the finalizer (Steele et
    al. 2014) is a bijection of 64 bits with full avalanche, so the keys of a document's copies are as good as
    independent, and it runs as numpy over whole batches."""
    with np.errstate(over="ignore"):
        z = words[:, 1] ^ (copy_numbers.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15))
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def shard_of(keys: np.ndarray, n: int) -> np.ndarray:
    """Equal key ranges: floor(key × n / 2^64), in integers (the top 32 bits × n fit in 64 bits for n < 2^32)."""
    return ((keys >> np.uint64(32)) * np.uint64(n)) >> np.uint64(32)


def bins(table: pa.Table) -> pa.Table:
    """Documents counted by (part, floor(log2(token_count)), lang_score and agent_score in 0.05 bins); a null
    bin for a missing value or no tokens."""

    def score_bin(col: str):
        # skip_nulls=False: a missing score stays missing (Spark's least(), used before, put it in the top bin)
        binned = pc.min_element_wise(pc.floor(pc.multiply(table.column(col), 20)), 19, skip_nulls=False)
        return binned.cast(pa.int32())

    tokens = table.column("token_count")
    keyed = pa.table(
        {
            "part": table.column("part"),
            "tokens": pc.if_else(pc.greater(tokens, 0), pc.floor(pc.log2(tokens)), None).cast(pa.int32()),
            "lang": score_bin("lang_score"),
            "agent": score_bin("agent_score"),
        }
    )
    return (
        keyed.group_by(["part", "tokens", "lang", "agent"])
        .aggregate([([], "count_all")])
        .rename_columns(["part", "tokens", "lang", "agent", "n"])
    )


def histograms(rows: list[dict]) -> tuple[int, dict]:
    """(documents, histograms for the report) from the scatter tasks' ``bins``: token length (log2 buckets) by
    part, and the language and agent scores (0.05 bins)."""
    out: dict = {"tokens_log2": {}, "lang_score": {}, "agent_score": {}}
    total = 0
    for b in rows:
        total += b["n"]
        if b["tokens"] is not None:
            by_part = out["tokens_log2"].setdefault(b["part"], {})
            by_part[b["tokens"]] = by_part.get(b["tokens"], 0) + b["n"]
        for col, name in (("lang", "lang_score"), ("agent", "agent_score")):
            if b[col] is not None:
                out[name][b[col]] = out[name].get(b[col], 0) + b["n"]
    out["tokens_log2"] = {p: dict(sorted(v.items())) for p, v in sorted(out["tokens_log2"].items())}
    return total, {k: (dict(sorted(v.items())) if k != "tokens_log2" else v) for k, v in out.items()}


class _ScatterFile:
    """A scatter task's one IPC file: rows buffered by (output, shard) and written, grouped by (output, shard),
    whenever the buffers reach ``flush_bytes`` together, so a task's memory stays bounded however many shards
    there are. Each record batch holds rows of one (output, shard); ``batches`` numbers them."""

    def __init__(self, path: str, compression: str | None, flush_bytes: int) -> None:
        self.path = path
        self.compression = compression
        self.flush_bytes = flush_bytes
        self.arrow = scratch_schema()
        self._writer = None
        self._sink = None
        self._buffers: dict[tuple[str, int], list[pa.Table]] = {}
        self._buffered = 0
        self.batches: dict[tuple[str, int], list[int]] = {}
        self.rows: Counter[tuple[str, int]] = Counter()
        self.bytes: Counter[tuple[str, int]] = Counter()
        self._written = 0

    def add(self, output: str, shard: int, table: pa.Table) -> None:
        key = (output, shard)
        self._buffers.setdefault(key, []).append(table)
        size = table.nbytes
        self._buffered += size
        self.rows[key] += pc.sum(pc.list_value_length(table.column(KEY))).as_py() or 0  # copies, not documents
        self.bytes[key] += size
        if self._buffered >= self.flush_bytes:
            self.flush()

    def flush(self) -> None:
        if not self._buffers:
            return
        if self._writer is None:
            fs, inner = files.filesystem(self.path)
            self._sink = fs.open_output_stream(inner)
            self._writer = pa.ipc.new_file(
                self._sink, self.arrow, options=pa.ipc.IpcWriteOptions(compression=self.compression)
            )
        for key in sorted(self._buffers):
            for table in self._buffers[key]:  # slices of the task's tables, written as they are (no copy)
                for batch in table.to_batches():
                    self._writer.write_batch(batch)
                    self.batches.setdefault(key, []).append(self._written)
                    self._written += 1
        self._buffers, self._buffered = {}, 0

    def close(self) -> list[dict]:
        """Write what is left; the task's result rows."""
        self.flush()
        if self._writer is not None:
            self._writer.close()
            self._sink.close()
        return [
            {
                "output": o,
                "shard": s,
                "path": self.path,
                "batches": self.batches[(o, s)],
                "rows": self.rows[(o, s)],
                "bytes": self.bytes[(o, s)],
            }
            for o, s in sorted(self.batches)
        ]


def copy_locations(
    plan: OutputPlan, seed: int, ids: list[str], parts: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where ``write`` puts the copies of documents in ``plan``'s output: (the document's index in ``ids``, the
    shard, the row key) of every copy, a document's copies together. A function of the seed, the plan and each
    document's id and part alone: ``export`` recomputes it from the manifest to find every shard a document is in."""
    from corpus.mix.stage import seeded_words

    words = np.zeros((len(ids), 2), np.uint64)
    hashed = np.ones(len(ids), bool) if plan.whole is None else np.isin(parts, list(plan.whole))
    words[hashed] = seeded_words(seed, plan.name, [i for i, h in zip(ids, hashed) if h])
    n_copies = np.where(hashed, copies(plan, words, parts), 0)  # a part the plan omits: no copies
    rows = np.repeat(np.arange(len(ids)), n_copies)
    starts = np.repeat(np.cumsum(n_copies) - n_copies, n_copies)
    keys = row_keys(words[rows], np.arange(len(rows)) - starts + 1)  # copy numbers 1..copies
    return rows, shard_of(keys, plan.shards), keys


def routed(
    plan: OutputPlan, seed: int, table: pa.Table, ids: list[str], parts: np.ndarray, position: np.ndarray
) -> Iterator[tuple[int, pa.Table]]:
    """One row group's rows in one output: (shard, its rows — each copy once, with KEY and ORD — by key)."""
    rows, shards, keys = copy_locations(plan, seed, ids, parts)
    if not len(rows):
        return
    # a document's copies that land in one shard travel as one scratch row with their keys: its text is written
    # once per shard, not once per copy (stage2 of the default run: 198,655 copies, ~22% less text to move)
    order = np.lexsort((keys, rows, shards))
    shards, rows, keys = shards[order], rows[order], keys[order]
    first = np.flatnonzero(np.concatenate([[True], (shards[1:] != shards[:-1]) | (rows[1:] != rows[:-1])]))
    key_lists = pa.ListArray.from_arrays(pa.array(np.append(first, len(rows)), pa.int32()), pa.array(keys))
    # the scratch rows by shard, then by their smallest key: the gather then reads each file nearly in order
    by_key = np.lexsort((keys[first], shards[first]))
    doc_rows, doc_shards = rows[first][by_key], shards[first][by_key]
    picked = (
        table.take(pa.array(doc_rows))
        .append_column(KEY, key_lists.take(pa.array(by_key)))
        .append_column(ORD, pa.array(position[doc_rows]))
    )
    bounds = np.concatenate([[0], np.flatnonzero(np.diff(doc_shards)) + 1, [len(doc_rows)]])
    for start, end in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
        yield int(doc_shards[start]), picked.slice(start, end - start)


def scatter_fn(
    plans: list[OutputPlan], seed: int, scratch: str, compression: str | None, flush_bytes: int = 64 * 1024**2
):
    """mapInArrow function over ``datasets.row_groups``: the task's rows routed to its scatter file; yields one
    SCATTERED row per (output, shard) it has rows for."""
    from corpus.spark import datasets

    doc_arrow = schema.document().arrow

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from pyspark import TaskContext

        task = TaskContext.get()
        # the attempt in the name: a retried or speculative attempt never writes over another's file
        out = _ScatterFile(
            posixpath.join(scratch, f"part-{task.partitionId():05d}-{task.attemptNumber()}.arrow"),
            compression,
            flush_bytes,
        )
        counted = []
        for where, table in datasets.iter_row_groups(batches, doc_arrow):
            if not table.num_rows:
                continue
            counted.append(bins(table))
            if table.num_rows >= 1 << 32:
                raise ValueError(f"{where['path']}: row group {where['row_group']} has over 2^32 rows")
            # position in the input: row group ordinal, row within it (for ties of the 64-bit key only)
            position = (np.uint64(where["ordinal"]) << np.uint64(32)) + np.arange(table.num_rows, dtype=np.uint64)
            ids = table.column("id").to_pylist()
            parts = np.asarray(table.column("part").to_pylist(), dtype=object)
            for plan in plans:
                for shard, rows in routed(plan, seed, table, ids, parts, position):
                    out.add(plan.name, shard, rows)
        results = out.close()
        if counted:
            summed = (
                pa.concat_tables(counted)
                .group_by(["part", "tokens", "lang", "agent"])
                .aggregate([("n", "sum")])
                .rename_columns(["part", "tokens", "lang", "agent", "n"])
            )
            results.append({"output": None, "bins": summed.to_pylist()})
        if results:
            yield pa.RecordBatch.from_pylist(results, schema=SCATTERED)

    return run


def open_ipc(path: str):
    """An IPC file's reader: memory-mapped when local (its batches are then views of the page cache)."""
    import pyarrow.fs as pafs

    fs, inner = files.filesystem(path)
    source = pa.memory_map(inner) if isinstance(fs, pafs.LocalFileSystem) else fs.open_input_file(inner)
    return pa.ipc.open_file(source)


def gather_fn(out_dirs: dict[str, str], name: str, cfg, result_schema: pa.Schema):
    """mapInArrow function over the gather task list (output, shard, path, batches; a shard's rows in one
    task): each shard's batches read, sorted by key and written; yields one result row per shard."""
    from corpus.write.writer import ShardWriter, shard_name

    names = schema.document().names

    def write_shard(output: str, shard: int, sources: list[tuple[str, list[int]]]) -> dict:
        batches = []
        for path, numbers in sources:
            reader = open_ipc(path)
            batches += [reader.get_batch(i) for i in numbers]
        # one chunk per column (a copy at memory speed): pyarrow's take from many chunks is ~5× slower
        table = pa.Table.from_batches(batches, schema=scratch_schema()).combine_chunks()
        keys = table.column(KEY).chunk(0) if table.num_rows else pa.array([], pa.list_(pa.uint64()))
        parent = pc.list_parent_indices(keys)  # the scratch row of each copy
        copies = pa.table({KEY: pc.list_flatten(keys), ORD: table.column(ORD).take(parent)})
        order = pc.sort_indices(copies, sort_keys=[(KEY, "ascending"), (ORD, "ascending")])
        writer = ShardWriter(posixpath.join(out_dirs[output], shard_name(name, output, shard)), cfg)
        writer.add_ordered(table.select(names), parent.take(order))
        nbytes, digest = writer.close()
        return {
            "output": output,
            "shard": shard,
            "path": posixpath.basename(writer.path),
            "rows": writer.rows,
            "bytes": nbytes,
            "sha256": digest,
            "rows_by_part": sorted(writer.parts.items()),
            "tokens_by_part": sorted(writer.tokens.items()),
        }

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        groups: dict[tuple[str, int], list[tuple[str, list[int]]]] = {}
        for batch in batches:
            for row in batch.to_pylist():
                groups.setdefault((row["output"], row["shard"]), []).append((row["path"], row["batches"]))
        results = [write_shard(o, s, sources) for (o, s), sources in groups.items()]
        if results:
            yield pa.RecordBatch.from_pylist(results, schema=result_schema)

    return run


def run(
    spark,
    doc_paths: list[str],
    plans: list[OutputPlan],
    seed: int,
    name: str,
    out_dirs: dict[str, str],
    scratch: str,
    cfg,
    result_schema: pa.Schema,
    progress=None,
) -> tuple[list[dict], list[dict]]:
    """Both jobs: (the gather results, a row per shard written; the scatter tasks' ``bins`` rows, for
    :func:`histograms`). ``progress(label)`` names each job. Every document is read, even when no output has
    shards: the bins count them all."""
    from pyspark.sql.pandas.types import from_arrow_schema

    from corpus.spark import datasets

    plans = [p for p in plans if p.shards > 0]
    files.make_dirs(scratch)
    for d in out_dirs.values():
        files.make_dirs(d)
    compression = None if cfg.scratch_compression == "none" else cfg.scratch_compression
    try:
        t0 = time.perf_counter()
        if progress:
            progress("scatter")
        # one task per core (and per spark.sql.files.maxPartitionBytes): a scatter task is short (0.1-0.2 s per
        # 65 MB row group here), so a second round of tasks costs more in launch latency (~70 ms) than it balances
        scattered = datasets.row_groups(
            spark,
            *doc_paths,
            per_core=1,
            fn=scatter_fn(plans, seed, scratch, compression),
            out_schema=from_arrow_schema(SCATTERED),
        ).collect()
        sources: dict[tuple[str, int], list[tuple[str, list[int]]]] = {}
        size: Counter[tuple[str, int]] = Counter()
        rows_of: Counter[tuple[str, int]] = Counter()
        counts = [b for r in scattered if r["output"] is None for b in r["bins"]]
        for r in sorted((r for r in scattered if r["output"] is not None), key=lambda r: r["path"]):
            sources.setdefault((r["output"], r["shard"]), []).append((r["path"], list(r["batches"])))
            size[(r["output"], r["shard"])] += r["bytes"]
            rows_of[(r["output"], r["shard"])] += r["rows"]
        if not sources:
            return [], counts
        # one task per shard, the largest first: the last task to start is a small one
        shards = sorted(sources, key=lambda k: (-size[k], k))
        rows = [(o, s, p, b, t) for t, (o, s) in enumerate(shards) for p, b in sources[(o, s)]]
        table = pa.table(
            {
                "output": [r[0] for r in rows],
                "shard": pa.array([r[1] for r in rows], pa.int64()),
                "path": [r[2] for r in rows],
                "batches": pa.array([r[3] for r in rows], pa.list_(pa.int32())),
            }
        )
        t1 = time.perf_counter()
        if progress:
            progress(f"gather {len(shards)} shards")
        written = [
            r.asDict()
            for r in datasets.map_tasks(
                spark,
                table,
                gather_fn(out_dirs, name, cfg, result_schema),
                from_arrow_schema(result_schema),
                len(shards),
                [r[4] for r in rows],
            ).collect()
        ]
        log.info(
            "write: scattered %d rows in %.1fs, wrote %d shards in %.1fs",
            sum(rows_of.values()),
            t1 - t0,
            len(written),
            time.perf_counter() - t1,
        )
        return written, counts
    finally:
        files.remove(scratch)
