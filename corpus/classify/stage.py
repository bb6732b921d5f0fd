"""The ``classify`` stage: train a fastText agent-relevance classifier on the run's own data, score documents,
promote the agent-relevant ones to part ``agent_web``.

Plan (each round; ``classify.rounds``, MAmmoTH2's recall rounds):

1. **Label** every document with Spark expressions: positive when its part is in ``positive_parts`` or its URL
   is under ``seed_domains`` / ``seed_urls`` (or, after round 1, it was recalled), negative when its part is in
   ``negative_parts``, unlabelled otherwise.
2. **Split** by a seeded hash of the group key (the dedup cluster, or the URL host): near-duplicates, or whole
   sites, fall on one side of the held-out split.
3. **Sample** each class down to its cap by a seeded hash of the id (deterministic, no driver collect).
4. **Train** in one Spark task: the sample, sorted by a seeded key, is streamed into a fastText training file
   on the executor, trained, the model uploaded into the stage's output, and the held-out documents scored and
   evaluated there. One row comes back to the driver: the counts and the held-out metrics (PR curve included).
5. **Apply** (:func:`mark_batch`, in tasks that read and write the Parquet files themselves with pyarrow, the
   model loaded once per Python worker): ``agent_score`` on every document of ``apply_parts``; those at or above
   the threshold become ``agent_web``. A recall round's ids are found the same way.

The stage drops nothing: rows out = rows in, and ``rejects`` is empty. Beside ``data/`` it writes
``model/model.bin`` + ``model/model.json`` (threshold, settings, metrics) and ``hosts/`` (the per-host view:
scored and recalled pages per URL host, so whole domains can be promoted or blocked).
"""

from __future__ import annotations

import json
import logging
import os
import posixpath
import tempfile
import time
from typing import Iterable, Iterator
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.compute as pc

from corpus import schema
from corpus.classify import model as ft
from corpus.config import ClassifySection
from corpus.io import files
from corpus.spark import datasets

log = logging.getLogger("corpus")

STAGE = "classify"
MODEL_DIR = "model"
MODEL_FILE = "model.bin"
MODEL_META = "model.json"

class ClassifyError(ValueError):
    """The classifier cannot be trained or applied (the message says why and what to set)."""


# ---------------------------------------------------------------------------------------------- training task


def train_partition(batches: Iterable[pa.RecordBatch], cfg: ClassifySection, seed: int,
                    dest: str) -> Iterator[pa.RecordBatch]:
    """mapInArrow function for the single training task. Input rows: ``label``, ``test`` and ``text``, in
    training order. Writes the model to ``dest``, scores the held-out documents and yields one row: the counts
    and the held-out metrics as JSON (no per-document rows leave the task)."""
    import fasttext

    max_words = cfg.fasttext.max_words
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="forge-classify-") as tmp:
        train_path = os.path.join(tmp, "train.txt")
        counts = {"train_positives": 0, "train_negatives": 0}
        test_labels, test_lines = [], []
        with open(train_path, "w", encoding="utf-8") as train_f:
            for batch in batches:
                for label, test, text in zip(batch.column("label").to_pylist(), batch.column("test").to_pylist(),
                                             batch.column("text").to_pylist()):
                    if test:
                        test_labels.append(label)
                        test_lines.append(ft.prepare(text, max_words))
                    else:
                        train_f.write(ft.training_line(label, text, max_words))
                        counts["train_positives" if label else "train_negatives"] += 1
        if not counts["train_positives"] or not counts["train_negatives"]:
            raise ClassifyError(f"classify: the training split has {counts['train_positives']} positives and "
                                f"{counts['train_negatives']} negatives; it needs both")
        local_model = os.path.join(tmp, MODEL_FILE)
        counts["lr"] = ft.train(train_path, local_model, cfg.fasttext, seed)
        counts["train_seconds"] = round(time.perf_counter() - t0, 3)
        fasttext.FastText.eprint = lambda *a, **k: None
        model = fasttext.load_model(local_model)  # not cached: this worker may never score with it
        files.upload(local_model, dest)
        counts["model_bytes"] = os.path.getsize(local_model)
        test_scores = ft.prepared_scores(model, test_lines)
    if not any(test_labels) or all(test_labels):
        counts["error"] = (f"classify: the held-out split has {sum(test_labels)} positives of {len(test_labels)}; "
                           "it needs both classes (raise classify.holdout or add data)")
    else:
        metrics = ft.evaluate(test_labels, test_scores, cfg.target_precision, cfg.threshold)
        metrics["chosen"]["by"] = "config" if cfg.threshold is not None else (
            "target_precision" if metrics["chosen"]["target_reached"] else "highest_precision")
        counts.update(metrics)
    yield pa.RecordBatch.from_pydict({"detail": [json.dumps(counts)]})


