"""The crawler against a real HTTP server on 127.0.0.1 serving real pydoc pages: robots.txt, delays, retries with
Retry-After, size / type / page limits, link following and normalisation, resume. Never the external network."""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from warcio.archiveiterator import ArchiveIterator

from corpus import samples
from corpus.config import CrawlSection
from corpus.crawl.host import HostCrawler, extract_links, normalize_url

MODULES = ["json", "csv", "textwrap", "shutil", "string", "argparse", "base64", "bisect"]


class Site:
    """A real docs site: pydoc pages, an index, robots.txt, and paths that misbehave on purpose."""

    def __init__(self, root: Path, robots: str | None = samples.ROBOTS) -> None:
        self.root = root
        self.requests: list[tuple[float, str, str]] = []  # (time, path, user agent)
        self.hits: Counter[str] = Counter()
        self.robots = robots
        self.lock = threading.Lock()
        site = self

        class Handler(SimpleHTTPRequestHandler):
            def __init__(self, *a, **kw):
                super().__init__(*a, directory=str(root), **kw)

            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):  # noqa: N802
                path = self.path.split("?")[0]
                with site.lock:
                    site.requests.append((time.monotonic(), path, self.headers.get("User-Agent", "")))
                    site.hits[path] += 1
                    n = site.hits[path]
                if path == "/robots.txt" and site.robots is None:
                    return self._send(503, b"down")
                if path == "/flaky.html" and n <= 2:
                    return self._send(503, b"busy")
                if path == "/slow-down.html" and n == 1:
                    return self._send(429, b"slow down", [("Retry-After", "1")])
                if path in ("/flaky.html", "/slow-down.html"):
                    return self._send(200, b"<html><body><p>Recovered.</p></body></html>")
                if path == "/always-500.html":
                    return self._send(500, b"broken")
                if path == "/big.html":
                    return self._send(200, b"<html><body>" + b"x" * 3_000_000 + b"</body></html>")
                if path == "/image.png":
                    return self._send(200, b"\x89PNG\r\n\x1a\n" + bytes(100), [("Content-Type", "image/png")])
                return super().do_GET()

            def _send(self, code, body, headers=()):
                self.send_response(code)
                hdrs = dict(headers)
                self.send_header("Content-Type", hdrs.pop("Content-Type", "text/html; charset=utf-8"))
                for k, v in hdrs.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def paths(self) -> list[str]:
        return [p for _, p, _ in self.requests]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def site_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("site")
    for m in MODULES:
        (root / f"{m}.html").write_text(samples.pydoc_page(m), "utf-8")
    samples.write_site_index(root)
    index = (root / "index.html").read_text()
    extra = "".join(
        f'<li><a href="{p}">{p}</a></li>'
        for p in [
            "flaky.html",
            "slow-down.html",
            "always-500.html",
            "big.html",
            "image.png",
            "missing.html",
            "json.html#section",
            "JSON.html?b=2&a=1",
            "http://elsewhere.example/x.html",
        ]
    )
    (root / "index.html").write_text(index.replace("</ul>", extra + "</ul>"))
    return root


@pytest.fixture
def site(site_root):
    s = Site(site_root)
    yield s
    s.close()


def _cfg(**kw) -> CrawlSection:
    base = dict(
        delay_seconds=0.0, backoff_seconds=0.05, timeout_seconds=10, max_page_bytes=1_000_000, allow_private_seeds=True
    )  # the test site is on 127.0.0.1
    base.update(kw)
    return CrawlSection(**base)


def _crawl(site, tmp_path, cfg, pages=1000, nbytes=10**9, seeds=None, run="r1"):
    c = HostCrawler(site.url, seeds or [site.url + "/index.html"], cfg, str(tmp_path / "warc"), run, pages, nbytes)
    rows = list(c.crawl())
    return c, rows


def _warc_urls(folder: Path) -> list[str]:
    urls = []
    for f in sorted(folder.glob("*.warc.gz")):
        with open(f, "rb") as fh:
            urls += [
                r.rec_headers.get_header("WARC-Target-URI") for r in ArchiveIterator(fh) if r.rec_type == "response"
            ]
    return urls


def test_crawl_follows_links_obeys_robots_and_archives(site, tmp_path):
    cfg = _cfg()
    crawler, rows = _crawl(site, tmp_path, cfg)
    by = defaultdict(list)
    for r in rows:
        by[r["outcome"]].append(r)
    archived = {r["url"].rsplit("/", 1)[1] for r in by["archived"]}
    assert {f"{m}.html" for m in MODULES} | {"index.html", "flaky.html", "slow-down.html"} <= archived
    # robots.txt: the private page is linked but never requested
    assert "/private/notes.html" not in site.paths()
    assert [r["url"] for r in by["robots_disallowed"]] == [site.url + "/private/notes.html"]
    # the user agent names the project, on every request
    assert {ua for _, _, ua in site.requests} == {cfg.user_agent} and "forge" in cfg.user_agent
    # each URL fetched once: the fragment and the reordered query normalise; other hosts are not followed
    assert site.hits["/json.html"] == 1 and "elsewhere.example" not in str(rows)
    assert len({r["url"] for r in rows}) == len(rows)
    # limits and errors, each with its reason
    local = {f"/{m}.html" for m in MODULES} | {"/missing.html", "/always-500.html", "/big.html", "/image.png"}
    assert {
        r["url"].rsplit("/", 1)[1]: r["outcome"]
        for r in rows
        if r["outcome"] not in ("archived", "robots_disallowed") and r["url"][len(site.url) :] in local
    } == {
        "always-500.html": "http_status",
        "big.html": "too_large",
        "image.png": "content_type",
        "missing.html": "http_status",
    }
    # pages that pydoc links to but this small site lacks: logged 404s, not lost
    assert all(
        r["http_status"] == 404
        for r in rows
        if r["outcome"] == "http_status" and r["url"][len(site.url) :] not in local
    )
    # every archived page is in a committed WARC; no temporary file is left
    warcs = list((tmp_path / "warc").iterdir())
    assert warcs and all(not p.name.startswith("_tmp") for p in warcs)
    assert sorted(_warc_urls(tmp_path / "warc")) == sorted(r["url"] for r in by["archived"])


