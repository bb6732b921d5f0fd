"""The stage registry: every stage of the pipeline, once, with what it reads, which config sections change its
output, and the module that builds it.

Everything else is derived from this list: the pipeline's order and fingerprints (:mod:`corpus.pipeline`), the
CLI's stage subcommands (:mod:`corpus.cli`), the ``jobs/<stage>.py`` entry points (a test checks them), the
report's stage order and the stage table in the docs. Adding a stage is its module (with ``build(ctx)``), its
test, and one ``StageDef`` line here. The registry imports no stage code: a module is imported when its stage
runs, so the report and the CLI can read the list without loading Spark-side code.
"""

from __future__ import annotations

import importlib
import posixpath
from dataclasses import dataclass
from typing import Callable

from corpus.config import AFTER_WRITE, Config


@dataclass(frozen=True)
class StageDef:
    name: str
    help: str  # one line: what goes in and what comes out (the CLI's help, the docs)
    module: str  # the stage's code: a module with ``build(ctx) -> Outcome``
    upstream: tuple[str, ...] = ()
    sources: Callable[[Config], list] | None = None  # ingest stages: their InputSpecs from the config
    sections: tuple[str, ...] = ()  # config sections that change the stage's output; () = the whole config
    excludes: tuple[str, ...] = ()  # with sections=(): sections left out (they change only later stages)
    file_inputs: bool = True  # sources are InputSpecs of files (fingerprinted by listing them)
    enabled: Callable[[Config], bool] | None = None  # a stage the config can switch off (None: always on)
    prepare: str | None = None  # "module:function(config)": driver-side set-up that needs no Spark (prepare_stages)
    guide: tuple[str, ...] = ()  # pages of docs/ that explain the stage in depth (its docs/stages/ page links them)

    def build(self, ctx):
        """Run the stage's code (its module is imported only now: the registry depends on no stage)."""
        return importlib.import_module(self.module).build(ctx)

    def prepare_hook(self) -> Callable[[Config], None] | None:
        if self.prepare is None:
            return None
        module, _, name = self.prepare.partition(":")
        return getattr(importlib.import_module(module), name)


def crawl_active(config: Config) -> bool:
    return bool(config.crawl.seeds or config.crawl.seeds_file)


def archive_path(cfg, output: str) -> str:
    """Where the crawl stage writes its WARC archive (``crawl.archive``, or beside its stage folder): the ingest
    stages read it from there."""
    return cfg.archive or output.rstrip("/") + "-warc"


def crawled(config: Config, flag: bool) -> list:
    """The crawl archive as an ingest input (when the run crawls and ``flag`` routes it to that stage)."""
    from corpus.config import InputSpec

    if not (crawl_active(config) and flag):
        return []
    archive = archive_path(config.crawl, stage_output(config, "crawl"))
    return [InputSpec(path=archive, source=config.crawl.source, part=config.crawl.part)]


# The documents after extraction: classify's (or dedup's, when classify is off) plus extract's pairs. An upstream
# entry lists alternatives separated by "|"; the first whose first stage the run has is taken, with the other
# "+"-joined stages of that alternative that the run has.
AFTER_EXTRACT = "classify+extract|dedup+extract"
FINAL = "redact|decontaminate|" + AFTER_EXTRACT  # the finished documents, whichever stages the run has

