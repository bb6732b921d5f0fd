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
import math
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


def train_partition(
    batches: Iterable[pa.RecordBatch], cfg: ClassifySection, seed: int, dest: str
) -> Iterator[pa.RecordBatch]:
    """mapInArrow function for the single training task. Input rows: ``label``, ``test`` (null: train; ``in``:
    held out from the training sources; ``out``: held out with its whole source or host), ``source`` and
    ``text``, in training order. Writes the model to ``dest``, scores the held-out documents and yields one row:
    the counts and the metrics of both held-out splits as JSON (no per-document rows leave the task)."""
    import fasttext

    fcfg = cfg.fasttext
    max_words, tokens = fcfg.max_words, fcfg.tokens
    t0 = time.perf_counter()
    held: dict[str, tuple[list[int], list[str], list[str]]] = {"in": ([], [], []), "out": ([], [], [])}
    with tempfile.TemporaryDirectory(prefix="forge-classify-") as tmp:
        train_path = os.path.join(tmp, "train.txt")
        counts = {"train_positives": 0, "train_negatives": 0}
        train_tokens = 0
        with open(train_path, "w", encoding="utf-8") as train_f:
            for batch in batches:
                for label, test, source, text in zip(
                    batch.column("label").to_pylist(),
                    batch.column("test").to_pylist(),
                    batch.column("source").to_pylist(),
                    batch.column("text").to_pylist(),
                ):
                    if test:
                        labels, lines, sources = held[test]
                        labels.append(label)
                        lines.append(ft.prepare(text, max_words, tokens))
                        sources.append(source)
                    else:
                        line = ft.training_line(label, text, max_words, tokens)
                        train_f.write(line)
                        train_tokens += line.count(" ")
                        counts["train_positives" if label else "train_negatives"] += 1
        if not counts["train_positives"] or not counts["train_negatives"]:
            raise ClassifyError(
                f"classify: the training split has {counts['train_positives']} positives and "
                f"{counts['train_negatives']} negatives; it needs both"
            )
        local_model = os.path.join(tmp, MODEL_FILE)
        counts["epoch"] = ft.epochs(fcfg, train_tokens)
        counts["train_tokens"] = train_tokens
        counts["lr"] = ft.train(train_path, local_model, fcfg, seed, epoch=counts["epoch"])
        counts["train_seconds"] = round(time.perf_counter() - t0, 3)
        fasttext.FastText.eprint = lambda *a, **k: None
        model = fasttext.load_model(local_model)  # not cached: this worker may never score with it
        files.upload(local_model, dest)
        counts["model_bytes"] = os.path.getsize(local_model)
        scored = {k: ft.prepared_scores(model, lines) for k, (_, lines, _) in held.items()}
    usable = [k for k in ("out", "in") if 0 < sum(held[k][0]) < len(held[k][0])]
    if not usable:
        counts["error"] = (
            f"classify: no held-out split has both classes (in-distribution: {sum(held['in'][0])} "
            f"positives of {len(held['in'][0])}; out of source: {sum(held['out'][0])} of "
            f"{len(held['out'][0])}); raise classify.holdout or add data"
        )
        yield pa.RecordBatch.from_pydict({"detail": [json.dumps(counts)]})
        return
    primary = usable[0]  # the threshold is chosen out of source when that split exists
    metrics = ft.evaluate(held[primary][0], scored[primary], cfg.target_precision, cfg.threshold)
    metrics["chosen"]["by"] = (
        "config"
        if cfg.threshold is not None
        else ("target_precision" if metrics["chosen"]["target_reached"] else "highest_precision")
    )
    threshold = metrics["chosen"]["threshold"]
    counts.update(metrics)  # the round's headline figures: those of the split the threshold was chosen on
    counts["evaluated_on"] = {"out": "out_of_source", "in": "in_distribution"}[primary]
    for k, name in (("in", "in_distribution"), ("out", "out_of_source")):
        labels, _, sources = held[k]
        if 0 < sum(labels) < len(labels):
            m = metrics if k == primary else ft.evaluate(labels, scored[k], cfg.target_precision, threshold)
            counts[name] = {
                key: m[key]
                for key in ("test_positives", "test_negatives", "average_precision", "best_f1", "chosen", "pr_curve")
            }
        if k == "out" and labels:  # how each held-out source fared at the threshold
            per: dict[str, list] = {}
            for y, v, src in zip(labels, scored[k], sources):
                row = per.setdefault(src or "(none)", [y, 0, 0])
                row[1] += 1
                row[2] += v >= threshold
            counts["held_out_sources"] = {
                src: {
                    "label": "positive" if y else "negative",
                    "documents": n,
                    "at_or_above_threshold": round(a / n, 4),
                }
                for src, (y, n, a) in sorted(per.items())
            }
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


