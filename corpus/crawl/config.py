"""Config sections of the `crawl` package's stage, beside its code; :mod:`corpus.config` assembles them into
the run config (and re-exports them, so ``from corpus.config import ...`` keeps working)."""

from __future__ import annotations


from pydantic import (
    ByteSize,
    Field,
)

from corpus.sections import Part, Section


class CrawlSection(Section):
    """The `crawl` stage: seed URLs → WARC.gz files, one Spark task per host (see corpus/crawl/host.py)."""

    seeds: list[str] = Field(
        default_factory=list,
        description="Seed URLs (http/https). Hosts are crawled "
        "apart, one task each; links are followed on the same host only.",
    )
    seeds_file: str | None = Field(
        None, description="A file with one seed URL per line (`#` comments), added to `seeds`."
    )
    source: str = Field("crawl", description="`source` of the documents made from crawled pages.")
    part: Part = Field("tool_doc", description="Part the crawled pages start in (docs sites are tool docs).")
    archive: str | None = Field(
        None,
        description="Folder the WARC.gz files go to and stay in across runs "
        "(resume). Default: `<run.output>/crawl-warc`.",
    )
    user_agent: str = Field(
        "agent-corpus-forge/0.1 (pretraining-corpus crawler; obeys robots.txt)",
        description="User-Agent sent, and the name robots.txt rules are matched against.",
    )
    delay_seconds: float = Field(
        1.0, ge=0, description="Least time between request starts on one host; a larger robots.txt Crawl-delay wins."
    )
    max_crawl_delay_seconds: float = Field(30.0, ge=0, description="Cap on a robots.txt Crawl-delay.")
    host_concurrency: int = Field(1, ge=1, le=16, description="Requests in flight per host.")
    retries: int = Field(
        3,
        ge=0,
        le=10,
        description="Retries on 429, 5xx and connection errors; each waits "
        "its turn like any request (`delay_seconds`, Crawl-delay).",
    )
    backoff_seconds: float = Field(
        0.5,
        ge=0,
        description="Wait before retry n when the server sent no "
        "Retry-After: factor × 2^(n-1). The wait holds back every request to the host.",
    )
    max_retry_after_seconds: float = Field(60.0, ge=0, description="A Retry-After header is honoured up to this wait.")
    timeout_seconds: float = Field(
        30.0,
        gt=0,
        description="Time for one response, connect to last byte (a "
        "watchdog closes the connection then, so a server sending a byte a second "
        "cannot hold the crawl).",
    )
    max_redirects: int = Field(5, ge=0, le=20, description="Redirect hops followed per URL.")
    redirect_hosts: list[str] = Field(
        default_factory=list,
        description="Hosts (`host` or `host:port`) that "
        "redirects may lead to besides the seed's own host; others are refused "
        "(`redirect_refused`).",
    )
    allow_private_seeds: bool = Field(
        False,
        description="Let a seed on a loopback, private or link-local "
        "address be crawled (a docs site on 127.0.0.1). Connections to such "
        "addresses are otherwise refused (`address_refused`), as are redirects "
        "and DNS answers that lead there: the crawler cannot be pointed at a "
        "cloud metadata service or an internal network.",
    )
    max_pages: int = Field(10_000, ge=1, description="Pages archived in total; split evenly across hosts.")
    max_pages_per_host: int = Field(2_000, ge=1, description="Pages archived per host.")
    max_bytes: ByteSize = Field(
        ByteSize(2 * 1024**3), description="Bytes archived in total; split evenly across hosts."
    )
    max_bytes_per_host: ByteSize = Field(ByteSize(512 * 1024**2), description="Bytes archived per host.")
    max_page_bytes: ByteSize = Field(
        ByteSize(8 * 1024**2),
        description="Bodies over this are refused (`too_large`); the download stops at the limit.",
    )
    max_depth: int = Field(10, ge=0, description="Link hops from a seed.")
    content_types: list[str] = Field(
        [
            "text/html",
            "application/xhtml+xml",
            "text/plain",
            "application/json",
            "application/yaml",
            "application/x-yaml",
            "text/yaml",
            "text/x-yaml",
        ],
        description="MIME types archived; others are logged as `content_type`.",
    )
    warc_file_pages: int = Field(
        500,
        ge=1,
        description="Pages per WARC file; each file is committed (renamed "
        "into place) when full, so a killed crawl keeps what it committed.",
    )
