"""What the crawler may connect to, and for how long: the defences that keep a crawl from being turned against
the machines it runs on (server-side request forgery) or held open by a slow server.

* **Addresses.** Every connection is checked after it is made, against the address the socket actually reached
  (so a host name that resolves, or later re-resolves, to an internal address is caught, not just literal IPs):
  loopback, private (RFC 1918, unique-local IPv6), link-local (169.254.0.0/16, where cloud metadata services
  answer, and fe80::/10), and reserved, multicast or unspecified addresses are refused. A crawl whose seed host is
  itself on such an address (a docs site on 127.0.0.1) may reach that *kind* of address, and only when
  ``crawl.allow_private_seeds`` says so; reserved, multicast and unspecified addresses are never reached.
* **Time.** Each response gets ``timeout_seconds`` in all, connect to last byte: a watchdog shuts the socket down
  when the time is up, so a server that sends a byte a second cannot hold the crawl (a per-read timeout alone
  never fires on it).

Redirects are followed by :class:`corpus.crawl.host.HostCrawler` itself, hop by hop, each target checked here and
against the seed's host.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from dataclasses import dataclass, field

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

KINDS = ("loopback", "private", "link_local", "reserved")


class AddressRefused(urllib3.exceptions.HTTPError):
    """A connection reached an address the crawl may not use (the message names it and why)."""


def address_kind(ip: str) -> str:
    """``public`` or one of KINDS for an IP address (IPv4-mapped IPv6 addresses are judged as IPv4)."""
    addr = ipaddress.ip_address(ip.split("%", 1)[0])
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    if addr.is_loopback:
        return "loopback"
    if addr.is_link_local:
        return "link_local"
    if addr.is_multicast or addr.is_unspecified or addr.is_reserved:
        return "reserved"
    if addr.is_private or not addr.is_global:  # RFC 1918, ULA, CGNAT, documentation ranges
        return "private"
    return "public"


def host_kinds(hostname: str, port: int | None = None) -> set[str]:
    """The address kinds a host name resolves to now (empty if it does not resolve)."""
    try:
        infos = socket.getaddrinfo(hostname, port or 80, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return set()
    return {address_kind(info[4][0]) for info in infos}


@dataclass
class Policy:
    """The address kinds a crawler may reach: public ones, plus the kinds of its seed host's own addresses when
    the config allows private seeds (never ``reserved``)."""

    allowed: frozenset[str] = frozenset({"public"})

    @classmethod
    def for_seed(cls, hostname: str, port: int | None, allow_private_seeds: bool) -> "Policy":
        extra = host_kinds(hostname, port) - {"public", "reserved"} if allow_private_seeds else set()
        return cls(frozenset({"public"} | extra))

    def check(self, ip: str) -> None:
        kind = address_kind(ip)
        if kind not in self.allowed:
            hint = (
                ""
                if kind == "reserved"
                else (" (only a seed host on such an address may be crawled, with crawl.allow_private_seeds)")
            )
            raise AddressRefused(f"refused to connect to {ip}: a {kind.replace('_', '-')} address{hint}")


@dataclass
class Deadline:
    """One response's time budget: :meth:`expire` (called by a timer) shuts down the connection in use, which
    wakes any read blocked on it."""

    conn: object | None = None
    expired: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def expire(self) -> None:
        with self.lock:
            self.expired = True
            sock = getattr(self.conn, "sock", None)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


_current = threading.local()  # the fetching thread's Policy and Deadline, read by its connections


class _Checked:
    """Mixin for urllib3's connections: the peer address is checked as soon as the socket connects, and the
    connection registers itself with the request's deadline."""

    def _new_conn(self):
        policy = getattr(_current, "policy", None)
        if policy is not None and _is_ip(self.host):  # a literal address is refused before any packet is sent
            policy.check(self.host.strip("[]"))
        sock = super()._new_conn()
        try:
            peer = sock.getpeername()[0]
            if policy is None:
                raise AddressRefused("no address policy set for this request")
            policy.check(peer)
        except BaseException:
            sock.close()
            raise
        return sock

    def request(self, *args, **kwargs):
        deadline = getattr(_current, "deadline", None)
        if deadline is not None:
            with deadline.lock:
                deadline.conn = self
                if deadline.expired:
                    raise urllib3.exceptions.ReadTimeoutError(None, None, "response time limit reached")
        return super().request(*args, **kwargs)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return False
    return True


class CheckedHTTPConnection(_Checked, HTTPConnection):
    pass


class CheckedHTTPSConnection(_Checked, HTTPSConnection):
    pass


class CheckedHTTPPool(HTTPConnectionPool):
    ConnectionCls = CheckedHTTPConnection


class CheckedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = CheckedHTTPSConnection


def pool_manager(**kwargs) -> urllib3.PoolManager:
    """A PoolManager whose every connection goes through the checks above (no redirects, no retries: the
    crawler does both itself, so that each hop and each retry is checked and waits its turn)."""
    manager = urllib3.PoolManager(retries=False, **kwargs)
    manager.pool_classes_by_scheme = {"http": CheckedHTTPPool, "https": CheckedHTTPSPool}
    return manager


class guarded:
    """Context for one request in this thread: the policy its connections are checked against, and a deadline
    of ``seconds`` after which its connection is shut down."""

    def __init__(self, policy: Policy, seconds: float) -> None:
        self.policy, self.seconds = policy, seconds
        self.deadline = Deadline()

    def __enter__(self) -> Deadline:
        _current.policy, _current.deadline = self.policy, self.deadline
        self._timer = threading.Timer(self.seconds, self.deadline.expire)
        self._timer.daemon = True
        self._timer.start()
        return self.deadline

    def __exit__(self, *exc) -> None:
        self._timer.cancel()
        _current.policy = _current.deadline = None
