"""The stage runner: every stage is committed atomically, with stats, and skipped on rerun when done.

A stage's output folder (``OUT/<stage>/``) holds:

* ``data/``        the documents (Parquet, document schema), or the stage's own files (``write``: shards);
* ``rejects/``     the dropped records (Parquet, rejects schema);
* ``_stats.json``  rows in / out / rejected by reason, counters, seconds, the config fingerprint;
* ``_SUCCESS``     written last: a folder without it is not a committed stage.

The stage writes into a hidden temporary sibling (``_tmp-<stage>-<random>``) and renames it into place only
when complete, so a killed run leaves nothing that looks committed. For every stage the runner checks
``rows_in == rows_out + rows_rejected`` and fails the stage (committing nothing) if a record went missing.

A stage's ``build(ctx)`` returns one of two things:

* an :class:`Outcome`: the stage wrote its folder itself and says what it counted. Document stages get there
  with :func:`write_envelope` (a batch function emits documents, rejects and counters; each Spark task writes
  its own files: ``filter``, ``redact``, the ingest stages, ``synthesize``) or its general form
  :func:`write_tasks` (any producer over row groups: ``classify``, ``dedup``'s small inputs). Stages whose
  output is not documents build the Outcome directly (``crawl``, ``mix``, ``write``, ``export``).
* a :class:`StagePlan`: DataFrames the runner writes (:func:`_execute_plan`), for stages whose documents need a
  Spark shuffle first or have side datasets (``dedup``, ``extract``, ``decontaminate``; :func:`envelope_plan`
  builds one from an envelope).
"""

from __future__ import annotations

import json
import logging
import posixpath
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

from corpus import __version__, schema
from corpus.config import Config
from corpus.io import files
from corpus.spark import datasets
from corpus.spark.envelope import KIND_COUNTERS, KIND_DOC, KIND_REJECT, split_batch

log = logging.getLogger("corpus")

SUCCESS = "_SUCCESS"
STATS = "_stats.json"
DATA = "data"
REJECTS = "rejects"


class StageError(RuntimeError):
    """A stage could not complete; nothing was committed."""


class ForeignOutput(StageError):
    """An output path holds something forge did not write: nothing in it is deleted or replaced."""


def claim(path: str, what: str, overwrite_foreign: bool = False) -> None:
    """Refuse to write at ``path`` when it holds anything forge did not write (no ``_FORGE`` marker): a stage
    replaces its output folder on commit, and a user's folder must never be the one replaced. A missing or empty
    folder is fine; ``overwrite_foreign`` (``--overwrite-foreign``) lets forge replace a foreign folder. ``--force``
    does not: it reruns forge's own stages."""
    kind = files.get_type(path)
    if kind == "missing":
        return
    if kind == "file":
        raise ForeignOutput(
            f"{path}: the {what} is an existing file, not a folder; nothing was changed. Choose another output path."
        )
    if files.made_by_forge(path) or files.is_empty(path):
        return
    if overwrite_foreign:
        log.warning("%s: the %s was not written by forge; replacing it (--overwrite-foreign)", path, what)
        return
    raise ForeignOutput(
        f"{path}: the {what} exists, is not empty and was not written by forge (it has no "
        f"{files.MARKER} marker); nothing was changed. Choose another output folder, empty this "
        f"one, or pass --overwrite-foreign to let forge replace it."
    )


