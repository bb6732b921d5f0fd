"""The ``dedup`` stage: exact duplicates first (cheap), then near-duplicates (MinHash LSH).

The plan never moves text through a shuffle until the very end, and on a small machine most of its cost is Spark's
per-row and per-job overhead rather than the hashing, so the heavy passes read the Parquet files in the tasks and
move Arrow data in blobs. The batch functions named below are in corpus.dedup.batches:

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
6. **Decisions** (a small (id, _row) → reason table) are written to scratch. The tasks read the documents' row
   groups again, look each one up (``apply_decisions_fn``) and write the documents and rejects themselves
   (``stage.write_tasks``), while a job beside them filters the signature index from the features. Above
   ``BROADCAST_DECISIONS``, with fully identical rows, or (for the index) with a previous index, Spark joins and
   writes instead.

With ``previous_index``, the index's documents join step 3 as already-kept: a new document near one of them is
removed, and they are never removed. The stage writes its own index (``OUT/dedup/index``: id, signature, band
keys, and ``_index.json`` with the settings) for the next run.
"""

from __future__ import annotations

import json
import logging
import posixpath
import time
from corpus.config import DedupSection, MinHashSection
from corpus.dedup import minhash
from corpus.dedup.batches import (
    CHECKED,
    FEATURES_ROW,
    INDEX_ROWS,
    INDEX_SOURCE,
    NEAR,
    apply_decisions_fn,
    band_blobs_fn,
    bucket_edges_fn,
    check_fn,
    check_stars_fn,
    components_and_keep_fn,
    features_from_files_fn,
    index_rows_fn,
    shingle_sets_fn,
    shingle_sets_from_files_fn,
    star_rows_fn,
)
from corpus.io import files
from corpus.spark import datasets
from corpus.stage import count_rows

log = logging.getLogger("corpus")

INDEX = "index"
INDEX_META = "_index.json"


class IndexMismatch(ValueError):
    """A previous index was built with different MinHash settings (its signatures are not comparable)."""


def index_settings(mh: MinHashSection) -> dict:
    bands, rows = mh.band_rows()
    return {
        "num_perm": mh.num_perm,
        "seed": mh.seed,
        "ngram": mh.ngram,
        "tokenizer": mh.tokenizer,
        "lowercase": mh.lowercase,
        "bands": bands,
        "rows": rows,
        "hash": "xxh32-tokens/affine32",
    }


BUCKET_TASK_ROWS = 2_000_000  # band rows per candidates task: ~60 B each in Arrow, so ~120 MB (+ group-by state)


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
        raise IndexMismatch(
            f"{path}: built with other MinHash settings, signatures are not comparable: "
            + ", ".join(f"{k} {a!r} (this run: {b!r})" for k, (a, b) in differ.items())
        )
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


def _check_by_joins(
    ctx, spark, lsh, docs, edges, small: bool, mh: MinHashSection, scratch: str, checked_path: str
) -> dict:
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
                shingle_sets_from_files_fn(
                    mh, ends_path, int(spark.conf.get("spark.sql.execution.arrow.maxRecordsPerBatch"))
                ),
                "id string, sh binary",
            )
        else:
            sets = (
                docs.select("id", "text")
                .join(ends, "id", "left_semi")
                .mapInArrow(shingle_sets_fn(mh), "id string, sh binary")
            )
        # the same id twice is the same text (the id hashes it): `distinct` is a hash aggregation, no sort
        node = node.join(sets.distinct(), "id", "left")
    node = _materialise(spark, node, scratch, "ends")
    # both ends of every edge: the first join probes the broadcast edges (no shuffle), the second is a shuffle
    by_a = node.select(*[F.col(c).alias(f"{c}_a" if c != "id" else "a") for c in node.columns])
    pairs = by_a.join(F.broadcast(edges) if small else edges, "a").join(
        node.select(*[F.col(c).alias(f"{c}_b" if c != "id" else "b") for c in node.columns]), "b"
    )

    return _write_checked(pairs.mapInArrow(check_fn(mh), from_arrow_schema(CHECKED)), checked_path)


