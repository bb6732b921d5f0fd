"""The pipeline: ``forge run`` over the stage registry (:mod:`corpus.stages`), with fingerprints that say when a
stage must run again.

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
from typing import Any

from corpus import schema
from corpus.config import Config
from corpus.ids import dumps
from corpus.stage import run_stage
from corpus.stages import ORDER, STAGES, StageDef, stage_output

log = logging.getLogger("corpus")


class PipelineError(ValueError):
    pass


def prepare_stages(config: Config, names: list[str]) -> threading.Thread:
    """Run the ``prepare`` hooks of the stages ``names`` (imports, settings derived on the driver: dedup's LSH
    bands and permutations need datasketch and scipy, ~0.7 s) in a background thread, started before the Spark
    session: the driver's Python is idle while the JVM starts, so the work is off the stages' clock. A hook
    that fails is only logged; the stage then does the work itself and reports any error."""

    def run() -> None:
        for name in names:
            hook = STAGES[name].prepare_hook() if name in STAGES else None
            if hook is None:
                continue
            try:
                hook(config)
            except Exception as err:  # noqa: BLE001 - the stage repeats the work and raises it properly
                log.debug("preparing %s failed: %s", name, err)

    thread = threading.Thread(target=run, name="prepare-stages", daemon=True)
    thread.start()
    return thread


def input_fingerprint(inputs: list[Any], suffixes: tuple[str, ...] | None = None) -> list:
    """Paths, sources and file sizes of ingest inputs (a new or changed file changes the fingerprint)."""
    from corpus.io.files import exists, list_files

    out = []
    for spec in inputs:
        if getattr(spec, "optional", False) and not exists(spec.path):
            out.append([spec.path, spec.source_name, spec.part, "missing"])  # appearing later reruns the stage
            continue
        out.append(
            [spec.path, spec.source_name, spec.part, [[e.path, e.size] for e in list_files(spec.path, suffixes)]]
        )
    return out


# settings that change how a run looks or where it runs, never what it writes: left out of fingerprints, so changing
# them reruns nothing. run.output: a run copied or moved elsewhere (another disk, a bucket) is still committed there.
NOT_OUTPUT = {
    "run": ("output",),
    "spark": (
        "master",
        "progress",
        "progress_seconds",
        "log_level",
        "driver_memory",
        "local_java_options",
        "class_archive",
        "warm_up",
    ),
}


def output_config(config: Config) -> dict:
    """The config as a dict without the settings that cannot change output (:data:`NOT_OUTPUT`)."""
    cfg = config.to_dict()
    for section, keys in NOT_OUTPUT.items():
        for key in keys:
            cfg.get(section, {}).pop(key, None)
    return cfg


def fingerprint(config: Config, stage: StageDef, inputs: list[Any], upstream_prints: list[str]) -> str:
    cfg = output_config(config)
    section = (
        {k: cfg[k] for k in stage.sections}
        if stage.sections
        else {k: v for k, v in cfg.items() if k not in stage.excludes}
    )
    if stage.sources and stage.file_inputs:
        ins = input_fingerprint(inputs)
    elif not stage.sources and upstream_prints:
        ins = []  # upstream stage outputs: their fingerprints say what they hold, wherever the run folder is
    else:
        ins = [i.model_dump(mode="json") if hasattr(i, "model_dump") else str(i) for i in inputs]
    # the document schema version too: data written under an older schema is stale, not reusable
    payload = dumps(
        {
            "stage": stage.name,
            "config": section,
            "inputs": ins,
            "upstream": upstream_prints,
            "seed": config.run.seed,
            "document_schema": schema.document().version,
        }
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def active_stages(config: Config) -> list[str]:
    """Stages this config runs: ingest stages only when they have inputs."""
    names = [
        n
        for n in ORDER
        if (STAGES[n].sources is None or STAGES[n].sources(config))
        and (STAGES[n].enabled is None or STAGES[n].enabled(config))
    ]
    if not any(STAGES[n].sources and STAGES[n].file_inputs for n in names):
        raise PipelineError(
            "the config lists no inputs: set inputs.web, inputs.text, inputs.apis, "
            "inputs.python and/or inputs.trajectories"
        )
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


def is_legacy_run_folder(config: Config) -> bool:
    """A run folder of a version before the marker: no marker, but committed stage outputs forge wrote."""
    from corpus.io import files

    out = config.run.output.rstrip("/") or "."
    return (
        files.get_type(out) == "folder"
        and not files.exists(posixpath.join(out, files.MARKER))
        and any(files.made_by_forge(stage_output(config, n)) for n in ORDER)
    )


def claim_run_folder(config: Config, overwrite_foreign: bool = False) -> None:
    """Make ``run.output`` forge's run folder, or refuse it (:func:`corpus.stage.claim`): a missing or empty folder,
    or one forge marked, is taken; so is a run folder of a version before the marker (it holds committed stage
    outputs). Anything else that holds files is the user's."""
    from corpus.io import files
    from corpus.stage import claim

    out = config.run.output.rstrip("/") or "."
    if not is_legacy_run_folder(config):
        claim(out, "run folder (run.output)", overwrite_foreign)
    files.make_dirs(out)
    if not files.exists(posixpath.join(out, files.MARKER)):
        files.write_marker(out, "run", config.run.name)


