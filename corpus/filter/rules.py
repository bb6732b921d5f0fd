"""The quality rules, one object each, named by the signal it reads: its config key (``min_``/``max_`` + the
name) and its reject reason (the family's prefix + the name) derive from that one name, so a rule has no second
spelling anywhere. Each also says which way a document fails, its default and a description. The config
sections of ``filter`` (``gopher_quality``, ``gopher_repetition``, ``c4``, ``fineweb``, ``technical``) get
their threshold fields from this list (:func:`fields`), and :func:`first_failure` applies it in order, so a new
rule is one line here (and its signal in :func:`corpus.filter.quality.signals`, if it needs a new one) and a
test.

Rules of a family apply in the order listed; the families in :data:`FAMILIES` order. A ``None`` limit switches a
rule off. On a technical document (``signals["technical"]``), filter.technical's rules apply first and the
prose-layout rules (``prose_layout=True``) are skipped: code, tables and option lists break them by nature.

Sources of the defaults: Gopher (Rae et al. 2021, arXiv 2112.11446, appendix A and table A1), C4 (Raffel et al.
2020), FineWeb (Penedo et al. 2024, thresholds of datatrove's FineWebQualityFilter); see ../shared/REFERENCES.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from pydantic import Field

# the config sections under `filter` that hold rules, in the order their rules are checked
FAMILIES = ("technical", "gopher_quality", "gopher_repetition", "c4", "fineweb")
_FAILS = {
    "<": lambda v, lim: v < lim,
    ">": lambda v, lim: v > lim,
    "<=": lambda v, lim: v <= lim,
    ">=": lambda v, lim: v >= lim,
}


# a rule's reject reason is its name prefixed by its family's; the two Gopher sections share "gopher"
PREFIXES = {
    "technical": "technical",
    "gopher_quality": "gopher",
    "gopher_repetition": "gopher",
    "c4": "c4",
    "fineweb": "fineweb",
}


@dataclass(frozen=True)
class Rule:
    """A threshold rule named by the signal it reads: the document fails when ``signal fails limit`` (``fails``:
    "<", ">", "<=", ">="). Its config key is ``min_<name>`` for a lower limit, ``max_<name>`` for an upper one;
    its reject reason ``<family prefix>_<name>`` (both ends of a range share it)."""

    family: str
    name: str  # the signal: a key of corpus.filter.quality.signals()
    fails: str
    default: float | int | None
    description: str
    prose_layout: bool = False

    @property
    def key(self) -> str:
        return ("min_" if self.fails in ("<", "<=") else "max_") + self.name

    @property
    def reason(self) -> str:
        return f"{PREFIXES[self.family]}_{self.name}"

    def field(self) -> tuple[Any, Any]:
        kind = int if isinstance(self.default, int) else float
        return kind | None, Field(self.default, description=self.description)

    def checks(self, s: Mapping[str, float], section, scale: float = 1.0):
        limit = getattr(section, self.key)
        if limit is not None and _FAILS[self.fails](s[self.name], limit):
            yield self.reason, f"{self.name} {s[self.name]:.4g} {self.fails} {limit}"


@dataclass(frozen=True)
class FlagRule:
    """A yes/no rule: the document fails when its config switch (named like the rule) is on and the signal of
    that name is set."""

    family: str
    name: str
    default: bool
    description: str
    detail: str
    prose_layout: bool = False

    @property
    def key(self) -> str:
        return self.name

    @property
    def reason(self) -> str:
        return f"{PREFIXES[self.family]}_{self.name}"

    def field(self) -> tuple[Any, Any]:
        return bool, Field(self.default, description=self.description)

    def checks(self, s: Mapping[str, float], section, scale: float = 1.0):
        if getattr(section, self.key) and s[self.name]:
            yield self.reason, self.detail


@dataclass(frozen=True)
class NgramRule:
    """Gopher's word n-gram repetition, one limit per n (``{n: limit}``): ``name`` is a template with ``{n}``
    (the signal of each n, and in the reason); the key is ``max_`` + the name with ``n`` for ``{n}``. On
    technical documents the limits are multiplied by ``technical.ngram_repetition_scale``."""

    family: str
    name: str
    default: dict[int, float]
    description: str
    prose_layout: bool = False

    @property
    def key(self) -> str:
        return "max_" + self.name.replace("{n}", "n")

    @property
    def reason(self) -> str:
        return f"{PREFIXES[self.family]}_{self.name}"

    def field(self) -> tuple[Any, Any]:
        return dict[int, float], Field(dict(self.default), description=self.description)

    def checks(self, s: Mapping[str, float], section, scale: float = 1.0):
        for n, limit in sorted(getattr(section, self.key).items()):
            signal = self.name.format(n=n)
            if s[signal] > limit * scale:
                yield self.reason.format(n=n), f"{signal} {s[signal]:.4g} > {limit * scale}"


RULES: list[Rule | FlagRule | NgramRule] = [
    # technical writing (documents that read as technical, instead of the prose-layout rules)
    Rule(
        "technical",
        "alpha_words_ratio",
        "<",
        0.4,
        "Share of words with a letter, at least (Gopher's 0.8 rejects code).",
    ),
    Rule("technical", "mean_word_length", ">", 25.0, "Mean word length at most (minified or encoded blobs)."),
    # Gopher quality
    Rule("gopher_quality", "words", "<", 50, "Words (whitespace-separated tokens) at least."),
    Rule("gopher_quality", "words", ">", 100000, "Words at most."),
    Rule("gopher_quality", "mean_word_length", "<", 3.0, "Mean word length (characters) at least.", prose_layout=True),
    Rule("gopher_quality", "mean_word_length", ">", 10.0, "Mean word length at most.", prose_layout=True),
    Rule("gopher_quality", "symbol_word_ratio", ">", 0.1, "`#` and ellipsis per word.", prose_layout=True),
    Rule("gopher_quality", "bullet_lines_ratio", ">", 0.9, "Share of lines starting with a bullet.", prose_layout=True),
    Rule("gopher_quality", "ellipsis_lines_ratio", ">", 0.3, "Share of lines ending with an ellipsis."),
    Rule("gopher_quality", "alpha_words_ratio", "<", 0.8, "Share of words with a letter.", prose_layout=True),
    Rule("gopher_quality", "stop_words", "<", 2, "Of: the, be, to, of, and, that, have, with."),
    # Gopher repetition
    Rule("gopher_repetition", "dup_line_frac", ">", 0.3, "Share of lines that repeat an earlier line."),
    Rule("gopher_repetition", "dup_para_frac", ">", 0.3, "Share of paragraphs that repeat an earlier one."),
    Rule("gopher_repetition", "dup_line_char_frac", ">", 0.2, "Characters in repeated lines / all."),
    Rule("gopher_repetition", "dup_para_char_frac", ">", 0.2, "Characters in repeated paragraphs / all."),
    NgramRule(
        "gopher_repetition",
        "top_{n}gram_char_frac",
        {2: 0.2, 3: 0.18, 4: 0.16},
        "n → limit on the characters of the most frequent word n-gram / all.",
    ),
    NgramRule(
        "gopher_repetition",
        "dup_{n}gram_char_frac",
        {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.1},
        "n → limit on the characters of words inside repeated word n-grams / all.",
    ),
    # C4, per document (see C4Section: lines are never deleted)
    FlagRule("c4", "lorem_ipsum", True, "Reject pages containing 'lorem ipsum'.", "contains 'lorem ipsum'"),
    FlagRule(
        "c4",
        "curly_bracket",
        False,
        "C4 rejects pages with `{`; off by default because it removes every page with code, "
        "which is what an agent corpus wants.",
        "contains '{'",
    ),
    Rule("c4", "sentences", "<", 5, "Minimum sentences in the lines C4 would keep (C4: 5).", prose_layout=True),
    # FineWeb
    Rule(
        "fineweb",
        "line_punct_ratio",
        "<=",
        0.12,
        "Share of lines ending in . ' \" ! ? (a page at or below it is rejected).",
        prose_layout=True,
    ),
    Rule("fineweb", "short_line_ratio", ">=", 0.67, "Share of lines of ≤ 30 characters.", prose_layout=True),
    Rule("fineweb", "dup_line_char_ratio", ">=", 0.01, "Characters in duplicated lines / all.", prose_layout=True),
    Rule("fineweb", "newline_word_ratio", ">", 0.3, "Newlines per word (list-like pages).", prose_layout=True),
]

# the reasons replaced by filter.technical's rules on technical documents
PROSE_LAYOUT_RULES = frozenset(r.reason for r in RULES if r.prose_layout)


def fields(family: str) -> dict[str, tuple[Any, Any]]:
    """The config fields of ``family``'s rule limits, for its Section (corpus.config)."""
    return {r.key: r.field() for r in RULES if r.family == family}


def first_failure(s: Mapping[str, float], cfg) -> tuple[str, str] | None:
    """(reason, detail) of the first rule the signals ``s`` break under ``cfg`` (a FilterSection), or None."""
    technical = bool(s.get("technical"))
    scale = cfg.technical.ngram_repetition_scale if technical else 1.0
    for family in FAMILIES:
        section = getattr(cfg, family)
        if family == "technical" and not technical or not section.enabled:
            continue
        for rule in RULES:
            if rule.family != family or technical and rule.prose_layout:
                continue
            for reason, detail in rule.checks(s, section, scale):
                return reason, detail
    return None
