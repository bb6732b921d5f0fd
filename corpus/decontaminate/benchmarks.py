"""Benchmark test sets as items of text: the sources ``decontaminate`` compares the corpus against.

A benchmark is a list of files (JSONL, JSON, Parquet, or members of a wheel for the built-in ones); a *task*
names one file, and :func:`read_items` turns it into ``(benchmark, item, text)`` rows. Every string found
in the configured fields — inside lists and nested objects too, so chat turns ``[[{"role": "user",
"content": ...}]]`` need no special case — is one item. Items are read on executors, one task per file.
"""

from __future__ import annotations

import gzip
import io
import json
import posixpath
import zipfile
from typing import Any, Iterable, Iterator

import pyarrow as pa

from corpus.config import BenchmarkSpec
from corpus.io import files

ITEM_SCHEMA = pa.schema(
    [pa.field("benchmark", pa.string()), pa.field("item", pa.string()), pa.field("text", pa.string())]
)
TASK_SCHEMA = pa.schema(
    [
        pa.field("benchmark", pa.string()),
        pa.field("path", pa.string()),
        pa.field("member", pa.string()),
        pa.field("fields", pa.list_(pa.string())),
    ]
)
SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".json.gz", ".parquet")
BFCL_PREFIX = "bfcl_eval/data/BFCL_v4_"


class BenchmarkError(files.InputError):
    """A benchmark file that cannot be read (the message names it)."""


def tasks(spec: BenchmarkSpec) -> list[dict]:
    """One task per file of the benchmark."""
    if spec.path == "builtin:bfcl-v4":
        from corpus.packages import find_wheel

        wheel = str(find_wheel("bfcl_eval"))
        with zipfile.ZipFile(wheel) as z:
            members = sorted(n for n in z.namelist() if n.startswith(BFCL_PREFIX) and n.endswith(".json"))
        return [{"benchmark": spec.name, "path": wheel, "member": m, "fields": spec.fields} for m in members]
    if spec.path.startswith("builtin:"):
        raise BenchmarkError(f"{spec.path}: unknown built-in benchmark (known: builtin:bfcl-v4)")
    found = files.list_files(spec.path, SUFFIXES)
    if not found:
        raise BenchmarkError(f"{spec.path}: benchmark {spec.name!r} has no {', '.join(SUFFIXES)} files")
    return [{"benchmark": spec.name, "path": f.path, "member": None, "fields": spec.fields} for f in found]


def strings(value: Any) -> Iterator[str]:
    """Every string inside a JSON value (dict values, list items), in order; of a chat message, its content."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict) and "role" in value and "content" in value:
        if value["role"] != "system":  # a chat turn: its content (system prompts are boilerplate, not test items)
            yield from strings(value["content"])
    elif isinstance(value, dict):
        for v in value.values():
            yield from strings(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from strings(v)


def _records(path: str, member: str | None) -> Iterator[dict]:
    name = member or path
    if name.endswith(".parquet"):
        import pyarrow.parquet as pq

        with files.open_input(path) as f:
            yield from pq.read_table(f).to_pylist()
        return
    if member:
        with zipfile.ZipFile(path) as z:
            raw = z.read(member)
    else:
        with files.open_input(path) as f:
            raw = f.read()
    if name.endswith(".gz"):
        raw = gzip.decompress(raw)
    text = raw.decode("utf-8")
    if not name.endswith((".jsonl", ".jsonl.gz")):
        try:  # a .json file may hold one JSON document (a list of records, or one record) or JSON lines
            data = json.loads(text)
        except json.JSONDecodeError:
            pass
        else:
            records = data if isinstance(data, list) else [data]
            yield from (r if isinstance(r, dict) else {"text": r} for r in records)
            return
    for n, line in enumerate(io.StringIO(text), 1):
        if line.strip():
            try:
                yield json.loads(line)
            except json.JSONDecodeError as err:
                raise BenchmarkError(f"{name}: line {n}: not JSON ({err.msg})") from None


def read_items(task: dict) -> Iterator[dict]:
    """The items of one benchmark file."""
    label = posixpath.basename(task["member"] or task["path"]).split(".")[0]
    try:
        for n, record in enumerate(_records(task["path"], task["member"])):
            if not isinstance(record, dict):
                continue
            base = str(record.get("id", n))
            k = 0
            for field in task["fields"]:
                for s in strings(record.get(field)):
                    yield {"benchmark": task["benchmark"], "item": f"{label}:{base}#{k}", "text": s}
                    k += 1
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        if isinstance(err, BenchmarkError):
            raise
        raise BenchmarkError(f"{task['member'] or task['path']}: cannot read benchmark file: {err}") from None


def items_batch(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """mapInArrow function: task rows → item rows."""
    for batch in batches:
        for task in batch.to_pylist():
            rows = list(read_items(task))
            for i in range(0, len(rows), 4096):
                yield pa.RecordBatch.from_pylist(rows[i : i + 4096], schema=ITEM_SCHEMA)