# ---------------------------------------------------------------------------------------------- scoring


def host_of(url: str | None) -> str | None:
    """The URL's host, lowercased, without port or user (None when there is none). For well-formed URLs the
    same as Spark's ``lower(try_parse_url(url, 'HOST'))`` used by the per-host view; Python's parser also takes
    some URLs that Java's refuses (a space in the path), which only means such a page can still be blocked."""
    if not url:
        return None
    try:
        return urlsplit(url).hostname
    except ValueError:  # e.g. an invalid IPv6 literal
        return None


def _on(host: str | None, domains: tuple[str, ...]) -> bool:
    """``host`` is one of ``domains`` (lowercased) or a subdomain of one."""
    return host is not None and any(host == d or host.endswith("." + d) for d in domains)


def mark_batch(batch: pa.RecordBatch, model, threshold: float, cfg: ClassifySection
               ) -> tuple[pa.RecordBatch, pa.Array]:
    """Arrow batch function: ``batch`` (documents, or any columns including ``part``, ``text``, ``url`` and
    ``agent_score``) with ``agent_score`` (6 decimals) on the documents of ``apply_parts`` and part ``agent_web``
    for those at or above ``threshold`` or on a promoted host, never on a blocked host; other rows unchanged.
    Also returns the mask of the rows made ``agent_web`` here (the recalled ones)."""
    parts = batch.column("part").to_pylist()
    apply = set(cfg.apply_parts)
    rows = [i for i, p in enumerate(parts) if p in apply]
    recalled = [False] * batch.num_rows
    if not rows:
        return batch, pa.array(recalled, pa.bool_())
    take = pa.array(rows, pa.int64())
    values = ft.scores(model, batch.column("text").take(take).to_pylist(), cfg.fasttext.max_words)
    block = tuple(d.lower() for d in cfg.block_domains)
    promote = tuple(d.lower() for d in cfg.promote_domains)
    urls = batch.column("url").take(take).to_pylist() if block or promote else [None] * len(rows)
    score = batch.column("agent_score").to_pylist()
    for i, v, url in zip(rows, values, urls):
        score[i] = round(v, 6)
        host = host_of(url)
        if not _on(host, block) and (score[i] >= threshold or _on(host, promote)):
            parts[i], recalled[i] = "agent_web", True
    columns = {"part": pa.array(parts, pa.string()), "agent_score": pa.array(score, pa.float64())}
    marked = pa.RecordBatch.from_arrays([columns.get(n, batch.column(n)) for n in batch.schema.names],
                                        schema=batch.schema)
    return marked, pa.array(recalled, pa.bool_())


def _model(model_path: str):
    """The classifier, loaded once per Python worker (a local copy first when it is on an object store)."""
    from corpus.filters.langid import load

    return load(files.local_copy(model_path, tempfile.gettempdir()))


NO_URL = "(no url)"
HOST_COUNTS = pa.schema([("host", pa.string()), ("documents", pa.int64()), ("recalled", pa.int64()),
                         ("score_sum", pa.float64())])