def _on(host: str | None, domains: frozenset[str]) -> bool:
    """``host`` is one of ``domains`` (lowercased) or a subdomain of one (set lookups of the host and its parent
    domains: the domain step can name thousands of hosts)."""
    if host is None or not domains:
        return False
    labels = host.split(".")
    return any(".".join(labels[i:]) in domains for i in range(len(labels)))


def mark_batch(batch: pa.RecordBatch, model, threshold: float, cfg: ClassifySection) -> tuple[pa.RecordBatch, pa.Array]:
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
    values = ft.scores(model, batch.column("text").take(take).to_pylist(), cfg.fasttext.max_words, cfg.fasttext.tokens)
    block = frozenset(d.lower() for d in cfg.block_domains)
    promote = frozenset(d.lower() for d in cfg.promote_domains)
    urls = batch.column("url").take(take).to_pylist() if block or promote else [None] * len(rows)
    score = batch.column("agent_score").to_pylist()
    for i, v, url in zip(rows, values, urls):
        score[i] = round(v, 6)
        host = host_of(url)
        if not _on(host, block) and (score[i] >= threshold or _on(host, promote)):
            parts[i], recalled[i] = "agent_web", True
    columns = {"part": pa.array(parts, pa.string()), "agent_score": pa.array(score, pa.float64())}
    marked = pa.RecordBatch.from_arrays(
        [columns.get(n, batch.column(n)) for n in batch.schema.names], schema=batch.schema
    )
    return marked, pa.array(recalled, pa.bool_())


def labelled_metrics(counters: dict[str, int]) -> dict | None:
    """Precision, recall and F1 of the ``agent_web`` decision on the scored documents that carry an evaluation
    label (none were trained on), and the score distribution by label (deciles); None without labels."""
    n = {k: counters.get(f"labelled:{k}", 0) for k in ("tp", "fp", "fn", "tn")}
    if not sum(n.values()):
        return None
    p, r, f1 = ft._prf(n["tp"], n["fp"], n["tp"] + n["fn"])
    general = n["fp"] + n["tn"]
    return {
        "documents": sum(n.values()),
        "agent": n["tp"] + n["fn"],
        "general": general,
        **n,
        "precision": round(p, 4),
        "recall": round(r, 4),
        "f1": round(f1, 4),
        "false_positive_rate": round(n["fp"] / general, 4) if general else None,
        "score_deciles": {
            y: [counters.get(f"labelled_score:{y}:{d}", 0) for d in range(10)] for y in ("agent", "general")
        },
    }


def read_sample(folder: str) -> dict:
    """The report's sample: the recalled and the not-recalled documents of smallest seeded key, across tasks."""
    import pyarrow.dataset as ds

    if not files.list_files(folder, (datasets.PARQUET_SUFFIX,)):
        return {"recalled": [], "not_recalled": []}
    fs, inner = files.filesystem(folder)
    rows = ds.dataset(inner, format="parquet", filesystem=fs, schema=SAMPLE).to_table().sort_by("key").to_pylist()
    pick = {flag: [r for r in rows if r["recalled"] == flag][:SAMPLE_SIZE] for flag in (True, False)}
    return {
        name: [{k: v for k, v in r.items() if k not in ("key", "recalled")} for r in pick[flag]]
        for name, flag in (("recalled", True), ("not_recalled", False))
    }


def _model(model_path: str):
    """The classifier, loaded once per Python worker (a local copy first when it is on an object store)."""
    from corpus.filter.langid import load

    return load(files.local_copy(model_path, tempfile.gettempdir()))


NO_URL = "(no url)"
HOST_COUNTS = pa.schema(
    [("host", pa.string()), ("documents", pa.int64()), ("recalled", pa.int64()), ("score_sum", pa.float64())]
)


def count_hosts(marked: pa.RecordBatch, counts: dict[str, list]) -> None:
    """Add the scored documents of ``marked`` to ``counts``: host → [documents, recalled, sum of scores]."""
    score = marked.column("agent_score")
    if score.null_count == len(score):
        return
    scored = marked.filter(pc.is_valid(score))
    for url, part, value in zip(
        scored.column("url").to_pylist(), scored.column("part").to_pylist(), scored.column("agent_score").to_pylist()
    ):
        c = counts.setdefault(host_of(url) or NO_URL, [0, 0, 0.0])
        c[0] += 1
        c[1] += part == "agent_web"
        c[2] += value


def eval_label(metadata: str | None) -> int | None:
    """A document's evaluation label (``metadata.eval_label``: ``agent`` 1, ``general`` 0), set by ingest-text's
    ``label_field`` for a labelled sample of a crawl. Labels are never trained on: they measure the classifier on
    the documents it scores."""
    if not metadata or '"eval_label"' not in metadata:
        return None
    try:
        value = json.loads(metadata).get("eval_label")
    except (ValueError, AttributeError):
        return None
    return {"agent": 1, "general": 0}.get(value)


