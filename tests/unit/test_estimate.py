"""The cost estimate `forge run --check` prints (corpus.estimate): pages counted in real WARC and WET files, the
documents each stage reads, and core-hours from the rates table."""

from __future__ import annotations

import pydoc

import pytest

from corpus import cli, estimate
from corpus.config import parse_config
from corpus.web.warc import write_warc
from tests.bombs import wet_file

MODULES = ["json", "csv", "heapq", "bisect", "textwrap", "string", "shlex", "fnmatch", "glob", "calendar"]


def _pages(tag: str) -> list[tuple[str, bytes, str]]:
    """Real HTML: the standard library's pydoc pages."""
    out = []
    for name in MODULES:
        mod = __import__(name)
        html = pydoc.html.page(name, pydoc.html.document(mod)).encode()
        out.append((f"https://docs.example/{tag}/{name}.html", html, "text/html"))
    return out


def test_count_pages_counts_the_html_responses_and_stops_at_the_sample(tmp_path):
    path = tmp_path / "a.warc.gz"
    write_warc(str(path), _pages("a"))
    size = path.stat().st_size
    pages, read = estimate.count_pages(str(path), size)
    assert (pages, read) == (len(MODULES), size)  # the request records are not pages
    few, read_few = estimate.count_pages(str(path), size, sample_bytes=1)
    assert few == 1 and 0 < read_few < size


def test_web_pages_scales_the_first_file_by_the_input_size(tmp_path):
    warcs = tmp_path / "warcs"
    warcs.mkdir()
    for k in range(3):
        write_warc(str(warcs / f"{k}.warc.gz"), _pages(str(k)))
    wets = tmp_path / "wets"
    wets.mkdir()
    texts = [
        (f"https://example.org/{i}", pydoc.render_doc(__import__(m), renderer=pydoc.plaintext))
        for i, m in enumerate(MODULES)
    ]
    wet_file(wets / "a.warc.wet.gz", texts)
    cfg = parse_config({"inputs": {"web": [str(warcs), str(wets)]}})
    pages, wet, how = estimate.web_pages(cfg)
    assert pages == pytest.approx(3 * len(MODULES), rel=0.25)  # the files differ only in their URLs
    assert wet == pytest.approx(len(MODULES), rel=0.05)
    assert any("3 WARC files" in h for h in how) and any("1 WET files" in h for h in how)


def test_each_stage_reads_what_the_stages_before_it_kept():
    est = estimate.estimate(1_000_000, "resiliparse")
    docs = {stage: d for stage, d, _, _ in est.rows}
    hours = {stage: h for stage, _, h, _ in est.rows}
    keep = {s: k for s, (k, _) in estimate.KEEP.items()}
    assert docs["ingest-web"] == 1_000_000
    assert docs["filter"] == pytest.approx(1_000_000 * keep["ingest-web"])
    assert docs["dedup"] == pytest.approx(docs["filter"] * keep["filter"])
    assert docs["decontaminate"] == docs["classify"] == pytest.approx(docs["dedup"] * keep["dedup"])
    assert docs["extract"] == docs["write"] == pytest.approx(docs["classify"] * keep["classify"])
    assert hours["ingest-web"] == pytest.approx(
        1e6 / estimate.RATES["ingest-web/resiliparse"].docs_per_s_per_core / 3600
    )
    assert est.core_hours == pytest.approx(sum(hours.values()))
    # the slower engine costs more, WET input costs least
    assert (
        estimate.estimate(1e6, "trafilatura").core_hours
        > est.core_hours
        > estimate.estimate(0, wet_records=1e6).core_hours
    )


def test_the_readme_table_is_what_the_model_gives():
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for label, engine, wet in (
        ("WARC, trafilatura", "trafilatura", False),
        ("WARC, Resiliparse", "resiliparse", False),
        ("WET", "trafilatura", True),
    ):
        row = estimate.hundred_billion_tokens(engine, wet)
        line = next(line for line in readme.splitlines() if line.startswith(f"| {label} |"))
        hours = int(re.findall(r"[\d,]+", line.split("|")[3])[0].replace(",", ""))
        assert hours == round(row["core_hours"], -3), (line, row["core_hours"])


def test_forge_run_check_prints_the_estimate(tmp_path, capsys):
    warcs = tmp_path / "warcs"
    warcs.mkdir()
    write_warc(str(warcs / "a.warc.gz"), _pages("a"))
    config = tmp_path / "run.yaml"
    config.write_text(
        f"run: {{output: {tmp_path / 'out'}}}\n"
        f"inputs: {{web: [{{path: {warcs}, part: text}}]}}\n"
        "classify: {enabled: false}\n"
        "mix: {outputs: {web: {ratios: {text: 1.0}}}}\n"
    )
    assert cli.main(["run", "--config", str(config), "--check"]) == 0
    out = capsys.readouterr().out
    assert f"cost estimate (web path, {len(MODULES)} pages)" in out, out
    assert "1 WARC files" in out and "core-hours" in out and "ingest-web" in out
    assert "classify" not in out.split("cost estimate")[1], "a stage switched off costs nothing"


def test_the_rates_table_in_the_docs_is_the_model():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "cost.md").read_text()
    for key, rate in estimate.RATES.items():
        rows = [line for line in doc.splitlines() if line.startswith(f"| {key} |")]
        assert len(rows) == 1, key
        assert float(rows[0].split("|")[2].replace(",", "")) == rate.docs_per_s_per_core, rows[0]
        assert rows[0].split("|")[3].strip() == rate.measured
