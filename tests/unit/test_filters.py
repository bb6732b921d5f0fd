"""Quality heuristics and language ID, on real text and constructed cases."""

from corpus import packages
from corpus.config import FilterSection, parse_config
from corpus.filter import langid
from corpus.filter.quality import signals
from corpus.filter.rules import first_failure
from corpus.filter.stage import filter_rows
from corpus.signals import as_dict
from corpus.spark.envelope import Emitter, split

PROSE = (
    "The committee met on Tuesday to discuss the budget for the coming year. Members agreed that the "
    "library should have longer opening hours, and that the funds for this would come from savings in "
    "other areas. The chair thanked everyone for their work and closed the meeting at nine o'clock.\n"
    "Later that week, a group of volunteers painted the reading room. They chose a pale green colour, "
    "which several visitors said made the space feel calmer and brighter than before.\n"
    "Next month the town will hold an open day with tours of the old mill, a market in the square, and "
    "a concert by the school orchestra. Tickets are free but must be booked in advance.\n"
)


def _doc(text, part="text", id_="a"):
    return {
        "id": id_,
        "part": part,
        "source": "s",
        "source_id": None,
        "url": None,
        "title": None,
        "date": None,
        "lang": None,
        "lang_score": None,
        "text": text,
        "metadata": "{}",
        "signals": None,
        "dedup_cluster": None,
        "token_count": None,
    }


def test_clean_prose_passes_every_rule():
    cfg = FilterSection()
    s = signals(PROSE, cfg)
    assert first_failure(s, cfg) is None
    assert s["words"] > 50 and s["stop_words"] >= 2 and s["dup_5gram_char_frac"] == 0
    assert first_failure(signals(PROSE * 3, cfg), cfg)[0] == "gopher_dup_line_frac", "repeated text is caught"


def test_each_rule_names_itself():
    cfg = FilterSection()
    cases = {
        "gopher_words": "Too short to count.",
        "gopher_alpha_words_ratio": " ".join(["12345 67.89 1,000 2.5% 300"] * 20) + " the and of to with",
        "gopher_dup_line_frac": "\n".join(["the same line of text that has words and the end."] * 30 + [PROSE]),
        "c4_lorem_ipsum": PROSE + "Lorem ipsum dolor sit amet, consectetur adipiscing elit.",
        "gopher_symbol_word_ratio": PROSE + " ".join(["#tag"] * 30),
    }
    for reason, text in cases.items():
        failure = first_failure(signals(text, cfg), cfg)
        assert failure is not None and failure[0] == reason, (reason, failure)


def test_rules_can_be_switched_off():
    cfg = parse_config({"filter": {"c4": {"lorem_ipsum": False}}}).filter
    assert first_failure(signals(PROSE + " lorem ipsum dolor sit amet.", cfg), cfg) is None
    curly = parse_config({"filter": {"c4": {"curly_bracket": True}}}).filter
    assert first_failure(signals(PROSE + " {x}", curly), curly)[0] == "c4_curly_bracket"


def test_real_package_readmes_get_signals():
    cfg = FilterSection()
    for r in packages.readmes()[:10]:
        s = signals(r["text"], cfg)
        assert s["words"] == len(r["text"].split())


def test_language_id_with_the_real_lid176_model():
    got = langid.predict(
        [
            PROSE,
            "Der Ausschuss trat am Dienstag zusammen, um den Haushalt zu beraten.",
            "Le comité s'est réuni mardi pour discuter du budget de l'année prochaine.",
        ]
    )
    assert [g[0] for g in got] == ["en", "de", "fr"]
    assert got[0][1] > 0.9
    assert langid.load() is langid.load(), "the model is loaded once per process"


def test_prose_only_language_id_ignores_code_lines():
    mixed = "\n".join(["x = foo(bar, baz[0]) + 1;"] * 30 + [PROSE])
    assert langid.prose(mixed).strip() == PROSE.strip()
    assert langid.predict([mixed], prose_only=True)[0][1] > langid.predict([mixed])[0][1]