SAMPLE = pa.schema(
    [
        ("key", pa.string()),
        ("recalled", pa.bool_()),
        ("agent_score", pa.float64()),
        ("eval_label", pa.string()),
        ("source", pa.string()),
        ("url", pa.string()),
        ("title", pa.string()),
        ("excerpt", pa.string()),
    ]
)
SAMPLE_SIZE = 20  # recalled and not recalled documents shown in the report, each


def labelled_counts(marked: pa.RecordBatch, counts, seed: int, sample: dict[bool, list]) -> None:
    """Count the scored documents that carry an evaluation label by outcome (``labelled:tp`` / ``fp`` / ``fn`` /
    ``tn``, the prediction being whether the document became ``agent_web``) and by score decile, and keep the
    documents with the smallest ids, recalled and not, for the report's sample."""

    score = marked.column("agent_score")
    if score.null_count == len(score):
        return
    scored = marked.filter(pc.is_valid(score))
    is_web = pc.equal(scored.column("part"), "agent_web")
    labelled = pc.fill_null(pc.match_substring(scored.column("metadata"), '"eval_label"'), False)
    if pc.any(labelled).as_py():  # only the labelled rows go through Python
        rows = scored.filter(labelled)
        for meta, web, v in zip(
            rows.column("metadata").to_pylist(),
            pc.equal(rows.column("part"), "agent_web").to_pylist(),
            rows.column("agent_score").to_pylist(),
        ):
            y = eval_label(meta)
            if y is not None:
                counts[f"labelled:{'tp' if y and web else 'fn' if y else 'fp' if web else 'tn'}"] += 1
                counts[f"labelled_score:{'agent' if y else 'general'}:{min(9, int(v * 10))}"] += 1
    # the sample: the documents of smallest id (a content hash, so a fair draw) among recalled and not recalled,
    # picked by Arrow; only those few rows become Python objects
    for flag, mask in ((True, is_web), (False, pc.invert(is_web))):
        sub = scored.filter(mask)
        if not sub.num_rows:
            continue
        keep = sample[flag]
        for k in pc.select_k_unstable(sub, k=min(SAMPLE_SIZE, sub.num_rows), sort_keys=[("id", "ascending")]):
            r = {
                n: sub.column(n)[k.as_py()].as_py()
                for n in ("id", "agent_score", "metadata", "source", "url", "title", "text")
            }
            if len(keep) >= SAMPLE_SIZE and r["id"] >= keep[-1]["key"]:
                continue
            y = eval_label(r["metadata"])
            keep.append(
                {
                    "key": r["id"],
                    "recalled": flag,
                    "agent_score": r["agent_score"],
                    "eval_label": None if y is None else ("agent" if y else "general"),
                    "source": r["source"],
                    "url": r["url"],
                    "title": r["title"],
                    "excerpt": " ".join((r["text"] or "")[:400].split())[:300],
                }
            )
            keep.sort(key=lambda x: x["key"])
            del keep[SAMPLE_SIZE:]


def apply_fn(
    model_path: str,
    threshold: float,
    cfg: ClassifySection,
    hosts_dir: str,
    batch_rows: int = 4096,
    samples_dir: str | None = None,
    seed: int = 0,
):
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
        sample: dict[bool, list] = {True: [], False: []}
        for b in datasets.read_row_groups(batches, schema.document().arrow, batch_rows):
            marked, _ = mark_batch(b, model, threshold, cfg)
            count_hosts(marked, hosts)
            in_apply = pc.sum(pc.is_in(b.column("part"), value_set=apply)).as_py() or 0
            is_web = pc.equal(marked.column("part"), "agent_web")
            recalled = pc.sum(pc.and_(is_web, pc.is_valid(marked.column("agent_score")))).as_py() or 0
            counts = Counter(scored=in_apply, agent_web=pc.sum(is_web).as_py() or 0, recalled=recalled)
            labelled_counts(marked, counts, seed, sample)
            yield marked, no_rejects, counts
        part = TaskContext.get().partitionId()
        if hosts:
            rows = [
                {"host": h, "documents": c[0], "recalled": c[1], "score_sum": c[2]} for h, c in sorted(hosts.items())
            ]
            datasets.TaskFile(hosts_dir, part, HOST_COUNTS).fill([pa.RecordBatch.from_pylist(rows, schema=HOST_COUNTS)])
        if samples_dir and (sample[True] or sample[False]):
            datasets.TaskFile(samples_dir, part, SAMPLE).fill(
                [pa.RecordBatch.from_pylist(sample[True] + sample[False], schema=SAMPLE)]
            )

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
    candidates = (
        [path]
        if path.endswith(".bin")
        else [
            posixpath.join(path, MODEL_FILE),
            posixpath.join(path, MODEL_DIR, MODEL_FILE),
            posixpath.join(path, STAGE, MODEL_DIR, MODEL_FILE),
        ]
    )
    for c in candidates:
        if files.exists(c):
            meta_path = posixpath.join(posixpath.dirname(c), MODEL_META)
            meta = json.loads(files.read_text(meta_path)) if files.exists(meta_path) else {}
            return c, meta
    raise ClassifyError(f"{path}: no classifier model there (looked for {', '.join(candidates)})")


