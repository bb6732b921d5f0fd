"""Crawl one host politely into WARC.gz files: the per-task work of the ``crawl`` stage (no Spark here).

For one host, :class:`HostCrawler`:

1. fetches ``/robots.txt`` (RFC 9309: a 4xx means no rules; a 5xx or no answer means the whole host is
   disallowed) and obeys it with Protego (Scrapy's parser: wildcards, ``Allow`` precedence, ``Crawl-delay``);
2. reads the host's committed WARC files first: their URLs are not fetched again, and their pages' links seed
   the frontier, so a rerun carries on where the last one stopped (resume);
3. walks the frontier breadth-first (seeds, then links on the same host, up to ``max_depth``), with at most
   ``host_concurrency`` requests in flight and at least ``delay_seconds`` (or robots.txt's Crawl-delay, if
   larger) between request starts;
4. retries 429 and 5xx answers and connection errors with exponential backoff, honouring ``Retry-After`` (capped at
   ``max_retry_after_seconds``); every retry waits its turn like any request, and the wait holds back every
   thread on the host;
5. follows redirects itself, hop by hop, only on the seed's host (or ``redirect_hosts``), and archives a page
   under the URL it came from; connects only to public addresses (or, with ``allow_private_seeds``, to the kind
   of address the seed host is on) and gives each response ``timeout_seconds`` from connect to last byte
   (:mod:`corpus.crawl.guard`);
6. refuses bodies over ``max_page_bytes`` (read in a stream, stopped at the limit) and content types not listed;
7. stops at the host's page and byte budgets;
8. writes request + response records with warcio, into ``<host>-<run>-<n>.warc.gz`` files that are renamed
   into place (committed) every ``warc_file_pages`` pages, so a killed crawl keeps what it committed.

Every URL it considers yields one log row (``outcome``: archived, or why not), which the stage turns into its
log dataset and stats.
"""

from __future__ import annotations

import hashlib
import io
import os
import posixpath
import re
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Iterator
from urllib.parse import urljoin, urlsplit, urlunsplit

from corpus.config import CrawlSection

ARCHIVED = "archived"
LOG_FIELDS = (
    "url",
    "host",
    "depth",
    "outcome",
    "detail",
    "http_status",
    "content_type",
    "bytes",
    "retries",
    "warc_file",
    "fetched_at",
)


def host_key(url: str) -> str:
    """``scheme://host:port`` of a URL (hosts are crawled apart, one task each)."""
    p = urlsplit(url)
    return f"{p.scheme}://{p.netloc.lower()}"


def file_prefix(host: str) -> str:
    """A file-name-safe form of a host key: ``http://127.0.0.1:8000`` → ``http_127.0.0.1_8000``."""
    return re.sub(r"[^A-Za-z0-9.-]+", "_", host).strip("_")


def normalize_url(url: str, base: str | None = None) -> str | None:
    """Absolute, canonical form used for de-duplication: w3lib's canonicalize_url (sorted query arguments,
    percent-encoding normalised, fragment dropped), with the scheme and host lower-cased and default ports removed.
    None for anything that is not http(s)."""
    from w3lib.url import canonicalize_url

    try:
        absolute = urljoin(base, url.strip()) if base else url.strip()
        p = urlsplit(absolute)
    except ValueError:
        return None
    if p.scheme.lower() not in ("http", "https") or not p.hostname:
        return None
    netloc = p.hostname.lower()
    default_port = {"http": 80, "https": 443}.get(p.scheme.lower())
    if p.port and p.port != default_port:
        netloc += f":{p.port}"
    rebuilt = urlunsplit((p.scheme.lower(), netloc, p.path or "/", p.query, ""))
    return canonicalize_url(rebuilt)


def extract_links(html: bytes, base_url: str) -> list[str]:
    """Links of a page (``<a href>``, honouring ``<base href>`` and ``rel=nofollow``), absolute and normalised;
    none when ``<meta name=robots content=nofollow>``."""
    import lxml.html
    from lxml import etree

    try:
        root = lxml.html.fromstring(html)
    except (etree.ParserError, ValueError):
        return []
    for meta in root.iterfind(".//meta[@name]"):
        if meta.get("name", "").lower() == "robots" and "nofollow" in meta.get("content", "").lower():
            return []
    base = root.find(".//base[@href]")
    base_url = urljoin(base_url, base.get("href")) if base is not None else base_url
    out = []
    for a in root.iterfind(".//a[@href]"):
        if "nofollow" in (a.get("rel") or "").lower():
            continue
        url = normalize_url(a.get("href"), base_url)
        if url:
            out.append(url)
    return out


