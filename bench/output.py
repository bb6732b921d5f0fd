"""Mixing, shards and decontamination benchmark (issue #7), run by bench/run.py (`--only output`).

Data: the default run (`make-run` bench output, bench/work/make-run-out; run first if missing).

composition
    Target vs achieved token shares of every output's manifest (goal: within ±1 percentage point).
shards
    The `write` stage on local[2] over the run's final documents and its mix selection (both outputs, copies
    included), run 1 + REPS times in one session (cold: the first Spark jobs of a JVM; warm: as inside `forge
    run`), each warm run paired with plain pyarrow writing the same rows (already in memory, in the stage's
    order, same compression, one process of its own) just before it: the ratio is the median of the pairs, so
    that a slow spell of the shared machine hits both sides. And the shard writer alone (`ShardWriter`,
    in this process, on the rows already keyed and sorted) against pyarrow, alternated. Reported as text MB/s and
    ratios (goal ≥ 0.8).
decontamination
    The run's documents before decontamination, minus those imported from BFCL itself ("clean"), plus 1,000 copies
    of clean documents with a real BFCL v4 question (≥ 8 words) planted in the middle. Reported: planted removed
    (goal: all), clean documents removed (and what they matched), stage docs/s with and without the Bloom prefilter.
"""

from __future__ import annotations

import json
import random
import shutil
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = HERE / "work" / "output"
FORGE = [sys.executable, "-m", "corpus"]


def sh(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, text=True, **kw)


def _stats(path: Path) -> dict:
    return json.loads((path / "_stats.json").read_text())


def composition(run: Path) -> dict:
    out = {}
    for manifest in sorted((run / "write").glob("*/manifest.json")):
        m = json.loads(manifest.read_text())
        comp = m["composition"]
        diff = max(abs(comp["achieved"].get(p, 0) - t) for p, t in comp["target"].items())
        out[m["output"]] = {
            "tokens": m["tokens"],
            "rows": m["rows"],
            "target": comp["target"],
            "achieved": comp["achieved"],
            "max_abs_diff": round(diff, 6),
        }
    return out


BASELINE = r"""
import sys, time
import pyarrow as pa, pyarrow.parquet as pq
tables = []
for path in sys.argv[1:]:
    with pa.memory_map(path) as source:
        tables.append((path, pa.ipc.open_file(source).read_all().combine_chunks()))
t0 = time.perf_counter()
for path, table in tables:
    pq.write_table(table, path + ".parquet", compression="zstd", compression_level=3)
print(time.perf_counter() - t0)
"""

SHARDS_DRIVER = r"""
import json, subprocess, sys, time
sys.path.insert(0, sys.argv[1])
from corpus.config import load_config
from corpus.write.stage import build
from corpus.spark.session import build_session
from corpus.stage import run_stage
cfg = load_config(sys.argv[2])
spark = build_session(cfg.spark, master="local[2]", app_name="bench write")
out = {"warm": [], "pyarrow": []}
for rep in range(1 + int(sys.argv[6])):
    label = "cold" if rep == 0 else f"warm{rep}"
    if rep:  # the baseline just before, in a process of its own holding the rows in memory
        run = subprocess.run([sys.executable, "-c", sys.argv[7], *sys.argv[8:]], check=True, capture_output=True,
                             text=True)
        out["pyarrow"].append(float(run.stdout.strip()))
    stats = run_stage("write", build, spark=spark, config=cfg, inputs=[sys.argv[3], sys.argv[4]],
                      output=sys.argv[5] + "-" + label, fingerprint=label, force=True)
    if rep == 0:
        out["cold"] = stats["seconds"]
    else:
        out["warm"].append(stats["seconds"])
print(json.dumps(out))
"""
REPS = 5  # repetitions of the write timings (medians reported; the machine is shared and noisy)


def _output_tables(run: Path) -> dict[str, pa.Table]:
    """Each mix output's rows (documents × copies), as the write stage makes them, in memory."""
    docs = ds.dataset(str(run / "redact" / "data"), format="parquet").to_table()
    selection = ds.dataset(str(run / "mix" / "selection"), format="parquet").to_table()
    out = {}
    for name in sorted(set(selection.column("output").to_pylist())):
        chosen = selection.filter(pc.field("output") == name)
        copies = dict(zip(chosen.column("id").to_pylist(), chosen.column("copies").to_pylist()))
        reps = pa.array([i for i, d in enumerate(docs.column("id").to_pylist()) for _ in range(copies.get(d, 0))])
        out[name] = docs.take(reps)
    return out


