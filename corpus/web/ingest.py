"""The ``ingest-web`` stage: WARC / WARC.gz files and folders of .html files → documents.

Two batch functions, each testable without Spark:

1. :func:`read_batch` — rows of (files of one task) → raw pages (bytes + HTTP facts) and early rejects.
   I/O bound; one task reads whole files.
2. :func:`extract_batch` — raw pages → envelope rows (documents, rejects, counters): decoding, content checks,
   trafilatura under a time limit.

Under Spark, raw pages are hash-repartitioned between the two, so extraction (the expensive part, 10-100 ms a
page) is spread over all cores even when the input is one large WARC file; shuffling a page costs far less
than extracting it.
"""

from __future__ import annotations

from collections import Counter
from typing import Iterable, Iterator

import pyarrow as pa

from corpus.config import IngestWebSection
from corpus.ids import content_id, dumps
from corpus.spark.envelope import Emitter
from corpus.web.html import ExtractionTimeout, Extractor, decode, looks_binary, time_limit
from corpus.web.warc import HTML_SUFFIXES, WARC_SUFFIXES, RawPage, read_html_file, read_warc_file

STAGE = "ingest-web"
SUFFIXES = WARC_SUFFIXES + HTML_SUFFIXES

TASK_SCHEMA = pa.schema([
    pa.field("task", pa.int64()),
    pa.field("files", pa.list_(pa.struct([("path", pa.string()), ("size", pa.int64()), ("source", pa.string()),
                                           ("part", pa.string())]))),
])

RAW_SCHEMA = pa.schema([
    pa.field("location", pa.string()),
    pa.field("source", pa.string()),
    pa.field("part", pa.string()),
    pa.field("url", pa.string()),
    pa.field("payload", pa.binary()),
    pa.field("content_type", pa.string()),
    pa.field("charset", pa.string()),
    pa.field("http_status", pa.int32()),
    pa.field("fetch_date", pa.string()),
    pa.field("record_id", pa.string()),
    pa.field("truncated", pa.string()),
    pa.field("reason", pa.string()),
    pa.field("detail", pa.string()),
    pa.field("counters", pa.map_(pa.string(), pa.int64())),
])


def plan_tasks(files: list[tuple[str, int, str, str]], n_tasks: int) -> list[dict]:
    """Spread (path, size, source, part) files over at most ``n_tasks`` tasks, largest first onto the least-loaded
    task (deterministic: ties go to the lowest task number)."""
    n = max(1, min(n_tasks, len(files)))
    bins: list[list[dict]] = [[] for _ in range(n)]
    loads = [0] * n
    for path, size, source, part in sorted(files, key=lambda f: (-f[1], f[0])):
        i = min(range(n), key=lambda k: (loads[k], k))
        bins[i].append({"path": path, "size": size, "source": source, "part": part})
        loads[i] += max(size, 1)
    return [{"task": i, "files": b} for i, b in enumerate(bins) if b]


def _raw_row(page: RawPage, source: str, part: str) -> dict:
    return {
        "location": page.location, "source": source, "part": part, "url": page.url, "payload": page.payload,
        "content_type": page.content_type, "charset": page.charset, "http_status": page.http_status,
        "fetch_date": page.fetch_date, "record_id": page.record_id, "truncated": page.truncated,
        "reason": page.reason, "detail": page.detail,
    }


def read_files(files: Iterable[dict], cfg: IngestWebSection) -> Iterator[dict]:
    """Raw-page rows for ``files`` (dicts with path, size, source, part), then one counters row."""
    counts: Counter[str] = Counter()
    max_bytes = int(cfg.max_page_bytes)
    for f in files:
        path, size, source, part = f["path"], int(f["size"]), f["source"], f["part"]
        counts["files"] += 1
        name = path.lower()
        try:
            if name.endswith(HTML_SUFFIXES):
                pages: Iterable[RawPage] = [read_html_file(path, size, max_bytes)]
            elif name.endswith(WARC_SUFFIXES):
                pages = read_warc_file(path, size, max_bytes, counts)
            else:
                pages = [RawPage(location=path, reason="unsupported_file",
                                 detail=f"not one of {', '.join(SUFFIXES)}")]
            for page in pages:
                counts["records_in"] += 1
                yield _raw_row(page, source, part)
        except OSError as err:  # unreadable file (permissions, vanished): one reject naming it
            counts["records_in"] += 1
            yield _raw_row(RawPage(location=path, reason="unreadable_file", detail=f"{type(err).__name__}: {err}"),
                           source, part)
    yield {"counters": sorted(counts.items())}


def read_batch(batches: Iterable[pa.RecordBatch], cfg: IngestWebSection, rows_per_batch: int = 64
               ) -> Iterator[pa.RecordBatch]:
    """mapInArrow function: TASK_SCHEMA batches → RAW_SCHEMA batches."""
    for batch in batches:
        for task in batch.to_pylist():
            rows: list[dict] = []
            for row in read_files(task["files"], cfg):
                rows.append(row)
                if len(rows) >= rows_per_batch:
                    yield pa.RecordBatch.from_pylist(rows, schema=RAW_SCHEMA)
                    rows = []
            if rows:
                yield pa.RecordBatch.from_pylist(rows, schema=RAW_SCHEMA)


