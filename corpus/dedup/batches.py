"""The dedup stage's batch functions: what runs inside Spark's Python workers (``mapInArrow``), over Arrow
batches, with no Spark import. corpus.dedup.stage builds the plan around them (see its docstring for the
passes); each function here is unit-tested without Spark."""

from __future__ import annotations

from typing import Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from corpus.config import MinHashSection
from corpus.dedup import minhash
from corpus.ids import text_hashes
from corpus.io import files
from corpus.spark import datasets
from corpus.spark.envelope import rejects_batch


FEATURES = pa.schema(
    [
        ("id", pa.string()),
        ("text_len", pa.int64()),
        ("score", pa.float64()),
        ("norm_hash", pa.binary()),
        ("sig", pa.binary()),
        ("bands", pa.list_(pa.int64())),
        ("shingles", pa.int64()),
    ]
)


FEATURES_ROW = pa.schema(list(FEATURES) + [pa.field("_row", pa.int64())])


CHECKED = pa.schema(
    [("a", pa.string()), ("b", pa.string()), ("jaccard", pa.float64()), ("exact", pa.bool_()), ("passed", pa.bool_())]
)


def _binary_rows(rows: np.ndarray) -> pa.Array:
    """A 2-D uint32 array as a binary array (one value per row) without a Python object per row."""
    n, width = rows.shape
    offsets = pa.py_buffer((np.arange(n + 1, dtype=np.int32) * (width * 4)).tobytes())
    return pa.Array.from_buffers(pa.binary(), n, [None, offsets, pa.py_buffer(np.ascontiguousarray(rows).tobytes())])