@dataclass
class Fetched:
    status: int | None
    headers: list[tuple[str, str]]
    body: bytes
    retries: int
    error: str | None = None
    truncated: bool = False
    url: str | None = None  # the URL the response came from (after redirects)
    refused: str | None = None  # why a request or redirect was not made: an outcome for the log


RETRY_STATUS = (429, 500, 502, 503, 504)
REDIRECT_STATUS = (301, 302, 303, 307, 308)


class HostCrawler:
    def __init__(
        self,
        host: str,
        seeds: list[str],
        cfg: CrawlSection,
        archive: str,
        run_id: str,
        budget_pages: int,
        budget_bytes: int,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        from corpus.crawl.guard import Policy

        self.host, self.cfg, self.archive, self.run_id = host, cfg, archive, run_id
        self.seeds = seeds
        self.budget_pages, self.budget_bytes = budget_pages, budget_bytes
        self.sleep = sleep
        self._lock = threading.Lock()
        self._next_start = 0.0
        self.delay = cfg.delay_seconds
        self.robots = None
        self.pages = 0
        self.bytes = 0
        self.request_times: list[float] = []  # monotonic start of every request (tests check the delays)
        self._writer = None
        self._file = None
        self._file_pages = 0
        self._file_index = 0
        self._pool = None
        self._archived: set[str] = set()  # final URLs archived by this crawl (a redirect may lead to one)
        parts = urlsplit(host)
        self.policy = Policy.for_seed(parts.hostname or "", parts.port, cfg.allow_private_seeds)
        self.redirect_hosts = {h.lower().rstrip("/") for h in cfg.redirect_hosts}

    # ----------------------------------------------------------------------------------------- HTTP

    def _http(self):
        if self._pool is None:
            import urllib3

            from corpus.crawl.guard import pool_manager

            self._pool = pool_manager(
                num_pools=2,
                maxsize=max(1, self.cfg.host_concurrency),
                timeout=urllib3.Timeout(connect=self.cfg.timeout_seconds, read=self.cfg.timeout_seconds),
                headers={"User-Agent": self.cfg.user_agent},
            )
        return self._pool

    def _wait_turn(self) -> None:
        """Block until this request may start: ``delay`` after the previous start (shared by all threads)."""
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next_start)
            self._next_start = start + self.delay
        if start > now:
            self.sleep(start - now)
        with self._lock:
            self.request_times.append(time.monotonic())

    def _defer(self, seconds: float) -> None:
        """No request to this host starts within ``seconds`` from now (a Retry-After or a backoff), on any
        thread; the host's delay still applies after it."""
        with self._lock:
            self._next_start = max(self._next_start, time.monotonic() + seconds)

    def redirect_allowed(self, target: str) -> bool:
        """Redirects stay on the seed's host (scheme, host and port), or go to a host of crawl.redirect_hosts."""
        if host_key(target) == self.host:
            return True
        p = urlsplit(target)
        netloc = p.netloc.lower()
        return netloc in self.redirect_hosts or (p.hostname or "") in self.redirect_hosts

    def _attempt(self, url: str, limit: int) -> Fetched:
        """One GET, no redirect followed, within ``timeout_seconds`` from connect to last byte."""
        import urllib3

        from corpus.crawl.guard import AddressRefused, guarded

        with guarded(self.policy, self.cfg.timeout_seconds) as deadline:
            try:
                resp = self._http().request("GET", url, preload_content=False, redirect=False)
            except AddressRefused as err:
                return Fetched(None, [], b"", 0, error=str(err), url=url, refused="address_refused")
            except (urllib3.exceptions.HTTPError, OSError) as err:
                if isinstance(getattr(err, "reason", None), AddressRefused):
                    return Fetched(None, [], b"", 0, error=str(err.reason), url=url, refused="address_refused")
                if deadline.expired:
                    return Fetched(None, [], b"", 0, error=self._timeout(), url=url)
                return Fetched(None, [], b"", 0, error=f"{type(err).__name__}: {err}", url=url)
            headers = list(resp.headers.items())
            try:
                body = bytearray()
                truncated = False
                for chunk in resp.stream(64 * 1024):
                    body += chunk
                    if len(body) > limit:
                        truncated = True
                        break
                if deadline.expired:
                    return Fetched(resp.status, headers, b"", 0, error=self._timeout(), url=url)
                return Fetched(resp.status, headers, bytes(body), 0, truncated=truncated, url=url)
            except (urllib3.exceptions.HTTPError, OSError) as err:
                error = self._timeout() if deadline.expired else f"{type(err).__name__}: {err}"
                return Fetched(resp.status, headers, b"", 0, error=error, url=url)
            finally:
                resp.release_conn()

    def _timeout(self) -> str:
        return f"timeout: no complete response within {self.cfg.timeout_seconds:g} s"

    def _retry_wait(self, got: Fetched, retry: int) -> float:
        """Seconds before retry number ``retry`` (1, 2, ...): Retry-After when the server sent one (capped), else
        ``backoff_seconds`` x 2^(retry-1)."""
        value = next((v for k, v in got.headers if k.lower() == "retry-after"), None)
        if value is not None:
            try:
                seconds = float(value)
            except ValueError:
                from email.utils import parsedate_to_datetime

                try:
                    seconds = (parsedate_to_datetime(value) - datetime.now(timezone.utc)).total_seconds()
                except (TypeError, ValueError):
                    seconds = 0.0
            return max(0.0, min(seconds, self.cfg.max_retry_after_seconds))
        return self.cfg.backoff_seconds * 2 ** (retry - 1)

    def fetch(self, url: str, limit: int) -> Fetched:
        """GET ``url``: every attempt waits its turn (the host's delay), 429 / 5xx / connection errors are retried
        after Retry-After or a backoff that every thread on this host honours, and redirects are followed hop by
        hop, each target checked (same host or crawl.redirect_hosts, http(s) only, robots.txt, the address it
        reaches). ``Fetched.url`` is the URL the final response came from."""
        retries, hops, current = 0, 0, url
        while True:
            self._wait_turn()
            got = self._attempt(current, limit)
            if got.refused:
                got.retries = retries
                return got
            failed = got.status in RETRY_STATUS or (got.status is None and got.error is not None)
            if failed and retries < self.cfg.retries:
                retries += 1
                self._defer(self._retry_wait(got, retries))
                continue
            got.retries = retries
            if failed and got.status is None:
                got.error = f"gave up after {retries} retries: {got.error}" if retries else got.error
            if got.status not in REDIRECT_STATUS:
                return got
            location = next((v for k, v in got.headers if k.lower() == "location"), None)
            target = normalize_url(location, current) if location else None
            hops += 1
            why = None
            if target is None:
                why = f"redirect to {str(location)[:200]!r}: not an http(s) URL"
            elif not self.redirect_allowed(target):
                why = f"redirect to {target}: another host (allow it with crawl.redirect_hosts)"
            elif hops > self.cfg.max_redirects:
                why = f"more than {self.cfg.max_redirects} redirects (crawl.max_redirects)"
            elif host_key(target) == self.host and self.robots is not None and not self.allowed(target):
                why = f"redirect to {target}: disallowed by robots.txt"
            if why:
                return Fetched(
                    got.status, got.headers, b"", retries, error=why, url=current, refused="redirect_refused"
                )
            current = target

    # ----------------------------------------------------------------------------------------- robots

    def load_robots(self) -> dict | None:
        """Fetch and parse robots.txt; a log row when the host must not be crawled at all (5xx / unreachable)."""
        from protego import Protego

        url = self.host + "/robots.txt"
        got = self.fetch(url, 512 * 1024)
        row = None
        if got.refused == "address_refused":
            return self._row(url, 0, "address_refused", got.error, got)
        if got.status is not None and 200 <= got.status < 300:
            self.robots = Protego.parse(got.body.decode("utf-8", "replace"))
            delay = self.robots.crawl_delay(self.cfg.user_agent)
            if delay:
                self.delay = max(self.delay, min(float(delay), self.cfg.max_crawl_delay_seconds))
                with self._lock:  # the robots.txt request itself counts: the next one waits the new delay
                    self._next_start = self.request_times[-1] + self.delay
        elif got.status is not None and 400 <= got.status < 500:
            self.robots = Protego.parse("")  # RFC 9309 2.3.1.3: unavailable -> crawl allowed
        else:
            row = self._row(
                url,
                0,
                "robots_unreachable",
                got.error or f"robots.txt answered HTTP {got.status}: RFC 9309 says assume complete disallow",
                got,
            )
        return row

    def allowed(self, url: str) -> bool:
        return self.robots is not None and self.robots.can_fetch(url, self.cfg.user_agent)

    # ----------------------------------------------------------------------------------------- WARC

    def _warc_path(self, index: int, tmp: bool) -> str:
        """Where WARC ``index`` goes: its final name in the archive, or while open a hidden temporary name beside
        it (a local file when the archive is on an object store, uploaded under its final name when complete)."""
        from corpus.io import files

        name = f"{file_prefix(self.host)}-{self.run_id}-{index:05d}.warc.gz"
        if not tmp:
            return posixpath.join(self.archive, name)
        if files.is_object_store(self.archive):
            import tempfile

            return os.path.join(tempfile.gettempdir(), f"_tmp-{os.getpid()}-{name}")
        return posixpath.join(self.archive, f"_tmp-{name}")

    def _write(self, url: str, got: Fetched) -> str:
        from warcio.statusandheaders import StatusAndHeaders
        from warcio.warcwriter import WARCWriter

        from corpus.io import files

        if self._writer is None:
            files.make_dirs(self.archive)
            self._file = open(self._warc_path(self._file_index, True), "wb")
            self._writer = WARCWriter(self._file, gzip=True)
        date = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        req = StatusAndHeaders(
            f"GET {urlsplit(url).path or '/'} HTTP/1.1",
            [("Host", urlsplit(url).netloc), ("User-Agent", self.cfg.user_agent)],
            protocol="HTTP/1.1",
            is_http_request=True,
        )
        headers = [(k, v) for k, v in got.headers if k.lower() not in ("transfer-encoding", "content-encoding")]
        http = StatusAndHeaders(f"{got.status} {_reason(got.status)}", headers, protocol="HTTP/1.1")
        w = self._writer
        w.write_record(
            w.create_warc_record(
                url, "request", payload=io.BytesIO(b""), http_headers=req, warc_headers_dict={"WARC-Date": date}
            )
        )
        w.write_record(
            w.create_warc_record(
                url, "response", payload=io.BytesIO(got.body), http_headers=http, warc_headers_dict={"WARC-Date": date}
            )
        )
        self._file_pages += 1
        name = posixpath.basename(self._warc_path(self._file_index, False))
        if self._file_pages >= self.cfg.warc_file_pages:
            self.commit_file()
        return name

    def commit_file(self) -> None:
        """Close the open WARC and rename it into place: from now on a rerun will not fetch its URLs."""
        if self._writer is None:
            return
        from corpus.io import files

        self._file.close()
        tmp, final = self._warc_path(self._file_index, True), self._warc_path(self._file_index, False)
        if files.is_object_store(final):
            files.upload(tmp, final)
            os.remove(tmp)
        else:
            os.replace(tmp, final)
        self._writer, self._file, self._file_pages = None, None, 0
        self._file_index += 1

    def abort_file(self) -> None:
        if self._file is not None:
            self._file.close()
            try:
                os.remove(self._warc_path(self._file_index, True))
            except OSError:
                pass
            self._writer, self._file = None, None

    # ----------------------------------------------------------------------------------------- resume

    def archived(self) -> tuple[set[str], list[tuple[str, int]]]:
        """URLs in this host's committed WARCs, and the links of their HTML pages (to rebuild the frontier)."""
        from warcio.archiveiterator import ArchiveIterator

        from corpus.io.files import list_files, open_input

        seen: set[str] = set()
        links: list[tuple[str, int]] = []
        prefix = file_prefix(self.host) + "-"
        try:
            entries = list_files(self.archive, (".warc.gz",))
        except Exception:  # noqa: BLE001 - no archive yet
            return seen, links
        for e in sorted(entries, key=lambda e: e.path):
            if not posixpath.basename(e.path).startswith(prefix):
                continue
            with open_input(e.path) as fh:
                try:
                    for rec in ArchiveIterator(fh):
                        if rec.rec_type != "response":
                            continue
                        url = normalize_url(rec.rec_headers.get_header("WARC-Target-URI") or "")
                        if not url:
                            continue
                        seen.add(url)
                        ctype = (rec.http_headers.get_header("Content-Type") or "") if rec.http_headers else ""
                        if "html" in ctype.lower():
                            links += [(u, 1) for u in extract_links(rec.content_stream().read(), url)]
                except Exception:  # noqa: BLE001 - a damaged archive file: its URLs may be fetched again
                    continue
        return seen, links

    # ----------------------------------------------------------------------------------------- crawl

    def _row(
        self,
        url: str,
        depth: int,
        outcome: str,
        detail: str | None = None,
        got: Fetched | None = None,
        warc_file: str | None = None,
    ) -> dict:
        ctype = None
        if got is not None:
            ctype = next((v for k, v in got.headers if k.lower() == "content-type"), None)
        return {
            "url": url,
            "host": self.host,
            "depth": depth,
            "outcome": outcome,
            "detail": detail,
            "http_status": got.status if got else None,
            "content_type": ctype,
            "bytes": len(got.body) if got else None,
            "retries": got.retries if got else None,
            "warc_file": warc_file,
            "fetched_at": datetime.now(timezone.utc).isoformat(timespec="seconds") if got else None,
        }

    def _visit(self, url: str, depth: int) -> tuple[dict, list[str]]:
        cfg = self.cfg
        got = self.fetch(url, int(cfg.max_page_bytes))
        if got.refused:
            return self._row(url, depth, got.refused, got.error, got), []
        if got.error and (got.status is None or not got.body):
            return self._row(url, depth, "fetch_error", got.error, got), []
        if got.status is None or got.status >= 400 or got.status < 200:
            return self._row(
                url,
                depth,
                "http_status",
                f"HTTP {got.status}" + (f" after {got.retries} retries" if got.retries else ""),
                got,
            ), []
        if got.truncated:
            return self._row(url, depth, "too_large", f"body over max_page_bytes {int(cfg.max_page_bytes)}", got), []
        ctype = next((v for k, v in got.headers if k.lower() == "content-type"), "") or ""
        mime = ctype.split(";")[0].strip().lower()
        if mime not in cfg.content_types:
            return self._row(url, depth, "content_type", f"{mime or 'none'} not in crawl.content_types", got), []
        final = normalize_url(got.url or url) or url  # the record is archived under the URL it came from
        moved = f"redirected to {final}" if final != url else None
        with self._lock:
            if final in self._archived:
                return self._row(url, depth, "duplicate", f"{moved}, already archived", got), []
            if self.bytes + len(got.body) > self.budget_bytes:
                return self._row(url, depth, "over_budget", f"host byte budget {self.budget_bytes} reached", got), []
            self.pages += 1
            self.bytes += len(got.body)
            self._archived.add(final)
            name = self._write(final, got)
        links = extract_links(got.body, final) if "html" in mime and depth < cfg.max_depth else []
        return self._row(url, depth, ARCHIVED, moved, got, name), links

    def crawl(self) -> Iterator[dict]:
        """Log rows, one per URL considered (archived or not, and why)."""
        from concurrent.futures import ThreadPoolExecutor

        cfg = self.cfg
        seen, old_links = self.archived()
        already = len(seen)
        self._archived |= seen
        robots_row = self.load_robots()
        if robots_row is not None:
            yield robots_row
            refused = robots_row["outcome"] == "address_refused"
            for s in self.seeds:
                yield self._row(
                    s,
                    0,
                    "address_refused" if refused else "robots_disallowed",
                    robots_row["detail"] if refused else "robots.txt unreachable: complete disallow",
                )
            return
        frontier: deque[tuple[str, int]] = deque()
        queued: set[str] = set(seen)
        for url, depth in [(s, 0) for s in self.seeds] + old_links:
            if url not in queued and host_key(url) == self.host:
                queued.add(url)
                frontier.append((url, depth))
        if already:
            yield {
                "url": self.host + "/",
                "host": self.host,
                "depth": 0,
                "outcome": "resumed",
                "detail": f"{already} URLs already in committed WARCs",
                "http_status": None,
                "content_type": None,
                "bytes": None,
                "retries": None,
                "warc_file": None,
                "fetched_at": None,
            }
        workers = max(1, cfg.host_concurrency)
        try:
            with ThreadPoolExecutor(workers) as pool:
                while frontier:
                    wave = []
                    while frontier and len(wave) < workers:
                        url, depth = frontier.popleft()
                        if not self.allowed(url):
                            yield self._row(url, depth, "robots_disallowed", "disallowed by robots.txt")
                        elif self.pages + len(wave) >= self.budget_pages:
                            yield self._row(url, depth, "over_budget", f"host page budget {self.budget_pages} reached")
                        else:
                            wave.append((url, depth))
                    for (url, depth), (row, links) in zip(wave, pool.map(lambda a: self._visit(*a), wave)):
                        yield row
                        for link in links:
                            if link not in queued and host_key(link) == self.host:
                                queued.add(link)
                                frontier.append((link, depth + 1))
            self.commit_file()
        except BaseException:
            self.abort_file()
            raise


def _reason(status: int | None) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except (ValueError, TypeError):
        return "Unknown"


def run_id(seeds: list[str], when: str) -> str:
    """A short id naming this run's WARC files (content hash of the seeds and the start time)."""
    return hashlib.sha256(("\n".join(sorted(seeds)) + when).encode()).hexdigest()[:10]
