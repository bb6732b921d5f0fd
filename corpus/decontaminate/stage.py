"""The ``decontaminate`` stage: documents that share word n-grams with a benchmark's test items are removed
(``document`` mode) or cut (``span`` mode), each with the reason ``contaminated:<benchmark>``.

The plan, all in Spark (nothing but a handful of n-gram lengths and, optionally, a Bloom filter of the
benchmark hashes reaches the driver):

1. benchmark files → items (one task per file) → n-gram hashes (:mod:`corpus.decontaminate.ngrams`);
2. documents → the hashes of their k-grams for every length k the benchmarks need, with byte offsets
   (only the Bloom-filter candidates when the prefilter is on);
3. a join on the 64-bit hash, then per document: matching n-grams, the benchmarks, an example item, the spans;
4. a left join back to the documents (small side broadcast by adaptive execution), and one batch function that
   keeps, cuts or rejects each document.

Short items (fewer than ``min_item_tokens`` tokens, e.g. "What is the capital of Brazil?") are too generic to
look for inside text; with ``exact_short_items`` a document is contaminated when one of its lines *is* such an
item (the same token hash over the whole line; headers such as ``### User`` are lines of their own). Their hashes
(benchmark data, a few thousand) are broadcast; the corpus side emits only the lines that match.
"""

from __future__ import annotations

import posixpath
from typing import Iterable, Iterator

import numpy as np
import pyarrow as pa

from corpus import schema, signals
from corpus.config import DecontaminateSection
from corpus.decontaminate import ngrams
from corpus.spark.envelope import Emitter

STAGE = "decontaminate"
GRAM_SCHEMA = pa.schema(
    [
        pa.field("benchmark", pa.string()),
        pa.field("item", pa.string()),
        pa.field("h", pa.int64()),
        pa.field("k", pa.int32()),
    ]
)
CANDIDATE_SCHEMA = pa.schema(
    [pa.field("id", pa.string()), pa.field("h", pa.int64()), pa.field("start", pa.int64()), pa.field("end", pa.int64())]
)
SHORT_SCHEMA = pa.schema([pa.field("benchmark", pa.string()), pa.field("item", pa.string()), pa.field("h", pa.int64())])


def short_batch(batches: Iterable[pa.RecordBatch], max_tokens: int, min_tokens: int) -> Iterator[pa.RecordBatch]:
    """mapInArrow function: benchmark items → the whole-item hashes of those with ``min_tokens``..``max_tokens``
    tokens."""
    for batch in batches:
        idx, hs = ngrams.short_item_hashes(batch.column("text"), max_tokens, min_tokens)
        take = pa.array(idx, pa.int64())
        yield pa.RecordBatch.from_arrays(
            [batch.column("benchmark").take(take), batch.column("item").take(take), pa.array(hs, pa.int64())],
            schema=SHORT_SCHEMA,
        )


def exact_batch(
    batches: Iterable[pa.RecordBatch], max_tokens: int, hashes, turn_only_below: int = 1
) -> Iterator[pa.RecordBatch]:
    """mapInArrow function: (id, text) → (id, hash, start, end) of the lines that are a short benchmark item
    (below ``turn_only_below`` tokens: only lines that are a whole user turn or instruction)."""
    wanted = hashes.value
    for batch in batches:
        doc, hs, bs, be = ngrams.line_hashes(batch.column("text"), max_tokens, turn_only_below=turn_only_below)
        keep = np.isin(hs, wanted)
        ids = batch.column("id").take(pa.array(doc[keep], pa.int64()))
        yield pa.RecordBatch.from_arrays(
            [ids, pa.array(hs[keep]), pa.array(bs[keep]), pa.array(be[keep])], schema=CANDIDATE_SCHEMA
        )


