"""The dataset card: README.md beside the outputs (OUT/write/README.md), written by ``write`` from the run's
config, the stats of every committed stage and the manifests. Markdown with a YAML header, as the Hugging Face
Hub reads it; no timestamps, so the same run gives the same card.
"""

from __future__ import annotations

import posixpath

from corpus.io import files

CARD = "README.md"


def _stage_stats(run_dir: str) -> dict[str, dict]:
    from corpus.report import collect

    try:
        return {s["stage"]: s for s in collect(run_dir)}
    except files.InputError:
        return {}


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.2f}%"


def render(config, manifests: dict[str, dict], stats: dict[str, dict]) -> str:
    c = config
    lines = ["---", f"pretty_name: {c.run.name}", "configs:"]
    for o in manifests:
        lines += [f"  - config_name: {o}", "    data_files:", "      - split: train", f"        path: {o}/*.parquet"]
    lines += ["---", "", f"# {c.run.name}", "",
              "A pretraining corpus for tool-using LLM agents in the style of Hephaestus-Forge, made by the agent-corpus "
              "forge. Each output is a folder of Parquet shards (zstd) with a `manifest.json` listing every shard's "
              "SHA-256, rows and tokens by part. Rows follow the `document` schema (`id`, `part`, `source`, `url`, "
              "`text`, `metadata`, `token_count`, ...).", "", "## Outputs", "",
              "| output | rows | tokens | shards | part: target → achieved (token shares) |", "|---|---:|---:|---:|---|"]
    for o, m in manifests.items():
        comp = m["composition"]
        parts = sorted(set(comp["target"]) | set(comp["achieved"]))
        shown = ", ".join(f"{p} {_pct(comp['target'].get(p)) if comp['target'] else ''}"
                          f"{' → ' if comp['target'] else ''}{_pct(comp['achieved'].get(p, 0.0))}" for p in parts)
        lines.append(f"| `{o}` | {m['rows']:,} | {m['tokens']:,} | {len(m['shards'])} | {shown} |")
    lines += ["", f"Tokens are counted with `{c.redact.tokenizer}`. `stage1` is the continual-pretraining mix "
              "(Hephaestus-Forge: about 36% agent data, the rest code and general text); `stage2` is the seed agent "
              "data only (tool docs, trajectories, instruction pairs). A document may appear more than once in an "
              "output when its part is upsampled (at most `max_epochs` times).", "", "## Sources", "",
              "| input | path | part | licence |", "|---|---|---|---|"]
    for kind in ("web", "text", "apis", "trajectories"):
        for spec in getattr(c.inputs, kind):
            lines.append(f"| {kind}: `{spec.source_name}` | `{spec.path}` | {spec.part} | "
                         f"{spec.licence or 'unknown: check before release'} |")
    if c.crawl.seeds or c.crawl.seeds_file:
        lines.append(f"| crawl: `{c.crawl.source}` | {len(c.crawl.seeds)} seed URLs | {c.crawl.part} | "
                     "the crawled sites' terms: check before release |")
    lines += ["", "Documents keep the licence of their source; the card cannot tell more than the config says.",
              "", "## Processing", ""]
    f, d = c.filter, c.dedup.minhash
    lines += [f"- **Language**: fastText lid.176, kept `{', '.join(f.lang.keep) or 'any'}`, minimum probability "
              f"{f.lang.min_score} on {', '.join(f.lang.min_score_parts)}.",
              f"- **Quality** (on {', '.join(f.quality_parts)}): Gopher quality "
              f"{'on' if f.gopher_quality.enabled else 'off'}, Gopher repetition "
              f"{'on' if f.gopher_repetition.enabled else 'off'}, C4 {'on' if f.c4.enabled else 'off'}, FineWeb "
              f"{'on' if f.fineweb.enabled else 'off'}.",
              f"- **Dedup**: exact (normalised text), then MinHash LSH: {d.ngram}-word shingles, {d.num_perm} "
              f"permutations, Jaccard threshold {d.threshold}."]
    if "classify" in stats:
        lines.append("- **Agent-relevance classifier**: fastText trained on the run's tool docs and trajectories "
                     "against general text; documents above its threshold became `agent_web`.")
    dc = c.decontaminate
    if "decontaminate" in stats:
        removed = {k: v for k, v in stats["decontaminate"]["rejects_by_reason"].items()}
        bench = ", ".join(b.name for b in dc.benchmarks) or "none"
        lines.append(f"- **Decontamination** against {bench}: {dc.ngram}-word n-grams (items shorter than that: "
                     f"whole, if at least {dc.min_item_tokens} words), mode `{dc.mode}`; removed: "
                     + (", ".join(f"{k} {v:,}" for k, v in sorted(removed.items())) or "none") + ".")
    if "redact" in stats:
        red = {k.split(":", 1)[1]: v for k, v in stats["redact"]["counters"].items() if k.startswith("redacted:")}
        lines.append("- **PII and secrets** replaced by placeholders such as `<EMAIL>`: "
                     + (", ".join(f"{k} {v:,}" for k, v in sorted(red.items())) or "none found") + ".")
    if stats:
        lines += ["", "## Stages", "", "| stage | rows in | rows out | rejected |", "|---|---:|---:|---:|"]
        lines += [f"| {s['stage']} | {s['rows_in']:,} | {s['rows_out']:,} | {s['rows_rejected']:,} |"
                  for s in stats.values()]
    lines += ["", "## Limitations", "",
              "- Heuristic filters and classifiers make mistakes both ways; rejected records and their reasons are "
              "kept in each stage's `rejects/` for audit.",
              "- Redaction is pattern-based: it misses secrets of unknown formats and redacts some look-alikes "
              "(e.g. version strings that are valid IP addresses).",
              "- Decontamination by n-gram overlap misses paraphrased benchmark items.", ""]
    return "\n".join(lines)


def write(ctx, manifests: dict[str, dict]) -> None:
    stats = _stage_stats(posixpath.dirname(ctx.output.rstrip("/")) or ".")
    files.write_text(posixpath.join(ctx.tmp, CARD), render(ctx.config, manifests, stats) + "\n")
