"""Reading WARCs: good files, and every kind of broken file, each with a located reject."""

import itertools
import uuid
from collections import Counter

from corpus.web.warc import read_html_file, read_warc_file, write_warc

PAGE = b"<html><body><p>" + b"Some words in a paragraph. " * 40 + b"</p></body></html>"


def _read(path, max_bytes=1 << 20):
    counts = Counter()
    pages = list(read_warc_file(str(path), path.stat().st_size, max_bytes, counts))
    return pages, counts


def _pages(n):
    return [(f"http://t/{i}", PAGE.replace(b"Some", b"Page %d" % i), "text/html") for i in range(n)]


def test_reads_every_response_and_counts_other_records(tmp_path):
    p = tmp_path / "a.warc.gz"
    write_warc(str(p), _pages(3))
    pages, counts = _read(p)
    assert [pg.url for pg in pages] == ["http://t/0", "http://t/1", "http://t/2"]
    assert all(pg.reason is None and b"Page" in pg.payload for pg in pages)
    assert counts["warc_records.request"] == 3 and counts["warc_records.response"] == 3
    assert all("@" in pg.location for pg in pages)


def test_uncompressed_warc(tmp_path):
    p = tmp_path / "a.warc"
    write_warc(str(p), _pages(2), gzip=False)
    pages, _ = _read(p)
    assert len(pages) == 2 and all(pg.reason is None for pg in pages)


def test_truncated_final_gzip_member_is_a_reject_not_silence(tmp_path):
    p = tmp_path / "t.warc.gz"
    write_warc(str(p), _pages(3))
    p.write_bytes(p.read_bytes()[:-100])
    pages, _ = _read(p)
    assert [pg.reason for pg in pages] == [None, None, "truncated_record"]


def test_truncated_uncompressed_record(tmp_path):
    p = tmp_path / "t.warc"
    write_warc(str(p), _pages(2), gzip=False)
    p.write_bytes(p.read_bytes()[:-300])
    pages, _ = _read(p)
    assert pages[0].reason is None and pages[-1].reason == "truncated_record"


def test_corrupt_member_in_the_middle_resynchronises(tmp_path):
    p = tmp_path / "c.warc.gz"
    write_warc(str(p), _pages(5))
    data = bytearray(p.read_bytes())
    mid = len(data) // 2
    data[mid : mid + 16] = b"\x00" * 16
    p.write_bytes(bytes(data))
    pages, _ = _read(p)
    reasons = [pg.reason for pg in pages]
    assert "corrupt_record" in reasons
    good_urls = {pg.url for pg in pages if pg.reason is None}
    assert "http://t/0" in good_urls and "http://t/4" in good_urls, "records after the damage must be recovered"
    assert len(good_urls) >= 3


def test_not_a_warc_and_empty_files(tmp_path):
    (tmp_path / "x.warc.gz").write_bytes(b"<html>nope</html>")
    (tmp_path / "e.warc.gz").write_bytes(b"")
    assert [pg.reason for pg in _read(tmp_path / "x.warc.gz")[0]] == ["corrupt_file"]
    assert [pg.reason for pg in _read(tmp_path / "e.warc.gz")[0]] == ["empty_file"]


def test_too_large_record_is_rejected_without_reading_it_all(tmp_path):
    p = tmp_path / "big.warc.gz"
    write_warc(str(p), [("http://t/big", b"<p>" + b"x" * 3_000_000 + b"</p>", "text/html")] + _pages(1))
    pages, _ = _read(p, max_bytes=1_000_000)
    assert [pg.reason for pg in pages] == ["too_large", None]
    assert pages[0].payload is None


def test_html_files(tmp_path):
    (tmp_path / "a.html").write_bytes(PAGE)
    (tmp_path / "e.html").write_bytes(b"")
    assert read_html_file(str(tmp_path / "a.html"), len(PAGE), 1 << 20).payload == PAGE
    assert read_html_file(str(tmp_path / "e.html"), 0, 1 << 20).reason == "empty_file"
    assert read_html_file(str(tmp_path / "a.html"), len(PAGE), 100).reason == "too_large"


