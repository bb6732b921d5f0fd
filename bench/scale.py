"""The scale bench (issue #29; `make bench-scale`, `bench/run.py --only scale`): per-document stages on 100k,
300k and 1M documents built from real text on this machine, measured per core and against each stage's own
function in one plain process.

    python bench/scale.py [--sizes 100000,300000,1000000] [--warc-sizes 30000,100000]
                          [--stages dedup,redact,filter,classify,extract,decontaminate,ingest-wet,
                                    ingest-resiliparse,pipeline] [--no-datasketch] [--datatrove]

Corpus (built once, under bench/work/scale/, seeded): sentences of real text (Wikipedia sections and news from
gensim's test data, the main text of the ingest bench's documentation pages, the standard library's pydoc text,
botocore's service documentation) drawn at random into paragraphs of 2-6 and documents whose lengths follow a
web-like log-normal distribution (median 180 words, sigma 0.9: a long tail of long pages). A known share are
copies of an earlier document: 2% exact, 8% near (a word-edit rate drawn from [0, 6%], corpus.dedup.evaluate's
edits), recorded as ground truth with each copy's shingle Jaccard to its origin. Written as Parquet files of
50,000 documents in the document schema; the 100k and 300k inputs are the first files of the 1M one, so each size
holds the smaller ones. For ingest-web: the same documents as WET files, and WARC files of the ingest bench's
real documentation pages served again under new URLs (real page structure and size).

Per stage and size: the stage (`forge <stage>`, local[2], its own process): stage seconds, wall seconds,
documents/s per core, GB of text (of HTML for WARC) per core-hour, the peak resident memory of the JVM and of the
Python workers and the CPU seconds of each kind of process (sampled from /proc), and the growth from the smallest
to the largest size (goal: throughput within 10%, memory within 1.5x). Baseline: the stage's batch function (the
extraction engine for ingest-web) in one plain process. For dedup, precision and recall of the removals against
the copies at or above the threshold, and datasketch (bulk MinHash + LSH, one process) on the largest size.
classify applies a model trained here once (`classifier`), extract reads the corpus's part, decontaminate checks
against BFCL v4 (its default).

The whole pipeline (`pipeline`): `forge run` on the first n documents as WET files plus botocore's API models,
every stage at its defaults (ingest, synthesize, filter, dedup, classify trained on the run's own tool docs and
trajectories, extract, decontaminate, redact, mix, write): each stage's seconds and rows, and the run's wall clock.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shutil
import statistics
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
MAX_SENTENCE_WORDS = 60
GENERATOR = 3  # bumped when the corpus changes: an older corpus under WORK is rebuilt
THRESHOLD = 0.8  # dedup.minhash.threshold's default
CORES = 2
ONE_PROCESS = ("filter", "redact", "classify", "extract", "decontaminate")  # stages with a one-process baseline


def sentences() -> list[str]:
    """Real sentences of 4 to MAX_SENTENCE_WORDS words. Documents draw theirs at random: runs of consecutive
    paragraphs, the first design, made two documents that start at the same paragraph duplicates of each other
    (65% of a 1M corpus), which no ground truth could describe. Likewise a "sentence" of hundreds of words (a pydoc
    member list has no full stops) is a whole document by itself, so two documents that drew it were duplicates
    the truth did not list: hence the cap."""
    import re

    from corpus import packages
    from dedup import _real_texts

    split = re.compile(r"(?<=[.!?])\s+")
    texts = [r["text"] for r in packages.general_text()] + _real_texts()
    out = []
    for t in texts:
        for p in t.split("\n\n"):
            out += [s for s in split.split(" ".join(p.split())) if 4 <= len(s.split()) <= MAX_SENTENCE_WORDS]
    return out


def build(n: int) -> dict:
    """The corpus of ``n`` documents under DOCS (kept: a second call returns its info)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from corpus import schema
    from corpus.dedup.evaluate import edit_words
    from corpus.ids import content_id

    info_path = WORK / "corpus.json"
    if info_path.exists():
        info = json.loads(info_path.read_text())
        if info["documents"] >= n and info.get("generator") == GENERATOR:
            return info
        shutil.rmtree(WORK)  # bench/work/scale is this bench's own folder
    WORK.mkdir(parents=True, exist_ok=True)
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
    # the copies whose shingle Jaccard with their origin reaches the stage's threshold are the ones a dedup
    # should remove (a short document with 6% of its words edited can fall below it)
    truth = [(c, o, kind, round(jaccard(texts[c], texts[o]), 4)) for c, o, kind in truth]
    (WORK / "truth.json").write_text(json.dumps(truth))
    info = {
        "generator": GENERATOR,
        "documents": n,
        "text_bytes": sum(len(t.encode()) for t in texts),
        "words": words_total,
        "exact_copies": sum(1 for t in truth if t[2] == "exact"),
        "near_copies": sum(1 for t in truth if t[2] == "near"),
        "copies_at_threshold": sum(1 for t in truth if t[3] >= THRESHOLD),
        "sentence_pool": len(pool),
        "build_seconds": round(time.perf_counter() - t0, 1),
    }
    info_path.write_text(json.dumps(info, indent=2))
    return info


