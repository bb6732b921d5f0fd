"""The report's sections from stats alone (corpus.report, corpus.report_html): no Spark, no corpus data."""

from corpus import report, report_html


def test_pr_table_dedup_and_parts_sections():
    curve = [[t / 20, 0.5 + t / 40, 1 - t / 20] for t in range(21)]
    table = report.pr_table(curve)
    assert table[2] == "| 0.1 | 0.550 | 0.900 |" and len(table) == 2 + 9
    rounds = {"rounds": [{"round": 1, "in_distribution": {"pr_curve": curve, "average_precision": 0.8}}]}
    assert report.pr_section(rounds)[0].startswith("### classify: round 1 precision and recall by threshold")
    sizes = {"2": 40, "3-4": 5, "17-32": 1, "largest": 30}
    lines = report.dedup_section({"cluster_sizes": sizes})
    assert lines[0] == "### dedup: duplicate clusters by size (largest: 30 documents)"
    assert "| 3-4 | 5 |" in lines and report.dedup_section({}) == []
    parts = {"text": {"documents": 3, "rows": 6, "epochs": 2.0, "tokens": 600, "unique_tokens": 300}}
    assert "| text | 3 | 6 | 2.00 | 600 | 300 |" in report.parts_section({"stage1": {"parts": parts}})


def test_html_plots_pr_curves_and_clusters_and_renders_details_safely():
    curve = [[t / 20, 0.5 + t / 40, 1 - t / 20] for t in range(21)]
    classify = {
        "rounds": [
            {
                "round": 1,
                "in_distribution": {
                    "pr_curve": curve,
                    "average_precision": 0.8,
                    "chosen": {"precision": 0.9, "recall": 0.5},
                },
            }
        ]
    }
    assert report_html.pr_curves(classify).startswith("<svg") and report_html.pr_curves({}) is None
    assert report_html.cluster_sizes({"cluster_sizes": {"2": 4, "largest": 2}}).startswith("<svg")
    html = report_html.details("| a | b |\n|---|---|\n| <script>x</script> | `<b>` |\n")
    assert "<table>" in html and "<script>" not in html and "&lt;script&gt;" in html
