"""The ``crawl`` stage: seed URLs → WARC.gz files in an archive folder, one Spark task per host.

Seeds come from ``crawl.seeds``, ``crawl.seeds_file`` and, for ``forge crawl --input FILE``, seed files (one URL
per line). The driver groups them by host (``scheme://host:port``) and gives each host one task, so politeness
(delay, concurrency, robots.txt) is enforced in one place per host and hosts are crawled in parallel across
executors. The total page and byte limits are split evenly over the hosts (each host gets
``min(per-host limit, total / hosts)``): no cross-task coordination is needed, at the price of leaving a small
host's unused share idle.

The WARC files go to the archive folder (``crawl.archive``, default ``<output>-warc``), committed file by file,
and stay there across runs: a rerun reads them first and fetches nothing they hold. The stage's own output is
``log/`` (crawl_log schema: one row per URL considered) with stats: rows in = URLs considered, rows out =
pages archived, rejected = the other outcomes by reason.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Iterable, Iterator

import pyarrow as pa

from corpus import schema
from corpus.config import ConfigError, CrawlSection
from corpus.crawl.host import ARCHIVED, HostCrawler, host_key, normalize_url, run_id
from corpus.spark import datasets
from corpus.stages import archive_path

TASK = pa.schema(
    [
        pa.field("host", pa.string()),
        pa.field("seeds", pa.list_(pa.string())),
        pa.field("pages", pa.int64()),
        pa.field("bytes", pa.int64()),
    ]
)


class SeedError(ConfigError):
    """No seeds, or a seed that is not an http(s) URL (the message names it)."""


def read_seeds(cfg: CrawlSection, files: Iterable[str] = ()) -> list[str]:
    """Normalised, de-duplicated seeds from the config and seed files; a bad URL is an error naming it."""
    from corpus.io.files import read_text

    raw = list(cfg.seeds)
    for path in ([cfg.seeds_file] if cfg.seeds_file else []) + list(files):
        raw += [
            line.strip() for line in read_text(path).splitlines() if line.strip() and not line.strip().startswith("#")
        ]
    out = []
    for s in raw:
        url = normalize_url(s)
        if url is None:
            raise SeedError(f"crawl seed {s!r} is not an http(s) URL")
        if url not in out:
            out.append(url)
    return out


def plan_hosts(seeds: list[str], cfg: CrawlSection) -> list[dict]:
    hosts: dict[str, list[str]] = {}
    for s in seeds:
        hosts.setdefault(host_key(s), []).append(s)
    n = max(1, len(hosts))
    pages = min(cfg.max_pages_per_host, max(1, cfg.max_pages // n))
    nbytes = min(int(cfg.max_bytes_per_host), max(1, int(cfg.max_bytes) // n))
    return [{"host": h, "seeds": s, "pages": pages, "bytes": nbytes} for h, s in sorted(hosts.items())]


def crawl_batch(
    batches: Iterable[pa.RecordBatch], cfg: CrawlSection, archive: str, run: str
) -> Iterator[pa.RecordBatch]:
    """mapInArrow function: host tasks → crawl_log batches (one host at a time; rows flushed every 100)."""
    target = schema.load("crawl_log").arrow
    for batch in batches:
        for task in batch.to_pylist():
            crawler = HostCrawler(task["host"], task["seeds"], cfg, archive, run, task["pages"], task["bytes"])
            rows = []
            for row in crawler.crawl():
                rows.append(row)
                if len(rows) >= 100:
                    yield pa.RecordBatch.from_pylist(rows, schema=target)
                    rows = []
            yield pa.RecordBatch.from_pylist(rows, schema=target)


def build(ctx):
    from corpus.io import files
    from corpus.stage import Outcome

    cfg: CrawlSection = ctx.config.crawl
    spark = ctx.spark
    seeds = read_seeds(cfg, [str(getattr(i, "path", i)) for i in ctx.inputs if not isinstance(i, CrawlSection)])
    if not seeds:
        raise SeedError("crawl: no seed URLs (set crawl.seeds or crawl.seeds_file, or pass --input FILE)")
    archive = archive_path(cfg, ctx.output)
    files.make_dirs(archive)
    hosts = plan_hosts(seeds, cfg)
    run = run_id(seeds, datetime.now(timezone.utc).isoformat())
    task_df = datasets.task_rows(spark, pa.Table.from_pylist(hosts, TASK), len(hosts))
    log_df = task_df.mapInArrow(lambda it: crawl_batch(it, cfg, archive, run), schema.load("crawl_log").spark)
    spark.sparkContext.setJobDescription("forge crawl: fetch and archive")
    datasets.write(log_df, ctx.path("log"))
    # the log is one small row per URL: its outcome counts are read from the written files
    import pyarrow.dataset as ds

    fs, inner = files.filesystem(ctx.path("log"))
    table = ds.dataset(inner, format="parquet", filesystem=fs).to_table(columns=["outcome", "retries", "bytes"])
    outcomes: dict[str, int] = {}
    for o in table["outcome"].to_pylist():
        outcomes[o] = outcomes.get(o, 0) + 1
    resumed = outcomes.pop("resumed", 0)
    archived = outcomes.pop(ARCHIVED, 0)
    import pyarrow.compute as pc

    counters = {
        "hosts": len(hosts),
        "seeds": len(seeds),
        "resumed_hosts": resumed,
        "retries": int(pc.sum(table["retries"]).as_py() or 0),
        "bytes_archived": int(pc.sum(pc.if_else(pc.equal(table["outcome"], ARCHIVED), table["bytes"], 0)).as_py() or 0),
    }
    warcs = [e.path for e in files.list_files(archive, (".warc.gz",))] if files.exists(archive) else []
    return Outcome(
        rows_in=table.num_rows - resumed,
        rows_out=archived,
        rejected=dict(sorted(outcomes.items())),
        counters=counters,
        extra={"archive": archive, "warc_files": len(warcs), "run_id": run},
    )
