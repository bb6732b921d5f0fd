"""The shard writer's pure part: row groups cut by bytes, identical files for any batching."""

import hashlib

import pyarrow as pa
import pyarrow.parquet as pq

from corpus import schema
from corpus.config import WriteSection
from corpus.output.shards import shard_count, write_partition


def _rows(n):
    return [{"id": f"{i:032x}", "part": "text" if i % 3 else "code", "source": "s", "text": ("word " * (50 + i)),
             "metadata": "{}", "token_count": 50 + i, "_shard": i % 2, "_key": f"{i:064x}"} for i in range(n)]


def _batches(rows, size):
    arrow = pa.schema([f.with_nullable(True) for f in schema.document().arrow]
                      + [pa.field("_shard", pa.int64()), pa.field("_key", pa.string())])
    rows = sorted(rows, key=lambda r: (r["_shard"], r["_key"]))
    return [pa.RecordBatch.from_pylist(rows[i:i + size], schema=arrow) for i in range(0, len(rows), size)]


def test_shards_are_identical_for_any_batching(tmp_path):
    cfg = WriteSection(row_group_bytes=2000)
    digests = []
    for size in (1, 7, 1000):
        out = tmp_path / f"b{size}"
        out.mkdir()
        results = [r for b in write_partition(iter(_batches(_rows(60), size)), str(out), "t", "stage1", cfg)
                   for r in b.to_pylist()]
        assert [r["shard"] for r in results] == [0, 1]
        assert [r["path"] for r in results] == ["t-stage1-00000.parquet", "t-stage1-00001.parquet"]
        assert sum(n for r in results for _, n in r["tokens_by_part"]) == sum(50 + i for i in range(60))
        digests.append([r["sha256"] for r in results])
        for r in results:
            assert hashlib.sha256((out / r["path"]).read_bytes()).hexdigest() == r["sha256"]
            f = pq.ParquetFile(out / r["path"])
            assert f.metadata.num_rows == r["rows"] and f.metadata.num_row_groups > 1
            assert f.schema_arrow.equals(schema.document().arrow, check_metadata=False)
            schema.validate_table(f.read(), schema.document())
    assert digests[0] == digests[1] == digests[2]


def test_shard_count():
    assert shard_count(0, 0, 100) == 0
    assert shard_count(1000, 10, 100) == 10
    assert shard_count(1000, 3, 100) == 3  # never more shards than rows
    assert shard_count(50, 10, 100) == 1