# ---------------------------------------------------------------------------------------------- the Spark plan


def _labels(docs, cfg: ClassifySection, recalled=None):
    """``docs`` with ``source``, ``host``, ``cluster`` and ``label`` (1 positive, 0 negative, null neither)."""
    from pyspark.sql import functions as F

    host = _host()
    seeds = _under(cfg.seed_domains)
    for prefix in cfg.seed_urls:
        seeds = seeds | F.coalesce(F.col("url").startswith(prefix), F.lit(False))
    blocked = _under(cfg.block_domains)
    df = docs.select("id", "part", "source", "url", "dedup_cluster", "text")
    positive = F.col("part").isin(list(cfg.positive_parts)) | seeds
    if cfg.positive_sources:
        positive = positive | F.col("source").isin(list(cfg.positive_sources))
    if recalled is not None:
        df = df.join(recalled.select("id", F.lit(True).alias("_recalled")), "id", "left")
        positive = positive | (F.coalesce(F.col("_recalled"), F.lit(False)) & ~blocked)
    negative = F.col("part").isin(list(cfg.negative_parts)) & ~seeds
    if cfg.negative_sources is not None:
        negative = negative & F.col("source").isin(list(cfg.negative_sources))
    cluster = F.coalesce(F.col("dedup_cluster"), F.col("id"))
    return df.select(
        "id",
        "text",
        "source",
        host.alias("host"),
        cluster.alias("cluster"),
        F.when(positive, 1).when(negative, 0).cast("int").alias("label"),
    )


def _unit_hash(seed: int, col: str):
    """A seeded hash of a column mapped to [0, 1)."""
    from pyspark.sql import functions as F

    return (F.abs(F.xxhash64(F.lit(seed), F.col(col))) % 1_000_000) / 1_000_000.0


def held_out_sources(by_class: dict[int, dict[str, int]], share: float, seed: int) -> set[str]:
    """The sources held out whole (``split_by: source``): in each class with two or more sources, a share of
    them (at least one, never all), picked by a seeded hash of the name. A source that gives documents to both
    classes is held out from both, unless that would leave a class with no source to train on: then the next
    one is taken."""
    import hashlib

    def rank(src: str) -> str:
        return hashlib.sha256(f"{seed}:{src}".encode()).hexdigest()

    out: set[str] = set()
    for sources in by_class.values():
        names = sorted(sources, key=rank)
        if len(names) < 2:
            continue
        want = max(1, min(len(names) - 1, round(share * len(names))))
        for src in names:
            if want == 0:
                break
            # never the last training source of a class (a crawl that gives seed pages and all the negatives)
            if all(set(other) - out - {src} for other in by_class.values()):
                out.add(src)
                want -= 1
    return out


def source_quotas(counts: dict[str, int], want: int, balance: bool) -> dict[str, int]:
    """Documents to sample from each source of a class so that the class has ``want``: equal shares when
    ``balance`` (a source with fewer keeps all it has and the rest is shared by the others), else in proportion
    to the sources' sizes."""
    total = sum(counts.values())
    if want >= total:
        return dict(counts)
    if not balance:
        return {s: math.floor(n * want / total) for s, n in counts.items()}
    quotas, left, open_ = {}, want, sorted(counts, key=lambda s: (counts[s], s))
    while open_:
        share = left // len(open_)
        src = open_[0]
        if counts[src] <= share:  # the smallest source fits whole
            quotas[src] = counts[src]
            left -= counts[src]
            open_.pop(0)
        else:
            for src in open_:
                quotas[src] = share
            break
    return quotas


HELD_OUT_PER_SOURCE = 5_000  # documents of a held-out source scored for the out-of-source figures, at most


