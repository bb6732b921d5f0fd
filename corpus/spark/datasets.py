"""Reading and writing Parquet datasets from Spark on any filesystem the project supports.

Local paths (and ``s3a://`` / ``hdfs://`` / ``gs://`` URIs, for clusters that ship the Hadoop connector, as EMR and
Dataproc do) go through Spark's own Parquet reader and writer.

``s3://`` URIs go through ``pyarrow.fs`` inside the Spark tasks instead. Spark's S3A connector (the hadoop-aws
jars) is not part of the pip-installed pyspark and cannot be fetched on every machine, while pyarrow's S3 client
is in every install and takes its credentials from the standard AWS chain. Written by hand because no library
offers "Spark DataFrame to/from pyarrow.fs": the read turns a list of files into a DataFrame of paths and reads
each file in ``mapInArrow``; the write hands each partition's Arrow batches to a ``pq.ParquetWriter`` on the
object store, one file per partition, named after the partition (``part-00007.zstd.parquet``) so that a retried
task overwrites its own file rather than adding one (an object appears only when its upload completes).

The same per-task files (:class:`TaskFile`) serve, on every filesystem, the stages whose tasks write their own
output (``corpus.stage.write_tasks``) and the datasets derived row group by row group (:func:`rewrite_row_groups`):
there the rows are produced in Python anyway, and handing them to Spark's writer would only copy them through
the JVM.
"""

from __future__ import annotations

import os
import posixpath
from typing import Any, Iterator

from corpus.io import files

PARQUET_SUFFIX = ".parquet"


def task_side(path: str) -> bool:
    """True when ``path`` is read and written by pyarrow inside the tasks rather than by Spark."""
    return str(path).startswith("s3://")


def _arrow_schema(spark_schema):
    from pyspark.sql.pandas.types import to_arrow_schema

    return to_arrow_schema(spark_schema, timezone="UTC")


def write(df, path: str, compression: str = "zstd", overwrite: bool = False, dictionary: bool = True) -> None:
    """Write ``df`` as a Parquet folder at ``path``. ``dictionary=False`` skips Parquet's dictionary encoding,
    whose attempt on columns of unique values (hashes, signatures) costs CPU and saves nothing."""
    if not task_side(path):
        writer = df.write.option("compression", compression).option(
            "parquet.enable.dictionary", str(dictionary).lower()
        )
        (writer.mode("overwrite") if overwrite else writer).parquet(path)
        return
    if overwrite:
        files.remove(path)
    elif files.exists(path) and files.list_files(path):
        raise files.InputError(f"{path}: already exists (Parquet output folders are written once)")
    files.make_dirs(path)
    arrow = _arrow_schema(df.schema)
    # one row per file
    written = df.mapInArrow(_writer(path, compression, arrow, dictionary), "file string, rows long").collect()
    if not written:  # no rows at all: one empty file keeps the schema for readers
        write_empty(path, arrow, compression)


