"""The agent-relevance classifier: fastText supervised training, scoring and held-out evaluation.

Pure functions over texts and files (no Spark), so they are tested directly and run inside Spark tasks.

Text is prepared the same way for training and scoring: lowercased, cut into tokens, the first ``max_words``
kept, on one line (fastText reads one example per line). Tokens (``fasttext.tokens``) are ``words`` — words and
identifiers (``get_user(id=3)`` → ``get_user id``), no punctuation or numbers — or ``words_and_symbols``, which
keeps punctuation as tokens (``get_user ( id = 3 )``). Words generalize: with symbols the model learns formatting
(quoted e-mail lines, bracketed lists) and calls a newsgroup post agent-relevant; on sources it never saw, its
false positives fall from about a quarter to under 1% with words alone (bench/RESULTS.md, issue #23).
"""

from __future__ import annotations

import math
import os
import re
import sys
from typing import Iterable, Sequence

from corpus.config import FastTextTrainSection

POSITIVE, NEGATIVE = "__label__agent", "__label__other"
TOKENS = {"words": re.compile(r"[^\W\d]\w*"), "words_and_symbols": re.compile(r"\w+|[^\w\s]")}
# models saved before `fasttext.tokens` existed were trained on words and symbols
LEGACY_TOKENS = "words_and_symbols"


def prepare(text: str, max_words: int, tokens: str = "words") -> str:
    """One training / scoring line: the first ``max_words`` lowercased tokens of the kind ``tokens``."""
    head = text[: max_words * 16]  # bounds the work on very long documents; tokens average well under 16 chars
    return " ".join(TOKENS[tokens].findall(head.lower())[:max_words])


def training_line(label: int, text: str, max_words: int, tokens: str = "words") -> str:
    return f"{POSITIVE if label else NEGATIVE} {prepare(text, max_words, tokens)}\n"


# `fasttext.epoch: null`: passes enough for the model to see about this many tokens in all, between the bounds.
# MAmmoTH2's 3 epochs are for 200,000 documents; on a few thousand they underfit (scores bunch near 0.5).
AUTO_EPOCH_TOKENS = 20_000_000
AUTO_EPOCH_RANGE = (3, 25)


def epochs(cfg: FastTextTrainSection, train_tokens: int) -> int:
    """The configured epochs, or (``epoch: null``) enough passes to see ~AUTO_EPOCH_TOKENS tokens."""
    if cfg.epoch is not None:
        return cfg.epoch
    lo, hi = AUTO_EPOCH_RANGE
    return max(lo, min(hi, round(AUTO_EPOCH_TOKENS / max(1, train_tokens))))


TRAINER_DIR = "fasttext-train"


def trainer_path() -> str:
    """Where ``make setup`` installs the fastText used for training (``.venv/fasttext-train``;
    ``FORGE_FASTTEXT_TRAIN`` overrides it)."""
    return os.environ.get("FORGE_FASTTEXT_TRAIN") or os.path.join(sys.prefix, TRAINER_DIR)


# Training runs the official fastText 0.9.3 (facebookresearch), installed with `pip --target` beside the venv, in
# a fresh subprocess. Why not fasttext-numpy2, which the project imports for prediction: its matrices are
# allocated uninitialised (intgemm::AlignedVector), and with fewer than 10 threads fastText initialises only
# thread/10 of the input matrix, so single-threaded training reads garbage and fails with "Encountered NaN"
# at random. The official build zero-fills, so one thread and one seed give the same model bytes every time,
# provided each model is trained in a new process (a second training in the same process can diverge).
_TRAIN_SCRIPT = """
import json, sys
sys.path.insert(0, sys.argv[1])
import fasttext
args = json.loads(sys.argv[2])
out = args.pop("output")
try:
    fasttext.train_supervised(**args).save_model(out)
    print(json.dumps({"ok": True}))
except RuntimeError as err:
    print(json.dumps({"ok": False, "error": str(err)}))
"""


class TrainingFailed(RuntimeError):
    pass


