"""Adversarial inputs at full size through the real `forge` command (issue #22), each run as its own process with
the memory of its whole process tree (the JVM and the Python workers) sampled every 0.2 s.

    python bench/adversarial.py [--llm-python PY --llm-model GGUF]     (also: python bench/run.py --only adversarial)

Cases: a user's folder as the output (data loss), a 3 MB .jsonl.gz inflating to one 3 GiB line (ingest-text and
ingest-trajectories), JSON nested 100,000 deep (ingest-text, and in tool-call arguments of all four trajectory
formats), valid JSON of the wrong shape, a Parquet file with damaged pages, a WARC gzip member with 2 GiB
without a newline, a WARC record whose Content-Length swallows the next, a YAML billion-laughs spec, a crawl seed
that redirects to another host and to a link-local address and a server that drips a byte a second, the seeded
secrets set, and the LLM stages with the endpoint down, answering prose, and (with --llm-*) a real llama.cpp
server. Bombs are generated here, under bench/work/adversarial, and deleted after.

Reported per case: exit code, what the stage wrote (documents, rejects by reason), the seconds and the peak
resident memory of the process tree (goal: under 2 GB).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = HERE / "work" / "adversarial"
FORGE = [sys.executable, "-m", "corpus.cli"]
sys.path.insert(0, str(ROOT))


def _tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and all its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry))
            except (OSError, IndexError, ValueError):
                continue
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo += children.get(p, [])
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


def run(args: list[str], timeout: int = 1800) -> dict:
    """A forge command, with its exit code, stderr tail, seconds and the peak RSS of its process tree."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        FORGE + args,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYSPARK_PYTHON": sys.executable},
    )
    peak = [0]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], _tree_rss(proc.pid))
            time.sleep(0.2)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    try:
        _, err = proc.communicate(timeout=timeout)
    finally:
        done.set()
        t.join()
    lines = [line for line in err.splitlines() if line.startswith("forge:")]
    last = lines[-1] if lines else err.strip().splitlines()[-1] if err.strip() else ""
    return {
        "exit": proc.returncode,
        "seconds": round(time.perf_counter() - t0, 1),
        "peak_rss_mb": round(peak[0] / 2**20),
        "message": last[:300],
    }


def outcome(out: Path) -> dict:
    """Documents and rejects by reason of a committed stage output."""
    import pyarrow.parquet as pq

    if not (out / "_SUCCESS").exists():
        return {"committed": False}
    stats = json.loads((out / "_stats.json").read_text())
    rejects = pq.read_table(out / "rejects").to_pylist() if (out / "rejects").exists() else []
    return {
        "committed": True,
        "documents": stats["rows_out"],
        "rejects": dict(Counter(r["reason"] for r in rejects)),
        "in": stats["rows_in"],
    }


def stage_case(name: str, stage: str, inputs: list[Path], extra: list[str] = ()) -> dict:
    out = WORK / "out" / name
    shutil.rmtree(out, ignore_errors=True)
    got = run([stage, "--input", *map(str, inputs), "--output", str(out), *extra])
    return {**got, **outcome(out)}


