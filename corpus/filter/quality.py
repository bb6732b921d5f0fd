"""Quality signals from Gopher, C4 and FineWeb, as pure functions of a text.

:func:`signals` measures everything once; the rules (:mod:`corpus.filter.rules`, one object each) compare the
signals with the configured limits and name the first rule a document breaks (``first_failure``). Documents are
never edited: C4's line deletions are used only to decide what counts as a sentence (see C4Section).

Words are whitespace-separated tokens (Gopher's definition); lines split on ``\\n``; paragraphs on blank lines.
Thresholds and their sources are in corpus.config.
"""

from __future__ import annotations

import re
from functools import lru_cache

from corpus.config import FilterSection


STOP_WORDS = frozenset(["the", "be", "to", "of", "and", "that", "have", "with"])  # Gopher's list
BULLETS = ("•", "‣", "●", "○", "◦", "▪", "▫", "–", "-", "*", "·")
TERMINAL = (".", "!", "?", '"', "'")  # C4's line endings; FineWeb uses the same set
POLICY = ("terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies", "use cookies")
_PARA = re.compile(r"\n\s*\n")
_SENTENCE_END = re.compile(r"[.!?]+(?=[\s\"')\]]|$)")
_ALPHA = re.compile(r"[^\W\d_]")


def _dup_stats(items: list[str]) -> tuple[int, int]:
    """(number of items that repeat an earlier one, characters in them)."""
    seen: set[str] = set()
    n = chars = 0
    for it in items:
        if it in seen:
            n += 1
            chars += len(it)
        else:
            seen.add(it)
    return n, chars


def _ngram_fracs(words: list[str], top_ns, dup_ns) -> dict[str, float]:
    """Gopher's n-gram repetition signals, as fractions of the characters in words.

    top n-gram: characters in all occurrences of the most frequent n-gram (the first to occur, on a tie);
    duplicate n-grams: characters of the words covered by any occurrence of an n-gram that occurred before (each
    word counted once). The words become ids here (exact string equality); the compiled kernel does the n-grams,
    which as Python tuples and sets were half of the filter stage's time."""
    import numpy as np

    ns = sorted(set(top_ns) | set(dup_ns))
    index: dict[str, int] = {}
    ids = np.fromiter((index.setdefault(w, len(index)) for w in words), np.int64, len(words))
    lens = np.fromiter(map(len, words), np.int64, len(words))
    fracs = np.zeros((len(ns), 2))
    if ns:
        _repetition_kernel()(ids, lens, np.asarray(ns, np.int64), fracs)
    out: dict[str, float] = {}
    for k, n in enumerate(ns):
        if n in top_ns:
            out[f"top_{n}gram_char_frac"] = float(fracs[k, 0])
        if n in dup_ns:
            out[f"dup_{n}gram_char_frac"] = float(fracs[k, 1])
    return out


@lru_cache(maxsize=1)
def _repetition_kernel():
    """Compiled on first use: numba is imported only by the workers that filter."""
    import numpy as np
    from numba import njit

    @njit(cache=True)
    def fracs(ids, lens, ns, out):
        """out[k] = (top n-gram char fraction, duplicate n-gram char fraction) for n = ns[k]. Each n-gram is a
        64-bit hash of its word ids; equal hashes are found by a stable sort, so within a run the first index is
        the n-gram's first occurrence."""
        words = ids.shape[0]
        total = 0
        for q in range(words):
            total += lens[q]
        if total == 0:
            total = 1
        mixed = np.empty(words, np.uint64)
        for q in range(words):  # splitmix64 of each id: the n-gram hash below mixes well-spread values
            z = np.uint64(ids[q]) + np.uint64(0x9E3779B97F4A7C15)
            z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
            z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
            mixed[q] = z ^ (z >> np.uint64(31))
        for t in range(ns.shape[0]):
            n = ns[t]
            if words < n:
                out[t, 0] = 0.0
                out[t, 1] = 0.0
                continue
            grams = words - n + 1
            keys = np.empty(grams, np.uint64)
            for i in range(grams):
                h = np.uint64(0xCBF29CE484222325)
                for j in range(n):
                    h = (h ^ mixed[i + j]) * np.uint64(0x100000001B3)
                    h = h ^ (h >> np.uint64(29))
                keys[i] = h
            order = np.argsort(keys, kind="mergesort")
            dup = np.zeros(grams, np.bool_)
            best_count, best_first = 1, -1
            i = 0
            while i < grams:
                j = i
                while j + 1 < grams and keys[order[j + 1]] == keys[order[i]]:
                    j += 1
                count, first = j - i + 1, order[i]
                if count > best_count or (count == best_count and count > 1 and first < best_first):
                    best_count, best_first = count, first
                for r in range(i + 1, j + 1):
                    dup[order[r]] = True
                i = j + 1
            top = 0.0
            if best_count > 1:
                chars = 0
                for q in range(n):
                    chars += lens[best_first + q]
                top = chars * best_count / total
            covered, until = 0, 0
            for i in range(grams):
                if dup[i]:
                    for q in range(max(i, until), i + n):
                        covered += lens[q]
                    until = i + n
            out[t, 0] = top
            out[t, 1] = covered / total

    return fracs


