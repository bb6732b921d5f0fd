"""The crawler as an attacker would use it: redirects to other hosts and to a cloud metadata address, a seed on a
private address, a server that drips one byte a second, retries that must wait their turn. Real HTTP servers on
127.0.0.1; never the external network (link-local addresses are refused before any packet is sent)."""

from __future__ import annotations

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from warcio.archiveiterator import ArchiveIterator

from corpus.config import CrawlSection
from corpus.crawl.guard import AddressRefused, Policy, address_kind
from corpus.crawl.host import HostCrawler

PAGE = b"<html><body><p>Real page text about the API.</p><a href='/b.html'>b</a></body></html>"


class Server:
    """Answers by path from ``routes``: path -> (status, headers, body) or a callable(handler)."""

    def __init__(self, routes: dict) -> None:
        self.routes, self.hits, self.times = routes, [], []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):  # noqa: N802
                server.hits.append(self.path)
                server.times.append(time.monotonic())
                route = server.routes.get(self.path, (404, {}, b"missing"))
                if callable(route):
                    return route(self)
                status, headers, body = route
                self.send_response(status)
                headers = {"Content-Type": "text/html", **headers}
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def servers():
    made = []

    def make(routes):
        s = Server(routes)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()


def _cfg(**kw) -> CrawlSection:
    base = dict(delay_seconds=0.0, backoff_seconds=0.01, timeout_seconds=5, allow_private_seeds=True, retries=2)
    return CrawlSection(**{**base, **kw})


def _crawl(site, tmp_path, cfg, seeds):
    c = HostCrawler(site.url, [site.url + s for s in seeds], cfg, str(tmp_path / "warc"), "r", 100, 10**8)
    return c, {r["url"].replace(site.url, ""): r for r in c.crawl()}


def _archived_urls(tmp_path):
    urls = []
    for f in sorted((tmp_path / "warc").glob("*.warc.gz")):
        with open(f, "rb") as fh:
            urls += [
                r.rec_headers.get_header("WARC-Target-URI") for r in ArchiveIterator(fh) if r.rec_type == "response"
            ]
    return urls


def test_address_kinds():
    assert address_kind("127.0.0.1") == "loopback" and address_kind("::1") == "loopback"
    assert address_kind("10.1.2.3") == address_kind("192.168.0.1") == address_kind("fd00::1") == "private"
    assert address_kind("169.254.169.254") == address_kind("fe80::1") == "link_local"
    assert address_kind("::ffff:169.254.169.254") == "link_local"
    assert address_kind("0.0.0.0") == address_kind("224.0.0.1") == "reserved"
    assert address_kind("8.8.8.8") == "public"
    policy = Policy.for_seed("127.0.0.1", 80, allow_private_seeds=True)
    assert policy.allowed == {"public", "loopback"}
    with pytest.raises(AddressRefused, match="link-local"):
        policy.check("169.254.169.254")
    assert Policy.for_seed("127.0.0.1", 80, allow_private_seeds=False).allowed == {"public"}


def test_redirect_to_another_host_is_not_followed(servers, tmp_path):
    inner = servers({"/latest/meta-data/iam": (200, {}, b"AKIAFAKECREDENTIALS secret")})
    site = servers(
        {
            "/robots.txt": (404, {}, b""),
            "/go": (302, {"Location": f"http://localhost:{inner.port}/latest/meta-data/iam"}, b""),
            "/meta": (301, {"Location": "http://169.254.169.254/latest/meta-data/"}, b""),
            "/file": (302, {"Location": "file:///etc/passwd"}, b""),
            "/a.html": (200, {}, PAGE),
        }
    )
    _, rows = _crawl(site, tmp_path, _cfg(), ["/go", "/meta", "/file", "/a.html"])
    assert inner.hits == []
    assert {k: rows[k]["outcome"] for k in ("/go", "/meta", "/file")} == dict.fromkeys(
        ("/go", "/meta", "/file"), "redirect_refused"
    )
    assert "another host" in rows["/go"]["detail"] and "not an http(s) URL" in rows["/file"]["detail"]
    assert rows["/a.html"]["outcome"] == "archived"
    assert _archived_urls(tmp_path) == [site.url + "/a.html"]  # the fake credentials were never fetched


