"""The ``dedup`` stage. This issue's part: exact duplicates (corpus.dedup.exact); MinHash LSH plugs in here."""

from __future__ import annotations

from corpus.dedup import exact


def _no_rejects(spark):
    from pyspark.sql.types import StructType

    from corpus import schema

    return spark.createDataFrame([], StructType([f for f in schema.rejects().spark.fields if f.name != "stage"]))


def build(ctx):
    from corpus.stage import StagePlan, read_documents

    cfg = ctx.config.dedup
    docs = read_documents(ctx.spark, ctx.inputs)
    rows_in = docs.count()
    if not cfg.exact.enabled:
        return StagePlan(documents=docs, rejects=_no_rejects(ctx.spark), rows_in=rows_in)
    kept, dropped = exact.plan(docs, cfg.keep)
    return StagePlan(documents=kept, rejects=dropped, rows_in=rows_in, extra={"keep": cfg.keep})
