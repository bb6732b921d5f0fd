"""The shard writer's pure part: row groups cut by bytes, identical files for any batching."""

import hashlib

import pyarrow as pa
import pyarrow.parquet as pq

from corpus import schema
from corpus.config import WriteSection
from corpus.write.stage import shard_count
from corpus.write.writer import ShardWriter


def _rows(n):
    return [
        {
            "id": f"{i:032x}",
            "part": "text" if i % 3 else "code",
            "source": "s",
            "text": ("word " * (50 + i)),
            "metadata": "{}",
            "token_count": 50 + i,
        }
        for i in range(n)
    ]


def test_shards_are_identical_for_any_batching(tmp_path):
    """ShardWriter: row groups cut by text bytes wherever the rows arrive in pieces, so the file's bytes (and its
    SHA-256, hashed on the way out) depend only on the rows."""
    cfg = WriteSection(row_group_bytes=2000)
    table = pa.Table.from_pylist(_rows(60), schema=schema.document().arrow)
    digests = []
    for size in (1, 7, 1000):
        path = tmp_path / f"b{size}.parquet"
        writer = ShardWriter(str(path), cfg)
        for start in range(0, table.num_rows, size):
            writer.add(table.slice(start, size))
        nbytes, digest = writer.close()
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest and path.stat().st_size == nbytes
        assert writer.rows == 60 and sum(writer.tokens.values()) == sum(50 + i for i in range(60))
        assert writer.parts == {"text": 40, "code": 20}
        f = pq.ParquetFile(path)
        assert f.metadata.num_rows == 60 and f.metadata.num_row_groups > 1
        assert f.schema_arrow.equals(schema.document().arrow, check_metadata=False)
        schema.validate_table(f.read(), schema.document())
        digests.append(digest)
    # add_ordered: the same rows given shuffled, with the permutation that puts them back in order
    shuffled = table.take(pa.array([(7 * i) % 60 for i in range(60)]))
    writer = ShardWriter(str(tmp_path / "ordered.parquet"), cfg)
    writer.add_ordered(shuffled, pa.compute.sort_indices(shuffled, [("token_count", "ascending")]))
    digests.append(writer.close()[1])
    assert writer.rows == 60 and writer.parts == {"text": 40, "code": 20}
    assert len(set(digests)) == 1


def test_shard_count():
    assert shard_count(0, 0, 100) == 0
    assert shard_count(1000, 10, 100) == 10
    assert shard_count(1000, 3, 100) == 3  # never more shards than rows
    assert shard_count(50, 10, 100) == 1