def test_filter_rows_keeps_tool_docs_past_prose_rules_and_rejects_foreign_text():
    cfg = FilterSection()
    code_heavy_doc = "\n".join(["def read(path, mode='r'):"] * 3 + ["Read the file at path and return its text."])
    rows = [
        _doc(PROSE, id_="en"),
        _doc("Der Ausschuss trat am Dienstag zusammen. " * 20, id_="de"),
        _doc(code_heavy_doc, part="tool_doc", id_="doc"),
        _doc("The weather is nice today, so we are going to walk to the park with the children.", id_="short"),
    ]
    out = Emitter("filter")
    filter_rows(rows, cfg, out)
    docs, rejects, counts = split([out.batch()])
    assert sorted(docs.column("id").to_pylist()) == ["doc", "en"]
    assert dict(zip(rejects.column("id").to_pylist(), rejects.column("reason").to_pylist())) == {
        "de": "lang_not_kept",
        "short": "gopher_words",
    }
    kept = {d["id"]: d for d in docs.to_pylist()}
    assert kept["en"]["lang"] == "en" and as_dict(kept["en"]["signals"])["words"] > 50
    assert kept["doc"]["signals"] is None, "quality rules do not run on tool_doc"
    assert counts["records_in"] == 4


README = """# fastqueue

A small task queue for Python.

## Install

```
pip install fastqueue
```

## Use

```python
from fastqueue import Queue
q = Queue(max_retries=3)
q.put(send_email, to="a@example.com")
q.run(workers=4)
```

Options:

- `--workers N`: worker processes
- `--max-retries N`: attempts per task
- `--timeout S`: seconds per task

Tasks that fail are retried with `backoff_seconds` between attempts, and the queue keeps them on disk so a
restarted worker picks up where the last one stopped. See the API reference for `Queue.put()` and `Queue.run()`.
"""


def test_technical_pages_are_judged_by_technical_rules():
    cfg = FilterSection()
    s = signals(README, cfg)
    assert s["technical"] == 1.0 and s["code_line_ratio"] > 0.15
    assert first_failure(s, cfg) is None  # the prose rules would reject it: short lines, few sentences, '#'
    off = parse_config({"filter": {"technical": {"enabled": False}}}).filter
    assert first_failure(signals(README, off), off) is not None
    # code-like soup is still refused, by the technical rules
    soup = " ".join(f"{i}=({i * 7});" for i in range(300)) + " the and of to with"
    assert first_failure(signals(soup, cfg), cfg)[0] == "technical_alpha_words_ratio"
    # prose stays prose: a newsgroup-style post with quoted lines is not technical
    post = "\n".join(["> I think the launch was delayed.", "> Any news?"] + [PROSE])
    assert signals(post, cfg)["technical"] == 0.0


def _passing_signals(cfg) -> dict[str, float]:
    """Signals of a real prose document that passes every rule (the start point to break one rule at a time)."""
    s = signals(PROSE, cfg)
    assert first_failure(s, cfg) is None
    return s


def test_every_rule_is_configured_measured_and_named_by_its_reason():
    """Each rule object (corpus.filter.rules.RULES): its limit is a config key of its family's section, its signal
    is one signals() measures, and a document past that limit alone is rejected with the rule's reason."""
    from corpus.filter.rules import RULES, FlagRule, NgramRule, Rule

    cfg = parse_config({"filter": {"c4": {"curly_bracket": True}}}).filter
    base = _passing_signals(cfg)
    checked = set()
    for rule in RULES:
        section = getattr(cfg, rule.family)
        assert rule.key in type(section).model_fields, (rule.family, rule.key)
        # one name: the signal, the config key (min_/max_ + it) and the reason (family prefix + it)
        assert rule.key.removeprefix("min_").removeprefix("max_") == rule.name.replace("{n}", "n"), rule
        assert rule.reason.split("_", 1)[0] in rule.family and rule.reason.endswith("_" + rule.name), rule
        s = dict(base, technical=1.0 if rule.family == "technical" else 0.0)
        if isinstance(rule, Rule):
            assert rule.name in base, rule.name
            limit = getattr(section, rule.key)
            s[rule.name] = limit - 1e-6 if rule.fails in ("<", "<=") else limit + 1e-6
            if rule.fails in ("<=", ">="):
                s[rule.name] = limit  # at the limit fails too
            want = rule.reason
        elif isinstance(rule, FlagRule):
            s[rule.name] = 1.0
            want = rule.reason
        else:
            assert isinstance(rule, NgramRule)
            n, limit = sorted(getattr(section, rule.key).items())[-1]
            assert rule.name.format(n=n) in base
            s[rule.name.format(n=n)] = limit + 1e-6
            want = rule.reason.format(n=n)
        got = first_failure(s, cfg)
        assert got is not None and got[0] == want, (rule, got)
        checked.add(want)
    assert len(checked) >= 20