def shards(run: Path) -> dict:
    sys.path.insert(0, str(ROOT))
    import numpy as np

    from corpus import schema
    from corpus.mix.stage import seeded_words
    from corpus.write.shuffle import row_keys
    from corpus.config import WriteSection
    from corpus.write.writer import ShardWriter

    tables = _output_tables(run)
    names = schema.document().names
    text_mb = sum(pc.sum(pc.binary_length(t.column("text"))).as_py() for t in tables.values()) / 1e6
    rows = sum(t.num_rows for t in tables.values())
    # the rows keyed and ordered as the stage orders them (one shard per output here): the baseline writes the same
    # rows in the same order (order matters: zstd finds an upsampled document's copies when they are adjacent)
    keyed = []
    for name, t in tables.items():
        ids = t.column("id").to_pylist()
        copy_numbers = np.ones(len(ids), np.int64)  # a document's copies are consecutive in t
        for j in range(1, len(ids)):
            if ids[j] == ids[j - 1]:
                copy_numbers[j] = copy_numbers[j - 1] + 1
        keys = row_keys(seeded_words(42, name, ids), copy_numbers)
        k = t.select(names).append_column("_key", pa.array(keys)).sort_by([("_key", "ascending")])
        keyed.append((name, k.select(names).to_batches(max_chunksize=4096)))

    def pyarrow_write() -> float:
        t0 = time.perf_counter()
        for name, batches in keyed:
            pq.write_table(
                pa.Table.from_batches(batches),
                WORK / f"pyarrow-{name}.parquet",
                compression="zstd",
                compression_level=3,
            )
        return time.perf_counter() - t0

    def shard_writer() -> float:
        t0 = time.perf_counter()
        for name, batches in keyed:
            writer = ShardWriter(str(WORK / f"writer-{name}.parquet"), WriteSection())
            for batch in batches:
                writer.add(pa.Table.from_batches([batch]))
            writer.close()
        return time.perf_counter() - t0

    base_runs, writer_runs = [], []
    for _ in range(REPS):  # alternated, so that a slow spell of the machine hits both
        base_runs.append(pyarrow_write())
        writer_runs.append(shard_writer())
    base, writer = statistics.median(base_runs), statistics.median(writer_runs)
    row_files = []
    for name, batches in keyed:  # the same rows for the stage driver's own baseline runs
        row_files.append(str(WORK / f"rows-{name}.arrow"))
        with pa.OSFile(row_files[-1], "wb") as f, pa.ipc.new_file(f, batches[0].schema) as w:
            for b in batches:
                w.write_batch(b)
    del tables
    keyed.clear()  # free the rows before the stage runs
    cfg = WORK / "write.yaml"
    cfg.write_text(json.dumps({"run": {"name": "bench"}}))
    proc = sh(
        [
            sys.executable,
            "-c",
            SHARDS_DRIVER,
            str(ROOT),
            str(cfg),
            str(run / "redact"),
            str(run / "mix"),
            str(WORK / "write-out"),
            str(REPS),
            BASELINE,
            *row_files,
        ],
        cwd=ROOT,
        capture_output=True,
    )
    stage = json.loads(proc.stdout.strip().splitlines()[-1])
    warm = statistics.median(stage["warm"])
    # the stage's ratio: each warm run against the pyarrow run just before it (pairs see the same state of the
    # machine); the median of the pairs
    paired = [b / w for b, w in zip(stage["pyarrow"], stage["warm"])]
    return {
        "rows": rows,
        "text_mb": round(text_mb, 1),
        "pyarrow_seconds": round(base, 2),
        "pyarrow_runs": [round(x, 2) for x in base_runs],
        "pyarrow_mb_s": round(text_mb / base, 1),
        "writer_seconds": round(writer, 2),
        "writer_runs": [round(x, 2) for x in writer_runs],
        "writer_mb_s": round(text_mb / writer, 1),
        "ratio_writer": round(base / writer, 3),
        "stage_cold_seconds": stage["cold"],
        "stage_warm_seconds": round(warm, 2),
        "stage_warm_runs": stage["warm"],
        "stage_warm_mb_s": round(text_mb / warm, 1),
        "ratio_stage_cold": round(base / stage["cold"], 3),
        "paired_pyarrow_runs": [round(x, 2) for x in stage["pyarrow"]],
        "ratio_stage_warm": round(statistics.median(paired), 3),
        "ratio_stage_warm_runs": [round(x, 3) for x in paired],
        "ratio_stage_warm_vs_first_baseline": round(base / warm, 3),
    }