STAGES: dict[str, StageDef] = {
    s.name: s
    for s in [
        StageDef(
            "crawl",
            "seed URLs (--input: files with one URL per line) -> WARC.gz files, politely, one task per host",
            "corpus.crawl.stage",
            sources=lambda c: [c.crawl] if crawl_active(c) else [],
            sections=("crawl",),
            file_inputs=False,
            guide=("tool-docs.md",),
        ),
        StageDef(
            "ingest-web",
            "WARC / WARC.gz / WET files and folders of .html files -> documents",
            "corpus.web.ingest",
            upstream=("crawl",),
            sources=lambda c: c.inputs.web + crawled(c, True),
            sections=("ingest-web",),
            guide=("default-run.md",),
        ),
        StageDef(
            "ingest-text",
            "JSONL or Parquet files with a text column -> documents",
            "corpus.text.ingest",
            sources=lambda c: c.inputs.text,
            sections=("ingest-text",),
            guide=("default-run.md",),
        ),
        StageDef(
            "ingest-apis",
            "OpenAPI / Swagger / botocore / discovery / MCP specs, Python source and HTML docs "
            "pages -> tool_doc documents",
            "corpus.apis.ingest",
            upstream=("crawl",),
            sources=lambda c: c.inputs.apis + c.inputs.python + crawled(c, c.ingest_apis.html_pages),
            sections=("ingest-apis",),
            guide=("tool-docs.md", "python-apis.md"),
        ),
        StageDef(
            "ingest-trajectories",
            "function-calling datasets (OpenAI, ShareGPT, xLAM, BFCL) -> verified trajectory documents",
            "corpus.trajectories.ingest",
            sources=lambda c: c.inputs.trajectories,
            sections=("ingest-trajectories",),
            guide=("trajectories.md",),
        ),
        StageDef(
            "synthesize",
            "trajectories executed against ingest-apis operations (moto's AWS mocks, a Python sandbox), state-checked",
            "corpus.trajectories.synthesize",
            upstream=("ingest-apis",),
            sections=("synthesize",),
            enabled=lambda c: c.synthesize.enabled and bool(c.inputs.apis or c.inputs.python),
            guide=("executed-trajectories.md", "trajectories.md"),
        ),
        StageDef(
            "filter",
            "language ID and quality heuristics",
            "corpus.filter.stage",
            upstream=("ingest-web", "ingest-text", "ingest-apis", "ingest-trajectories", "synthesize"),
            sections=("filter",),
            guide=("agent-web.md",),
        ),
        StageDef(
            "dedup",
            "exact and near-duplicate removal (MinHash LSH)",
            "corpus.dedup.stage",
            upstream=("filter",),
            sections=("dedup",),
            prepare="corpus.dedup.stage:prepare_run",
            guide=("dedup.md",),
        ),
        StageDef(
            "classify",
            "train a fastText agent-relevance classifier (or apply one: --model) and score documents",
            "corpus.classify.stage",
            upstream=("dedup",),
            sections=("classify",),
            enabled=lambda c: c.classify.enabled,
            guide=("agent-web.md",),
        ),
        # "a|b": the first of a, b that the run has (classify passes every document through, or is switched off)
        StageDef(
            "extract",
            "instruction-response pairs from agent_web and docs pages (rules, doctests run; an LLM "
            "endpoint if configured)",
            "corpus.extract.stage",
            upstream=("classify|dedup",),
            sections=("extract",),
            enabled=lambda c: c.extract.enabled,
            guide=("agent-web.md", "python-apis.md"),
        ),
        StageDef(
            "decontaminate",
            "remove (or cut) documents sharing n-grams with benchmark test sets (BFCL v4, your own)",
            "corpus.decontaminate.stage",
            upstream=(AFTER_EXTRACT,),
            sections=("decontaminate",),
            enabled=lambda c: c.decontaminate.enabled,
            guide=("decontamination.md",),
        ),
        StageDef(
            "redact",
            "replace PII and secrets by placeholders; count tokens with the trainer's tokenizer",
            "corpus.redact.stage",
            upstream=("decontaminate|" + AFTER_EXTRACT,),
            sections=("redact",),
            enabled=lambda c: c.redact.enabled,
            guide=("decontamination.md",),
        ),
        StageDef(
            "mix",
            "choose documents and copies per output (stage1, stage2) to meet token ratios by part",
            "corpus.mix.stage",
            upstream=(FINAL,),
            sections=("mix",),
            enabled=lambda c: c.mix.enabled,
            guide=("decontamination.md",),
        ),
        # the manifest carries the whole config, but for the sections of the stages after it
        StageDef(
            "write",
            "Parquet shards + manifest.json per output (inputs: documents and, optionally, a mix output)",
            "corpus.write.stage",
            upstream=(FINAL, "mix"),
            excludes=AFTER_WRITE,
            guide=("output.md", "trainers.md"),
        ),
        StageDef(
            "export",
            "token ids for trainers: Megatron .bin/.idx with loss masks, packed rows (input: write's output)",
            "corpus.export.stage",
            upstream=("write",),
            sections=("export",),
            enabled=lambda c: c.export.enabled,
            guide=("trainers.md",),
        ),
    ]
}
ORDER = list(STAGES)


