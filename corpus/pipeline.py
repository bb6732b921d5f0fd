"""The pipeline: which stages exist, what each reads, and ``forge run``.

Each stage's output is ``<run.output>/<stage>``. A stage is rerun when it is not committed, when its
fingerprint changed (its config section, its inputs — for ingest stages the input files' paths and sizes —
or an upstream stage's fingerprint), or when forced. So editing the filter thresholds and running again
reruns ``filter`` and everything after it, and nothing before it.
"""

from __future__ import annotations

import hashlib
import logging
import posixpath
import threading
from dataclasses import dataclass
from typing import Any, Callable

from corpus import schema
from corpus.config import AFTER_WRITE, Config
from corpus.ids import dumps
from corpus.stage import run_stage

log = logging.getLogger("corpus")


def _crawl(ctx):
    from corpus.crawl import stage

    return stage.build(ctx)


def _ingest_web(ctx):
    from corpus.web import ingest

    return ingest.build(ctx)


def _ingest_text(ctx):
    from corpus.text import ingest

    return ingest.build(ctx)


def _ingest_apis(ctx):
    from corpus.apis import stage

    return stage.build(ctx)


def _ingest_trajectories(ctx):
    from corpus.trajectories import stage

    return stage.build(ctx)


def _synthesize(ctx):
    from corpus.trajectories import synthesize

    return synthesize.build(ctx)


def _filter(ctx):
    from corpus.filters import stage

    return stage.build(ctx)


def _dedup(ctx):
    from corpus.dedup import stage

    return stage.build(ctx)


def _prepare_dedup(config: Config) -> None:
    from corpus.dedup import stage

    stage.prepare(config.dedup)


def _classify(ctx):
    from corpus.classify import stage

    return stage.build(ctx)


def _extract(ctx):
    from corpus.extract import stage

    return stage.build(ctx)


def _decontaminate(ctx):
    from corpus.decontam import stage

    return stage.build(ctx)


def _redact(ctx):
    from corpus.redact import stage

    return stage.build(ctx)


def _mix(ctx):
    from corpus.mix import stage

    return stage.build(ctx)


def _write(ctx):
    from corpus.output import shards

    return shards.build(ctx)


def _export(ctx):
    from corpus.export import stage

    return stage.build(ctx)


@dataclass(frozen=True)
class StageDef:
    name: str
    help: str  # one line: what goes in and what comes out (the CLI's help, the docs)
    build: Callable
    upstream: tuple[str, ...] = ()
    sources: Callable[[Config], list] | None = None  # ingest stages: their InputSpecs from the config
    sections: tuple[str, ...] = ()  # config sections that change the stage's output; () = the whole config
    excludes: tuple[str, ...] = ()  # with sections=(): sections left out (they change only later stages)
    file_inputs: bool = True  # sources are InputSpecs of files (fingerprinted by listing them)
    enabled: Callable[[Config], bool] | None = None  # a stage the config can switch off (None: always on)
    prepare: Callable[[Config], None] | None = None  # driver-side set-up that needs no Spark (see prepare_stages)


def crawl_active(config: Config) -> bool:
    return bool(config.crawl.seeds or config.crawl.seeds_file)


def crawled(config: Config, flag: bool) -> list:
    """The crawl archive as an ingest input (when the run crawls and ``flag`` routes it to that stage)."""
    from corpus.config import InputSpec
    from corpus.crawl.stage import archive_path

    if not (crawl_active(config) and flag):
        return []
    archive = archive_path(config.crawl, stage_output(config, "crawl"))
    return [InputSpec(path=archive, source=config.crawl.source, part=config.crawl.part)]


# The documents after extraction: classify's (or dedup's, when classify is off) plus extract's pairs. An upstream
# entry lists alternatives separated by "|"; the first whose first stage the run has is taken, with the other
# "+"-joined stages of that alternative that the run has.
AFTER_EXTRACT = "classify+extract|dedup+extract"
FINAL = "redact|decontaminate|" + AFTER_EXTRACT  # the finished documents, whichever stages the run has

