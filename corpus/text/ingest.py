"""The ``ingest-text`` stage: JSONL or Parquet files with a ``text`` column → documents.

This is how users bring corpora that are already extracted (WET-derived sets, exported datasets), and how later
stages are tested on their own. A user-supplied ``id`` is kept as ``source_id``; ``url``, ``title`` and ``date``
are kept when present.

Files are cut into *splits* that tasks read with pyarrow.fs: uncompressed JSONL by byte range (a line belongs
to the split holding its first byte, as in Hadoop's line reader), compressed JSONL whole, Parquet by row group.
Reading the lines ourselves, rather than with Spark's JSON reader, gives a reject per bad line with its byte
offset, and catches invalid UTF-8, which Spark's reader silently turns into U+FFFD.
"""

from __future__ import annotations

import gzip
import json
from typing import Iterable, Iterator

import pyarrow as pa

from corpus.config import IngestTextSection
from corpus.ids import content_id, dumps
from corpus.io.files import InputError, list_files, open_input
from corpus.spark.envelope import Emitter

STAGE = "ingest-text"
JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json", ".jsonl.gz", ".ndjson.gz", ".json.gz")
PARQUET_SUFFIXES = (".parquet",)
SUFFIXES = JSONL_SUFFIXES + PARQUET_SUFFIXES

SPLIT_SCHEMA = pa.schema([
    pa.field("path", pa.string()), pa.field("kind", pa.string()), pa.field("start", pa.int64()),
    pa.field("end", pa.int64()), pa.field("source", pa.string()), pa.field("part", pa.string()),
])


def plan_splits(inputs, cfg: IngestTextSection) -> list[dict]:
    """The splits of every input file. Raises InputError, naming the file, for a Parquet file without the text
    column (a wrong file, not a bad record) or an input with no readable files."""
    import pyarrow.parquet as pq

    splits = []
    for spec in inputs:
        entries = list_files(spec.path, SUFFIXES)
        if not entries:
            raise InputError(f"{spec.path}: no JSONL or Parquet files ({', '.join(SUFFIXES)})")
        for e in entries:
            base = {"path": e.path, "source": spec.source_name, "part": spec.part}
            name = e.path.lower()
            if name.endswith(PARQUET_SUFFIXES):
                try:
                    with open_input(e.path) as f:
                        meta = pq.ParquetFile(f).metadata
                except Exception:  # not a Parquet file: one `corrupt_file` reject for it, from the task
                    splits.append({**base, "kind": "bad", "start": 0, "end": 0})
                    continue
                names = meta.schema.to_arrow_schema().names
                if cfg.text_field not in names:
                    raise InputError(f"{e.path}: Parquet file has no {cfg.text_field!r} column (columns: {names})")
                splits += [{**base, "kind": "parquet", "start": rg, "end": rg + 1} for rg in range(meta.num_row_groups)]
            elif name.endswith(".gz"):
                splits.append({**base, "kind": "jsonl.gz", "start": 0, "end": e.size})
            elif name.endswith(JSONL_SUFFIXES):
                step = max(1, int(cfg.split_bytes))
                starts = range(0, max(e.size, 1), step)
                splits += [{**base, "kind": "jsonl", "start": s, "end": min(s + step, e.size)} for s in starts]
            else:
                splits.append({**base, "kind": "unsupported", "start": 0, "end": 0})
    return splits


def _iter_lines(f, pos: int, block: int = 1 << 20) -> Iterator[tuple[int, bytes]]:
    """(offset, line including its newline) from byte ``pos`` on, reading in blocks (pyarrow's files have no
    readline)."""
    f.seek(pos)
    pending = b""
    while True:
        chunk = f.read(block)
        if not chunk:
            if pending:
                yield pos, pending
            return
        pending += chunk
        lines = pending.split(b"\n")
        pending = lines.pop()
        for line in lines:
            yield pos, line + b"\n"
            pos += len(line) + 1


def _lines_in_range(f, start: int, end: int) -> Iterator[tuple[int, bytes]]:
    """(offset, line) for lines whose first byte lies in [start, end): a split that starts inside a line leaves
    that line to the split before it."""
    lines = _iter_lines(f, max(start - 1, 0), block=min(1 << 20, max(1 << 16, end - start + 1)))
    if start > 0:
        next(lines, None)  # the line holding byte start-1 belongs to the previous split
    for pos, line in lines:
        if pos >= end:
            return
        yield pos, line