def test_damaged_first_member_keeps_the_rest(tmp_path):
    p = tmp_path / "first.warc.gz"
    write_warc(str(p), _pages(3))
    data = bytearray(p.read_bytes())
    data[10:40] = b"\x00" * 30
    p.write_bytes(bytes(data))
    pages, _ = _read(p)
    assert pages[0].reason == "corrupt_record"
    assert {pg.url for pg in pages if pg.reason is None} == {"http://t/0", "http://t/1", "http://t/2"}


def _split_read(p, split):
    size = p.stat().st_size
    out, counts = [], Counter()
    for start in range(0, max(size, 1), split):
        out += list(read_warc_file(str(p), size, 1 << 20, counts, start, min(start + split, size)))
    return out, counts


def _key(pages):
    return sorted((pg.location, pg.reason, pg.url) for pg in pages)


def test_splits_read_every_record_and_report_every_damage_exactly_once(tmp_path):
    import random

    rng = random.Random(7)
    p = tmp_path / "s.warc.gz"
    write_warc(str(p), _pages(12))
    clean = p.read_bytes()
    variants = {"clean": clean, "tail": clean[:-120], "first": b"\x00" * 30 + clean[30:]}
    for i in range(6):  # seeded damage anywhere in the file
        data = bytearray(clean)
        at = rng.randrange(len(data) - 20)
        data[at : at + rng.randrange(4, 40)] = bytes(rng.randrange(256) for _ in range(40))[: len(data[at : at + 40])]
        variants[f"random{i}"] = bytes(data)
    for name, data in variants.items():
        p.write_bytes(data)
        whole, whole_counts = _read(p)
        for split in (97, 700, 1500, 4000, len(data)):
            parts, counts = _split_read(p, split)
            assert _key(parts) == _key(whole), (name, split)
            assert counts == whole_counts, (name, split)
    p.write_bytes(clean)
    assert len([pg for pg in _split_read(p, 500)[0] if pg.reason is None]) == 12


def test_uncompressed_warcs_are_read_whole_by_the_first_split(tmp_path):
    p = tmp_path / "u.warc"
    write_warc(str(p), _pages(4), gzip=False)
    parts, _ = _split_read(p, 300)
    assert [pg.url for pg in parts] == [f"http://t/{i}" for i in range(4)]


# ---------------------------------------------------------------------------------------- adversarial input


def test_content_length_that_swallows_the_next_record_is_caught_and_resynchronised(tmp_path):
    from tests.bombs import warc_overrun

    pages, _ = _read(warc_overrun(tmp_path / "liar.warc"))
    got = [(pg.url, pg.reason) for pg in pages]
    assert got == [("http://t/one", "corrupt_record"), ("http://t/two", None), ("http://t/three", None)]
    assert "runs over the record that starts at byte" in pages[0].detail
    assert b"WARC/1.0" not in pages[1].payload and b"<h1>Two</h1>" in pages[1].payload


def test_damage_in_an_uncompressed_warc_costs_one_record_not_the_rest(tmp_path):
    from tests.bombs import page, warc_record

    broken = warc_record("http://t/bad", page("Bad")).replace(b"Content-Length: ", b"Content-Length: x", 1)
    (tmp_path / "d.warc").write_bytes(
        warc_record("http://t/a", page("A")) + broken + warc_record("http://t/c", page("C"))
    )
    pages, _ = _read(tmp_path / "d.warc")
    # the record with a non-numeric Content-Length, then its unreadable body, each named; the next record read
    assert [(pg.url, pg.reason) for pg in pages] == [
        ("http://t/a", None),
        ("http://t/bad", "corrupt_record"),
        (None, "corrupt_record"),
        ("http://t/c", None),
    ]


def test_a_member_without_newlines_is_too_large_with_bounded_memory(tmp_path):
    """A gzip member: a good record, then 64 MiB without a newline; then a good member. The first and last
    records are kept, the run is `too_large`; the reader never holds the run."""
    from tests.bombs import RSS_PRINT, peak_rss_mb, warc_gz_no_newline

    p = warc_gz_no_newline(tmp_path / "junk.warc.gz", 64 << 20)
    pages, _ = _read(p)
    assert [(pg.url, pg.reason) for pg in pages] == [
        ("http://t/first", None),
        (None, "too_large"),
        ("http://t/after", None),
    ]
    big = warc_gz_no_newline(tmp_path / "junk-big.warc.gz", 768 << 20)
    code = f"""
from collections import Counter
import os
from corpus.web.warc import read_warc_file
p = {str(big)!r}
print([(pg.url, pg.reason) for pg in read_warc_file(p, os.path.getsize(p), 8 << 20, Counter())])
{RSS_PRINT}
"""
    peak, out = peak_rss_mb(code)
    assert "('http://t/after', None)" in out and "too_large" in out
    assert peak < 400, f"peak RSS {peak:.0f} MB for 768 MiB without a newline"


