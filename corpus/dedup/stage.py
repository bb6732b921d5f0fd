"""The ``dedup`` stage: exact duplicates first (cheap), then near-duplicates (MinHash LSH).

The plan never moves text through a shuffle until the very end, and on a small machine most of its cost is Spark's
per-row and per-job overhead rather than the hashing, so the heavy passes read the Parquet files in the tasks and
move Arrow data in blobs:

1. **Features** (``features_from_files_fn``), one batch pass over each input row group read with pyarrow: the
   normalised-text hash, the MinHash signature, the LSH band keys, the shingle count and the text length
   (corpus.dedup.minhash). Written to scratch: ~0.6 KB per document; texts never enter the JVM.
2. **Exact**: a window over the hash (narrow columns only) orders each group by the keep rule (id as the final
   tie-break, so the kept document never depends on partitioning, unlike ``monotonically_increasing_id``,
   text-dedup #28).
3. **Candidates**: the 16 band rows per document are cut by bucket into one Arrow blob per target task
   (``band_blobs_fn``), shuffled, and grouped by Arrow in each task (``bucket_edges_fn``): every member of a
   shared bucket gets a single edge to its smallest id (a star, never all pairs; a huge bucket is linear work).
4. **Check**: each candidate's text is read and tokenised once more and its shingle set sent to the task of every
   star it is in (``star_rows_fn``), where members are compared with their root by exact Jaccard
   (``check_stars_fn``); edges below the threshold are dropped. (With a previous index, for ``verify: estimate``
   or with too many candidates for every task to hold the edges: joins in Spark, ``_check_by_joins``.)
5. **Components** of the checked edges and the keep rule: in one task for up to ``components_local_max_edges``
   edges (``components_and_keep_fn``), else large-star/small-star rounds (corpus.dedup.components) and windows.
   The others are rejected as ``near_duplicate`` with ``duplicate_of`` = the kept document.
6. **Decisions** (a small id → reason table) are written to scratch, and one join applies them to the documents;
   the documents, the rejects and the signature index are written by Spark jobs side by side.

With ``previous_index``, the index's documents join step 3 as already-kept: a new document near one of them is
removed, and they are never removed. The stage writes its own index (``OUT/dedup/index``: id, signature, band
keys, and ``_index.json`` with the settings) for the next run.
"""

from __future__ import annotations

import json
import logging
import posixpath
import time
from typing import Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from corpus.config import DedupSection, MinHashSection
from corpus.dedup import minhash
from corpus.ids import text_hashes
from corpus.io import files
from corpus.spark import datasets
from corpus.stage import count_rows

log = logging.getLogger("corpus")

INDEX = "index"
INDEX_META = "_index.json"
FEATURES = pa.schema([
    ("id", pa.string()), ("text_len", pa.int64()), ("score", pa.float64()), ("norm_hash", pa.binary()),
    ("sig", pa.binary()), ("bands", pa.list_(pa.int64())), ("shingles", pa.int64()),
])
FEATURES_ROW = pa.schema(list(FEATURES) + [pa.field("_row", pa.int64())])
CHECKED = pa.schema([("a", pa.string()), ("b", pa.string()), ("jaccard", pa.float64()), ("exact", pa.bool_()),
                     ("passed", pa.bool_())])


class IndexMismatch(ValueError):
    """A previous index was built with different MinHash settings (its signatures are not comparable)."""


def _binary_rows(rows: np.ndarray) -> pa.Array:
    """A 2-D uint32 array as a binary array (one value per row) without a Python object per row."""
    n, width = rows.shape
    offsets = pa.py_buffer((np.arange(n + 1, dtype=np.int32) * (width * 4)).tobytes())
    return pa.Array.from_buffers(pa.binary(), n, [None, offsets, pa.py_buffer(np.ascontiguousarray(rows).tobytes())])


def index_settings(mh: MinHashSection) -> dict:
    bands, rows = mh.band_rows()
    return {"num_perm": mh.num_perm, "seed": mh.seed, "ngram": mh.ngram, "tokenizer": mh.tokenizer,
            "lowercase": mh.lowercase, "bands": bands, "rows": rows, "hash": "xxh32-tokens/affine32"}