def test_a_technical_document_skips_exactly_the_prose_layout_rules():
    from corpus.filter.rules import PROSE_LAYOUT_RULES, RULES, Rule

    cfg = parse_config({}).filter
    base = dict(_passing_signals(cfg), technical=1.0)
    for rule in RULES:
        if not isinstance(rule, Rule) or rule.family == "technical":
            continue
        limit = getattr(getattr(cfg, rule.family), rule.key)
        s = dict(base, **{rule.name: limit - 1e-6 if rule.fails in ("<", "<=") else limit + 1e-6})
        if rule.name in ("alpha_words_ratio", "mean_word_length"):
            continue  # technical's own limits on these signals are looser: checked in the test above
        got = first_failure(s, cfg)
        assert (got is None) == (rule.reason in PROSE_LAYOUT_RULES), (rule.reason, got)


def _reference_ngram_fracs(words, top_ns, dup_ns):
    """Gopher's repetition signals written plainly with tuples and sets (the filter's first implementation):
    the compiled kernel must give exactly these values."""
    from collections import Counter

    out = {}
    lens = [len(w) for w in words]
    total = sum(lens) or 1
    for n in sorted(set(top_ns) | set(dup_ns)):
        if len(words) < n:
            out.update({f"top_{n}gram_char_frac": 0.0} if n in top_ns else {})
            out.update({f"dup_{n}gram_char_frac": 0.0} if n in dup_ns else {})
            continue
        grams = list(zip(*(words[i:] for i in range(n))))
        if n in top_ns:
            gram, count = Counter(grams).most_common(1)[0]
            out[f"top_{n}gram_char_frac"] = (sum(len(w) for w in gram) * count / total) if count > 1 else 0.0
        if n in dup_ns:
            seen, covered = set(), bytearray(len(words))
            for i, g in enumerate(grams):
                if g in seen:
                    covered[i : i + n] = b"\x01" * n
                else:
                    seen.add(g)
            out[f"dup_{n}gram_char_frac"] = sum(size for size, c in zip(lens, covered) if c) / total
    return out


def test_repetition_kernel_gives_exactly_the_plain_definition():
    """Real texts (Wikipedia, news, READMEs), texts made repetitive (repeated lines, paragraphs and n-grams with
    ties between n-grams of different lengths in characters), non-ASCII words and the short edge cases."""
    import random

    from corpus.filter.quality import _ngram_fracs

    rng = random.Random(5)
    texts = [r["text"] for r in packages.general_text()[:300]]
    words_pool = " ".join(texts[:20]).split()
    cases = [t.split() for t in texts]
    for _ in range(300):
        base = [rng.choice(words_pool[:60]) for _ in range(rng.randint(0, 40))]  # a small vocabulary: many repeats
        cases.append(base * rng.randint(1, 4) + [rng.choice(["é", "日本語", "ß", "a", "bb"]) for _ in range(3)])
    cases += [[], ["one"], ["a", "a"], ["a", "b", "a", "b"], ["xx", "y", "xx", "y", "y", "xx"]]
    top, dup = (2, 3, 4), (5, 6, 7, 8, 9, 10)
    for words in cases:
        assert _ngram_fracs(words, top, dup) == _reference_ngram_fracs(words, top, dup), words[:20]


def test_prose_lines_are_those_the_plain_per_word_rule_picks():
    """langid.prose counts a line's alphabetic words with one regular expression; the plain rule (each
    whitespace-separated word, stripped of .,;:()[]"'!? at its ends, is 2+ letters) must pick the same lines, on
    real text and on lines of punctuation, digits, non-ASCII letters and Unicode spaces."""
    import random
    import re

    word = re.compile(r"[^\W\d_]{2,}")

    def plain(text):
        keep = []
        for line in text.split("\n"):
            words = line.split()
            alpha = sum(1 for w in words if word.fullmatch(w.strip(langid._STRIP)))
            if len(words) >= 4 and alpha >= 0.6 * len(words):
                keep.append(line)
        return "\n".join(keep) if keep else text

    rng = random.Random(11)
    texts = [r["text"] for r in packages.general_text()[:200]]
    pieces = [
        "(hello)",
        "'quoted'",
        "a'b",
        "ab.cd",
        "x",
        "42",
        "déjà",
        "日本語",
        "__init__",
        "[link]",
        "''",
        "!?",
        "end.",
        "\u00a0",
        "\u2003",
        "\x1c",
        "\t",
        "snake_case",
        "Ünïcode",
        "ab1",
        "--opt",
        "a",
        "bb",
    ]
    for _ in range(400):
        texts.append("\n".join(" ".join(rng.choice(pieces) for _ in range(rng.randint(0, 9))) for _ in range(4)))
    for t in texts:
        assert langid.prose(t) == plain(t), t[:200]
