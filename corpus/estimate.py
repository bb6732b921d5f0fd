"""What a run will cost before it runs: core-hours per stage, from each stage's measured rate per core and the
documents it will read.

``forge run --check`` prints it for the config's web inputs (their size listed, their pages per byte counted on
a sample of the first file), and the README's cost table for 100B tokens is :func:`hundred_billion_tokens`. The
model is deliberately simple and printed in full, so a user can see what it assumes:

* each stage costs ``documents in / (documents per second per core)``;
* the documents a stage reads are the ones the stages before it kept (``KEEP``: stated assumptions, not
  measurements of your data; a finished run's stats give the real shares);
* the rates are this project's own benchmarks on a 2-core machine (``RATES``, each naming the bench that
  measured it). A faster or slower core scales every figure alike.
"""

from __future__ import annotations

from dataclasses import dataclass

from corpus.config import Config
from corpus.io import files


@dataclass(frozen=True)
class Rate:
    docs_per_s_per_core: float
    measured: str  # the bench and the section of bench/RESULTS.md the figure comes from


# Stage time on local[2] divided by 2, at the largest size each was measured at (bench/RESULTS.md, the section
# named). The per-document stages of the web path were measured on 1,000,000 documents (`make bench-scale`).
RATES: dict[str, Rate] = {
    "ingest-web/trafilatura": Rate(24.5, "bench/scale.py --stages ingest-trafilatura: 20,000 real pages (#29)"),
    "ingest-web/resiliparse": Rate(477.0, "bench/scale.py --stages ingest-resiliparse: 100,000 real pages (#29)"),
    "ingest-web/wet": Rate(12_862.0, "bench/scale.py --stages ingest-wet: 1,000,000 WET records (#29)"),
    "filter": Rate(1_069.0, "bench/scale.py --stages filter: 1,000,000 documents (#29)"),
    "dedup": Rate(7_306.0, "bench/scale.py --stages dedup: 1,000,000 documents (#29)"),
    "classify": Rate(7_533.0, "bench/scale.py --stages classify: 1,000,000 documents, a trained model (#29)"),
    "extract": Rate(4_000.0, "bench/run.py --only extract: the rules' rate on docs pages (#5)"),
    "decontaminate": Rate(8_905.0, "bench/scale.py --stages decontaminate: 1,000,000 documents, BFCL v4 (#29)"),
    "redact": Rate(3_383.0, "bench/scale.py --stages redact: 1,000,000 documents (#29)"),
    "mix": Rate(51_292.0, "bench/scale.py --stages pipeline: 859,136 documents in at 1M (#29)"),
    "write": Rate(12_000.0, "bench/run.py --only output: 206,547 rows in 8.4 s on 2 cores (#7)"),
}

# The share of documents each stage passes on. Assumptions, to be replaced by a run's own stats.
KEEP: dict[str, tuple[float, str]] = {
    "ingest-web": (0.9, "HTML pages with main text (assumed)"),
    "filter": (0.3, "English and of web-quality (assumed: about 45% of Common Crawl is English)"),
    "dedup": (0.7, "unique within the run (assumed)"),
    "classify": (0.02, "agent-relevant: recalled as agent_web (assumed; the part the web path exists for)"),
}
# After dedup, classify, decontaminate, redact and mix read every kept document (the general text goes on to the
# mix too); extract reads the recalled ones, and write the recalled ones the output is built around.
EVERY_KEPT = ("classify", "decontaminate", "redact", "mix")
RECALLED = ("extract", "write")
TOKENS_PER_PAGE = 1_200  # DCLM-Pool: ~240T tokens in ~200B Common Crawl pages (arXiv 2406.11794)
CRAWL_PAGES = 3.0e9  # one monthly Common Crawl archive: ~3B pages in ~75 TB of WARC (arXiv 2404.09770)
CRAWL_WARC_BYTES = 75e12
PRICE_PER_CORE_HOUR = 0.04  # USD, stated for the README table: about an on-demand x86 vCPU-hour


@dataclass
class Estimate:
    pages: float
    rows: list[tuple[str, float, float, str]]  # (stage, documents in, core-hours, rate's source)
    output_documents: float

    @property
    def core_hours(self) -> float:
        return sum(r[2] for r in self.rows)

    def lines(self) -> list[str]:
        out = [f"  {'stage':<15} {'documents in':>14} {'core-hours':>11}"]
        out += [f"  {s:<15} {d:>14,.0f} {h:>11,.2f}" for s, d, h, _ in self.rows]
        out.append(f"  {'total':<15} {'':>14} {self.core_hours:>11,.2f}")
        return out