_CODE_CHARS = re.compile(r"[(){}\[\]=;<$|\\/]")
_CODE_START = (
    "$ ",
    ">>> ",
    "... ",
    "#!",
    "import ",
    "from ",
    "def ",
    "class ",
    "return ",
    "//",
    "@",
    "sudo ",
    "pip ",
    "npm ",
    "curl ",
    "git ",
    "docker ",
    "aws ",
    "gcloud ",
    "kubectl ",
)
# dotted names (s3.put_object, os.path.join; not e.g., U.S. or host names), snake_case, camelCase, calls, options
_IDENTIFIER = re.compile(
    r"(?<![\w.@])(?:[A-Za-z_]\w+(?:\.[A-Za-z_]\w+)+(?<!\.com)(?<!\.org)(?<!\.edu)(?<!\.gov)"
    r"(?<!\.net)(?<!\.uk)|[A-Za-z]\w*_\w+|[a-z]+[A-Z]\w*|\w+\(\)?|--?[a-z][\w-]+)(?![\w@])"
)


def technical_signals(text: str, lines: list[str], n_words: int) -> dict[str, float]:
    """How much a text reads as technical writing (docs, READMEs, man pages, Q&A about code): the share of its
    lines that are code or commands (fenced, indented, shell or REPL prompts, or dense with code punctuation) and
    the share of its words that are identifiers, calls or command-line options (``s3.put_object``,
    ``max_retries``, ``getUser``, ``len()``, ``--verbose``)."""
    code = 0
    fenced = False
    nonempty = 0
    for ln in lines:
        st = ln.strip()
        if st.startswith(("```", "~~~")):
            fenced = not fenced
            code += 1
            nonempty += 1
            continue
        if not st:
            continue
        nonempty += 1
        if st.startswith(">") and not st.startswith(">>> "):
            continue  # a quoted line of an e-mail or forum post
        if (
            fenced
            or ln.startswith(("    ", "\t"))
            or st.startswith(_CODE_START)
            or len(_CODE_CHARS.findall(st)) >= max(2, len(st) // 12)
        ):
            code += 1
    ids = len(_IDENTIFIER.findall(text[:200_000]))
    return {"code_line_ratio": code / max(nonempty, 1), "identifier_ratio": ids / n_words if n_words else 0.0}


def signals(text: str, cfg: FilterSection) -> dict[str, float]:
    """Every quality signal of ``text`` (names as in the config's rules)."""
    words = text.split()
    n_words = len(words)
    lines = text.split("\n")
    stripped = [ln.strip() for ln in lines]
    nonempty = [ln for ln in stripped if ln]
    n_lines = max(len(nonempty), 1)
    paragraphs = [p.strip() for p in _PARA.split(text.strip()) if p.strip()]
    s: dict[str, float] = {"words": float(n_words), "chars": float(len(text))}

    # Gopher quality
    s["mean_word_length"] = sum(map(len, words)) / n_words if n_words else 0.0
    hashes = text.count("#")
    ellipses = text.count("...") + text.count("…")
    s["symbol_word_ratio"] = (hashes + ellipses) / n_words if n_words else 0.0
    s["bullet_lines_ratio"] = sum(1 for ln in nonempty if ln.startswith(BULLETS)) / n_lines
    s["ellipsis_lines_ratio"] = sum(1 for ln in nonempty if ln.endswith(("...", "…"))) / n_lines
    # map() over C functions: these per-word counts were a Python loop each
    s["alpha_words_ratio"] = sum(map(bool, map(_ALPHA.search, words))) / n_words if n_words else 0.0
    s["stop_words"] = float(sum(map(STOP_WORDS.__contains__, map(str.lower, words))))

    # Gopher repetition
    rep = cfg.gopher_repetition
    total_chars = max(len(text), 1)
    n_dup, c_dup = _dup_stats(nonempty)
    s["dup_line_frac"] = n_dup / n_lines
    s["dup_line_char_frac"] = c_dup / total_chars
    n_dup, c_dup = _dup_stats(paragraphs)
    s["dup_para_frac"] = n_dup / max(len(paragraphs), 1)
    s["dup_para_char_frac"] = c_dup / total_chars
    s.update(_ngram_fracs(words, tuple(rep.max_top_ngram_char_frac), tuple(rep.max_dup_ngram_char_frac)))

    # C4: sentences in the lines C4 would keep
    sentences = 0
    for ln in nonempty:
        low = ln.lower()
        if (
            ln.endswith(TERMINAL)
            and not ln.endswith("...")
            and len(ln.split()) >= 3
            and "javascript" not in low
            and not any(p in low for p in POLICY)
        ):
            sentences += max(1, len(_SENTENCE_END.findall(ln)))
    s["sentences"] = float(sentences)
    s["lorem_ipsum"] = 1.0 if "lorem ipsum" in text.lower() else 0.0
    s["curly_bracket"] = 1.0 if "{" in text else 0.0

    # FineWeb (over all lines, blank ones included, as FineWeb does)
    s["line_punct_ratio"] = sum(1 for ln in lines if ln.endswith(TERMINAL)) / max(len(lines), 1)
    s["short_line_ratio"] = sum(1 for ln in lines if len(ln) <= 30) / max(len(lines), 1)
    _, c_dup = _dup_stats(nonempty)
    s["dup_line_char_ratio"] = c_dup / max(len(text) - text.count("\n"), 1)
    s["newline_word_ratio"] = text.count("\n") / n_words if n_words else float(text.count("\n"))

    # technical writing (judged by filter.technical's rules instead of the prose ones)
    s.update(technical_signals(text, lines, n_words))
    t = cfg.technical
    s["technical"] = (
        1.0
        if t.enabled
        and (s["code_line_ratio"] >= t.min_code_line_ratio or s["identifier_ratio"] >= t.min_identifier_ratio)
        else 0.0
    )
    return s
