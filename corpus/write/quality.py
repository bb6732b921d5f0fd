"""Figures about the corpus as written — per output and part — for the stats, the report and the dataset card:
what a trainer would want to know before training on it.

All of it is Spark SQL over the written shards (no Python per row, nothing but the figures reaches the driver):

* rows, distinct documents, tokens, unique tokens and the epochs they imply (tokens / unique tokens);
* share of documents made from templates (``metadata.template_made``) and of trajectories carrying real
  execution results (``metadata.executed``);
* for trajectories: calls and user turns per trajectory, and the share of tool results that are ``{}``;
* the distinct word-trigram ratio of a seeded sample of each part's documents (``sample_docs`` per part) —
  low values mean templated, repetitive text;
* the near-duplicate share: documents of the part that ``dedup`` removed, over those it saw (when the run has it).
"""

from __future__ import annotations

import posixpath

SAMPLE_DOCS = 2000


def figures(
    spark, shard_dirs: dict[str, str], run_dir: str | None, seed: int, sample_docs: int = SAMPLE_DOCS
) -> dict[str, dict[str, dict]]:
    """{output: {part: figures}} for the Parquet shards in ``shard_dirs``."""
    from pyspark.ml.feature import NGram
    from pyspark.sql import functions as F

    from corpus.io import files
    from corpus.spark import datasets

    near = near_duplicates(spark, run_dir) if run_dir else {}
    result: dict[str, dict[str, dict]] = {}
    for output, path in sorted(shard_dirs.items()):
        shards = [e.path for e in files.list_files(path, (".parquet",))]  # not manifest.json
        rows = datasets.read(spark, *shards).select("id", "part", "source", "text", "metadata", "token_count")
        per_part = rows.groupBy("part").agg(F.count("*").alias("rows"), F.sum("token_count").alias("tokens"))
        unique = rows.dropDuplicates(["id"])
        tool_call, user = F.lit("<tool_call>"), F.lit("### User")

        def occurrences(col, needle):
            return (F.length(col) - F.length(F.replace(col, needle, F.lit("")))) / F.length(needle)

        empty_results = F.size(F.split(F.col("text"), r"\n### Tool result[^\n]*\n\{\}(?=\n|$)")) - 1
        all_results = F.size(F.split(F.col("text"), r"\n### Tool result")) - 1
        per_unique = unique.groupBy("part").agg(
            F.count("*").alias("documents"),
            F.sum("token_count").alias("unique_tokens"),
            F.avg((F.get_json_object("metadata", "$.template_made") == "true").cast("double")).alias("template"),
            F.avg((F.get_json_object("metadata", "$.executed") == "true").cast("double")).alias("executed"),
            F.avg(occurrences(F.col("text"), tool_call)).alias("calls"),
            F.avg(occurrences(F.col("text"), user)).alias("user_turns"),
            F.sum(empty_results).alias("empty_results"),
            F.sum(all_results).alias("results"),
        )
        counted = {r["part"]: r for r in per_unique.collect()}  # one small row per part
        share = F.lit(0.0)
        for part, r in counted.items():
            share = F.when(F.col("part") == part, F.lit(min(1.0, sample_docs / max(r["documents"], 1)))).otherwise(
                share
            )
        sample = unique.where((F.abs(F.xxhash64("id", F.lit(seed))) % 1000000) < share * 1000000)
        words = sample.select("part", F.split(F.lower("text"), r"[^a-z0-9_]+").alias("words"))
        grams = (
            NGram(n=3, inputCol="words", outputCol="grams")
            .transform(words)
            .select("part", F.explode("grams").alias("g"))
        )
        diversity = grams.groupBy("part").agg(
            F.count("*").alias("trigrams"), F.countDistinct("g").alias("distinct_trigrams")
        )
        totals = {r["part"]: r for r in per_part.collect()}
        variety = {r["part"]: r for r in diversity.collect()}
        parts = {}
        for part, u in counted.items():
            r = {**u.asDict(), **totals[part].asDict(), **(variety[part].asDict() if part in variety else {})}
            traj = part == "trajectory"
            parts[part] = {
                "rows": r["rows"],
                "documents": r["documents"],
                "tokens": int(r["tokens"] or 0),
                "unique_tokens": int(r["unique_tokens"] or 0),
                "epochs": round((r["tokens"] or 0) / max(r["unique_tokens"] or 0, 1), 2),
                "template_share": round(r["template"] or 0.0, 4),
                "distinct_trigram_ratio": round((r.get("distinct_trigrams") or 0) / max(r.get("trigrams") or 0, 1), 4),
                "near_duplicate_share": near.get(part),
                **(
                    {
                        "executed_share": round(r["executed"] or 0.0, 4),
                        "calls_per_trajectory": round(r["calls"], 2),
                        "user_turns_per_trajectory": round(r["user_turns"], 2),
                        "empty_tool_result_share": round((r["empty_results"] or 0) / max(r["results"] or 0, 1), 4),
                    }
                    if traj
                    else {}
                ),
            }
        if "tool_doc" in parts:
            parts["tool_doc"]["apis"] = api_counts(unique.where(F.col("part") == "tool_doc"), F)
        result[output] = dict(sorted(parts.items()))
    return result