def train_round(ctx, docs, cfg: ClassifySection, seed: int, dest: str, recalled=None) -> dict:
    """Sample, split, train one model (written to ``dest``); returns the round's counts and held-out metrics."""
    from pyspark.sql import functions as F

    labelled = _labels(docs, cfg, recalled).where(F.col("label").isNotNull())
    ctx.spark.sparkContext.setJobDescription(f"forge {STAGE}: count labelled documents by source")
    by_class: dict[int, dict[str, int]] = {0: {}, 1: {}}
    for r in labelled.groupBy("label", "source").agg(F.count("*").alias("n")).collect():  # a row per source
        by_class[int(r["label"])][r["source"]] = int(r["n"])
    pos, neg = sum(by_class[1].values()), sum(by_class[0].values())
    if pos < 10 or neg < 10:
        raise ClassifyError(
            f"classify: needs at least 10 positives and 10 negatives, found {pos} positives (parts "
            f"{list(cfg.positive_parts)}, sources {list(cfg.positive_sources)}, seed domains/URLs) and {neg} "
            f"negatives (parts {list(cfg.negative_parts)}"
            + (f", sources {cfg.negative_sources}" if cfg.negative_sources is not None else "")
            + "); add inputs of those parts, change classify.positive_parts / negative_parts / *_sources, or set "
            "classify.enabled: false"
        )
    held = held_out_sources(by_class, cfg.holdout_sources, seed) if cfg.split_by == "source" else set()
    train_by_class = {y: {s: n for s, n in srcs.items() if s not in held} for y, srcs in by_class.items()}
    want_pos, want_neg = ft.class_caps(
        sum(train_by_class[1].values()),
        sum(train_by_class[0].values()),
        cfg.max_positives,
        cfg.max_negatives,
        cfg.max_class_ratio,
    )
    rates: dict[str, float] = {}
    for y, want in ((1, want_pos), (0, want_neg)):
        for src, q in source_quotas(train_by_class[y], want, cfg.balance_sources).items():
            rates[f"{y}:{src}"] = q / train_by_class[y][src]
        for src in held & set(by_class[y]):
            rates[f"{y}:{src}"] = ft.sample_rate(by_class[y][src], HELD_OUT_PER_SOURCE)
    key = F.concat_ws(":", F.col("label").cast("string"), F.coalesce(F.col("source"), F.lit("")))
    rate = F.coalesce(F.create_map(*[F.lit(x) for kv in sorted(rates.items()) for x in kv])[key], F.lit(0.0))
    out = F.col("source").isin(sorted(held)) if held else F.lit(False)
    if cfg.split_by == "host":
        out = F.coalesce(_unit_hash(seed + 3, "host") < cfg.holdout, F.lit(False))
    test = F.when(out, F.lit("out")).when(_unit_hash(seed + 1, "cluster") < cfg.holdout, F.lit("in"))
    sample = (
        labelled.where(_unit_hash(seed, "id") < rate)
        .withColumn("test", test)
        .select("id", "label", "test", "source", "text")
    )
    ordered = sample.repartition(1).sortWithinPartitions(F.xxhash64(F.lit(seed + 2), F.col("id")), "id")
    ctx.spark.sparkContext.setJobDescription(f"forge {STAGE}: train fastText")
    rows = ordered.mapInArrow(lambda it: train_partition(it, cfg, seed, dest), "detail string").collect()
    if len(rows) != 1:  # one summary row (counts and held-out metrics): no document reaches the driver
        raise ClassifyError("classify: the training task returned no model")
    info = json.loads(rows[0]["detail"])
    if "error" in info:
        raise ClassifyError(info["error"])
    return {
        "available": {"positives": pos, "negatives": neg},
        "sources": {"positive": by_class[1], "negative": by_class[0]},
        "held_out": sorted(held),
        **info,
    }


HOST_SCORES = pa.schema([("host", pa.string()), ("recalled", pa.bool_())])


def host_scores_fn(model_path: str, threshold: float, cfg: ClassifySection):
    """For ``datasets.rewrite_row_groups``: (host, recalled) of every scored document with a URL host."""

    def rows(batch: pa.RecordBatch) -> pa.RecordBatch:
        marked, recalled = mark_batch(batch, _model(model_path), threshold, cfg)
        scored = pc.is_valid(marked.column("agent_score"))
        hosts = [host_of(u) for u in marked.column("url").to_pylist()]
        keep = pc.and_(scored, pc.is_valid(pa.array(hosts, pa.string())))
        return pa.RecordBatch.from_arrays([pa.array(hosts, pa.string()), recalled], schema=HOST_SCORES).filter(keep)

    return rows