def _write_checked(checked, path: str) -> dict:
    """Write the checked pairs; their counts (all, passed, checked exactly) are observed during the write,
    so no second job reads them back."""
    from pyspark.sql import Observation
    from pyspark.sql import functions as F

    seen = Observation("dedup-checked")
    datasets.write(
        checked.observe(
            seen,
            F.count(F.lit(1)).alias("candidate_pairs"),
            F.sum(F.col("passed").cast("long")).alias("pairs_passed"),
            F.sum(F.col("exact").cast("long")).alias("pairs_checked_exactly"),
        ),
        path,
        compression=SCRATCH_COMPRESSION,
        dictionary=False,
    )
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
    lsh = survivors.where(F.col("shingles") > 0).select(
        "id", "sig", "bands", "text_len", "score", F.lit(False).alias("prior")
    )
    again = None
    if mh.previous_index:
        prior = read_index(spark, mh.previous_index, index_settings(mh))
        # a document already in the index (same id: same url and text) is not admitted twice
        again = (
            lsh.select("id")
            .join(prior.select("id"), "id", "left_semi")
            .select(
                "id",
                F.lit("exact_duplicate").alias("reason"),
                F.col("id").alias("duplicate_of"),
                F.col("id").alias("cluster"),
                F.lit("already in the previous index (same url and text)").alias("detail"),
            )
        )
        lsh = lsh.join(prior.select("id"), "id", "left_anti")
        lsh = lsh.unionByName(
            prior.select(
                "id",
                "sig",
                "bands",
                F.lit(None).cast("long").alias("text_len"),
                F.lit(None).cast("double").alias("score"),
                F.lit(True).alias("prior"),
            )
        )
        lsh = _materialise(spark, lsh, scratch, "lsh")  # else a filter of the features, already on disk
    # Candidates: the band rows (16 per document) are cut by bucket into one blob per task (band_blobs_fn), Spark
    # shuffles the blobs so that each bucket is whole in one task, and each task finds its buckets' star edges
    # with Arrow's hash group-by (bucket_edges_fn). Tasks are sized from the row count so that none holds more
    # than BUCKET_TASK_ROWS rows.
    sc.setJobDescription("forge dedup: LSH candidate pairs")
    bands, _ = mh.band_rows()
    n_rows = count_rows(posixpath.join(scratch, "lsh" if mh.previous_index else "features")) * bands
    tasks = max(int(spark.conf.get("spark.sql.shuffle.partitions")), -(-n_rows // BUCKET_TASK_ROWS))
    blobs = lsh.select("id", "prior", "bands").mapInArrow(
        band_blobs_fn(partition_labels(tasks), bands), "part int, rows binary"
    )
    edges = _materialise(
        spark,
        blobs.repartition(tasks, "part").mapInArrow(bucket_edges_fn, "a string, b string").distinct(),
        scratch,
        "edges",
    )
    n_edges = count_rows(posixpath.join(scratch, "edges"))

    sc.setJobDescription("forge dedup: check candidate pairs")
    small = 2 * n_edges <= BROADCAST_IDS  # the usual case: the edges and their ends are broadcast, not shuffled
    checked_path = posixpath.join(scratch, "checked")
    if mh.verify == "exact" and small and not mh.previous_index:
        # every candidate text read and tokenised once, its set sent to its stars' tasks; no join of sets
        stars = datasets.row_groups(spark, *document_paths(ctx.inputs)).mapInArrow(
            star_rows_fn(
                mh,
                posixpath.join(scratch, "edges"),
                partition_labels(tasks),
                int(spark.conf.get("spark.sql.execution.arrow.maxRecordsPerBatch")),
            ),
            "part int, rows binary",
        )
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
        near = (
            checked.where("passed")
            .select("a", "b")
            .coalesce(1)
            .mapInArrow(components_and_keep_fn(info_path, cfg.keep, mh.threshold), from_arrow_schema(NEAR))
        )
        if again is not None:
            near = near.unionByName(again)
        near = _materialise(spark, near, scratch, "near")
        stats["seconds_components_and_keep"] = round(time.perf_counter() - t1, 2)
        return near, lsh
    # above the limit: distributed rounds (connected_components' own one-task branch is for callers without
    # the keep rule; here it is components_and_keep_fn above)
    comps, rounds = connected_components(
        spark, checked.where("passed").select("a", "b"), posixpath.join(scratch, "components"), mh.max_iterations
    )
    stats.update(components_rounds=rounds, components_method="large-star/small-star")
    info = lsh.select("id", "text_len", "score", "prior")
    ranked = (
        comps.join(info, "id")
        .withColumn(
            "_rank",
            F.row_number().over(Window.partitionBy("component").orderBy(*keep_order(cfg.keep, prior_first=True))),
        )
        .withColumn(
            "_kept",
            F.first("id").over(Window.partitionBy("component").orderBy(*keep_order(cfg.keep, prior_first=True))),
        )
        .withColumn("_size", F.count("*").over(Window.partitionBy("component")))
        .withColumn("_kept_prior", F.max("prior").over(Window.partitionBy("component")))
    )
    near = (
        ranked.where(~F.col("prior"))
        .select(
            "id",
            F.when(F.col("_rank") > 1, F.lit("near_duplicate")).alias("reason"),
            F.when(F.col("_rank") > 1, F.col("_kept")).alias("duplicate_of"),
            F.col("_kept").alias("cluster"),
            F.when(
                F.col("_rank") > 1,
                F.concat(
                    F.lit("Jaccard ≥ "),
                    F.lit(str(mh.threshold)),
                    F.lit(" within a near-duplicate cluster of "),
                    F.col("_size").cast("string"),
                    F.when(F.col("_kept_prior"), F.lit(" including a document of the previous index")).otherwise(
                        F.lit("")
                    ),
                ),
            ).alias("detail"),
        )
        .unionByName(
            again
            if again is not None
            else spark.createDataFrame(
                [], "id string, reason string, duplicate_of string, cluster string, detail string"
            )
        )
    )
    near = _materialise(spark, near, scratch, "near")
    stats["seconds_components_and_keep"] = round(time.perf_counter() - t1, 2)
    return near, lsh


def prepare_run(config) -> None:
    """The registry's prepare hook (:func:`corpus.pipeline.prepare_stages`): :func:`prepare` for the run's config."""
    prepare(config.dedup)


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
    from corpus.stage import Background, StagePlan, count_documents, document_paths, read_documents, write_tasks

    cfg = ctx.config.dedup
    mh = cfg.minhash
    spark, sc = ctx.spark, ctx.spark.sparkContext
    # rows sharing an id are the same (url, text) twice; `_row` tells them apart (source, part, metadata). The
    # documents are only needed at the end (the passes before read the files in the tasks): Spark's planning of
    # the read (~0.8 s, listing and schema) runs in a thread beside the first jobs.
    docs_ready = Background(
        lambda: read_documents(spark, ctx.inputs).withColumn("_row", F.xxhash64("source", "part", "metadata")),
        "dedup-documents",
    )
    rows_in = count_documents(ctx.inputs)
    extra: dict = {"keep": cfg.keep}
    if not cfg.exact.enabled and not mh.enabled:
        return StagePlan(
            documents=docs_ready.join().drop("_row"), rejects=_no_rejects(spark), rows_in=rows_in, extra=extra
        )
    if mh.enabled:
        bands, rows = mh.band_rows()
        extra["minhash"] = {
            "bands": bands,
            "rows": rows,
            "num_perm": mh.num_perm,
            "ngram": mh.ngram,
            "threshold": mh.threshold,
            "verify": mh.verify,
        }
    scratch = ctx.path("_scratch")
    t0 = time.perf_counter()
    sc.setJobDescription("forge dedup: hashes and signatures")
    batch_rows = int(spark.conf.get("spark.sql.execution.arrow.maxRecordsPerBatch"))
    inputs = document_paths(ctx.inputs)
    feats = _materialise(
        spark,
        datasets.row_groups(spark, *inputs).mapInArrow(
            features_from_files_fn(mh, cfg.exact.enabled, cfg.score_signal, batch_rows), from_arrow_schema(FEATURES_ROW)
        ),
        scratch,
        "features",
    )  # written as computed: the signatures are never shuffled
    # One window, over the narrow columns only, decides exact duplicates and repeated records together: rows
    # grouped by the normalised-text hash (or by id when exact dedup is off; the same record twice has the same
    # id and text, so it always shares a group), ordered by the keep rule, then id, then _row. The first row of
    # a group stays.
    group = "norm_hash" if cfg.exact.enabled else "id"
    w = Window.partitionBy(group).orderBy(*keep_order(cfg.keep), F.col("_row"))
    sc.setJobDescription("forge dedup: exact duplicates")
    # counted as it is written (an observation, no second job): are there fully identical rows, how many go
    seen = Observation("dedup-exact")
    exact = _materialise(
        spark,
        feats.select("id", "_row", group, "text_len", "score")
        .withColumn("_rank", F.row_number().over(w))
        .withColumn("_kept", F.first("id").over(w))
        .withColumn(
            "_identical",
            F.coalesce((F.lag("id").over(w) == F.col("id")) & (F.lag("_row").over(w) == F.col("_row")), F.lit(False)),
        )
        .observe(
            seen,
            F.sum(F.col("_identical").cast("long")).alias("identical"),
            F.sum(((F.col("_rank") > 1) & ~F.col("_identical")).cast("long")).alias("later"),
        ),
        scratch,
        "exact",
    )
    counts = seen.get
    # fully identical rows (same id and _row) can only be told apart in the documents: left to the final join
    exact_removed = exact.where((F.col("_rank") > 1) & ~F.col("_identical")).select(
        "id",
        "_row",
        F.lit("exact_duplicate").alias("reason"),
        F.col("_kept").alias("duplicate_of"),
        F.col("_kept").alias("cluster"),
        F.when(F.col("id") == F.col("_kept"), F.lit("the same record (same url and text) again"))
        .otherwise(F.concat(F.lit("same normalised text as "), F.col("_kept")))
        .alias("detail"),
    )
    fully_identical = bool(counts["identical"])
    # the survivors' features: all but the rows removed above (usually few, so broadcast). A fully identical
    # row has the same (id, _row) as its twin, so it is not in that list: both copies stay, and one is dropped.
    later = exact.where((F.col("_rank") > 1) & ~F.col("_identical")).select("id", "_row")
    survivors = feats.join(
        F.broadcast(later) if (counts["later"] or 0) <= BROADCAST_IDS else later, ["id", "_row"], "left_anti"
    )
    if fully_identical:
        survivors = survivors.dropDuplicates(["id", "_row"])
    extra["seconds_features_and_exact"] = round(time.perf_counter() - t0, 2)
    parts = []
    if mh.enabled:
        near, lsh = near_duplicates(ctx, survivors, docs_ready, cfg, scratch, extra)
        near = near.join(exact.where(F.col("_rank") == 1).select("id", "_row"), "id")
        # an exact duplicate's twin may itself be removed as a near-duplicate: point at the document kept
        final = near.where(F.col("reason").isNotNull()).select(
            F.col("id").alias("_twin_id"), F.col("duplicate_of").alias("_final")
        )
        exact_removed = exact_removed.join(final, F.col("duplicate_of") == F.col("_twin_id"), "left").select(
            "id",
            "_row",
            "reason",
            F.coalesce("_final", "duplicate_of").alias("duplicate_of"),
            F.coalesce("_final", "cluster").alias("cluster"),
            "detail",
        )
        parts.append(near)
    parts.append(exact_removed)
    decisions = parts[0]
    for p in parts[1:]:
        decisions = decisions.unionByName(p)
    decisions = _materialise(spark, decisions, scratch, "decisions")
    decisions_path = posixpath.join(scratch, "decisions")
    sc.setJobDescription("forge dedup: cluster sizes")
    extra["cluster_sizes"] = cluster_sizes(decisions)
    small = count_rows(decisions_path) <= BROADCAST_DECISIONS  # the usual case: read whole by every task

    index_writer = None
    if mh.enabled and mh.write_index:

        def write_index():
            sc.setJobDescription("forge dedup: write the signature index")  # this thread's jobs
            target = ctx.path(INDEX, "data")
            if small and not mh.previous_index and not fully_identical:
                # the features scratch filtered by the decisions in the tasks (signatures never enter the JVM); a
                # fully identical row is in the features twice, so that case goes through Spark's dedup below
                datasets.rewrite_row_groups(
                    spark,
                    [posixpath.join(scratch, "features")],
                    target,
                    INDEX_SOURCE,
                    INDEX_ROWS,
                    index_rows_fn(decisions_path),
                    dictionary=False,
                )
            else:  # the previous index (never removed) plus this run's documents that stay
                removed = decisions.where(F.col("reason").isNotNull()).select("id")
                index = lsh.where("prior").unionByName(lsh.where(~F.col("prior")).join(removed, "id", "left_anti"))
                datasets.write(index.select(*INDEX_ROWS.names), target, dictionary=False)
            files.write_text(ctx.path(INDEX, INDEX_META), json.dumps(index_settings(mh), indent=2, sort_keys=True))

        # written while the documents and rejects are: Spark runs jobs from two threads side by side, so the
        # cores left idle by one job's scheduling gaps and last tasks work on the other
        index_writer = Background(write_index, "dedup-index")

    # Apply the decisions. The usual case: the tasks read the documents' row groups themselves, match them to
    # the decisions (small, read whole by every task) and write the documents and rejects (one job, every text
    # read once, none through the JVM). Otherwise Spark joins: broadcast when the decisions fit, else shuffled.
    if small and not fully_identical:
        try:
            return write_tasks(
                ctx,
                datasets.row_groups(spark, *inputs),
                apply_decisions_fn(decisions_path, ctx.name),
                rows_in=rows_in,
                extra=extra,
            )
        finally:
            _finish(index_writer, scratch)
    joined = docs_ready.join().join(F.broadcast(decisions) if small else decisions, ["id", "_row"], "left")
    if fully_identical:
        # identical rows (the same dataset read twice): only a window over the documents tells them apart
        twin = Window.partitionBy("id", "_row").orderBy("lang", "title")
        again = F.row_number().over(twin) > 1
        joined = (
            joined.withColumn("_again", again)
            .withColumn("reason", F.when(F.col("_again"), F.lit("exact_duplicate")).otherwise(F.col("reason")))
            .withColumn("duplicate_of", F.when(F.col("_again"), F.col("id")).otherwise(F.col("duplicate_of")))
            .withColumn("detail", F.when(F.col("_again"), F.lit("an identical row again")).otherwise(F.col("detail")))
        )
    kept = (
        joined.where(F.col("reason").isNull())
        .withColumn("dedup_cluster", F.coalesce(F.col("cluster"), F.col("id")))
        .select(*schema.document().names)
    )
    rejects = joined.where(F.col("reason").isNotNull()).select(
        "id",
        "reason",
        "detail",
        "part",
        "source",
        F.get_json_object("metadata", "$.location").alias("location"),
        "url",
        "duplicate_of",
        "text",
        "metadata",
    )

    return StagePlan(
        documents=kept,
        rejects=rejects,
        rows_in=rows_in,
        extra=extra,
        parallel_writes=True,
        reasons=("exact_duplicate", "near_duplicate"),
        cleanup=lambda: _finish(index_writer, scratch),
    )


def cluster_sizes(decisions) -> dict[str, int]:
    """Duplicate clusters (a kept document and the ones removed as its duplicates) by size, in power-of-two
    buckets (``"2"``, ``"3-4"``, ``"5-8"``, ...) plus ``"largest"``: the report's histogram. One small job over
    the decisions (one row per removed document)."""
    from pyspark.sql import functions as F

    sizes = decisions.where(F.col("reason").isNotNull()).groupBy("cluster").agg((F.count("*") + 1).alias("size"))
    rows = (
        sizes.groupBy(F.ceil(F.log2(F.col("size").cast("double"))).cast("int").alias("k"))
        .agg(F.count("*").alias("clusters"), F.max("size").alias("largest"))
        .collect()
    )  # one row per power of two
    out = {}
    for r in sorted(rows, key=lambda r: r["k"]):
        k = r["k"]
        out["2" if k == 1 else f"{2 ** (k - 1) + 1}-{2**k}"] = int(r["clusters"])
    out["largest"] = max((int(r["largest"]) for r in rows), default=0)
    return out


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