def features_fn(mh: MinHashSection, exact_hash: bool):
    """mapInArrow function: (id, text, score, _row) batches → FEATURES_ROW batches."""
    bands, rows = mh.band_rows()
    perms = minhash.permutations(mh.num_perm, mh.seed)  # on the driver, shipped with the function

    def run(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            texts = batch.column("text")
            n = batch.num_rows
            if mh.enabled:
                sigs, counts = minhash.signatures(texts, mh.num_perm, mh.seed, mh.ngram, mh.tokenizer, mh.lowercase,
                                                  perms)
                keys = minhash.band_keys(sigs, bands, rows)
                sig_arr = _binary_rows(sigs)
                band_arr = pa.ListArray.from_arrays(pa.array(np.arange(n + 1, dtype=np.int32) * bands),
                                                    pa.array(keys.ravel(), pa.int64()))
            else:
                counts = np.zeros(n, dtype=np.int64)
                sig_arr = pa.nulls(n, pa.binary())
                band_arr = pa.nulls(n, pa.list_(pa.int64()))
            hashes = text_hashes(texts) if exact_hash else pa.nulls(n, pa.binary())
            yield pa.RecordBatch.from_arrays(
                [batch.column("id"), pc.utf8_length(texts.fill_null("")).cast(pa.int64()), batch.column("score"),
                 hashes, sig_arr, band_arr, pa.array(counts, pa.int64()), batch.column("_row")],
                schema=FEATURES_ROW)

    return run


STAR_ROWS = pa.schema([("star", pa.string()), ("id", pa.string()), ("root", pa.bool_()), ("sh", pa.binary()),
                       ("sig", pa.binary())])


def star_rows_fn(mh: MinHashSection, edges_path: str, labels: list[int], batch_rows: int):
    """mapInArrow function over ``datasets.row_groups`` of the input documents → blobs of STAR_ROWS, for the
    exact check of the candidate edges (a star member a → its root b) at ``edges_path``, which every task reads
    whole (so only when small). Each candidate document's text is read and tokenised here, once, and its
    shingle set (and, where the set is over ``verify_max_shingles``, its signature) is sent to the task of
    every star it is in: as the root of its own star, and as a member of each star it links to. Stars go to
    tasks by a hash of the root id; the blobs spare Spark a row conversion per set, as in band_blobs_fn."""
    import pyarrow.dataset as ds
    import xxhash

    arrow = pa.schema([("id", pa.string()), ("text", pa.string())])
    n_parts = len(labels)
    perms = minhash.permutations(mh.num_perm, mh.seed)

    def run(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        fs, inner = files.filesystem(edges_path)
        edges = ds.dataset(inner, format="parquet", filesystem=fs).to_table(columns=["a", "b"])
        roots = pc.unique(edges.column("b"))
        ends = pa.concat_arrays([pc.unique(edges.column("a")), roots.combine_chunks() if isinstance(
            roots, pa.ChunkedArray) else roots])

        def among(table: pa.Table) -> pa.Table:
            return table.filter(pc.is_in(table.column("id"), value_set=ends))

        pieces = []
        for b in datasets.read_row_groups(batches, arrow, batch_rows, where=among):
            ids = b.column("id")
            sets = minhash.shingle_set_array(b.column("text"), mh.ngram, mh.tokenizer, mh.lowercase,
                                             mh.verify_max_shingles).cast(pa.binary())
            sigs = pa.nulls(b.num_rows, pa.binary())
            if sets.null_count:  # over the cap: the signature estimate instead, so compute the signatures
                sigs = _binary_rows(minhash.signatures(b.column("text"), mh.num_perm, mh.seed, mh.ngram,
                                                       mh.tokenizer, mh.lowercase, perms)[0])
            is_root = pc.is_in(ids, value_set=roots)
            pieces.append(pa.table([ids.filter(is_root), ids.filter(is_root), pa.array([True] * pc.sum(
                is_root.cast(pa.int64())).as_py(), pa.bool_()), sets.filter(is_root), sigs.filter(is_root)],
                schema=STAR_ROWS))
            links = edges.filter(pc.is_in(edges.column("a"), value_set=ids))
            at = pc.index_in(links.column("a"), value_set=ids)
            pieces.append(pa.table([links.column("b"), links.column("a"), pa.array([False] * links.num_rows,
                                    pa.bool_()), sets.take(at), sigs.take(at)], schema=STAR_ROWS))
        if pieces:
            rows = pa.concat_tables(pieces)
            digest = xxhash.xxh64_intdigest
            part = np.array([digest(v.encode()) % n_parts for v in rows.column("star").to_pylist()], dtype=np.int64)
            yield _blobs(rows, part, labels)

    return run


def check_stars_fn(mh: MinHashSection):
    """mapInArrow function over one task's blobs of STAR_ROWS (every star whole in the task) → CHECKED: each
    member's set against its root's (a member sent twice, by a repeated record, gives the same row twice; the
    caller drops repeats)."""

    def run(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        table = _unblob(batches, STAR_ROWS)
        if not table.num_rows:
            return
        is_root = table.column("root")
        roots, members = table.filter(is_root), table.filter(pc.invert(is_root))
        at = pc.index_in(members.column("star"), value_set=roots.column("id"))
        pairs = pa.table({"a": members.column("id"), "b": members.column("star"),
                          "sig_a": members.column("sig"), "sig_b": roots.column("sig").take(at),
                          "sh_a": members.column("sh"), "sh_b": roots.column("sh").take(at)})
        for batch in pairs.to_batches(max_chunksize=65_536):
            yield check_batch(batch, mh)

    return run


def _signal(signals: pa.Array, name: str | None) -> pa.Array:
    """One signal (a double per row, null where absent) from a ``signals`` list<struct<key, value>> column."""
    n = len(signals)
    if name is None:
        return pa.nulls(n, pa.float64())
    flat = pc.list_flatten(signals)
    values = flat.field("value")
    hit = np.asarray(pc.fill_null(pc.and_(pc.equal(flat.field("key"), name), values.is_valid()), False))
    out = np.zeros(n)
    valid = np.zeros(n, dtype=bool)
    rows = np.asarray(pc.list_parent_indices(signals))[hit]
    out[rows] = np.asarray(values.fill_null(0.0))[hit]
    valid[rows] = True
    return pa.array(out, pa.float64(), mask=~valid)


def features_from_files_fn(mh: MinHashSection, exact_hash: bool, score_signal: str | None, batch_rows: int):
    """mapInArrow function over ``datasets.row_groups`` of the input documents → FEATURES_ROW batches: reads
    each row group with pyarrow, so the texts never pass through the JVM. ``_row`` is ``F.xxhash64("source",
    "part", "metadata")`` computed the same way in Python; ``score`` is the signal ``score_signal``."""
    from corpus import schema
    from corpus.ids import spark_xxhash64

    doc = schema.document().arrow
    arrow = pa.schema([doc.field(n) for n in ("id", "text", "source", "part", "metadata", "signals")])
    compute = features_fn(mh, exact_hash)

    def run(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        def inputs():
            for b in datasets.read_row_groups(batches, arrow, batch_rows):
                row = spark_xxhash64(b.column("source"), b.column("part"), b.column("metadata"))
                yield pa.RecordBatch.from_arrays([b.column("id"), b.column("text"), _signal(b.column("signals"),
                                                  score_signal), pa.array(row, pa.int64())],
                                                 names=["id", "text", "score", "_row"])

        yield from compute(inputs())

    return run


def shingle_sets_from_files_fn(mh: MinHashSection, wanted_path: str, batch_rows: int):
    """mapInArrow function over ``datasets.row_groups`` of the input documents → (id, shingle set) of the
    documents whose id is in the Parquet dataset ``wanted_path`` (the candidate pairs' ends; each task reads it
    whole, so it is used only when small). Texts are read and filtered in Python, never passing the JVM."""
    import pyarrow.dataset as ds

    arrow = pa.schema([("id", pa.string()), ("text", pa.string())])
    compute = shingle_sets_fn(mh)

    def run(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        fs, inner = files.filesystem(wanted_path)
        wanted = ds.dataset(inner, format="parquet", filesystem=fs).to_table(columns=["id"]).column("id")

        def among(table: pa.Table) -> pa.Table:  # per row group: the lookup set is built once per call
            return table.filter(pc.is_in(table.column("id"), value_set=wanted))

        yield from compute(datasets.read_row_groups(batches, arrow, batch_rows, where=among))

    return run


def shingle_sets_fn(mh: MinHashSection):
    """mapInArrow function: (id, text) → (id, sorted unique shingle hashes as binary; null above the cap)."""

    def run(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            sets = minhash.shingle_set_array(batch.column("text"), mh.ngram, mh.tokenizer, mh.lowercase,
                                             mh.verify_max_shingles)
            yield pa.RecordBatch.from_arrays([batch.column("id"), sets.cast(pa.binary())], names=["id", "sh"])

    return run


def check_fn(mh: MinHashSection):
    """mapInArrow function: candidate edges with both ends' signatures (and shingle sets) → CHECKED."""

    def run(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            yield check_batch(batch, mh)

    return run


def check_batch(batch: pa.RecordBatch, mh: MinHashSection) -> pa.RecordBatch:
    """Candidate edges (a, b, sig_a, sig_b[, sh_a, sh_b]) → CHECKED: the exact Jaccard where both shingle sets are
    present (not over the size cap), else the signature estimate (signatures are needed only there)."""
    n = batch.num_rows
    jac = np.zeros(n)
    exact = np.zeros(n, dtype=bool)
    if "sh_a" in batch.schema.names:
        sh_a, sh_b = batch.column("sh_a"), batch.column("sh_b")
        both = pc.and_(sh_a.is_valid(), sh_b.is_valid())
        exact = np.asarray(both)
        if exact.any():
            jac[exact] = minhash.pair_jaccards(sh_a.filter(both), sh_b.filter(both))
    if not exact.all():
        rest = pa.array(~exact)
        sa = minhash.fixed_rows(batch.column("sig_a").filter(rest), mh.num_perm)
        sb = minhash.fixed_rows(batch.column("sig_b").filter(rest), mh.num_perm)
        jac[~exact] = minhash.estimated_jaccard(sa, sb)
    passed = jac >= mh.threshold - 1e-12 if mh.verify != "off" else np.ones(n, dtype=bool)
    return pa.RecordBatch.from_arrays([batch.column("a"), batch.column("b"), pa.array(jac, pa.float64()),
                                       pa.array(exact), pa.array(passed)], schema=CHECKED)


def _blobs(table: pa.Table, part: np.ndarray, labels: list[int]) -> pa.RecordBatch:
    """(part, rows) rows: ``table`` cut by ``part`` (0..len(labels)-1), each piece one Arrow IPC stream labelled
    with the value Spark's hash partitioning sends to that part's task (``partition_labels``)."""
    order = np.argsort(part, kind="stable")
    ends = np.searchsorted(part[order], np.arange(len(labels) + 1))
    out_parts, out_blobs = [], []
    for p in range(len(labels)):
        if ends[p] == ends[p + 1]:
            continue
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table.take(pa.array(order[ends[p]:ends[p + 1]])))
        out_parts.append(labels[p])
        out_blobs.append(sink.getvalue().to_pybytes())
    return pa.record_batch([pa.array(out_parts, pa.int32()), pa.array(out_blobs, pa.binary())], names=["part", "rows"])


def _unblob(batches: Iterable[pa.RecordBatch], schema: pa.Schema) -> pa.Table:
    tables = [pa.ipc.open_stream(blob).read_all() for b in batches for blob in b.column("rows").to_pylist()]
    return pa.concat_tables(tables) if tables else schema.empty_table()


BUCKET_TASK_ROWS = 2_000_000  # band rows per candidates task: ~60 B each in Arrow, so ~120 MB (+ group-by state)
BLOB_FLUSH_ROWS = 1_000_000  # band rows a task gathers before cutting them into blobs (~50 MB)
BAND_ROWS = pa.schema([("id", pa.string()), ("prior", pa.bool_()), ("band", pa.int32()), ("key", pa.int64())])


def band_blobs_fn(labels: list[int], bands: int):
    """mapInArrow function: (id, prior, bands) → (part, rows): every document's band rows (id, prior, band, key),
    cut by bucket (key modulo the number of tasks) into one Arrow IPC stream per candidates task, labelled with
    the value that Spark's hash partitioning sends to that task (``labels``).

    Why blobs: Spark's shuffle converts each row between Arrow and its own row format, and for the 16 rows of
    ~50 bytes per document that conversion cost more than everything else the candidates step does. Shuffled as
    a few blobs per task, the same rows cost Spark almost nothing; the grouping stays in Arrow."""
    n_parts = len(labels)

    def cut(ids: list, priors: list, keys: list) -> pa.RecordBatch:
        ids_a = pa.concat_arrays(ids)
        key = np.concatenate(keys)
        doc, band = np.divmod(np.arange(len(key)), bands)
        rows = pa.table([ids_a.take(pa.array(doc)), pa.array(np.concatenate(priors)[doc]),
                         pa.array(band.astype(np.int32)), pa.array(key)], schema=BAND_ROWS)
        return _blobs(rows, (key.view(np.uint64) % np.uint64(n_parts)).astype(np.int64), labels)

    def run(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        ids, priors, keys, held = [], [], [], 0
        for batch in batches:
            if not batch.num_rows:
                continue
            ids.append(batch.column("id"))
            priors.append(np.asarray(batch.column("prior").fill_null(False)))
            keys.append(np.asarray(pc.list_flatten(batch.column("bands"))))
            held += batch.num_rows * bands
            if held >= BLOB_FLUSH_ROWS:
                yield cut(ids, priors, keys)
                ids, priors, keys, held = [], [], [], 0
        if ids:
            yield cut(ids, priors, keys)

    return run


def bucket_edges_fn(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """mapInArrow function over one task's blobs of band rows (every bucket whole in the task) → star edges
    (a, b): each member of a bucket shared by two or more documents, at least one new (not ``prior``), links to
    the bucket's smallest id (never all pairs, so a huge bucket is linear work, not quadratic).

    Two hash group-bys: first a count and a flag per bucket (fixed-width, fast: most buckets hold one document),
    then the smallest id of the few shared buckets only. Single-threaded: Spark runs one task per core."""
    table = _unblob(batches, BAND_ROWS)
    if not table.num_rows:
        return
    keys = ["band", "key"]
    per_bucket = table.group_by(keys, use_threads=False).aggregate([("key", "count"), ("prior", "min")])
    shared = per_bucket.filter((pc.field("key_count") > 1) & ~pc.field("prior_min")).select(keys)
    members = table.join(shared, keys, join_type="left semi", use_threads=False)
    roots = members.group_by(keys, use_threads=False).aggregate([("id", "min")])
    linked = members.join(roots, keys, use_threads=False).filter(pc.field("id") != pc.field("id_min"))
    out = pa.table({"a": linked.column("id"), "b": linked.column("id_min")})
    yield from out.to_batches(max_chunksize=65_536)


def spark_hash_int(value: int) -> int:
    """Spark's ``hash(value)`` of an int column: Murmur3 x86 32-bit of the 4-byte value, seed 42, as a signed
    int. The partitioner of ``repartition(n, col)`` is ``pmod(hash(col), n)``. Written out (the published
    Murmur3 steps) because no installed library exposes Spark's variant; tested against Spark."""
    mask = 0xFFFFFFFF

    def rotl(x: int, r: int) -> int:
        return ((x << r) | (x >> (32 - r))) & mask

    k = (value & mask) * 0xCC9E2D51 & mask
    k = rotl(k, 15) * 0x1B873593 & mask
    h = rotl(42 ^ k, 13)
    h = (h * 5 + 0xE6546B64) & mask
    h ^= 4  # the length in bytes
    h ^= h >> 16
    h = h * 0x85EBCA6B & mask
    h ^= h >> 13
    h = h * 0xC2B2AE35 & mask
    h ^= h >> 16
    return h - (1 << 32) if h & 0x80000000 else h


def partition_labels(n: int) -> list[int]:
    """For p in 0..n-1, the smallest int that Spark's hash partitioning into n partitions sends to partition p:
    ``repartition(n, col)`` over these labels puts each part in its own task."""
    found: dict[int, int] = {}
    v = 0
    while len(found) < n:
        found.setdefault(spark_hash_int(v) % n, v)  # Python's % of a positive n is Spark's pmod
        v += 1
    return [found[p] for p in range(n)]


NEAR = pa.schema([("id", pa.string()), ("reason", pa.string()), ("duplicate_of", pa.string()),
                  ("cluster", pa.string()), ("detail", pa.string())])


def components_and_keep_fn(info_path: str, rule: str, threshold: float):
    """mapInArrow function over *all* the checked edges (a, b) in one task → NEAR rows: connected components
    (``components.label_components``), then the keep rule within each, as the distributed path's windows do:
    a previous-index document first, then the rule, then the smallest id. The documents' text length, score and
    ``prior`` come from ``info_path`` (this run's features or lsh table), read here with pyarrow; only new
    (non-prior) documents get a row. For graphs within ``components_local_max_edges``."""
    import pyarrow.dataset as ds

    from corpus.dedup.components import label_components

    def run(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        labelled = list(label_components(batches))
        if not labelled:
            return
        comps = pa.Table.from_batches(labelled)
        fs, inner = files.filesystem(info_path)
        data = ds.dataset(inner, format="parquet", filesystem=fs)
        columns = [c for c in ("id", "text_len", "score", "prior") if c in data.schema.names]
        info = data.to_table(columns=columns, filter=pc.is_in(pc.field("id"), value_set=comps.column("id")))
        if "prior" not in columns:
            info = info.append_column("prior", pa.array(np.zeros(info.num_rows, dtype=bool)))
        # a repeated record has its id more than once: one row per id (same text, so same length)
        first = np.unique(np.asarray(pc.index_in(info.column("id"), value_set=pc.unique(info.column("id")))),
                          return_index=True)[1]
        info = info.take(pa.array(first))
        at = pc.index_in(comps.column("id"), value_set=info.column("id"))
        t = pa.table({"id": comps.column("id"), "component": comps.column("component"),
                      "prior": info.column("prior").take(at), "text_len": info.column("text_len").take(at),
                      "score": info.column("score").take(at)})
        keys = [("component", "ascending"), ("prior", "descending")]
        if rule == "longest_text":
            keys.append(("text_len", "descending"))
        elif rule == "highest_score":
            keys.append(("score", "descending"))
        t = t.take(pc.sort_indices(t, sort_keys=keys + [("id", "ascending")], null_placement="at_end"))
        comp = t.column("component").combine_chunks()
        start = np.r_[True, np.asarray(pc.not_equal(comp.slice(1), comp.slice(0, len(comp) - 1)))]
        group = np.cumsum(start) - 1
        firsts = np.flatnonzero(start)
        sizes = np.diff(np.r_[firsts, len(comp)])
        prior = np.asarray(t.column("prior"))
        any_prior = np.maximum.reduceat(prior.astype(np.int8), firsts).astype(bool)
        kept = t.column("id").take(pa.array(firsts[group]))
        removed = ~start
        detail = [f"Jaccard ≥ {threshold} within a near-duplicate cluster of {sizes[g]}"
                  + (" including a document of the previous index" if any_prior[g] else "") if r else None
                  for g, r in zip(group, removed)]
        out = pa.table([t.column("id"), pa.array(np.where(removed, "near_duplicate", None), pa.string()),
                        pc.if_else(pa.array(removed), kept, pa.nulls(len(kept), pa.string())), kept,
                        pa.array(detail, pa.string())], schema=NEAR).filter(pa.array(~prior))
        yield from out.to_batches(max_chunksize=65_536)

    return run


def keep_order(rule: str, prior_first: bool = False):
    """Sort columns (over a features table) that put the document to keep first; id breaks ties."""
    from pyspark.sql import functions as F

    first = [F.col("prior").desc()] if prior_first else []
    if rule == "longest_text":
        return first + [F.col("text_len").desc(), F.col("id").asc()]
    if rule == "highest_score":
        return first + [F.col("score").desc_nulls_last(), F.col("id").asc()]
    return first + [F.col("id").asc()]


def read_index(spark, path: str, settings: dict):
    meta_path = posixpath.join(path, INDEX_META)
    if not files.exists(meta_path):
        raise files.InputError(f"{path}: not a dedup index (no {INDEX_META}); point previous_index at OUT/dedup/index")
    meta = json.loads(files.read_text(meta_path))
    differ = {k: (meta.get(k), v) for k, v in settings.items() if meta.get(k) != v}
    if differ:
        raise IndexMismatch(f"{path}: built with other MinHash settings, signatures are not comparable: "
                            + ", ".join(f"{k} {a!r} (this run: {b!r})" for k, (a, b) in differ.items()))
    return datasets.read(spark, posixpath.join(path, "data"))


BROADCAST_IDS = 2_000_000  # candidate ids (~40 B each) broadcast to every task rather than shuffling the texts
BROADCAST_DECISIONS = 2_000_000  # decision rows (~150 B each) broadcast rather than shuffling the documents


# scratch is read once or twice and is mostly hashes and signatures, which neither compress nor repeat: the
# fastest codec, and no dictionary encoding
SCRATCH_COMPRESSION = "lz4_raw"


def _materialise(spark, df, scratch: str, name: str):
    """Write to scratch and read back: computed once, and later plans start from files (short lineage)."""
    path = posixpath.join(scratch, name)
    datasets.write(df, path, compression=SCRATCH_COMPRESSION, dictionary=False)
    return datasets.read(spark, path, schema=df.schema)  # known: no schema-inference job


def _check_by_joins(ctx, spark, lsh, docs, edges, small: bool, mh: MinHashSection, scratch: str,
                    checked_path: str) -> dict:
    """The candidate check through joins: with a previous index (its documents have signatures, no text), for
    the signature estimate, and when the edges are too many to hand to every task."""
    from pyspark.sql import functions as F
    from pyspark.sql.pandas.types import from_arrow_schema

    from corpus.stage import document_paths

    ends = edges.select(F.col("a").alias("id")).union(edges.select(F.col("b").alias("id"))).distinct()
    ends = F.broadcast(ends) if small else ends
    node = lsh.select("id", "sig").join(ends, "id", "left_semi")  # the candidates' signatures
    if mh.verify == "exact":  # and their shingle sets, from the texts
        if small:  # the usual case: every task reads the list of ends, and texts are filtered as they are read
            ends_path = posixpath.join(scratch, "ends-ids")
            datasets.write(ends, ends_path, compression=SCRATCH_COMPRESSION, dictionary=False)
            sets = datasets.row_groups(spark, *document_paths(ctx.inputs)).mapInArrow(
                shingle_sets_from_files_fn(mh, ends_path, int(spark.conf.get(
                    "spark.sql.execution.arrow.maxRecordsPerBatch"))), "id string, sh binary")
        else:
            sets = docs.select("id", "text").join(ends, "id", "left_semi").mapInArrow(
                shingle_sets_fn(mh), "id string, sh binary")
        # the same id twice is the same text (the id hashes it): `distinct` is a hash aggregation, no sort
        node = node.join(sets.distinct(), "id", "left")
    node = _materialise(spark, node, scratch, "ends")
    # both ends of every edge: the first join probes the broadcast edges (no shuffle), the second is a shuffle
    by_a = node.select(*[F.col(c).alias(f"{c}_a" if c != "id" else "a") for c in node.columns])
    pairs = (by_a.join(F.broadcast(edges) if small else edges, "a")
             .join(node.select(*[F.col(c).alias(f"{c}_b" if c != "id" else "b") for c in node.columns]), "b"))

    return _write_checked(pairs.mapInArrow(check_fn(mh), from_arrow_schema(CHECKED)), checked_path)


def _write_checked(checked, path: str) -> dict:
    """Write the checked pairs; their counts (all, passed, checked exactly) are observed during the write,
    so no second job reads them back."""
    from pyspark.sql import Observation
    from pyspark.sql import functions as F

    seen = Observation("dedup-checked")
    datasets.write(checked.observe(seen, F.count(F.lit(1)).alias("candidate_pairs"),
                                   F.sum(F.col("passed").cast("long")).alias("pairs_passed"),
                                   F.sum(F.col("exact").cast("long")).alias("pairs_checked_exactly")),
                   path, compression=SCRATCH_COMPRESSION, dictionary=False)
    return {k: int(v or 0) for k, v in seen.get.items()}


def near_duplicates(ctx, survivors, docs, cfg: DedupSection, scratch: str, stats: dict):
    """(removed: id, reason, duplicate_of, cluster, detail; clustered kept: id, cluster); both written to scratch.
    ``docs``: a ``Background`` giving the documents DataFrame (only the join check path reads it)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F
    from pyspark.sql.pandas.types import from_arrow_schema

    from corpus.dedup.components import connected_components
    from corpus.stage import document_paths

    spark, mh = ctx.spark, cfg.minhash
    sc = spark.sparkContext
    t0 = time.perf_counter()
    lsh = survivors.where(F.col("shingles") > 0).select("id", "sig", "bands", "text_len", "score",
                                                        F.lit(False).alias("prior"))
    again = None
    if mh.previous_index:
        prior = read_index(spark, mh.previous_index, index_settings(mh))
        # a document already in the index (same id: same url and text) is not admitted twice
        again = lsh.select("id").join(prior.select("id"), "id", "left_semi").select(
            "id", F.lit("exact_duplicate").alias("reason"), F.col("id").alias("duplicate_of"),
            F.col("id").alias("cluster"), F.lit("already in the previous index (same url and text)").alias("detail"))
        lsh = lsh.join(prior.select("id"), "id", "left_anti")
        lsh = lsh.unionByName(prior.select("id", "sig", "bands", F.lit(None).cast("long").alias("text_len"),
                                           F.lit(None).cast("double").alias("score"), F.lit(True).alias("prior")))
        lsh = _materialise(spark, lsh, scratch, "lsh")  # else a filter of the features, already on disk
    # Candidates: the band rows (16 per document) are cut by bucket into one blob per task (band_blobs_fn), Spark
    # shuffles the blobs so that each bucket is whole in one task, and each task finds its buckets' star edges
    # with Arrow's hash group-by (bucket_edges_fn). Tasks are sized from the row count so that none holds more
    # than BUCKET_TASK_ROWS rows.
    sc.setJobDescription("dedup: LSH candidate pairs")
    bands, _ = mh.band_rows()
    n_rows = count_rows(posixpath.join(scratch, "lsh" if mh.previous_index else "features")) * bands
    tasks = max(int(spark.conf.get("spark.sql.shuffle.partitions")), -(-n_rows // BUCKET_TASK_ROWS))
    blobs = lsh.select("id", "prior", "bands").mapInArrow(band_blobs_fn(partition_labels(tasks), bands),
                                                           "part int, rows binary")
    edges = _materialise(spark, blobs.repartition(tasks, "part").mapInArrow(bucket_edges_fn, "a string, b string")
                         .distinct(), scratch, "edges")
    n_edges = count_rows(posixpath.join(scratch, "edges"))

    sc.setJobDescription("dedup: check candidate pairs")
    small = 2 * n_edges <= BROADCAST_IDS  # the usual case: the edges and their ends are broadcast, not shuffled
    checked_path = posixpath.join(scratch, "checked")
    if mh.verify == "exact" and small and not mh.previous_index:
        # every candidate text read and tokenised once, its set sent to its stars' tasks; no join of sets
        stars = datasets.row_groups(spark, *document_paths(ctx.inputs)).mapInArrow(
            star_rows_fn(mh, posixpath.join(scratch, "edges"), partition_labels(tasks),
                         int(spark.conf.get("spark.sql.execution.arrow.maxRecordsPerBatch"))), "part int, rows binary")
        pairs = stars.repartition(tasks, "part").mapInArrow(check_stars_fn(mh), from_arrow_schema(CHECKED))
        stats.update(_write_checked(pairs.distinct(), checked_path))
    else:
        stats.update(_check_by_joins(ctx, spark, lsh, docs.join(), edges, small, mh, scratch, checked_path))
    checked = datasets.read(spark, checked_path, schema=from_arrow_schema(CHECKED))
    stats["seconds_candidates_and_check"] = round(time.perf_counter() - t0, 2)

    t1 = time.perf_counter()
    if stats["pairs_passed"] <= mh.components_local_max_edges:
        # components and the keep rule in one task (see components_and_keep_fn)
        stats.update(components_rounds=0, components_method="one task")
        info_path = posixpath.join(scratch, "lsh" if mh.previous_index else "features")
        near = checked.where("passed").select("a", "b").coalesce(1).mapInArrow(
            components_and_keep_fn(info_path, cfg.keep, mh.threshold), from_arrow_schema(NEAR))
        if again is not None:
            near = near.unionByName(again)
        near = _materialise(spark, near, scratch, "near")
        stats["seconds_components_and_keep"] = round(time.perf_counter() - t1, 2)
        return near, lsh
    comps, rounds = connected_components(spark, checked.where("passed").select("a", "b"),
                                         posixpath.join(scratch, "components"), mh.max_iterations,
                                         n_edges=stats["pairs_passed"],
                                         local_max_edges=mh.components_local_max_edges)
    stats["components_rounds"] = rounds
    stats["components_method"] = ("one task" if stats["pairs_passed"] <= mh.components_local_max_edges
                                  else "large-star/small-star")
    info = lsh.select("id", "text_len", "score", "prior")
    ranked = (comps.join(info, "id")
              .withColumn("_rank", F.row_number().over(Window.partitionBy("component")
                                                         .orderBy(*keep_order(cfg.keep, prior_first=True))))
              .withColumn("_kept", F.first("id").over(Window.partitionBy("component")
                                                      .orderBy(*keep_order(cfg.keep, prior_first=True))))
              .withColumn("_size", F.count("*").over(Window.partitionBy("component")))
              .withColumn("_kept_prior", F.max("prior").over(Window.partitionBy("component"))))
    near = (ranked.where(~F.col("prior")).select(
        "id", F.when(F.col("_rank") > 1, F.lit("near_duplicate")).alias("reason"),
        F.when(F.col("_rank") > 1, F.col("_kept")).alias("duplicate_of"), F.col("_kept").alias("cluster"),
        F.when(F.col("_rank") > 1, F.concat(
            F.lit("Jaccard ≥ "), F.lit(str(mh.threshold)), F.lit(" within a near-duplicate cluster of "),
            F.col("_size").cast("string"),
            F.when(F.col("_kept_prior"), F.lit(" including a document of the previous index")).otherwise(F.lit("")),
        )).alias("detail"))
            .unionByName(again if again is not None else spark.createDataFrame(
                [], "id string, reason string, duplicate_of string, cluster string, detail string")))
    near = _materialise(spark, near, scratch, "near")
    stats["seconds_components_and_keep"] = round(time.perf_counter() - t1, 2)
    return near, lsh


def prepare(cfg: DedupSection) -> None:
    """What the stage derives on the driver before its first job, computed once and cached (the pipeline runs
    this while the Spark session starts): the LSH bands and rows, and the permutations."""
    mh = cfg.minhash
    if mh.enabled:
        mh.band_rows()
        minhash.permutations(mh.num_perm, mh.seed)


def build(ctx):
    from pyspark.sql import Observation, Window
    from pyspark.sql import functions as F
    from pyspark.sql.pandas.types import from_arrow_schema

    from corpus import schema
    from corpus.stage import Background, StagePlan, count_documents, document_paths, read_documents

    cfg = ctx.config.dedup
    mh = cfg.minhash
    spark, sc = ctx.spark, ctx.spark.sparkContext
    # rows sharing an id are the same (url, text) twice; `_row` tells them apart (source, part, metadata). The
    # documents are only needed at the end (the passes before read the files in the tasks): Spark's planning of
    # the read (~0.8 s, listing and schema) runs in a thread beside the first jobs.
    docs_ready = Background(lambda: read_documents(spark, ctx.inputs).withColumn(
        "_row", F.xxhash64("source", "part", "metadata")), "dedup-documents")
    rows_in = count_documents(ctx.inputs)
    extra: dict = {"keep": cfg.keep}
    if not cfg.exact.enabled and not mh.enabled:
        return StagePlan(documents=docs_ready.join().drop("_row"), rejects=_no_rejects(spark), rows_in=rows_in,
                         extra=extra)
    if mh.enabled:
        bands, rows = mh.band_rows()
        extra["minhash"] = {"bands": bands, "rows": rows, "num_perm": mh.num_perm, "ngram": mh.ngram,
                            "threshold": mh.threshold, "verify": mh.verify}
    scratch = ctx.path("_scratch")
    t0 = time.perf_counter()
    sc.setJobDescription("dedup: hashes and signatures")
    batch_rows = int(spark.conf.get("spark.sql.execution.arrow.maxRecordsPerBatch"))
    inputs = document_paths(ctx.inputs)
    feats = _materialise(spark, datasets.row_groups(spark, *inputs).mapInArrow(
        features_from_files_fn(mh, cfg.exact.enabled, cfg.score_signal, batch_rows), from_arrow_schema(FEATURES_ROW)),
        scratch, "features")  # written as computed: the signatures are never shuffled
    # One window, over the narrow columns only, decides exact duplicates and repeated records together: rows
    # grouped by the normalised-text hash (or by id when exact dedup is off; the same record twice has the same
    # id and text, so it always shares a group), ordered by the keep rule, then id, then _row. The first row of
    # a group stays.
    group = "norm_hash" if cfg.exact.enabled else "id"
    w = Window.partitionBy(group).orderBy(*keep_order(cfg.keep), F.col("_row"))
    sc.setJobDescription("dedup: exact duplicates")
    # counted as it is written (an observation, no second job): are there fully identical rows, how many go
    seen = Observation("dedup-exact")
    exact = _materialise(spark, feats.select("id", "_row", group, "text_len", "score")
                         .withColumn("_rank", F.row_number().over(w))
                         .withColumn("_kept", F.first("id").over(w))
                         .withColumn("_identical", F.coalesce((F.lag("id").over(w) == F.col("id"))
                                                              & (F.lag("_row").over(w) == F.col("_row")),
                                                              F.lit(False)))
                         .observe(seen, F.sum(F.col("_identical").cast("long")).alias("identical"),
                                  F.sum(((F.col("_rank") > 1) & ~F.col("_identical")).cast("long")).alias("later")),
                         scratch, "exact")
    counts = seen.get
    # fully identical rows (same id and _row) can only be told apart in the documents: left to the final join
    exact_removed = exact.where((F.col("_rank") > 1) & ~F.col("_identical")).select(
        "id", "_row", F.lit("exact_duplicate").alias("reason"), F.col("_kept").alias("duplicate_of"),
        F.col("_kept").alias("cluster"),
        F.when(F.col("id") == F.col("_kept"), F.lit("the same record (same url and text) again"))
        .otherwise(F.concat(F.lit("same normalised text as "), F.col("_kept"))).alias("detail"))
    fully_identical = bool(counts["identical"])
    # the survivors' features: all but the rows removed above (usually few, so broadcast). A fully identical
    # row has the same (id, _row) as its twin, so it is not in that list: both copies stay, and one is dropped.
    later = exact.where((F.col("_rank") > 1) & ~F.col("_identical")).select("id", "_row")
    survivors = feats.join(F.broadcast(later) if (counts["later"] or 0) <= BROADCAST_IDS else later, ["id", "_row"],
                           "left_anti")
    if fully_identical:
        survivors = survivors.dropDuplicates(["id", "_row"])
    extra["seconds_features_and_exact"] = round(time.perf_counter() - t0, 2)
    parts = []
    if mh.enabled:
        near, lsh = near_duplicates(ctx, survivors, docs_ready, cfg, scratch, extra)
        near = near.join(exact.where(F.col("_rank") == 1).select("id", "_row"), "id")
        # an exact duplicate's twin may itself be removed as a near-duplicate: point at the document kept
        final = near.where(F.col("reason").isNotNull()).select(F.col("id").alias("_twin_id"),
                                                               F.col("duplicate_of").alias("_final"))
        exact_removed = (exact_removed.join(final, F.col("duplicate_of") == F.col("_twin_id"), "left")
                         .select("id", "_row", "reason", F.coalesce("_final", "duplicate_of").alias("duplicate_of"),
                                 F.coalesce("_final", "cluster").alias("cluster"), "detail"))
        parts.append(near)
    parts.append(exact_removed)
    decisions = parts[0]
    for p in parts[1:]:
        decisions = decisions.unionByName(p)
    decisions = _materialise(spark, decisions, scratch, "decisions")

    index_writer = None
    if mh.enabled and mh.write_index:
        removed = decisions.where(F.col("reason").isNotNull()).select("id")
        # the previous index (never removed) plus this run's documents that stay
        index = lsh.where("prior").unionByName(lsh.where(~F.col("prior")).join(removed, "id", "left_anti"))

        def write_index():
            sc.setJobDescription("dedup: write the signature index")  # this thread's jobs
            datasets.write(index.select("id", "sig", "bands"), ctx.path(INDEX, "data"))
            files.write_text(ctx.path(INDEX, INDEX_META), json.dumps(index_settings(mh), indent=2, sort_keys=True))

        # written while the documents and rejects are: Spark runs jobs from two threads side by side, so the
        # cores left idle by one job's scheduling gaps and last tasks work on the other
        index_writer = Background(write_index, "dedup-index")

    # Apply the decisions: a broadcast join when they fit (no document text is shuffled), else a shuffle join.
    small = count_rows(posixpath.join(scratch, "decisions")) <= BROADCAST_DECISIONS
    joined = docs_ready.join().join(F.broadcast(decisions) if small else decisions, ["id", "_row"], "left")
    if fully_identical:
        # identical rows (the same dataset read twice): only a window over the documents tells them apart
        twin = Window.partitionBy("id", "_row").orderBy("lang", "title")
        again = F.row_number().over(twin) > 1
        joined = (joined.withColumn("_again", again)
                  .withColumn("reason", F.when(F.col("_again"), F.lit("exact_duplicate")).otherwise(F.col("reason")))
                  .withColumn("duplicate_of", F.when(F.col("_again"), F.col("id")).otherwise(F.col("duplicate_of")))
                  .withColumn("detail", F.when(F.col("_again"), F.lit("an identical row again"))
                              .otherwise(F.col("detail"))))
    kept = (joined.where(F.col("reason").isNull())
            .withColumn("dedup_cluster", F.coalesce(F.col("cluster"), F.col("id"))).select(*schema.document().names))
    rejects = joined.where(F.col("reason").isNotNull()).select(
        "id", "reason", "detail", "part", "source", F.get_json_object("metadata", "$.location").alias("location"),
        "url", "duplicate_of", "text", "metadata")

    return StagePlan(documents=kept, rejects=rejects, rows_in=rows_in, extra=extra, parallel_writes=True,
                     reasons=("exact_duplicate", "near_duplicate"), cleanup=lambda: _finish(index_writer, scratch))


def _finish(index_writer, scratch: str) -> None:
    """The stage's cleanup: wait for the index (its error fails the stage), then remove the scratch folder."""
    try:
        if index_writer is not None:
            index_writer.join()
    finally:
        files.remove(scratch)


def _no_rejects(spark):
    from pyspark.sql.types import StructType

    from corpus import schema

    return spark.createDataFrame([], StructType([f for f in schema.rejects().spark.fields if f.name != "stage"]))
