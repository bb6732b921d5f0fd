"""The ``redact`` stage: PII and secrets replaced by placeholders (counted per kind) in every text field of a
document (text, url, title), and every document's ``token_count`` under the trainer's tokenizer. Token counting
lives here because this is the last stage that changes text: ``mix`` and ``write`` read the counts instead of
tokenizing again. Nothing is dropped.
"""

from __future__ import annotations

from collections import Counter

from corpus import signals
from corpus.config import RedactSection
from corpus.text import tokenizer
from corpus.redact.patterns import Redactor
from corpus.spark.envelope import Emitter

STAGE = "redact"


def redact_rows(rows: list[dict], cfg: RedactSection, out: Emitter) -> None:
    out.count("records_in", len(rows))
    redactor = Redactor(cfg.kinds, cfg.keep_documentation_values, cfg.min_entropy)
    parts = set(cfg.parts)
    for r in (r for r in rows if r["part"] in parts):
        counts: Counter = Counter()
        for name in cfg.fields:
            if r.get(name):
                value, found = redactor.redact(r[name])
                if found:
                    r[name] = value
                    counts += found
                    out.count(f"redacted_field:{name}")
        if counts:
            r["signals"] = signals.merged(r.get("signals"), redactions=float(sum(counts.values())))
            out.count("documents_redacted")
            for kind, n in counts.items():
                out.count(f"redacted:{kind}", n)
    counts = tokenizer.counter(cfg.tokenizer)([r["text"] for r in rows])
    for r, n in zip(rows, counts):
        r["token_count"] = n
        out.count(f"tokens:{r['part']}", n)
        out.doc(**r)


def build(ctx):
    from corpus.spark.envelope import per_batch
    from corpus.stage import read_documents, write_envelope

    cfg: RedactSection = ctx.config.redact
    tokenizer.counter(cfg.tokenizer)  # fail fast, on the driver, on a bad tokenizer
    docs = read_documents(ctx.spark, ctx.inputs)
    return write_envelope(
        ctx,
        docs,
        lambda it: per_batch(it, STAGE, redact_rows, cfg),
        extra={"tokenizer": cfg.tokenizer, "kinds": list(cfg.kinds)},
    )
