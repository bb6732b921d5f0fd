"""The ``ingest-apis`` stage: API specs and crawled docs pages → one ``tool_doc`` document per operation.

Inputs (``inputs.apis``) are files or folders holding any mix of OpenAPI 3.x / Swagger 2.0 (JSON or YAML,
optionally gzipped), botocore service models, Google discovery documents, and HTML docs pages (``.html`` files or
WARC / WARC.gz, e.g. the ``crawl`` stage's output); ``inputs.python`` are Python sources (installed
distributions, wheels, sdists, the standard library) read by :mod:`corpus.apis.pysource`. The driver plans
tasks from file names and sizes (the same planner as ``ingest-web``; Python by distribution); each task parses
its files in one Arrow batch function (:func:`ingest_batch`).

Outputs: ``data/`` (documents: the markdown rendering, part ``tool_doc``), ``tools/`` (the ``tool_doc`` schema:
the same operations with typed fields and the OpenAI ``tool_schema``) and ``rejects/``. Records in = operations
found + spec files / pages rejected whole (malformed JSON/YAML, unknown format, not UTF-8, corrupt gzip, too
large, timeout): for every reject the file is named in ``location``.
"""

from __future__ import annotations

import json
import posixpath
import re
from collections import Counter
from typing import Iterable, Iterator

import pyarrow as pa

from corpus.apis import botocore_models, discovery, htmldocs, mcp, openapi, pysource
from corpus.apis.model import Operation
from corpus.apis.specs import SpecError, decode_text, decompress, detect, parse
from corpus.config import IngestApisSection
from corpus.ids import content_id, dumps
from corpus.spark.envelope import Emitter

STAGE = "ingest-apis"
SPEC_SUFFIXES = (".json", ".json.gz", ".yaml", ".yml", ".yaml.gz", ".yml.gz")
PAGE_SUFFIXES = (".html", ".htm", ".warc", ".warc.gz")
SUFFIXES = SPEC_SUFFIXES + PAGE_SUFFIXES
# Files that sit beside botocore service models but are not models: skipped (and counted), not rejected.
COMPANION = re.compile(
    r"(^|/)(paginators-\d|waiters-\d|endpoint-rule-set-\d|examples-\d|smoke-\d|"
    r"[^/]*\.sdk-extras\.json|_retry\.json|endpoints\.json|partitions\.json|"
    r"sdk-default-configuration\.json|functions\.json)[^/]*$"
)


def is_companion(path: str) -> bool:
    return COMPANION.search(path) is not None


# ------------------------------------------------------------------------------------- one spec file


def read_operations(path: str, data: bytes, cfg: IngestApisSection) -> tuple[str, list[Operation]]:
    """(format, operations) of one spec file's bytes; SpecError for bad input."""
    name = path.lower()
    data = decompress(data, name, int(cfg.max_spec_bytes))
    doc = parse(decode_text(data), name[:-3] if name.endswith(".gz") else name)
    fmt = detect(doc)
    if fmt == "botocore":
        version_dir = posixpath.dirname(path)
        client = posixpath.basename(posixpath.dirname(version_dir)) or None
        return fmt, botocore_models.operations(doc, _botocore_examples(version_dir), client=client)
    if fmt == "discovery":
        return fmt, discovery.operations(doc)
    if fmt == "mcp":
        return fmt, mcp.operations(doc, path)
    return fmt, openapi.operations(doc, fmt)


def _botocore_examples(version_dir: str) -> dict | None:
    """The ``examples-1.json[.gz]`` beside a service model, when it exists and parses (best effort: a broken
    examples file only loses the examples)."""
    from corpus.io import files

    for fname in ("examples-1.json", "examples-1.json.gz"):
        p = posixpath.join(version_dir, fname)
        if files.exists(p):
            try:
                with files.open_input(p) as fh:
                    raw = fh.read()
                return json.loads(decompress(raw, fname, 64 * 1024**2))
            except (OSError, ValueError, SpecError):
                return None
    return None


def _emit_operations(
    ops: list[Operation], *, spec_file: str, source: str, part: str, out: Emitter, counts: Counter, tools: list[dict]
) -> None:
    for op in ops:
        text = op.markdown()
        doc_id = content_id(text, op.url)
        rec = op.record()
        rec.update(id=doc_id, source=source, spec_file=op.spec_file or spec_file, url=op.url, notes=op.notes, text=text)
        tools.append(rec)
        counts["records_in"] += 1
        counts[f"operations:{op.spec_format}"] += 1
        if op.notes:
            counts["operations_with_notes"] += 1
        meta = {
            "spec_file": op.spec_file or spec_file,
            "spec_format": op.spec_format,
            "provider": op.provider,
            "api": op.api,
            "version": op.version,
            "operation_id": op.operation_id,
            "method": rec["method"],
            "path": op.path,
            "sdk_name": op.sdk_name,
            "licence": op.licence,
        }
        out.doc(
            id=doc_id,
            part=part,
            source=source,
            url=op.url,
            title=op.title(),
            text=text,
            metadata=dumps({k: v for k, v in meta.items() if v not in (None, "")}),
        )