def grams_batch(batches: Iterable[pa.RecordBatch], n: int, min_tokens: int) -> Iterator[pa.RecordBatch]:
    """mapInArrow function: benchmark items → their n-gram hashes; an item too short to match gets one row
    with a null hash (so the stats can count it)."""
    for batch in batches:
        item_idx, hs, ks = ngrams.item_hashes(batch.column("text"), n, min_tokens)
        has = np.zeros(batch.num_rows, dtype=bool)
        has[item_idx] = True
        short = np.flatnonzero(~has)
        idx = np.concatenate([item_idx, short])
        bench = batch.column("benchmark").take(pa.array(idx))
        item = batch.column("item").take(pa.array(idx))
        h = pa.array(
            np.concatenate([hs, np.zeros(len(short), np.int64)]),
            mask=np.concatenate([np.zeros(len(hs), bool), np.ones(len(short), bool)]),
        )
        k = pa.array(np.concatenate([ks, np.zeros(len(short), np.int64)]).astype(np.int32))
        yield pa.RecordBatch.from_arrays([bench, item, h, k], schema=GRAM_SCHEMA)


def candidates_batch(batches: Iterable[pa.RecordBatch], lengths: list[int], bloom) -> Iterator[pa.RecordBatch]:
    """mapInArrow function: (id, text) → (id, hash, start byte, end byte) of the documents' k-grams."""
    bits = bloom.value if bloom is not None else None
    for batch in batches:
        doc, hs, bs, be = ngrams.corpus_hashes(batch.column("text"), lengths, bits)
        ids = batch.column("id").take(pa.array(doc))
        yield pa.RecordBatch.from_arrays([ids, pa.array(hs), pa.array(bs), pa.array(be)], schema=CANDIDATE_SCHEMA)


def cut_spans(text: str, spans: list[tuple[int, int]], margin: int) -> tuple[list[str], int]:
    """The pieces of ``text`` left after removing each byte span widened by ``margin`` bytes (moved to UTF-8
    character boundaries), and the bytes removed."""
    raw = text.encode("utf-8", "surrogatepass")
    n = len(raw)

    def boundary(i: int, step: int) -> int:
        while 0 < i < n and (raw[i] & 0xC0) == 0x80:
            i += step
        return i

    merged: list[list[int]] = []
    for s, e in sorted(spans):
        s, e = boundary(max(0, s - margin), -1), boundary(min(n, e + margin), 1)
        if merged and s <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    pieces, last, removed = [], 0, 0
    for s, e in merged:
        pieces.append(raw[last:s])
        removed += e - s
        last = e
    pieces.append(raw[last:])
    kept = [p.decode("utf-8", "surrogatepass").strip() for p in pieces]
    return [p for p in kept if p], removed


SCAN_SCHEMA = pa.schema([*CANDIDATE_SCHEMA, pa.field("line", pa.bool_())])
BROADCAST_MATCHES = 2_000_000  # matched documents (a few hundred bytes each) read by every task, not joined