class RecordReader:
    def __init__(self, cfg: IngestTextSection) -> None:
        self.cfg = cfg

    def record(self, obj, location: str, split: dict, out: Emitter) -> None:
        cfg = self.cfg
        common = {"source": split["source"], "part": split["part"]}
        if not isinstance(obj, dict):
            out.reject("malformed_json", f"a {type(obj).__name__}, not an object", location=location, **common)
            return
        url = obj.get(cfg.url_field)
        url = str(url) if url not in (None, "") else None
        text = obj.get(cfg.text_field)
        if cfg.text_field not in obj or text is None:
            out.reject("missing_text", f"no {cfg.text_field!r} field", location=location, url=url, **common)
            return
        if not isinstance(text, str):
            out.reject("bad_text_type", f"{cfg.text_field!r} is a {type(text).__name__}", location=location,
                       url=url, **common)
            return
        if not text.strip():
            out.reject("empty_text", "text is empty or whitespace", location=location, url=url, **common)
            return
        size = len(text.encode("utf-8", "surrogatepass"))
        if size > int(cfg.max_text_bytes):
            out.reject("too_large", f"{size} bytes > max_text_bytes {int(cfg.max_text_bytes)}",
                       location=location, url=url, **common)
            return
        if "\ud800" <= max(text) and any("\ud800" <= ch <= "\udfff" for ch in text):
            out.reject("invalid_utf8", "text contains unpaired surrogates", location=location, url=url, **common)
            return
        source_id = obj.get(cfg.id_field)
        title, date = obj.get("title"), obj.get("date")
        out.doc(id=content_id(text, url), text=text, url=url,
                source_id=None if source_id is None else str(source_id),
                title=title if isinstance(title, str) and title else None,
                date=date if isinstance(date, str) and date else None,
                metadata=dumps({"location": location}), **common)

    def jsonl(self, split: dict, out: Emitter) -> Iterator[None]:
        path = split["path"]
        with open_input(path) as raw:
            if split["kind"] == "jsonl.gz":
                stream = gzip.GzipFile(fileobj=raw)
                lines: Iterable[tuple[int, bytes]] = _numbered(stream)
                where = "line"
            else:
                lines = _lines_in_range(raw, split["start"], split["end"])
                where = "byte"
            try:
                for pos, line in lines:
                    location = f"{path}@{pos}" if where == "byte" else f"{path}:{pos}"
                    body = line.strip()
                    if not body:
                        out.count("blank_lines")
                        continue
                    out.count("records_in")
                    try:
                        s = body.decode("utf-8")
                    except UnicodeDecodeError as err:
                        out.reject("invalid_utf8", str(err)[:200], location=location, source=split["source"],
                                   part=split["part"])
                        yield
                        continue
                    try:
                        obj = json.loads(s)
                    except ValueError as err:
                        out.reject("malformed_json", str(err)[:200], location=location, source=split["source"],
                                   part=split["part"])
                        yield
                        continue
                    self.record(obj, location, split, out)
                    yield
            except (OSError, EOFError, gzip.BadGzipFile) as err:
                out.count("records_in")
                out.reject("corrupt_file", f"{type(err).__name__}: {err}", location=path, source=split["source"],
                           part=split["part"])

    def parquet(self, split: dict, out: Emitter) -> Iterator[None]:
        import pyarrow.parquet as pq

        cfg = self.cfg
        path, rg = split["path"], split["start"]
        with open_input(path) as f:
            pf = pq.ParquetFile(f)
            cols = [c for c in (cfg.text_field, cfg.id_field, cfg.url_field, "title", "date")
                    if c in pf.schema_arrow.names]
            table = pf.read_row_group(rg, columns=sorted(set(cols), key=cols.index))
        for i, row in enumerate(table.to_pylist()):
            out.count("records_in")
            self.record(row, f"{path}#rg{rg}:{i}", split, out)
            yield


def _numbered(stream) -> Iterator[tuple[int, bytes]]:
    for n, line in enumerate(stream, start=1):
        yield n, line


def read_batch(batches: Iterable[pa.RecordBatch], cfg: IngestTextSection, rows_per_batch: int = 256
               ) -> Iterator[pa.RecordBatch]:
    """mapInArrow function: SPLIT_SCHEMA batches → envelope batches."""
    reader = RecordReader(cfg)
    for batch in batches:
        for split in batch.to_pylist():
            out = Emitter(STAGE)
            if split["kind"] in ("bad", "unsupported"):
                out.count("records_in")
                reason = "corrupt_file" if split["kind"] == "bad" else "unsupported_file"
                out.reject(reason, "not a readable Parquet file" if split["kind"] == "bad" else
                           f"not one of {', '.join(SUFFIXES)}", location=split["path"], source=split["source"],
                           part=split["part"])
                yield out.batch()
                continue
            rows = reader.parquet(split, out) if split["kind"] == "parquet" else reader.jsonl(split, out)
            for _ in rows:
                if len(out) >= rows_per_batch:
                    yield out.batch()
            yield out.batch()


def build(ctx):
    from corpus.spark.datasets import task_rows
    from corpus.stage import write_envelope

    cfg: IngestTextSection = ctx.config.ingest_text
    spark = ctx.spark
    splits = plan_splits(ctx.inputs, cfg)
    n = max(1, min(len(splits), 4 * spark.sparkContext.defaultParallelism))
    df = task_rows(spark, pa.Table.from_pylist(splits, SPLIT_SCHEMA), n)
    return write_envelope(ctx, df, lambda it: read_batch(it, cfg), extra={"splits": len(splits)})
