"""The ``ingest-text`` stage: JSONL or Parquet files with a ``text`` column → documents.

This is how users bring corpora that are already extracted (WET-derived sets, exported datasets), and how later
stages are tested on their own. A user-supplied ``id`` is kept as ``source_id``; ``url``, ``title`` and ``date``
are kept when present.

Files are cut into *splits* that tasks read with pyarrow.fs: uncompressed JSONL by byte range (a line belongs
to the split holding its first byte, as in Hadoop's line reader), compressed JSONL whole, Parquet by row group.
Reading the lines ourselves, rather than with Spark's JSON reader, gives a reject per bad line with its byte
offset, and catches invalid UTF-8, which Spark's reader silently turns into U+FFFD.

Memory is bounded whatever the input: lines are cut from 1 MiB blocks (after decompression), and a line longer
than :func:`max_line_bytes` is read through and rejected (``too_large``) without being held whole; JSON nested past
the parser's recursion limit is ``too_deep``; a Parquet row group whose pages are damaged is ``corrupt_file``.
"""

from __future__ import annotations

import gzip
import zlib
from typing import Iterable, Iterator

import pyarrow as pa

from corpus.config import IngestTextSection
from corpus.ids import content_id, dumps
from corpus.io import jsonl
from corpus.io.files import InputError, list_files, open_input
from corpus.spark.envelope import Emitter

STAGE = "ingest-text"
JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json", ".jsonl.gz", ".ndjson.gz", ".json.gz")
PARQUET_SUFFIXES = (".parquet",)
SUFFIXES = JSONL_SUFFIXES + PARQUET_SUFFIXES

SPLIT_SCHEMA = pa.schema(
    [
        pa.field("path", pa.string()),
        pa.field("kind", pa.string()),
        pa.field("start", pa.int64()),
        pa.field("end", pa.int64()),
        pa.field("source", pa.string()),
        pa.field("part", pa.string()),
    ]
)


def plan_splits(inputs, cfg: IngestTextSection) -> list[dict]:
    """The splits of every input file. Raises InputError, naming the file, for a Parquet file without the text
    column (a wrong file, not a bad record) or an input with no readable files."""
    import pyarrow.parquet as pq

    splits = []
    for spec in inputs:
        entries = list_files(spec.path)  # every file: one that is not JSONL or Parquet is a reject, not skipped
        if not any(e.path.lower().endswith(SUFFIXES) for e in entries):
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


def max_line_bytes(cfg: IngestTextSection) -> int:
    """The longest JSON line read: a text of ``max_text_bytes`` written with JSON escapes (``\\uXXXX`` is 6 bytes
    for 1), plus room for the other fields. Longer lines are rejected (``too_large``) without being held whole."""
    return 6 * int(cfg.max_text_bytes) + (1 << 20)


