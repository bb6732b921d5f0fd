"""``forge report OUT``: what a run did, from the stats each committed stage wrote."""

from __future__ import annotations

import posixpath

from corpus.io import files
from corpus.report_html import pr_split
from corpus.stage import SUCCESS, committed_stats

REPORT = "report.md"
REPORT_HTML = "report.html"


def classifier_section(extra: dict) -> list[str]:
    """The classifier's rounds (in-distribution and out-of-source metrics), its measure on labelled documents it
    scored, a sample of what it recalled, and its top hosts."""
    lines = [
        "### classify: held-out metrics by round",
        "",
        "In distribution: held-out documents of the training sources. Out of source: whole sources held out of "
        "training (`split_by`), the figure that says how the model does on a crawl unlike its training data; "
        "the threshold is chosen there.",
        "",
        "| round | split | train docs | held-out pos / neg | threshold | precision | recall | F1 |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in extra.get("rounds", []):
        for name in ("in_distribution", "out_of_source"):
            m = r.get(name)
            if not m:
                continue
            c = m["chosen"]
            lines.append(
                f"| {r['round']} | {name.replace('_', ' ')} | {r['train_positives'] + r['train_negatives']:,} "
                f"| {m['test_positives']:,} / {m['test_negatives']:,} | {c['threshold']:.3f} | "
                f"{c['precision']:.3f} | {c['recall']:.3f} | {c['f1']:.3f} |"
            )
        if r.get("held_out_sources"):
            held = ", ".join(
                f"{s} ({v['label']}, {v['at_or_above_threshold']:.0%} at or above)"
                for s, v in r["held_out_sources"].items()
            )
            lines += ["", f"Round {r['round']} held out: {held}."]
    lab = extra.get("labelled")
    if lab:
        lines += [
            "",
            "### classify: on the labelled documents it scored (never trained on)",
            "",
            f"{lab['documents']:,} scored documents carry an evaluation label ({lab['agent']:,} agent, "
            f"{lab['general']:,} general): precision **{lab['precision']:.3f}**, recall **{lab['recall']:.3f}**,"
            f" F1 **{lab['f1']:.3f}**, false positives on general text "
            f"**{(lab['false_positive_rate'] or 0):.1%}**.",
        ]
    sample = extra.get("sample") or {}
    for name, title in (("recalled", "recalled (now agent_web)"), ("not_recalled", "scored but not recalled")):
        rows = sample.get(name) or []
        if rows:
            lines += [
                "",
                f"### classify: a seeded sample of documents {title}",
                "",
                "| score | label | source | beginning |",
                "|---:|---|---|---|",
            ]
            lines += [
                f"| {r['agent_score']:.3f} | {r['eval_label'] or '—'} | {r['source']} | "
                f"{(r['excerpt'] or '')[:140].replace('|', '/')} |"
                for r in rows[:10]
            ]
    if extra.get("hosts"):
        lines += [
            "",
            "### classify: top hosts by recalled documents",
            "",
            "| host | scored | recalled | share of host | share of recalled |",
            "|---|---:|---:|---:|---:|",
        ]
        lines += [
            f"| {h['host']} | {h['documents']:,} | {h['recalled']:,} | {h['share_of_host']:.2f} | "
            f"{h['share_of_recalled']:.2f} |"
            for h in extra["hosts"][:10]
        ]
    return lines + [""]


def pr_table(curve: list[list[float]], every: float = 0.1) -> list[str]:
    """A PR curve (``[threshold, precision, recall]`` rows) as a table at every ``every`` of the threshold."""
    rows = [r for r in curve if abs(round(r[0] / every) * every - r[0]) < 1e-9 and 0 < r[0] < 1]
    return ["| threshold | precision | recall |", "|---:|---:|---:|"] + [
        f"| {t:.1f} | {p:.3f} | {r:.3f} |" for t, p, r in rows
    ]


def pr_section(extra: dict) -> list[str]:
    """Each round's precision and recall by threshold (the curve report.html plots), on the split the threshold
    was chosen on."""
    lines = []
    for r in extra.get("rounds", []):
        split = pr_split(r)
        m = r.get(split) or {}
        if not m.get("pr_curve"):
            continue
        lines += [
            f"### classify: round {r['round']} precision and recall by threshold ({split.replace('_', ' ')}, "
            f"average precision {m.get('average_precision', 0):.3f})",
            "",
            *pr_table(m["pr_curve"]),
            "",
        ]
    return lines


def dedup_section(extra: dict) -> list[str]:
    """Duplicate clusters by size: how much of the removal is pairs, how much large templated families."""
    sizes = {k: v for k, v in (extra.get("cluster_sizes") or {}).items() if k != "largest"}
    if not sizes:
        return []
    return [
        f"### dedup: duplicate clusters by size (largest: {extra['cluster_sizes'].get('largest', 0):,} documents)",
        "",
        "| documents in the cluster | clusters |",
        "|---|---:|",
        *[f"| {k} | {v:,} |" for k, v in sizes.items()],
        "",
    ]


def parts_section(outputs: dict) -> list[str]:
    """Each output's parts as written: documents, rows (copies), epochs and unique tokens (write's manifests)."""
    lines = []
    for name, o in outputs.items():
        parts = o.get("parts") or {}
        if not parts:
            continue
        lines += [
            f"### write: {name} by part",
            "",
            "| part | documents | rows | epochs | tokens | unique tokens |",
            "|---|---:|---:|---:|---:|---:|",
            *[
                f"| {p} | {v['documents']:,} | {v['rows']:,} | {v['epochs']:.2f} | {v['tokens']:,} | "
                f"{v['unique_tokens']:,} |"
                for p, v in sorted(parts.items())
            ],
            "",
        ]
    return lines


def mix_section(extra: dict) -> list[str]:
    """Each mix output's composition: token shares targeted and achieved, and the warnings."""
    lines = []
    for name, o in extra.get("outputs", {}).items():
        lines += [
            f"### mix: {name} ({o['tokens']:,} tokens, {o['rows']:,} rows)",
            "",
            "| part | target | achieved | tokens | whole copies |",
            "|---|---:|---:|---:|---:|",
        ]
        for p in sorted(set(o["target"]) | set(o["achieved"])):
            t, a = o["target"].get(p), o["achieved"].get(p, 0.0)
            lines.append(
                f"| {p} | {'—' if t is None else f'{t:.4f}'} | {a:.4f} | {o['tokens_by_part'].get(p, 0):,} "
                f"| {o['whole_copies'].get(p, 0)} |"
            )
        lines += [""] + [f"- {w}" for w in o.get("warnings", [])] + [""]
    return lines


def pairs_section(samples: dict[str, list[dict]]) -> list[str]:
    """A sample of instruction pairs per extractor, one line each (cut; the whole pairs are in extract/pairs)."""
    lines = []

    def one_line(text: str, limit: int) -> str:
        flat = " ".join(text.split()).replace("|", "\\|")
        return flat if len(flat) <= limit else flat[: limit - 1] + "…"

    for extractor, pairs in sorted(samples.items()):
        lines += [
            f"### extract: {len(pairs)} pairs from `{extractor}` (smallest ids)",
            "",
            "| instruction | response |",
            "|---|---|",
        ]
        lines += [f"| {one_line(p['instruction'], 150)} | {one_line(p['response'], 200)} |" for p in pairs]
        lines.append("")
    return lines


def trajectories_section(counters: dict) -> list[str]:
    """What the executed trajectories are like (synthesize's counters)."""
    n = counters.get("trajectories", 0)
    if not n:
        return []

    def share(key: str) -> str:
        return f"{counters.get(key, 0) / n:.1%}"

    results = counters.get("tool_results", 0)
    rows = [
        ("carry real execution results", share("trajectories_executed")),
        ("≥ 2 calls, one taking an argument from an earlier result", share("trajectories_from_results")),
        ("≥ 2 calls", share("trajectories_multi_call")),
        ("≥ 2 user turns", share("trajectories_multi_turn")),
        ("failed, then recovered (a real error first)", share("trajectories_recovery")),
        ("irrelevance cases (no offered tool fits)", share("trajectories_irrelevance")),
        ("with an `example-` placeholder", share("trajectories_placeholder")),
        ("calls per trajectory", f"{counters.get('calls', 0) / n:.2f}"),
        ("tool results that are `{}`", f"{counters.get('tool_results_empty', 0) / max(results, 1):.1%}"),
        (
            "… of which the operation documents an answer",
            f"{counters.get('tool_results_empty_unexpected', 0) / max(results, 1):.1%}",
        ),
    ]
    return (
        [f"### synthesize: the {n:,} trajectories made", "", "| figure | value |", "|---|---:|"]
        + [f"| {k} | {v} |" for k, v in rows]
        + [""]
    )


def render(out: str, stats: list[dict]) -> str:
    lines = [
        f"# Run report: {out}",
        "",
        "| stage | rows in | rows out | rejected | seconds |",
        "|---|---:|---:|---:|---:|",
    ]
    for s in stats:
        lines.append(
            f"| {s['stage']} | {s['rows_in']:,} | {s['rows_out']:,} | {s['rows_rejected']:,} | {s['seconds']:.1f} |"
        )
    total = sum(s["seconds"] for s in stats)
    lines += ["", f"Total stage time: {total:.1f} s", ""]
    for s in stats:
        if s["rejects_by_reason"]:
            lines += [f"## {s['stage']}: rejects by reason", "", "| reason | rows |", "|---|---:|"]
            lines += [f"| {k} | {v:,} |" for k, v in sorted(s["rejects_by_reason"].items(), key=lambda kv: -kv[1])]
            lines.append("")
    for s in stats:
        counters = {k: v for k, v in s.get("counters", {}).items() if k != "records_in"}
        extra = s.get("extra", {})
        if counters or extra:
            lines += [f"## {s['stage']}: counters and settings", ""]
            lines += [f"- {k}: {v:,}" for k, v in sorted(counters.items())]
            for k, v in sorted(extra.items()):
                shown = str(v)
                lines.append(f"- {k}: {shown if len(shown) <= 160 else '(see _stats.json)'}")
            lines.append("")
        if extra.get("rounds"):
            lines += classifier_section(extra) + pr_section(extra)
        if s["stage"] == "dedup":
            lines += dedup_section(extra)
        if s["stage"] == "synthesize":
            lines += trajectories_section(s.get("counters", {}))
        if s["stage"] == "extract" and extra.get("samples"):
            lines += pairs_section(extra["samples"])
    for s in stats:
        if s["stage"] == "mix":
            lines += mix_section(s["extra"])
    write = next((s for s in stats if s["stage"] == "write"), None)
    if write:
        lines += parts_section(write.get("extra", {}).get("outputs", {}))
    if write and write.get("extra", {}).get("quality"):
        from corpus.write.card import quality_lines

        lines += quality_lines(write["extra"]["quality"])
    if write:
        lines += ["## Output", ""]
        for name in write.get("extra", {}).get("outputs", {}):
            lines.append(f"- `{name}`: shards and manifest in `{posixpath.join(out, 'write', name)}/`")
        lines += [f"- dataset card: `{posixpath.join(out, 'write', 'README.md')}`", ""]
    export = next((s for s in stats if s["stage"] == "export"), None)
    if export:
        lines += export_section(out, export.get("extra", {}))
    return "\n".join(lines)


def export_section(out: str, extra: dict) -> list[str]:
    """The token files per output: documents, tokens, the share of them trained, where they are."""
    lines = [
        "## Export (token ids for trainers)",
        "",
        "| output | documents | tokens | trained | files | packed rows | folder |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for name, o in extra.get("outputs", {}).items():
        trained = o["trained_tokens"] / o["tokens"] if o["tokens"] else 0.0
        rows = f"{o['packed']['sequences']:,}" if o.get("packed") else "—"
        lines.append(
            f"| {name} | {o['documents']:,} | {o['tokens']:,} | {trained:.1%} | {o['files']} | {rows} | "
            f"`{posixpath.join(out, 'export', name)}/` |"
        )
    return lines + [""]


def report(out: str, write: bool = True) -> str:
    stats = committed_stats(out)
    if not stats:
        raise files.InputError(f"{out}: no committed stages (no */{SUCCESS}) to report on")
    text = render(out, stats)
    if write:
        from corpus import report_html

        files.write_text(posixpath.join(out, REPORT), text + "\n")
        files.write_text(posixpath.join(out, REPORT_HTML), report_html.render(out, stats, text))
    return text