STAGES: dict[str, StageDef] = {s.name: s for s in [
    StageDef("crawl", "seed URLs (--input: files with one URL per line) -> WARC.gz files, politely, one task per host",
             _crawl, sources=lambda c: [c.crawl] if crawl_active(c) else [], sections=("crawl",),
             file_inputs=False),
    StageDef("ingest-web", "WARC / WARC.gz / WET files and folders of .html files -> documents",
             _ingest_web, upstream=("crawl",), sources=lambda c: c.inputs.web + crawled(c, True),
             sections=("ingest-web",)),
    StageDef("ingest-text", "JSONL or Parquet files with a text column -> documents",
             _ingest_text, sources=lambda c: c.inputs.text, sections=("ingest-text",)),
    StageDef("ingest-apis", "OpenAPI / Swagger / botocore / discovery / MCP specs, Python source and HTML docs "
             "pages -> tool_doc documents",
             _ingest_apis, upstream=("crawl",),
             sources=lambda c: c.inputs.apis + c.inputs.python + crawled(c, c.ingest_apis.html_pages),
             sections=("ingest-apis",)),
    StageDef("ingest-trajectories", "function-calling datasets (OpenAI, ShareGPT, xLAM, BFCL) -> verified "
             "trajectory documents",
             _ingest_trajectories, sources=lambda c: c.inputs.trajectories,
             sections=("ingest-trajectories",)),
    StageDef("synthesize", "trajectories executed against ingest-apis operations (moto's AWS mocks, a Python "
             "sandbox), state-checked",
             _synthesize, upstream=("ingest-apis",), sections=("synthesize",),
             enabled=lambda c: c.synthesize.enabled and bool(c.inputs.apis or c.inputs.python)),
    StageDef("filter", "language ID and quality heuristics",
             _filter, upstream=("ingest-web", "ingest-text", "ingest-apis", "ingest-trajectories", "synthesize"),
             sections=("filter",)),
    StageDef("dedup", "exact and near-duplicate removal (MinHash LSH)",
             _dedup, upstream=("filter",), sections=("dedup",), prepare=_prepare_dedup),
    StageDef("classify", "train a fastText agent-relevance classifier (or apply one: --model) and score documents",
             _classify, upstream=("dedup",), sections=("classify",),
             enabled=lambda c: c.classify.enabled),
    # "a|b": the first of a, b that the run has (classify passes every document through, or is switched off)
    StageDef("extract", "instruction-response pairs from agent_web and docs pages (rules, doctests run; an LLM "
             "endpoint if configured)",
             _extract, upstream=("classify|dedup",), sections=("extract",),
             enabled=lambda c: c.extract.enabled),
    StageDef("decontaminate", "remove (or cut) documents sharing n-grams with benchmark test sets (BFCL v4, your own)",
             _decontaminate, upstream=(AFTER_EXTRACT,), sections=("decontaminate",),
             enabled=lambda c: c.decontaminate.enabled),
    StageDef("redact", "replace PII and secrets by placeholders; count tokens with the trainer's tokenizer",
             _redact, upstream=("decontaminate|" + AFTER_EXTRACT,), sections=("redact",),
             enabled=lambda c: c.redact.enabled),
    StageDef("mix", "choose documents and copies per output (stage1, stage2) to meet token ratios by part",
             _mix, upstream=(FINAL,), sections=("mix",), enabled=lambda c: c.mix.enabled),
    # the manifest carries the whole config, but for the sections of the stages after it
    StageDef("write", "Parquet shards + manifest.json per output (inputs: documents and, optionally, a mix "
             "output)",
             _write, upstream=(FINAL, "mix"), excludes=AFTER_WRITE),
    StageDef("export", "token ids for trainers: Megatron .bin/.idx with loss masks, packed rows (input: write's "
             "output)",
             _export, upstream=("write",), sections=("export",), enabled=lambda c: c.export.enabled),
]}
ORDER = list(STAGES)


class PipelineError(ValueError):
    pass


def prepare_stages(config: Config, names: list[str]) -> threading.Thread:
    """Run the ``prepare`` hooks of the stages ``names`` (imports, settings derived on the driver: dedup's LSH
    bands and permutations need datasketch and scipy, ~0.7 s) in a background thread, started before the Spark
    session: the driver's Python is idle while the JVM starts, so the work is off the stages' clock. A hook
    that fails is only logged; the stage then does the work itself and reports any error."""

    def run() -> None:
        for name in names:
            hook = STAGES[name].prepare if name in STAGES else None
            if hook is None:
                continue
            try:
                hook(config)
            except Exception as err:  # noqa: BLE001 - the stage repeats the work and raises it properly
                log.debug("preparing %s failed: %s", name, err)

    thread = threading.Thread(target=run, name="prepare-stages", daemon=True)
    thread.start()
    return thread


def stage_output(config: Config, name: str) -> str:
    return posixpath.join(config.run.output.rstrip("/"), name)


def input_fingerprint(inputs: list[Any], suffixes: tuple[str, ...] | None = None) -> list:
    """Paths, sources and file sizes of ingest inputs (a new or changed file changes the fingerprint)."""
    from corpus.io.files import exists, list_files

    out = []
    for spec in inputs:
        if getattr(spec, "optional", False) and not exists(spec.path):
            out.append([spec.path, spec.source_name, spec.part, "missing"])  # appearing later reruns the stage
            continue
        out.append([spec.path, spec.source_name, spec.part,
                    [[e.path, e.size] for e in list_files(spec.path, suffixes)]])
    return out