def test_retries_honour_retry_after_and_back_off(site, tmp_path):
    cfg = _cfg(retries=3)
    _, rows = _crawl(
        site,
        tmp_path,
        cfg,
        seeds=[site.url + "/flaky.html", site.url + "/slow-down.html", site.url + "/always-500.html"],
    )
    got = {r["url"].rsplit("/", 1)[1]: r for r in rows}
    assert got["flaky.html"]["outcome"] == "archived" and got["flaky.html"]["retries"] == 2
    assert got["slow-down.html"]["outcome"] == "archived" and got["slow-down.html"]["retries"] == 1
    times = [t for t, p, _ in site.requests if p == "/slow-down.html"]
    assert times[1] - times[0] >= 0.95  # Retry-After: 1 was honoured
    assert got["always-500.html"]["outcome"] == "http_status" and site.hits["/always-500.html"] == 4
    assert "HTTP 500" in got["always-500.html"]["detail"]


def test_delay_between_requests_and_crawl_delay(site, tmp_path):
    crawler, rows = _crawl(site, tmp_path, _cfg(delay_seconds=0.25), pages=5)
    starts = [t for t, _, _ in site.requests]
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert len(starts) >= 5 and min(gaps) >= 0.24
    # page budget: 5 archived, the rest of the frontier logged as over_budget, not fetched
    assert Counter(r["outcome"] for r in rows)["archived"] == 5
    assert any(r["outcome"] == "over_budget" for r in rows)


def test_robots_crawl_delay_is_obeyed(site_root, tmp_path):
    s = Site(site_root, robots="User-agent: *\nCrawl-delay: 0.3\nDisallow: /private/\n")
    try:
        # Site serves robots.txt from the folder: write the rule there for this server
        (site_root / "robots.txt").write_text(s.robots)
        crawler, rows = _crawl(s, tmp_path, _cfg(), pages=4)
        starts = [t for t, _, _ in s.requests]
        assert crawler.delay == pytest.approx(0.3) and min(b - a for a, b in zip(starts, starts[1:])) >= 0.29
    finally:
        (site_root / "robots.txt").write_text(samples.ROBOTS)
        s.close()


def test_robots_unreachable_means_nothing_is_fetched(site_root, tmp_path):
    s = Site(site_root, robots=None)  # robots.txt answers 503
    try:
        _, rows = _crawl(s, tmp_path, _cfg(retries=0))
        assert s.paths() == ["/robots.txt"]
        assert [r["outcome"] for r in rows] == ["robots_unreachable", "robots_disallowed"]
    finally:
        s.close()


def test_byte_budget_and_concurrency(site, tmp_path):
    _, rows = _crawl(site, tmp_path, _cfg(host_concurrency=3), nbytes=150_000)
    archived = [r for r in rows if r["outcome"] == "archived"]
    assert sum(r["bytes"] for r in archived) <= 150_000 and any(r["outcome"] == "over_budget" for r in rows)


def test_resume_fetches_nothing_already_archived(site, tmp_path):
    cfg = _cfg(warc_file_pages=2)
    _, first = _crawl(site, tmp_path, cfg, pages=4, run="run1")
    done = {r["url"] for r in first if r["outcome"] == "archived"}
    assert len(done) == 4 and len(list((tmp_path / "warc").glob("*run1*.warc.gz"))) == 2
    site.requests.clear()
    _, second = _crawl(site, tmp_path, cfg, pages=1000, run="run2")
    refetched = {site.url + p for p in site.paths()} & done
    assert not refetched
    assert second[0]["outcome"] == "resumed" and "4 URLs" in second[0]["detail"]
    new = {r["url"] for r in second if r["outcome"] == "archived"}
    assert new and not (new & done)
    assert len(_warc_urls(tmp_path / "warc")) == len(set(_warc_urls(tmp_path / "warc")))


def test_url_normalisation_and_links():
    assert normalize_url("HTTP://Example.COM:80/a/../b?z=1&a=2#frag") == "http://example.com/b?a=2&z=1"
    assert normalize_url("https://x.org:443") == "https://x.org/"
    assert normalize_url("mailto:a@b.c") is None and normalize_url("javascript:void(0)") is None
    html = (
        b'<html><head><base href="http://h/docs/"></head><body><a href="a.html#x">a</a>'
        b'<a rel="nofollow" href="b.html">b</a><a href="/c?y=1&x=2">c</a></body></html>'
    )
    assert extract_links(html, "http://h/index.html") == ["http://h/docs/a.html", "http://h/c?x=2&y=1"]
    assert extract_links(b'<meta name="robots" content="noindex, nofollow"><a href="a">a</a>', "http://h/") == []
