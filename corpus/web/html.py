"""HTML pages to text: decoding the bytes, and main-text extraction under a time limit, by trafilatura (the
default: the best main text) or Resiliparse (``ingest-web.extract.engine: resiliparse``: DCLM's choice, many times
faster, a little less exact; bench/extractors.py measures both on the same pages)."""

from __future__ import annotations

import codecs
import logging
import re
import signal
import threading
from contextlib import contextmanager
from dataclasses import dataclass

from corpus.config import HtmlExtractSection

# Magic numbers of payloads that are certainly not HTML (images, PDF, archives, fonts, media).
_BINARY_MAGIC = (
    b"\x89PNG",
    b"GIF8",
    b"\xff\xd8\xff",
    b"%PDF",
    b"PK\x03\x04",
    b"\x1f\x8b",
    b"BZh",
    b"\xfd7zXZ",
    b"RIFF",
    b"OggS",
    b"wOFF",
    b"wOF2",
    b"\x00\x00\x01\x00",
    b"ID3",
    b"\x7fELF",
)
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)
_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


class ExtractionTimeout(BaseException):
    """Raised by the timer signal. A BaseException (like KeyboardInterrupt), so that the broad
    ``except Exception`` blocks inside trafilatura and htmldate cannot swallow it."""


def looks_binary(payload: bytes) -> bool:
    """True for payloads that are certainly not markup: known binary magic, or NUL bytes in the first 1 KiB
    (HTML has none; UTF-16 pages start with a BOM and are checked before this)."""
    head = payload[:1024]
    if head.startswith(_BINARY_MAGIC):
        return True
    if any(head.startswith(bom) for bom, _ in _BOMS):
        return False
    return b"\x00" in head


def codec_name(label: str | None) -> str | None:
    """Python's codec for a declared charset label, or None when Python does not know it."""
    if not label:
        return None
    try:
        return codecs.lookup(label.strip().strip("\"'").lower()).name
    except LookupError:
        return None


@dataclass(frozen=True)
class Decoded:
    text: str
    encoding: str
    how: str  # bom | utf-8 | declared | meta | detected | utf-8-replace
    replacements: int


def decode(payload: bytes, declared: str | None = None) -> Decoded:
    """Decode a page's bytes.

    Order: a byte-order mark; strict UTF-8 (valid multi-byte UTF-8 is practically never another encoding, and
    pages mislabelled latin-1 are common); the HTTP charset; the ``<meta>`` charset; charset-normalizer's
    guess; and finally UTF-8 with replacement characters, whose count is returned so the caller can reject
    pages that are mostly undecodable. Unknown charset labels (``x-user-defined``, typos) are skipped.
    """
    for bom, enc in _BOMS:
        if payload.startswith(bom):
            text = payload.decode(enc, errors="replace")
            return Decoded(text, enc, "bom", text.count("\ufffd"))
    try:
        return Decoded(payload.decode("utf-8"), "utf-8", "utf-8", 0)
    except UnicodeDecodeError:
        pass
    meta = _META_CHARSET.search(payload[:4096])
    candidates = [
        (codec_name(declared), "declared"),
        (codec_name(meta.group(1).decode("ascii", "ignore")) if meta else None, "meta"),
    ]
    for enc, how in candidates:
        if enc and enc != "utf-8":
            try:
                return Decoded(payload.decode(enc), enc, how, 0)
            except UnicodeDecodeError:
                continue
    # Most real pages land above. A page declared UTF-8, or with at least as many valid multi-byte UTF-8
    # sequences as bad bytes (such sequences almost never arise by chance in a legacy codepage), is UTF-8 with
    # a few errors; for the rest charset-normalizer (a trafilatura dependency) guesses.
    lenient = payload.decode("utf-8", errors="replace")
    bad = lenient.count("\ufffd")
    valid_multibyte = sum(1 for ch in lenient if ord(ch) > 127) - bad
    declared_utf8 = any(enc == "utf-8" for enc, _ in candidates)
    if not declared_utf8 and (valid_multibyte == 0 or valid_multibyte < bad):
        from charset_normalizer import from_bytes

        best = from_bytes(payload[:65536]).best()
        if best is not None and best.encoding:
            enc = codec_name(best.encoding)
            if enc:
                try:
                    return Decoded(payload.decode(enc), enc, "detected", 0)
                except UnicodeDecodeError:
                    pass
    return Decoded(lenient, "utf-8", "utf-8-replace", bad)


@contextmanager
def time_limit(seconds: float):
    """Raise ExtractionTimeout in this thread after ``seconds``.

    Uses a real-time interval timer (SIGALRM), which only works in the main thread; Spark runs batch functions
    in the Python worker's main thread. Elsewhere the limit is not enforced (``enforced`` is False). The signal
    is handled between Python bytecodes, so a page can overrun while inside one long lxml call; the page-size
    limit bounds those.
    """
    if threading.current_thread() is not threading.main_thread() or seconds <= 0:
        yield False
        return

    def _raise(signum, frame):
        raise ExtractionTimeout()

    previous = signal.signal(signal.SIGALRM, _raise)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield True
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@dataclass(frozen=True)
class Extracted:
    text: str
    title: str | None
    date: str | None


_BLOCKS = frozenset(
    {"table", "dl", "dt", "dd", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "p", "ul", "ol", "blockquote"}
)
_TABLE_PARTS = ("tbody", "thead", "tfoot", "tr", "td", "th", "caption", "colgroup", "col")


