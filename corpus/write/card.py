"""The dataset card: README.md beside the outputs (OUT/write/README.md), written by ``write`` from the run's
config, the stats of every committed stage and the manifests. Markdown with a YAML header, as the Hugging Face
Hub reads it; no timestamps, so the same run gives the same card.
"""

from __future__ import annotations

import posixpath

from corpus.io import files
from corpus.text.paths import display_path

CARD = "README.md"


def _stage_stats(run_dir: str) -> dict[str, dict]:
    from corpus.stage import committed_stats

    try:
        return {s["stage"]: s for s in committed_stats(run_dir)}
    except files.InputError:
        return {}


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.2f}%"


QUALITY_COLUMNS = [
    ("documents", "documents", "{:,}"),
    ("unique_tokens", "unique tokens", "{:,}"),
    ("epochs", "epochs", "{:.2f}"),
    ("template_share", "template-made", "{:.1%}"),
    ("distinct_trigram_ratio", "distinct trigrams", "{:.3f}"),
    ("near_duplicate_share", "near-dups removed", "{:.1%}"),
]


def quality_lines(quality: dict[str, dict[str, dict]]) -> list[str]:
    """The corpus-quality table per output and part, and the trajectory figures (corpus.write.quality)."""
    lines = [
        "## Corpus quality",
        "",
        "Per output and part: distinct documents, their tokens, epochs (tokens written / unique tokens), the "
        "share made from templates, the distinct word-trigram ratio of a seeded sample (low: repetitive), "
        "and the share of the part's documents that dedup removed as (near-)duplicates.",
        "",
    ]
    for output, parts in quality.items():
        lines += [
            f"### `{output}`",
            "",
            "| part | " + " | ".join(h for _, h, _ in QUALITY_COLUMNS) + " |",
            "|---|" + "---:|" * len(QUALITY_COLUMNS),
        ]
        for part, f in parts.items():
            cells = [fmt.format(f[k]) if f.get(k) is not None else "–" for k, _, fmt in QUALITY_COLUMNS]
            lines.append(f"| {part} | " + " | ".join(cells) + " |")
        apis = (parts.get("tool_doc") or {}).get("apis")
        if apis:
            lines += [
                "",
                "Tool docs by source: distinct APIs (provider and API name: an AWS service, a Google API, "
                "a Python module of a distribution), API versions, and operations (HTTP operations, SDK "
                "methods, Python functions, classes and methods) in this output:",
                "",
                "| source | APIs | API versions | operations | documents |",
                "|---|---:|---:|---:|---:|",
            ]
            lines += [
                f"| {src} | {a['apis']:,} | {a['api_versions']:,} | {a['operations']:,} | {a['documents']:,} |"
                for src, a in apis.items()
                if src != "all"
            ]
            a = apis["all"]
            lines.append(
                f"| **all** | {a['apis']:,} | {a['api_versions']:,} | {a['operations']:,} | {a['documents']:,} |"
            )
        t = parts.get("trajectory")
        if t:
            lines += [
                "",
                f"Trajectories: {t['executed_share']:.1%} carry real execution results; "
                f"{t['calls_per_trajectory']:.2f} calls and {t['user_turns_per_trajectory']:.2f} user turns "
                f"per trajectory; {t['empty_tool_result_share']:.1%} of tool results are `{{}}`.",
            ]
        lines.append("")
    return lines


def decontamination_lines(dc, stat: dict) -> list[str]:
    """What decontamination found, per benchmark."""
    benches = stat.get("extra", {}).get("benchmarks", {})
    counters = stat.get("counters", {})
    lines = [
        f"- **Decontamination** ({dc.ngram}-word n-grams; items of {dc.min_item_tokens}–{dc.ngram - 1} words "
        f"matched whole; items of {dc.exact_min_tokens}–{dc.min_item_tokens - 1} words matched exactly as lines"
        f"{'' if dc.exact_short_items else ' — off'}"
        f"{'; shorter items matched exactly as whole user turns and instructions' if dc.exact_turn_items else ''}"
        f"; mode `{dc.mode}`):",
        "",
        "  | benchmark | items | short items (exact) | documents removed or cut | by exact match |",
        "  |---|---:|---:|---:|---:|",
    ]
    for name, b in sorted(benches.items()):
        lines.append(
            f"  | {name} | {b['items']:,} | {b.get('items_too_short', 0):,} | "
            f"{counters.get(f'documents_matching:{name}', 0):,} | "
            f"{counters.get(f'documents_matching_exact:{name}', 0):,} |"
        )
    return lines + [""]


