"""Exact dedup: documents whose normalised text (NFKC, case-folded, whitespace collapsed) is the same.

The hash is computed in a batch function; grouping is a Spark window over the hash, ordered by the keep rule
with the id as the final tie-break, so the kept document never depends on partitioning (unlike
``monotonically_increasing_id``, text-dedup #28). Dropped documents are rejects with reason ``exact_duplicate``
and ``duplicate_of`` = the kept id; kept documents get ``dedup_cluster`` = their own id.
"""

from __future__ import annotations

from typing import Iterable, Iterator

import pyarrow as pa

from corpus.ids import text_hash

HASH_COL = "_norm_hash"


def hash_batch(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """mapInArrow function: document batches → the same batches plus the normalised-text hash."""
    for batch in batches:
        hashes = [text_hash(t) for t in batch.column("text").to_pylist()]
        yield batch.append_column(HASH_COL, pa.array(hashes, pa.string()))


def keep_order(rule: str):
    """Sort columns that put the document to keep first."""
    from pyspark.sql import functions as F

    tie = [F.col("id").asc(), F.col("source").asc(), F.col("metadata").asc()]
    if rule == "longest_text":
        return [F.length("text").desc()] + tie
    return tie


def plan(docs, rule: str):
    """(kept documents, rejects) DataFrames."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F
    from pyspark.sql.pandas.types import from_arrow_schema

    from corpus import schema

    arrow = schema.document().arrow
    with_hash = pa.schema(list(arrow) + [pa.field(HASH_COL, pa.string())])
    hashed = docs.mapInArrow(hash_batch, from_arrow_schema(with_hash))
    w = Window.partitionBy(HASH_COL).orderBy(*keep_order(rule))
    ranked = hashed.withColumn("_rank", F.row_number().over(w)).withColumn("_kept", F.first("id").over(w))
    kept = ranked.where(F.col("_rank") == 1).withColumn("dedup_cluster", F.col("id"))
    dropped = ranked.where(F.col("_rank") > 1).select(
        "id", F.lit("exact_duplicate").alias("reason"),
        F.concat(F.lit("same normalised text as "), F.col("_kept")).alias("detail"), "part", "source",
        F.get_json_object("metadata", "$.location").alias("location"), "url",
        F.col("_kept").alias("duplicate_of"), "text", "metadata")
    return kept.select(*schema.document().names), dropped
