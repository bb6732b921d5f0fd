"""Instruction-pair extraction benchmark (issue #5), run by bench/run.py (`--only extract`, after `classify`).

Real pages: the HTML manuals of Debian's python3.11-doc, postgresql-doc-15 and git-doc (installed by bench/run.py),
ingested as `tool_doc` pages; real API operations: the botocore and Google discovery tool docs that the classify
benchmark ingested (their typed `tools/` records feed `api_operation`).

Reported per source: documents, pairs kept per 1,000 documents by extractor, rejects by reason, and the stage's
documents/s on local[2], against the same batch function (`extract_rows`) in one process over the same documents.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = HERE / "work" / "extract"
FORGE = [sys.executable, "-m", "corpus"]


def sh(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, text=True, **kw)


def _in_process(docs_path: Path, tools: Path | None) -> tuple[float, int]:
    """The batch function over the same documents in this process: seconds, documents."""
    sys.path.insert(0, str(ROOT))
    from corpus.config import parse_config
    from corpus.extract.stage import extract_rows
    from corpus.spark.envelope import Emitter

    cfg = parse_config({}).extract
    table = pq.read_table(str(docs_path / "data"))
    rows = [r for r in table.to_pylist() if r["part"] in cfg.parts]
    if tools:
        fields = [
            "api",
            "api_title",
            "version",
            "operation_id",
            "spec_format",
            "method",
            "path",
            "sdk_name",
            "description",
            "parameters",
            "base_url",
        ]
        recs = {r["id"]: json.dumps({f: r[f] for f in fields}) for r in pq.read_table(str(tools)).to_pylist()}
        for r in rows:
            r["tool"] = recs.get(r["id"])
    t0 = time.perf_counter()
    for i in range(0, len(rows), 256):
        out = Emitter("extract")
        extract_rows(rows[i : i + 256], cfg, out)
        out.batch()
    return time.perf_counter() - t0, len(rows)


def _run(name: str, docs: Path, tools: Path | None) -> dict:
    out = WORK / f"{name}-out"
    cmd = FORGE + ["-q", "extract", "--input", str(docs), "--output", str(out), "--master", "local[2]", "--force"]
    if tools:
        cfg = WORK / f"{name}.yaml"
        cfg.write_text(f"extract:\n  tools: {tools}\n")
        cmd += ["--config", str(cfg)]
    t0 = time.perf_counter()
    sh(cmd, cwd=ROOT, capture_output=True)
    wall = time.perf_counter() - t0
    st = json.loads((out / "_stats.json").read_text())
    n_docs = st["counters"]["documents_scanned"]
    kept = Counter(p["extractor"] for p in pq.read_table(str(out / "pairs"), columns=["extractor"]).to_pylist())
    secs, n_local = _in_process(docs, tools)
    rate = n_docs / st["seconds"]
    return {
        "documents": n_docs,
        "pairs_kept": st["rows_out"],
        "candidates": st["rows_in"],
        "kept_per_1000_docs": {k: round(1000 * v / n_docs, 1) for k, v in sorted(kept.items())},
        "candidates_by_extractor": {k[6:]: v for k, v in st["counters"].items() if k.startswith("pairs.")},
        "rejects": st["rejects_by_reason"],
        "stage_seconds": st["seconds"],
        "command_seconds": round(wall, 1),
        "stage_docs_per_s": round(rate),
        "in_process_docs_per_s": round(n_local / secs),
        "ratio_vs_2x_in_process": round(rate / (2 * n_local / secs), 3),
    }


def bench(debian_html: list[Path]) -> dict:
    WORK.mkdir(parents=True, exist_ok=True)
    result: dict = {}
    pages = WORK / "pages"
    if debian_html and not (pages / "_SUCCESS").exists():
        sh(
            FORGE
            + [
                "-q",
                "ingest-web",
                "--input",
                *map(str, debian_html),
                "--output",
                str(pages),
                "--part",
                "tool_doc",
                "--source",
                "debian-docs",
                "--master",
                "local[2]",
            ],
            cwd=ROOT,
            capture_output=True,
        )
    if (pages / "_SUCCESS").exists():
        result["debian_docs_pages"] = _run("pages", pages, None)
    tools = HERE / "work" / "classify" / "tools"
    if (tools / "_SUCCESS").exists():
        result["api_operations"] = _run("apis", tools, tools / "tools")
    else:
        result["api_operations"] = "run `bench/run.py --only classify` first (it ingests the API specs)"
    return result