def domain_step(ctx, model_path: str, threshold: float, cfg: ClassifySection, scratch: str) -> dict:
    """MAmmoTH2's domain step: score every document once, sum per host, and name the hosts to promote (share of
    recalled pages at or above ``promote_share``) and to demote (at or below ``demote_share``, with some recalled),
    among hosts with ``min_host_documents`` scored pages. Only the two lists reach the driver."""
    from pyspark.sql import functions as F

    from corpus.stage import document_paths

    ctx.spark.sparkContext.setJobDescription(f"forge {STAGE}: domain step")
    read = pa.schema([schema.document().arrow.field(n) for n in ("id", "part", "url", "text", "agent_score")])
    datasets.rewrite_row_groups(
        ctx.spark,
        document_paths(ctx.inputs),
        scratch,
        read,
        HOST_SCORES,
        host_scores_fn(model_path, threshold, cfg),
        batch_rows=4096,
    )
    per = (
        datasets.read(ctx.spark, scratch)
        .groupBy("host")
        .agg(F.count("*").alias("n"), F.sum(F.col("recalled").cast("long")).alias("r"))
        .where(F.col("n") >= cfg.min_host_documents)
        .withColumn("share", F.col("r") / F.col("n"))
    )
    cond = F.lit(False)
    if cfg.promote_share is not None:
        cond = cond | (F.col("share") >= cfg.promote_share)
    if cfg.demote_share is not None:
        cond = cond | ((F.col("share") <= cfg.demote_share) & (F.col("r") > 0))
    picked = per.where(cond).orderBy(F.desc("n"), "host").collect()  # the promoted and demoted hosts only
    promoted = [r["host"] for r in picked if cfg.promote_share is not None and r["share"] >= cfg.promote_share]
    demoted = [r["host"] for r in picked if r["host"] not in promoted]
    info = {
        r["host"]: {"documents": int(r["n"]), "recalled": int(r["r"]), "share": round(r["share"], 4)} for r in picked
    }
    return {"promoted": promoted, "demoted": demoted, "hosts": info}


def pick_hosts(per_host: list[dict], cfg: ClassifySection) -> tuple[list[str], list[str], dict]:
    """(promoted, demoted, their figures) from per-host (host, documents, recalled) rows: see ``domain_step``."""
    promoted, demoted, info = [], [], {}
    for r in sorted(per_host, key=lambda r: (-r["documents"], r["host"])):
        n, rec = r["documents"], r["recalled"]
        if r["host"] == NO_URL or n < cfg.min_host_documents:
            continue
        share = rec / n
        if cfg.promote_share is not None and share >= cfg.promote_share and rec < n:
            promoted.append(r["host"])
        elif cfg.demote_share is not None and share <= cfg.demote_share and rec > 0:
            demoted.append(r["host"])
        else:
            continue
        info[r["host"]] = {"documents": n, "recalled": rec, "share": round(share, 4)}
    return promoted, demoted, info


FLIP_READ = ("part", "url", "agent_score", "metadata")


def apply_domain_step(ctx, cfg: ClassifySection, host_counts: str, outcome) -> None:
    """MAmmoTH2's domain step on the scores already written: per-host shares from the scoring tasks' counts pick
    the hosts to promote and demote (no second scoring); a pass over the written documents then flips their
    parts, and the counters are corrected from the per-host counts. The labelled counts are taken again from the
    flipped documents (two narrow columns)."""
    import pyarrow.dataset as ds
    from pyspark.sql import functions as F

    from corpus.stage import DATA

    if not files.list_files(host_counts, (datasets.PARQUET_SUFFIX,)):
        return
    fs, inner = files.filesystem(host_counts)
    per = host_table(ds.dataset(inner, format="parquet", filesystem=fs, schema=HOST_COUNTS).to_table(), 0)
    promoted, demoted, info = pick_hosts(per.select(["host", "documents", "recalled"]).to_pylist(), cfg)
    outcome.extra["domains"] = {
        "promoted": len(promoted),
        "demoted": len(demoted),
        "hosts": dict(list(info.items())[: cfg.top_hosts]),
    }
    if not promoted and not demoted:
        return
    flip_cfg = cfg.model_copy(update={"promote_domains": promoted, "block_domains": demoted})
    promote, block = frozenset(promoted), frozenset(demoted)

    def flip(batch: pa.RecordBatch) -> pa.RecordBatch:
        parts, urls = batch.column("part").to_pylist(), batch.column("url").to_pylist()
        scores = batch.column("agent_score").to_pylist()
        apply = set(flip_cfg.apply_parts)
        for i, (p, u, v) in enumerate(zip(parts, urls, scores)):
            if v is None or u is None or (p not in apply and p != "agent_web"):
                continue
            host = host_of(u)
            if _on(host, promote):
                parts[i] = "agent_web"
            elif _on(host, block) and p == "agent_web":
                parts[i] = cfg.apply_parts[0] if len(cfg.apply_parts) == 1 else "text"
        i = batch.schema.get_field_index("part")
        return batch.set_column(i, "part", pa.array(parts, pa.string()))

    ctx.spark.sparkContext.setJobDescription(f"forge {STAGE}: domain step")
    flipped = ctx.path("_scratch", "flipped")
    doc_schema = schema.document().arrow
    datasets.rewrite_row_groups(ctx.spark, [ctx.path(DATA)], flipped, doc_schema, doc_schema, flip)
    files.remove(ctx.path(DATA))
    files.move_dir(flipped, ctx.path(DATA))
    gained = sum(info[h]["documents"] - info[h]["recalled"] for h in promoted)
    lost = sum(info[h]["recalled"] for h in demoted)
    c = outcome.counters
    c["agent_web"] = c.get("agent_web", 0) + gained - lost
    c["recalled"] = c.get("recalled", 0) + gained - lost
    c["domain_promoted_documents"], c["domain_demoted_documents"] = gained, lost
    if any(k.startswith("labelled:") for k in c):  # the labelled measure after the flips
        rows = (
            datasets.read(ctx.spark, ctx.path(DATA))
            .where(F.col("metadata").contains('"eval_label"'))
            .where(F.col("agent_score").isNotNull())
            .select(F.get_json_object("metadata", "$.eval_label").alias("y"), (F.col("part") == "agent_web").alias("r"))
            .groupBy("y", "r")
            .count()
            .collect()
        )  # four rows
        for k in ("tp", "fp", "fn", "tn"):
            c.pop(f"labelled:{k}", None)
        for row in rows:
            if row["y"] in ("agent", "general"):
                k = {(True, True): "tp", (False, True): "fp", (True, False): "fn", (False, False): "tn"}[
                    (row["y"] == "agent", bool(row["r"]))
                ]
                c[f"labelled:{k}"] = c.get(f"labelled:{k}", 0) + int(row["count"])


