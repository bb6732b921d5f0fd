"""BFCL v4 data (Berkeley Function-Calling Leaderboard), read from the bfcl-eval wheel that `make setup` downloads
(`pip download --no-deps`; the package is not installed: its dependency tree pins numpy 1.x).

Each category is a JSONL file of questions (``id``, ``question``: turns of messages, ``function``: JSON-schema
functions) under ``bfcl_eval/data/``, and for most a file of possible answers (``id``, ``ground_truth``) under
``bfcl_eval/data/possible_answer/``.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from corpus.packages import find_wheel

PREFIX = "bfcl_eval/data/"
# single-turn categories with possible answers (multi-turn answers are state checks, not call lists)
SINGLE_TURN = (
    "simple_python",
    "simple_java",
    "simple_javascript",
    "multiple",
    "parallel",
    "parallel_multiple",
    "live_simple",
    "live_multiple",
    "live_parallel",
    "live_parallel_multiple",
)


def _lines(z: zipfile.ZipFile, name: str) -> list[dict]:
    return [json.loads(line) for line in z.read(name).decode("utf-8").splitlines() if line.strip()]


def load(category: str, wheel: Path | None = None) -> list[dict]:
    """The questions of a category, each with its ``ground_truth`` when the category has possible answers."""
    with zipfile.ZipFile(wheel or find_wheel("bfcl_eval")) as z:
        questions = _lines(z, f"{PREFIX}BFCL_v4_{category}.json")
        answer_file = f"{PREFIX}possible_answer/BFCL_v4_{category}.json"
        answers = {a["id"]: a["ground_truth"] for a in _lines(z, answer_file)} if answer_file in z.namelist() else {}
    for q in questions:
        if q["id"] in answers:
            q["ground_truth"] = answers[q["id"]]
    return questions