def features_fn(mh: MinHashSection, exact_hash: bool):
    """mapInArrow function: (id, text, score, _row) batches → FEATURES_ROW batches."""
    bands, rows = mh.band_rows()
    perms = minhash.permutations(mh.num_perm, mh.seed)  # on the driver, shipped with the function

    def run(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            texts = batch.column("text")
            n = batch.num_rows
            if mh.enabled:
                sigs, counts = minhash.signatures(
                    texts, mh.num_perm, mh.seed, mh.ngram, mh.tokenizer, mh.lowercase, perms
                )
                keys = minhash.band_keys(sigs, bands, rows)
                sig_arr = _binary_rows(sigs)
                band_arr = pa.ListArray.from_arrays(
                    pa.array(np.arange(n + 1, dtype=np.int32) * bands), pa.array(keys.ravel(), pa.int64())
                )
            else:
                counts = np.zeros(n, dtype=np.int64)
                sig_arr = pa.nulls(n, pa.binary())
                band_arr = pa.nulls(n, pa.list_(pa.int64()))
            hashes = text_hashes(texts) if exact_hash else pa.nulls(n, pa.binary())
            yield pa.RecordBatch.from_arrays(
                [
                    batch.column("id"),
                    pc.utf8_length(texts.fill_null("")).cast(pa.int64()),
                    batch.column("score"),
                    hashes,
                    sig_arr,
                    band_arr,
                    pa.array(counts, pa.int64()),
                    batch.column("_row"),
                ],
                schema=FEATURES_ROW,
            )

    return run


STAR_ROWS = pa.schema(
    [("star", pa.string()), ("id", pa.string()), ("root", pa.bool_()), ("sh", pa.binary()), ("sig", pa.binary())]
)


def star_rows_fn(mh: MinHashSection, edges_path: str, labels: list[int], batch_rows: int):
    """mapInArrow function over ``datasets.row_groups`` of the input documents → blobs of STAR_ROWS, for the
    exact check of the candidate edges (a star member a → its root b) at ``edges_path``, which every task reads
    whole (so only when small). Each candidate document's text is read and tokenised here, once, and its
    shingle set (and, where the set is over ``verify_max_shingles``, its signature) is sent to the task of
    every star it is in: as the root of its own star, and as a member of each star it links to. Stars go to
    tasks by a hash of the root id; the blobs spare Spark a row conversion per set, as in band_blobs_fn."""
    import xxhash

    n_parts = len(labels)
    perms = minhash.permutations(mh.num_perm, mh.seed)

    def run(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        edges = _read_small(edges_path, ["a", "b"])
        roots = pc.unique(edges.column("b"))
        ends = pa.concat_arrays(
            [pc.unique(edges.column("a")), roots.combine_chunks() if isinstance(roots, pa.ChunkedArray) else roots]
        )
        pieces = []
        for b in _texts_among(batches, ends, batch_rows):
            ids = b.column("id")
            sets = minhash.shingle_set_array(
                b.column("text"), mh.ngram, mh.tokenizer, mh.lowercase, mh.verify_max_shingles
            ).cast(pa.binary())
            sigs = pa.nulls(b.num_rows, pa.binary())
            if sets.null_count:  # over the cap: the signature estimate instead, so compute the signatures
                sigs = _binary_rows(
                    minhash.signatures(
                        b.column("text"), mh.num_perm, mh.seed, mh.ngram, mh.tokenizer, mh.lowercase, perms
                    )[0]
                )
            is_root = pc.is_in(ids, value_set=roots)
            pieces.append(
                pa.table(
                    [
                        ids.filter(is_root),
                        ids.filter(is_root),
                        pa.array([True] * pc.sum(is_root.cast(pa.int64())).as_py(), pa.bool_()),
                        sets.filter(is_root),
                        sigs.filter(is_root),
                    ],
                    schema=STAR_ROWS,
                )
            )
            links = edges.filter(pc.is_in(edges.column("a"), value_set=ids))
            at = pc.index_in(links.column("a"), value_set=ids)
            pieces.append(
                pa.table(
                    [
                        links.column("b"),
                        links.column("a"),
                        pa.array([False] * links.num_rows, pa.bool_()),
                        sets.take(at),
                        sigs.take(at),
                    ],
                    schema=STAR_ROWS,
                )
            )
        if pieces:
            rows = pa.concat_tables(pieces)
            digest = xxhash.xxh64_intdigest
            part = np.array([digest(v.encode()) % n_parts for v in rows.column("star").to_pylist()], dtype=np.int64)
            yield _blobs(rows, part, labels)

    return run


def check_stars_fn(mh: MinHashSection):
    """mapInArrow function over one task's blobs of STAR_ROWS (every star whole in the task) → CHECKED: each
    member's set against its root's (a member sent twice, by a repeated record, gives the same row twice; the
    caller drops repeats)."""

    def run(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        table = _unblob(batches, STAR_ROWS)
        if not table.num_rows:
            return
        is_root = table.column("root")
        roots, members = table.filter(is_root), table.filter(pc.invert(is_root))
        at = pc.index_in(members.column("star"), value_set=roots.column("id"))
        pairs = pa.table(
            {
                "a": members.column("id"),
                "b": members.column("star"),
                "sig_a": members.column("sig"),
                "sig_b": roots.column("sig").take(at),
                "sh_a": members.column("sh"),
                "sh_b": roots.column("sh").take(at),
            }
        )
        for batch in pairs.to_batches(max_chunksize=65_536):
            yield check_batch(batch, mh)

    return run


def _signal(signals: pa.Array, name: str | None) -> pa.Array:
    """One signal (a double per row, null where absent) from a ``signals`` list<struct<key, value>> column."""
    n = len(signals)
    if name is None:
        return pa.nulls(n, pa.float64())
    flat = pc.list_flatten(signals)
    values = flat.field("value")
    hit = np.asarray(pc.fill_null(pc.and_(pc.equal(flat.field("key"), name), values.is_valid()), False))
    out = np.zeros(n)
    valid = np.zeros(n, dtype=bool)
    rows = np.asarray(pc.list_parent_indices(signals))[hit]
    out[rows] = np.asarray(values.fill_null(0.0))[hit]
    valid[rows] = True
    return pa.array(out, pa.float64(), mask=~valid)


def features_from_files_fn(mh: MinHashSection, exact_hash: bool, score_signal: str | None, batch_rows: int):
    """mapInArrow function over ``datasets.row_groups`` of the input documents → FEATURES_ROW batches: reads
    each row group with pyarrow, so the texts never pass through the JVM. ``_row`` is ``F.xxhash64("source",
    "part", "metadata")`` computed the same way in Python; ``score`` is the signal ``score_signal``."""
    from corpus import schema
    from corpus.ids import spark_xxhash64

    doc = schema.document().arrow
    arrow = pa.schema([doc.field(n) for n in ("id", "text", "source", "part", "metadata", "signals")])
    compute = features_fn(mh, exact_hash)

    def run(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        def inputs():
            for b in datasets.read_row_groups(batches, arrow, batch_rows):
                row = spark_xxhash64(b.column("source"), b.column("part"), b.column("metadata"))
                yield pa.RecordBatch.from_arrays(
                    [
                        b.column("id"),
                        b.column("text"),
                        _signal(b.column("signals"), score_signal),
                        pa.array(row, pa.int64()),
                    ],
                    names=["id", "text", "score", "_row"],
                )

        yield from compute(inputs())

    return run


def shingle_sets_from_files_fn(mh: MinHashSection, wanted_path: str, batch_rows: int):
    """mapInArrow function over ``datasets.row_groups`` of the input documents → (id, shingle set) of the
    documents whose id is in the Parquet dataset ``wanted_path`` (the candidate pairs' ends; each task reads it
    whole, so it is used only when small). Texts are read and filtered in Python, never passing the JVM."""
    compute = shingle_sets_fn(mh)

    def run(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        yield from compute(_texts_among(batches, _read_small(wanted_path, ["id"]).column("id"), batch_rows))

    return run


def _read_small(path: str, columns: list[str]) -> pa.Table:
    """A small scratch dataset read whole inside a task (the candidate edges or ids)."""
    import pyarrow.dataset as ds

    fs, inner = files.filesystem(path)
    return ds.dataset(inner, format="parquet", filesystem=fs).to_table(columns=columns)


def _texts_among(batches: Iterable[pa.RecordBatch], ids, batch_rows: int) -> Iterator[pa.RecordBatch]:
    """Inside ``mapInArrow`` over ``datasets.row_groups`` of the documents: (id, text) batches of the documents
    whose id is in ``ids``, filtered as each row group is read (texts never pass through the JVM)."""
    arrow = pa.schema([("id", pa.string()), ("text", pa.string())])

    def among(table: pa.Table) -> pa.Table:
        return table.filter(pc.is_in(table.column("id"), value_set=ids))

    return datasets.read_row_groups(batches, arrow, batch_rows, where=among)


def shingle_sets_fn(mh: MinHashSection):
    """mapInArrow function: (id, text) → (id, sorted unique shingle hashes as binary; null above the cap)."""

    def run(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            sets = minhash.shingle_set_array(
                batch.column("text"), mh.ngram, mh.tokenizer, mh.lowercase, mh.verify_max_shingles
            )
            yield pa.RecordBatch.from_arrays([batch.column("id"), sets.cast(pa.binary())], names=["id", "sh"])

    return run


def check_fn(mh: MinHashSection):
    """mapInArrow function: candidate edges with both ends' signatures (and shingle sets) → CHECKED."""

    def run(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            yield check_batch(batch, mh)

    return run


def check_batch(batch: pa.RecordBatch, mh: MinHashSection) -> pa.RecordBatch:
    """Candidate edges (a, b, sig_a, sig_b[, sh_a, sh_b]) → CHECKED: the exact Jaccard where both shingle sets are
    present (not over the size cap), else the signature estimate (signatures are needed only there)."""
    n = batch.num_rows
    jac = np.zeros(n)
    exact = np.zeros(n, dtype=bool)
    if "sh_a" in batch.schema.names:
        sh_a, sh_b = batch.column("sh_a"), batch.column("sh_b")
        both = pc.and_(sh_a.is_valid(), sh_b.is_valid())
        exact = np.asarray(both)
        if exact.any():
            jac[exact] = minhash.pair_jaccards(sh_a.filter(both), sh_b.filter(both))
    if not exact.all():
        rest = pa.array(~exact)
        sa = minhash.fixed_rows(batch.column("sig_a").filter(rest), mh.num_perm)
        sb = minhash.fixed_rows(batch.column("sig_b").filter(rest), mh.num_perm)
        jac[~exact] = minhash.estimated_jaccard(sa, sb)
    passed = jac >= mh.threshold - 1e-12 if mh.verify != "off" else np.ones(n, dtype=bool)
    return pa.RecordBatch.from_arrays(
        [batch.column("a"), batch.column("b"), pa.array(jac, pa.float64()), pa.array(exact), pa.array(passed)],
        schema=CHECKED,
    )


def _blobs(table: pa.Table, part: np.ndarray, labels: list[int]) -> pa.RecordBatch:
    """(part, rows) rows: ``table`` cut by ``part`` (0..len(labels)-1), each piece one Arrow IPC stream labelled
    with the value Spark's hash partitioning sends to that part's task (``partition_labels``)."""
    order = np.argsort(part, kind="stable")
    ends = np.searchsorted(part[order], np.arange(len(labels) + 1))
    out_parts, out_blobs = [], []
    for p in range(len(labels)):
        if ends[p] == ends[p + 1]:
            continue
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table.take(pa.array(order[ends[p] : ends[p + 1]])))
        out_parts.append(labels[p])
        out_blobs.append(sink.getvalue().to_pybytes())
    return pa.record_batch([pa.array(out_parts, pa.int32()), pa.array(out_blobs, pa.binary())], names=["part", "rows"])


def _unblob(batches: Iterable[pa.RecordBatch], schema: pa.Schema) -> pa.Table:
    tables = [pa.ipc.open_stream(blob).read_all() for b in batches for blob in b.column("rows").to_pylist()]
    return pa.concat_tables(tables) if tables else schema.empty_table()


BLOB_FLUSH_ROWS = 1_000_000  # band rows a task gathers before cutting them into blobs (~50 MB)


BAND_ROWS = pa.schema([("id", pa.string()), ("prior", pa.bool_()), ("band", pa.int32()), ("key", pa.int64())])


def band_blobs_fn(labels: list[int], bands: int):
    """mapInArrow function: (id, prior, bands) → (part, rows): every document's band rows (id, prior, band, key),
    cut by bucket (key modulo the number of tasks) into one Arrow IPC stream per candidates task, labelled with
    the value that Spark's hash partitioning sends to that task (``labels``).

    Why blobs: Spark's shuffle converts each row between Arrow and its own row format, and for the 16 rows of
    ~50 bytes per document that conversion cost more than everything else the candidates step does. Shuffled as
    a few blobs per task, the same rows cost Spark almost nothing; the grouping stays in Arrow."""
    n_parts = len(labels)

    def cut(ids: list, priors: list, keys: list) -> pa.RecordBatch:
        ids_a = pa.concat_arrays(ids)
        key = np.concatenate(keys)
        doc, band = np.divmod(np.arange(len(key)), bands)
        rows = pa.table(
            [
                ids_a.take(pa.array(doc)),
                pa.array(np.concatenate(priors)[doc]),
                pa.array(band.astype(np.int32)),
                pa.array(key),
            ],
            schema=BAND_ROWS,
        )
        return _blobs(rows, (key.view(np.uint64) % np.uint64(n_parts)).astype(np.int64), labels)

    def run(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        ids, priors, keys, held = [], [], [], 0
        for batch in batches:
            if not batch.num_rows:
                continue
            ids.append(batch.column("id"))
            priors.append(np.asarray(batch.column("prior").fill_null(False)))
            keys.append(np.asarray(pc.list_flatten(batch.column("bands"))))
            held += batch.num_rows * bands
            if held >= BLOB_FLUSH_ROWS:
                yield cut(ids, priors, keys)
                ids, priors, keys, held = [], [], [], 0
        if ids:
            yield cut(ids, priors, keys)

    return run


def bucket_edges_fn(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """mapInArrow function over one task's blobs of band rows (every bucket whole in the task) → star edges
    (a, b): each member of a bucket shared by two or more documents, at least one new (not ``prior``), links to
    the bucket's smallest id (never all pairs, so a huge bucket is linear work, not quadratic).

    Two hash group-bys: first a count and a flag per bucket (fixed-width, fast: most buckets hold one document),
    then the smallest id of the few shared buckets only. Single-threaded: Spark runs one task per core."""
    table = _unblob(batches, BAND_ROWS)
    if not table.num_rows:
        return
    keys = ["band", "key"]
    per_bucket = table.group_by(keys, use_threads=False).aggregate([("key", "count"), ("prior", "min")])
    shared = per_bucket.filter((pc.field("key_count") > 1) & ~pc.field("prior_min")).select(keys)
    members = table.join(shared, keys, join_type="left semi", use_threads=False)
    roots = members.group_by(keys, use_threads=False).aggregate([("id", "min")])
    linked = members.join(roots, keys, use_threads=False).filter(pc.field("id") != pc.field("id_min"))
    out = pa.table({"a": linked.column("id"), "b": linked.column("id_min")})
    yield from out.to_batches(max_chunksize=65_536)


NEAR = pa.schema(
    [
        ("id", pa.string()),
        ("reason", pa.string()),
        ("duplicate_of", pa.string()),
        ("cluster", pa.string()),
        ("detail", pa.string()),
    ]
)


def components_and_keep_fn(info_path: str, rule: str, threshold: float):
    """mapInArrow function over *all* the checked edges (a, b) in one task → NEAR rows: connected components
    (``components.label_components``), then the keep rule within each, as the distributed path's windows do:
    a previous-index document first, then the rule, then the smallest id. The documents' text length, score and
    ``prior`` come from ``info_path`` (this run's features or lsh table), read here with pyarrow; only new
    (non-prior) documents get a row. For graphs within ``components_local_max_edges``."""
    import pyarrow.dataset as ds

    from corpus.dedup.components import label_components

    def run(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        labelled = list(label_components(batches))
        if not labelled:
            return
        comps = pa.Table.from_batches(labelled)
        fs, inner = files.filesystem(info_path)
        data = ds.dataset(inner, format="parquet", filesystem=fs)
        columns = [c for c in ("id", "text_len", "score", "prior") if c in data.schema.names]
        info = data.to_table(columns=columns, filter=pc.is_in(pc.field("id"), value_set=comps.column("id")))
        if "prior" not in columns:
            info = info.append_column("prior", pa.array(np.zeros(info.num_rows, dtype=bool)))
        # a repeated record has its id more than once: one row per id (same text, so same length)
        first = np.unique(
            np.asarray(pc.index_in(info.column("id"), value_set=pc.unique(info.column("id")))), return_index=True
        )[1]
        info = info.take(pa.array(first))
        at = pc.index_in(comps.column("id"), value_set=info.column("id"))
        t = pa.table(
            {
                "id": comps.column("id"),
                "component": comps.column("component"),
                "prior": info.column("prior").take(at),
                "text_len": info.column("text_len").take(at),
                "score": info.column("score").take(at),
            }
        )
        keys = [("component", "ascending"), ("prior", "descending")]
        if rule == "longest_text":
            keys.append(("text_len", "descending"))
        elif rule == "highest_score":
            keys.append(("score", "descending"))
        t = t.take(pc.sort_indices(t, sort_keys=keys + [("id", "ascending")], null_placement="at_end"))
        comp = t.column("component").combine_chunks()
        start = np.r_[True, np.asarray(pc.not_equal(comp.slice(1), comp.slice(0, len(comp) - 1)))]
        group = np.cumsum(start) - 1
        firsts = np.flatnonzero(start)
        sizes = np.diff(np.r_[firsts, len(comp)])
        prior = np.asarray(t.column("prior"))
        any_prior = np.maximum.reduceat(prior.astype(np.int8), firsts).astype(bool)
        kept = t.column("id").take(pa.array(firsts[group]))
        removed = ~start
        detail = [
            f"Jaccard ≥ {threshold} within a near-duplicate cluster of {sizes[g]}"
            + (" including a document of the previous index" if any_prior[g] else "")
            if r
            else None
            for g, r in zip(group, removed)
        ]
        out = pa.table(
            [
                t.column("id"),
                pa.array(np.where(removed, "near_duplicate", None), pa.string()),
                pc.if_else(pa.array(removed), kept, pa.nulls(len(kept), pa.string())),
                kept,
                pa.array(detail, pa.string()),
            ],
            schema=NEAR,
        ).filter(pa.array(~prior))
        yield from out.to_batches(max_chunksize=65_536)

    return run


DECISION_COLUMNS = ["id", "_row", "reason", "duplicate_of", "cluster", "detail"]


class Decisions:
    """The dedup decisions (a small table, unique per (id, _row)) with a dict index, built once per worker: an
    Arrow hash join per batch would rebuild its hash table of every decision for each batch of documents."""

    def __init__(self, table: pa.Table) -> None:
        self.table = table.combine_chunks()
        self.index = {
            key: k
            for k, key in enumerate(zip(self.table.column("id").to_pylist(), self.table.column("_row").to_pylist()))
        }

    def rows_for(self, ids: pa.Array, row: np.ndarray | pa.Array) -> pa.Table:
        """The decision of each document (a null row where there is none), in the documents' order."""
        get = self.index.get
        rows = row.to_pylist() if isinstance(row, pa.Array) else row.tolist()
        return self.table.take(pa.array([get(key) for key in zip(ids.to_pylist(), rows)], pa.int64()))

    def removed(self, ids: pa.Array, row: np.ndarray | pa.Array) -> pa.Array:
        """True for each document with a removal decision."""
        return pc.fill_null(pc.is_valid(self.rows_for(ids, row).column("reason")), False).combine_chunks()


def decisions_at(path: str) -> Decisions:
    """The decisions scratch dataset at ``path``, read and indexed once per worker."""
    if path not in _decisions_cache:
        _decisions_cache.clear()
        _decisions_cache[path] = Decisions(_read_small(path, DECISION_COLUMNS))
    return _decisions_cache[path]


_decisions_cache: dict[str, Decisions] = {}  # one entry: the decisions of the running stage, read once per worker


def apply_decisions(
    batch: pa.RecordBatch, row: np.ndarray, decisions: Decisions, stage: str
) -> tuple[pa.RecordBatch, pa.RecordBatch]:
    """The dedup decisions applied to one batch of input documents (``row``: each document's ``_row``), as
    (documents kept, rejects). A document without a decision, or with one whose reason is null (it stays in a
    cluster), is kept with ``dedup_cluster`` = its cluster, else its own id. Order is kept."""
    import json

    from corpus import schema

    got = decisions.rows_for(batch.column("id"), row)
    got = pa.RecordBatch.from_arrays([got.column(n).combine_chunks() for n in got.column_names], names=got.column_names)
    removed = pc.is_valid(got.column("reason"))
    doc = schema.document().arrow
    kept = batch.filter(pc.invert(removed))
    cluster = pc.coalesce(got.column("cluster").filter(pc.invert(removed)), kept.column("id"))
    docs = pa.RecordBatch.from_arrays(
        [cluster if n == "dedup_cluster" else kept.column(n) for n in doc.names], schema=doc
    )
    gone, why = batch.filter(removed), got.filter(removed)
    location = [json.loads(m).get("location") if m else None for m in gone.column("metadata").to_pylist()]
    rejects = rejects_batch(
        gone,
        stage,
        location=pa.array(location, pa.string()),
        **{n: why.column(n) for n in ("reason", "detail", "duplicate_of")},
    )
    return docs, rejects


def apply_decisions_fn(decisions_path: str, stage: str, batch_rows: int = 8192):
    """Producer for ``stage.write_tasks`` over ``datasets.row_groups`` of the input documents: each row group
    read with pyarrow, its documents matched to the decisions (a small scratch dataset, read once per worker)
    and written as documents or rejects by the task. The texts are read once for both outputs and never pass
    through the JVM (Spark's join and two writers read every text twice and wrote it from the JVM)."""
    from collections import Counter

    from corpus import schema
    from corpus.ids import spark_xxhash64

    arrow = schema.document().arrow

    def run(batches: Iterable[pa.RecordBatch]):
        decisions = decisions_at(decisions_path)
        for b in datasets.read_row_groups(batches, arrow, batch_rows):
            row = spark_xxhash64(b.column("source"), b.column("part"), b.column("metadata"))
            docs, rejects = apply_decisions(b, row, decisions, stage)
            yield docs, rejects, Counter()

    return run


INDEX_ROWS = pa.schema([("id", pa.string()), ("sig", pa.binary()), ("bands", pa.list_(pa.int64()))])
INDEX_SOURCE = pa.schema(
    [
        ("id", pa.string()),
        ("sig", pa.binary()),
        ("bands", pa.list_(pa.int64())),
        ("shingles", pa.int64()),
        ("_row", pa.int64()),
    ]
)


def index_rows_fn(decisions_path: str):
    """For ``datasets.rewrite_row_groups`` over the features scratch (INDEX_SOURCE columns): the signature index's
    rows, i.e. the documents with shingles that no decision removes."""

    def keep(batch: pa.RecordBatch) -> pa.RecordBatch:
        decisions = decisions_at(decisions_path)
        shingled = pc.fill_null(pc.greater(batch.column("shingles"), 0), False)
        stays = pc.and_(shingled, pc.invert(decisions.removed(batch.column("id"), batch.column("_row"))))
        return batch.filter(stays).select(INDEX_ROWS.names)

    return keep
