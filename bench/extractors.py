"""Main-text extraction engines side by side (issue #29): trafilatura and Resiliparse, as `ingest-web` runs them
(`ingest-web.extract.engine`), on the same real pages in one process each: pages/s, and token precision, recall
and F1 against the page's main content as its own markup marks it. Also WARC reading: warcio (what ingest-web
uses) against fastwarc on the same WARC.gz files.

    python bench/extractors.py            (also: python bench/run.py --only extractors)

Pages: the HTML manuals of Debian's python3.11-doc (Sphinx: the main content is `div[@role="main"]`) and
postgresql-doc-15 (DocBook: the page's body less its `div.navheader` and `div.navfooter`), installed with
apt-get if missing. The reference text is that element's text; both sides are compared as bags of
whitespace-separated tokens, the metric of the article-extraction benchmarks (scrapinghub's
article-extraction-benchmark scores token-level precision, recall and F1 the same way).
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from run import DEBIAN_DOCS, WORK, ensure_debian_docs  # noqa: E402

# Sphinx pages: the main content element; DocBook pages: the body without the navigation blocks
MAIN = {
    "python3.11-doc": ('//div[@role="main"]', ()),
    "postgresql-doc-15": ("//body", ('//div[@class="navheader"]', '//div[@class="navfooter"]')),
}


def reference(html: bytes, package: str) -> str | None:
    """The page's main text as its markup marks it, or None when the page has no such element."""
    import lxml.html

    tree = lxml.html.fromstring(html)
    main_path, drop = MAIN[package]
    for path in drop:
        for el in tree.xpath(path):
            el.drop_tree()
    for el in tree.xpath("//script|//style"):
        el.drop_tree()
    found = tree.xpath(main_path)
    return found[0].text_content() if found else None


def scores(got: str, want: str) -> tuple[float, float, float]:
    g, w = Counter(got.split()), Counter(want.split())
    overlap = sum((g & w).values())
    p = overlap / sum(g.values()) if g else 0.0
    r = overlap / sum(w.values()) if w else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def pages() -> list[tuple[str, bytes, str]]:
    """(package, page bytes, reference text) of every page with a main-content element."""
    out = []
    for package in ensure_debian_docs():
        if package not in MAIN:
            continue
        root, _ = DEBIAN_DOCS[package]
        for f in sorted(root.rglob("*.html")):
            body = f.read_bytes()
            ref = reference(body, package)
            if ref and len(ref.split()) >= 20:
                out.append((package, body, ref))
    return out


def run_engine(engine: str, docs: list[tuple[str, bytes, str]]) -> dict:
    from corpus.config import HtmlExtractSection
    from corpus.web.html import decode, make_extractor

    extract = make_extractor(HtmlExtractSection(engine=engine, metadata=False))
    texts = [decode(body).text for _, body, _ in docs]
    extract(texts[0])  # warm (imports)
    t0 = time.perf_counter()
    got = [extract(t) for t in texts]
    seconds = time.perf_counter() - t0
    by_package: dict[str, list[tuple[float, float, float]]] = {}
    for (package, _, ref), ex in zip(docs, got):
        by_package.setdefault(package, []).append(scores(ex.text if ex else "", ref))
    every = [s for v in by_package.values() for s in v]

    def mean(rows, i):
        return round(sum(r[i] for r in rows) / len(rows), 4)

    return {
        "pages": len(docs),
        "seconds": round(seconds, 2),
        "pages_per_s": round(len(docs) / seconds, 1),
        "precision": mean(every, 0),
        "recall": mean(every, 1),
        "f1": mean(every, 2),
        "by_package": {p: {"pages": len(v), "f1": mean(v, 2)} for p, v in by_package.items()},
    }


def warc_reading() -> dict:
    """Records and payload bytes of the bench's WARC.gz files (bench/run.py builds them) read by warcio and by
    fastwarc, best of 3 each."""
    from run import build_pages

    files = sorted(build_pages().glob("*.warc.gz"))

    def with_warcio():
        from warcio.archiveiterator import ArchiveIterator

        n = size = 0
        for f in files:
            with open(f, "rb") as fh:
                for rec in ArchiveIterator(fh):
                    if rec.rec_type == "response":
                        size += len(rec.content_stream().read())
                        n += 1
        return n, size

    def with_fastwarc():
        from fastwarc.warc import ArchiveIterator, WarcRecordType

        n = size = 0
        for f in files:  # the path: fastwarc opens it and detects the gzip stream itself
            for rec in ArchiveIterator(str(f), record_types=WarcRecordType.response, parse_http=True):
                size += len(rec.reader.read())
                n += 1
        return n, size

    out = {"files": len(files), "megabytes": round(sum(f.stat().st_size for f in files) / 1e6, 1)}
    for name, fn in (("warcio", with_warcio), ("fastwarc", with_fastwarc)):
        best, got = float("inf"), None
        for _ in range(3):
            t0 = time.perf_counter()
            got = fn()
            best = min(best, time.perf_counter() - t0)
        out[name] = {"records": got[0], "payload_mb": round(got[1] / 1e6, 1), "seconds": round(best, 3)}
    out["fastwarc_vs_warcio"] = round(out["warcio"]["seconds"] / out["fastwarc"]["seconds"], 2)
    return out


def main() -> dict:
    docs = pages()
    result = {"engines": {e: run_engine(e, docs) for e in ("trafilatura", "resiliparse")}}
    t, r = result["engines"]["trafilatura"], result["engines"]["resiliparse"]
    result["resiliparse_speed_vs_trafilatura"] = round(r["pages_per_s"] / t["pages_per_s"], 1)
    result["warc_reading"] = warc_reading()
    WORK.mkdir(parents=True, exist_ok=True)
    (WORK / "extractors.json").write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
