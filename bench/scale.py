"""The scale bench (issue #29): per-document stages on 100k, 300k and 1M documents built from real text on this
machine, measured against each stage's own core function in one plain process.

    python bench/scale.py [--sizes 100000,300000,1000000] [--stages filter,dedup,redact]
    (in progress: not yet part of `make bench`; issue #29 asks for `make bench-scale`)

Corpus (built once, under bench/work/scale/, seeded): sentences of real text (Wikipedia sections and news from
gensim's test data, the main text of the ingest bench's documentation pages, the standard library's pydoc text,
botocore's service documentation) drawn at random into paragraphs of 2-6 and documents whose lengths follow a
web-like log-normal distribution (median 180 words, sigma 0.9: a long tail of long pages). A known share are
copies of an earlier document: 2% exact, 8% near (a word-edit rate drawn from [0, 6%], corpus.dedup.evaluate's
edits), recorded as ground truth (copy, origin). Written as Parquet files of
50,000 documents in the document schema; the 100k and 300k inputs are the first files of the 1M one, so each size
holds the smaller ones.

Per stage and size: the stage (`forge <stage>`, local[2], its own process) — stage seconds, wall seconds,
documents/s per core, GB of text per core-hour, the peak resident memory of the JVM and of the Python workers
(sampled from /proc) — and the growth from the smallest to the largest size (goal: throughput within 10%,
memory within 1.5×). Baseline: the stage's batch function on a 20,000-document sample in one plain process
(documents/s), × 2 cores. For dedup, precision and recall of the removals against the generated copies.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

WORK = HERE / "work" / "scale"
DOCS = WORK / "docs"
FILE_DOCS = 50_000
MEDIAN_WORDS, SIGMA, MIN_WORDS, MAX_WORDS = 180, 0.9, 20, 20_000
EXACT_SHARE, NEAR_SHARE, MAX_EDIT_RATE = 0.02, 0.08, 0.06
SEED = 29
CORES = 2


def sentences() -> list[str]:
    """Real sentences (4+ words). Documents draw theirs at random: runs of consecutive paragraphs, the first
    design, made two documents that start at the same paragraph duplicates of each other (65% of a 1M corpus),
    which no ground truth could describe."""
    import re

    from corpus import packages
    from dedup import _real_texts

    split = re.compile(r"(?<=[.!?])\s+")
    texts = [r["text"] for r in packages.general_text()] + _real_texts()
    out = []
    for t in texts:
        for p in t.split("\n\n"):
            out += [s for s in split.split(" ".join(p.split())) if len(s.split()) >= 4]
    return out


def build(n: int) -> dict:
    """The corpus of ``n`` documents under DOCS (kept: a second call returns its info)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from corpus import schema
    from corpus.dedup.evaluate import edit_words
    from corpus.ids import content_id

    info_path = WORK / "corpus.json"
    if info_path.exists() and json.loads(info_path.read_text())["documents"] >= n:
        return json.loads(info_path.read_text())
    DOCS.mkdir(parents=True, exist_ok=True)
    pool = sentences()
    vocab = sorted({w for p in pool[:50_000] for w in p.split()})
    rng = random.Random(SEED)
    texts: list[str] = []
    truth: list[tuple[int, int, str]] = []  # (copy, origin, kind)
    words_total = 0
    arrow = schema.document().arrow
    rows: list[dict] = []
    t0 = time.perf_counter()
    for i in range(n):
        r = rng.random()
        if i > 100 and r < EXACT_SHARE:
            origin = rng.randrange(i)
            text = texts[origin]
            truth.append((i, origin, "exact"))
        elif i > 100 and r < EXACT_SHARE + NEAR_SHARE:
            origin = rng.randrange(i)
            text = " ".join(edit_words(texts[origin].split(), rng, rng.uniform(0, MAX_EDIT_RATE), vocab))
            truth.append((i, origin, "near"))
        else:
            want = min(MAX_WORDS, max(MIN_WORDS, int(rng.lognormvariate(math.log(MEDIAN_WORDS), SIGMA))))
            got, paras, para = 0, [], []
            while got < want:
                sentence = pool[rng.randrange(len(pool))]
                para.append(sentence)
                got += len(sentence.split())
                if len(para) >= rng.randint(2, 6):
                    paras.append(" ".join(para))
                    para = []
            text = "\n\n".join(paras + ([" ".join(para)] if para else []))
        texts.append(text)
        words_total += len(text.split())
        url = f"https://site{rng.randrange(20_000)}.example/page/{i}"
        rows.append(
            {
                "id": content_id(text, url),
                "part": "text",
                "source": "scale",
                "url": url,
                "text": text,
                "metadata": json.dumps({"row": i}),
            }
        )
        if len(rows) == FILE_DOCS or i == n - 1:
            pq.write_table(
                pa.Table.from_pylist(rows, schema=arrow),
                str(DOCS / f"docs-{i // FILE_DOCS:04d}.parquet"),
                row_group_size=4096,
                compression="zstd",
            )
            rows = []
    (WORK / "truth.json").write_text(json.dumps(truth))
    info = {
        "documents": n,
        "text_bytes": sum(len(t.encode()) for t in texts),
        "words": words_total,
        "exact_copies": sum(1 for t in truth if t[2] == "exact"),
        "near_copies": sum(1 for t in truth if t[2] == "near"),
        "sentence_pool": len(pool),
        "build_seconds": round(time.perf_counter() - t0, 1),
    }
    info_path.write_text(json.dumps(info, indent=2))
    return info