# ------------------------------------------------------------------------------------- batch function

TOOLS_KIND = "tool"  # envelope side rows carrying one tool_doc record as JSON


def ingest_batch(batches: Iterable[pa.RecordBatch], cfg: IngestApisSection) -> Iterator[pa.RecordBatch]:
    """mapInArrow function: TASK_SCHEMA batches → envelope batches (documents, rejects, counters, and ``tool``
    side rows holding each operation's typed record as JSON, see :func:`tool_rows`), so one pass over the specs
    fills both ``data`` and ``tools``."""
    from corpus.io import files
    from corpus.web.html import ExtractionTimeout, time_limit

    for batch in batches:
        for task in batch.to_pylist():
            out = Emitter(STAGE)
            counts: Counter[str] = Counter()
            for piece in task["pieces"]:
                path, source, part = piece["path"], piece["source"], piece["part"]
                tools: list[dict] = []
                if piece.get("kind") == "python":
                    _python_unit(piece, cfg, out, counts, tools)
                elif path.lower().endswith(PAGE_SUFFIXES):
                    _pages(piece, cfg, out, counts, tools)
                elif is_companion(path):
                    counts["companion_files_skipped"] += 1
                    continue
                else:
                    counts["spec_files"] += 1
                    try:
                        if int(piece["size"]) > int(cfg.max_spec_bytes):
                            raise SpecError(
                                "too_large", f"{piece['size']} bytes > max_spec_bytes {int(cfg.max_spec_bytes)}"
                            )
                        with files.open_input(path) as fh:
                            data = fh.read()
                        with time_limit(cfg.time_limit_seconds):
                            fmt, ops = read_operations(path, data, cfg)
                        counts[f"specs:{fmt}"] += 1
                        if not ops:
                            counts["specs_without_operations"] += 1
                        _emit_operations(
                            ops,
                            spec_file=piece.get("name") or path,
                            source=source,
                            part=part,
                            out=out,
                            counts=counts,
                            tools=tools,
                        )
                    except SpecError as err:
                        counts["records_in"] += 1
                        out.reject(err.reason, err.detail, location=path, source=source, part=part)
                    except ExtractionTimeout:
                        counts["records_in"] += 1
                        out.reject(
                            "timeout",
                            f"parsing took over {cfg.time_limit_seconds}s",
                            location=path,
                            source=source,
                            part=part,
                        )
                    except OSError as err:
                        counts["records_in"] += 1
                        out.reject(
                            "unreadable_file", f"{type(err).__name__}: {err}", location=path, source=source, part=part
                        )
                    except (TypeError, AttributeError, KeyError, IndexError, ValueError, RecursionError) as err:
                        # structurally odd input the readers did not foresee: the file is rejected, named, and
                        # the job goes on
                        counts["records_in"] += 1
                        out.reject(
                            "unreadable_spec",
                            f"{type(err).__name__}: {err}"[:500],
                            location=path,
                            source=source,
                            part=part,
                        )
                for rec in tools:
                    out.side(TOOLS_KIND, json.dumps(rec, ensure_ascii=False))
                if len(out) >= 256:
                    yield out.batch()
            for key, n in counts.items():
                out.count(key, n)
            yield out.batch()