def cases(llm_python: str | None, llm_model: str | None) -> dict:
    from tests import bombs, secret_samples
    from tests.unit.test_trajectories_adversarial import DEEP_CASES, WRONG_SHAPES

    results: dict[str, dict] = {}
    d = WORK / "in"
    shutil.rmtree(WORK, ignore_errors=True)
    d.mkdir(parents=True)

    # data loss: a user's folder as the output, with and without --force
    mine = d / "my-folder"
    mine.mkdir()
    (mine / "notes.txt").write_text("precious")
    (d / "one.jsonl").write_text('{"text": "hello world"}\n')
    for flag in ([], ["--force"]):
        got = run(["ingest-text", "--input", str(d / "one.jsonl"), "--output", str(mine), *flag])
        got["user_file_intact"] = (mine / "notes.txt").read_text() == "precious" and len(list(mine.iterdir())) == 1
        results["foreign output folder" + (" --force" if flag else "")] = got

    # ingest-text
    (d / "deep.jsonl").write_text(
        '{"text": "before"}\n{"text": "x", "m": ' + bombs.deep_json(100_000) + '}\n{"text": "after"}\n'
    )
    results["ingest-text: JSON nested 100,000 deep"] = stage_case("deep", "ingest-text", [d / "deep.jsonl"])
    bomb = bombs.gz_long_line(d / "bomb.jsonl.gz", 3 << 30, before=[{"text": "first"}], after=[{"text": "last"}])
    results["ingest-text: 3 GiB line from a small .jsonl.gz"] = {
        "input_mb": round(bomb.stat().st_size / 2**20, 1),
        **stage_case("bomb-text", "ingest-text", [bomb]),
    }
    results["ingest-trajectories: 3 GiB line from a small .jsonl.gz"] = stage_case(
        "bomb-traj", "ingest-trajectories", [bomb]
    )
    bomb.unlink()
    bombs.damaged_parquet(d / "damaged.parquet", ["good one", "good two"], ["lost one", "lost two"])
    results["ingest-text: Parquet with damaged pages"] = stage_case("parquet", "ingest-text", [d / "damaged.parquet"])

    # ingest-trajectories: deep arguments in each format, wrong shapes
    (d / "traj-deep").mkdir()
    for fmt, line in DEEP_CASES.items():
        (d / "traj-deep" / f"{fmt}.jsonl").write_text(line + "\n")
    results["ingest-trajectories: arguments nested 100,000 deep (4 formats)"] = stage_case(
        "traj-deep", "ingest-trajectories", [d / "traj-deep"]
    )
    (d / "shapes.jsonl").write_text("\n".join(json.dumps(rec) for rec, _ in WRONG_SHAPES.values()) + "\n")
    results[f"ingest-trajectories: {len(WRONG_SHAPES)} records of valid JSON, wrong shape"] = stage_case(
        "shapes", "ingest-trajectories", [d / "shapes.jsonl"]
    )

    # ingest-web
    warc = bombs.warc_gz_no_newline(d / "junk.warc.gz", 2 << 30)
    results["ingest-web: gzip member with 2 GiB without a newline"] = {
        "input_mb": round(warc.stat().st_size / 2**20, 1),
        **stage_case("warc-junk", "ingest-web", [warc]),
    }
    warc.unlink()
    bombs.warc_overrun(d / "liar.warc")
    results["ingest-web: Content-Length swallowing the next record"] = stage_case(
        "warc-liar", "ingest-web", [d / "liar.warc"]
    )
    # ingest-apis
    (d / "laughs.yaml").write_text(bombs.yaml_laughs(levels=9))
    results["ingest-apis: YAML billion laughs"] = stage_case("laughs", "ingest-apis", [d / "laughs.yaml"])

    results["crawl: redirects, metadata address, drip server"] = crawl_case(d)
    results["redact: seeded secrets and look-alikes"] = redact_case(secret_samples)
    results.update(llm_cases(d, llm_python, llm_model))
    shutil.rmtree(WORK / "in", ignore_errors=True)
    return results


def crawl_case(d: Path) -> dict:
    """A docs site whose pages redirect to another host (standing in for a metadata service) and to
    169.254.169.254, and one page that drips a byte a second; crawled by `forge crawl` with its defaults except
    allow_private_seeds (the site is on 127.0.0.1) and a 5 s response limit."""
    from tests.unit.test_crawl_guard import PAGE, Server, _drip

    inner = Server({"/latest/meta-data/iam/security-credentials/role": (200, {}, b'{"AccessKeyId": "ASIAFAKE"}')})
    site = Server(
        {
            "/robots.txt": (404, {}, b""),
            "/index.html": (
                200,
                {},
                PAGE.replace(b"</body>", b"<a href='/go'>go</a><a href='/meta'>m</a><a href='/slow'>s</a></body>"),
            ),
            "/b.html": (200, {}, PAGE),
            "/go": (
                302,
                {"Location": f"http://localhost:{inner.port}/latest/meta-data/iam/security-credentials/role"},
                b"",
            ),
            "/meta": (302, {"Location": "http://169.254.169.254/latest/meta-data/"}, b""),
            "/slow": _drip,
        }
    )
    try:
        (d / "seeds.txt").write_text(site.url + "/index.html\n")
        out = WORK / "out" / "crawl"
        got = run(
            [
                "crawl",
                "--input",
                str(d / "seeds.txt"),
                "--output",
                str(out),
                "--set",
                "crawl.allow_private_seeds=true",
                "--set",
                "crawl.timeout_seconds=5",
                "--set",
                "crawl.delay_seconds=0.1",
            ]
        )
        import pyarrow.parquet as pq

        log = pq.read_table(out / "log").to_pylist() if (out / "log").exists() else []
        got["outcomes"] = {r["url"].replace(site.url, ""): r["outcome"] for r in log}
        got["metadata_host_requests"] = len(inner.hits)
        return got
    finally:
        site.close()
        inner.close()


def redact_case(secret_samples) -> dict:
    from corpus.config import RedactSection
    from corpus.redact.stage import redact_rows
    from corpus.spark.envelope import Emitter

    cfg = RedactSection()

    def redact_document(doc):
        row = {**doc, "part": "text", "source": "s", "signals": None, "metadata": "{}"}
        redact_rows([row], cfg, Emitter("redact"))
        return row

    t0 = time.perf_counter()
    got = secret_samples.measure(redact_document)
    return {
        "secrets": got["secrets"],
        "recall": round(got["recall"], 3),
        "missed": got["missed"],
        "lookalike_documents": got["lookalike_documents"],
        "false_positive_rate": round(got["false_positive_rate"], 3),
        "seconds": round(time.perf_counter() - t0, 2),
    }


