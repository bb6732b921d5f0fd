"""The ``mix`` stage: for each named output (``stage1``, ``stage2`` by default), which documents go in and how
many times, so that the output's tokens by part meet the configured ratios (see :mod:`corpus.mix.plan`).

It writes ``selection/`` (output, id, part, tokens, copies; schema ``mix_selection``), not documents, and in
its stats the plan that made it (whole copies and the exact threshold on ``u`` per part): ``write`` applies the
plan to each document in its tasks (:func:`seeded_u`, :func:`corpus.mix.plan.copies_by_rule`), so text is read
once and rewritten once, when the shards are written, with no join. Only aggregates reach the
driver: tokens by part, and two 4,096-bucket token histograms per part and output.

Every document is accounted for: rows in = rows out = the documents considered; the stats say, per output, how
many were chosen, with how many copies, and the composition targeted and achieved (token shares).
"""

from __future__ import annotations

import posixpath

from corpus.config import MixSection
from corpus.mix import plan
from corpus.spark import datasets

STAGE = "mix"
SELECTION = "selection"


def seeded_key(seed: int, output: str):
    """u in [0, 1): 52 bits of SHA-256 over seed, output and id (same id, same key on any cluster)."""
    from pyspark.sql import functions as F

    digest = F.sha2(F.concat(F.lit(f"{seed}:{output}:"), F.col("id")), 256)
    return F.conv(F.substring(digest, 1, 13), 16, 10).cast("long") / F.lit(float(16**13))


def seeded_words(seed: int, output: str, ids: list[str]):
    """The first two 64-bit big-endian words of sha256("<seed>:<output>:<id>") for each id (uint64, shape
    (n, 2)): word 0 gives :func:`seeded_u`, word 1 the ``write`` stage's row keys (one hash serves both)."""
    import hashlib

    import numpy as np

    prefix = f"{seed}:{output}:"
    digests = b"".join(hashlib.sha256((prefix + i).encode()).digest()[:16] for i in ids)
    return np.frombuffer(digests, ">u8").astype(np.uint64).reshape(-1, 2)


def seeded_u(words):
    """:func:`seeded_key` computed in Python from :func:`seeded_words` (a float64 array): the same 52 bits over
    the same UTF-8 bytes, divided by the same power of two, so both give the same doubles (tested)."""
    import numpy as np

    return (words[:, 0] >> np.uint64(12)).astype(np.float64) / float(1 << 52)


def with_tokens(docs, spec: str):
    """(id, part, tokens): ``token_count`` as set by ``redact``; counted here for documents without one."""
    import pyarrow as pa
    from pyspark.sql import functions as F
    from pyspark.sql.pandas.types import from_arrow_schema

    from corpus.text import tokenizer

    out_schema = pa.schema([("id", pa.string()), ("part", pa.string()), ("tokens", pa.int64())])

    def count(batches):
        for b in batches:
            counts = tokenizer.counter(spec)(b.column("text").to_pylist())
            yield pa.RecordBatch.from_arrays(
                [b.column("id"), b.column("part"), pa.array(counts, pa.int64())], schema=out_schema
            )

    known = docs.where(F.col("token_count").isNotNull()).select("id", "part", F.col("token_count").alias("tokens"))
    missing = docs.where(F.col("token_count").isNull()).select("id", "part", "text")
    return known.unionByName(missing.mapInArrow(count, from_arrow_schema(out_schema)))


def _histogram(rows, part_col="part", bucket_col="b", value_col="t") -> dict[str, dict[int, int]]:
    out: dict[str, dict[int, int]] = {}
    for r in rows:
        out.setdefault(r[part_col], {})[int(r[bucket_col])] = int(r[value_col])
    return out


