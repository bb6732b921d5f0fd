"""Reading web pages out of WARC / WARC.gz files and .html files, and writing WARCs (for samples and tests).

The reader yields one *raw page* per candidate record (a WARC ``response`` or ``resource`` record, or an
.html file), or a reject for a record or file it cannot use. Nothing is skipped silently:

* a corrupt gzip member or an unparsable record in a ``.warc.gz`` gives a ``corrupt_record`` reject, and the
  reader resynchronises at the next gzip member (Common Crawl writes one member per record), so one bad record
  does not cost the rest of the file;
* a record cut short (fewer payload bytes than its Content-Length), including a final gzip member cut off
  at the end of the file (which warcio drops without a word), gives ``truncated_record``;
* an empty file, or a file that is not a WARC, gives ``empty_file`` / ``corrupt_file``;
* header lines are read with a bound (warcio's own ``readline`` has none): more than ``MAX_HEADER_BYTES`` of
  header lines in a row — a gzip member that inflates to gigabytes without a newline, a header flood — gives
  ``too_large`` and the reader resynchronises as after damage, with memory bounded whatever the ratio;
* in an uncompressed WARC, a record whose Content-Length runs over the records after it (their ``WARC/1.x``
  header found inside its bytes) gives ``corrupt_record``, and reading resumes at the swallowed record, which
  would otherwise vanish with its headers read as page text (a gzip member ends a record, so there warcio
  reports the overrun as missing bytes: ``truncated_record``);
* records that are not pages (request, metadata, warcinfo, revisit, ...) are counted by type in the stage
  stats (``warc_records.<type>``), not rejected: they are crawl bookkeeping, not documents;
* WET files (``.warc.wet.gz``: Common Crawl's text extracts) are WARC files of ``conversion`` records, read the
  same way; their payload is the page's text, taken as it is (``RawPage.extracted``).
"""

from __future__ import annotations

import io
import re
import zlib
from dataclasses import dataclass
from typing import Iterator

from warcio.archiveiterator import WARCIterator
from warcio.bufferedreaders import DecompressingBufferedReader

from corpus.io.files import open_input

# WET files (Common Crawl's extracted text: WARC files of `conversion` records) are read by the same reader
WET_SUFFIXES = (".warc.wet.gz", ".warc.wet", ".wet.gz", ".wet")
WARC_SUFFIXES = (".warc", ".warc.gz") + WET_SUFFIXES
HTML_SUFFIXES = (".html", ".htm", ".xhtml")
PAGE_TYPES = ("response", "resource", "conversion")
_GZIP_MEMBER = b"\x1f\x8b\x08"
# header lines (WARC + HTTP) read in a row, at most: real records have a few KB; payloads are read with read()
MAX_HEADER_BYTES = 1 << 20
_EMBEDDED = re.compile(rb"\nWARC/1\.[01]\r?\n")
WARC_IN_WARC = ("application/warc", "application/x-warc")


class HeadersTooLarge(Exception):
    """More header-line bytes in a row than MAX_HEADER_BYTES (no blank line, or no newline at all)."""