def count_hosts(marked: pa.RecordBatch, counts: dict[str, list]) -> None:
    """Add the scored documents of ``marked`` to ``counts``: host → [documents, recalled, sum of scores]."""
    score = marked.column("agent_score")
    if score.null_count == len(score):
        return
    scored = marked.filter(pc.is_valid(score))
    for url, part, value in zip(scored.column("url").to_pylist(), scored.column("part").to_pylist(),
                                scored.column("agent_score").to_pylist()):
        c = counts.setdefault(host_of(url) or NO_URL, [0, 0, 0.0])
        c[0] += 1
        c[1] += part == "agent_web"
        c[2] += value


def apply_fn(model_path: str, threshold: float, cfg: ClassifySection, hosts_dir: str, batch_rows: int = 4096):
    """Producer for ``stage.write_tasks`` over ``datasets.row_groups`` of the input documents: each task reads
    its row groups with pyarrow, scores them (:func:`mark_batch`) and writes the documents itself, and its
    per-host counts (HOST_COUNTS) as one small file in ``hosts_dir`` for the per-host view.

    Why not Spark's reader and writer around an Arrow UDF (the first version): on two cores the JVM's decoding
    of every text, its copy to Python and back, and its zstd rewrite took the cores fastText needs; the stage
    ran at 0.53 of two cores' raw scoring speed. Here each text is read and written once, by pyarrow, and only
    the task's counts come back. The per-host view is summed from the tasks' counts, not from the written
    documents read back (2.5 s of a 31 s bench run)."""
    from collections import Counter

    def run(batches: Iterable[pa.RecordBatch]):
        from pyspark import TaskContext

        model = _model(model_path)
        no_rejects = pa.RecordBatch.from_pylist([], schema=schema.rejects().arrow)
        apply = pa.array(list(cfg.apply_parts), pa.string())
        hosts: dict[str, list] = {}
        for b in datasets.read_row_groups(batches, schema.document().arrow, batch_rows):
            marked, _ = mark_batch(b, model, threshold, cfg)
            count_hosts(marked, hosts)
            in_apply = pc.sum(pc.is_in(b.column("part"), value_set=apply)).as_py() or 0
            is_web = pc.equal(marked.column("part"), "agent_web")
            recalled = pc.sum(pc.and_(is_web, pc.is_valid(marked.column("agent_score")))).as_py() or 0
            yield marked, no_rejects, Counter(scored=in_apply, agent_web=pc.sum(is_web).as_py() or 0,
                                              recalled=recalled)
        if hosts:
            rows = [{"host": h, "documents": c[0], "recalled": c[1], "score_sum": c[2]}
                    for h, c in sorted(hosts.items())]
            datasets.TaskFile(hosts_dir, TaskContext.get().partitionId(), HOST_COUNTS).fill(
                [pa.RecordBatch.from_pylist(rows, schema=HOST_COUNTS)])

    return run


def recalled_fn(model_path: str, threshold: float, cfg: ClassifySection):
    """For ``datasets.rewrite_row_groups``: the ids of the documents a round's model recalls."""

    def ids(batch: pa.RecordBatch) -> pa.RecordBatch:
        _, recalled = mark_batch(batch, _model(model_path), threshold, cfg)
        return batch.filter(recalled).select(["id"])

    return ids


def _host():
    from pyspark.sql import functions as F

    return F.lower(F.expr("try_parse_url(url, 'HOST')"))


def _under(domains):
    """A Spark condition: the document's URL host is one of ``domains`` or a subdomain of one."""
    from pyspark.sql import functions as F

    host = _host()
    cond = F.lit(False)
    for d in domains:
        cond = cond | (host == d.lower()) | host.endswith("." + d.lower())
    return F.coalesce(cond, F.lit(False))


# ---------------------------------------------------------------------------------------------- the model file


