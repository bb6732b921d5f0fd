"""Trajectory benchmarks (issue #6), run by bench/run.py (`--only trajectories`, after `--only classify`, whose
ingest-apis output of botocore + Google discovery it synthesises from).

* BFCL v4 (the ten single-turn categories, 2,501 questions with possible answers; `forge sample-data` writes them
  from the bfcl-eval wheel): `forge ingest-trajectories` on local[2]; pass rate of each check, rejects by reason,
  the ToolRL reward of every kept question against its own answer, records/s.
* Synthesis: `forge synthesize` over every operation of botocore + Google discovery (no per-API cap): pass rates,
  rejects by reason, trajectories/s.
* The scorer alone: `score_calls` over every BFCL ground truth in one process, calls scored per second.
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
WORK = HERE / "work" / "trajectories"
FORGE = [sys.executable, "-m", "corpus"]


def sh(cmd: list[str]) -> None:
    subprocess.run(cmd, check=True, text=True, cwd=ROOT, capture_output=True)


def _checks(stats: dict) -> dict:
    out: dict = {}
    for k, v in stats["counters"].items():
        if k.startswith("check."):
            _, check, result = k.split(".", 2)
            out.setdefault(check, Counter())[result] += v
    return {
        c: {"pass_rate": round(n.get("pass", 0) / max(1, sum(n.values()) - n.get("skipped", 0)), 4), **dict(n)}
        for c, n in out.items()
    }


def bench() -> dict:
    WORK.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(ROOT))
    from corpus import samples

    bfcl_dir = WORK / "bfcl"
    questions = samples.write_bfcl(bfcl_dir)
    result: dict = {}
    out = WORK / "ingest"
    t0 = time.perf_counter()
    sh(
        FORGE
        + [
            "-q",
            "ingest-trajectories",
            "--input",
            str(bfcl_dir),
            "--output",
            str(out),
            "--source",
            "bfcl",
            "--master",
            "local[2]",
            "--force",
        ]
    )
    wall = time.perf_counter() - t0
    st = json.loads((out / "_stats.json").read_text())
    rewards = Counter(pq.read_table(str(out / "trajectories"), columns=["reward"]).column("reward").to_pylist())
    result["bfcl"] = {
        "questions": questions,
        "kept": st["rows_out"],
        "rejects": st["rejects_by_reason"],
        "checks": _checks(st),
        "rewards_of_kept": {str(k): v for k, v in rewards.items()},
        "stage_seconds": st["seconds"],
        "command_seconds": round(wall, 1),
        "records_per_s": round(st["rows_in"] / st["seconds"]),
    }
    tools = HERE / "work" / "classify" / "tools"
    if (tools / "_SUCCESS").exists():
        cfg = WORK / "synth.yaml"
        cfg.write_text("synthesize:\n  max_per_api: 100000\n")
        syn = WORK / "synth"
        t0 = time.perf_counter()
        sh(
            FORGE
            + [
                "-q",
                "synthesize",
                "--input",
                str(tools),
                "--output",
                str(syn),
                "--config",
                str(cfg),
                "--master",
                "local[2]",
                "--force",
            ]
        )
        wall = time.perf_counter() - t0
        st = json.loads((syn / "_stats.json").read_text())
        result["synthesis"] = {
            "operations": st["rows_in"],
            "verified": st["rows_out"],
            "pass_rate": round(st["rows_out"] / max(1, st["rows_in"]), 4),
            "rejects": st["rejects_by_reason"],
            "stage_seconds": st["seconds"],
            "command_seconds": round(wall, 1),
            "trajectories_per_s": round(st["rows_out"] / st["seconds"]),
        }
    from corpus.trajectories import bfcl
    from corpus.trajectories.score import score_calls

    pairs = []
    for cat in bfcl.SINGLE_TURN:
        for q in bfcl.load(cat):
            if "ground_truth" in q:
                answer = [
                    {"name": n, "arguments": {k: v[0] for k, v in a.items() if v and v[0] != ""}}
                    for item in q["ground_truth"]
                    for n, a in item.items()
                ]
                pairs.append((q["ground_truth"], answer))
    t0 = time.perf_counter()
    reps = 5
    maxed = 0
    for _ in range(reps):
        maxed = sum(score_calls(ref, pred)["reward"] == 4.0 for ref, pred in pairs)
    secs = time.perf_counter() - t0
    result["scorer"] = {
        "ground_truths": len(pairs),
        "scored_maximum": maxed,
        "scores_per_s": round(reps * len(pairs) / secs),
    }
    return result