def _pages(piece: dict, cfg: IngestApisSection, out: Emitter, counts: Counter, tools: list[dict]) -> None:
    """HTML docs pages of one .html / WARC piece → operations. Pages that document nothing callable are
    counted (``ingest-web`` ingests them as documents); broken records are rejected, as in ``ingest-web``."""
    from corpus.web.html import decode, looks_binary
    from corpus.web.warc import HTML_SUFFIXES, read_html_file, read_warc_file

    if not cfg.html_pages:
        counts["pages_skipped_html_off"] += 1
        return
    path, size, source, part = piece["path"], int(piece["size"]), piece["source"], piece["part"]
    max_bytes = int(cfg.max_page_bytes)
    try:
        pages = (
            [read_html_file(path, size, max_bytes)]
            if path.lower().endswith(HTML_SUFFIXES)
            else read_warc_file(path, size, max_bytes, counts, piece["start"], piece["end"])
        )
        for page in pages:
            if page.reason:
                counts["records_in"] += 1
                out.reject(page.reason, page.detail, location=page.location, source=source, part=part, url=page.url)
                continue
            counts["html_pages"] += 1
            mime = (page.content_type or "text/html").lower()
            if "html" not in mime or page.payload is None or looks_binary(page.payload):
                counts["pages_not_html"] += 1
                continue
            ops, found = htmldocs.operations(decode(page.payload, page.charset).text, page.url, source)
            if not ops:
                counts["pages_without_operations"] += 1
                continue
            counts[f"pages_with_operations:{found}"] += 1
            location = page.location
            if piece.get("name") and location.startswith(path):  # "file.warc.gz@offset" under its shown name
                location = piece["name"] + location[len(path) :]
            _emit_operations(ops, spec_file=location, source=source, part=part, out=out, counts=counts, tools=tools)
    except OSError as err:
        counts["records_in"] += 1
        out.reject("unreadable_file", f"{type(err).__name__}: {err}", location=path, source=source, part=part)


def _python_unit(piece: dict, cfg: IngestApisSection, out: Emitter, counts: Counter, tools: list[dict]) -> None:
    """One Python distribution (or source module) → its public callables as operations."""
    from corpus.web.html import ExtractionTimeout, time_limit

    path, source, part = piece["path"], piece["source"], piece["part"]
    try:
        with time_limit(cfg.time_limit_seconds):
            ops = list(
                pysource.unit_operations(
                    path, counts, int(cfg.max_python_file_bytes), int(cfg.max_package_bytes), cfg.python_undocumented
                )
            )
    except SpecError as err:
        counts["records_in"] += 1
        out.reject(err.reason, err.detail, location=path, source=source, part=part)
        return
    except ExtractionTimeout:
        counts["records_in"] += 1
        out.reject("timeout", f"reading took over {cfg.time_limit_seconds}s", location=path, source=source, part=part)
        return
    except OSError as err:
        counts["records_in"] += 1
        out.reject("unreadable_file", f"{type(err).__name__}: {err}", location=path, source=source, part=part)
        return
    _emit_operations(ops, spec_file=path, source=source, part=part, out=out, counts=counts, tools=tools)


def tool_rows(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """mapInArrow over the envelope's ``tool`` side rows (``_detail``: JSON) → tool_doc schema batches."""
    from corpus.spark.envelope import side_rows

    return side_rows(batches, "tool_doc")


# ----------------------------------------------------------------------------------------- Spark plan


def _tasks(ctx):
    """Spec files and pages, and Python units (one per distribution: naming needs all its modules), cut into
    about 8 tasks per core by bytes: inputs differ a thousandfold in size (a 6 MB discovery document, 2 KB
    botocore models, a 30 MB distribution)."""
    from corpus.config import PythonInputSpec
    from corpus.spark.datasets import task_rows
    from corpus.web.ingest import TASK_SCHEMA, list_inputs, plan_tasks

    from corpus.text.paths import relative_name

    specs = [i for i in ctx.inputs if not isinstance(i, PythonInputSpec)]
    files, names = [], {}
    for spec in specs:  # listed once per input: each file's shown name is relative to its input
        listed = list_inputs([spec], SUFFIXES)
        files += listed
        names.update((entry[0], relative_name(entry[0], spec.path)) for entry in listed)
    units = [
        (path, size, spec.source_name, spec.part)
        for spec in ctx.inputs
        if isinstance(spec, PythonInputSpec)
        for path, size in pysource.list_units(spec.path)
    ]
    unit_paths = {u[0] for u in units}
    cores = ctx.spark.sparkContext.defaultParallelism
    input_bytes = sum(f[1] for f in files + units)
    split = max(64 * 1024, input_bytes // max(1, 8 * cores))
    tasks = plan_tasks(files + units, split)
    for task in tasks:
        for piece in task["pieces"]:
            piece["kind"] = "python" if piece["path"] in unit_paths else None
            piece["name"] = names.get(piece["path"])
    task_df = task_rows(ctx.spark, pa.Table.from_pylist(tasks, TASK_SCHEMA), len(tasks))
    return task_df, {
        "input_files": len(files),
        "python_units": len(units),
        "input_bytes": input_bytes,
        "tasks": len(tasks),
        "split_bytes": split,
    }


def build(ctx):
    from corpus.stage import write_envelope

    cfg: IngestApisSection = ctx.config.ingest_apis
    task_df, extra = _tasks(ctx)
    return write_envelope(
        ctx, task_df, lambda it: ingest_batch(it, cfg), extra=extra, sides={TOOLS_KIND: ("tools", "tool_doc")}
    )
