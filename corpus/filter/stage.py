"""The ``filter`` stage: language ID on every document, quality heuristics on the parts they suit.

Kept documents get ``lang``, ``lang_score`` and their quality ``signals``; every drop is a reject with the rule
that failed (``lang_not_kept``, ``lang_low_score``, ``gopher_*``, ``c4_*``, ``fineweb_*``) and the measured value.
"""

from __future__ import annotations


from corpus.config import FilterSection
from corpus.filter import langid
from corpus.filter.quality import signals
from corpus.filter.rules import first_failure
from corpus.signals import merged as merged_signals
from corpus.spark.envelope import Emitter

STAGE = "filter"


def filter_rows(rows: list[dict], cfg: FilterSection, out: Emitter) -> None:
    out.count("records_in", len(rows))
    lang_cfg = cfg.lang
    lang_parts, score_parts = set(lang_cfg.parts), set(lang_cfg.min_score_parts)
    ided = [r for r in rows if lang_cfg.enabled and r["part"] in lang_parts]
    predicted = (
        langid.predict([r["text"] for r in ided], lang_cfg.model_path, prose_only=lang_cfg.prose_only) if ided else []
    )
    langs = {id(r): p for r, p in zip(ided, predicted)}
    keep_langs = set(lang_cfg.keep)
    quality_parts = set(cfg.quality_parts)
    for r in rows:
        rejected = dict(
            location=None,
            id=r["id"],
            part=r["part"],
            source=r["source"],
            url=r["url"],
            text=r["text"],
            metadata=r["metadata"],
        )
        if id(r) in langs:
            lang, score = langs[id(r)]
            r["lang"], r["lang_score"] = lang, round(score, 4)
            if keep_langs and lang not in keep_langs:
                out.reject("lang_not_kept", f"{lang} ({score:.2f}) not in {sorted(keep_langs)}", **rejected)
                continue
            if r["part"] in score_parts and score < lang_cfg.min_score:
                out.reject("lang_low_score", f"{lang} {score:.3f} < {lang_cfg.min_score}", **rejected)
                continue
        if r["part"] in quality_parts:
            s = signals(r["text"], cfg)
            failure = first_failure(s, cfg)
            if failure:
                out.reject(failure[0], failure[1], **rejected)
                continue
            r["signals"] = merged_signals(r.get("signals"), **{k: round(v, 6) for k, v in s.items()})
        out.doc(**r)


def build(ctx):
    from corpus.spark.envelope import per_batch
    from corpus.stage import read_documents, write_envelope

    cfg: FilterSection = ctx.config.filter
    if cfg.lang.enabled:
        langid.load(cfg.lang.model_path)  # fail fast, on the driver, if the model is missing
    docs = read_documents(ctx.spark, ctx.inputs)
    return write_envelope(ctx, docs, lambda it: per_batch(it, STAGE, filter_rows, cfg))