def _planted_input(run: Path, n: int) -> tuple[Path, int, int]:
    sys.path.insert(0, str(ROOT))
    from corpus import schema
    from corpus.config import BenchmarkSpec
    from corpus.decontaminate import benchmarks, ngrams
    from corpus.ids import content_id

    parts = [ds.dataset(str(run / s / "data"), format="parquet").to_table() for s in ("classify", "extract")]
    docs = pa.concat_tables([t.select(schema.document().names).cast(schema.document().arrow) for t in parts])
    clean = docs.filter(pc.field("source") != "bfcl-v4")
    spec = BenchmarkSpec(name="bfcl-v4", path="builtin:bfcl-v4", fields=["question"])
    items = sorted(
        {
            i["text"]
            for t in benchmarks.tasks(spec)
            for i in benchmarks.read_items(t)
            if len(ngrams.tokens(i["text"])) >= 8
        }
    )
    rng = random.Random(7)
    questions = rng.sample(items, n)
    hosts = clean.take(pa.array(rng.sample(range(clean.num_rows), n))).to_pylist()
    planted = []
    for q, h in zip(questions, hosts):
        cut = len(h["text"]) // 2
        text = h["text"][:cut] + "\n\n" + q + "\n\n" + h["text"][cut:]
        planted.append({**h, "id": content_id(text, h["url"]), "source": "planted", "text": text})
    path = WORK / "planted"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    pq.write_table(clean, path / "clean.parquet")
    pq.write_table(pa.Table.from_pylist(planted, schema=schema.document().arrow), path / "planted.parquet")
    return path, clean.num_rows, n


def decontamination(run: Path, n: int = 1000) -> dict:
    data, clean_n, planted_n = _planted_input(run, n)
    out = {"clean_documents": clean_n, "planted": planted_n}
    for prefilter in (True, False):
        cfg = WORK / f"decontam-{prefilter}.yaml"
        cfg.write_text(json.dumps({"decontaminate": {"prefilter": prefilter}}))
        dest = WORK / f"decontam-{'bloom' if prefilter else 'join'}"
        sh(
            FORGE
            + [
                "-q",
                "decontaminate",
                "--input",
                str(data),
                "--output",
                str(dest),
                "--master",
                "local[2]",
                "--force",
                "--config",
                str(cfg),
            ],
            cwd=ROOT,
            capture_output=True,
        )
        stats = _stats(dest)
        key = "prefilter" if prefilter else "join_only"
        out[key] = {
            "seconds": stats["seconds"],
            "docs_per_s": round(stats["rows_in"] / stats["seconds"]),
            "rejected": stats["rows_rejected"],
        }
        if prefilter:
            rejects = pq.read_table(str(dest / "rejects"), columns=["source", "part", "detail"]).to_pylist()
            out["planted_removed"] = sum(r["source"] == "planted" for r in rejects)
            wrong = [r for r in rejects if r["source"] != "planted"]
            out["clean_removed"] = len(wrong)
            out["clean_removed_by_source_part"] = dict(Counter(f"{r['source']}/{r['part']}" for r in wrong))
            out["clean_removed_examples"] = sorted({r["detail"].split("(e.g. item ")[-1].rstrip(")") for r in wrong})[
                :5
            ]
            out["benchmark"] = stats["extra"]["benchmarks"]
    out["prefilter_speedup"] = round(out["join_only"]["seconds"] / out["prefilter"]["seconds"], 2)
    return out


def bench(run: Path) -> dict:
    WORK.mkdir(parents=True, exist_ok=True)
    return {"composition": composition(run), "shards": shards(run), "decontamination": decontamination(run)}


if __name__ == "__main__":
    print(json.dumps(bench(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "work" / "make-run-out"), indent=2))