class _BoundedReader(DecompressingBufferedReader):
    """warcio's reader with ``readline`` bounded: lines read in a row (headers, the blank lines between records)
    may total ``MAX_HEADER_BYTES``; a ``read`` (a payload) starts the count again."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.header_run = 0

    def readline(self, length=None):
        room = MAX_HEADER_BYTES - self.header_run
        ask = room if not length else min(length, room)
        line = super().readline(ask) if ask > 0 else b""
        self.header_run += len(line)
        if ask == room and not line.endswith(b"\n") and (room <= 0 or len(line) >= room):
            raise HeadersTooLarge(
                f"over {MAX_HEADER_BYTES} bytes of header lines in a row (no blank line, or no newline at all)"
            )
        return line

    def read(self, length=None):
        self.header_run = 0
        return super().read(length)


def _archive_iterator(raw) -> WARCIterator:
    # WARC only: a plain ArchiveIterator, started afresh at a record after damage, would parse a damaged header
    # as a legacy ARC record (it knows the format only once it has read a record)
    it = WARCIterator(raw, check_digests=False)
    it.reader = _BoundedReader(it.fh, block_size=it.reader.block_size)  # before the first record is read
    it.INC_RECORD = ""  # warcio prints the line after a record with a wrong Content-Length: it could be 1 MiB
    return it


@dataclass
class RawPage:
    """A candidate page, or (``reason`` set) a record that failed before extraction."""

    location: str
    url: str | None = None
    payload: bytes | None = None
    content_type: str | None = None
    charset: str | None = None
    http_status: int | None = None
    fetch_date: str | None = None
    record_id: str | None = None
    truncated: str | None = None
    reason: str | None = None
    detail: str | None = None
    extracted: bool = False  # a WET conversion record: the payload is the page's text, already extracted


def _mime_and_charset(value: str | None) -> tuple[str | None, str | None]:
    if not value:
        return None, None
    parts = [p.strip() for p in value.split(";")]
    mime = parts[0].lower() or None
    charset = None
    for p in parts[1:]:
        k, _, v = p.partition("=")
        if k.strip().lower() == "charset" and v.strip():
            charset = v.strip().strip("\"'")
    return mime, charset


def read_html_file(path: str, size: int, max_bytes: int) -> RawPage:
    if size == 0:
        return RawPage(location=path, reason="empty_file", detail="0 bytes")
    if size > max_bytes:
        return RawPage(location=path, reason="too_large", detail=f"{size} bytes > max_page_bytes {max_bytes}")
    with open_input(path) as f:
        return RawPage(location=path, payload=f.read())


def read_warc_file(
    path: str,
    size: int,
    max_bytes: int,
    counts,
    start: int = 0,
    end: int | None = None,
    reader: str = "fastwarc",
) -> Iterator[RawPage]:
    """Yield raw pages and rejects from one WARC file, or from the split [start, end) of a ``.warc.gz``;
    ``counts`` (a Counter) gets records by WARC type.

    Splits: a gzip member that decompresses to ``WARC/`` starts a record. Split k owns the bytes from ``p_k``,
    the first such member at or after its ``start`` (``p_0`` = 0), up to ``p_{k+1}``, which the next split finds
    the same way; it reads the records that start there and reports any damage or truncated tail that starts
    there. So every record and every damaged byte range is read or reported by exactly one split, and a 1 GB
    WARC spreads over many tasks without shuffling its pages. Uncompressed WARCs are read whole (no reliable
    record boundary to search for).

    ``reader``: ``fastwarc`` reads clean ``.warc.gz`` records with FastWARC (several times faster than warcio)
    and hands anything it cannot vouch for to the warcio reader below, which defines every reject;
    ``warcio`` reads everything with warcio. Both give the same pages and rejects.
    """
    end = size if end is None else min(end, size)
    if size == 0:
        if start == 0:
            yield RawPage(location=path, reason="empty_file", detail="0 bytes")
        return
    with open_input(path) as raw:
        head = raw.read(5)
        gz = head[:3] == _GZIP_MEMBER
        if not gz:
            if start > 0:
                return
            # warcio falls back to the legacy ARC format for anything else, and "parses" e.g. an HTML file's
            # first line as an ARC header: require the WARC signature.
            if head != b"WARC/":
                yield RawPage(location=path, reason="corrupt_file", detail="not a WARC file (no WARC/ signature)")
                return
            pos, limit = 0, size
        else:
            limit = (_next_member(raw, end, size) if end < size else None) or size
            if start == 0:
                pos = 0
                if not _starts_warc_record(raw, 0):
                    nxt = _next_member(raw, 1, size)
                    if nxt is None:
                        yield RawPage(location=path, reason="corrupt_file", detail="no gzip member holds a WARC record")
                        return
                    yield RawPage(
                        location=f"{path}@0",
                        reason="corrupt_record",
                        detail=f"{nxt} unreadable bytes before the first readable record",
                    )
                    pos = nxt
            else:
                pos = _next_member(raw, start, size)
                if pos is None:
                    return
        if not gz or reader == "warcio":
            yield from _read_warcio(raw, path, pos, limit, size, gz, max_bytes, counts)
            return
        if reader != "fastwarc":
            raise ValueError(f"unknown WARC reader {reader!r}: fastwarc or warcio")
        next_pos: int | None = pos
        while next_pos is not None and next_pos < limit:
            next_pos = yield from _read_fast(raw, path, next_pos, limit, max_bytes, counts)
            if next_pos is None:
                return
            # one record (or one damaged range) the warcio way, then FastWARC again
            next_pos = yield from _read_warcio(raw, path, next_pos, limit, size, gz, max_bytes, counts, one=True)


def _read_fast(raw, path: str, pos: int, limit: int, max_bytes: int, counts):
    """Records of a ``.warc.gz`` from ``pos`` read with FastWARC; returns None when the split is done, or the
    offset of the first record warcio must read: one FastWARC does not parse the way this stage defines it,
    or one it read but cannot vouch for.

    A record is vouched for when the record after it parses: FastWARC reads a short record's payload on
    into the next gzip member (warcio stops at the member's end), and then fails on the next header. So a
    record is counted and its page yielded only once the next one has parsed; on any error, at the end of
    the file, or at a record FastWARC cannot read as warcio would, the unvouched record goes to warcio,
    which reads it, reports damage and the file's tail exactly as it always has."""
    from fastwarc.warc import ArchiveIterator as FastIterator

    raw.seek(pos)
    pending: tuple[int, str, RawPage | None] | None = None  # read, not yet vouched for
    try:
        for rec in FastIterator(raw, parse_http=True, max_header_len=32 << 10):
            offset = rec.stream_pos
            if pending is not None:
                at, rtype, page = pending
                counts[f"warc_records.{rtype}"] += 1
                if page is not None:
                    page.location = f"{path}@{at}"
                    yield page
                pending = None
            if offset >= limit:
                return None  # the next split's first record
            rtype = rec.headers.get("WARC-Type")
            if rtype is None or rtype != str(rec.record_type):
                return offset  # a type FastWARC does not know (warcio counts it by its own name)
            page = None
            if rtype in PAGE_TYPES:
                page = _page_from_fast(path, rec, rtype, max_bytes)
                if page is None:
                    return offset
            pending = (offset, rtype, page)
    except Exception:  # damage: warcio reads from the last unvouched record and reports it
        pass
    return pending[0] if pending is not None else pos


def _page_from_fast(path: str, rec, rtype: str, max_bytes: int) -> RawPage | None:
    """``_page_from_record`` for a FastWARC record, or None where warcio's reading would differ (a payload it
    decodes, HTTP headers parsed by one reader and not the other, a Content-Length that is not a number)."""
    headers = rec.headers
    declared = (headers.get("Content-Length") or "").strip()
    if not declared.isdigit():
        return None
    url = headers.get("WARC-Target-URI")
    http = rtype == "response" and int(declared) > 0 and (url or "").startswith(("http:", "https:"))
    if http != bool(rec.is_http and rec.is_http_parsed):
        return None
    page = RawPage(
        location=path,
        url=url,
        fetch_date=headers.get("WARC-Date"),
        record_id=headers.get("WARC-Record-ID"),
        truncated=headers.get("WARC-Truncated"),
        extracted=rtype == "conversion",
    )
    if http:
        hh = rec.http_headers
        if hh.get("Content-Encoding") is not None or hh.get("Transfer-Encoding") is not None:
            return None  # warcio decodes these
        code = ((hh.status_line or "").split(" ", 2) + [""])[1]
        if code and not code.isdigit():
            return None
        page.http_status = int(code or 0) or None
        ctype = hh.get("Content-Type")
    else:
        ctype = headers.get("Content-Type")
    page.content_type, page.charset = _mime_and_charset(ctype)
    if int(declared) > max_bytes + 65536:
        page.reason, page.detail = "too_large", f"record of {int(declared)} bytes > max_page_bytes {max_bytes}"
        return page
    body = rec.reader.read(max_bytes + 1)
    if len(body) > max_bytes:
        page.reason, page.detail = "too_large", f"payload over max_page_bytes {max_bytes}"
        return page
    if len(body) < rec.content_length:
        return None  # short: warcio counts the missing bytes
    page.payload = body
    return page


def _read_warcio(raw, path: str, pos: int, limit: int, size: int, gz: bool, max_bytes: int, counts, one=False):
    """Records from ``pos`` read with warcio, damage reported and skipped; returns None when the split is
    done, or (``one``: after the first record or damaged range) where the next record starts."""
    while pos < limit:
        raw.seek(pos)
        last = pos  # end of the last complete record
        failure: Exception | None = None
        overrun: int | None = None
        it = _archive_iterator(raw)
        try:
            for rec in it:
                offset = it.offset
                if offset >= limit:
                    return None  # the next split's first record
                page = _page_from_record(path, rec, max_bytes, counts)
                try:
                    length = it.get_record_length()  # reads the record to its end and the blank lines after
                    if length <= 0:  # warcio's count for a gzip member followed by damage in some cases
                        raise ValueError(f"warcio measured the record's length as {length}")
                except (Exception, zlib.error):
                    # the record itself was read whole (a short one is truncated_record): damage after it
                    # (say, gigabytes without a newline) is reported from here, the page kept
                    if page is not None:
                        page.location = f"{path}@{offset}"
                        yield page
                    last = offset
                    raise
                if not gz and (page is None or page.content_type not in WARC_IN_WARC):
                    overrun = _embedded_record(raw, offset, offset + length)
                if overrun is not None:
                    yield RawPage(
                        location=f"{path}@{offset}",
                        url=rec.rec_headers.get_header("WARC-Target-URI"),
                        reason="corrupt_record",
                        detail=f"its Content-Length ({rec.length}) runs over the record that starts at "
                        f"byte {overrun}; reading resumes there",
                    )
                    break
                if page is not None:
                    page.location = f"{path}@{offset}"
                    yield page
                last = offset + length
                if one:
                    return last
        except (Exception, zlib.error) as err:  # warcio raises many types on bad bytes
            failure = err
        if overrun is not None:
            pos = overrun
            continue
        if failure is None:
            if gz and last < min(limit, size):
                # warcio stops without a word at a gzip member cut off at the end of the file
                yield RawPage(
                    location=f"{path}@{last}",
                    reason="truncated_record",
                    detail=f"{size - last} bytes at the end of the file are not a complete WARC record",
                )
            return None
        reason = "too_large" if isinstance(failure, HeadersTooLarge) else "corrupt_record"
        what = f"{type(failure).__name__}: {str(failure)[:200]}"
        after = max(last, pos) + 1  # always forward, whatever offsets warcio reported
        nxt = _next_member(raw, after, size) if gz else _next_plain_record(raw, after, size)
        if last < limit:
            lost = (nxt if nxt is not None else size) - last
            yield RawPage(
                location=f"{path}@{last}",
                reason=reason,
                detail=f"{lost} bytes from here unreadable or skipped ({what})",
            )
        if nxt is None or one:
            return nxt
        pos = nxt
    return None


def _embedded_record(raw, start: int, end: int) -> int | None:
    """Offset of a WARC record header that starts inside the bytes ``(start, end)`` of an uncompressed WARC (a
    ``WARC/1.x`` line followed by ``WARC-Type`` before the blank line), or None. The file position is kept."""
    keep = raw.tell()
    try:
        pos, step = start, 1 << 20
        while pos < end:
            raw.seek(pos)
            buf = raw.read(min(step, end - pos) + 4096)  # a header starting near the window's end is seen whole
            for m in _EMBEDDED.finditer(buf):
                at = pos + m.start() + 1
                if at >= end:
                    break
                head = buf[m.start() + 1 : m.start() + 4097].split(b"\r\n\r\n", 1)[0].lower()
                if b"\nwarc-type:" in head and b"\ncontent-length:" in head:
                    return at
            pos += step
        return None
    finally:
        raw.seek(keep)


def _next_plain_record(raw, pos: int, size: int) -> int | None:
    """Offset of the next WARC record header at or after ``pos`` in an uncompressed WARC."""
    return _embedded_record(raw, max(pos - 1, 0), size)


def _next_member(raw, pos: int, size: int) -> int | None:
    """Offset of the next gzip member header at or after ``pos`` that starts a WARC record."""
    chunk = 1 << 20
    while pos < size:
        raw.seek(pos)
        buf = raw.read(chunk + 2)
        i = buf.find(_GZIP_MEMBER)
        while i != -1:
            cand = pos + i
            if _starts_warc_record(raw, cand):
                return cand
            i = buf.find(_GZIP_MEMBER, i + 1)
        pos += chunk
    return None


def _starts_warc_record(raw, offset: int) -> bool:
    raw.seek(offset)
    try:
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        return d.decompress(raw.read(4096), 16).startswith(b"WARC/")
    except zlib.error:
        return False


def _page_from_record(path: str, rec, max_bytes: int, counts) -> RawPage | None:
    rtype = rec.rec_type or "unknown"
    counts[f"warc_records.{rtype}"] += 1
    if rtype not in PAGE_TYPES:
        return None
    headers = rec.rec_headers
    page = RawPage(
        location=path,
        url=headers.get_header("WARC-Target-URI"),
        fetch_date=headers.get_header("WARC-Date"),
        record_id=headers.get_header("WARC-Record-ID"),
        truncated=headers.get_header("WARC-Truncated"),
    )
    if rec.http_headers is not None and rtype == "response":
        page.http_status = int(rec.http_headers.get_statuscode() or 0) or None
        ctype = rec.http_headers.get_header("Content-Type")
    else:
        ctype = headers.get_header("Content-Type")
    page.extracted = rtype == "conversion"
    page.content_type, page.charset = _mime_and_charset(ctype)
    declared = (headers.get_header("Content-Length") or "").strip()
    if not declared.isdigit():
        page.reason, page.detail = "corrupt_record", f"Content-Length {declared[:40]!r} is not a number"
        return page
    if rec.length is not None and rec.length > max_bytes + 65536:
        page.reason, page.detail = "too_large", f"record of {rec.length} bytes > max_page_bytes {max_bytes}"
        return page
    body = rec.content_stream().read(max_bytes + 1)
    if len(body) > max_bytes:
        page.reason, page.detail = "too_large", f"payload over max_page_bytes {max_bytes}"
        return page
    missing = getattr(rec.raw_stream, "limit", 0)
    if missing:
        page.reason, page.detail = "truncated_record", f"{missing} bytes of the record are missing"
        return page
    page.payload = body
    return page


# --------------------------------------------------------------------------------------------------- writing


def write_warc(
    path: str, pages: list[tuple[str, bytes, str]], *, gzip: bool = True, date: str = "2026-01-01T00:00:00Z"
) -> None:
    """Write ``(url, body, content_type)`` pages as HTTP response records, preceded by their request records
    as crawlers write them. Record ids and dates are derived from the url, so the file is reproducible."""
    import hashlib
    import uuid

    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    def rec_id(url: str, kind: str) -> str:
        return f"<urn:uuid:{uuid.UUID(hashlib.md5(f'{kind}:{url}'.encode()).hexdigest())}>"

    with open(path, "wb") as f:
        writer = WARCWriter(f, gzip=gzip)
        for url, body, ctype in pages:
            req_headers = StatusAndHeaders(
                f"GET {url} HTTP/1.1", [("User-Agent", "corpus-forge")], protocol="HTTP/1.1", is_http_request=True
            )
            req = writer.create_warc_record(
                url,
                "request",
                payload=io.BytesIO(b""),
                http_headers=req_headers,
                warc_headers_dict={"WARC-Date": date, "WARC-Record-ID": rec_id(url, "request")},
            )
            http = StatusAndHeaders(
                "200 OK", [("Content-Type", ctype), ("Content-Length", str(len(body)))], protocol="HTTP/1.1"
            )
            resp = writer.create_warc_record(
                url,
                "response",
                payload=io.BytesIO(body),
                http_headers=http,
                warc_headers_dict={"WARC-Date": date, "WARC-Record-ID": rec_id(url, "response")},
            )
            writer.write_record(req)
            writer.write_record(resp)