def build_wet(n: int) -> Path:
    """The first ``n`` documents as WET files (conversion records, as Common Crawl writes its text extracts),
    one per corpus file."""
    import io

    from warcio.warcwriter import WARCWriter

    folder = WORK / "wet"
    done = folder / f"_BUILT_{n}"
    if done.exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    import pyarrow.parquet as pq

    for k, f in enumerate(sorted(DOCS.glob("*.parquet"))[: -(-n // FILE_DOCS)]):
        path = folder / f"scale-{k:04d}.warc.wet.gz"
        if path.exists():
            continue
        table = pq.read_table(str(f), columns=["url", "text"])
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as fh:
            w = WARCWriter(fh, gzip=True)
            for url, text in zip(table.column("url").to_pylist(), table.column("text").to_pylist()):
                body = text.encode()
                w.write_record(
                    w.create_warc_record(
                        url,
                        "conversion",
                        payload=io.BytesIO(body),
                        warc_headers_dict={"WARC-Date": "2026-12-01T00:00:00Z", "Content-Type": "text/plain"},
                    )
                )
        tmp.rename(path)
    done.write_text("")
    return folder


def build_warc(n: int, per_file: int = 10_000) -> Path:
    """``n`` HTML pages as WARC.gz: the ingest bench's real documentation pages (bench/run.py builds them), each
    served again under a new URL until there are ``n``: real page structure and size, so extraction costs what it
    costs on such pages."""
    from run import build_pages, load_pages

    from corpus.web.warc import write_warc

    folder = WORK / "warc"
    done = folder / f"_BUILT_{n}"
    if done.exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    real = [(url, body) for url, body in load_pages(build_pages()) if body]
    for k in range(-(-n // per_file)):
        path = folder / f"scale-{k:04d}.warc.gz"
        if path.exists():
            continue
        pages = []
        for i in range(k * per_file, min(n, (k + 1) * per_file)):
            url, body = real[i % len(real)]
            pages.append((f"{url}?copy={i}", body, "text/html; charset=utf-8"))
        write_warc(str(path) + ".tmp", pages)
        Path(str(path) + ".tmp").rename(path)
    done.write_text("")
    return folder


def files_subset(folder: Path, pattern: str, count: int, name: str) -> Path:
    """A folder linking the first ``count`` files of ``folder`` matching ``pattern``."""
    out = WORK / name
    if not out.exists():
        out.mkdir(parents=True)
        for f in sorted(folder.glob(pattern))[:count]:
            (out / f.name).symlink_to(f)
    return out


def run_ingest(kind: str, n: int, reader: str = "fastwarc") -> dict:
    """`forge ingest-web` over ``n`` pages of WET (``kind`` "wet") or WARC with an extraction engine, the WARC
    files read by ``reader`` (ingest-web.warc_reader)."""
    from dedup import run_forge_stage

    section: dict = {"warc_reader": reader}
    if kind == "wet":
        inp = wet_subset(n)
    else:
        inp = files_subset(build_warc(n), "*.warc.gz", -(-n // 10_000), f"warc-{n}")
        section["extract"] = {"engine": kind, "output_format": "txt"}
    cfg = WORK / f"ingest-{kind}-{reader}.yaml"
    spark = {"master": f"local[{CORES}]", "progress": False, "driver_memory": "6g"}
    cfg.write_text(json.dumps({"spark": spark, "ingest-web": section}))
    out = WORK / "out" / (f"ingest-{kind}-{n}" + ("" if reader == "fastwarc" else f"-{reader}"))
    stats, peaks, wall, cpu = run_forge_stage("ingest-web", inp, out, cfg)
    return {
        "documents": n,
        "warc_reader": reader,
        "stage_seconds": stats["seconds"],
        "wall_seconds": round(wall, 1),
        "rows_out": stats["rows_out"],
        "rejects": stats["rejects_by_reason"],
        "peak_rss_mb": peaks,
        "cpu_seconds": cpu,
    }


def html_bytes_per_page() -> float:
    from run import build_pages, load_pages

    real = [body for _, body in load_pages(build_pages()) if body]
    return sum(map(len, real)) / len(real)


def baseline_extract(engine: str, sample: int = 3_000) -> float:
    """Pages/s of the engine over the real pages in one plain process: decode and extract, the stage's per-page
    work without Spark."""
    from run import build_pages, load_pages

    from corpus.web.config import HtmlExtractSection
    from corpus.web.html import decode, make_extractor

    real = [(url, body) for url, body in load_pages(build_pages()) if body][:sample]
    extract = make_extractor(HtmlExtractSection(engine=engine, output_format="txt", metadata=False))
    extract(decode(real[0][1]).text)
    t0 = time.perf_counter()
    for url, body in real:
        extract(decode(body).text, url)
    return len(real) / (time.perf_counter() - t0)


def jaccard(a: str, b: str) -> float:
    from corpus.dedup.minhash import shingles

    x, y = set(shingles(a)), set(shingles(b))
    return len(x & y) / max(len(x | y), 1)


def true_pairs(n: int) -> list[tuple[int, int]]:
    """The (origin, copy) pairs among the first ``n`` documents at or above the dedup threshold."""
    return [(o, c) for c, o, _, j in json.loads((WORK / "truth.json").read_text()) if c < n and j >= THRESHOLD]


def subset(n: int) -> Path:
    """A folder holding the first ``n`` documents (links to the corpus files)."""
    folder = WORK / f"input-{n}"
    if not folder.exists():
        folder.mkdir(parents=True)
        for f in sorted(DOCS.glob("*.parquet"))[: -(-n // FILE_DOCS)]:
            (folder / f.name).symlink_to(f)
    return folder


def stage_config(stage: str) -> dict:
    """The stage's config beyond the defaults: classify applies the bench's model (training is a fixed cost,
    bounded by classify.max_positives / max_negatives, not a per-document one); extract reads the corpus's part."""
    if stage == "classify":
        return {"classify": {"model": str(classifier())}}
    if stage == "extract":
        return {"extract": {"parts": ["text"]}}
    return {}


def classifier() -> Path:
    """A fastText agent-relevance model for ``forge classify --model``, trained once (kept under WORK): positives
    the documentation texts of the corpus's sentence pool (docs pages, pydoc, botocore's service docs), negatives
    its general text (Wikipedia, news), both cut into pieces of 300 words; the stage's default settings."""
    model = WORK / "classifier" / "model.bin"
    if model.exists():
        return model
    from dedup import _real_texts

    from corpus import packages
    from corpus.classify import model as ft
    from corpus.config import parse_config

    cfg = parse_config({}).classify.fasttext
    model.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for label, texts in ((1, _real_texts()), (0, [r["text"] for r in packages.general_text()])):
        for t in texts:
            words = t.split()
            lines += [
                ft.training_line(label, " ".join(words[k : k + 300]), cfg.max_words, cfg.tokens)
                for k in range(0, len(words), 300)
            ]
    random.Random(SEED).shuffle(lines)
    train = model.parent / "train.txt"
    train.write_text("\n".join(lines) + "\n")
    ft.train(str(train), str(model), cfg, SEED, epoch=10)
    (model.parent / "model.json").write_text(
        json.dumps({"threshold": 0.5, "fasttext": cfg.model_dump(), "trained_on_lines": len(lines)})
    )
    return model


def run_stage(stage: str, n: int, inp: Path | None = None) -> dict:
    """``forge <stage>`` on the first ``n`` documents (or on ``inp``, holding ``n``), its Spark jobs recorded."""
    from dedup import run_forge_stage

    cfg = WORK / f"{stage}.yaml"
    events = WORK / "events" / f"{stage}-{n}"  # Spark's event log: where the stage's time goes, job by job
    if events.exists():
        shutil.rmtree(events)  # this bench's own folder
    events.mkdir(parents=True)
    conf = {"spark.eventLog.enabled": "true", "spark.eventLog.dir": events.as_uri(), "spark.eventLog.compress": "false"}
    spark = {"master": f"local[{CORES}]", "progress": False, "driver_memory": "6g", "conf": conf}
    cfg.write_text(json.dumps({"spark": spark, **stage_config(stage)}))
    stats, peaks, wall, cpu = run_forge_stage(stage, inp or subset(n), WORK / "out" / f"{stage}-{n}", cfg)
    return {
        "documents": n,
        "stage_seconds": stats["seconds"],
        "wall_seconds": round(wall, 1),
        "rows_out": stats["rows_out"],
        "rejects": stats["rejects_by_reason"],
        "peak_rss_mb": peaks,
        "cpu_seconds": cpu,
        "jobs": spark_jobs(events),
    }


def spark_jobs(folder: Path) -> dict:
    """The Spark jobs of one run, from its event log: seconds by job description (a stage names its jobs), the
    longest job (the pass over the documents, in a per-document stage), the time in any job (overlaps counted
    once) and the application's whole time."""
    jobs: dict[int, list] = {}
    start = end = None
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith((".", "appstatus"))):
        for line in path.read_text(errors="replace").splitlines():
            e = json.loads(line)
            kind = e["Event"]
            if kind == "SparkListenerApplicationStart":
                start = e["Timestamp"]
            elif kind == "SparkListenerApplicationEnd":
                end = e["Timestamp"]
            elif kind == "SparkListenerJobStart":
                desc = (e.get("Properties") or {}).get("spark.job.description") or "(no description)"
                jobs[e["Job ID"]] = [desc, e["Submission Time"], None]
            elif kind == "SparkListenerJobEnd" and e["Job ID"] in jobs:
                jobs[e["Job ID"]][2] = e["Completion Time"]
    done = [(d, (b - a) / 1000) for d, a, b in jobs.values() if b is not None]
    if not done:
        return {}
    by_desc: dict[str, float] = {}
    for d, s in done:
        by_desc[d] = round(by_desc.get(d, 0.0) + s, 2)
    longest = max(done, key=lambda j: j[1])
    # jobs overlap (a stage may run two at once), so the time in jobs is the union of their intervals
    spans = sorted((a, b) for _, a, b in jobs.values() if b is not None)
    busy, cur_a, cur_b = 0.0, *spans[0]
    for a, b in spans[1:]:
        if a > cur_b:
            busy, cur_a, cur_b = busy + (cur_b - cur_a), a, b
        else:
            cur_b = max(cur_b, b)
    busy += cur_b - cur_a
    out = {
        "count": len(done),
        "longest": {"description": longest[0], "seconds": round(longest[1], 2)},
        "in_jobs_seconds": round(busy / 1000, 2),
        "by_description": by_desc,
    }
    if start is not None and end is not None:
        out["app_seconds"] = round((end - start) / 1000, 2)
    return out


# the whole pipeline's mix: Hephaestus-Forge stage I's shape for a WET crawl (configs/examples/common-crawl-wet.yaml)
PIPELINE_RATIOS = {"text": 0.60, "agent_web": 0.15, "tool_doc": 0.10, "trajectory": 0.05, "instruction": 0.10}


def run_pipeline(n: int) -> dict:
    """`forge run` on the first ``n`` documents as WET files (general web text to recall agent_web from) plus
    botocore's API models (the tool docs, the executed trajectories and the classifier's positives), every stage
    at its defaults but classify's training caps, which the corpus's size reaches: the stages a Common Crawl WET
    run has. Each stage's seconds and rows come from its stats; the whole run's wall clock includes Spark's
    start. The run's folder is this bench's own (removed before each run, so nothing is skipped as committed)."""
    from dedup import run_forge

    out = WORK / "out" / f"pipeline-{n}"
    if out.exists():
        shutil.rmtree(out)
    cfg = WORK / "pipeline.yaml"
    cfg.write_text(
        json.dumps(
            {
                "run": {"name": f"scale-{n}", "output": str(out), "seed": SEED},
                "spark": {"master": f"local[{CORES}]", "progress": False, "driver_memory": "6g"},
                "inputs": {
                    "web": [{"path": str(wet_subset(n)), "source": "scale", "part": "text", "licence": "bench"}],
                    "apis": [{"path": "pkg:botocore/data", "source": "botocore", "licence": "Apache-2.0"}],
                },
                "mix": {"outputs": {"stage1": {"ratios": PIPELINE_RATIOS}}},
            }
        )
    )
    peaks, wall, cpu = run_forge(["run", "--config", str(cfg), "--allow-partial"], f"forge run on {n} documents")
    stages = {}
    for d in sorted(out.iterdir()):
        stats_path = d / "_stats.json"
        if stats_path.exists():
            st = json.loads(stats_path.read_text())
            stages[d.name] = {k: st.get(k) for k in ("seconds", "rows_in", "rows_out")}
            stages[d.name]["docs_per_s_per_core"] = round(
                (st.get("rows_in") or 0) / max(st["seconds"], 1e-9) / CORES, 1
            )
    mix = json.loads((out / "mix" / "_stats.json").read_text()).get("extra", {})
    return {
        "documents": n,
        "wall_seconds": round(wall, 1),
        "stage_seconds": round(sum(v["seconds"] for v in stages.values()), 1),
        "stages": stages,
        "mix": mix.get("outputs", mix),
        "peak_rss_mb": peaks,
        "cpu_seconds": cpu,
    }


def wet_subset(n: int) -> Path:
    """A folder of the WET files holding the first ``n`` documents."""
    return files_subset(build_wet(n), "*.wet.gz", -(-n // FILE_DOCS), f"wet-{n}")


def dedup_quality(n: int, out: Path) -> dict:
    from dedup import removed_rows

    from corpus.dedup.evaluate import removal_scores

    return {
        k: (round(v, 4) if isinstance(v, float) else v)
        for k, v in removal_scores(n, true_pairs(n), removed_rows(out)).items()
    }


def texts_of(n: int):
    """The first ``n`` texts, file by file (a 1M-document list of strings is 2 GB: never all at once)."""
    import pyarrow.parquet as pq

    left = n
    for f in sorted(DOCS.glob("*.parquet")):
        if left <= 0:
            return
        col = pq.read_table(str(f), columns=["text"]).column("text").to_pylist()[:left]
        left -= len(col)
        yield col


def run_datasketch(n: int, chunk: int = 20_000) -> dict:
    """datasketch on the first ``n`` documents in one process: bulk MinHash (its default hash) in chunks, kept as
    LeanMinHash; MinHashLSH with the stage's bands (16 x 8) and a check of each candidate's estimated Jaccard;
    union-find over the matches. The same shingles as the stage."""
    from datasketch import LeanMinHash, MinHash, MinHashLSH

    from corpus.dedup import evaluate, minhash

    t0 = time.perf_counter()
    lsh = MinHashLSH(num_perm=128, params=(16, 8))
    sigs: list = []
    for texts in texts_of(n):
        for k in range(0, len(texts), chunk):
            batch = MinHash.bulk([minhash.shingles(t) for t in texts[k : k + chunk]], num_perm=128)
            for m in batch:
                lean = LeanMinHash(m)
                lsh.insert(len(sigs), lean, check_duplication=False)
                sigs.append(lean)
    t_sig = time.perf_counter() - t0
    pairs = []
    for i, m in enumerate(sigs):
        for j in lsh.query(m):
            if j < i and m.jaccard(sigs[j]) >= THRESHOLD:
                pairs.append((j, i))
    comp = evaluate.components(n, pairs)
    removed = {i for i, c in enumerate(comp) if c != i}
    seconds = time.perf_counter() - t0
    quality = evaluate.removal_scores(n, true_pairs(n), removed)
    return {
        "documents": n,
        "seconds": round(seconds, 1),
        "signature_and_index_seconds": round(t_sig, 1),
        "docs_per_s": round(n / seconds, 1),
        "quality": {k: (round(v, 4) if isinstance(v, float) else v) for k, v in quality.items()},
    }


def run_datatrove(n: int) -> dict | None:
    """datatrove's MinHash pipeline (bench/dedup.py's script: 2 workers, the same bands) on the first ``n``
    documents, written as JSONL files of 50,000 documents."""
    import pyarrow.parquet as pq
    from dedup import run_datatrove as run

    from corpus.dedup.evaluate import removal_scores

    folder = WORK / f"jsonl-{n}"
    if not (folder / "_BUILT").exists():
        folder.mkdir(parents=True, exist_ok=True)
        for f in sorted(DOCS.glob("*.parquet"))[: -(-n // FILE_DOCS)]:
            table = pq.read_table(str(f), columns=["id", "text"])
            with open(folder / f.name.replace(".parquet", ".jsonl"), "w") as out:
                for i, t in zip(table.column("id").to_pylist(), table.column("text").to_pylist()):
                    out.write(json.dumps({"id": i, "text": t}) + "\n")
        (folder / "_BUILT").write_text("")
    dt = run(folder)
    if not dt or "seconds" not in dt:
        return dt
    ids = pq.read_table(str(subset(n)), columns=["id"]).column("id").to_pylist()
    position = {v: i for i, v in enumerate(ids)}
    quality = removal_scores(n, true_pairs(n), {position[i] for i in dt.pop("removed_ids")})
    dt["quality"] = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in quality.items()}
    dt["docs_per_s"] = round(n / dt["seconds"], 1)
    return dt


BASELINE_SECONDS = 15.0


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
    elif stage == "classify":
        fn = classify_fn(cfg)
    elif stage == "extract":
        from corpus.extract.stage import extract_rows

        ex = parse_config(stage_config("extract")).extract

        def fn(batch):
            extract_rows(batch, ex, Emitter("extract"))
    elif stage == "decontaminate":
        fn = decontaminate_fn(cfg)
    else:
        raise ValueError(f"no one-process baseline for {stage}")
    fn(rows[:256])  # warm: models and imports, as a worker is after its first batch
    # passes over the sample until BASELINE_SECONDS have gone by: a fast function's single pass (under a second)
    # swings with the machine's load, so the median of several is the figure
    rates: list[float] = []
    started = time.perf_counter()
    while not rates or time.perf_counter() - started < BASELINE_SECONDS:
        t0 = time.perf_counter()
        for k in range(0, len(rows), 256):
            fn([dict(r) for r in rows[k : k + 256]])
        rates.append(len(rows) / (time.perf_counter() - t0))
    return statistics.median(rates)


def classify_fn(cfg):
    """The classify stage's batch function as its tasks run it: Arrow batches scored and marked."""
    import pyarrow as pa

    from corpus import schema
    from corpus.classify.stage import _model, mark_batch

    model = _model(str(classifier()))

    def fn(rows):
        mark_batch(pa.RecordBatch.from_pylist(rows, schema=schema.document().arrow), model, 0.5, cfg.classify)

    return fn


def decontaminate_fn(cfg):
    """decontaminate's per-document work in one process: the benchmark n-grams (BFCL v4) and their Bloom filter
    built once as the stage builds them; per batch the documents' n-gram candidates, their exact-line hashes and
    the keep-or-reject function (the joins between them are the stage's Spark plan, not a per-document
    function)."""
    from types import SimpleNamespace

    import numpy as np
    import pyarrow as pa

    from corpus.decontaminate import benchmarks, ngrams
    from corpus.decontaminate.stage import candidates_batch, decontaminate_rows, exact_batch, grams_batch, short_batch
    from corpus.spark.envelope import Emitter

    dc = cfg.decontaminate
    tasks = [t for spec in dc.benchmarks for t in benchmarks.tasks(spec)]
    items = list(benchmarks.items_batch([pa.RecordBatch.from_pylist(tasks, schema=benchmarks.TASK_SCHEMA)]))
    grams = pa.Table.from_batches(list(grams_batch(items, dc.ngram, dc.min_item_tokens)))
    valid = grams.filter(grams.column("h").is_valid())
    lengths = sorted(set(valid.column("k").to_pylist()))
    bloom = SimpleNamespace(value=ngrams.bloom_filter(np.unique(valid.column("h").to_numpy())))
    max_tokens = dc.min_item_tokens - 1
    least = 1 if dc.exact_turn_items else dc.exact_min_tokens
    shorts = pa.Table.from_batches(list(short_batch(items, max_tokens, least)))
    short = SimpleNamespace(value=np.sort(np.unique(shorts.column("h").to_numpy())))

    def fn(rows):
        batch = pa.RecordBatch.from_pylist([{"id": r["id"], "text": r["text"]} for r in rows])
        list(candidates_batch([batch], lengths, bloom))
        list(exact_batch([batch], max_tokens, short, dc.exact_min_tokens))
        decontaminate_rows(rows, dc, Emitter("decontaminate"))

    return fn


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
    ap.add_argument(
        "--stages",
        default="dedup,redact,filter,classify,extract,decontaminate,ingest-wet,ingest-resiliparse,pipeline",
    )
    ap.add_argument("--warc-sizes", default="30000,100000", help="pages for ingest-resiliparse / ingest-trafilatura")
    ap.add_argument("--datatrove", action="store_true", help="also datatrove's MinHash pipeline (~30 min at 1M)")
    ap.add_argument("--no-datasketch", dest="datasketch", action="store_false", help="skip datasketch's dedup")
    ap.add_argument(
        "--no-warcio", dest="warcio", action="store_false", help="skip the ingest stages' second run with warcio"
    )
    args = ap.parse_args(argv)
    sizes = sorted(int(s) for s in args.sizes.split(","))
    info = build(sizes[-1])
    per_doc = info["text_bytes"] / info["documents"]
    # stages run in earlier calls stay (one stage at a time is a normal way to run this)
    previous = json.loads((WORK / "results.json").read_text()) if (WORK / "results.json").exists() else {}
    result: dict = {"corpus": info, "stages": previous.get("stages", {}) if previous.get("corpus") == info else {}}
    for stage in args.stages.split(","):
        if stage.startswith("ingest-"):
            kind = stage.removeprefix("ingest-")
            stage_sizes = sizes if kind == "wet" else sorted(int(x) for x in args.warc_sizes.split(","))
            bytes_per = per_doc if kind == "wet" else html_bytes_per_page()
            runs = [figures(run_ingest(kind, n), bytes_per) for n in stage_sizes]
        elif stage == "pipeline":
            runs = [figures(run_pipeline(n), per_doc) for n in sizes]
        else:
            runs = [figures(run_stage(stage, n), per_doc) for n in sizes]
        entry: dict = {"runs": runs}
        first, last = runs[0], runs[-1]
        entry["throughput_growth"] = round(last["docs_per_s_per_core"] / first["docs_per_s_per_core"], 3)
        entry["memory_growth"] = {
            k: round(last["peak_rss_mb"][k] / max(first["peak_rss_mb"][k], 1), 2) for k in last["peak_rss_mb"]
        }
        if stage == "dedup":
            for run in runs:
                run["quality"] = dedup_quality(run["documents"], WORK / "out" / f"dedup-{run['documents']}")
            if args.datasketch:
                ds = run_datasketch(sizes[-1])
                entry["datasketch"] = ds
                entry["vs_datasketch"] = round(last["documents"] / last["stage_seconds"] / ds["docs_per_s"], 2)
            if args.datatrove:
                dt = run_datatrove(sizes[-1])
                entry["datatrove"] = dt
                if dt and "docs_per_s" in dt:
                    entry["vs_datatrove"] = round(last["documents"] / last["stage_seconds"] / dt["docs_per_s"], 2)
        if stage.startswith("ingest-") and args.warcio:  # the same pages read by warcio: what FastWARC saves
            slow = figures(run_ingest(stage.removeprefix("ingest-"), last["documents"], "warcio"), bytes_per)
            entry["warcio"] = slow
            entry["vs_warcio"] = round(last["docs_per_s_per_core"] / slow["docs_per_s_per_core"], 3)
        if stage in ("ingest-resiliparse", "ingest-trafilatura"):
            raw = baseline_extract(stage.removeprefix("ingest-"))
            entry["baseline_pages_per_s_one_process"] = round(raw, 1)
            entry["vs_raw_times_cores"] = round(last["docs_per_s_per_core"] / raw, 3)
        if stage in ONE_PROCESS:
            raw = baseline(stage)
            entry["baseline_docs_per_s_one_process"] = round(raw, 1)
            entry["vs_raw_times_cores"] = round(last["docs_per_s_per_core"] / raw, 3)
            longest = (last.get("jobs") or {}).get("longest")
            if longest:  # the pass over the documents alone, without the stage's other jobs: the fixed costs' share
                entry["pass_vs_raw_times_cores"] = round(last["documents"] / longest["seconds"] / CORES / raw, 3)
        result["stages"][stage] = entry
        (WORK / "results.json").write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
