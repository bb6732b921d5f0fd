"""`make bench`: measurements as ratios against a baseline run in the same command on the same data.

    python bench/run.py [--only ingest-web|make-run|dedup|apis|crawl|classify|extract|trajectories|output|cluster|
                                adversarial|agent-web|executed|export|extractors|scale]
                        [--reps N] [--skip-datatrove]

scale (only when named; `make bench-scale`)
    bench/scale.py: a 1,000,000-document corpus built here, each per-document stage and the whole pipeline at
    100k, 300k and 1M documents, per core and against its own function in one process; see that file.

ingest-web
    Pages: the standard library's pydoc pages (`forge sample-data`) and the HTML manuals of Debian's
    python3.11-doc, postgresql-doc-15 and git-doc (installed here with apt-get if missing; skipped with a note
    if they cannot be), packed into WARC.gz files.
    Baseline: plain `trafilatura.extract(payload)` in a Python loop over the same pages, one process; and the
    same loop in two processes (raw × 2 cores measured, under the same contention as Spark gets).
    Subject: `forge ingest-web --master local[2]` (a separate process), with title/date extraction off (the
    same work as the baseline) and on (the default). Reported: pages/s and the ratio to 2 × the baseline
    (goal ≥ 0.85) and to the two-process baseline, on the stage time and on the whole command's wall time;
    extraction fidelity as token F1 of
    each page's text against the baseline's text for the same page (goal ≥ 0.99).
extractors
    trafilatura and Resiliparse (`ingest-web.extract.engine`) on the same Debian manual pages: pages/s and token
    F1 against each page's marked main content; warcio against fastwarc reading the same WARC.gz files. See
    bench/extractors.py.
dedup
    Near-duplicate removal against exact ground truth, and speed against datasketch and datatrove on the same
    ≥ 100k real-text documents: see bench/dedup.py.
apis, crawl
    Tool documentation (issue #4): operations ingested vs an independent count per real source, records/s; crawl
    pages/s against a local docs site, politeness at defaults and relaxed. See bench/apis.py.
classify
    The agent-relevance classifier (issue #5): held-out F1 on real tool docs vs real general text, and scoring
    throughput on local[2] against raw fastText in one process. See bench/classify.py.
extract
    Instruction pairs (issue #5) per 1,000 documents by extractor on Debian's HTML manuals and on the API
    operations of the classify benchmark; stage docs/s against the batch function in one process. See
    bench/extract.py.
trajectories
    BFCL v4 through ingest-trajectories (pass rates per check, rewards), synthesis from every botocore and Google
    operation, the ToolRL scorer's speed. See bench/trajectories.py.
output
    Mixing, shards and decontamination (issue #7) on the default run (make-run's output): composition vs target,
    `forge write` against plain pyarrow writing the same table, planted BFCL questions. See bench/output.py.
cluster
    The default run on a standalone cluster (a master and two one-core workers on 127.0.0.1) against the same run
    on local[2]; and on the cluster with one worker killed while dedup writes, against the undisturbed cluster
    run. See bench/cluster.py.
agent-web
    The agent-relevance classifier on real pages of sources it never trained on (issue #23): out-of-source and
    labelled precision / recall / F1, words against words-and-punctuation. See bench/agent_web.py.
executed
    Executed trajectories (#24): the default run's shards (executed share, multi-call, multi-turn, placeholders),
    `forge synthesize` trajectories/s per core against its kernel in one process, corrupted calls rejected.
    See bench/executed.py.
adversarial
    Hostile inputs at full size through the real `forge` command (issue #22): decompression bombs, deep JSON,
    damaged files, WARC records that swallow others, YAML alias bombs, SSRF redirects, secrets, failing LLM
    endpoints; outcome and peak memory of the process tree per case. See bench/adversarial.py.
export
    Trainer-ready export (#27) of the default run's shards: `forge export` tokens/s against the raw tokenizer x
    cores, and a small causal-LM training loop on the packed rows (loader tokens/s over the model's). See
    bench/export.py.
make-run
    Wall time of `forge run --config configs/default.yaml` into a fresh folder, after setup and with the sample
    data built (goal: under 5 minutes).

Results go to bench/work/results.json and are printed as Markdown for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = HERE / "work"
# Debian documentation packages: real HTML manuals (Sphinx, DocBook, AsciiDoc), installed by this script.
DEBIAN_DOCS = {
    "python3.11-doc": (Path("/usr/share/doc/python3.11/html"), "https://docs.python.org/3.11/"),
    "postgresql-doc-15": (Path("/usr/share/doc/postgresql-doc-15/html"), "https://www.postgresql.org/docs/15/"),
    "git-doc": (Path("/usr/share/doc/git-doc"), "https://git-scm.com/docs/"),
}
FORGE = [sys.executable, "-m", "corpus"]


def sh(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, text=True, **kw)


def ensure_debian_docs() -> list[str]:
    """Install the documentation packages that are missing; return those available."""
    missing = [name for name, (path, _) in DEBIAN_DOCS.items() if not path.exists()]
    if missing:
        try:
            sh(["apt-get", "update", "-qq"], capture_output=True)
            sh(
                ["apt-get", "install", "-y", "-qq", *missing],
                capture_output=True,
                env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
            )
        except (subprocess.CalledProcessError, FileNotFoundError) as err:
            print(f"note: could not install {missing} ({err}); benchmarking without them", file=sys.stderr)
    return [name for name, (path, _) in DEBIAN_DOCS.items() if path.exists()]


def build_pages() -> Path:
    """WARC.gz files of every bench page under bench/work/web; returns that folder."""
    from corpus import samples
    from corpus.web.warc import write_warc

    web = WORK / "web"
    if (web / "_SUCCESS").exists():
        return web
    web.mkdir(parents=True, exist_ok=True)
    samples.build(str(WORK / "samples"))
    for f in (WORK / "samples" / "web").glob("*.warc.gz"):
        (web / f.name).write_bytes(f.read_bytes())
    pages = []
    for f in sorted((WORK / "samples" / "web" / "html").glob("*.html")):
        pages.append((f"http://127.0.0.1/pydoc/{f.name}", f.read_bytes(), "text/html; charset=utf-8"))
    for name in ensure_debian_docs():
        root, base = DEBIAN_DOCS[name]
        for f in sorted(root.rglob("*.html")):
            pages.append((base + f.relative_to(root).as_posix(), f.read_bytes(), "text/html"))
    for k in range(8):
        write_warc(str(web / f"bench-{k}.warc.gz"), pages[k::8])
    (web / "_SUCCESS").write_text("")
    return web


def load_pages(web: Path) -> list[tuple[str, bytes]]:
    from warcio.archiveiterator import ArchiveIterator

    pages = []
    for f in sorted(web.glob("*.warc.gz")):
        with open(f, "rb") as fh:
            for rec in ArchiveIterator(fh):
                if rec.rec_type == "response":
                    pages.append((rec.rec_headers.get_header("WARC-Target-URI"), rec.content_stream().read()))
    return pages


def baseline(pages: list[tuple[str, bytes]]) -> tuple[float, dict[str, str]]:
    import trafilatura

    import logging

    logging.getLogger("trafilatura").setLevel(logging.CRITICAL)
    texts = {}
    t0 = time.perf_counter()
    for url, body in pages:
        texts[url] = trafilatura.extract(body, url=url) or ""
    return time.perf_counter() - t0, texts


def _extract_one(page: tuple[str, bytes]) -> tuple[str, str]:
    import logging

    import trafilatura

    logging.getLogger("trafilatura").setLevel(logging.CRITICAL)
    url, body = page
    return url, trafilatura.extract(body, url=url) or ""


def baseline_two_processes(pages: list[tuple[str, bytes]]) -> float:
    """The same loop in two processes (dynamic chunks of 8 pages): raw × 2 cores as this machine gives them
    now, under the same contention as the Spark run."""
    from multiprocessing import get_context

    with get_context("fork").Pool(2) as pool:
        pool.map(_extract_one, pages[:4])  # warm both processes (imports), as the loop above is warm
        t0 = time.perf_counter()
        pool.map(_extract_one, pages, chunksize=8)
        return time.perf_counter() - t0


def forge_ingest(web: Path, out: Path, metadata: bool) -> tuple[float, float, dict]:
    cfg = WORK / f"ingest-{'meta' if metadata else 'nometa'}.yaml"
    cfg.write_text(
        json.dumps(
            {"spark": {"master": "local[2]", "progress": False}, "ingest-web": {"extract": {"metadata": metadata}}}
        )
    )
    t0 = time.perf_counter()
    sh(
        FORGE + ["-q", "ingest-web", "--config", str(cfg), "--input", str(web), "--output", str(out), "--force"],
        cwd=ROOT,
        capture_output=True,
    )
    wall = time.perf_counter() - t0
    stats = json.loads((out / "_stats.json").read_text())
    return stats["seconds"], wall, stats


def token_f1(a: str, b: str) -> float:
    ta, tb = Counter(a.split()), Counter(b.split())
    if not ta and not tb:
        return 1.0
    overlap = sum((ta & tb).values())
    if not overlap:
        return 0.0
    p, r = overlap / sum(ta.values()), overlap / sum(tb.values())
    return 2 * p * r / (p + r)


def bench_ingest(reps: int) -> dict:
    import pyarrow.parquet as pq

    web = build_pages()
    pages = load_pages(web)
    print(f"ingest-web: {len(pages)} pages, {sum(len(b) for _, b in pages) / 1e6:.1f} MB", file=sys.stderr)
    runs = {
        "baseline": [],
        "baseline_2proc": [],
        "nometa_stage": [],
        "nometa_wall": [],
        "meta_stage": [],
        "meta_wall": [],
    }
    texts: dict[str, str] = {}
    for rep in range(reps):
        secs, texts = baseline(pages)
        runs["baseline"].append(secs)
        runs["baseline_2proc"].append(baseline_two_processes(pages))
        for metadata, key in ((False, "nometa"), (True, "meta")):
            stage, wall, stats = forge_ingest(web, WORK / f"ingest-{key}", metadata)
            runs[f"{key}_stage"].append(stage)
            runs[f"{key}_wall"].append(wall)
        print(f"  rep {rep + 1}: " + ", ".join(f"{k} {v[-1]:.1f}s" for k, v in runs.items()), file=sys.stderr)
    best = {k: min(v) for k, v in runs.items()}
    n = len(pages)
    raw_rate = n / best["baseline"]
    result = {
        "pages": n,
        "reps": reps,
        "seconds": best,
        "all_seconds": runs,
        "baseline_pages_per_s": round(raw_rate, 2),
        "baseline_2proc_pages_per_s": round(n / best["baseline_2proc"], 2),
        "two_process_speedup": round(best["baseline"] / best["baseline_2proc"], 3),
    }
    for key in ("nometa", "meta"):
        for kind in ("stage", "wall"):
            rate = n / best[f"{key}_{kind}"]
            result[f"{key}_{kind}_pages_per_s"] = round(rate, 2)
            result[f"{key}_{kind}_ratio_vs_2x_baseline"] = round(rate / (2 * raw_rate), 3)
            result[f"{key}_{kind}_ratio_vs_2proc_baseline"] = round(rate / (n / best["baseline_2proc"]), 3)
    # fidelity, for the default (metadata on) output, page by page against the baseline text
    docs = pq.read_table(WORK / "ingest-meta" / "data", columns=["url", "text"]).to_pylist()
    ours = {d["url"]: d["text"] for d in docs}
    f1s = [token_f1(ours.get(url, ""), texts[url]) for url in texts if texts[url] or url in ours]
    result["fidelity_mean_token_f1"] = round(sum(f1s) / len(f1s), 5)
    result["fidelity_pages_exact"] = sum(1 for url in texts if ours.get(url, "") == texts[url])
    result["fidelity_pages_compared"] = len(f1s)
    result["pages_without_text_baseline"] = sum(1 for t in texts.values() if not t)
    result["pages_rejected_ours"] = n - len(ours)
    return result


@contextmanager
def sample_site(port: int = 8765):
    """The sample docs site (data/samples/site) on 127.0.0.1, as `make run` serves it: the default config crawls it."""
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", "data/samples/site"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(1.0)
        yield
    finally:
        server.terminate()
        server.wait()


def stage_times(out: Path) -> dict:
    stages = {}
    for d in sorted(out.iterdir()):
        if (d / "_stats.json").exists():
            s = json.loads((d / "_stats.json").read_text())
            stages[s["stage"]] = {"seconds": s["seconds"], "rows_out": s["rows_out"]}
    return stages


def bench_make_run() -> dict:
    sh(FORGE + ["-q", "sample-data", "--output", "data/samples"], cwd=ROOT, capture_output=True)
    out = WORK / "make-run-out"
    import shutil

    shutil.rmtree(str(out) + "/crawl-warc", ignore_errors=True)  # crawl afresh (a kept archive would resume)
    with sample_site():
        t0 = time.perf_counter()
        sh(
            FORGE + ["-q", "run", "--config", "configs/default.yaml", "--output", str(out), "--force"],
            cwd=ROOT,
            capture_output=True,
        )
        wall = time.perf_counter() - t0
    return {"wall_seconds": round(wall, 1), "stages": stage_times(out)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--only",
        choices=[
            "ingest-web",
            "make-run",
            "dedup",
            "apis",
            "crawl",
            "classify",
            "extract",
            "trajectories",
            "output",
            "cluster",
            "adversarial",
            "agent-web",
            "executed",
            "export",
            "extractors",
            "scale",
        ],
    )
    ap.add_argument("--skip-datatrove", action="store_true", help="dedup: leave out the datatrove run")
    ap.add_argument("--reps", type=int, default=1, help="repetitions; the best of each is reported")
    args = ap.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    results_file = WORK / "results.json"
    results = json.loads(results_file.read_text()) if results_file.exists() else {}
    if args.only in (None, "ingest-web"):
        results["ingest-web"] = bench_ingest(args.reps)
    if args.only in (None, "make-run"):
        results["make-run"] = bench_make_run()
    sys.path.insert(0, str(HERE))
    if args.only in (None, "apis", "crawl"):
        import apis

        if args.only in (None, "apis"):
            results["apis"] = apis.bench_apis()
        if args.only in (None, "crawl"):
            results["crawl"] = apis.bench_crawl()
    if args.only in (None, "classify"):
        import classify

        results["classify"] = classify.bench()
    if args.only in (None, "extract"):
        import extract

        html = [DEBIAN_DOCS[name][0] for name in ensure_debian_docs()]
        results["extract"] = extract.bench(html)
    if args.only in (None, "trajectories"):
        import trajectories

        results["trajectories"] = trajectories.bench()
    if args.only in (None, "output"):
        import output

        if not (WORK / "make-run-out" / "mix" / "_SUCCESS").exists():  # a run of this version (with mix)
            results["make-run"] = bench_make_run()
        results["output"] = output.bench(WORK / "make-run-out")
    if args.only in (None, "dedup"):
        import dedup

        if not (WORK / "ingest-meta" / "data").exists():
            bench_ingest(1)  # the dedup data includes the ingest bench's extracted pages
        results["dedup"] = dedup.bench(skip_datatrove=args.skip_datatrove)
    if args.only in (None, "cluster"):
        import cluster

        results["cluster"] = cluster.bench()
    if args.only in (None, "executed"):
        import executed

        results["executed"] = executed.bench()
    if args.only in (None, "export"):
        import export

        results["export"] = export.bench()
    if args.only in (None, "extractors"):
        import extractors

        results["extractors"] = extractors.main()
    if args.only in (None, "agent-web"):
        import agent_web

        results["agent-web"] = agent_web.bench()
    if args.only in (None, "adversarial"):
        import adversarial

        results["adversarial"] = adversarial.bench(
            os.environ.get("FORGE_LLM_PYTHON"), os.environ.get("FORGE_LLM_MODEL")
        )
    if args.only == "scale":  # only when named: it takes about 80 minutes (`make bench-scale`)
        import scale

        results["scale"] = scale.main([])
    results["machine"] = {"cores": os.cpu_count(), "python": sys.version.split()[0]}
    results_file.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
