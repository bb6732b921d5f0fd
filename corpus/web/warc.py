"""Reading web pages out of WARC / WARC.gz files and .html files, and writing WARCs (for samples and tests).

The reader yields one *raw page* per candidate record (a WARC ``response`` or ``resource`` record, or an
.html file), or a reject for a record or file it cannot use. Nothing is skipped silently:

* a corrupt gzip member or an unparsable record in a ``.warc.gz`` gives a ``corrupt_record`` reject, and the
  reader resynchronises at the next gzip member (Common Crawl writes one member per record), so one bad record
  does not cost the rest of the file;
* a record cut short (fewer payload bytes than its Content-Length), including a final gzip member cut off
  at the end of the file (which warcio drops without a word), gives ``truncated_record``;
* an empty file, or a file that is not a WARC, gives ``empty_file`` / ``corrupt_file``;
* records that are not pages (request, metadata, warcinfo, revisit, ...) are counted by type in the stage
  stats (``warc_records.<type>``), not rejected: they are crawl bookkeeping, not documents.
"""

from __future__ import annotations

import io
import zlib
from dataclasses import dataclass
from typing import Iterator

from warcio.archiveiterator import ArchiveIterator

from corpus.io.files import open_input

WARC_SUFFIXES = (".warc", ".warc.gz")
HTML_SUFFIXES = (".html", ".htm", ".xhtml")
PAGE_TYPES = ("response", "resource")
_GZIP_MEMBER = b"\x1f\x8b\x08"


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


def read_warc_file(path: str, size: int, max_bytes: int, counts, start: int = 0, end: int | None = None
                   ) -> Iterator[RawPage]:
    """Yield raw pages and rejects from one WARC file, or from the split [start, end) of a ``.warc.gz``;
    ``counts`` (a Counter) gets records by WARC type.

    Splits: a gzip member that decompresses to ``WARC/`` starts a record. Split k owns the bytes from ``p_k``,
    the first such member at or after its ``start`` (``p_0`` = 0), up to ``p_{k+1}``, which the next split finds
    the same way; it reads the records that start there and reports any damage or truncated tail that starts
    there. So every record and every damaged byte range is read or reported by exactly one split, and a 1 GB
    WARC spreads over many tasks without shuffling its pages. Uncompressed WARCs are read whole (no reliable
    record boundary to search for).
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
                    yield RawPage(location=f"{path}@0", reason="corrupt_record",
                                  detail=f"{nxt} unreadable bytes before the first readable record")
                    pos = nxt
            else:
                pos = _next_member(raw, start, size)
                if pos is None:
                    return
        while pos < limit:
            raw.seek(pos)
            last = pos  # end of the last complete record
            failure: Exception | None = None
            it = ArchiveIterator(raw, check_digests=False)
            try:
                for rec in it:
                    offset = it.offset
                    if offset >= limit:
                        return  # the next split's first record
                    page = _page_from_record(path, rec, max_bytes, counts)
                    if page is not None:
                        page.location = f"{path}@{offset}"
                        yield page
                    last = offset + it.get_record_length()
            except (Exception, zlib.error) as err:  # warcio raises many types on bad bytes
                failure = err
            if failure is None:
                if gz and last < min(limit, size):
                    # warcio stops without a word at a gzip member cut off at the end of the file
                    yield RawPage(location=f"{path}@{last}", reason="truncated_record",
                                  detail=f"{size - last} bytes at the end of the file are not a complete WARC record")
                return
            if not gz:
                yield RawPage(location=f"{path}@{last}", reason="corrupt_record",
                              detail=f"unreadable from byte {last} to the end ({size - last} bytes): "
                                     f"{type(failure).__name__}: {str(failure)[:200]}")
                return
            nxt = _next_member(raw, last + 1, size)
            if last < limit:
                lost = (nxt if nxt is not None else size) - last
                yield RawPage(location=f"{path}@{last}", reason="corrupt_record",
                              detail=f"{lost} unreadable bytes ({type(failure).__name__}: {str(failure)[:200]})")
            if nxt is None:
                return
            pos = nxt


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
    page = RawPage(location=path, url=headers.get_header("WARC-Target-URI"),
                   fetch_date=headers.get_header("WARC-Date"), record_id=headers.get_header("WARC-Record-ID"),
                   truncated=headers.get_header("WARC-Truncated"))
    if rec.http_headers is not None and rtype == "response":
        page.http_status = int(rec.http_headers.get_statuscode() or 0) or None
        ctype = rec.http_headers.get_header("Content-Type")
    else:
        ctype = headers.get_header("Content-Type")
    page.content_type, page.charset = _mime_and_charset(ctype)
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


def write_warc(path: str, pages: list[tuple[str, bytes, str]], *, gzip: bool = True,
               date: str = "2026-01-01T00:00:00Z") -> None:
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
            req_headers = StatusAndHeaders(f"GET {url} HTTP/1.1", [("User-Agent", "corpus-forge")],
                                           protocol="HTTP/1.1", is_http_request=True)
            req = writer.create_warc_record(url, "request", payload=io.BytesIO(b""), http_headers=req_headers,
                                            warc_headers_dict={"WARC-Date": date,
                                                               "WARC-Record-ID": rec_id(url, "request")})
            http = StatusAndHeaders("200 OK", [("Content-Type", ctype), ("Content-Length", str(len(body)))],
                                    protocol="HTTP/1.1")
            resp = writer.create_warc_record(url, "response", payload=io.BytesIO(body), http_headers=http,
                                             warc_headers_dict={"WARC-Date": date,
                                                                "WARC-Record-ID": rec_id(url, "response")})
            writer.write_record(req)
            writer.write_record(resp)
