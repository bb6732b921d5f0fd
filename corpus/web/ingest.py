"""The ``ingest-web`` stage: WARC / WARC.gz files, WET files (Common Crawl's extracted text) and folders of .html
files → documents. Any other file in an input folder is a reject (``unsupported_file``), never skipped silently.

The driver cuts the input into tasks from file names and sizes alone: each ``.warc.gz`` into byte-range splits
(corpus.web.warc.read_warc_file explains how a split finds its records), other files whole, small pieces grouped.
Each task reads its pieces and extracts every page in one batch function (:func:`ingest_batch`, testable without
Spark): decoding, content checks, trafilatura under a time limit. No raw HTML is shuffled, and one large WARC
still spreads over every core. Tasks are small (about 16 per core by default) because pages differ a hundredfold
in extraction cost: small tasks keep every core busy to the end.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Iterable, Iterator

import pyarrow as pa

from corpus.config import IngestWebSection
from corpus.ids import content_id, dumps
from corpus.spark.envelope import Emitter
from corpus.web.html import ExtractionTimeout, decode, looks_binary, make_extractor, time_limit
from corpus.web.warc import HTML_SUFFIXES, WARC_SUFFIXES, RawPage, read_html_file, read_warc_file

log = logging.getLogger(__name__)

STAGE = "ingest-web"
SUFFIXES = WARC_SUFFIXES + HTML_SUFFIXES
MIN_SPLIT, MAX_SPLIT = 256 * 1024, 64 * 1024 * 1024

TASK_SCHEMA = pa.schema(
    [
        pa.field("task", pa.int64()),
        pa.field(
            "pieces",
            pa.list_(
                pa.struct(
                    [
                        ("path", pa.string()),
                        ("size", pa.int64()),
                        ("source", pa.string()),
                        ("part", pa.string()),
                        ("start", pa.int64()),
                        ("end", pa.int64()),
                        ("kind", pa.string()),
                        ("name", pa.string()),
                    ]
                )
            ),
        ),
    ]
)  # kind: null, or "python" (ingest-apis); name: how the file is named in the output (null: its path)


def split_size(total_bytes: int, cores: int, configured: int | None = None) -> int:
    """Input bytes per task: the configured value, or about 16 tasks per core within [256 KiB, 64 MiB]."""
    if configured:
        return configured
    return max(MIN_SPLIT, min(MAX_SPLIT, total_bytes // max(1, 16 * cores)))


def plan_tasks(files: list[tuple[str, int, str, str]], split_bytes: int) -> list[dict]:
    """Cut (path, size, source, part) files into tasks of about ``split_bytes``: a ``.warc.gz`` into byte
    ranges, other files whole, consecutive small pieces grouped. Deterministic."""
    pieces = []
    for path, size, source, part in sorted(files):
        base = {"path": path, "size": size, "source": source, "part": part}
        if path.lower().endswith((".warc.gz", ".wet.gz")) and size > split_bytes:
            pieces += [{**base, "start": s, "end": min(s + split_bytes, size)} for s in range(0, size, split_bytes)]
        else:
            pieces.append({**base, "start": 0, "end": size})
    tasks: list[list[dict]] = []
    load = split_bytes
    for piece in pieces:
        if load >= split_bytes:
            tasks.append([])
            load = 0
        tasks[-1].append(piece)
        load += max(piece["end"] - piece["start"], 1)
    return [{"task": i, "pieces": t} for i, t in enumerate(tasks)]


def _raw_row(page: RawPage, source: str, part: str) -> dict:
    return {
        "location": page.location,
        "source": source,
        "part": part,
        "url": page.url,
        "payload": page.payload,
        "content_type": page.content_type,
        "charset": page.charset,
        "http_status": page.http_status,
        "fetch_date": page.fetch_date,
        "record_id": page.record_id,
        "truncated": page.truncated,
        "reason": page.reason,
        "detail": page.detail,
        "extracted": page.extracted,
    }


def read_pieces(pieces: Iterable[dict], cfg: IngestWebSection, counts: Counter) -> Iterator[dict]:
    """Raw-page rows for the pieces of one task; ``counts`` gets files, records by WARC type and ``records_in``
    (one per row: every row becomes exactly one document or reject)."""
    max_bytes = int(cfg.max_page_bytes)
    for f in pieces:
        path, size, source, part = f["path"], int(f["size"]), f["source"], f["part"]
        if f["start"] == 0:
            counts["files"] += 1
        name = path.lower()
        try:
            if name.endswith(HTML_SUFFIXES):
                pages: Iterable[RawPage] = [read_html_file(path, size, max_bytes)]
            elif name.endswith(WARC_SUFFIXES):
                pages = read_warc_file(path, size, max_bytes, counts, f["start"], f["end"], cfg.warc_reader)
            else:
                pages = [RawPage(location=path, reason="unsupported_file", detail=f"not one of {', '.join(SUFFIXES)}")]
            for page in pages:
                counts["records_in"] += 1
                yield _raw_row(page, source, part)
        except OSError as err:  # unreadable file (permissions, vanished): one reject naming it
            counts["records_in"] += 1
            yield _raw_row(
                RawPage(location=path, reason="unreadable_file", detail=f"{type(err).__name__}: {err}"), source, part
            )


class PageExtractor:
    """Raw page → document or reject, with one extractor (trafilatura or Resiliparse) per batch function."""

    def __init__(self, cfg: IngestWebSection) -> None:
        self.cfg = cfg
        self.extract = make_extractor(cfg.extract)
        self.content_types = {c.lower() for c in cfg.content_types}

    def __call__(self, row: dict, out: Emitter) -> None:
        cfg = self.cfg
        common = {"source": row["source"], "url": row["url"], "part": row["part"]}
        location = row["location"]
        if row.get("reason"):
            out.reject(row["reason"], row.get("detail"), location=location, **common)
            return
        if row.get("extracted"):
            self.extracted_text(row, out, common)
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
            out.reject(
                "bad_encoding",
                f"{dec.replacements} undecodable characters of {len(dec.text)}",
                location=location,
                **common,
            )
            return
        fetched = row.get("fetch_date")
        try:
            with time_limit(cfg.time_limit_seconds) as enforced:
                result = self.extract(dec.text, row["url"], max_date=fetched[:10] if fetched else None)
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
            "location": location,
            "warc_record_id": row.get("record_id"),
            "fetch_date": fetched,
            "http_status": status,
            "content_type": ctype,
            "encoding": dec.encoding,
            "encoding_from": dec.how,
            "encoding_replacements": dec.replacements or None,
            "warc_truncated": row.get("truncated"),
        }
        out.doc(
            id=content_id(result.text, row["url"]),
            text=result.text,
            title=result.title,
            date=result.date,
            metadata=dumps({k: v for k, v in meta.items() if v is not None}),
            **common,
        )

    def extracted_text(self, row: dict, out: Emitter, common: dict) -> None:
        """A WET conversion record: its payload is the page's text (UTF-8, as Common Crawl writes it), taken
        as it is, with no HTML to extract."""
        cfg, location = self.cfg, row["location"]
        payload: bytes = row["payload"] or b""
        if looks_binary(payload):
            out.reject("not_text", "binary payload in a conversion record", location=location, **common)
            return
        text = payload.decode("utf-8", "replace")
        bad = text.count("\ufffd")
        if bad > cfg.max_replacement_ratio * max(len(text), 1):
            out.reject("bad_encoding", f"{bad} undecodable characters of {len(text)}", location=location, **common)
            return
        text = text.strip()
        if len(text) < cfg.min_text_chars:
            out.reject("no_text", "empty conversion record", location=location, **common)
            return
        out.count("wet_records")
        meta = {
            "location": location,
            "warc_record_id": row.get("record_id"),
            "fetch_date": row.get("fetch_date"),
            "content_type": row.get("content_type"),
            "extracted_by": "wet",
            "encoding_replacements": bad or None,
            "warc_truncated": row.get("truncated"),
        }
        date = (row.get("fetch_date") or "")[:10] or None
        out.doc(
            id=content_id(text, row["url"]),
            text=text,
            title=None,
            date=date,
            metadata=dumps({k: v for k, v in meta.items() if v is not None}),
            **common,
        )


def ingest_batch(
    batches: Iterable[pa.RecordBatch], cfg: IngestWebSection, rows_per_batch: int = 64
) -> Iterator[pa.RecordBatch]:
    """mapInArrow function: TASK_SCHEMA batches → envelope batches (documents, rejects, counters)."""
    extractor = PageExtractor(cfg)
    for batch in batches:
        for task in batch.to_pylist():
            out = Emitter(STAGE)
            counts: Counter[str] = Counter()
            for row in read_pieces(task["pieces"], cfg, counts):
                extractor(row, out)
                if len(out) >= rows_per_batch:
                    yield out.batch()
            for key, n in counts.items():
                out.count(key, n)
            yield out.batch()


# ----------------------------------------------------------------------------------------------- Spark plan


def list_inputs(
    inputs, suffixes: tuple[str, ...] = SUFFIXES, report_others: bool = False
) -> list[tuple[str, int, str, str]]:
    """(path, size, source, part) of every input file with one of ``suffixes``, from InputSpecs. With
    ``report_others``, a folder's other files are listed too (the reader rejects each as ``unsupported_file``, so
    nothing in an input folder is skipped without a word; hidden files and Spark/Hadoop markers excepted)."""
    from corpus.io.files import list_files

    from corpus.io.files import exists

    out = []
    for spec in inputs:
        if getattr(spec, "optional", False) and not exists(spec.path):
            log.warning("optional input %s (%s) does not exist: skipped", spec.path, spec.source_name)
            continue
        for entry in list_files(spec.path, None if report_others else suffixes):
            out.append((entry.path, entry.size, spec.source_name, spec.part))
    return out


def file_tasks(ctx, suffixes: tuple[str, ...], split_for=None, tasks_per_core: int = 8, report_others: bool = False):
    """The stage's input files cut into tasks (see :func:`plan_tasks`), as a DataFrame of TASK_SCHEMA rows:
    (task DataFrame, numbers for the stats). ``split_for(input_bytes)`` gives the bytes per task; default about
    ``tasks_per_core`` tasks per core, at least 64 KiB."""
    from corpus.spark.datasets import task_rows

    spark = ctx.spark
    cores = spark.sparkContext.defaultParallelism
    files = list_inputs(ctx.inputs, suffixes, report_others)
    input_bytes = sum(f[1] for f in files)
    split = split_for(input_bytes) if split_for else max(64 * 1024, input_bytes // max(1, tasks_per_core * cores))
    tasks = plan_tasks(files, split)
    task_df = task_rows(spark, pa.Table.from_pylist(tasks, TASK_SCHEMA), len(tasks))
    return task_df, {"input_files": len(files), "input_bytes": input_bytes, "tasks": len(tasks), "split_bytes": split}


def build(ctx):
    """Stage builder for the runner: one Spark job whose tasks extract their pages and write their documents
    and rejects (see corpus.stage.write_envelope)."""
    from corpus.stage import write_envelope

    cfg: IngestWebSection = ctx.config.ingest_web
    cores = ctx.spark.sparkContext.defaultParallelism
    task_df, extra = file_tasks(
        ctx,
        SUFFIXES,
        lambda total: split_size(total, cores, int(cfg.split_bytes) if cfg.split_bytes else None),
        report_others=True,
    )
    return write_envelope(ctx, task_df, lambda it: ingest_batch(it, cfg), extra=extra)