def llm_cases(d: Path, llm_python: str | None, llm_model: str | None) -> dict:
    """extract and ingest-trajectories with the endpoint down, answering prose, and a real model if given."""
    from tests.unit.test_extract import FakeLLM

    results = {}
    docs = d / "faq.jsonl"
    faq = (
        "Q: How do I rotate an access key?\nCreate a second key, move every application to it, then delete the "
        "old key.\n"
    )
    docs.write_text("\n".join(json.dumps({"text": faq + f"\nPage {i}."}) for i in range(50)) + "\n")
    texts = WORK / "out" / "llm-docs"
    shutil.rmtree(texts, ignore_errors=True)
    run(["ingest-text", "--input", str(docs), "--output", str(texts), "--part", "agent_web"])
    traj = d / "traj.jsonl"
    from tests.unit.test_trajectories import WEATHER

    lines = []
    for i in range(20):
        city = ["Paris", "Lyon", "Oslo", "Rome", "Bern"][i % 5]
        called = city if i < 10 else "Tokyo"
        lines.append(
            json.dumps(
                {
                    "tools": [WEATHER],
                    "messages": [
                        {"role": "user", "content": f"What's the weather in {city}? (case {i})"},
                        {
                            "role": "assistant",
                            "tool_calls": [
                                {"function": {"name": "get_weather", "arguments": json.dumps({"city": called})}}
                            ],
                        },
                    ],
                }
            )
        )
    traj.write_text("\n".join(lines) + "\n")
    servers = {"endpoint down": "http://127.0.0.1:9/v1"}
    prose = FakeLLM(garbage=True)
    servers["replies in prose"] = prose.url
    proc = None
    if llm_python and llm_model:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        proc = subprocess.Popen(
            [
                llm_python,
                "-m",
                "llama_cpp.server",
                "--model",
                llm_model,
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--n_ctx",
                "2048",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(10)
        servers["SmolLM2-135M on llama.cpp"] = f"http://127.0.0.1:{port}/v1"
    try:
        for label, url in servers.items():
            common = ["--set", f"run.output={WORK / 'out' / 'llm-run'}"]
            llm = {
                "enabled": True,
                "base_url": url,
                "model": "m",
                "retries": 1,
                "backoff_seconds": 0.1,
                "timeout_seconds": 60,
                "max_tokens": 256,
                "concurrency": 1,
            }
            sets = [
                "--set",
                "extract.extractors=[]",
                "--set",
                "extract.parts=[agent_web]",
                "--set",
                "extract.lang=[]",
                "--set",
                "extract.llm=" + json.dumps(llm),
            ]
            out = WORK / "out" / f"extract-{label}"
            shutil.rmtree(out, ignore_errors=True)
            got = run(["extract", "--input", str(texts), "--output", str(out), *common, *sets])
            results[f"extract, 50 documents: {label}"] = {**got, **outcome(out), **_llm_counts(out)}
            out = WORK / "out" / f"judge-{label}"
            shutil.rmtree(out, ignore_errors=True)
            got = run(
                [
                    "ingest-trajectories",
                    "--input",
                    str(traj),
                    "--output",
                    str(out),
                    *common,
                    "--set",
                    "ingest-trajectories.judge=" + json.dumps({**llm, "max_tokens": 96}),
                ]
            )
            results[f"judge, 20 trajectories (10 wrong): {label}"] = {**got, **outcome(out), **_llm_counts(out)}
    finally:
        prose.close()
        if proc:
            proc.kill()
    return results


def _llm_counts(out: Path) -> dict:
    if not (out / "_stats.json").exists():
        return {}
    c = json.loads((out / "_stats.json").read_text())["counters"]
    return {"llm": {k: v for k, v in c.items() if k.startswith(("llm_", "refine_", "judge_")) and "tokens" not in k}}


def markdown(results: dict) -> str:
    lines = ["| case | exit | outcome | s | peak RSS MB |", "|---|---|---|---|---|"]
    for name, r in results.items():
        if "recall" in r:
            lines.append(
                f"| {name} | - | recall {r['recall']} over {r['secrets']} secrets, "
                f"{r['false_positive_rate']:.0%} of {r['lookalike_documents']} look-alike documents "
                f"changed | {r['seconds']} | - |"
            )
            continue
        what = r.get("message", "")
        if r.get("committed"):
            what = f"{r['in']} in, {r['documents']} out, rejects {r['rejects']}"
        if "outcomes" in r:
            what += f"; outcomes {r['outcomes']}; metadata host requests {r['metadata_host_requests']}"
        if "user_file_intact" in r:
            what += f"; user's file intact: {r['user_file_intact']}"
        if r.get("llm"):
            what += f"; {r['llm']}"
        lines.append(f"| {name} | {r.get('exit')} | {what} | {r.get('seconds')} | {r.get('peak_rss_mb')} |")
    return "\n".join(lines)


def bench(llm_python: str | None = None, llm_model: str | None = None) -> dict:
    results = cases(llm_python, llm_model)
    print(markdown(results))
    return results


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--llm-python", default=os.environ.get("FORGE_LLM_PYTHON"))
    ap.add_argument("--llm-model", default=os.environ.get("FORGE_LLM_MODEL"))
    a = ap.parse_args()
    res = bench(a.llm_python, a.llm_model)
    (HERE / "work").mkdir(exist_ok=True)
    (HERE / "work" / "adversarial.json").write_text(json.dumps(res, indent=2) + "\n")