def find_model(path: str) -> tuple[str, dict]:
    """The model file and its metadata from a ``model.bin`` path, a ``model/`` folder, or a finished run's
    ``classify`` output folder (or the run's output folder itself)."""
    candidates = [path] if path.endswith(".bin") else [
        posixpath.join(path, MODEL_FILE), posixpath.join(path, MODEL_DIR, MODEL_FILE),
        posixpath.join(path, STAGE, MODEL_DIR, MODEL_FILE)]
    for c in candidates:
        if files.exists(c):
            meta_path = posixpath.join(posixpath.dirname(c), MODEL_META)
            meta = json.loads(files.read_text(meta_path)) if files.exists(meta_path) else {}
            return c, meta
    raise ClassifyError(f"{path}: no classifier model there (looked for {', '.join(candidates)})")


# ---------------------------------------------------------------------------------------------- the Spark plan


def _labels(docs, cfg: ClassifySection, recalled=None):
    """``docs`` with ``host``, ``group`` and ``label`` (1 positive, 0 negative, null neither)."""
    from pyspark.sql import functions as F

    host = _host()
    seeds = _under(cfg.seed_domains)
    for prefix in cfg.seed_urls:
        seeds = seeds | F.coalesce(F.col("url").startswith(prefix), F.lit(False))
    blocked = _under(cfg.block_domains)
    df = docs.select("id", "part", "url", "dedup_cluster", "text")
    positive = F.col("part").isin(list(cfg.positive_parts)) | seeds
    if recalled is not None:
        df = df.join(recalled.select("id", F.lit(True).alias("_recalled")), "id", "left")
        positive = positive | (F.coalesce(F.col("_recalled"), F.lit(False)) & ~blocked)
    negative = F.col("part").isin(list(cfg.negative_parts)) & ~seeds
    cluster = F.coalesce(F.col("dedup_cluster"), F.col("id"))
    group = F.coalesce(host, cluster) if cfg.split_by == "host" else cluster
    return df.select("id", "text", host.alias("host"), group.alias("group"),
                     F.when(positive, 1).when(negative, 0).cast("int").alias("label"))


def _unit_hash(seed: int, col: str):
    """A seeded hash of a column mapped to [0, 1)."""
    from pyspark.sql import functions as F

    return (F.abs(F.xxhash64(F.lit(seed), F.col(col))) % 1_000_000) / 1_000_000.0


def train_round(ctx, docs, cfg: ClassifySection, seed: int, dest: str, recalled=None) -> dict:
    """Sample, split, train one model (written to ``dest``); returns the round's counts and held-out metrics."""
    from pyspark.sql import functions as F

    labelled = _labels(docs, cfg, recalled).where(F.col("label").isNotNull())
    ctx.spark.sparkContext.setJobDescription(f"{STAGE}: count labelled documents")
    available = {int(r["label"]): int(r["n"]) for r in labelled.groupBy("label").agg(F.count("*").alias("n"))
                 .collect()}  # two rows
    pos, neg = available.get(1, 0), available.get(0, 0)
    if pos < 10 or neg < 10:
        raise ClassifyError(
            f"classify: needs at least 10 positives and 10 negatives, found {pos} positives (parts "
            f"{list(cfg.positive_parts)}, seed domains/URLs) and {neg} negatives (parts {list(cfg.negative_parts)})"
            "; add inputs of those parts, change classify.positive_parts / negative_parts, or set "
            "classify.enabled: false")
    want_pos, want_neg = ft.class_caps(pos, neg, cfg.max_positives, cfg.max_negatives, cfg.max_class_ratio)
    rate = F.when(F.col("label") == 1, ft.sample_rate(pos, want_pos)).otherwise(ft.sample_rate(neg, want_neg))
    sample = (labelled.where(_unit_hash(seed, "id") < rate)
              .withColumn("test", _unit_hash(seed + 1, "group") < cfg.holdout)
              .select("id", "label", "test", "text"))
    ordered = sample.repartition(1).sortWithinPartitions(F.xxhash64(F.lit(seed + 2), F.col("id")), "id")
    ctx.spark.sparkContext.setJobDescription(f"{STAGE}: train fastText")
    rows = ordered.mapInArrow(lambda it: train_partition(it, cfg, seed, dest), "detail string").collect()
    if len(rows) != 1:  # one summary row (counts and held-out metrics): no document reaches the driver
        raise ClassifyError("classify: the training task returned no model")
    info = json.loads(rows[0]["detail"])
    if "error" in info:
        raise ClassifyError(info["error"])
    return {"available": {"positives": pos, "negatives": neg}, **info}