def choose(base, name: str, output, available: dict[str, int], seed: int):
    """The selection DataFrame of one output, and its plan (quotas, copies, thresholds, warnings)."""
    from functools import reduce

    from pyspark.sql import functions as F

    shares = output.shares()
    epochs = {p: output.epochs(p) for p in shares}
    quota, warnings = plan.quotas(available, shares, epochs, output.when_short, output.max_tokens)
    whole, rest = {}, {}
    for p, q in quota.items():
        whole[p], rest[p] = plan.copies(q, available[p])
    keyed = base.where(F.col("part").isin(list(quota))).withColumn("u", seeded_key(seed, name))
    need = [p for p in quota if rest[p] > 0]
    thresholds = {p: 0.0 for p in quota}
    if need:
        bucket = F.floor(F.col("u") * plan.BUCKETS)
        level1 = _histogram(
            keyed.where(F.col("part").isin(need))
            .groupBy("part", bucket.alias("b"))
            .agg(F.sum("tokens").alias("t"))
            .collect()
        )  # ≤ 4,096 rows per part
        crossings = {p: plan.crossing(level1.get(p, {}), rest[p])[0] for p in need}
        inside = reduce(lambda a, b: a | b, [(F.col("part") == p) & (bucket == b) for p, b in crossings.items()])
        sub = F.floor((F.col("u") * plan.BUCKETS - bucket) * plan.BUCKETS)
        level2 = _histogram(
            keyed.where(inside).groupBy("part", sub.alias("b")).agg(F.sum("tokens").alias("t")).collect()
        )  # ≤ 4,096 rows per part
        for p in need:
            thresholds[p] = plan.threshold(level1.get(p, {}), lambda b, p=p: level2.get(p, {}), rest[p])
    n_copies = F.lit(0)
    for p in quota:
        n_copies = F.when(
            F.col("part") == p, F.lit(whole[p]) + (F.col("u") < F.lit(thresholds[p])).cast("int")
        ).otherwise(n_copies)
    selection = (
        keyed.withColumn("copies", n_copies.cast("int"))
        .where(F.col("copies") > 0)
        .select(F.lit(name).alias("output"), "id", "part", "tokens", "copies")
    )
    info = {
        "target": {p: round(s, 6) for p, s in shares.items()},
        "quota_tokens": {p: round(q) for p, q in quota.items()},
        "whole_copies": whole,
        "thresholds": dict(thresholds),
        "warnings": warnings,
        "when_short": output.when_short,
        "max_epochs": epochs,
    }
    return selection, info


def missed(info: dict, tolerance: float) -> dict[str, dict[str, float]]:
    """The parts of one output whose achieved share is off its target by more than ``tolerance`` (none for an
    output that redistributes by design: its shortfalls are reported as warnings)."""
    if info["when_short"] == "redistribute":
        return {}
    target, achieved = info["target"], info["achieved"]
    return {
        p: {"target": target.get(p, 0.0), "achieved": achieved.get(p, 0.0)}
        for p in sorted(set(target) | set(achieved))
        if abs(achieved.get(p, 0.0) - target.get(p, 0.0)) > tolerance
    }


def build(ctx):
    from functools import reduce

    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    from corpus import schema
    from corpus.stage import Outcome, read_documents

    cfg: MixSection = ctx.config.mix
    spark = ctx.spark
    seed = ctx.config.run.seed
    docs = read_documents(spark, ctx.inputs)
    base = with_tokens(docs, ctx.config.redact.tokenizer).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        spark.sparkContext.setJobDescription(f"forge {STAGE}: tokens by part")
        totals = base.groupBy("part").agg(F.sum("tokens").alias("t"), F.count("*").alias("n")).collect()
        available = {r["part"]: int(r["t"] or 0) for r in totals}
        rows_in = sum(int(r["n"]) for r in totals)
        selections, infos = [], {}
        for name, output in cfg.outputs.items():
            spark.sparkContext.setJobDescription(f"forge {STAGE}: choose {name}")
            selection, infos[name] = choose(base, name, output, available, seed)
            selections.append(selection)
        spark.sparkContext.setJobDescription(f"forge {STAGE}: write selection")
        names = schema.load("mix_selection").names
        datasets.write(reduce(lambda a, b: a.unionByName(b), selections).select(*names), ctx.path(SELECTION))
    finally:
        base.unpersist()
    written = datasets.read(spark, ctx.path(SELECTION))
    achieved = (
        written.groupBy("output", "part")
        .agg(
            F.sum(F.col("tokens") * F.col("copies")).alias("t"),
            F.count("*").alias("docs"),
            F.sum("copies").alias("rows"),
        )
        .collect()
    )  # one row per output and part
    extra: dict = {"available_tokens": dict(sorted(available.items())), "outputs": {}, "warnings": []}
    counters: dict[str, int] = {}
    for name, info in infos.items():
        got = {r["part"]: int(r["t"]) for r in achieved if r["output"] == name}
        total = sum(got.values())
        info["tokens"] = total
        info["tokens_by_part"] = dict(sorted(got.items()))
        info["achieved"] = {p: round(t / total, 6) for p, t in sorted(got.items())} if total else {}
        info["documents"] = sum(int(r["docs"]) for r in achieved if r["output"] == name)
        info["rows"] = sum(int(r["rows"]) for r in achieved if r["output"] == name)
        info["missed"] = missed(info, cfg.tolerance)
        extra["outputs"][name] = info
        extra["warnings"] += [f"{name}: {w}" for w in info["warnings"]]
        extra["warnings"] += [
            f"{name}: {p} is {m['achieved']:.1%} of the tokens, target {m['target']:.1%} "
            f"(tolerance {cfg.tolerance:.1%})"
            for p, m in info["missed"].items()
        ]
        counters[f"{name}:documents"] = info["documents"]
        counters[f"{name}:rows"] = info["rows"]
        counters[f"{name}:tokens"] = total
    return Outcome(rows_in=rows_in, rows_out=rows_in, counters=counters, extra=extra)


def selection_path(stage_output: str) -> str:
    return posixpath.join(stage_output, SELECTION)