def _recalled(ctx, model_path: str, threshold: float, cfg: ClassifySection, scratch: str):
    """Ids of ``apply_parts`` documents at or above the threshold (blocked hosts excluded), written to scratch by
    the tasks (the texts stay out of the JVM, as in the final scoring)."""
    from corpus.stage import document_paths

    ctx.spark.sparkContext.setJobDescription(f"forge {STAGE}: recall with the round's model")
    read = pa.schema([schema.document().arrow.field(n) for n in ("id", "part", "url", "text", "agent_score")])
    rows = datasets.rewrite_row_groups(
        ctx.spark,
        document_paths(ctx.inputs),
        scratch,
        read,
        pa.schema([read.field("id")]),
        recalled_fn(model_path, threshold, cfg),
        batch_rows=4096,
    )
    return datasets.read(ctx.spark, scratch), rows


# the tasks' per-host counts are summed in the driver up to this many rows (a few seconds less than a Spark
# job on a fresh JVM); above it, by Spark (a crawl of millions of hosts)
HOSTS_IN_DRIVER = 1_000_000


def host_table(counts: pa.Table, recalled: int) -> pa.Table:
    """The per-host view (schema ``classify_hosts``, by host) from the tasks' per-host counts (HOST_COUNTS rows,
    several per host); ``recalled``: the scored documents that are ``agent_web``. What :func:`host_view` computes
    with Spark, for counts small enough to sum in one process."""
    per = (
        counts.group_by("host", use_threads=False)
        .aggregate([("documents", "sum"), ("recalled", "sum"), ("score_sum", "sum")])
        .sort_by("host")
    )
    docs, rec = per.column("documents_sum"), per.column("recalled_sum")
    as_float = pc.cast(rec, pa.float64())
    arrow = schema.load("classify_hosts").arrow
    return pa.table(
        [
            per.column("host"),
            docs,
            rec,
            pc.divide(as_float, pc.cast(docs, pa.float64())),
            pc.divide(as_float, float(recalled)) if recalled else pa.array([0.0] * per.num_rows),
            pc.round(pc.divide(per.column("score_sum_sum"), pc.cast(docs, pa.float64())), 6, round_mode="half_up"),
        ],
        schema=arrow,
    )


