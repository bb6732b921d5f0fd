"""``OUT/report.html``: the run report with plots (matplotlib, rendered to inline SVG: one self-contained file).

Everything comes from the stats each committed stage wrote (counts, reject reasons, seconds, the mix
composition, the histograms ``write`` computed), so the report needs no Spark and reads no corpus data.
"""

from __future__ import annotations

import html
import io

PART_ORDER = ["tool_doc", "trajectory", "agent_web", "instruction", "code", "text"]


def _svg(fig) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg") :]


def _figure(width=7.5, height=3.2, ncols=1):
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams["svg.hashsalt"] = "forge"  # stable element ids: the same stats give the same file
    matplotlib.rcParams["svg.fonttype"] = "none"
    import matplotlib.pyplot as plt

    return plt.subplots(1, ncols, figsize=(width, height))


def stage_counts(stats: list[dict]) -> str:
    import numpy as np

    fig, ax = _figure()
    names = [s["stage"] for s in stats]
    x = np.arange(len(names))
    for i, (key, label) in enumerate((("rows_in", "in"), ("rows_out", "out"), ("rows_rejected", "rejected"))):
        ax.bar(x + (i - 1) * 0.27, [s[key] for s in stats], 0.27, label=label)
    ax.set_xticks(x, names, rotation=30, ha="right")
    ax.set_yscale("symlog")
    ax.set_ylabel("rows")
    ax.legend()
    ax.set_title("Rows by stage")
    return _svg(fig)


def reject_reasons(stats: list[dict], top: int = 20) -> str | None:
    rows = sorted(
        ((f"{s['stage']}: {r}", n) for s in stats for r, n in s["rejects_by_reason"].items()),
        key=lambda kv: (-kv[1], kv[0]),
    )[:top]
    if not rows:
        return None
    fig, ax = _figure(height=0.28 * len(rows) + 1)
    ax.barh([r for r, _ in rows][::-1], [n for _, n in rows][::-1], color="#c0504d")
    ax.set_xscale("log")
    ax.set_xlabel("rows rejected")
    ax.set_title(f"Reject reasons (top {len(rows)})")
    return _svg(fig)


def composition(outputs: dict) -> str | None:
    import numpy as np

    if not outputs:
        return None
    fig, axes = _figure(width=3.8 * len(outputs), height=3.2, ncols=len(outputs))
    axes = np.atleast_1d(axes)
    for ax, (name, o) in zip(axes, outputs.items()):
        comp = o["composition"]
        parts = [p for p in PART_ORDER if p in comp["target"] or p in comp["achieved"]]
        x = np.arange(len(parts))
        ax.bar(x - 0.2, [comp["target"].get(p, 0) for p in parts], 0.4, label="target")
        ax.bar(x + 0.2, [comp["achieved"].get(p, 0) for p in parts], 0.4, label="achieved")
        ax.set_xticks(x, parts, rotation=30, ha="right")
        ax.set_title(f"{name}: token shares of {o['tokens'] / 1e6:.1f}M")
        ax.legend()
    return _svg(fig)


def token_lengths(hist: dict) -> str | None:
    if not hist:
        return None
    fig, ax = _figure()
    for part in [p for p in PART_ORDER if p in hist]:
        buckets = sorted(int(b) for b in hist[part])
        ax.plot(
            [2**b for b in buckets],
            [hist[part][str(b)] if str(b) in hist[part] else hist[part][b] for b in buckets],
            marker="o",
            label=part,
        )
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("tokens per document (log2 bucket)")
    ax.set_ylabel("documents")
    ax.legend()
    ax.set_title("Document length by part")
    return _svg(fig)


def scores(hists: dict) -> str | None:
    present = [(k, v) for k, v in hists.items() if k in ("lang_score", "agent_score") and v]
    if not present:
        return None
    fig, axes = _figure(width=3.8 * len(present), ncols=len(present))
    import numpy as np

    for ax, (name, h) in zip(np.atleast_1d(axes), present):
        bins = sorted(int(b) for b in h)
        ax.bar([b / 20 for b in bins], [h[str(b)] if str(b) in h else h[b] for b in bins], width=0.045, align="edge")
        ax.set_yscale("log")
        ax.set_title(name)
        ax.set_xlabel("score (0.05 bins)")
    return _svg(fig)