def test_a_header_flood_is_too_large(tmp_path):
    from tests.bombs import page, warc_record

    flood = b"WARC/1.0\r\nWARC-Type: response\r\n" + b"X-Junk: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n" * 60_000
    p = tmp_path / "flood.warc"
    p.write_bytes(warc_record("http://t/a", page("A")) + flood + b"\r\n" + warc_record("http://t/z", page("Z")))
    pages, _ = _read(p)
    assert [(pg.url, pg.reason) for pg in pages] == [("http://t/a", None), (None, "too_large"), ("http://t/z", None)]


def test_wet_conversion_records_are_pages_of_text(tmp_path):
    from tests.bombs import wet_file

    pages = [
        (
            "https://docs.example.org/s3/pagination",
            "How to paginate list_objects_v2\n\nUse a paginator: "
            "client.get_paginator('list_objects_v2') and iterate over its pages.",
        ),
        ("https://news.example.com/a", "The town council met on Tuesday to discuss the new bridge."),
    ]
    for gz in (True, False):
        p = wet_file(tmp_path / ("cc.warc.wet.gz" if gz else "cc.warc.wet"), pages, gz=gz)
        got, counts = _read(p)
        assert [(pg.url, pg.extracted, pg.reason) for pg in got] == [(u, True, None) for u, _ in pages]
        assert got[0].payload.decode() == pages[0][1] and counts["warc_records.warcinfo"] == 1


# ------------------------------------------------------------------------- FastWARC and warcio agree


def _raw_record(wtype: str, url: str, block: bytes, ctype: str) -> bytes:
    head = (
        f"WARC/1.0\r\nWARC-Type: {wtype}\r\nWARC-Target-URI: {url}\r\nWARC-Date: 2026-01-01T00:00:00Z\r\n"
        f"WARC-Record-ID: <urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, wtype + url)}>\r\n"
        f"Content-Type: {ctype}\r\nContent-Length: {len(block)}\r\n\r\n"
    ).encode()
    return head + block + b"\r\n\r\n"


def _mixed_warc_gz() -> bytes:
    """One gzip member per record, of every kind the reader meets: plain, chunked and gzip-encoded HTTP
    responses, resource, conversion, metadata, revisit, request, a non-HTTP URI, an odd WARC-Type spelling,
    an empty response, a status line without a reason, a 404."""
    import gzip

    def http(body: bytes, extra: str = "", status: str = "200 OK") -> bytes:
        return f"HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\n{extra}\r\n".encode() + body

    chunked = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in (PAGE[:100], PAGE[100:])) + b"0\r\n\r\n"
    ctype = "application/http; msgtype=response"
    records = [
        _raw_record("warcinfo", "", b"software: test\r\n", "application/warc-fields"),
        _raw_record(
            "request", "http://t/0", b"GET /0 HTTP/1.1\r\nHost: t\r\n\r\n", "application/http; msgtype=request"
        ),
        _raw_record("response", "http://t/0", http(PAGE), ctype),
        _raw_record("response", "http://t/chunked", http(chunked, "Transfer-Encoding: chunked\r\n"), ctype),
        _raw_record("response", "http://t/gzip", http(gzip.compress(PAGE), "Content-Encoding: gzip\r\n"), ctype),
        _raw_record("resource", "file:///a.html", PAGE, "text/html"),
        _raw_record("conversion", "http://t/wet", b"Plain text of a page.\n", "text/plain"),
        _raw_record("metadata", "http://t/0", b"fetchTimeMs: 12\r\n", "application/warc-fields"),
        _raw_record("revisit", "http://t/0", b"", ctype),
        _raw_record("response", "dns:t", b"20260101000000\nt. 60 IN A 127.0.0.1\n", "text/dns"),
        _raw_record("Response", "http://t/odd-type", http(PAGE), ctype),
        _raw_record("response", "http://t/empty", b"", ctype),
        _raw_record("response", "http://t/no-reason", http(PAGE, status="200"), ctype),
        _raw_record("response", "http://t/missing", http(b"<p>gone</p>", status="404 Not Found"), ctype),
        _raw_record("response", "http://t/last", http(PAGE.replace(b"Some", b"Last")), ctype),
    ]
    return b"".join(gzip.compress(r, mtime=0) for r in records)