def render(config, manifests: dict[str, dict], stats: dict[str, dict], quality: dict | None = None) -> str:
    c = config
    lines = ["---", f"pretty_name: {c.run.name}", "configs:"]
    for o in manifests:
        lines += [f"  - config_name: {o}", "    data_files:", "      - split: train", f"        path: {o}/*.parquet"]
    lines += [
        "---",
        "",
        f"# {c.run.name}",
        "",
        "A pretraining corpus for tool-using LLM agents in the style of Hephaestus-Forge, made by the "
        "agent-corpus "
        "forge. Each output is a folder of Parquet shards (zstd) with a `manifest.json` listing every shard's "
        "SHA-256, rows and tokens by part. Rows follow the `document` schema (`id`, `part`, `source`, `url`, "
        "`text`, `metadata`, `token_count`, ...).",
        "",
        "## Outputs",
        "",
        "| output | rows | tokens | shards | part: target → achieved (token shares) |",
        "|---|---:|---:|---:|---|",
    ]
    for o, m in manifests.items():
        comp = m["composition"]
        parts = sorted(set(comp["target"]) | set(comp["achieved"]))
        shown = ", ".join(
            f"{p} {_pct(comp['target'].get(p)) if comp['target'] else ''}"
            f"{' → ' if comp['target'] else ''}{_pct(comp['achieved'].get(p, 0.0))}"
            for p in parts
        )
        lines.append(f"| `{o}` | {m['rows']:,} | {m['tokens']:,} | {len(m['shards'])} | {shown} |")
    lines += [
        "",
        f"Tokens are counted with `{c.redact.tokenizer}`. `stage1` is the continual-pretraining mix "
        "(Hephaestus-Forge: about 36% agent data, the rest code and general text); `stage2` is the seed agent "
        "data only (tool docs, trajectories, instruction pairs). A document may appear more than once in an "
        "output when its part is upsampled (at most `max_epochs` times).",
        "",
        "## Sources",
        "",
        "| input | path | part | licence |",
        "|---|---|---|---|",
    ]
    for kind in ("web", "text", "apis", "python", "trajectories"):
        for spec in getattr(c.inputs, kind):
            lines.append(
                f"| {kind}: `{spec.source_name}` | `{display_path(spec.path)}` | {spec.part} | "
                f"{spec.licence or 'unknown: check before release'} |"
            )
    if c.crawl.seeds or c.crawl.seeds_file:
        lines.append(
            f"| crawl: `{c.crawl.source}` | {len(c.crawl.seeds)} seed URLs | {c.crawl.part} | "
            "the crawled sites' terms: check before release |"
        )
    lines += [
        "",
        "Documents keep the licence of their source; the card cannot tell more than the config says.",
        "",
        "## Processing",
        "",
    ]
    f, d = c.filter, c.dedup.minhash
    lines += [
        f"- **Language**: fastText lid.176, kept `{', '.join(f.lang.keep) or 'any'}`, minimum probability "
        f"{f.lang.min_score} on {', '.join(f.lang.min_score_parts)}.",
        f"- **Quality** (on {', '.join(f.quality_parts)}): Gopher quality "
        f"{'on' if f.gopher_quality.enabled else 'off'}, Gopher repetition "
        f"{'on' if f.gopher_repetition.enabled else 'off'}, C4 {'on' if f.c4.enabled else 'off'}, FineWeb "
        f"{'on' if f.fineweb.enabled else 'off'}.",
        f"- **Dedup**: exact (normalised text), then MinHash LSH: {d.ngram}-word shingles, {d.num_perm} "
        f"permutations, Jaccard threshold {d.threshold}.",
    ]
    if "classify" in stats:
        lines.append(
            "- **Agent-relevance classifier**: fastText trained on the run's tool docs and trajectories "
            "against general text; documents above its threshold became `agent_web`."
        )
    dc = c.decontaminate
    if "decontaminate" in stats:
        lines += decontamination_lines(dc, stats["decontaminate"])
    if "redact" in stats:
        red = {k.split(":", 1)[1]: v for k, v in stats["redact"]["counters"].items() if k.startswith("redacted:")}
        lines.append(
            "- **PII and secrets** replaced by placeholders such as `<EMAIL>`: "
            + (", ".join(f"{k} {v:,}" for k, v in sorted(red.items())) or "none found")
            + "."
        )
    if quality:
        lines += [""] + quality_lines(quality)
    if stats:
        lines += ["", "## Stages", "", "| stage | rows in | rows out | rejected |", "|---|---:|---:|---:|"]
        lines += [
            f"| {s['stage']} | {s['rows_in']:,} | {s['rows_out']:,} | {s['rows_rejected']:,} |" for s in stats.values()
        ]
    lines += [
        "",
        "## Limitations",
        "",
        "- Heuristic filters and classifiers make mistakes both ways; rejected records and their reasons are "
        "kept in each stage's `rejects/` for audit.",
        "- Redaction is pattern-based: it misses secrets of unknown formats and redacts some look-alikes "
        "(e.g. version strings that are valid IP addresses).",
        "- Decontamination by n-gram overlap and exact lines misses paraphrased benchmark items.",
        "",
    ]
    return "\n".join(lines)


def write(ctx, manifests: dict[str, dict], quality: dict | None = None) -> None:
    stats = _stage_stats(posixpath.dirname(ctx.output.rstrip("/")) or ".")
    files.write_text(posixpath.join(ctx.tmp, CARD), render(ctx.config, manifests, stats, quality) + "\n")