def timings(stats: list[dict]) -> str:
    fig, ax = _figure(height=0.3 * len(stats) + 1)
    ax.barh([s["stage"] for s in stats][::-1], [s["seconds"] for s in stats][::-1], color="#4f81bd")
    ax.set_xlabel("seconds")
    ax.set_title(f"Stage times (total {sum(s['seconds'] for s in stats):.0f} s)")
    return _svg(fig)


def pr_split(round_: dict) -> str:
    """The split a round's threshold was chosen on (out of source when it was measured), whose PR curve is shown."""
    return "out_of_source" if (round_.get("out_of_source") or {}).get("pr_curve") else "in_distribution"


def pr_curves(classify: dict) -> str | None:
    """Precision against recall of each round's model, on the split its threshold was chosen on, with the
    chosen threshold marked."""
    curves = []
    for r in classify.get("rounds", []):
        split = pr_split(r)
        m = r.get(split) or {}
        if m.get("pr_curve"):
            curves.append((f"round {r['round']} ({split.replace('_', ' ')})", m))
    if not curves:
        return None
    fig, ax = _figure(width=5.5, height=4)
    for label, m in curves:
        _, precision, recall = zip(*m["pr_curve"])
        line = ax.plot(recall, precision, marker=".", label=f"{label}, AP {m.get('average_precision', 0):.2f}")[0]
        chosen = m.get("chosen") or {}
        if chosen:
            ax.plot([chosen["recall"]], [chosen["precision"]], "o", ms=9, mfc="none", color=line.get_color())
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.legend(loc="lower left", fontsize=8)
    ax.set_title("Agent-relevance classifier: precision and recall (circle: the chosen threshold)")
    return _svg(fig)


def cluster_sizes(dedup: dict) -> str | None:
    sizes = {k: v for k, v in (dedup.get("cluster_sizes") or {}).items() if k != "largest"}
    if not sizes:
        return None
    fig, ax = _figure(height=2.8)
    ax.bar(list(sizes), list(sizes.values()), color="#4f81bd")
    ax.set_yscale("log")
    ax.set_xlabel("documents in the duplicate cluster (kept + removed)")
    ax.set_ylabel("clusters")
    ax.set_title(f"Duplicate clusters by size (largest: {dedup['cluster_sizes'].get('largest', 0):,})")
    return _svg(fig)


def details(markdown_text: str) -> str:
    """The Markdown report as HTML (Python-Markdown with tables), so its tables read as tables. The report quotes
    documents (samples, excerpts): raw HTML in it is shown as text, never passed through."""
    import markdown

    md = markdown.Markdown(extensions=["tables"], output_format="html")
    md.preprocessors.deregister("html_block")
    md.inlinePatterns.deregister("html")
    return md.convert(markdown_text)


def render(out: str, stats: list[dict], markdown: str) -> str:
    by_stage = {s["stage"]: s.get("extra", {}) for s in stats}
    extra = by_stage.get("write", {})
    hists = extra.get("histograms", {})
    sections = [
        ("Rows by stage", stage_counts(stats)),
        ("Reject reasons", reject_reasons(stats)),
        ("Duplicate clusters", cluster_sizes(by_stage.get("dedup", {}))),
        ("Classifier", pr_curves(by_stage.get("classify", {}))),
        ("Composition: requested vs achieved", composition(extra.get("outputs", {}))),
        ("Document lengths", token_lengths(hists.get("tokens_log2", {}))),
        ("Score distributions", scores(hists)),
        ("Timings", timings(stats)),
    ]
    body = "".join(f"<section><h2>{html.escape(title)}</h2>{svg}</section>" for title, svg in sections if svg)
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Run report: "
        + html.escape(out)
        + "</title><style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
        "section{margin-bottom:2em}table{border-collapse:collapse;margin:1em 0}"
        "th,td{border:1px solid #ccc;padding:.2em .5em;font-size:90%}td{vertical-align:top}</style></head><body>"
        f"<h1>Run report: {html.escape(out)}</h1>{body}<section><h2>Details</h2>"
        + details(markdown.split("\n", 1)[1] if markdown.startswith("# ") else markdown)
        + "</section></body></html>\n"
    )