def fingerprint(config: Config, stage: StageDef, inputs: list[Any], upstream_prints: list[str]) -> str:
    cfg = config.to_dict()
    # where the run folder is does not change what a stage holds: a run copied or moved elsewhere (another disk, a
    # bucket) is still committed there (the manifest keeps the folder it was written to)
    cfg["run"].pop("output", None)
    section = {k: cfg[k] for k in stage.sections} if stage.sections else \
        {k: v for k, v in cfg.items() if k not in stage.excludes}
    if stage.sources and stage.file_inputs:
        ins = input_fingerprint(inputs)
    elif not stage.sources and upstream_prints:
        ins = []  # upstream stage outputs: their fingerprints say what they hold, wherever the run folder is
    else:
        ins = [i.model_dump(mode="json") if hasattr(i, "model_dump") else str(i) for i in inputs]
    # the document schema version too: data written under an older schema is stale, not reusable
    payload = dumps({"stage": stage.name, "config": section, "inputs": ins, "upstream": upstream_prints,
                     "seed": config.run.seed, "document_schema": schema.document().version})
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def active_stages(config: Config) -> list[str]:
    """Stages this config runs: ingest stages only when they have inputs."""
    names = [n for n in ORDER if (STAGES[n].sources is None or STAGES[n].sources(config))
             and (STAGES[n].enabled is None or STAGES[n].enabled(config))]
    if not any(STAGES[n].sources and STAGES[n].file_inputs for n in names):
        raise PipelineError("the config lists no inputs: set inputs.web, inputs.text, inputs.apis, "
                            "inputs.python and/or inputs.trajectories")
    return names


def upstream_of(stage: StageDef, names: list[str]) -> list[str]:
    """The stages ``stage`` reads, among those the run has: for each entry, the first alternative (``a|b``)
    whose first stage is present, with the other stages of that alternative (``a+c``) that are present."""
    out = []
    for entry in stage.upstream:
        for alternative in entry.split("|"):
            members = alternative.split("+")
            if members[0] in names:
                out += [m for m in members if m in names and m not in out]
                break
    return out


def claim_run_folder(config: Config, overwrite_foreign: bool = False) -> None:
    """Make ``run.output`` forge's run folder, or refuse it (:func:`corpus.stage.claim`): a missing or empty folder,
    or one forge marked, is taken; so is a run folder of a version before the marker (it holds committed stage
    outputs). Anything else that holds files is the user's."""
    from corpus.io import files
    from corpus.stage import claim

    out = config.run.output.rstrip("/") or "."
    legacy = files.get_type(out) == "folder" and not files.exists(posixpath.join(out, files.MARKER)) and any(
        files.made_by_forge(stage_output(config, n)) for n in ORDER)
    if not legacy:
        claim(out, "run folder (run.output)", overwrite_foreign)
    files.make_dirs(out)
    if not files.exists(posixpath.join(out, files.MARKER)):
        files.write_marker(out, "run", config.run.name)


def run_pipeline(spark, config: Config, *, start: str | None = None, only: str | None = None,
                 force: bool = False, overwrite_foreign: bool = False) -> dict[str, dict]:
    """Run the configured stages in order; return their stats by stage name."""
    names = active_stages(config)
    for flag, value in (("--from", start), ("--only", only)):
        if value is not None and value not in names:
            raise PipelineError(f"{flag} {value}: not a stage of this run (stages: {', '.join(names)})")
    claim_run_folder(config, overwrite_foreign)
    results: dict[str, dict] = {}
    prints: dict[str, str] = {}
    forcing = force
    for name in names:
        stage = STAGES[name]
        if start is not None and name == start:
            forcing = True
        ups = upstream_of(stage, names)
        inputs = stage.sources(config) if stage.sources else [stage_output(config, u) for u in ups]
        prints[name] = fingerprint(config, stage, inputs, [prints[u] for u in ups])
        if only is not None and name != only:
            continue
        if start is not None and not forcing:
            continue
        results[name] = run_stage(name, stage.build, spark=spark, config=config, inputs=inputs,
                                  output=stage_output(config, name), fingerprint=prints[name],
                                  force=forcing or only is not None, overwrite_foreign=overwrite_foreign)
    return results


def run_single(spark, config: Config, name: str, inputs: list[Any], output: str, force: bool,
               overwrite_foreign: bool = False) -> dict:
    """One stage on explicit inputs (``forge STAGE --input ... --output ...``)."""
    stage = STAGES[name]
    return run_stage(name, stage.build, spark=spark, config=config, inputs=inputs, output=output,
                     fingerprint=fingerprint(config, stage, inputs, []), force=force,
                     overwrite_foreign=overwrite_foreign)