def test_shard_ranges_are_equal_and_cover_every_key():
    import numpy as np

    from corpus.write.shuffle import shard_of

    rng = np.random.default_rng(7)
    keys = rng.integers(0, 2**64 - 1, size=200_000, dtype=np.uint64, endpoint=True)
    for n in (1, 3, 64):
        shards = shard_of(keys, n)
        counts = np.bincount(shards.astype(np.int64), minlength=n)
        assert len(counts) == n and counts.sum() == len(keys)
        assert counts.min() > 0.9 * len(keys) / n and counts.max() < 1.1 * len(keys) / n
        edges = np.array([0, 2**63, 2**64 - 1], np.uint64)
        assert shard_of(edges, n).tolist() == [0, n // 2, n - 1]
        assert np.all(np.diff(shard_of(np.sort(keys), n).astype(np.int64)) >= 0)  # ranges: monotone in the key


def test_copies_of_a_document_get_distinct_keys():
    import numpy as np

    from corpus.mix.stage import seeded_words
    from corpus.write.shuffle import row_keys

    ids = [f"{i:032x}" for i in range(5000)]
    words = seeded_words(42, "stage1", ids)
    keys = np.stack([row_keys(words, np.full(len(ids), c)) for c in (1, 2, 3)])
    assert len(set(keys.ravel().tolist())) == keys.size
    assert np.array_equal(keys[0], row_keys(seeded_words(42, "stage1", ids), np.ones(len(ids), np.int64)))
    assert not np.array_equal(keys[0], row_keys(seeded_words(43, "stage1", ids), np.ones(len(ids), np.int64)))
    # the top bit is a fair coin: the keys spread over the whole range
    assert 0.47 < float((keys >> np.uint64(63)).mean()) < 0.53


def _stdlib_documents(n: int) -> pa.Table:
    """Real documents: standard-library sources as code and their docstrings' modules as text."""
    import hashlib as h
    import os
    import sysconfig

    root = sysconfig.get_paths()["stdlib"]
    names = sorted(f for f in os.listdir(root) if f.endswith(".py"))[:n]
    rows = []
    for i, name in enumerate(names):
        with open(os.path.join(root, name), encoding="utf-8", errors="replace") as f:
            text = f.read()
        rows.append(
            {
                "id": h.sha256(text.encode()).hexdigest()[:32],
                "part": "code" if i % 3 else "text",
                "source": "stdlib",
                "url": name,
                "text": text,
                "token_count": len(text) // 4,
                "lang_score": 0.5 + (i % 10) / 20,
                "agent_score": None,
                "metadata": "{}",
            }
        )
    return pa.Table.from_pylist(rows, schema=schema.document().arrow)


def _scatter_gather(tmp_path, monkeypatch, docs_dir, plans, cuts, compression=None):
    """The write stage's two task functions run in this process, with the row groups cut into tasks at
    ``cuts``; returns {(output, shard): sha256} and the bin rows."""
    import os

    import pyspark

    from corpus.write import shuffle
    from corpus.write.stage import RESULT_SCHEMA

    files = sorted(str(p) for p in docs_dir.glob("*.parquet"))
    entries = [(f, k) for f in files for k in range(pq.ParquetFile(f).num_row_groups)]
    scratch = tmp_path / "scratch"
    scratch.mkdir(parents=True)
    scattered = []
    for task, (start, end) in enumerate(zip(cuts[:-1], cuts[1:])):

        class Task:
            def partitionId(self, task=task):
                return task

            def attemptNumber(self):
                return 0

        monkeypatch.setattr(pyspark.TaskContext, "get", staticmethod(lambda: Task()))
        listing = pa.record_batch(
            {
                "path": [e[0] for e in entries[start:end]],
                "row_group": [e[1] for e in entries[start:end]],
                "ordinal": list(range(start, end)),
            }
        )
        fn = shuffle.scatter_fn(plans, 42, str(scratch), compression, flush_bytes=50_000)
        scattered += [r for b in fn(iter([listing])) for r in b.to_pylist()]
    out = {}
    out_dirs = {p.name: str(tmp_path / p.name) for p in plans}
    for d in out_dirs.values():
        os.makedirs(d, exist_ok=True)
    routed = [r for r in scattered if r["output"] is not None]
    for key in sorted({(r["output"], r["shard"]) for r in routed}):
        mine = [r for r in routed if (r["output"], r["shard"]) == key]
        rows = pa.record_batch(
            {
                "output": [key[0]] * len(mine),
                "shard": [key[1]] * len(mine),
                "path": [r["path"] for r in mine],
                "batches": [r["batches"] for r in mine],
            }
        )
        for b in shuffle.gather_fn(out_dirs, "t", WriteSection(row_group_bytes=100_000), RESULT_SCHEMA)(iter([rows])):
            for r in b.to_pylist():
                out[(r["output"], r["shard"])] = (r["sha256"], r["rows"])
    return out, [b for r in scattered if r["output"] is None for b in r["bins"]]


def test_scatter_and_gather_write_the_same_shards_for_any_task_cut(tmp_path, monkeypatch):
    """The task-side shuffle on real documents (standard-library sources): one task or a task per row group
    (and lz4 scratch files) give byte-identical shards; every document appears as many times as the mix rule says
    (recomputed here
    from the rule's definition: 52 bits of the hex digest over 16^13); the bins count every document once."""
    import hashlib as h

    from corpus.write import shuffle

    docs = _stdlib_documents(150)
    docs_dir = tmp_path / "docs"
    docs_dir.mkdir()
    pq.write_table(docs.slice(0, 90), docs_dir / "a.parquet", row_group_size=20)
    pq.write_table(docs.slice(90), docs_dir / "b.parquet", row_group_size=25)
    plans = [
        shuffle.OutputPlan("mixed", 3, {"code": 1, "text": 2}, {"code": 0.5, "text": 0.25}),
        shuffle.OutputPlan("all", 2),
    ]
    n_groups = 5 + 3
    one, bins_one = _scatter_gather(tmp_path / "one", monkeypatch, docs_dir, plans, [0, n_groups])
    many, bins_many = _scatter_gather(
        tmp_path / "many", monkeypatch, docs_dir, plans, list(range(n_groups + 1)), compression="lz4"
    )
    assert one == many and set(one) == {("mixed", 0), ("mixed", 1), ("mixed", 2), ("all", 0), ("all", 1)}
    expected = 0
    for row in docs.to_pylist():
        u = int(h.sha256(f"42:mixed:{row['id']}".encode()).hexdigest()[:13], 16) / 16**13
        expected += {"code": 1, "text": 2}[row["part"]] + (u < {"code": 0.5, "text": 0.25}[row["part"]])
    assert sum(n for (o, _), (_, n) in one.items() if o == "mixed") == expected
    assert sum(n for (o, _), (_, n) in one.items() if o == "all") == docs.num_rows
    written = pa.concat_tables([pq.read_table(tmp_path / "one" / "all" / f"t-all-0000{s}.parquet") for s in (0, 1)])
    assert sorted(written.column("id").to_pylist()) == sorted(docs.column("id").to_pylist())
    total, hists = shuffle.histograms(bins_one)
    assert total == docs.num_rows == shuffle.histograms(bins_many)[0]
    assert sum(hists["lang_score"].values()) == docs.num_rows and hists["agent_score"] == {}
    assert sum(sum(v.values()) for v in hists["tokens_log2"].values()) == docs.num_rows
