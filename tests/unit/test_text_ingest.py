"""ingest-text's batch function on real READMEs and every kind of bad record, without Spark."""

import pyarrow as pa
import pytest

from corpus.config import IngestTextSection, InputSpec
from corpus.io.files import InputError
from corpus.spark.envelope import split
from corpus.text.ingest import SPLIT_SCHEMA, plan_splits, read_batch


def _run(inputs, **cfg):
    cfg = IngestTextSection(**cfg)
    splits = plan_splits(inputs, cfg)
    batches = list(read_batch([pa.RecordBatch.from_pylist(splits, schema=SPLIT_SCHEMA)], cfg))
    return split(batches)


def test_jsonl_rows_and_every_bad_record(text_inputs):
    docs, rejects, counts = _run([InputSpec(path=str(text_inputs / "readmes.jsonl"), source="readmes")])
    reasons = sorted(rejects.column("reason").to_pylist())
    assert reasons == sorted(
        [
            "malformed_json",
            "malformed_json",
            "missing_text",
            "bad_text_type",
            "empty_text",
            "invalid_utf8",
            "invalid_utf8",
        ]
    )
    assert docs.num_rows == 20
    assert counts["records_in"] == docs.num_rows + rejects.num_rows and counts["blank_lines"] >= 1
    row = docs.to_pylist()[0]
    assert row["source_id"] and "==" in row["source_id"] and row["source"] == "readmes" and row["part"] == "text"
    assert all("@" in loc for loc in rejects.column("location").to_pylist())


def test_splits_read_every_line_exactly_once(text_inputs):
    whole, _, _ = _run([InputSpec(path=str(text_inputs / "readmes.jsonl"))])
    for split_bytes in (97, 4096, 1 << 16):
        docs, rejects, counts = _run([InputSpec(path=str(text_inputs / "readmes.jsonl"))], split_bytes=split_bytes)
        assert sorted(docs.column("id").to_pylist()) == sorted(whole.column("id").to_pylist())
        assert rejects.num_rows == 7


def test_gzip_jsonl_parquet_and_empty_files(text_inputs):
    docs, rejects, _ = _run(
        [
            InputSpec(path=str(text_inputs / "readmes.jsonl.gz")),
            InputSpec(path=str(text_inputs / "readmes.parquet"), part="code"),
            InputSpec(path=str(text_inputs / "empty.jsonl")),
        ]
    )
    assert docs.num_rows == 10
    assert rejects.column("reason").to_pylist() == ["missing_text"]  # the parquet row with a null text
    assert set(docs.column("part").to_pylist()) == {"text", "code"}


def test_parquet_without_text_column_is_an_error_naming_the_file(tmp_path):
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"body": ["x"]}), tmp_path / "wrong.parquet")
    with pytest.raises(InputError, match="wrong.parquet.*'text'"):
        plan_splits([InputSpec(path=str(tmp_path / "wrong.parquet"))], IngestTextSection())


def test_missing_input_is_an_error_naming_the_path(tmp_path):
    with pytest.raises(InputError, match="nowhere"):
        plan_splits([InputSpec(path=str(tmp_path / "nowhere"))], IngestTextSection())


def test_corrupt_gzip_is_a_reject(tmp_path):
    (tmp_path / "bad.jsonl.gz").write_bytes(b"\x1f\x8b\x08\x00garbage")
    docs, rejects, counts = _run([InputSpec(path=str(tmp_path / "bad.jsonl.gz"))])
    assert docs.num_rows == 0 and rejects.column("reason").to_pylist() == ["corrupt_file"]
    assert counts["records_in"] == 1


def test_a_file_that_is_not_parquet_is_a_reject_naming_it(tmp_path):
    (tmp_path / "fake.parquet").write_bytes(b"this is not a parquet file")
    docs, rejects, counts = _run([InputSpec(path=str(tmp_path / "fake.parquet"))])
    assert docs.num_rows == 0 and counts["records_in"] == 1
    assert rejects.to_pylist()[0]["reason"] == "corrupt_file"
    assert rejects.to_pylist()[0]["location"].endswith("fake.parquet")


# ---------------------------------------------------------------------------------------- adversarial input


def test_deep_json_line_is_a_reject_and_the_file_goes_on(tmp_path):
    from tests.bombs import deep_json

    path = tmp_path / "deep.jsonl"
    path.write_text('{"text": "before"}\n{"text": "x", "meta": ' + deep_json(100_000) + '}\n{"text": "after"}\n')
    docs, rejects, counts = _run([InputSpec(path=str(path))])
    assert sorted(docs.column("text").to_pylist()) == ["after", "before"]
    assert rejects.column("reason").to_pylist() == ["too_deep"]
    assert counts["records_in"] == 3


@pytest.mark.parametrize("compressed", [True, False])
def test_a_line_over_the_limit_is_rejected_and_the_rest_read(tmp_path, compressed):
    from tests.bombs import gz_long_line

    gz = gz_long_line(tmp_path / "bomb.jsonl.gz", 8 << 20, before=[{"text": "first"}], after=[{"text": "last"}])
    path = gz
    if not compressed:
        import gzip

        path = tmp_path / "bomb.jsonl"
        path.write_bytes(gzip.decompress(gz.read_bytes()))
    # 16 KiB of text at most: lines over 6 x 16 KiB + 1 MiB are too large
    docs, rejects, counts = _run([InputSpec(path=str(path))], max_text_bytes=16 << 10, split_bytes=1 << 20)
    assert sorted(docs.column("text").to_pylist()) == ["first", "last"]
    assert rejects.column("reason").to_pylist() == ["too_large"]
    assert f"a line of {(8 << 20) + 1} bytes" in rejects.column("detail")[0].as_py()  # its newline counts
    assert counts["records_in"] == 3


def test_gzip_bomb_line_keeps_memory_bounded(tmp_path):
    """A .jsonl.gz of ~0.5 MB that inflates to one 512 MiB line: read in blocks, rejected, never held whole."""
    from tests.bombs import RSS_PRINT, gz_long_line, peak_rss_mb

    bomb = gz_long_line(tmp_path / "bomb.jsonl.gz", 512 << 20, after=[{"text": "last"}])
    assert bomb.stat().st_size < 4 << 20
    code = f"""
import pyarrow as pa
from corpus.config import IngestTextSection, InputSpec
from corpus.spark.envelope import split
from corpus.text.ingest import SPLIT_SCHEMA, plan_splits, read_batch
cfg = IngestTextSection()
splits = plan_splits([InputSpec(path={str(bomb)!r})], cfg)
docs, rejects, counts = split(list(read_batch([pa.RecordBatch.from_pylist(splits, schema=SPLIT_SCHEMA)], cfg)))
print(docs.num_rows, rejects.column("reason").to_pylist())
{RSS_PRINT}
"""
    peak, out = peak_rss_mb(code)
    assert "1 ['too_large']" in out
    assert peak < 400, f"peak RSS {peak:.0f} MB for a 512 MiB line"


def test_damaged_parquet_pages_reject_the_row_group_and_keep_the_rest(tmp_path):
    from tests.bombs import damaged_parquet

    path = damaged_parquet(tmp_path / "damaged.parquet", ["good one", "good two"], ["lost one", "lost two"])
    docs, rejects, counts = _run([InputSpec(path=str(path))])
    assert sorted(docs.column("text").to_pylist()) == ["good one", "good two"]
    rej = rejects.to_pylist()
    assert [r["reason"] for r in rej] == ["corrupt_file"] and rej[0]["location"].endswith("damaged.parquet#rg0")
    assert counts["records_in"] == docs.num_rows + rejects.num_rows