def _recalled(ctx, model_path: str, threshold: float, cfg: ClassifySection, scratch: str):
    """Ids of ``apply_parts`` documents at or above the threshold (blocked hosts excluded), written to scratch by
    the tasks (the texts stay out of the JVM, as in the final scoring)."""
    from corpus.stage import document_paths

    ctx.spark.sparkContext.setJobDescription(f"{STAGE}: recall with the round's model")
    read = pa.schema([schema.document().arrow.field(n) for n in ("id", "part", "url", "text", "agent_score")])
    rows = datasets.rewrite_row_groups(ctx.spark, document_paths(ctx.inputs), scratch, read,
                                       pa.schema([read.field("id")]), recalled_fn(model_path, threshold, cfg),
                                       batch_rows=4096)
    return datasets.read(ctx.spark, scratch), rows


# the tasks' per-host counts are summed in the driver up to this many rows (a few seconds less than a Spark
# job on a fresh JVM); above it, by Spark (a crawl of millions of hosts)
HOSTS_IN_DRIVER = 1_000_000


def host_table(counts: pa.Table, recalled: int) -> pa.Table:
    """The per-host view (schema ``classify_hosts``, by host) from the tasks' per-host counts (HOST_COUNTS rows,
    several per host); ``recalled``: the scored documents that are ``agent_web``. What :func:`host_view` computes
    with Spark, for counts small enough to sum in one process."""
    per = counts.group_by("host", use_threads=False).aggregate(
        [("documents", "sum"), ("recalled", "sum"), ("score_sum", "sum")]).sort_by("host")
    docs, rec = per.column("documents_sum"), per.column("recalled_sum")
    as_float = pc.cast(rec, pa.float64())
    arrow = schema.load("classify_hosts").arrow
    return pa.table([per.column("host"), docs, rec, pc.divide(as_float, pc.cast(docs, pa.float64())),
                     pc.divide(as_float, float(recalled)) if recalled else pa.array([0.0] * per.num_rows),
                     pc.round(pc.divide(per.column("score_sum_sum"), pc.cast(docs, pa.float64())), 6,
                              round_mode="half_up")], schema=arrow)


def host_view(spark, counts_path: str, recalled: int):
    """:func:`host_table` as a Spark DataFrame over the tasks' count files, for counts too many for the driver."""
    from pyspark.sql import functions as F
    from pyspark.sql.pandas.types import from_arrow_schema

    per = datasets.read(spark, counts_path, schema=from_arrow_schema(HOST_COUNTS)).groupBy("host").agg(
        F.sum("documents").alias("documents"), F.sum("recalled").alias("recalled"),
        (F.sum("score_sum") / F.sum("documents")).alias("mean_score"))
    return per.select(
        "host", "documents", "recalled", (F.col("recalled") / F.col("documents")).alias("share_of_host"),
        (F.col("recalled") / F.lit(float(recalled)) if recalled else F.lit(0.0)).alias("share_of_recalled"),
        F.round("mean_score", 6).alias("mean_score"))


def write_hosts(spark, counts_path: str, recalled: int, out: str, top: int) -> list[dict]:
    """Write the per-host view to ``out``; returns its ``top`` hosts (most recalled, then most scored)."""
    from pyspark.sql import functions as F

    from corpus.stage import count_rows

    arrow = schema.load("classify_hosts").arrow
    if not files.list_files(counts_path, (datasets.PARQUET_SUFFIX,)):  # nothing scored
        files.make_dirs(out)
        datasets.write_empty(out, arrow)
        return []
    if count_rows(counts_path) <= HOSTS_IN_DRIVER:
        import pyarrow.dataset as ds

        fs, inner = files.filesystem(counts_path)
        table = host_table(ds.dataset(inner, format="parquet", filesystem=fs, schema=HOST_COUNTS).to_table(),
                           recalled)
        files.make_dirs(out)
        datasets.TaskFile(out, 0, arrow).fill(table.to_batches())
        rows = table.sort_by([("recalled", "descending"), ("documents", "descending"), ("host", "ascending")])
        rows = rows.slice(0, top).to_pylist()
    else:
        datasets.write(host_view(spark, counts_path, recalled).select(*arrow.names), out)
        rows = [r.asDict() for r in datasets.read(spark, out, schema=schema.load("classify_hosts").spark)
                .orderBy(F.desc("recalled"), F.desc("documents"), "host").limit(top).collect()]  # the top hosts
    return [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()} for r in rows]