def _full(pages):
    fields = ("location", "url", "payload", "content_type", "charset", "http_status", "fetch_date", "record_id")
    more = ("truncated", "reason", "detail", "extracted")
    # a reject's detail ends with warcio's own message, which depends on where its iterator started (a
    # fresh one says "Unknown archive format" where one mid-file says "Invalid WARC record"): compared without
    rows = [tuple(getattr(pg, f) for f in fields + more) for pg in pages]
    return [r[:-2] + ((r[-2] or "").split(" (")[0], r[-1]) for r in rows]


def test_fastwarc_and_warcio_readers_give_the_same_pages_and_rejects(tmp_path):
    """The fast reader hands warcio whatever it cannot vouch for: on clean and on damaged files (seeded byte
    damage, cut tails, junk and short members), whole and in splits, both readers give identical rows."""
    import gzip
    import random

    rng = random.Random(11)
    clean = _mixed_warc_gz()
    members = [i for i in range(len(clean)) if clean[i : i + 3] == b"\x1f\x8b\x08"]
    variants = {"clean": clean, "tail": clean[:-70], "cut_header": clean[: members[-1] + 40]}
    short = gzip.compress(gzip.decompress(clean[members[2] : members[3]])[:-200], mtime=0)  # a record cut short
    variants["short_member"] = clean[: members[2]] + short + clean[members[3] :]
    variants["junk_member"] = (
        clean[: members[4]] + gzip.compress(b"not a record\r\n\r\n", mtime=0) + clean[members[4] :]
    )
    for i in range(40):
        data = bytearray(clean)
        for _ in range(rng.randrange(1, 4)):
            at = rng.randrange(len(data) - 40)
            data[at : at + rng.randrange(1, 40)] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40)))
        variants[f"random{i}"] = bytes(data)
    p = tmp_path / "m.warc.gz"
    checked = 0
    for name, data in variants.items():
        p.write_bytes(data)
        size = len(data)
        for split in (size, 700, 2500):
            got = {}
            for reader in ("warcio", "fastwarc"):
                counts, rows = Counter(), []
                for start in range(0, size, split):
                    rows += read_warc_file(str(p), size, 1 << 20, counts, start, min(start + split, size), reader)
                got[reader] = (_full(rows), counts)
            assert got["fastwarc"] == got["warcio"], (name, split)
            checked += 1
    assert checked == len(variants) * 3
    p.write_bytes(clean)
    pages, counts = _read(p)
    urls = [pg.url for pg in pages if pg.reason is None]
    assert "http://t/chunked" in urls and "http://t/gzip" in urls and "http://t/last" in urls
    chunked = next(pg for pg in pages if pg.url == "http://t/chunked")
    assert chunked.payload == PAGE  # warcio decoded it: the fast reader handed it over
    assert counts["warc_records.Response"] == 1 and counts["warc_records.revisit"] == 1


def test_a_member_warcio_measures_as_negative_length_does_not_loop(tmp_path):
    """A real case found by fuzzing (tests/unit/data: a 3.8 KB file whose last members are damaged): warcio
    read the record at 3284 whole, then measured its length as -16, and the reader went back to the damage
    before it, forever. Now the record is kept and the damage after it reported once."""
    from pathlib import Path

    src = Path(__file__).parent / "data" / "member-then-damage.warc.gz"
    for reader in ("warcio", "fastwarc"):
        counts = Counter()
        pages = list(
            itertools.islice(read_warc_file(str(src), src.stat().st_size, 1 << 20, counts, reader=reader), 100)
        )
        assert len(pages) < 100, reader
        at = [(pg.location.rsplit("@", 1)[1], pg.url, pg.reason) for pg in pages]
        assert at[-2:] == [("3284", "http://t/missing", None), ("3284", None, "corrupt_record")], (reader, at)
        assert "549 bytes from here" in pages[-1].detail
