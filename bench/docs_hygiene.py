"""Docs-page hygiene of a run's shards (#26): layout-table residue, no-break spaces, this machine's paths.

    .venv/bin/python bench/docs_hygiene.py [OUT]

Counts, per output and source, the documents whose text keeps pydoc layout-table residue (rows of empty
cells), U+00A0, or one of this machine's absolute paths (the interpreter's prefixes, site-packages, the
working folder), and those paths in the shards' metadata, the manifests and the dataset card.
"""

from __future__ import annotations

import glob
import json
import os
import re
import sys
import sysconfig
from collections import Counter

import pyarrow.parquet as pq

OUT = sys.argv[1] if len(sys.argv) > 1 else "out"
# this machine's install roots and working folder (not the home folder: "/root" is also every docs author's
# home on a container, and other machines' paths quoted in documentation are content, not leaks)
ROOTS = sorted(
    {
        p.rstrip("/")
        for p in (
            sys.prefix,
            sys.base_prefix,
            os.getcwd(),
            sysconfig.get_paths()["stdlib"],
            sysconfig.get_paths()["purelib"],
        )
        if len(p) > 1
    }
)
MACHINE = re.compile("|".join(re.escape(r) + r"(?![\w.-])" for r in ROOTS))
# a table row of trafilatura's with two empty cells side by side ("| Data |  |  |"), counted on documents read
# from HTML pages only (ASCII art in docstrings and code has such rows too)
RESIDUE = re.compile(r"^\|[^\n]*\|[ \t]*\|[ \t]*\|[ \t]*$|^\|[^\n]*\|  \|  \|", re.M)
HTML_SOURCES = {"pydoc-stdlib", "crawl"}


def main() -> None:
    result = {}
    for folder in sorted(glob.glob(os.path.join(OUT, "write", "*", ""))):
        files = sorted(glob.glob(os.path.join(folder, "*.parquet")))
        if not files:
            continue
        counts: Counter = Counter()
        docs = 0
        for f in files:
            for r in pq.read_table(f, columns=["source", "text", "metadata"]).to_pylist():
                docs += 1
                text, meta = r["text"], r["metadata"] or ""
                if r["source"] in HTML_SOURCES and RESIDUE.search(text):
                    counts[f"{r['source']}:table_residue"] += 1
                if "\xa0" in text:
                    counts[f"{r['source']}:nbsp"] += 1
                if MACHINE.search(text):
                    counts[f"{r['source']}:machine_path_in_text"] += 1
                if MACHINE.search(meta):
                    counts[f"{r['source']}:machine_path_in_metadata"] += 1
        manifest = open(os.path.join(folder, "manifest.json"), encoding="utf-8").read()
        result[os.path.basename(folder.rstrip("/"))] = {
            "documents": docs,
            **dict(sorted(counts.items())),
            "machine_paths_in_manifest": len(MACHINE.findall(manifest)),
        }
    card = os.path.join(OUT, "write", "README.md")
    if os.path.exists(card):
        result["card_machine_paths"] = len(MACHINE.findall(open(card, encoding="utf-8").read()))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