def test_allowed_redirect_host_still_cannot_reach_metadata(servers, tmp_path):
    other = servers({"/x.html": (200, {}, PAGE)})
    site = servers(
        {
            "/robots.txt": (404, {}, b""),
            "/to-other": (302, {"Location": f"http://localhost:{other.port}/x.html"}, b""),
            "/meta": (302, {"Location": "http://169.254.169.254/latest/"}, b""),
        }
    )
    cfg = _cfg(redirect_hosts=[f"localhost:{other.port}", "169.254.169.254"])
    t0 = time.monotonic()
    _, rows = _crawl(site, tmp_path, cfg, ["/to-other", "/meta"])
    assert rows["/to-other"]["outcome"] == "archived" and other.hits == ["/x.html"]
    assert rows["/meta"]["outcome"] == "address_refused" and "169.254.169.254" in rows["/meta"]["detail"]
    assert time.monotonic() - t0 < 3  # refused before connecting, not after a connect timeout
    # the page is archived under the URL it came from, not the seed's
    assert _archived_urls(tmp_path) == [f"http://localhost:{other.port}/x.html"]
    assert "redirected to" in rows["/to-other"]["detail"]


def test_same_host_redirect_archives_the_final_url_once(servers, tmp_path):
    site = servers(
        {
            "/robots.txt": (404, {}, b""),
            "/old": (301, {"Location": "/a.html"}, b""),
            "/a.html": (200, {}, PAGE),
            "/b.html": (200, {}, PAGE.replace(b"/b.html", b"/a.html")),
        }
    )
    _, rows = _crawl(site, tmp_path, _cfg(), ["/old", "/a.html"])
    assert sorted(_archived_urls(tmp_path)) == [site.url + "/a.html", site.url + "/b.html"]
    assert rows["/old"]["outcome"] == "archived" and rows["/a.html"]["outcome"] == "duplicate"


def test_private_seed_needs_the_setting(servers, tmp_path):
    site = servers({"/robots.txt": (404, {}, b""), "/a.html": (200, {}, PAGE)})
    _, rows = _crawl(site, tmp_path, _cfg(allow_private_seeds=False), ["/a.html"])
    assert site.hits == []
    assert rows["/a.html"]["outcome"] == "address_refused" and "allow_private_seeds" in rows["/a.html"]["detail"]


def _drip(handler):
    handler.send_response(200)
    handler.send_header("Content-Type", "text/html")
    handler.send_header("Content-Length", "100000")
    handler.end_headers()
    try:
        for _ in range(60):
            handler.wfile.write(b"x")
            handler.wfile.flush()
            time.sleep(1)
    except OSError:
        pass


def _drip_headers(handler):
    try:
        handler.wfile.write(b"HTTP/1.1 200 OK\r\n")
        for i in range(60):
            handler.wfile.write(b"X")
            handler.wfile.flush()
            time.sleep(1)
    except OSError:
        pass


@pytest.mark.parametrize("route", [_drip, _drip_headers])
def test_a_server_that_drips_cannot_hold_the_crawl(servers, tmp_path, route):
    site = servers({"/robots.txt": (404, {}, b""), "/slow.html": route})
    t0 = time.monotonic()
    _, rows = _crawl(site, tmp_path, _cfg(timeout_seconds=2, retries=0), ["/slow.html"])
    assert time.monotonic() - t0 < 6
    assert rows["/slow.html"]["outcome"] == "fetch_error" and "timeout" in rows["/slow.html"]["detail"]


def test_retries_wait_the_host_delay(servers, tmp_path):
    state = {"n": 0}

    def flaky(handler):
        state["n"] += 1
        code, body = (503, b"busy") if state["n"] <= 2 else (200, PAGE)
        handler.send_response(code)
        handler.send_header("Content-Type", "text/html")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    site = servers(
        {
            "/robots.txt": (404, {}, b""),
            "/flaky.html": flaky,
            "/limited.html": (429, {}, b"slow down"),
            "/b.html": (200, {}, PAGE),
        }
    )
    cfg = _cfg(delay_seconds=0.3, backoff_seconds=0.0, retries=2)
    _, rows = _crawl(site, tmp_path, cfg, ["/flaky.html", "/limited.html"])
    assert rows["/flaky.html"]["outcome"] == "archived" and rows["/flaky.html"]["retries"] == 2
    assert rows["/limited.html"]["outcome"] == "http_status" and rows["/limited.html"]["retries"] == 2
    gaps = [b - a for a, b in zip(site.times, site.times[1:])]
    assert len(site.times) >= 7 and min(gaps) >= 0.28, gaps


def test_connect_refused_on_closed_port_is_a_fetch_error(tmp_path):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    c = HostCrawler(
        f"http://127.0.0.1:{port}",
        [f"http://127.0.0.1:{port}/a"],
        _cfg(retries=1),
        str(tmp_path / "warc"),
        "r",
        10,
        10**6,
    )
    rows = list(c.crawl())
    assert rows[0]["outcome"] == "robots_unreachable" and "retries" in rows[0]["detail"]