def train(
    path: str, output: str, cfg: FastTextTrainSection, seed: int, retries: int = 3, epoch: int | None = None
) -> float:
    """Train on a fastText-format file (``__label__x tokens...`` per line) and save the model to ``output``;
    returns the learning rate used. If training diverges ("Encountered NaN"), it is repeated with half the
    learning rate (deterministically, up to ``retries`` times). ``epoch``: overrides the config's."""
    import json
    import subprocess

    where = trainer_path()
    if not os.path.isdir(os.path.join(where, "fasttext")):
        raise TrainingFailed(
            f"{where}: the fastText used for training is not installed; run `make setup` (it "
            f"runs `pip install --no-deps --target {where} fasttext==0.9.3`)"
        )
    lr = cfg.lr
    for attempt in range(retries + 1):
        args = {
            "input": path,
            "output": output,
            "dim": cfg.dim,
            "lr": lr,
            "wordNgrams": cfg.word_ngrams,
            "minCount": cfg.min_count,
            "epoch": epoch or cfg.epoch or AUTO_EPOCH_RANGE[0],
            "bucket": cfg.bucket,
            "thread": cfg.threads,
            "seed": seed,
            "loss": "softmax",
            "verbose": 0,
        }
        done = subprocess.run(
            [sys.executable, "-c", _TRAIN_SCRIPT, where, json.dumps(args)], capture_output=True, text=True
        )
        if done.returncode != 0:
            raise TrainingFailed(f"fastText training failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
        result = json.loads(done.stdout.strip().splitlines()[-1])
        if result["ok"]:
            return lr
        if "NaN" not in result["error"] or attempt == retries:
            raise TrainingFailed(f"fastText training failed: {result['error']}")
        lr /= 2
    raise AssertionError("unreachable")


def scores(model, texts: Sequence[str], max_words: int, tokens: str = "words") -> list[float]:
    """Probability of the agent label for each text."""
    return prepared_scores(model, [prepare(t, max_words, tokens) for t in texts])


def prepared_scores(model, lines: Sequence[str]) -> list[float]:
    """Probability of the agent label for each line already made by :func:`prepare`."""
    if not lines:
        return []
    labels, probs = model.predict(list(lines), k=2)
    return [
        min(max(next((float(q) for lab, q in zip(labs, ps) if lab == POSITIVE), 0.0), 0.0), 1.0)
        for labs, ps in zip(labels, probs)
    ]


def _counts(labels: Iterable[int], values: Iterable[float]) -> list[tuple[float, int, int]]:
    """(threshold, true positives, false positives) at every distinct score, highest first: a document is
    predicted positive when its score is at or above the threshold."""
    pairs = sorted(zip(values, labels), key=lambda p: -p[0])
    out: list[tuple[float, int, int]] = []
    tp = fp = 0
    for i, (s, y) in enumerate(pairs):
        tp += y
        fp += 1 - y
        if i + 1 == len(pairs) or pairs[i + 1][0] != s:
            out.append((s, tp, fp))
    return out


def _prf(tp: int, fp: int, positives: int) -> tuple[float, float, float]:
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / positives if positives else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def evaluate(
    labels: Sequence[int],
    values: Sequence[float],
    target_precision: float,
    threshold: float | None = None,
    points: int = 21,
) -> dict:
    """Held-out metrics: the PR curve (``points`` thresholds from 0 to 1), average precision, the best F1, and
    the threshold used: ``threshold`` when given, else the one of best F1 among those whose precision reaches
    ``target_precision`` (else the one of highest precision, with ``target_reached: false``)."""
    labels = [int(y) for y in labels]
    positives = sum(labels)
    steps = _counts(labels, values)
    ap, prev_r = 0.0, 0.0
    best = {"threshold": 1.0, "precision": 1.0, "recall": 0.0, "f1": 0.0}
    for s, tp, fp in steps:
        p, r, f1 = _prf(tp, fp, positives)
        ap += p * (r - prev_r)
        prev_r = r
        if f1 > best["f1"]:
            best = {"threshold": s, "precision": p, "recall": r, "f1": f1}
    reached = True
    if threshold is None:
        # the best F1 among the thresholds whose precision reaches the target (ties: the higher threshold)
        ok = [(_prf(tp, fp, positives)[2], s) for s, tp, fp in steps if _prf(tp, fp, positives)[0] >= target_precision]
        if ok:
            threshold = max(ok)[1]
        else:
            reached = False
            threshold = max(steps, key=lambda st: (_prf(st[1], st[2], positives)[0], st[0]))[0] if steps else 0.5

    def at(t: float) -> dict:
        tp = sum(1 for y, s in zip(labels, values) if y and s >= t)
        fp = sum(1 for y, s in zip(labels, values) if not y and s >= t)
        p, r, f1 = _prf(tp, fp, positives)
        return {"threshold": round(t, 6), "precision": round(p, 4), "recall": round(r, 4), "f1": round(f1, 4)}

    curve = [at(i / (points - 1)) for i in range(points)]
    return {
        "test_positives": positives,
        "test_negatives": len(labels) - positives,
        "average_precision": round(ap, 4),
        "at_0.5": at(0.5),
        "best_f1": {k: round(v, 6 if k == "threshold" else 4) for k, v in best.items()},
        "chosen": {**at(threshold), "target_precision": target_precision, "target_reached": reached},
        "pr_curve": [[c["threshold"], c["precision"], c["recall"]] for c in curve],
    }


def sample_rate(available: int, cap: int) -> float:
    return 1.0 if available <= cap else cap / available


def class_caps(positives: int, negatives: int, max_pos: int, max_neg: int, ratio: float | None) -> tuple[int, int]:
    """How many positives and negatives to sample: the caps, then the larger class cut to ``ratio`` × the
    smaller (MAmmoTH2 trains 1:1)."""
    pos, neg = min(positives, max_pos), min(negatives, max_neg)
    if ratio is not None and pos and neg:
        pos, neg = min(pos, math.ceil(neg * ratio)), min(neg, math.ceil(pos * ratio))
    return pos, neg