class TaskFile:
    """The Parquet file one task writes into a dataset folder: ``part-<partition>.<compression>.parquet``.

    Named after the partition, so a retried task replaces its own file rather than adding one. On a local or
    mounted filesystem the rows go to a hidden temporary name (which readers skip) renamed into place by
    :meth:`close`, so two attempts of one task never interleave their bytes; on an object store the upload
    itself appears only when complete. Batches are gathered into row groups of about ``group_bytes`` (a
    ``write_batch`` per small batch would make row groups too small for streaming readers). Nothing is written
    for a task without rows. Written by hand: Spark's own writer cannot take Arrow batches from Python, and
    pyarrow's dataset writer has no notion of a task attempt.
    """

    def __init__(
        self,
        folder: str,
        partition: int,
        arrow,
        compression: str = "zstd",
        dictionary: bool = True,
        group_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        self.target = posixpath.join(folder, f"part-{partition:05d}.{compression}{PARQUET_SUFFIX}")
        self.arrow, self.compression, self.dictionary, self.group_bytes = arrow, compression, dictionary, group_bytes
        self.rows, self._pending, self._pending_bytes = 0, [], 0
        self._writer = self._fs = self._final = self._inner = None

    def write(self, batch) -> None:
        if batch.num_rows == 0:
            return
        self._pending.append(batch.cast(self.arrow) if batch.schema != self.arrow else batch)
        self._pending_bytes += batch.nbytes
        self.rows += batch.num_rows
        if self._pending_bytes >= self.group_bytes:
            self._flush()

    def _flush(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not self._pending:
            return
        if self._writer is None:
            self._fs, self._final = files.filesystem(self.target)
            self._inner = (
                self._final
                if task_side(self.target)
                else posixpath.join(
                    posixpath.dirname(self._final), f".{posixpath.basename(self._final)}.{os.getpid()}-{id(self):x}"
                )
            )
            self._writer = pq.ParquetWriter(
                self._inner,
                self.arrow,
                filesystem=self._fs,
                compression=self.compression,
                use_dictionary=self.dictionary,
            )
        table = pa.Table.from_batches(self._pending, schema=self.arrow)
        self._writer.write_table(table, row_group_size=table.num_rows)
        self._pending, self._pending_bytes = [], 0

    def close(self) -> int:
        """Write what is pending and put the file in place; returns the rows written."""
        self._flush()
        if self._writer is not None:
            self._writer.close()
            self._writer = None  # closed: a later abort() leaves the finished file alone
            if self._inner != self._final:
                self._fs.move(self._inner, self._final)
        return self.rows

    def fill(self, batches) -> int:
        """Write every batch and close; on an error, drop the partly written file and re-raise."""
        try:
            for batch in batches:
                self.write(batch)
        except BaseException:
            self.abort()
            raise
        return self.close()

    def abort(self) -> None:
        """Drop a partly written file (the task failed; its retry writes the file again)."""
        self._pending = []
        if self._writer is not None:
            self._writer.close()
            self._fs.delete_file(self._inner)
            self._writer = None


def _writer(path: str, compression: str, arrow, dictionary: bool = True):
    def write_partition(batches: Iterator[Any]) -> Iterator[Any]:
        import pyarrow as pa
        from pyspark import TaskContext

        out = TaskFile(path, TaskContext.get().partitionId(), arrow, compression, dictionary)
        if out.fill(batches):
            yield pa.RecordBatch.from_pydict({"file": [out.target], "rows": [out.rows]})

    return write_partition


def rewrite_row_groups(
    spark,
    paths: list[str],
    out: str,
    read_arrow,
    write_arrow,
    fn,
    batch_rows: int = 8192,
    compression: str = "zstd",
    dictionary: bool = True,
) -> int:
    """Parquet folder ``out`` made from the row groups of ``paths`` by the tasks alone: each task reads its row
    groups with pyarrow (columns of ``read_arrow``), passes each batch through ``fn`` (batch → batch of
    ``write_arrow``, e.g. a filter) and writes one file (:class:`TaskFile`). Nothing passes through the JVM;
    returns the rows written. For derived datasets whose rows Spark would only copy (dedup's signature index)."""
    import pyarrow as pa

    files.make_dirs(out)

    def run(batches: Iterator[Any]) -> Iterator[Any]:
        from pyspark import TaskContext

        target = TaskFile(out, TaskContext.get().partitionId(), write_arrow, compression, dictionary)
        rows = target.fill(fn(batch) for batch in read_row_groups(batches, read_arrow, batch_rows))
        yield pa.RecordBatch.from_pydict({"rows": pa.array([rows], pa.int64())})

    rows = sum(r["rows"] for r in row_groups(spark, *paths).mapInArrow(run, "rows long").collect())  # a row per task
    if not files.list_files(out, (PARQUET_SUFFIX,)):
        write_empty(out, write_arrow, compression)
    return rows


def write_empty(path: str, arrow, compression: str = "zstd") -> None:
    """One Parquet file without rows in folder ``path``: keeps the schema for readers of an empty dataset."""
    import pyarrow.parquet as pq

    fs, inner = files.filesystem(posixpath.join(path, f"part-00000.{compression}{PARQUET_SUFFIX}"))
    pq.write_table(arrow.empty_table(), inner, filesystem=fs, compression=compression)


def read(spark, *paths: str, schema=None):
    """A DataFrame of the Parquet files under ``paths`` (folders or files), with ``schema`` (a Spark StructType)
    when given: its columns in its order, missing columns as nulls, as Spark's reader does."""
    paths = tuple(str(p) for p in paths)
    if not any(task_side(p) for p in paths):
        reader = spark.read.schema(schema) if schema is not None else spark.read
        return reader.parquet(*paths)
    if not all(task_side(p) for p in paths):
        raise files.InputError(f"mixing s3:// and other paths in one dataset is not supported: {', '.join(paths)}")
    found = [e.path for p in paths for e in files.list_files(p, (PARQUET_SUFFIX,))]
    if not found:
        raise files.InputError(f"{', '.join(paths)}: no Parquet files")
    if schema is None:  # from the first file's footer (one small request; Spark infers the same way)
        import pyarrow.parquet as pq
        from pyspark.sql.pandas.types import from_arrow_schema

        fs, inner = files.filesystem(found[0])
        schema = from_arrow_schema(pq.read_schema(inner, filesystem=fs), prefer_timestamp_ntz=False)
    import pyarrow as pa

    listing = task_rows(spark, pa.table({"path": pa.array(found, pa.string())}), len(found))
    return listing.mapInArrow(_reader(_arrow_schema(schema)), schema)


def _reader(arrow):
    def read_files(batches: Iterator[Any]) -> Iterator[Any]:
        import pyarrow as pa
        import pyarrow.parquet as pq

        for batch in batches:
            for path in batch.column("path").to_pylist():
                fs, inner = files.filesystem(path)
                with fs.open_input_file(inner) as f:
                    pf = pq.ParquetFile(f)
                    present = set(pf.schema_arrow.names)
                    for got in pf.iter_batches(batch_size=4096, columns=[n for n in arrow.names if n in present]):
                        cols = [
                            got.column(field.name).cast(field.type)
                            if field.name in present
                            else pa.nulls(got.num_rows, field.type)
                            for field in arrow
                        ]
                        yield pa.RecordBatch.from_arrays(cols, schema=arrow)

    return read_files


def row_groups(spark, *paths: str, per_core: int = 2, fn=None, out_schema=None):
    """A DataFrame (path, row_group, ordinal): one row per Parquet row group under ``paths`` (what
    ``pyarrow.dataset`` finds there, as ``stage.count_rows`` counts), in at least ``per_core`` tasks per core and
    tasks of at most ``spark.sql.files.maxPartitionBytes`` of data each. Each task takes a run of consecutive
    row groups (a file's row groups stay together) of about the same bytes by the footers' sizes, so that one
    task of large row groups does not run on alone after the others. CPU-bound batch functions (classify) ask
    for more tasks per core: the last tasks then leave a core idle for less time. ``ordinal`` numbers the row
    groups in that order, whatever the cut: a position in the input that does not depend on the tasks.

    For a batch function that reads the files itself (``read_row_groups``) and returns far less than it reads:
    dedup's signatures read every text but return ~0.6 KB per document. Spark's reader would decode each text
    in the JVM and copy it to Python as Arrow, which on two cores costs more than the signatures do.

    With ``fn``: ``fn`` mapped over the tasks with :func:`map_tasks` (a DataFrame of ``out_schema``)."""
    import pyarrow.dataset as ds

    entries, sizes = [], []
    for p in paths:
        fs, inner = files.filesystem(p)
        for fragment in ds.dataset(inner, format="parquet", filesystem=fs).get_fragments():
            meta = fragment.metadata
            for k in range(meta.num_row_groups):
                entries.append((files._uri(p, fragment.path), k))
                sizes.append(max(1, meta.row_group(k).total_byte_size))
    total = sum(sizes)
    sc = spark.sparkContext
    target = int(
        sc._jvm.org.apache.spark.network.util.JavaUtils.byteStringAsBytes(
            spark.conf.get("spark.sql.files.maxPartitionBytes")
        )
    )
    slices = max(1, min(len(entries), max(per_core * sc.defaultParallelism, -(-total // target))))
    import pyarrow as pa

    table = pa.table(
        {
            "path": pa.array([e[0] for e in entries], pa.string()),
            "row_group": pa.array([e[1] for e in entries], pa.int32()),
            "ordinal": pa.array(range(len(entries)), pa.int64()),
        }
    )
    if fn is not None:
        return map_tasks(spark, table, fn, out_schema, slices, balanced_cuts(sizes, slices))
    return task_rows(spark, table, slices, tasks=balanced_cuts(sizes, slices))


def balanced_cuts(sizes: list[int], slices: int) -> list[int]:
    """The task of each item when ``sizes`` (in order) are cut into ``slices`` runs of consecutive items of about
    equal total size: an item goes to the run its middle falls in, and every run gets at least one item."""
    n = len(sizes)
    total, seen, out, prev = sum(sizes), 0, [], -1
    for i, size in enumerate(sizes):
        middle = min(slices - 1, int((seen + size / 2) * slices // total)) if total else 0
        # a step of 0 or 1 from the previous item, and never so far behind that the items left cannot fill
        # the runs left (one each)
        prev = min(max(middle, prev, slices - (n - i)), prev + 1)
        out.append(prev)
        seen += size
    return out


def task_rows(spark, table, slices: int, tasks: list[int] | None = None):
    """A DataFrame of the driver's small Arrow ``table`` (a task list: files, splits, hosts) cut into
    ``slices`` tasks of consecutive rows, in order: what ``createDataFrame(sc.parallelize(rows, slices))``
    gives, built without a Python worker. ``tasks`` (the task of each row, non-decreasing, every task in
    ``range(slices)`` used) cuts the runs elsewhere than at equal row counts.

    Why: a parallelized Python collection is read in the tasks by a Python worker of its own (a ``map`` that
    re-pickles it), from another worker pool than the batch function that consumes it, so a job's first tasks
    started two Python daemons one after the other (~1.5 s each on two cores). Here the rows reach the JVM as
    one Arrow table (a local relation) and are joined by position to ``spark.range``, which makes the tasks;
    the table is broadcast, so nothing is shuffled. With ``tasks``, each task's rows travel as one row of
    lists, joined to the task's number and unpacked in order (``inline`` of ``arrays_zip``)."""
    import pyarrow as pa
    from pyspark.sql import functions as F
    from pyspark.sql.pandas.types import from_arrow_schema

    n = table.num_rows
    if tasks is None:
        local = table.add_column(0, "_pos", pa.array(range(n), pa.int64()))
        local = spark.createDataFrame(local, from_arrow_schema(local.schema))
        spread = spark.range(0, n, 1, max(1, min(slices, n))).withColumnRenamed("id", "_pos")
        return spread.join(F.broadcast(local), "_pos").drop("_pos")
    import numpy as np

    _check_tasks(np.asarray(tasks, np.int64), n, slices)
    offsets = pa.array(np.searchsorted(np.asarray(tasks), np.arange(slices + 1), side="left"), pa.int32())
    grouped = pa.table(
        [pa.array(range(slices), pa.int64())]
        + [pa.ListArray.from_arrays(offsets, col.combine_chunks()) for col in table.columns],
        names=["_pos"] + table.column_names,
    )
    local = spark.createDataFrame(grouped, from_arrow_schema(grouped.schema))
    spread = spark.range(0, slices, 1, slices).withColumnRenamed("id", "_pos")
    return spread.join(F.broadcast(local), "_pos").select(
        F.inline(F.arrays_zip(*[F.col(c) for c in table.column_names]))
    )


def _check_tasks(tasks, n: int, slices: int) -> None:
    """``tasks`` (numpy int64) must number the ``n`` rows' runs 0..slices-1, in order, every run used."""
    import numpy as np

    steps = np.diff(tasks)
    if len(tasks) != n or (n and (tasks[0] != 0 or tasks[-1] != slices - 1 or np.any((steps < 0) | (steps > 1)))):
        raise ValueError(f"task_rows: tasks must number {n} rows' runs 0..{slices - 1} in order")


CLOSURE_TASKS_BYTES = 1 << 20  # a task list up to this size travels in the function's closure (map_tasks)


def map_tasks(spark, table, fn, out_schema, slices: int, tasks: list[int] | None = None):
    """``task_rows(spark, table, slices, tasks).mapInArrow(fn, out_schema)``, cheaper for a small task list:
    up to ``CLOSURE_TASKS_BYTES`` of Arrow the rows travel pickled in the function's closure and the tasks are
    ``spark.range``'s partitions, each calling ``fn`` on its own rows. No local relation to broadcast and join:
    ~0.15 s less per job on two cores, which a stage of two short jobs (``write``) feels."""
    import numpy as np
    import pyarrow as pa

    if table.nbytes > CLOSURE_TASKS_BYTES:
        return task_rows(spark, table, slices, tasks).mapInArrow(fn, out_schema)
    n = table.num_rows
    slices = max(1, min(slices, n)) if tasks is None else slices
    owner = np.asarray(tasks if tasks is not None else np.arange(n) * slices // max(n, 1), np.int64)
    _check_tasks(owner, n, slices)
    bounds = np.searchsorted(owner, np.arange(slices + 1), side="left").tolist()
    # each task's rows as Arrow IPC bytes: a pickled slice would carry the whole table's buffers
    pieces = []
    for t in range(slices):
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as w:
            w.write_table(table.slice(bounds[t], bounds[t + 1] - bounds[t]))
        pieces.append(sink.getvalue().to_pybytes())

    def run(batches: Iterator[Any]) -> Iterator[Any]:
        import pyarrow as pa

        mine = [i for b in batches for i in b.column("id").to_pylist()]
        yield from fn(b for i in mine for b in pa.ipc.open_stream(pieces[i]).read_all().to_batches())

    return spark.range(0, slices, 1, slices).mapInArrow(run, out_schema)


def iter_row_groups(batches: Iterator[Any], arrow) -> Iterator[tuple[Any, Any]]:
    """Inside ``mapInArrow`` over ``row_groups``: (task row, table) for each row group, the table with the columns
    of the pyarrow schema ``arrow`` (cast to its types; a column a file lacks is null, as Spark's reader does).
    The task row is a dict of the row's fields (path, row_group, ordinal)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    opened: dict[str, Any] = {}  # the current file: (handle, ParquetFile); row groups of a file come in a run
    try:
        for batch in batches:
            for row in batch.to_pylist():
                path, k = row["path"], row["row_group"]
                if path not in opened:
                    for handle, _ in opened.values():
                        handle.close()
                    fs, inner = files.filesystem(path)
                    handle = fs.open_input_file(inner)
                    opened = {path: (handle, pq.ParquetFile(handle))}
                pf = opened[path][1]
                present = set(pf.schema_arrow.names)
                table = pf.read_row_group(k, columns=[n for n in arrow.names if n in present])
                yield (
                    row,
                    pa.table(
                        [
                            table.column(f.name).cast(f.type) if f.name in present else pa.nulls(table.num_rows, f.type)
                            for f in arrow
                        ],
                        schema=arrow,
                    ),
                )
    finally:
        for handle, _ in opened.values():
            handle.close()


def where_in(column: str, values: list[str]):
    """A ``where`` for :func:`read_row_groups`: the rows whose ``column`` is one of ``values`` (e.g. the parts a
    stage reads)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    wanted = pa.array(values, pa.string())

    def keep(table):
        return table.filter(pc.is_in(table.column(column), value_set=wanted))

    return keep


def read_row_groups(batches: Iterator[Any], arrow, batch_rows: int, where=None) -> Iterator[Any]:
    """Inside ``mapInArrow`` over ``row_groups``: the rows of each (path, row_group) as :func:`iter_row_groups`
    reads them, in batches of at most ``batch_rows``; ``where`` (a function of a row group's table, returning a
    table) filters each row group before it is cut into batches."""
    for _, table in iter_row_groups(batches, arrow):
        if where is not None:
            table = where(table)
        yield from table.to_batches(max_chunksize=batch_rows)