def unwrap_layout_tables(tree) -> int:
    """Turn layout tables into ``div`` blocks, in place; returns how many. A table is layout when a cell holds a
    table or a block element (headings, paragraphs, lists, definitions, code), or when most rows have fewer than
    two filled cells (spacer columns): a data table (parameters, comparisons) has neither, and stays a table."""
    count = 0
    for table in list(tree.iter("table")):
        if table.tag != "table":  # already unwrapped as part of an outer layout table
            continue
        rows = list(table.iter("tr"))
        nested = any(el.tag in _BLOCKS for cell in table.iter("td", "th") for el in cell.iterdescendants())
        filled = sum(
            1
            for row in rows
            if sum(1 for c in row if c.tag in ("td", "th") and c.text_content().strip(" \xa0\t\n")) >= 2
        )
        if nested or (rows and filled < 0.5 * len(rows)):
            for el in [table, *table.iter(*_TABLE_PARTS)]:
                el.tag = "div"
            count += 1
    return count


class Extractor:
    """trafilatura with one set of options; build once per batch function and reuse.

    The page is parsed once. The main text comes from ``bare_extraction`` on that tree (it works on a copy) and
    is rendered exactly as ``trafilatura.extract`` renders it; title and date come from trafilatura's
    ``extract_title`` and htmldate's ``find_date`` on the same tree. trafilatura's full metadata pass also looks
    for authors, categories, tags and licences, which cost ~50% more extraction time and which we do not keep.
    """

    def __init__(self, cfg: HtmlExtractSection) -> None:
        import trafilatura  # noqa: F401  (import cost paid once per worker)

        logging.getLogger("trafilatura").setLevel(logging.CRITICAL)
        logging.getLogger("htmldate").setLevel(logging.CRITICAL)
        self.cfg = cfg

    def _options(self, url: str | None, recall: bool = False):
        from trafilatura.settings import Extractor as Options

        return Options(
            output_format=self.cfg.output_format,
            precision=self.cfg.favor_precision,
            recall=self.cfg.favor_recall or (recall and not self.cfg.favor_precision),
            comments=self.cfg.include_comments,
            tables=self.cfg.include_tables,
            url=url,
        )

    def __call__(self, html: str, url: str | None = None, max_date: str | None = None) -> Extracted | None:
        """Main text (exactly what ``trafilatura.extract`` returns with the same options), plus title and date
        when metadata is on. None when trafilatura finds no main text.

        ``max_date`` (YYYY-MM-DD) bounds the date: pass the fetch date (a page is not published after it was
        fetched). Without it, ``extract.max_date`` applies; htmldate's own default would be the day of the run,
        which would make the output depend on when it ran.
        """
        from trafilatura import bare_extraction
        from trafilatura.core import determine_returnstring
        from trafilatura.utils import load_html

        tree = load_html(html)
        if tree is None:
            return None
        # a page laid out in tables confuses trafilatura's precision heuristics (it keeps the first block and drops
        # the API sections): once unwrapped, it is read with recall
        unwrapped = unwrap_layout_tables(tree) if self.cfg.clean_layout else 0
        options = self._options(url, recall=bool(unwrapped))
        doc = bare_extraction(tree, options=options)
        if doc is None:
            return None
        text = determine_returnstring(doc, options)
        if self.cfg.clean_layout:
            text = text.replace("\xa0", " ")
        if not self.cfg.metadata:
            return Extracted(text=text, title=None, date=None)
        from htmldate import find_date
        from trafilatura.metadata import extract_title

        date = find_date(
            tree,
            url=url,
            extensive_search=self.cfg.extensive_date_search,
            original_date=True,
            outputformat="%Y-%m-%d",
            max_date=max_date or self.cfg.max_date,
        )
        return Extracted(text=text, title=extract_title(tree) or None, date=date or None)


class ResiliparseExtractor:
    """Resiliparse's main-content text (``extract_plain_text(main_content=True)``, a C++ DOM walk with boilerplate
    rules) and the page's ``<title>``. No date: htmldate would parse the page again with lxml, the cost this engine
    exists to avoid."""

    def __init__(self, cfg: HtmlExtractSection) -> None:
        from resiliparse.extract.html2text import extract_plain_text  # noqa: F401  (import once per worker)

        self.cfg = cfg

    def __call__(self, html: str, url: str | None = None, max_date: str | None = None) -> Extracted | None:
        from resiliparse.extract.html2text import extract_plain_text
        from resiliparse.parse.html import HTMLTree

        tree = HTMLTree.parse(html)
        text = extract_plain_text(
            tree,
            preserve_formatting=True,
            main_content=True,
            list_bullets=True,
            alt_texts=False,
            comments=self.cfg.include_comments,
        )
        text = "\n".join(line.rstrip() for line in text.replace("\xa0", " ").strip().split("\n"))
        if not text:
            return None
        title = (tree.title or "").strip() or None if self.cfg.metadata else None
        return Extracted(text=text, title=title, date=None)


def make_extractor(cfg: HtmlExtractSection):
    """The main-text extractor ``cfg.engine`` names (one per batch function)."""
    return ResiliparseExtractor(cfg) if cfg.engine == "resiliparse" else Extractor(cfg)
