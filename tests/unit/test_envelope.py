"""The envelope split column-wise, and the Parquet file a task writes itself (no Spark)."""

import json
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from corpus import schema
from corpus.spark.datasets import TaskFile
from corpus.spark.envelope import Emitter, split_batch


def _mixed_batch() -> pa.RecordBatch:
    out = Emitter("ingest-web")
    out.doc(id="d1", part="text", source="s", url="http://a/1", text="first text", metadata="{}", title="T")
    out.reject("not_html", "binary payload", location="f.warc.gz@10", source="s", url="http://a/2")
    out.count("records_in", 2)
    out.doc(id="d2", part="code", source="s", text="second", metadata='{"k": 1}')
    out.reject("exact_duplicate", None, duplicate_of="d1", id="d3", source="s", text="first text", metadata="{}")
    return out.batch()


def test_split_batch_gives_the_datasets_schemas_and_counters():
    docs, rejects, counters = split_batch(_mixed_batch(), "ingest-web")
    assert docs.schema == schema.document().arrow and rejects.schema == schema.rejects().arrow
    assert docs.column("id").to_pylist() == ["d1", "d2"] and docs.column("title").to_pylist() == ["T", None]
    rows = rejects.to_pylist()
    assert [(r["stage"], r["reason"], r["detail"], r["location"], r["duplicate_of"]) for r in rows] == [
        ("ingest-web", "not_html", "binary payload", "f.warc.gz@10", None),
        ("ingest-web", "exact_duplicate", None, None, "d1"),
    ]
    assert rows[0]["url"] == "http://a/2" and rows[1]["text"] == "first text"
    assert counters == {"records_in": 2}


def test_split_batch_refuses_side_rows_it_was_not_told_of_and_types_the_others():
    from corpus import schema
    from corpus.spark.envelope import side_batch

    out = Emitter("ingest-apis")
    out.doc(id="d1", part="tool_doc", source="s", text="a tool", metadata="{}")
    out.side("tool", json.dumps({"id": "t1", "provider": "aws", "operation_id": "ListQueues", "ignored": 1}))
    out.side("tool", json.dumps({"id": "t2", "provider": "aws", "operation_id": "SendMessage"}))
    env = out.batch()
    with pytest.raises(ValueError, match=r"side rows of kinds \['tool'\] have no dataset"):
        split_batch(env, "ingest-apis")
    docs, rejects, _ = split_batch(env, "ingest-apis", ("tool",))
    assert docs.column("id").to_pylist() == ["d1"] and rejects.num_rows == 0
    tools = side_batch(env, "tool", "tool_doc")
    assert tools.schema == schema.load("tool_doc").arrow
    assert [(r["id"], r["operation_id"]) for r in tools.to_pylist()] == [("t1", "ListQueues"), ("t2", "SendMessage")]


def test_task_file_groups_batches_and_appears_only_when_closed(tmp_path):
    arrow = pa.schema([("n", pa.int64())])
    f = TaskFile(str(tmp_path), 7, arrow, group_bytes=8 * 100)  # 100 int64 rows per row group
    for start in range(0, 1000, 10):
        f.write(pa.record_batch([pa.array(range(start, start + 10), pa.int64())], schema=arrow))
    assert not [n for n in os.listdir(tmp_path) if not n.startswith(".")], "visible before close"
    assert f.close() == 1000
    assert os.listdir(tmp_path) == ["part-00007.zstd.parquet"]
    meta = pq.ParquetFile(tmp_path / "part-00007.zstd.parquet").metadata
    assert meta.num_row_groups == 10 and meta.num_rows == 1000
    assert pq.read_table(tmp_path).column("n").to_pylist() == list(range(1000))


def test_task_file_abort_and_empty_leave_nothing(tmp_path):
    arrow = pa.schema([("n", pa.int64())])
    f = TaskFile(str(tmp_path), 0, arrow, group_bytes=1)
    f.write(pa.record_batch([pa.array([1, 2], pa.int64())], schema=arrow))
    f.abort()
    assert os.listdir(tmp_path) == []
    empty = TaskFile(str(tmp_path), 1, arrow)
    empty.write(pa.record_batch([pa.array([], pa.int64())], schema=arrow))
    assert empty.close() == 0 and os.listdir(tmp_path) == []


def test_balanced_cuts_make_consecutive_runs_of_about_equal_size():
    """Row groups cut into tasks: consecutive runs, every task used, none far above an equal share (at most one
    item more than the share), whatever the order of large and small items."""
    import random

    from corpus.spark.datasets import balanced_cuts

    rng = random.Random(5)
    for _ in range(200):
        n = rng.randint(1, 80)
        sizes = [rng.choice([1, 2, 5, 40, 300]) for _ in range(n)]
        slices = rng.randint(1, n)
        tasks = balanced_cuts(sizes, slices)
        assert tasks[0] == 0 and tasks[-1] == slices - 1 and len(tasks) == n
        assert all(b - a in (0, 1) for a, b in zip(tasks, tasks[1:])), "consecutive runs, none empty"
        per = [sum(s for s, t in zip(sizes, tasks) if t == k) for k in range(slices)]
        assert max(per) <= sum(sizes) / slices + 2 * max(sizes)
    assert balanced_cuts([21, 18, 12, 7, 5, 8, 10, 7], 4) == [0, 1, 2, 2, 2, 3, 3, 3]  # 21, 18, 24, 25
    assert balanced_cuts([100, 1, 1, 1], 3) == [0, 1, 2, 2], "a large first item is a task of its own"