def _lines_in_range(f, start: int, end: int, max_line: int) -> Iterator[tuple[int, bytes | None, int]]:
    """(offset, line or None if over ``max_line``, length) for lines whose first byte lies in [start, end): a
    split that starts inside a line leaves that line to the split before it."""
    pos = max(start - 1, 0)
    f.seek(pos)
    found = jsonl.lines(f.read, max_line, pos, block=min(1 << 20, max(1 << 16, end - start + 1)))
    if start > 0:
        next(found, None)  # the line holding byte start-1 belongs to the previous split
    for pos, line, length in found:
        if pos >= end:
            return
        yield pos, line, length


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
            out.reject(
                "bad_text_type", f"{cfg.text_field!r} is a {type(text).__name__}", location=location, url=url, **common
            )
            return
        if not text.strip():
            out.reject("empty_text", "text is empty or whitespace", location=location, url=url, **common)
            return
        size = len(text.encode("utf-8", "surrogatepass"))
        if size > int(cfg.max_text_bytes):
            out.reject(
                "too_large",
                f"{size} bytes > max_text_bytes {int(cfg.max_text_bytes)}",
                location=location,
                url=url,
                **common,
            )
            return
        if "\ud800" <= max(text) and any("\ud800" <= ch <= "\udfff" for ch in text):
            out.reject("invalid_utf8", "text contains unpaired surrogates", location=location, url=url, **common)
            return
        if cfg.normalise_spaces and ("\xa0" in text or "\u202f" in text):
            text = text.replace("\xa0", " ").replace("\u202f", " ")
        source_id = obj.get(cfg.id_field)
        title, date = obj.get("title"), obj.get("date")
        meta = {"location": location}
        if cfg.source_field:
            own = obj.get(cfg.source_field)
            if isinstance(own, str) and own.strip():
                common = {**common, "source": own.strip()}
        if cfg.label_field:
            label = obj.get(cfg.label_field)
            if label in ("agent", "general"):
                meta["eval_label"] = label
                out.count(f"eval_label:{label}")
        out.doc(
            id=content_id(text, url),
            text=text,
            url=url,
            source_id=None if source_id is None else str(source_id),
            title=title if isinstance(title, str) and title else None,
            date=date if isinstance(date, str) and date else None,
            metadata=dumps(meta),
            **common,
        )

    def jsonl(self, split: dict, out: Emitter) -> Iterator[None]:
        path = split["path"]
        common = {"source": split["source"], "part": split["part"]}
        max_line = max_line_bytes(self.cfg)
        with open_input(path) as raw:
            if split["kind"] == "jsonl.gz":  # decompressed in blocks: a bomb costs time, not memory
                stream = jsonl.Gunzip(raw)
                lines: Iterable[tuple[int, bytes | None, int]] = _numbered(jsonl.lines(stream.read, max_line))
                where = "line"
            else:
                lines = _lines_in_range(raw, split["start"], split["end"], max_line)
                where = "byte"
            try:
                for pos, line, length in lines:
                    location = f"{path}@{pos}" if where == "byte" else f"{path}:{pos}"
                    if line is None:
                        out.count("records_in")
                        out.reject(
                            "too_large",
                            f"a line of {length} bytes > {max_line} (6 x max_text_bytes + 1 MiB); not read into memory",
                            location=location,
                            **common,
                        )
                        yield
                        continue
                    body = line.strip()
                    if not body:
                        out.count("blank_lines")
                        continue
                    out.count("records_in")
                    try:
                        s = body.decode("utf-8")
                    except UnicodeDecodeError as err:
                        out.reject("invalid_utf8", str(err)[:200], location=location, **common)
                        yield
                        continue
                    try:
                        obj = jsonl.loads(s, max_depth=None)  # only the top-level fields are read
                    except jsonl.TooDeep as err:
                        out.reject("too_deep", str(err), location=location, **common)
                        yield
                        continue
                    except ValueError as err:
                        out.reject("malformed_json", str(err)[:200], location=location, **common)
                        yield
                        continue
                    self.record(obj, location, split, out)
                    yield
            except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as err:
                out.count("records_in")
                out.reject("corrupt_file", f"{type(err).__name__}: {err}", location=path, **common)

    def parquet(self, split: dict, out: Emitter) -> Iterator[None]:
        import pyarrow.parquet as pq

        cfg = self.cfg
        path, rg = split["path"], split["start"]
        try:
            with open_input(path) as f:
                pf = pq.ParquetFile(f)
                cols = [
                    c
                    for c in (
                        cfg.text_field,
                        cfg.id_field,
                        cfg.url_field,
                        "title",
                        "date",
                        cfg.source_field,
                        cfg.label_field,
                    )
                    if c and c in pf.schema_arrow.names
                ]
                table = pf.read_row_group(rg, columns=sorted(set(cols), key=cols.index))
        except (OSError, ValueError, pa.ArrowException) as err:  # damaged pages behind a valid footer
            out.count("records_in")
            out.reject(
                "corrupt_file",
                f"row group {rg} unreadable: {type(err).__name__}: {str(err)[:200]}",
                location=f"{path}#rg{rg}",
                source=split["source"],
                part=split["part"],
            )
            yield
            return
        for i, row in enumerate(table.to_pylist()):
            out.count("records_in")
            self.record(row, f"{path}#rg{rg}:{i}", split, out)
            yield


def _numbered(found: Iterable[tuple[int, bytes | None, int]]) -> Iterator[tuple[int, bytes | None, int]]:
    """Line numbers (from 1) in place of byte offsets."""
    for n, (_, line, length) in enumerate(found, start=1):
        yield n, line, length


def read_batch(
    batches: Iterable[pa.RecordBatch], cfg: IngestTextSection, rows_per_batch: int = 256
) -> Iterator[pa.RecordBatch]:
    """mapInArrow function: SPLIT_SCHEMA batches → envelope batches."""
    reader = RecordReader(cfg)
    for batch in batches:
        for split in batch.to_pylist():
            out = Emitter(STAGE)
            if split["kind"] in ("bad", "unsupported"):
                out.count("records_in")
                reason = "corrupt_file" if split["kind"] == "bad" else "unsupported_file"
                out.reject(
                    reason,
                    "not a readable Parquet file" if split["kind"] == "bad" else f"not one of {', '.join(SUFFIXES)}",
                    location=split["path"],
                    source=split["source"],
                    part=split["part"],
                )
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
