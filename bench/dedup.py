"""The dedup benchmark (issue #3), run by ``bench/run.py --only dedup``.

Data: real text cut into documents of ~300 words (twice: the second
cut shifted by 150 words) — the main text of the ingest bench's 2,411 documentation pages
(pydoc, Python, PostgreSQL and git manuals), the standard library's plain-text pydoc, and the documentation
strings of botocore's 443 service models — with seeded near-duplicate copies (corpus.dedup.evaluate): ≥ 100k
documents. Ground truth: every pair with exact 5-gram-shingle Jaccard ≥ 0.8 (prefix filtering, exact check).

Runs, on the same documents in the same command:
* ours: ``forge dedup`` on local[2] and local[1] (separate processes; peak RSS of the JVM and the Python
  workers sampled from /proc), and on a 10× smaller slice for the memory growth;
* datasketch: signatures (``MinHash.bulk``, sha1 hash, the same shingles) and ``MinHashLSH`` insert + query in
  one process, then union-find;
* datatrove 0.10.1: its four MinHash steps (signatures, buckets, cluster, filter) with the local executor, 2
  workers, 5-grams, 16 buckets × 8 hashes (the same bands as ours), in its own venv (bench/work/datatrove-venv);
* the signature kernel alone, in one process, against a bare numpy loop (tokenise, hash, permute, min).
"""

from __future__ import annotations

import glob
import gzip
import html
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = HERE / "work"
DATA = WORK / "dedup-data"
FORGE = [sys.executable, "-m", "corpus"]
DT_VENV = WORK / "datatrove-venv"
_TAG = re.compile(r"<[^>]+>")


def _real_texts() -> list[str]:
    import pyarrow.parquet as pq

    from corpus import samples

    texts = []
    pages = WORK / "ingest-meta" / "data"
    if pages.exists():
        texts += pq.read_table(str(pages), columns=["text"]).column("text").to_pylist()
    texts += [t for t in (samples.pydoc_text(m) for m in samples.stdlib_modules()) if t]
    import botocore

    for f in sorted(glob.glob(os.path.join(os.path.dirname(botocore.__file__), "data", "*", "*", "service-2.json.gz"))):
        model = json.load(gzip.open(f))
        parts = [op.get("documentation", "") for op in model.get("operations", {}).values()]
        for shape in model.get("shapes", {}).values():
            parts.append(shape.get("documentation", ""))
            parts += [m.get("documentation", "") for m in shape.get("members", {}).values()]
        texts.append("\n\n".join(html.unescape(_TAG.sub(" ", p)) for p in parts if p))
    return texts


WORDS = 300


