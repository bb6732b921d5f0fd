"""The envelope: one Arrow schema for everything a per-record batch function emits.

A batch function (run under Spark with ``mapInArrow``, or called directly in unit tests) yields batches in
which each row is one of:

* ``doc``      — a document (the document columns are filled);
* ``reject``   — a record the stage dropped, with ``_reason`` and ``_detail`` (rejects schema);
* ``counters`` — counts the batch wants reported in the stage stats (``_counters``), e.g. WARC records by type;
* any other kind — a side record (JSON in ``_detail``) for one of the stage's extra datasets, e.g. the typed
  ``tool`` records that ``ingest-apis`` writes beside its documents.

One schema lets Spark run the expensive per-record work once. Either each task splits its own envelope
(:func:`split_batch`) and writes the documents and rejects itself (``corpus.stage.write_envelope``), or, for
stages with side datasets, the envelope is persisted and split by Spark (``corpus.stage.envelope_plan``).
Counters travel as rows rather than Spark accumulators, so a retried task cannot count twice.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Callable, Iterable, Iterator

import pyarrow as pa

from corpus import schema

KIND_DOC, KIND_REJECT, KIND_COUNTERS = "doc", "reject", "counters"
_KINDS = pa.array([KIND_DOC, KIND_REJECT, KIND_COUNTERS])  # the rows a task-side split takes

_EXTRA = [
    pa.field("_kind", pa.string()),
    pa.field("_reason", pa.string()),
    pa.field("_detail", pa.string()),
    pa.field("_location", pa.string()),
    pa.field("_duplicate_of", pa.string()),
    pa.field("_counters", pa.map_(pa.string(), pa.int64())),
]


def envelope_schema() -> pa.Schema:
    doc = schema.document().arrow
    return pa.schema([f.with_nullable(True) for f in doc] + _EXTRA)


_DOC_NAMES = schema.document().names


class Emitter:
    """Collects the rows of one output batch."""

    def __init__(self, stage: str) -> None:
        self.stage = stage
        self.rows: list[dict[str, Any]] = []
        self.counters: Counter[str] = Counter()

    def doc(self, **fields: Any) -> None:
        missing = [n for n in ("id", "part", "source", "text", "metadata") if fields.get(n) is None]
        if missing:
            raise ValueError(f"{self.stage}: document lacks {missing}")
        unknown = set(fields) - set(_DOC_NAMES)
        if unknown:
            raise ValueError(f"{self.stage}: unknown document fields {sorted(unknown)}")
        fields["_kind"] = KIND_DOC
        self.rows.append(fields)

    def reject(
        self,
        reason: str,
        detail: str | None = None,
        *,
        location: str | None = None,
        duplicate_of: str | None = None,
        **fields: Any,
    ) -> None:
        """A dropped record. ``fields`` are whatever document fields are known (id, source, url, text, ...)."""
        fields.update(_kind=KIND_REJECT, _reason=reason, _detail=detail, _location=location, _duplicate_of=duplicate_of)
        self.rows.append(fields)

    def side(self, kind: str, payload: str) -> None:
        """A record for an extra dataset of the stage (not a document, not counted as a record)."""
        if kind in (KIND_DOC, KIND_REJECT, KIND_COUNTERS):
            raise ValueError(f"{self.stage}: side kind {kind!r} is reserved")
        self.rows.append({"_kind": kind, "_detail": payload})

    def count(self, key: str, n: int = 1) -> None:
        self.counters[key] += n

    def batch(self) -> pa.RecordBatch:
        rows = self.rows
        if self.counters:
            rows = rows + [{"_kind": KIND_COUNTERS, "_counters": sorted(self.counters.items())}]
        self.rows, self.counters = [], Counter()
        return pa.RecordBatch.from_pylist(rows, schema=envelope_schema())

    def __len__(self) -> int:
        return len(self.rows)


def per_batch(
    batches: Iterable[pa.RecordBatch], stage: str, rows_fn: Callable[..., None], *args: Any
) -> Iterator[pa.RecordBatch]:
    """mapInArrow function for a row function ``rows_fn(rows, *args, out)``: each input batch's rows through it,
    one envelope batch out per batch in."""
    for batch in batches:
        out = Emitter(stage)
        rows_fn(batch.to_pylist(), *args, out)
        yield out.batch()


def split_batch(
    batch: pa.RecordBatch, stage: str, sides: tuple[str, ...] = ()
) -> tuple[pa.RecordBatch, pa.RecordBatch, Counter]:
    """One envelope batch → (documents, rejects, counters): the documents and rejects as batches of the
    datasets' schemas (selected and renamed column-wise, no Python row objects), the counters summed. Side rows
    of the kinds in ``sides`` are left for :func:`side_batch`; any other kind is an error (a stage that did not
    say where its side rows go would lose them)."""
    import pyarrow.compute as pc

    kind = batch.column("_kind")
    other = pc.invert(pc.is_in(kind, value_set=pa.array(_KINDS.to_pylist() + list(sides), pa.string())))
    if pc.any(other).as_py():
        raise ValueError(
            f"{stage}: side rows of kinds {pc.unique(pc.filter(kind, other)).to_pylist()} have no dataset to go to"
        )
    docs = batch.filter(pc.equal(kind, KIND_DOC)).select(_DOC_NAMES).cast(schema.document().arrow)
    rej = batch.filter(pc.equal(kind, KIND_REJECT))
    rejects = rejects_batch(
        rej,
        stage,
        reason=rej.column("_reason"),
        detail=rej.column("_detail"),
        location=rej.column("_location"),
        duplicate_of=rej.column("_duplicate_of"),
    )
    counters: Counter[str] = Counter()
    for pairs in batch.filter(pc.equal(kind, KIND_COUNTERS)).column("_counters").to_pylist():
        counters.update(dict(pairs))
    return docs, rejects, counters


def side_batch(batch: pa.RecordBatch, kind: str, schema_name: str) -> pa.RecordBatch:
    """The side rows of ``kind`` in one envelope batch, as a batch of the named schema (``_detail``: a JSON
    object per row)."""
    import pyarrow.compute as pc

    return next(side_rows([batch.filter(pc.equal(batch.column("_kind"), kind))], schema_name))


def rejects_batch(rows: pa.RecordBatch, stage: str, **columns: pa.Array) -> pa.RecordBatch:
    """A batch of the rejects schema from ``rows`` (documents or envelope rows): the columns given by name, the
    others (id, part, source, url, text, metadata) taken from ``rows``, ``stage`` on every row."""
    columns["stage"] = pa.array([stage] * rows.num_rows, pa.string())
    target = schema.rejects().arrow
    return pa.RecordBatch.from_arrays(
        [columns[n] if n in columns else rows.column(n) for n in target.names], schema=target
    )


def split(batches: list[pa.RecordBatch] | pa.Table, stage: str = "") -> tuple[pa.Table, pa.Table, Counter]:
    """Split envelope output into (documents, rejects, counters) tables: the driver-free equivalent of what the
    stage runner does with Spark. For unit tests and small local use. Side rows are left out."""
    import pyarrow.compute as pc

    table = batches if isinstance(batches, pa.Table) else pa.Table.from_batches(batches, schema=envelope_schema())
    table = table.filter(pc.is_in(table.column("_kind"), value_set=_KINDS))
    docs, rejects, counters = [], [], Counter()
    for batch in table.to_batches():
        d, r, c = split_batch(batch, stage)
        docs.append(d)
        rejects.append(r)
        counters.update(c)
    return (
        pa.Table.from_batches(docs, schema=schema.document().arrow),
        pa.Table.from_batches(rejects, schema=schema.rejects().arrow),
        counters,
    )


def side_rows(batches, schema_name: str):
    """mapInArrow over an envelope's side rows (``_detail``: a JSON object per row) → batches of the named schema
    (how a stage writes a typed dataset beside its documents, e.g. ingest-apis' ``tools/``)."""
    import json

    target = schema.load(schema_name).arrow
    for batch in batches:
        rows = [json.loads(d) for d in batch.column("_detail").to_pylist()]
        yield pa.RecordBatch.from_pylist([{n: r.get(n) for n in target.names} for r in rows], schema=target)