def stage_output(config: Config, name: str) -> str:
    return posixpath.join(config.run.output.rstrip("/"), name)


def _upstream_text(s: StageDef) -> str:
    """The stages ``s`` reads, as Markdown: entries by "; ", an entry's alternatives by "or", joint stages by "+"."""
    return "; ".join(
        " or ".join(" + ".join(f"`{m}`" for m in alt.split("+")) for alt in entry.split("|")) for entry in s.upstream
    )


def registry_markdown() -> str:
    """The registry as a Markdown table (docs/stages.md carries it; ``make docs`` regenerates it). An upstream
    entry's alternatives read "or": the first the run has is taken."""
    lines = ["| # | stage | reads | config sections | switched by | what it does |", "|---:|---|---|---|---|---|"]
    for i, s in enumerate(STAGES.values(), 1):
        reads = _upstream_text(s) or "—"
        if s.sources is not None:
            reads = ("configured inputs" + (f"; {reads}" if s.upstream else "")) if s.file_inputs else "its config"
        sections = ", ".join(f"`{x}`" for x in s.sections) or (
            "the whole config but " + ", ".join(f"`{x}`" for x in s.excludes) if s.excludes else "the whole config"
        )
        switch = (
            "its inputs"
            if s.sources is not None and s.file_inputs
            else "`crawl.seeds`"
            if s.sources is not None
            else f"`{s.name.replace('-', '_')}.enabled`"
            if s.enabled
            else "—"
        )
        lines.append(
            f"| {i} | [`{s.name}`](stages/{s.name}.md) | {reads} | {sections} | {switch} | {s.help.replace('|', '/')} |"
        )
    return "\n".join(lines)


def stage_page(name: str) -> str:
    """docs/stages/<name>.md: the stage's registry entry, how to run it alone, its config section's reference
    and the pages that explain it (``make docs`` writes them; a test fails when one is stale)."""
    from corpus.config import reference_markdown

    s = STAGES[name]
    reads = _upstream_text(s)
    inputs = (
        "the inputs the config lists"
        if s.sources is not None and s.file_inputs
        else "its config"
        if s.sources is not None
        else ""
    )
    lines = [
        f"# `{name}`",
        "",
        s.help[0].upper() + s.help[1:] + ".",
        "",
        f"- Position: stage {ORDER.index(name) + 1} of {len(ORDER)} in `forge run`.",
        f"- Reads: {', '.join(x for x in (inputs, reads) if x) or 'nothing'}"
        + (" (an entry with `or` takes the first of those stages the run has)." if "|" in "".join(s.upstream) else "."),
        "- Reruns when these config sections change: "
        + (
            ", ".join(f"`{x}`" for x in s.sections)
            if s.sections
            else "the whole config" + (" but " + ", ".join(f"`{x}`" for x in s.excludes) if s.excludes else "")
        )
        + ", or when what it reads changes.",
        f"- Alone: `forge {name} --input PATH... --output PATH [--config FILE]`, or `spark-submit jobs/{name}.py ...`.",
        f"- Code: `{s.module.replace('.', '/')}.py`.",
        "",
    ]
    if s.guide:
        lines += ["In depth: " + ", ".join(f"[{g.removesuffix('.md')}](../{g})" for g in s.guide) + ".", ""]
    rows = [r for r in reference_markdown().splitlines()[2:] if r.startswith(f"| `{name}.")]
    if rows:
        lines += [f"## Config: `{name}.*`", "", "| key | default | meaning |", "|---|---|---|", *rows, ""]
    lines += ["All stages: [stages.md](../stages.md).", ""]
    return "\n".join(lines)