def build_data(limit: int = 200_000) -> dict:
    """Documents (Parquet, document schema; and JSONL for datatrove) and the ground truth, under DATA."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from corpus import samples, schema
    from corpus.dedup import evaluate
    from corpus.ids import content_id

    info_path = DATA / "info.json"
    if info_path.exists():
        return json.loads(info_path.read_text())
    DATA.mkdir(parents=True, exist_ok=True)
    texts = _real_texts()
    # two cuts of the same text, the second shifted by half a document: real partial overlaps (Jaccard ~0.3)
    # that a dedup must not remove, and twice the documents
    shifted = [" ".join(t.split()[WORDS // 2 :]) for t in texts]
    chunks = samples.text_chunks(texts + shifted, words=WORDS, min_words=WORDS // 3)[:limit]
    rows = evaluate.make_near_duplicates(chunks, seed=7, share=0.3, max_copies=3)
    t0 = time.perf_counter()
    pairs = evaluate.true_pairs(evaluate.shingle_arrays([r[0] for r in rows]), 0.8)
    truth_s = time.perf_counter() - t0
    ids = [content_id(text, f"bench://{i}") for i, (text, _, _) in enumerate(rows)]
    table = pa.Table.from_pylist(
        [
            {
                "id": ids[i],
                "part": "text",
                "source": kind,
                "url": f"bench://{i}",
                "text": text,
                "metadata": json.dumps({"row": i}),
            }
            for i, (text, kind, _) in enumerate(rows)
        ],
        schema=schema.document().arrow,
    )
    for name, n in (("full", len(rows)), ("tenth", len(rows) // 10)):
        (DATA / name).mkdir(exist_ok=True)
        pq.write_table(table.slice(0, n), str(DATA / name / "docs.parquet"), row_group_size=4096)
    write_jsonl(rows, ids)
    (DATA / "pairs.json").write_text(json.dumps([[i, j] for i, j in pairs]))
    info = {
        "documents": len(rows),
        "originals": len(chunks),
        "true_pairs": len(pairs),
        "words": sum(len(r[0].split()) for r in rows),
        "ground_truth_seconds": round(truth_s, 1),
    }
    info_path.write_text(json.dumps(info))
    return info


def write_jsonl(rows, ids, files: int = 4) -> None:
    """The documents as JSONL for datatrove, in several files: its reader gives each task whole files, so one
    file would leave one of the two workers idle."""
    (DATA / "jsonl").mkdir(exist_ok=True)
    handles = [open(DATA / "jsonl" / f"docs-{k}.jsonl", "w") for k in range(files)]
    for i, (text, _, _) in enumerate(rows):
        handles[i * files // len(rows)].write(json.dumps({"id": ids[i], "text": text}) + "\n")
    for h in handles:
        h.close()


class PeakRSS:
    """Samples a process tree from /proc: the peak resident memory of the JVM and of any Python worker, and the CPU
    seconds each kind of process used (the driver's Python, the JVM, the workers: where a stage's time goes)."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peaks, self._stop = pid, {"jvm": 0, "python_worker": 0}, threading.Event()
        self._cpu: dict[int, tuple[str, float]] = {}
        self.series: list[tuple[float, int, int]] = []  # (seconds since start, JVM RSS, largest worker RSS) in MB
        self._t0 = time.perf_counter()
        self._tick = os.sysconf("SC_CLK_TCK")
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _tree(self) -> list[int]:
        kids: dict[int, list[int]] = {}
        for stat in glob.glob("/proc/[0-9]*/stat"):
            try:
                fields = open(stat).read().rsplit(")", 1)[1].split()
                kids.setdefault(int(fields[1]), []).append(int(stat.split("/")[2]))
            except (OSError, IndexError, ValueError):
                continue
        out, todo = [], [self.pid]
        while todo:
            p = todo.pop()
            out.append(p)
            todo += kids.get(p, [])
        return out

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            now = {"jvm": 0, "python_worker": 0}
            for p in self._tree():
                try:
                    cmd = open(f"/proc/{p}/cmdline", "rb").read()
                    rss = next(int(ln.split()[1]) * 1024 for ln in open(f"/proc/{p}/status") if ln.startswith("VmRSS"))
                    fields = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
                except (OSError, StopIteration):
                    continue
                kind = "jvm" if b"java" in cmd.split(b"\0")[0] else ("python_worker" if b"pyspark" in cmd else None)
                if kind:
                    self.peaks[kind] = max(self.peaks[kind], rss)
                    now[kind] = max(now[kind], rss)
                if kind or p == self.pid:
                    # utime + stime (fields 14 and 15 of stat; 12 and 13 after the name)
                    self._cpu[p] = (kind or "driver", (int(fields[11]) + int(fields[12])) / self._tick)
            t = round(time.perf_counter() - self._t0, 2)
            self.series.append((t, round(now["jvm"] / 2**20), round(now["python_worker"] / 2**20)))

    def stop(self) -> dict:
        self._stop.set()
        self._thread.join()
        return {k: round(v / 2**20) for k, v in self.peaks.items()}

    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds by kind of process, as last sampled (a process's last 0.25 s may be missed)."""
        out: dict[str, float] = {}
        for kind, seconds in self._cpu.values():
            out[kind] = round(out.get(kind, 0.0) + seconds, 1)
        return out


def run_forge(args: list[str], what: str) -> tuple[dict, float, dict]:
    """`forge -q <args>` in its own process: (the peak RSS of its JVM and Python workers, wall seconds, CPU seconds
    by kind of process). ``what`` names the run in the error raised when it fails."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        FORGE + ["-q", *args], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    sampler = PeakRSS(proc.pid)
    _, err = proc.communicate()
    peaks = sampler.stop()
    if proc.returncode:
        raise RuntimeError(f"{what} failed:\n{err[-3000:]}")
    return peaks, time.perf_counter() - t0, sampler.cpu_seconds()


def run_forge_stage(stage: str, inp: Path, out: Path, cfg: Path) -> tuple[dict, dict, float, dict]:
    """`forge <stage>` in its own process: (its stats, the peak RSS of its JVM and Python workers, wall seconds,
    CPU seconds by kind of process)."""
    args = [stage, "--config", str(cfg), "--input", str(inp), "--output", str(out), "--force"]
    peaks, wall, cpu = run_forge(args, f"forge {stage} on {inp}")
    return json.loads((out / "_stats.json").read_text()), peaks, wall, cpu


def run_ours(inp: Path, out: Path, master: str, extra: dict | None = None) -> dict:
    cfg = WORK / f"dedup-{out.name}.yaml"
    cfg.write_text(
        json.dumps({"spark": {"master": master, "progress": False, "driver_memory": "6g"}, "dedup": extra or {}})
    )
    stats, peaks, wall, _ = run_forge_stage("dedup", inp, out, cfg)
    return {
        "wall_seconds": round(wall, 1),
        "stage_seconds": stats["seconds"],
        "rows_in": stats["rows_in"],
        "rejects": stats["rejects_by_reason"],
        "extra": stats.get("extra", {}),
        "peak_rss_mb": peaks,
    }


def removed_rows(out: Path) -> set[int]:
    import pyarrow.parquet as pq

    meta = pq.read_table(str(out / "rejects"), columns=["metadata"]).column("metadata").to_pylist()
    return {json.loads(m)["row"] for m in meta}


def run_datasketch(texts: list[str]) -> dict:
    """datasketch as its docs show it: bulk signatures (default sha1 hash), MinHashLSH, union-find."""
    from datasketch import MinHash, MinHashLSH

    from corpus.dedup import evaluate, minhash

    t0 = time.perf_counter()
    sets = [minhash.shingles(t) for t in texts]
    sigs = MinHash.bulk(sets, num_perm=128)
    t_sig = time.perf_counter() - t0
    lsh = MinHashLSH(num_perm=128, params=(16, 8))
    for i, m in enumerate(sigs):
        lsh.insert(i, m)
    pairs = []
    for i, m in enumerate(sigs):
        for j in lsh.query(m):
            if j < i and m.jaccard(sigs[j]) >= 0.8:
                pairs.append((j, i))
    comp = evaluate.components(len(texts), pairs)
    removed = {i for i, c in enumerate(comp) if c != i}
    return {"seconds": round(time.perf_counter() - t0, 1), "signature_seconds": round(t_sig, 1), "removed": removed}


DATATROVE_SCRIPT = r"""
import sys, time, json
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.dedup.minhash import (MinhashConfig, MinhashDedupSignature, MinhashDedupBuckets,
    MinhashDedupCluster, MinhashDedupFilter)
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers import JsonlWriter
from datatrove.utils.hashing import HashConfig
data, work = sys.argv[1], sys.argv[2]
cfg = MinhashConfig(hash_config=HashConfig(precision=64), num_buckets=16, hashes_per_bucket=8, n_grams=5)
reader = lambda: JsonlReader(data, glob_pattern="docs-*.jsonl", id_key="id")
t = {}
t0 = time.perf_counter()
LocalPipelineExecutor(pipeline=[reader(), MinhashDedupSignature(output_folder=f"{work}/sigs", config=cfg)],
                      tasks=2, workers=2, logging_dir=f"{work}/logs/sigs").run()
t["signatures"] = time.perf_counter() - t0
LocalPipelineExecutor(pipeline=[MinhashDedupBuckets(input_folder=f"{work}/sigs", output_folder=f"{work}/buckets",
                      config=cfg)], tasks=cfg.num_buckets, workers=2, logging_dir=f"{work}/logs/buckets").run()
t["buckets"] = time.perf_counter() - t0
LocalPipelineExecutor(pipeline=[MinhashDedupCluster(input_folder=f"{work}/buckets", output_folder=f"{work}/remove_ids",
                      config=cfg)], tasks=1, workers=1, logging_dir=f"{work}/logs/cluster").run()
t["cluster"] = time.perf_counter() - t0
LocalPipelineExecutor(pipeline=[reader(), MinhashDedupFilter(input_folder=f"{work}/remove_ids",
                      exclusion_writer=JsonlWriter(f"{work}/removed")), JsonlWriter(f"{work}/kept")],
                      tasks=2, workers=2, logging_dir=f"{work}/logs/filter").run()
t["filter"] = time.perf_counter() - t0
print(json.dumps(t))
"""


def ensure_datatrove() -> Path | None:
    py = DT_VENV / "bin" / "python"
    if not py.exists():
        try:
            subprocess.run([sys.executable, "-m", "venv", str(DT_VENV)], check=True)
            # regex and tokenizers: imported by datatrove 0.10.1 but not declared; xxhash < 4: datatrove hashes
            # str shingles, which xxhash 4 refuses ("Strings must be encoded before hashing")
            subprocess.run(
                [
                    str(py),
                    "-m",
                    "pip",
                    "install",
                    "-q",
                    "datatrove==0.10.1",
                    "spacy",
                    "orjson",
                    "regex",
                    "tokenizers",
                    "xxhash<4",
                ],
                check=True,
            )
        except (subprocess.CalledProcessError, FileNotFoundError) as err:
            print(f"note: could not install datatrove ({err}); skipping it", file=sys.stderr)
            return None
    return py


def run_datatrove(jsonl_dir: Path) -> dict | None:
    import shutil

    py = ensure_datatrove()
    if py is None:
        return None
    work = WORK / "datatrove-run"
    shutil.rmtree(work, ignore_errors=True)
    t0 = time.perf_counter()
    res = subprocess.run([str(py), "-c", DATATROVE_SCRIPT, str(jsonl_dir), str(work)], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if res.returncode:
        print(f"note: datatrove failed:\n{res.stderr[-2000:]}", file=sys.stderr)
        return {"failed": res.stderr[-500:]}
    steps = json.loads(res.stdout.strip().splitlines()[-1])
    removed = set()
    for f in glob.glob(str(work / "removed" / "*")):
        opener = gzip.open if f.endswith(".gz") else open
        with opener(f, "rt") as fh:
            removed |= {json.loads(line)["id"] for line in fh}
    return {
        "seconds": round(wall, 1),
        "steps_cumulative_seconds": {k: round(v, 1) for k, v in steps.items()},
        "removed_ids": removed,
    }


def numpy_loop_rate(texts: list[str]) -> float:
    """Docs/s of a bare numpy loop: tokenise, hash shingles (xxh32), permute and min with numpy arrays."""
    import numpy as np
    import xxhash

    from corpus.dedup import minhash

    a, b = minhash.permutations(128, 1)
    a64, b64 = a.astype(np.uint64), b.astype(np.uint64)
    t0 = time.perf_counter()
    for t in texts:
        toks = t.lower().split()
        sh = [" ".join(toks[i : i + 5]).encode() for i in range(max(len(toks) - 4, 1))]
        hv = np.fromiter((xxhash.xxh32_intdigest(s) for s in sh), dtype=np.uint64, count=len(sh))
        ((hv[:, None] * a64 + b64) & np.uint64(0xFFFFFFFF)).min(axis=0)
    return len(texts) / (time.perf_counter() - t0)


def kernel_rate(texts: list[str]) -> float:
    import pyarrow as pa

    from corpus.dedup import minhash

    arr = pa.array(texts)
    minhash.signatures(arr.slice(0, 10))
    t0 = time.perf_counter()
    for k in range(0, len(arr), 256):  # Arrow batches of 256 rows, as in the stage
        minhash.signatures(arr.slice(k, 256))
    return len(texts) / (time.perf_counter() - t0)


def bench(skip_datatrove: bool = False) -> dict:
    import pyarrow.parquet as pq

    from corpus.dedup import evaluate

    info = build_data()
    n = info["documents"]
    print(f"dedup: {n} documents, {info['true_pairs']} true pairs", file=sys.stderr)
    pairs = [tuple(p) for p in json.loads((DATA / "pairs.json").read_text())]
    texts = pq.read_table(str(DATA / "full"), columns=["text"]).column("text").to_pylist()
    result: dict = {"data": info}

    sample = texts[:5000]
    result["signatures_one_core"] = {
        "kernel_docs_per_s": round(kernel_rate(sample)),
        "numpy_loop_docs_per_s": round(numpy_loop_rate(sample)),
    }

    for key, master in (("ours_local2", "local[2]"), ("ours_local1", "local[1]")):
        r = run_ours(DATA / "full", WORK / f"dedup-{key}", master)
        removed = removed_rows(WORK / f"dedup-{key}")
        r["quality"] = evaluate.removal_scores(n, pairs, removed)
        r["docs_per_s"] = round(n / r["stage_seconds"])
        result[key] = r
        print(f"  {key}: {r['stage_seconds']} s, {r['quality']}", file=sys.stderr)
    tenth = run_ours(DATA / "tenth", WORK / "dedup-tenth", "local[2]")
    result["ours_local2_tenth"] = tenth
    r = run_ours(DATA / "full", WORK / "dedup-noverify", "local[2]", {"minhash": {"verify": "off"}})
    r["quality"] = evaluate.removal_scores(n, pairs, removed_rows(WORK / "dedup-noverify"))
    result["ours_local2_verify_off"] = r
    r = run_ours(DATA / "full", WORK / "dedup-estimate", "local[2]", {"minhash": {"verify": "estimate"}})
    r["quality"] = evaluate.removal_scores(n, pairs, removed_rows(WORK / "dedup-estimate"))
    result["ours_local2_verify_estimate"] = r

    ds = run_datasketch(texts)
    ds["quality"] = evaluate.removal_scores(n, pairs, ds.pop("removed"))
    ds["docs_per_s"] = round(n / ds["seconds"])
    result["datasketch"] = ds
    print(f"  datasketch: {ds['seconds']} s", file=sys.stderr)
    if not skip_datatrove:
        dt = run_datatrove(DATA / "jsonl")
        if dt and "seconds" in dt:
            ids = pq.read_table(str(DATA / "full"), columns=["id"]).column("id").to_pylist()
            position = {v: i for i, v in enumerate(ids)}
            dt["quality"] = evaluate.removal_scores(n, pairs, {position[i] for i in dt.pop("removed_ids")})
            dt["docs_per_s"] = round(n / dt["seconds"])
        result["datatrove"] = dt
        print(f"  datatrove: {dt}", file=sys.stderr)

    ours = result["ours_local2"]
    result["ratios"] = {
        "ours_vs_datasketch": round(ours["docs_per_s"] / ds["docs_per_s"], 2),
        "speedup_local1_to_local2": round(result["ours_local1"]["stage_seconds"] / ours["stage_seconds"], 2),
        "kernel_vs_numpy_loop": round(
            result["signatures_one_core"]["kernel_docs_per_s"] / result["signatures_one_core"]["numpy_loop_docs_per_s"],
            2,
        ),
        # the check's own cost: its phase (candidates + check) against the same phase unchecked, over the stage
        "check_cost_share": round(
            (
                ours["extra"]["seconds_candidates_and_check"]
                - result["ours_local2_verify_off"]["extra"]["seconds_candidates_and_check"]
            )
            / ours["stage_seconds"],
            3,
        ),
    }
    if result.get("datatrove") and "docs_per_s" in result["datatrove"]:
        result["ratios"]["ours_vs_datatrove"] = round(ours["docs_per_s"] / result["datatrove"]["docs_per_s"], 2)
    return result