@dataclass
class StagePlan:
    """What a document stage returns: DataFrames to write, and how to count what came in.

    ``rows_in`` is an int, or the name of a counter (summed from the envelope) that counts input records.
    """

    documents: Any
    rejects: Any
    rows_in: int | str
    # () -> (counters, rejects by reason, documents): one pass over the data; None = count the written rejects
    summary: Callable[[], tuple[dict[str, int], dict[str, int], int]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    cleanup: Callable[[], None] | None = None
    # extra datasets written beside data/ and rejects/: folder name -> (DataFrame, schema name); the DataFrame
    # may be a function returning it, called after data/ is written (for datasets computed from the written data)
    outputs: dict[str, tuple[Any, str]] = field(default_factory=dict)
    # write the rejects while the documents are written (two Spark jobs side by side: each fills the cores the
    # other leaves idle in its scheduling gaps and last tasks). For plans whose two DataFrames share no cached
    # data that both jobs would compute at once.
    parallel_writes: bool = False
    # the reject reasons the stage gives, if it knows them all: then they are counted while the rejects are
    # written (a Spark observation) instead of by reading the rejects back (a reason not listed: read back)
    reasons: tuple[str, ...] = ()
    # run on the outcome before anything is committed; one that raises fails the stage (an LLM endpoint that
    # failed too often, ...)
    checks: list[Callable[["Outcome"], None]] = field(default_factory=list)


class Background:
    """Runs ``fn`` in a thread now (a Spark job submitted from it runs beside the caller's jobs; driver-side
    planning in it overlaps the caller's jobs); ``join()`` waits for it, raises what it raised, or returns what
    it returned."""

    def __init__(self, fn: Callable[[], Any], name: str = "stage-background") -> None:
        import threading

        self.error: BaseException | None = None
        self.result: Any = None

        def run() -> None:
            try:
                self.result = fn()
            except BaseException as err:  # handed to join()
                self.error = err

        self.thread = threading.Thread(target=run, name=name, daemon=True)
        self.thread.start()

    def join(self) -> Any:
        self.thread.join()
        if self.error is not None:
            raise self.error
        return self.result


@dataclass
class Outcome:
    """What a stage that writes its own files (``write``) returns. ``extra["warnings"]`` (a list of lines), if
    any, is printed when the stage ends and kept in its stats for the report."""

    rows_in: int
    rows_out: int
    rejected: dict[str, int] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    checks: list[Callable[["Outcome"], None]] = field(default_factory=list)  # see StagePlan.checks


@dataclass
class StageContext:
    name: str
    spark: Any
    config: Config
    inputs: list[Any]
    output: str
    tmp: str

    def path(self, *parts: str) -> str:
        return posixpath.join(self.tmp, *parts)


def committed(output: str) -> bool:
    return files.exists(posixpath.join(output, SUCCESS))


def read_stats(output: str) -> dict:
    return json.loads(files.read_text(posixpath.join(output, STATS)))


def committed_stats(out: str) -> list[dict]:
    """Stats of every committed stage under the run folder ``out``, in pipeline order (unknown stages last, by
    name): what the report and the dataset card are made from."""
    import pyarrow.fs as pafs

    from corpus.stages import ORDER

    found = []
    fs, inner = files.filesystem(out)

    if fs.get_file_info(inner).type != pafs.FileType.Directory:
        raise files.InputError(f"{out}: no such run output folder")
    for info in fs.get_file_info(pafs.FileSelector(inner)):
        if info.type != pafs.FileType.Directory or posixpath.basename(info.path).startswith(("_", ".")):
            continue
        stage_dir = posixpath.join(out, posixpath.basename(info.path))
        if files.exists(posixpath.join(stage_dir, SUCCESS)) and files.exists(posixpath.join(stage_dir, STATS)):
            found.append(json.loads(files.read_text(posixpath.join(stage_dir, STATS))))
    rank = {n: i for i, n in enumerate(ORDER)}
    return sorted(found, key=lambda s: (rank.get(s["stage"], len(rank)), s["stage"]))


def envelope_plan(env, rows_in_counter: str = "records_in", extra: dict | None = None) -> StagePlan:
    """Turn an envelope DataFrame (see corpus.spark.envelope) into a plan: persisted once, split three ways."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    env = env.persist(StorageLevel.MEMORY_AND_DISK)
    docs = env.where(F.col("_kind") == KIND_DOC).select(*schema.document().names)
    rejects = env.where(F.col("_kind") == KIND_REJECT).select(
        "id",
        F.col("_reason").alias("reason"),
        F.col("_detail").alias("detail"),
        "part",
        "source",
        F.col("_location").alias("location"),
        "url",
        F.col("_duplicate_of").alias("duplicate_of"),
        "text",
        "metadata",
    )

    def summary() -> tuple[dict[str, int], dict[str, int], int]:
        """Counters, rejects by reason and documents, in one aggregation over the persisted envelope."""
        rows = (
            env.select("_kind", "_reason", F.explode_outer("_counters"))
            .groupBy("_kind", "_reason", "key")
            .agg(F.count("*").alias("rows"), F.sum("value").alias("n"))
            .collect()
        )  # a few dozen summary rows
        counters = {r["key"]: int(r["n"]) for r in rows if r["_kind"] == KIND_COUNTERS}
        rejected = {r["_reason"]: int(r["rows"]) for r in rows if r["_kind"] == KIND_REJECT}
        docs_n = sum(int(r["rows"]) for r in rows if r["_kind"] == KIND_DOC)
        return counters, rejected, docs_n

    return StagePlan(
        documents=docs,
        rejects=rejects,
        rows_in=rows_in_counter,
        summary=summary,
        extra=extra or {},
        cleanup=env.unpersist,
    )


def _task_summary_schema():
    import pyarrow as pa

    counts = pa.map_(pa.string(), pa.int64())
    return pa.schema([("documents", pa.int64()), ("rejects", pa.int64()), ("counters", counts), ("reasons", counts)])


def _task_writes(produce: Callable, data: str, rejects: str, sides: dict[str, Any] | None = None) -> Callable:
    """mapInArrow function: ``produce(batches)`` yields (documents, rejects, counters) — Arrow batches of the two
    datasets' schemas and a Counter — or, for a stage with side datasets, (documents, rejects, counters, {folder:
    batch}) with ``sides`` giving each side folder's pyarrow schema. The task writes its own file in each folder
    (:class:`datasets.TaskFile`) and yields one summary row."""

    def run(batches):
        from collections import Counter

        import pyarrow as pa
        from pyspark import TaskContext

        part = TaskContext.get().partitionId()
        outputs = [
            datasets.TaskFile(data, part, schema.document().arrow),
            datasets.TaskFile(rejects, part, schema.rejects().arrow),
        ]
        side_files = {folder: datasets.TaskFile(folder, part, arrow) for folder, arrow in (sides or {}).items()}
        outputs += side_files.values()
        counters: Counter[str] = Counter()
        reasons: Counter[str] = Counter()
        try:
            for d, r, c, *side in produce(batches):
                outputs[0].write(d)
                outputs[1].write(r)
                for folder, batch in (side[0] if side else {}).items():
                    side_files[folder].write(batch)
                counters.update(c)
                reasons.update(r.column("reason").to_pylist())
            n_docs, n_rej, *_ = [f.close() for f in outputs]
        except BaseException:
            for f in outputs:
                f.abort()
            raise
        yield pa.RecordBatch.from_pylist(
            [
                {
                    "documents": n_docs,
                    "rejects": n_rej,
                    "counters": sorted(counters.items()),
                    "reasons": sorted(reasons.items()),
                }
            ],
            schema=_task_summary_schema(),
        )

    return run


def write_tasks(
    ctx: StageContext,
    df,
    produce: Callable,
    rows_in: int | str = "records_in",
    extra: dict | None = None,
    sides: dict[str, str] | None = None,
) -> Outcome:
    """Run ``produce`` (see :func:`_task_writes`) over ``df`` in ONE Spark job whose tasks write the stage's
    documents and rejects themselves and return only their counts. ``rows_in`` is an int, or the name of a
    counter the producer reports. ``sides``: side datasets the producer also yields (folder name → schema name,
    e.g. ingest-apis' ``tools`` → ``tool_doc``); their rows are counted into ``extra["side_rows"]``.

    Against writing with Spark (``StagePlan``), the texts are never copied into the JVM, and a stage whose one
    computation feeds both datasets needs no persisted copy and no job per dataset. Counts come from the
    successful task attempts only, so a retried task counts once; the written files are checked against them.
    """
    from collections import Counter

    from pyspark.sql.pandas.types import from_arrow_schema

    data, rejects = ctx.path(DATA), ctx.path(REJECTS)
    side_paths = {ctx.path(folder): schema.load(name).arrow for folder, name in (sides or {}).items()}
    for folder in (data, rejects, *side_paths):
        files.make_dirs(folder)
    ctx.spark.sparkContext.setJobDescription(f"forge {ctx.name}: documents and rejects")
    tasks = df.mapInArrow(
        _task_writes(produce, data, rejects, side_paths), from_arrow_schema(_task_summary_schema())
    ).collect()  # a row per task
    counters: Counter[str] = Counter()
    rejected: Counter[str] = Counter()
    for row in tasks:
        counters.update(row["counters"] or {})
        rejected.update(row["reasons"] or {})
    for folder, arrow in ((data, schema.document().arrow), (rejects, schema.rejects().arrow), *side_paths.items()):
        if not files.list_files(folder, (datasets.PARQUET_SUFFIX,)):  # no rows at all: an empty file keeps the schema
            datasets.write_empty(folder, arrow)
    rows_out, rows_rejected = count_rows(data), count_rows(rejects)
    if rows_out != sum(r["documents"] for r in tasks) or rows_rejected != sum(rejected.values()):
        raise StageError(
            f"{ctx.name}: written rows ({rows_out} documents, {rows_rejected} rejects) differ from the "
            f"tasks' counts; nothing committed"
        )
    if isinstance(rows_in, str):
        if rows_in not in counters and (rows_out or rows_rejected):
            raise StageError(f"{ctx.name}: batch functions did not report counter {rows_in!r}")
        rows_in = counters.get(rows_in, 0)
    extra = extra if extra is not None else {}
    if sides:
        extra["side_rows"] = {folder: count_rows(ctx.path(folder)) for folder in sides}
    return Outcome(
        rows_in=rows_in,
        rows_out=rows_out,
        rejected=dict(sorted(rejected.items())),
        counters=dict(sorted(counters.items())),
        extra=extra,
    )


def write_envelope(
    ctx: StageContext,
    df,
    fn: Callable,
    rows_in_counter: str = "records_in",
    extra: dict | None = None,
    sides: dict[str, tuple[str, str]] | None = None,
) -> Outcome:
    """:func:`write_tasks` for a batch function ``fn`` that emits envelope batches (corpus.spark.envelope):
    each task splits its envelope column-wise. ``sides``: envelope side-row kind → (folder, schema name), the
    typed datasets written beside the documents (ingest-apis' tool records, imported trajectories). Against
    ``envelope_plan`` (persist, then write each dataset from the cache) it saves the JVM's copy of every text
    into the cache and out, and the jobs after the main one: 3.9 s of a 38.8 s ingest-web bench run, on the two
    cores the extraction needs."""
    from corpus.spark.envelope import side_batch

    stage = ctx.name
    sides = sides or {}
    kinds = tuple(sides)
    paths = {kind: ctx.path(folder) for kind, (folder, _) in sides.items()}

    def produce(batches):
        for batch in fn(batches):
            docs, rejects, counters = split_batch(batch, stage, kinds)
            yield docs, rejects, counters, {paths[k]: side_batch(batch, k, name) for k, (_, name) in sides.items()}

    return write_tasks(
        ctx, df, produce, rows_in_counter, extra, sides={folder: name for folder, name in sides.values()}
    )


def write_documents(ctx: StageContext, df) -> None:
    ctx.spark.sparkContext.setJobDescription(f"forge {ctx.name}: write documents")
    datasets.write(df.select(*schema.document().names), ctx.path(DATA))


def write_rejects(ctx: StageContext, df, reasons: tuple[str, ...] = ()) -> dict[str, int] | None:
    """Write the rejects; with ``reasons``, also count them by reason as they are written (None when a reason
    outside the list occurred, or when no list is given)."""
    from pyspark.sql import Observation
    from pyspark.sql import functions as F

    ctx.spark.sparkContext.setJobDescription(f"forge {ctx.name}: write rejects")  # per thread: a thread-local property
    cols = [F.lit(ctx.name).alias("stage") if n == "stage" else F.col(n) for n in schema.rejects().names]
    out = df.select(*cols)
    seen = None
    if reasons:
        seen = Observation(f"{ctx.name}-rejects")
        out = out.observe(
            seen,
            F.count(F.lit(1)).alias("_all"),
            *[F.sum((F.col("reason") == r).cast("long")).alias(f"_{k}") for k, r in enumerate(reasons)],
        )
    datasets.write(out, ctx.path(REJECTS))
    if seen is None:
        return None
    got = seen.get
    counted = {r: int(got[f"_{k}"] or 0) for k, r in enumerate(reasons)}
    return {r: n for r, n in counted.items() if n} if sum(counted.values()) == got["_all"] else None


def count_rows(path: str) -> int:
    """Rows of a Parquet dataset, from the file footers (no Spark job, no data read)."""
    import pyarrow.dataset as ds

    fs, inner = files.filesystem(path)
    return ds.dataset(inner, format="parquet", filesystem=fs).count_rows()


def _execute_plan(ctx: StageContext, plan: StagePlan) -> Outcome:
    try:
        if plan.parallel_writes:
            rejects = Background(lambda: write_rejects(ctx, plan.rejects, plan.reasons), f"{ctx.name}-rejects")
            try:
                write_documents(ctx, plan.documents)
            finally:
                by_reason = rejects.join()
        else:
            write_documents(ctx, plan.documents)
            by_reason = write_rejects(ctx, plan.rejects, plan.reasons)
        for folder, (df, schema_name) in plan.outputs.items():
            ctx.spark.sparkContext.setJobDescription(f"forge {ctx.name}: write {folder}")
            df = df() if callable(df) else df
            datasets.write(df.select(*schema.load(schema_name).names), ctx.path(folder))
        if plan.summary is not None:
            ctx.spark.sparkContext.setJobDescription(f"forge {ctx.name}: summary")
            counters, rejected, docs_n = plan.summary()
        else:
            counters, rejected, docs_n = {}, by_reason, None
    finally:
        if plan.cleanup:
            plan.cleanup()
    rows_out, rows_rejected = count_rows(ctx.path(DATA)), count_rows(ctx.path(REJECTS))
    if rejected is None:
        from pyspark.sql import functions as F

        ctx.spark.sparkContext.setJobDescription(f"forge {ctx.name}: rejects by reason")
        rejected = {
            r["reason"]: int(r["n"])
            for r in datasets.read(ctx.spark, ctx.path(REJECTS))
            .groupBy("reason")
            .agg(F.count("*").alias("n"))
            .collect()
        }  # one row per reason
    if sum(rejected.values()) != rows_rejected or (docs_n is not None and docs_n != rows_out):
        raise StageError(
            f"{ctx.name}: written rows ({rows_out} documents, {rows_rejected} rejects) differ from "
            f"the computed ones ({docs_n}, {sum(rejected.values())}); nothing committed"
        )
    if isinstance(plan.rows_in, str):
        if plan.rows_in not in counters and (rows_out or rows_rejected):
            raise StageError(f"{ctx.name}: batch functions did not report counter {plan.rows_in!r}")
        rows_in = counters.get(plan.rows_in, 0)
    else:
        rows_in = plan.rows_in
    return Outcome(
        rows_in=rows_in,
        rows_out=rows_out,
        rejected=dict(sorted(rejected.items())),
        counters=dict(sorted(counters.items())),
        extra=plan.extra,
        checks=plan.checks,
    )


def run_stage(
    name: str,
    build: Callable[[StageContext], StagePlan | Outcome],
    *,
    spark: Any,
    config: Config,
    inputs: list[Any],
    output: str,
    fingerprint: str,
    force: bool = False,
    overwrite_foreign: bool = False,
) -> dict:
    """Run one stage unless it is committed with the same fingerprint; return its stats. An existing ``output``
    that forge did not write is refused (:func:`claim`)."""
    claim(output, f"output of stage {name}", overwrite_foreign)
    if committed(output) and not force:
        stats = read_stats(output)
        if stats.get("fingerprint") == fingerprint:
            log.info("%-12s skipped: committed at %s (use --force to rerun)", name, output)
            return {**stats, "skipped": True}
        log.warning("%-12s config or inputs changed since it was committed: rerunning", name)
    parent = posixpath.dirname(output.rstrip("/")) or "."
    files.make_dirs(parent)
    for stale in files.temporary_siblings(output):  # left by a run killed while writing this stage
        log.info("%-12s removing %s (an unfinished write of a killed run)", name, stale)
        files.remove(stale)
    tmp = files.temporary_sibling(output)
    files.make_dirs(tmp)
    files.write_marker(tmp, "stage", name)  # first: whatever the temporary folder holds from now on is forge's
    ctx = StageContext(name=name, spark=spark, config=config, inputs=inputs, output=output, tmp=tmp)
    started = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    spark.sparkContext.setJobGroup(name, f"forge {name}")
    from corpus.spark.progress import StageProgress

    try:
        with StageProgress(spark.sparkContext, name, config.spark.progress_seconds if config.spark.progress else 0):
            result = build(ctx)
            outcome = _execute_plan(ctx, result) if isinstance(result, StagePlan) else result
        for check in outcome.checks:
            check(outcome)
        lost = outcome.rows_in - outcome.rows_out - sum(outcome.rejected.values())
        if lost:
            raise StageError(
                f"{name}: {outcome.rows_in} rows in but {outcome.rows_out} out + "
                f"{sum(outcome.rejected.values())} rejected ({lost:+d} unaccounted); nothing committed"
            )
        stats = {
            "stage": name,
            "producer": f"corpus {__version__}",
            "rows_in": outcome.rows_in,
            "rows_out": outcome.rows_out,
            "rows_rejected": sum(outcome.rejected.values()),
            "rejects_by_reason": outcome.rejected,
            "counters": outcome.counters,
            "seconds": round(time.perf_counter() - t0, 3),
            "started_at": started.isoformat(timespec="seconds"),
            "inputs": [str(getattr(i, "path", i)) for i in inputs],
            "output": output,
            "fingerprint": fingerprint,
            **({"extra": outcome.extra} if outcome.extra else {}),
        }
        files.write_text(posixpath.join(tmp, STATS), json.dumps(stats, indent=2, sort_keys=True) + "\n")
        files.write_text(posixpath.join(tmp, SUCCESS), "")
        files.commit_dir(tmp, output)
    except BaseException:
        files.remove(tmp)
        raise
    finally:
        spark.sparkContext.setJobGroup("", "")
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(outcome.rejected.items(), key=lambda kv: -kv[1])[:4])
    log.info(
        "%-12s %d in, %d out, %d rejected%s in %.1fs -> %s",
        name,
        outcome.rows_in,
        outcome.rows_out,
        stats["rows_rejected"],
        f" ({reasons})" if reasons else "",
        stats["seconds"],
        output,
    )
    for warning in outcome.extra.get("warnings", []):  # on the console when the stage ends, not only in the report
        log.warning("%-12s warning: %s", name, warning)
    return stats


def dataset_path(path: str) -> str:
    """Where the documents of ``path`` are: ``path/data`` for a committed stage output, ``path`` itself for a
    plain Parquet dataset. A stage output without ``_SUCCESS`` is refused: it was never committed."""
    if files.exists(posixpath.join(path, DATA)):
        if not committed(path):
            raise StageError(f"{path}: stage output is not committed (no {SUCCESS}); rerun the stage that writes it")
        return posixpath.join(path, DATA)
    if not files.exists(path):
        raise files.InputError(f"{path}: no such dataset")
    return path


def document_paths(paths: list[Any]) -> list[str]:
    """The dataset folders ``read_documents`` reads for these inputs (committed stage outputs' data folders)."""
    resolved = [dataset_path(str(getattr(p, "path", p))) for p in paths]
    if not resolved:
        raise StageError("no input datasets")
    return resolved


def read_documents(spark, paths: list[Any]):
    """A DataFrame of documents from committed stage outputs or Parquet datasets, with the document schema."""
    return datasets.read(spark, *document_paths(paths), schema=schema.document().spark)


def count_documents(paths: list[Any]) -> int:
    """The rows ``read_documents(paths)`` gives, from the Parquet footers: no Spark job (~0.7 s saved)."""
    return sum(count_rows(p) for p in document_paths(paths))