def plan(config: Config) -> list[tuple[StageDef, list[Any], str, list[str]]]:
    """(stage, its inputs, its fingerprint, the stages it reads) of every stage this config runs, in order."""
    names = active_stages(config)
    out = []
    prints: dict[str, str] = {}
    for name in names:
        stage = STAGES[name]
        ups = upstream_of(stage, names)
        inputs = stage.sources(config) if stage.sources else [stage_output(config, u) for u in ups]
        prints[name] = fingerprint(config, stage, inputs, [prints[u] for u in ups])
        out.append((stage, inputs, prints[name], ups))
    return out


def state(config: Config, fingerprint_: str, name: str) -> str:
    """``committed`` (a rerun skips it), ``changed`` (committed with another fingerprint) or ``new``."""
    from corpus.stage import committed, read_stats

    output = stage_output(config, name)
    if not committed(output):
        return "new"
    return "committed" if read_stats(output).get("fingerprint") == fingerprint_ else "changed"


def run_pipeline(
    spark,
    config: Config,
    *,
    start: str | None = None,
    only: str | None = None,
    force: bool = False,
    overwrite_foreign: bool = False,
) -> dict[str, dict]:
    """Run the configured stages in order; return their stats by stage name."""
    stages = plan(config)
    names = [s.name for s, *_ in stages]
    for flag, value in (("--from", start), ("--only", only)):
        if value is not None and value not in names:
            raise PipelineError(f"{flag} {value}: not a stage of this run (stages: {', '.join(names)})")
    claim_run_folder(config, overwrite_foreign)
    results: dict[str, dict] = {}
    forcing = force
    for stage, inputs, print_, _ in stages:
        name = stage.name
        if start is not None and name == start:
            forcing = True
        if only is not None and name != only:
            continue
        if start is not None and not forcing:
            continue
        results[name] = run_stage(
            name,
            stage.build,
            spark=spark,
            config=config,
            inputs=inputs,
            output=stage_output(config, name),
            fingerprint=print_,
            force=forcing or only is not None,
            overwrite_foreign=overwrite_foreign,
        )
    return results


def run_single(
    spark, config: Config, name: str, inputs: list[Any], output: str, force: bool, overwrite_foreign: bool = False
) -> dict:
    """One stage on explicit inputs (``forge STAGE --input ... --output ...``)."""
    stage = STAGES[name]
    return run_stage(
        name,
        stage.build,
        spark=spark,
        config=config,
        inputs=inputs,
        output=output,
        fingerprint=fingerprint(config, stage, inputs, []),
        force=force,
        overwrite_foreign=overwrite_foreign,
    )