def subset(n: int) -> Path:
    """A folder holding the first ``n`` documents (links to the corpus files)."""
    folder = WORK / f"input-{n}"
    if not folder.exists():
        folder.mkdir(parents=True)
        for f in sorted(DOCS.glob("*.parquet"))[: -(-n // FILE_DOCS)]:
            (folder / f.name).symlink_to(f)
    return folder


def run_stage(stage: str, n: int) -> dict:
    from dedup import run_forge_stage

    cfg = WORK / f"{stage}.yaml"
    cfg.write_text(json.dumps({"spark": {"master": f"local[{CORES}]", "progress": False, "driver_memory": "6g"}}))
    stats, peaks, wall = run_forge_stage(stage, subset(n), WORK / "out" / f"{stage}-{n}", cfg)
    return {
        "documents": n,
        "stage_seconds": stats["seconds"],
        "wall_seconds": round(wall, 1),
        "rows_out": stats["rows_out"],
        "rejects": stats["rejects_by_reason"],
        "peak_rss_mb": peaks,
    }


def baseline(stage: str, sample: int = 20_000) -> float:
    """Documents/s of the stage's batch function over ``sample`` documents of the corpus, one plain process."""
    import pyarrow.parquet as pq

    from corpus.config import parse_config
    from corpus.spark.envelope import Emitter

    rows = pq.read_table(str(sorted(DOCS.glob("*.parquet"))[0])).slice(0, sample).to_pylist()
    cfg = parse_config({})
    if stage == "filter":
        from corpus.filter.stage import filter_rows

        def fn(batch):
            filter_rows(batch, cfg.filter, Emitter("filter"))
    elif stage == "redact":
        from corpus.redact.stage import redact_rows

        def fn(batch):
            redact_rows(batch, cfg.redact, Emitter("redact"))
    else:
        raise ValueError(f"no one-process baseline for {stage}")
    fn(rows[:256])  # warm: models and imports, as a worker is after its first batch
    t0 = time.perf_counter()
    for k in range(0, len(rows), 256):
        fn([dict(r) for r in rows[k : k + 256]])
    return len(rows) / (time.perf_counter() - t0)


def figures(run: dict, text_bytes_per_doc: float) -> dict:
    per_core = run["documents"] / run["stage_seconds"] / CORES
    return {
        **run,
        "docs_per_s_per_core": round(per_core, 1),
        "gb_text_per_core_hour": round(per_core * text_bytes_per_doc * 3600 / 1e9, 2),
    }


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="100000,300000,1000000")
    ap.add_argument("--stages", default="filter,dedup,redact")
    args = ap.parse_args(argv)
    sizes = sorted(int(s) for s in args.sizes.split(","))
    info = build(sizes[-1])
    per_doc = info["text_bytes"] / info["documents"]
    result: dict = {"corpus": info, "stages": {}}
    for stage in args.stages.split(","):
        runs = [figures(run_stage(stage, n), per_doc) for n in sizes]
        entry: dict = {"runs": runs}
        first, last = runs[0], runs[-1]
        entry["throughput_growth"] = round(last["docs_per_s_per_core"] / first["docs_per_s_per_core"], 3)
        entry["memory_growth"] = {
            k: round(last["peak_rss_mb"][k] / max(first["peak_rss_mb"][k], 1), 2) for k in last["peak_rss_mb"]
        }
        if stage in ("filter", "redact"):
            raw = baseline(stage)
            entry["baseline_docs_per_s_one_process"] = round(raw, 1)
            entry["vs_raw_times_cores"] = round(last["docs_per_s_per_core"] / raw, 3)
        result["stages"][stage] = entry
        (WORK / "results.json").write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