def build(ctx):
    from corpus.stage import Background, count_documents, document_paths, read_documents, write_tasks

    cfg: ClassifySection = ctx.config.classify
    seed = ctx.config.run.seed
    model_dir = ctx.path(MODEL_DIR)
    final_model = posixpath.join(model_dir, MODEL_FILE)
    host_counts = ctx.path("_scratch", "host-counts")
    extra: dict = {}
    copying = None
    try:
        if cfg.model:
            source, meta = find_model(cfg.model)
            threshold = cfg.threshold if cfg.threshold is not None else meta.get("threshold", 0.5)
            files.make_dirs(model_dir)

            def keep_model() -> None:  # the applied model is kept with the output it made
                with tempfile.TemporaryDirectory() as tmp:
                    files.upload(files.local_copy(source, tmp), final_model)

            copying = Background(keep_model, f"{STAGE}-model-copy")  # the tasks score with the source meanwhile
            scoring_model = source
            meta = {**meta, "threshold": threshold, "applied_from": source}
            extra.update(trained=False, model_from=source)
        else:
            rounds, recalled = [], None
            threshold = 0.5
            docs = read_documents(ctx.spark, ctx.inputs)
            for k in range(1, cfg.rounds + 1):
                dest = final_model if k == cfg.rounds else ctx.path("_scratch", f"round-{k}.bin")
                info = train_round(ctx, docs, cfg, seed + 10 * k, dest, recalled)
                threshold = info["chosen"]["threshold"]
                if k < cfg.rounds:
                    recalled, info["recalled"] = _recalled(ctx, dest, threshold, cfg,
                                                           ctx.path("_scratch", f"recalled-{k}"))
                rounds.append({"round": k, **info})
                log.info("classify round %d: held-out P %.3f R %.3f F1 %.3f at threshold %.3f (%d train docs)", k,
                         info["chosen"]["precision"], info["chosen"]["recall"], info["chosen"]["f1"], threshold,
                         info["train_positives"] + info["train_negatives"])
            scoring_model = final_model
            meta = {"threshold": threshold, "labels": [ft.POSITIVE, ft.NEGATIVE],
                    "fasttext": cfg.fasttext.model_dump(), "seed": seed, "rounds": rounds}
            extra.update(trained=True, rounds=rounds)
        files.write_text(posixpath.join(model_dir, MODEL_META), json.dumps(meta, indent=2, sort_keys=True) + "\n")
        extra["threshold"] = threshold
        extra["model"] = final_model.replace(ctx.tmp, ctx.output, 1)
        files.make_dirs(host_counts)
        # more tasks than the default two per core: scoring is CPU-bound, and small last tasks idle a core less
        tasks = datasets.row_groups(ctx.spark, *document_paths(ctx.inputs), per_core=8)
        outcome = write_tasks(ctx, tasks, apply_fn(scoring_model, threshold, cfg, host_counts),
                              rows_in=count_documents(ctx.inputs), extra=extra)
        ctx.spark.sparkContext.setJobDescription(f"{STAGE}: write hosts")
        outcome.extra["hosts"] = write_hosts(ctx.spark, host_counts, outcome.counters.get("recalled", 0),
                                             ctx.path("hosts"), cfg.top_hosts)
    finally:
        if copying is not None:
            copying.join()
        files.remove(ctx.path("_scratch"))
    return outcome