class PageExtractor:
    """Raw page → document or reject, with one trafilatura setup per batch function."""

    def __init__(self, cfg: IngestWebSection) -> None:
        self.cfg = cfg
        self.extract = Extractor(cfg.extract)
        self.content_types = {c.lower() for c in cfg.content_types}

    def __call__(self, row: dict, out: Emitter) -> None:
        cfg = self.cfg
        common = {"source": row["source"], "url": row["url"], "part": row["part"]}
        location = row["location"]
        if row.get("reason"):
            out.reject(row["reason"], row.get("detail"), location=location, **common)
            return
        status = row.get("http_status")
        if status is not None and not 200 <= status < 300:
            out.reject("http_status", f"HTTP {status}", location=location, **common)
            return
        ctype = row.get("content_type")
        if ctype and ctype not in self.content_types:
            out.reject("not_html", f"Content-Type {ctype}", location=location, **common)
            return
        payload: bytes = row["payload"] or b""
        if looks_binary(payload):
            out.reject("not_html", "binary payload", location=location, **common)
            return
        dec = decode(payload, row.get("charset"))
        out.count(f"encoding.{dec.how}")
        if dec.replacements and dec.replacements > cfg.max_replacement_ratio * max(len(dec.text), 1):
            out.reject("bad_encoding", f"{dec.replacements} undecodable characters of {len(dec.text)}",
                       location=location, **common)
            return
        try:
            with time_limit(cfg.time_limit_seconds) as enforced:
                result = self.extract(dec.text, row["url"])
            if not enforced:
                out.count("time_limit_not_enforced")
        except ExtractionTimeout:
            out.reject("timeout", f"extraction over {cfg.time_limit_seconds}s", location=location, **common)
            return
        except Exception as err:  # a trafilatura/lxml bug on one page must not fail the task
            out.reject("extract_error", f"{type(err).__name__}: {str(err)[:300]}", location=location, **common)
            return
        if result is None or len(result.text.strip()) < cfg.min_text_chars:
            out.reject("no_text", "trafilatura found no main text", location=location, **common)
            return
        meta = {
            "location": location, "warc_record_id": row.get("record_id"), "fetch_date": row.get("fetch_date"),
            "http_status": status, "content_type": ctype, "encoding": dec.encoding, "encoding_from": dec.how,
            "encoding_replacements": dec.replacements or None, "warc_truncated": row.get("truncated"),
        }
        out.doc(id=content_id(result.text, row["url"]), text=result.text, title=result.title, date=result.date,
                metadata=dumps({k: v for k, v in meta.items() if v is not None}), **common)


def extract_batch(batches: Iterable[pa.RecordBatch], cfg: IngestWebSection) -> Iterator[pa.RecordBatch]:
    """mapInArrow function: RAW_SCHEMA batches → envelope batches."""
    extractor = PageExtractor(cfg)
    for batch in batches:
        out = Emitter(STAGE)
        for row in batch.to_pylist():
            if row.get("counters") is not None:
                for k, v in row["counters"]:
                    out.count(k, v)
                continue
            extractor(row, out)
        yield out.batch()


# ----------------------------------------------------------------------------------------------- Spark plan


def list_inputs(inputs) -> list[tuple[str, int, str, str]]:
    """(path, size, source, part) of every input file, from InputSpecs."""
    from corpus.io.files import list_files

    out = []
    for spec in inputs:
        for entry in list_files(spec.path, SUFFIXES):
            out.append((entry.path, entry.size, spec.source_name, spec.part))
    return out


def build(ctx):
    """Stage builder for the runner: returns the envelope plan."""
    from pyspark.sql.pandas.types import from_arrow_schema

    from corpus.spark.envelope import envelope_schema
    from corpus.stage import envelope_plan

    cfg: IngestWebSection = ctx.config.ingest_web
    spark = ctx.spark
    cores = spark.sparkContext.defaultParallelism
    files = list_inputs(ctx.inputs)
    tasks = plan_tasks(files, 4 * cores)
    task_df = spark.createDataFrame(
        spark.sparkContext.parallelize(tasks, max(1, len(tasks))), from_arrow_schema(TASK_SCHEMA))
    raw = task_df.mapInArrow(lambda it: read_batch(it, cfg), from_arrow_schema(RAW_SCHEMA))
    parts = cfg.partitions or 4 * cores
    raw = raw.repartition(parts, "location")
    env = raw.mapInArrow(lambda it: extract_batch(it, cfg), from_arrow_schema(envelope_schema()))
    return envelope_plan(env, extra={"input_files": len(files), "input_bytes": sum(f[1] for f in files)})