def estimate(
    pages: float, engine: str = "trafilatura", wet_records: float = 0.0, stages: set[str] | None = None
) -> Estimate:
    """Core-hours for the web path over ``pages`` HTML pages of WARC and ``wet_records`` WET text records,
    through ``stages`` (default: all; a stage switched off neither costs nor drops anything)."""
    rows = []

    def add(stage: str, docs: float, rate_key: str) -> None:
        if stages is None or stage.split()[0] in stages:
            rate = RATES[rate_key]
            rows.append((stage, docs, docs / rate.docs_per_s_per_core / 3600, rate.measured))

    if pages:
        add("ingest-web", pages, f"ingest-web/{engine}")
    if wet_records:
        add("ingest-web (WET)", wet_records, "ingest-web/wet")
    docs = (pages + wet_records) * KEEP["ingest-web"][0]
    for stage in ("filter", "dedup"):
        add(stage, docs, stage)
        if stages is None or stage in stages:
            docs *= KEEP[stage][0]
    for stage in EVERY_KEPT:
        add(stage, docs, stage)
    if stages is None or "classify" in stages:
        docs *= KEEP["classify"][0]
    for stage in RECALLED:
        add(stage, docs, stage)
    return Estimate(pages + wet_records, rows, docs)


def hundred_billion_tokens(engine: str = "trafilatura", wet: bool = False, tokens: float = 100e9) -> dict:
    """The README's table row: the pages, crawls, core-hours and dollars to forge ``tokens`` of agent-relevant
    web text under the assumptions above."""
    per_page = KEEP["ingest-web"][0] * KEEP["filter"][0] * KEEP["dedup"][0] * KEEP["classify"][0]
    pages = tokens / TOKENS_PER_PAGE / per_page
    est = estimate(0.0, engine, pages) if wet else estimate(pages, engine)
    return {
        "pages": pages,
        "crawls": pages / CRAWL_PAGES,
        "core_hours": est.core_hours,
        "dollars": est.core_hours * PRICE_PER_CORE_HOUR,
        "by_stage": {s: h for s, _, h, _ in est.rows},
    }


def count_pages(path: str, size: int, sample_bytes: int = 16 << 20) -> tuple[int, int]:
    """(pages, bytes they came from) in the first ``sample_bytes`` of a WARC/WET file of ``size`` bytes: HTML
    responses or WET conversion records, the records ingest-web reads."""
    from warcio.archiveiterator import ArchiveIterator

    pages = 0
    with files.open_input(path) as raw:
        it = ArchiveIterator(raw)
        for rec in it:
            if rec.rec_type in ("response", "conversion"):
                pages += 1
            if it.get_record_offset() >= sample_bytes:
                return pages, it.get_record_offset()
    return pages, max(size, 1)  # the whole file


def web_pages(config: Config) -> tuple[float, float, list[str]]:
    """An estimate of the HTML pages and the WET records in the config's web inputs (each input's size × the
    pages per byte counted in its first file), and how it was made."""
    from corpus.web.warc import HTML_SUFFIXES, WARC_SUFFIXES, WET_SUFFIXES

    pages = wet = 0.0
    how = []
    for spec in config.inputs.web:
        try:
            entries = files.list_files(spec.path, None) if files.exists(spec.path) else []
        except Exception as err:  # noqa: BLE001 - an unreachable store: the check reports it; the estimate skips it
            how.append(f"{spec.path}: not listed ({type(err).__name__})")
            continue
        htmls = [e for e in entries if e.path.lower().endswith(HTML_SUFFIXES)]
        for kind, suffixes in (("WET", WET_SUFFIXES), ("WARC", WARC_SUFFIXES)):
            found = [e for e in entries if e.path.lower().endswith(suffixes)]
            if kind == "WARC":
                found = [e for e in found if not e.path.lower().endswith(WET_SUFFIXES)]
            if not found:
                continue
            size = sum(e.size for e in found)
            try:
                counted, read = count_pages(found[0].path, found[0].size)
            except Exception as err:  # noqa: BLE001 - a damaged first file: the estimate says so, the run rejects it
                how.append(f"{spec.path}: could not count the records of {found[0].path}: {type(err).__name__}")
                continue
            n = size * counted / read
            if kind == "WET":
                wet += n
            else:
                pages += n
            how.append(
                f"{spec.path}: {len(found)} {kind} files, {size / 1e9:,.2f} GB, "
                f"{counted / read * 1e6:,.1f} records per MB (counted in the first file)"
            )
        if htmls:
            pages += len(htmls)
            how.append(f"{spec.path}: {len(htmls)} HTML files")
    return pages, wet, how


def summary(config: Config) -> str:
    """The estimate ``forge run --check`` prints for the config's web inputs ("" when it has none)."""
    pages, wet, how = web_pages(config)
    if not pages + wet:
        return ""
    from corpus.pipeline import plan

    running = {stage.name for stage, *_ in plan(config)}
    est = estimate(pages, config.ingest_web.extract.engine, wet, running)
    kept = ", ".join(f"{s} {k:.0%}" for s, (k, _) in KEEP.items() if s in running)
    lines = ["", "", f"cost estimate (web path, {pages + wet:,.0f} pages):"] + [f"  {h}" for h in how] + est.lines()
    lines.append(f"  assumes the kept shares {kept}")
    lines.append("  and this project's measured rates per core (corpus/estimate.py; docs/cost.md)")
    return "\n".join(lines)