def host_view(spark, counts_path: str, recalled: int):
    """:func:`host_table` as a Spark DataFrame over the tasks' count files, for counts too many for the driver."""
    from pyspark.sql import functions as F
    from pyspark.sql.pandas.types import from_arrow_schema

    per = (
        datasets.read(spark, counts_path, schema=from_arrow_schema(HOST_COUNTS))
        .groupBy("host")
        .agg(
            F.sum("documents").alias("documents"),
            F.sum("recalled").alias("recalled"),
            (F.sum("score_sum") / F.sum("documents")).alias("mean_score"),
        )
    )
    return per.select(
        "host",
        "documents",
        "recalled",
        (F.col("recalled") / F.col("documents")).alias("share_of_host"),
        (F.col("recalled") / F.lit(float(recalled)) if recalled else F.lit(0.0)).alias("share_of_recalled"),
        F.round("mean_score", 6).alias("mean_score"),
    )


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
        table = host_table(ds.dataset(inner, format="parquet", filesystem=fs, schema=HOST_COUNTS).to_table(), recalled)
        files.make_dirs(out)
        datasets.TaskFile(out, 0, arrow).fill(table.to_batches())
        rows = table.sort_by([("recalled", "descending"), ("documents", "descending"), ("host", "ascending")])
        rows = rows.slice(0, top).to_pylist()
    else:
        datasets.write(host_view(spark, counts_path, recalled).select(*arrow.names), out)
        rows = [
            r.asDict()
            for r in datasets.read(spark, out, schema=schema.load("classify_hosts").spark)
            .orderBy(F.desc("recalled"), F.desc("documents"), "host")
            .limit(top)
            .collect()
        ]  # the top hosts
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
            saved = meta.get("fasttext", {})  # score as the model was trained: same tokens, same length
            cfg = cfg.model_copy(
                update={
                    "fasttext": cfg.fasttext.model_copy(
                        update={
                            "tokens": saved.get("tokens", ft.LEGACY_TOKENS),
                            "max_words": saved.get("max_words", cfg.fasttext.max_words),
                        }
                    )
                }
            )
            meta = {**meta, "threshold": threshold, "applied_from": source}
            extra.update(trained=False, model_from=source)
        else:
            rounds, recalled = [], None
            threshold = 0.5
            docs = read_documents(ctx.spark, ctx.inputs)
            round_cfg = cfg
            for k in range(1, cfg.rounds + 1):
                dest = final_model if k == cfg.rounds else ctx.path("_scratch", f"round-{k}.bin")
                info = train_round(ctx, docs, round_cfg, seed + 10 * k, dest, recalled)
                threshold = info["chosen"]["threshold"]
                if k < cfg.rounds:
                    recalled, info["recalled"] = _recalled(
                        ctx, dest, threshold, cfg, ctx.path("_scratch", f"recalled-{k}")
                    )
                    if cfg.promote_share is not None:  # the next round also trains on the promoted hosts' pages
                        step = domain_step(ctx, dest, threshold, cfg, ctx.path("_scratch", f"hosts-{k}"))
                        info["promoted"] = step["promoted"][: cfg.top_hosts]
                        round_cfg = round_cfg.model_copy(
                            update={"seed_domains": sorted(set(round_cfg.seed_domains) | set(step["promoted"]))}
                        )
                rounds.append({"round": k, **info})
                log.info(
                    "classify round %d: %s P %.3f R %.3f F1 %.3f at threshold %.3f (%d train docs; held out: %s)",
                    k,
                    info["evaluated_on"].replace("_", " "),
                    info["chosen"]["precision"],
                    info["chosen"]["recall"],
                    info["chosen"]["f1"],
                    threshold,
                    info["train_positives"] + info["train_negatives"],
                    ", ".join(info["held_out"]) or "-",
                )
            scoring_model = final_model
            meta = {
                "threshold": threshold,
                "labels": [ft.POSITIVE, ft.NEGATIVE],
                "fasttext": cfg.fasttext.model_dump(),
                "seed": seed,
                "rounds": rounds,
            }
            extra.update(trained=True, rounds=rounds)
        files.write_text(posixpath.join(model_dir, MODEL_META), json.dumps(meta, indent=2, sort_keys=True) + "\n")
        extra["threshold"] = threshold
        extra["model"] = final_model.replace(ctx.tmp, ctx.output, 1)
        files.make_dirs(host_counts)
        samples = ctx.path("_scratch", "samples")
        files.make_dirs(samples)
        # more tasks than the default two per core: scoring is CPU-bound, and small last tasks idle a core less
        tasks = datasets.row_groups(ctx.spark, *document_paths(ctx.inputs), per_core=8)
        outcome = write_tasks(
            ctx,
            tasks,
            apply_fn(scoring_model, threshold, cfg, host_counts, samples_dir=samples, seed=seed),
            rows_in=count_documents(ctx.inputs),
            extra=extra,
        )
        outcome.extra["sample"] = read_sample(samples)
        if cfg.promote_share is not None or cfg.demote_share is not None:
            apply_domain_step(ctx, cfg, host_counts, outcome)
        outcome.extra["labelled"] = labelled_metrics(outcome.counters)
        ctx.spark.sparkContext.setJobDescription(f"forge {STAGE}: write hosts")
        outcome.extra["hosts"] = write_hosts(
            ctx.spark, host_counts, outcome.counters.get("recalled", 0), ctx.path("hosts"), cfg.top_hosts
        )
    finally:
        if copying is not None:
            copying.join()
        files.remove(ctx.path("_scratch"))
    return outcome
