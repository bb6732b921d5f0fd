"""Shared fixtures: real sample data built from installed packages, generated bad inputs, one local[2] session."""

from __future__ import annotations

import gzip
import json
import os
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from corpus import packages, samples, schema
from corpus.web.warc import write_warc

HTML = "text/html; charset=utf-8"


@pytest.fixture(scope="session")
def sample_dir(tmp_path_factory) -> Path:
    """Real inputs: pydoc pages of 40 standard-library modules (WARC.gz + .html) and package READMEs."""
    out = tmp_path_factory.mktemp("samples")
    samples.build(str(out), modules=40)
    return out


@pytest.fixture(scope="session")
def pydoc_pages() -> dict[str, str]:
    """A few real pydoc pages, by module name."""
    return {m: samples.pydoc_page(m) for m in ("json", "csv", "textwrap", "shutil", "argparse", "string")}


def _page(title: str, body: str) -> bytes:
    return (
        f"<html><head><title>{title}</title></head><body><article><h1>{title}</h1>{body}</article></body></html>"
    ).encode()


PROSE = (
    "<p>The quick brown fox jumps over the lazy dog, and then it runs back to the forest where it lives "
    "with the rest of its family. It is a story that has been told many times to children.</p>"
)


@pytest.fixture(scope="session")
def bad_web_dir(tmp_path_factory) -> Path:
    """One file per kind of bad web input the stage must survive, plus one good page to show the job goes on.

    Expected rejects (reason: count): empty_file 2, corrupt_file 2, truncated_record 1, corrupt_record 1,
    not_html 3, too_large 2, bad_encoding 1, http_status 0; kept: good pages (see test)."""
    d = tmp_path_factory.mktemp("bad_web")
    good = [("http://t/good", _page("Good", PROSE * 3), HTML)]
    write_warc(str(d / "good.warc.gz"), good)
    # empty files
    (d / "empty.warc.gz").write_bytes(b"")
    (d / "empty.html").write_bytes(b"")
    # not a WARC at all / random bytes
    (d / "notwarc.warc.gz").write_bytes(b"<html><body>I am not a WARC</body></html>")
    (d / "random.warc").write_bytes(bytes(range(256)) * 8)
    # truncated: three pages, last gzip member cut off
    write_warc(str(d / "_full.warc.gz"), [(f"http://t/trunc{i}", _page(f"T{i}", PROSE * 2), HTML) for i in range(3)])
    full = (d / "_full.warc.gz").read_bytes()
    (d / "truncated.warc.gz").write_bytes(full[:-150])
    # corrupt gzip member in the middle, records after it must still be read
    data = bytearray(full)
    mid = len(data) // 2
    data[mid : mid + 12] = b"\x00" * 12
    (d / "corrupt-middle.warc.gz").write_bytes(bytes(data))
    (d / "_full.warc.gz").unlink()
    # non-HTML payloads: an image with its content type, a PDF mislabelled as HTML, a binary .html file
    write_warc(
        str(d / "nonhtml.warc.gz"),
        [
            ("http://t/img.png", b"\x89PNG\r\n\x1a\n" + bytes(200), "image/png"),
            ("http://t/doc.pdf", b"%PDF-1.4\n" + bytes(200), "text/html"),
        ],
    )
    (d / "binary.html").write_bytes(b"\x00\x01\x02" * 100)
    # encodings: latin-1 declared in <meta> (kept, decoded right), bogus charset label (kept), mostly-garbage
    latin = _page("Caf\xe9", PROSE + "<p>Un caf\xe9 cr\xe8me, s'il vous pla\xeet, et une cr\xeape.</p>")
    latin = latin.replace(b"<head>", b'<head><meta charset="iso-8859-1">').decode("utf-8").encode("latin-1")
    (d / "latin1.html").write_bytes(latin)
    odd = _page("Odd", PROSE).replace(b"<head>", b'<head><meta charset="x-no-such-charset">')
    write_warc(str(d / "odd-charset.warc.gz"), [("http://t/odd", odd, "text/html; charset=x-no-such-charset")])
    (d / "invalid-utf8.html").write_bytes(_page("Broken", PROSE) + b"\xff\xfe\xfa" + _page("More", PROSE))
    # declared UTF-8 but mostly invalid bytes: bad_encoding
    (d / "garbage.html").write_bytes(
        b'<html><head><meta charset="utf-8"></head><body><p>' + bytes(range(128, 256)) * 40 + b"</p></body></html>"
    )
    # a 50 MB page, in a WARC and as a file (written sparsely: no 50 MB in memory)
    big = b"<html><body>" + b"<p>word word word.</p>" * (50 * 1024 * 1024 // 22) + b"</body></html>"
    write_warc(str(d / "big.warc.gz"), [("http://t/big", big, "text/html")])
    (d / "big.html").write_bytes(big)
    del big
    return d


@pytest.fixture(scope="session")
def text_inputs(tmp_path_factory) -> Path:
    """JSONL and Parquet inputs with real README texts and every kind of bad record."""
    d = tmp_path_factory.mktemp("text_in")
    readmes = packages.readmes()[:20]
    assert len(readmes) >= 10, "installed packages should carry READMEs"
    lines = [json.dumps(r).encode() for r in readmes]
    lines += [
        b'{"id": "bad-json", "text": "unterminated',  # malformed_json
        b'["an", "array"]',  # malformed_json (not an object)
        b'{"id": "no-text"}',  # missing_text
        b'{"id": "num", "text": 42}',  # bad_text_type
        b'{"id": "blank", "text": "   "}',  # empty_text
        b'{"id": "utf8", "text": "caf\xe9"}',  # invalid_utf8 (raw latin-1 byte)
        b'{"id": "surrogate", "text": "bad \\ud800 half"}',  # invalid_utf8 (unpaired surrogate)
        b"",  # blank line: counted, not a record
    ]
    (d / "readmes.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    with gzip.open(d / "readmes.jsonl.gz", "wb") as f:
        f.write(b"\n".join(json.dumps(r).encode() for r in readmes[:5]) + b"\n")
    (d / "empty.jsonl").write_bytes(b"")
    import pyarrow as pa

    pq.write_table(
        pa.table(
            {"text": [r["text"] for r in readmes[:5]] + [None], "id": [r["id"] for r in readmes[:5]] + ["null-text"]}
        ),
        d / "readmes.parquet",
    )
    return d


@pytest.fixture(scope="session")
def spark():
    """The one local[2] session of the test run."""
    from corpus.config import SparkSection
    from corpus.spark.session import build_session

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    session = build_session(
        SparkSection(master="local[2]", driver_memory="2g", progress=False, log_level="ERROR", shuffle_partitions=4)
    )
    yield session
    session.stop()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """A SeaweedFS S3 server on 127.0.0.1 with buckets `inputs` and `forge`; the driver gets its endpoint and keys
    through the standard AWS variables. No Spark: the corpus.io.files tests use it alone."""
    from corpus.io import files
    from tests.s3server import S3Server

    server = S3Server(tmp_path_factory.mktemp("weed"))
    for bucket in ("inputs", "forge"):
        server.client().create_bucket(Bucket=bucket)
    mp = pytest.MonkeyPatch()
    for k, v in server.env().items():
        mp.setenv(k, v)
    files.reset_s3()
    yield server
    mp.undo()
    files.reset_s3()
    server.stop()


@pytest.fixture(scope="session")
def s3(s3_server, spark):
    """The S3 server, with Spark's Python workers given the same variables (through the context's environment,
    as spark.executorEnv.* does on a cluster)."""
    env = spark.sparkContext.environment
    saved = dict(env)
    env.update(s3_server.env())
    yield s3_server
    env.clear()
    env.update(saved)


def assert_stage_output(out: Path, stats: dict | None = None) -> tuple:
    """Validate a committed stage folder against the schemas and the rows-in = out + rejected invariant."""
    assert (out / "_SUCCESS").exists(), f"{out} is not committed"
    stats = stats or json.loads((out / "_stats.json").read_text())
    docs = pq.read_table(str(out / "data"))
    rejects = pq.read_table(str(out / "rejects"))
    schema.validate_table(docs, schema.document(), f"{out}/data")
    schema.validate_table(rejects, schema.rejects(), f"{out}/rejects")
    assert stats["rows_out"] == docs.num_rows
    assert stats["rows_rejected"] == rejects.num_rows
    assert stats["rows_in"] == docs.num_rows + rejects.num_rows
    return docs, rejects, stats