def scan_fn(parts: list[str], lengths: list[int], bloom, max_tokens: int, short, anywhere: int, batch_rows: int):
    """mapInArrow function over ``datasets.row_groups`` of the documents: each row group read with pyarrow (its
    texts never pass through the JVM) and scanned once for both kinds of match — the k-gram candidates
    (``line`` false) and, when ``short`` (the broadcast short-item hashes) is set, the lines that are a short
    item (``line`` true)."""
    from corpus.spark import datasets

    arrow = pa.schema([pa.field("id", pa.string()), pa.field("part", pa.string()), pa.field("text", pa.string())])
    among = datasets.where_in("part", parts)

    def run(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for b in datasets.read_row_groups(batches, arrow, batch_rows, where=among):
            if lengths:
                for c in candidates_batch([b], lengths, bloom):
                    yield pa.RecordBatch.from_arrays(
                        [*c.columns, pa.array([False] * c.num_rows, pa.bool_())], schema=SCAN_SCHEMA
                    )
            if short is not None:
                for c in exact_batch([b], max_tokens, short, anywhere):
                    yield pa.RecordBatch.from_arrays(
                        [*c.columns, pa.array([True] * c.num_rows, pa.bool_())], schema=SCAN_SCHEMA
                    )

    return run


_matches_cache: dict[str, dict[str, dict]] = {}  # one entry: the running stage's matched documents, per worker


def matches_at(path: str) -> dict[str, dict]:
    """The matched-documents scratch dataset at ``path`` (id → its match columns), read once per worker."""
    if path not in _matches_cache:
        import pyarrow.dataset as ds

        from corpus.io import files

        _matches_cache.clear()
        fs, inner = files.filesystem(path)
        rows = ds.dataset(inner, format="parquet", filesystem=fs).to_table().to_pylist()
        _matches_cache[path] = {r.pop("id"): r for r in rows}
    return _matches_cache[path]


def decide_fn(matches_path: str, cfg: DecontaminateSection, batch_rows: int):
    """Producer for ``stage.write_tasks`` over ``datasets.row_groups`` of the documents: each row group read with
    pyarrow and written by the task. The documents without a match (nearly all) pass as they are, column-wise;
    only the matched ones (a small dataset every task reads whole) become Python rows for
    :func:`decontaminate_rows` to keep, cut or reject. Against Spark's join of the documents with their matches,
    every text is read once and none is shuffled or copied into the JVM."""
    from collections import Counter

    import pyarrow.compute as pc

    from corpus.spark.envelope import split_batch

    arrow = schema.document().arrow
    no_rejects = pa.RecordBatch.from_pylist([], schema=schema.rejects().arrow)

    def run(batches: Iterable[pa.RecordBatch]):
        from corpus.spark import datasets

        matches = matches_at(matches_path)
        ids = pa.array(sorted(matches), pa.string())
        for b in datasets.read_row_groups(batches, arrow, batch_rows):
            hit = pc.is_in(b.column("id"), value_set=ids)
            clean = b.filter(pc.invert(hit))
            yield clean, no_rejects, Counter(records_in=clean.num_rows)
            if clean.num_rows == b.num_rows:
                continue
            rows = b.filter(hit).to_pylist()
            for r in rows:
                r.update(matches[r["id"]])
            out = Emitter(STAGE)
            decontaminate_rows(rows, cfg, out)
            yield split_batch(out.batch(), STAGE)

    return run


def decontaminate_rows(rows: list[dict], cfg: DecontaminateSection, out: Emitter) -> None:
    out.count("records_in", len(rows))
    names = schema.document().names
    for r in rows:
        doc = {k: r[k] for k in names}
        grams = r.get("_grams") or 0
        exact = r.get("_exact_benchmarks") or []
        if grams < cfg.min_matches and not exact:
            out.doc(**doc)
            continue
        benches = sorted(set((r.get("_benchmarks") or []) if grams >= cfg.min_matches else []) | set(exact))
        reason = f"contaminated:{benches[0]}"
        if grams >= cfg.min_matches:
            detail = (
                f"{grams} matching {cfg.ngram}-grams with {', '.join(r['_benchmarks'])} (e.g. item {r['_example']})"
            )
        else:
            detail = f"a line is a short item of {', '.join(exact)} (exact match: item {r['_exact_example']})"
        for b in benches:
            out.count(f"documents_matching:{b}")
        for b in exact:
            out.count(f"documents_matching_exact:{b}")
        rejected = dict(
            id=doc["id"],
            part=doc["part"],
            source=doc["source"],
            url=doc["url"],
            text=doc["text"],
            metadata=doc["metadata"],
        )
        if cfg.mode == "document":
            out.reject(reason, detail, **rejected)
            continue
        spans = [(s["start"], s["end"]) for s in (r.get("_spans") or []) + (r.get("_exact_spans") or [])]
        pieces, removed = cut_spans(doc["text"], spans, cfg.span_margin_chars)
        if not pieces or len(pieces) > cfg.max_pieces:
            out.reject(reason, f"{detail}; {len(pieces)} pieces left (max {cfg.max_pieces})", **rejected)
            continue
        doc["text"] = "\n\n".join(pieces)
        doc["signals"] = signals.merged(doc.get("signals"), decontaminated_bytes=float(removed))
        out.count("documents_cut")
        out.count("bytes_cut", removed)
        out.doc(**doc)


def build(ctx):
    from pyspark import StorageLevel
    from pyspark.sql import functions as F
    from pyspark.sql.pandas.types import from_arrow_schema

    from corpus.decontaminate import benchmarks
    from corpus.spark.envelope import envelope_schema, per_batch
    from corpus.io import files
    from corpus.spark import datasets
    from corpus.stage import count_rows, document_paths, envelope_plan, read_documents, write_tasks

    cfg: DecontaminateSection = ctx.config.decontaminate

    def decide(batches):  # documents (joined with their matches, if any) → envelope batches
        return per_batch(batches, STAGE, decontaminate_rows, cfg)

    spark = ctx.spark
    sc = spark.sparkContext
    docs = read_documents(spark, ctx.inputs)
    extra: dict = {
        "ngram": cfg.ngram,
        "mode": cfg.mode,
        "min_item_tokens": cfg.min_item_tokens,
        "min_matches": cfg.min_matches,
    }
    task_rows = [t for spec in cfg.benchmarks for t in benchmarks.tasks(spec)]
    if not task_rows:
        env = docs.mapInArrow(decide, from_arrow_schema(envelope_schema()))
        return envelope_plan(env, extra={**extra, "benchmarks": {}})

    sc.setJobDescription(f"forge {STAGE}: benchmark n-grams")
    task_df = spark.createDataFrame(
        pa.Table.from_pylist(task_rows, schema=benchmarks.TASK_SCHEMA).to_pandas(),
        from_arrow_schema(benchmarks.TASK_SCHEMA),
    )
    task_df = task_df.repartition(min(len(task_rows), 4 * sc.defaultParallelism))
    items = task_df.mapInArrow(benchmarks.items_batch, from_arrow_schema(benchmarks.ITEM_SCHEMA))
    n, min_tokens = cfg.ngram, cfg.min_item_tokens
    grams = items.mapInArrow(lambda it: grams_batch(it, n, min_tokens), from_arrow_schema(GRAM_SCHEMA)).persist(
        StorageLevel.MEMORY_AND_DISK
    )
    per_bench = (
        grams.groupBy("benchmark")
        .agg(
            F.countDistinct("item").alias("items"),
            F.count(F.when(F.col("h").isNull(), 1)).alias("items_short"),
            F.countDistinct("h").alias("ngrams"),
            F.array_sort(F.collect_set("k")).alias("lengths"),
        )
        .collect()
    )  # one row per benchmark
    extra["benchmarks"] = {
        r["benchmark"]: {"items": r["items"], "items_too_short": r["items_short"], "ngrams": r["ngrams"]}
        for r in per_bench
    }
    lengths = sorted({int(k) for r in per_bench for k in r["lengths"] if k})
    extra["gram_lengths"] = lengths
    table = (
        grams.where(F.col("h").isNotNull())
        .groupBy("h", "benchmark")
        .agg(F.min("item").alias("item"))
        .persist(StorageLevel.MEMORY_AND_DISK)
    )
    distinct_hashes = sum(r["ngrams"] for r in per_bench)
    bloom = None
    if cfg.prefilter and lengths and distinct_hashes <= cfg.prefilter_max_hashes:
        sc.setJobDescription(f"forge {STAGE}: Bloom filter of {distinct_hashes:,} benchmark n-grams")
        # benchmark hashes (not corpus data) to the driver: 8 bytes each, bounded by prefilter_max_hashes
        hashes = table.select("h").distinct().toArrow().column("h").to_numpy()
        bloom = sc.broadcast(ngrams.bloom_filter(hashes))
    extra["prefilter"] = bloom is not None

    parts = list(cfg.parts)
    short_table = hashes_bc = None
    max_tokens = anywhere = 0
    if cfg.exact_short_items and (cfg.exact_min_tokens < cfg.min_item_tokens or cfg.exact_turn_items):
        max_tokens, least = cfg.min_item_tokens - 1, 1 if cfg.exact_turn_items else cfg.exact_min_tokens
        anywhere = cfg.exact_min_tokens
        short_table = (
            items.mapInArrow(lambda it: short_batch(it, max_tokens, least), from_arrow_schema(SHORT_SCHEMA))
            .groupBy("h", "benchmark")
            .agg(F.min("item").alias("item"))
            .persist(StorageLevel.MEMORY_AND_DISK)
        )
        sc.setJobDescription(f"forge {STAGE}: short benchmark items")
        # whole-item hashes of the short benchmark items (not corpus data): 8 bytes each, a few thousand
        short_hashes = short_table.select("h").distinct().toArrow().column("h").to_numpy()
        extra["short_items_exact"] = int(len(short_hashes))
        hashes_bc = sc.broadcast(np.sort(short_hashes))

    # One pass over the documents, in Python, for both kinds of match; only what may match is written (the
    # Bloom filter's candidates and the lines that are a short item), then joined with the benchmark tables.
    paths = document_paths(ctx.inputs)
    batch_rows = int(spark.conf.get("spark.sql.execution.arrow.maxRecordsPerBatch"))
    scratch = ctx.path("_scratch")
    scan_path = posixpath.join(scratch, "scan")
    sc.setJobDescription(f"forge {STAGE}: scan the documents")
    datasets.write(
        datasets.row_groups(spark, *paths).mapInArrow(
            scan_fn(parts, lengths, bloom, max_tokens, hashes_bc, anywhere, batch_rows),
            from_arrow_schema(SCAN_SCHEMA),
        ),
        scan_path,
    )
    scan = datasets.read(spark, scan_path, schema=from_arrow_schema(SCAN_SCHEMA))
    aggs = [
        F.countDistinct("h").alias("_grams"),
        F.array_sort(F.collect_set("benchmark")).alias("_benchmarks"),
        F.min("item").alias("_example"),
    ]
    if cfg.mode == "span":
        aggs.append(F.collect_list(F.struct("start", "end")).alias("_spans"))
    matched = scan.where(~F.col("line")).join(table, "h").groupBy("id").agg(*aggs)
    if short_table is not None:
        exact_aggs = [
            F.array_sort(F.collect_set("benchmark")).alias("_exact_benchmarks"),
            F.min("item").alias("_exact_example"),
        ]
        if cfg.mode == "span":
            exact_aggs.append(F.collect_list(F.struct("start", "end")).alias("_exact_spans"))
        per_doc_exact = scan.where(F.col("line")).join(short_table, "h").groupBy("id").agg(*exact_aggs)
        matched = matched.join(per_doc_exact, "id", "full")
    matches_path = posixpath.join(scratch, "matches")
    sc.setJobDescription(f"forge {STAGE}: matched documents")
    datasets.write(matched, matches_path)
    extra["documents_matched"] = count_rows(matches_path)

    def cleanup() -> None:
        grams.unpersist()
        table.unpersist()
        if short_table is not None:
            short_table.unpersist()
        for b in (bloom, hashes_bc):
            if b is not None:
                b.unpersist()
        files.remove(scratch)

    if extra["documents_matched"] <= BROADCAST_MATCHES:
        # the usual case: every task reads the (few) matched documents whole and its documents' row groups itself
        try:
            return write_tasks(
                ctx,
                datasets.row_groups(spark, *paths),
                decide_fn(matches_path, cfg, batch_rows),
                rows_in="records_in",
                extra=extra,
            )
        finally:
            cleanup()
    # a heavily contaminated input: Spark joins the documents with their matches
    joined = docs.join(datasets.read(spark, matches_path), "id", "left")
    env = joined.mapInArrow(decide, from_arrow_schema(envelope_schema()))
    plan = envelope_plan(env, extra=extra)
    base_cleanup = plan.cleanup

    def cleanup_all() -> None:
        base_cleanup()
        cleanup()

    plan.cleanup = cleanup_all
    return plan
