"""Adversarial inputs, generated at test (or bench) time and never committed: decompression bombs, deep JSON,
damaged Parquet pages, WARC records that hide or swallow others, YAML alias bombs. Each writer streams what it
writes, so building a multi-GiB bomb costs time, not memory.

Used by the unit tests (small sizes) and by ``bench/adversarial.py`` (the sizes of issue #22: a 3 GiB line, a 2 GiB
run without a newline).
"""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import sys
import uuid
import zlib
from pathlib import Path

CHUNK = 16 << 20


def deep_json(depth: int) -> str:
    """An array nested ``depth`` deep."""
    return "[" * depth + "]" * depth


def gz_long_line(path: Path, line_bytes: int, before: list[dict] = (), after: list[dict] = ()) -> Path:
    """A ``.jsonl.gz`` whose middle line is one JSON record of ``line_bytes`` bytes (``{"text": "aaa…"}``), with
    ordinary records before and after it."""
    with gzip.open(path, "wb", compresslevel=1) as f:
        for rec in before:
            f.write(json.dumps(rec).encode() + b"\n")
        head = b'{"text": "'
        f.write(head)
        left = line_bytes - len(head) - 2
        block = b"a" * CHUNK
        while left > 0:
            f.write(block[: min(left, CHUNK)])
            left -= CHUNK
        f.write(b'"}\n')
        for rec in after:
            f.write(json.dumps(rec).encode() + b"\n")
    return path


def damaged_parquet(path: Path, good_texts: list[str], bad_texts: list[str]) -> Path:
    """A Parquet file of two row groups whose footer is valid but whose first row group's page header is
    overwritten with garbage (the reader fails on that row group only)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    with pq.ParquetWriter(path, pa.schema([("text", pa.string())]), compression="zstd") as w:
        w.write_table(pa.table({"text": bad_texts}))
        w.write_table(pa.table({"text": good_texts}))
    meta = pq.ParquetFile(path).metadata
    col = meta.row_group(0).column(0)
    offset = col.dictionary_page_offset or col.data_page_offset
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(b"\xff\xfe\x00\x13" * 8)
    return path


def warc_record(url: str, body: bytes, content_length: int | None = None) -> bytes:
    """One uncompressed WARC response record; ``content_length`` overrides the true length (to make a liar)."""
    http = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    n = len(http) if content_length is None else content_length
    head = (
        f"WARC/1.0\r\nWARC-Type: response\r\nWARC-Target-URI: {url}\r\n"
        f"WARC-Date: 2026-01-01T00:00:00Z\r\nWARC-Record-ID: <urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, url)}>\r\n"
        f"Content-Type: application/http; msgtype=response\r\nContent-Length: {n}\r\n\r\n"
    ).encode()
    return head + http + b"\r\n\r\n"


def page(title: str) -> bytes:
    return (
        f"<html><head><title>{title}</title></head><body><article><h1>{title}</h1><p>The quick brown fox "
        f"jumps over the lazy dog near {title}, and then it runs back to the forest where it lives.</p>"
        f"</article></body></html>"
    ).encode()


def warc_overrun(path: Path) -> Path:
    """An uncompressed WARC of three records whose first declares a Content-Length that swallows the second:
    readers that trust it lose record 2 and read its headers as page text."""
    r2 = warc_record("http://t/two", page("Two"))
    r1_true = warc_record("http://t/one", page("One"))
    body_len = len(r1_true.split(b"\r\n\r\n", 1)[1]) - 4  # the true HTTP block length
    liar = warc_record("http://t/one", page("One"), content_length=body_len + 4 + len(r2))
    liar = liar[:-4]  # the record's own trailing CRLF CRLF now lies inside the declared length, as r2 does
    path.write_bytes(liar + b"\r\n\r\n" + r2 + warc_record("http://t/three", page("Three")))
    return path


def warc_gz_no_newline(path: Path, junk_bytes: int) -> Path:
    """A ``.warc.gz``: a good record's gzip member followed, inside that same member, by ``junk_bytes`` without a
    newline; then a member with another good record."""

    def member(data_chunks) -> bytes:
        buf = io.BytesIO()
        with gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=1) as g:
            for c in data_chunks:
                g.write(c)
        return buf.getvalue()

    with open(path, "wb") as f:
        comp = zlib.compressobj(1, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        f.write(comp.compress(warc_record("http://t/first", page("First"))))
        block = b"x" * CHUNK
        left = junk_bytes
        while left > 0:
            f.write(comp.compress(block[: min(left, CHUNK)]))
            left -= CHUNK
        f.write(comp.flush())
        f.write(member([warc_record("http://t/after", page("After"))]))
    return path


def yaml_laughs(levels: int = 9, width: int = 9) -> str:
    """An OpenAPI 3 YAML spec whose one operation's example is a billion-laughs alias bomb: ``width ** levels``
    strings once its aliases are expanded (9 ** 9 = 387,420,489), from a few hundred bytes."""
    lines = ['x0: &x0 "lol"']
    for i in range(1, levels + 1):
        lines.append(f"x{i}: &x{i} [" + ", ".join([f"*x{i - 1}"] * width) + "]")
    anchors = "\n".join("  " + line for line in lines)
    return f"""openapi: 3.0.0
info:
  title: Laughs
  version: "1"
x-anchors:
{anchors}
paths:
  /lol:
    get:
      operationId: getLol
      description: Returns laughs.
      responses:
        "200":
          description: OK
          content:
            application/json:
              example: *x{levels}
"""


def peak_rss_mb(code: str, env: dict | None = None) -> tuple[float, str]:
    """Run ``code`` in a fresh Python (this interpreter) and return its peak resident memory in MB and stdout."""
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, **(env or {})},
        cwd=Path(__file__).resolve().parents[1],
    )
    if proc.returncode != 0:
        raise RuntimeError(f"child failed ({proc.returncode}): {proc.stderr[-2000:]}")
    last = proc.stdout.strip().splitlines()[-1]
    return float(last), proc.stdout


# the child's own peak (VmHWM: this address space since exec). Not getrusage's ru_maxrss: Linux carries the parent's
# peak over fork and exec, so a child of a large pytest process would report the parent's size.
RSS_PRINT = (
    "print(next(int(line.split()[1]) for line in open('/proc/self/status') if line.startswith('VmHWM:')) / 1024)"
)


def wet_file(path: Path, pages: list[tuple[str, str]], gz: bool = True) -> Path:
    """A WET file as Common Crawl writes them: a ``warcinfo`` record, then one ``conversion`` record per page
    (``text/plain`` UTF-8, ``WARC-Refers-To`` the response record it was extracted from), one gzip member each."""
    import hashlib

    from warcio.warcwriter import WARCWriter

    with open(path, "wb") as f:
        w = WARCWriter(f, gzip=gz)
        info = w.create_warcinfo_record(
            path.name,
            {
                "software": "forge-test",
                "isPartOf": "CC-MAIN-2026-49",
                "description": "Wide crawl of the web",
                "format": "WARC file version 1.0",
            },
        )
        w.write_record(info)
        for url, text in pages:
            body = text.encode("utf-8")
            rec = w.create_warc_record(
                url,
                "conversion",
                payload=io.BytesIO(body),
                warc_headers_dict={
                    "WARC-Date": "2026-11-30T12:00:00Z",
                    "Content-Type": "text/plain",
                    "WARC-Refers-To": f"<urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, 'response:' + url)}>",
                    "WARC-Block-Digest": "sha1:" + hashlib.sha1(body).hexdigest(),
                    "WARC-Identified-Content-Language": "eng",
                },
            )
            w.write_record(rec)
    return path
