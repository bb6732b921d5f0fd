"""What can be known to fail before Spark starts: ``forge run --check`` prints it, and every run makes the same
checks first, so a missing input or a mix that cannot be met is reported in seconds, all problems at once,
instead of after the stages before it have run.

The config itself (types, unknown keys, ratios that do not sum to 1, ``max_epochs`` below 1) is validated when
it loads (:func:`corpus.config.load_config`); this module checks what needs the config as a whole and the file
system: every input exists (with the path it resolved to) and holds files the stage can read, every part a mix
output asks for has a stage in this run that makes it, and the classifier has positives and negatives to train
on.
"""

from __future__ import annotations

import os

from corpus.config import Config, InputSpec
from corpus.io import files
from corpus.sections import resolve_package_path


class CheckFailed(ValueError):
    """The run cannot succeed as configured; the message lists every problem found."""


def resolved(path: str) -> str:
    """The path as the run will open it: absolute for a local path (a relative one is relative to the folder
    forge runs in, which is the usual surprise)."""
    if files.is_object_store(path) or "://" in path or path.startswith(("pkg:", "python:")):
        return path
    return os.path.abspath(path)


def suffixes() -> dict[str, tuple[str, ...]]:
    """The files each kind of input is read from: the ingest stages' own lists."""
    from corpus.apis.ingest import SUFFIXES as APIS
    from corpus.text.ingest import SUFFIXES as TEXT
    from corpus.trajectories.ingest import SUFFIXES as TRAJECTORIES
    from corpus.web.warc import HTML_SUFFIXES, WARC_SUFFIXES

    return {"web": WARC_SUFFIXES + HTML_SUFFIXES, "text": TEXT, "apis": APIS, "trajectories": TRAJECTORIES}


def input_problems(config: Config) -> list[str]:
    out = []
    kinds = suffixes()
    for kind in ("web", "text", "apis", "python", "trajectories"):
        for i, spec in enumerate(getattr(config.inputs, kind)):
            out += _spec_problems(f"inputs.{kind}[{i}]", spec, kinds.get(kind))
    if config.crawl.seeds_file and not files.exists(config.crawl.seeds_file):
        out.append(f"crawl.seeds_file: {resolved(config.crawl.seeds_file)} does not exist")
    return out


def _spec_problems(where: str, spec: InputSpec, suffixes: tuple[str, ...] | None) -> list[str]:
    path = spec.path
    if path.startswith("python:"):
        return []  # the running Python's modules (ingest-apis reads them as source)
    try:
        there = files.exists(path)
    except Exception as err:  # noqa: BLE001 - an unreachable store or bad credentials: say so, with the path
        return [f"{where}.path: {resolved(path)} cannot be read: {type(err).__name__}: {err}"]
    if not there:
        if spec.optional:
            return []
        return [f"{where}.path: {resolved(path)} does not exist (as written: {path!r})"]
    if suffixes is None or files.is_object_store(path):
        return []  # listing a bucket prefix can take long; the stage lists it anyway and rejects what it cannot read
    entries = files.list_files(path, None)
    if len(entries) == 1 and entries[0].path == path:
        return []  # a file named directly: the stage decides whether it can read it
    if not any(e.path.lower().endswith(suffixes) for e in entries):
        return [
            f"{where}.path: {resolved(path)} holds {len(entries)} files but none the stage reads "
            f"({', '.join(suffixes)})"
        ]
    return []


def parts_made(config: Config) -> dict[str, list[str]]:
    """Part -> what in this run makes documents of it (input entries and stages), from the config alone."""
    from corpus.stages import crawl_active

    made: dict[str, list[str]] = {}

    def add(part: str, by: str) -> None:
        made.setdefault(part, []).append(by)

    for kind in ("web", "text", "trajectories"):
        for i, spec in enumerate(getattr(config.inputs, kind)):
            add("trajectory" if kind == "trajectories" else spec.part, f"inputs.{kind}[{i}]")
    for kind in ("apis", "python"):
        for i, _ in enumerate(getattr(config.inputs, kind)):
            add("tool_doc", f"inputs.{kind}[{i}]")
    if crawl_active(config):
        add(config.crawl.part, "crawl")
    if config.synthesize.enabled and (config.inputs.apis or config.inputs.python):
        add("trajectory", "synthesize")
    if config.classify.enabled and any(p in made for p in config.classify.apply_parts):
        add("agent_web", "classify")
    if config.extract.enabled and any(p in made for p in config.extract.parts):
        add("instruction", "extract")
    return made


def mix_problems(config: Config, made: dict[str, list[str]]) -> list[str]:
    if not config.mix.enabled:
        return []
    makers = {
        "text": "an input with part text (inputs.text or inputs.web)",
        "agent_web": "classify, from documents of classify.apply_parts",
        "tool_doc": "inputs.apis, inputs.python, or web pages with part tool_doc",
        "trajectory": "inputs.trajectories, or synthesize with inputs.apis / inputs.python",
        "instruction": "extract, from documents of extract.parts",
        "code": "an input with part code",
    }
    out = []
    for name, output in config.mix.outputs.items():
        for part, share in sorted(output.ratios.items()):
            if share > 0 and part not in made:
                out.append(
                    f"mix.outputs.{name}.ratios.{part} is {share:g}, but nothing in this run makes {part} documents "
                    f"(it needs {makers[part]}); give it a source or set its ratio to 0 and rebalance the others"
                )
    return out