def api_counts(tool_docs, F) -> dict[str, dict]:
    """{source: {apis, api_versions, operations, documents}} of tool docs, and ``all``: an API is a provider and
    an API name (an AWS service, a Google API, a Python module of a distribution), a version one of its versions,
    an operation one callable (HTTP operation, SDK method, Python function, class or method). Docs pages without
    an operation record (``ingest-web``) count as documents only."""
    meta = {k: F.get_json_object("metadata", f"$.{k}") for k in ("provider", "api", "version", "operation_id")}
    rows = tool_docs.select("source", *(v.alias(k) for k, v in meta.items()))
    api = F.when(F.col("api").isNotNull(), F.concat_ws("\u0001", "provider", "api"))
    version = F.when(F.col("api").isNotNull(), F.concat_ws("\u0001", "provider", "api", "version"))
    op = F.when(F.col("operation_id").isNotNull(), F.concat_ws("\u0001", "provider", "api", "version", "operation_id"))
    aggs = [
        F.countDistinct(api).alias("apis"),
        F.countDistinct(version).alias("api_versions"),
        F.countDistinct(op).alias("operations"),
        F.count("*").alias("documents"),
    ]
    out = {
        r["source"]: {k: r[k] for k in ("apis", "api_versions", "operations", "documents")}
        for r in rows.groupBy("source").agg(*aggs).collect()
    }  # one small row per source
    total = rows.agg(*aggs).first()
    out["all"] = {k: total[k] for k in ("apis", "api_versions", "operations", "documents")}
    return dict(sorted(out.items()))


def near_duplicates(spark, run_dir: str) -> dict[str, float]:
    """Share of each part's documents that dedup removed, over those it saw (from its output and rejects)."""
    from pyspark.sql import functions as F

    from corpus.io import files
    from corpus.spark import datasets

    data, rejects = posixpath.join(run_dir, "dedup", "data"), posixpath.join(run_dir, "dedup", "rejects")
    if not files.exists(posixpath.join(run_dir, "dedup", "_SUCCESS")):
        return {}
    kept = {
        r["part"]: r["n"] for r in datasets.read(spark, data).groupBy("part").agg(F.count("*").alias("n")).collect()
    }
    dropped = (
        {
            r["part"]: r["n"]
            for r in datasets.read(spark, rejects).groupBy("part").agg(F.count("*").alias("n")).collect()
        }
        if files.exists(rejects)
        else {}
    )
    return {
        p: round(dropped.get(p, 0) / max(kept.get(p, 0) + dropped.get(p, 0), 1), 4)
        for p in set(kept) | set(dropped)
        if p
    }