def classify_problems(config: Config, made: dict[str, list[str]]) -> list[str]:
    c = config.classify
    if not c.enabled:
        return []
    out = []
    sources = {
        s.source_name
        for kind in ("web", "text", "apis", "python", "trajectories")
        for s in getattr(config.inputs, kind)
    }
    positives = [p for p in c.positive_parts if p in made and p != "agent_web"]
    if not (positives or c.seed_domains or c.seed_urls or set(c.positive_sources) & sources):
        out.append(
            f"classify has no positives: nothing in this run makes {' or '.join(c.positive_parts)} documents "
            "(classify.positive_parts) and no classify.seed_domains / seed_urls / positive_sources are set; "
            "add API specs or docs pages, or set classify.enabled: false"
        )
    if not any(p in made for p in c.negative_parts):
        out.append(
            f"classify has no negatives: nothing in this run makes {' or '.join(c.negative_parts)} documents "
            "(classify.negative_parts: general text to train against); add general text, or set "
            "classify.enabled: false"
        )
    return out


def run_folder_problems(config: Config, overwrite_foreign: bool = False) -> list[str]:
    """The run folder must be forge's (or new): the same test as :func:`corpus.pipeline.claim_run_folder`,
    without making or marking anything."""
    from corpus.pipeline import is_legacy_run_folder
    from corpus.stage import ForeignOutput, claim

    out = config.run.output.rstrip("/") or "."
    if is_legacy_run_folder(config):
        return []
    try:
        claim(out, "run folder (run.output)", overwrite_foreign)
    except ForeignOutput as err:
        return [f"run.output: {err}"]
    return []


def problems(config: Config, overwrite_foreign: bool = False) -> list[str]:
    """Every problem found, in config order; [] when the run can start."""
    made = parts_made(config)
    return (
        run_folder_problems(config, overwrite_foreign)
        + input_problems(config)
        + mix_problems(config, made)
        + classify_problems(config, made)
    )


def check(config: Config, overwrite_foreign: bool = False) -> dict[str, list[str]]:
    """Raise :class:`CheckFailed` listing every problem; else return what makes each part (for the summary)."""
    found = problems(config, overwrite_foreign)
    if found:
        raise CheckFailed(
            f"{len(found)} problem{'s' if len(found) > 1 else ''} in the config; nothing was run:\n"
            + "\n".join(f"  - {p}" for p in found)
        )
    return parts_made(config)


def raw_input_problems(data: dict) -> list[str]:
    """The input paths that do not exist, from a config that failed to validate (``data``: the parsed YAML with
    the overrides), so that a bad value and a missing input are reported together."""
    from corpus.sections import resolve_package_path

    out = []
    inputs = data.get("inputs") if isinstance(data, dict) else None
    for kind, items in (inputs or {}).items() if isinstance(inputs, dict) else []:
        for i, item in enumerate(items if isinstance(items, list) else []):
            spec = item if isinstance(item, dict) else {"path": item}
            path = spec.get("path")
            if not isinstance(path, str) or path.startswith("python:") or spec.get("optional"):
                continue
            try:
                there = files.exists(resolve_package_path(path))
            except Exception:  # noqa: BLE001 - the validation error already names a path it cannot use
                continue
            if not there:
                out.append(f"inputs.{kind}[{i}].path: {resolved(path)} does not exist (as written: {path!r})")
    return out


def stage_inputs(name: str, paths: list[str]) -> None:
    """``forge <stage> --input ...``: every path exists (an ingest stage's files, a later stage's datasets)."""
    missing = []
    for p in paths:
        try:  # pkg:NAME/sub and python:stdlib name folders of installed packages, as in a config
            if not files.exists(resolve_package_path(p)):
                missing.append(p)
        except ValueError:  # a package that is not installed, or a folder it does not have
            missing.append(p)
    if missing:
        raise CheckFailed(
            f"forge {name}: {len(missing)} input{'s' if len(missing) > 1 else ''} not found; nothing was run:\n"
            + "\n".join(f"  - {resolved(p)}" for p in missing)
        )


def summary(config: Config, made: dict[str, list[str]]) -> str:
    """What ``forge run`` would do with this config: each stage (run, or skipped as committed) and where each part's
    documents come from."""
    from corpus.pipeline import plan, state

    lines = [f"config OK; run folder {resolved(config.run.output)}", "", "stages, in order:"]
    says = {
        "new": "will run",
        "changed": "will run again (config or inputs changed)",
        "committed": "committed: skipped",
    }
    for stage, _, print_, ups in plan(config):
        reads = f" (reads {', '.join(ups)})" if ups else ""
        lines.append(f"  {stage.name:<20} {says[state(config, print_, stage.name)]}{reads}")
    lines += ["", "parts and what makes them:"]
    lines += [f"  {part:<12} {', '.join(by)}" for part, by in sorted(made.items())]
    if config.mix.enabled:
        lines += ["", "mix outputs (target token shares):"]
        for name, output in config.mix.outputs.items():
            lines.append(f"  {name:<12} " + ", ".join(f"{p} {v:.0%}" for p, v in output.shares().items()))
    return "\n".join(lines)
