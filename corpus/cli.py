"""The ``forge`` command line (also behind ``spark-submit jobs/<stage>.py``)."""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import time

from corpus import __version__

log = logging.getLogger("corpus")


SET_HELP = (
    "override one config setting, the value read as YAML (repeatable), e.g. --set "
    "dedup.minhash.previous_index=s3://corpus/2026-12-04/dedup/index"
)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="forge",
        description="The agent-corpus forge: forge pretraining corpora for tool-using LLM agents with Spark.",
    )
    p.add_argument("--version", action="version", version=f"forge {__version__}")
    p.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser(
        "run",
        help="run the pipeline",
        description="Run every stage the config enables, in order; committed stages with the same fingerprint "
        "are skipped, so a rerun resumes where a run stopped. The config is checked first (inputs exist, every "
        "mixed part has a source, the classifier has examples): --check does only that.",
    )
    run.add_argument("--config", help="YAML config (default: built-in defaults)")
    run.add_argument("--master", help="Spark master URL (overrides spark.master)")
    run.add_argument("--output", help="output folder (overrides run.output)")
    group = run.add_mutually_exclusive_group()
    group.add_argument("--from", dest="start", metavar="STAGE", help="rerun STAGE and every stage after it")
    group.add_argument("--only", metavar="STAGE", help="run STAGE alone (its inputs must be committed)")
    run.add_argument("--force", action="store_true", help="rerun committed stages")
    run.add_argument(
        "--overwrite-foreign",
        action="store_true",
        help="let forge write into an existing, "
        "non-empty output folder it did not make (refused by default; --force does not allow it)",
    )
    run.add_argument("--set", action="append", metavar="KEY=VALUE", help=SET_HELP)
    run.add_argument(
        "--allow-partial",
        action="store_true",
        help="exit 0 even when a mix output missed its targets by more than mix.tolerance (default: exit 3)",
    )
    run.add_argument(
        "--check",
        action="store_true",
        help="check the config and the inputs, print what the run would do and an estimate of its cost in "
        "core-hours, and exit (no Spark; a few seconds)",
    )

    from corpus.stages import STAGES

    for name, stage in STAGES.items():
        sp = sub.add_parser(name, help=stage.help, description=stage.help)
        sp.add_argument(
            "--input",
            nargs="+",
            required=True,
            metavar="PATH",
            help="input files/folders (ingest), seed-URL files (crawl) or datasets (other stages)",
        )
        sp.add_argument("--output", required=True, metavar="PATH", help="the stage's output folder")
        sp.add_argument("--config", help="YAML config for the stage's settings")
        sp.add_argument("--master", help="Spark master URL")
        sp.add_argument("--force", action="store_true", help="rerun even if the output is committed")
        sp.add_argument(
            "--overwrite-foreign",
            action="store_true",
            help="replace an existing, non-empty output folder that forge did not write (refused by default)",
        )
        sp.add_argument("--set", action="append", metavar="KEY=VALUE", help=SET_HELP)
        if name == "classify":
            sp.add_argument(
                "--model",
                help="apply this saved model (model.bin, or a finished run's output or "
                "classify folder) instead of training one",
            )
            sp.add_argument(
                "--threshold",
                type=float,
                help="score at or above which documents become agent_web (default: the threshold saved with the model)",
            )
        if name.startswith("ingest-"):
            sp.add_argument("--source", help="name recorded in each document's `source`")
            default_part = {"ingest-apis": "tool_doc", "ingest-trajectories": "trajectory"}.get(name, "text")
            sp.add_argument(
                "--part", default=default_part, help=f"part the documents start in (default: {default_part})"
            )

    rep = sub.add_parser(
        "report",
        help="print (and write OUT/report.md and OUT/report.html) what a run did",
        description="Print what a run did, from its stats files alone (no Spark): rows in, out and rejected by "
        "reason per stage, the mix composition, warnings; also written as OUT/report.md and OUT/report.html.",
    )
    rep.add_argument("out", help="the run's output folder")

    samples = sub.add_parser(
        "sample-data",
        help="build real sample inputs from installed packages",
        description="Build the default run's inputs from what this machine has installed (no download): docs "
        "pages as WARC, general text, the web pool, the Python standard library as code, OpenAPI specs (npm).",
    )
    samples.add_argument("--output", default="data/samples", help="where to write them (default data/samples)")
    samples.add_argument("--modules", type=int, help="only the first N standard-library modules")
    samples.add_argument("--force", action="store_true", help="rebuild what is already there")

    sc = sub.add_parser(
        "score-calls",
        help="ToolRL's reward for predicted tool calls against references (JSONL)",
        description="Score predicted tool calls against reference calls with ToolRL's reward (format, name, "
        "parameter names and values), one JSONL line per example.",
    )
    sc.add_argument("--input", required=True, help="JSONL: tools, reference, predicted per line")
    sc.add_argument(
        "--output",
        required=True,
        help="JSONL: each input line plus format, name, param_names, param_values, correctness, reward",
    )

    # its own parser (corpus.spark.standalone) reads the rest of the command line, --help included
    sub.add_parser(
        "cluster",
        add_help=False,
        help="start, stop or show a Spark standalone cluster on 127.0.0.1 (up | down | status)",
    )

    # everything after `submit` goes to spark-submit, --help included
    sub.add_parser(
        "submit",
        add_help=False,
        help="spark-submit with this environment's Spark and Python (SPARK_HOME, PYSPARK_PYTHON set for you)",
    )

    cfg = sub.add_parser(
        "config",
        help="validate a config and print it with defaults filled in",
        description="Validate a config (an unknown key or a bad value is an error naming it) and print it with "
        "every default filled in; --reference prints the reference of every setting. `forge run --check` also "
        "checks the inputs and the mix.",
    )
    cfg.add_argument("--config", help="YAML config")
    cfg.add_argument("--reference", action="store_true", help="print the config reference (Markdown)")
    cfg.add_argument("--set", action="append", metavar="KEY=VALUE", help=SET_HELP)
    return p


# exit codes: 0 done; 2 nothing or not all was done (bad config or input, a stage failed: the message says which);
# 3 done but partial (a mix output missed its targets; --allow-partial accepts it); 130 interrupted (Ctrl-C)
ERROR, PARTIAL, INTERRUPTED = 2, 3, 130


# the last line of a worker's traceback when a forge error was raised inside a Spark task
_TASK_ERROR = re.compile(r"^corpus\.[\w.]+\.(?:\w*Error|ForeignOutput|ModelNotFound): (?P<message>.+)$", re.M)


def task_error(err: BaseException) -> str | None:
    """The message of a forge error (``corpus.*Error``) raised inside a Spark task, from the ``PythonException``
    Spark gives the driver; None for anything else."""
    try:
        from pyspark.errors import PythonException
    except ImportError:  # pragma: no cover - pyspark is a core dependency
        return None
    if not isinstance(err, PythonException):
        return None
    found = _TASK_ERROR.findall(str(err))
    return found[-1].strip() if found else None


def submit(args: list[str]) -> int:
    """``forge submit ARGS``: ``spark-submit ARGS`` with the pyspark this forge runs on (``SPARK_HOME``) and its
    Python for the driver and the workers. The venv's own ``bin/spark-submit`` finds Spark with whatever ``python3``
    is first on ``PATH``, which fails unless the venv is activated."""
    import pyspark

    home = os.path.dirname(pyspark.__file__)
    env = {**os.environ, "SPARK_HOME": os.environ.get("SPARK_HOME") or home}
    env.setdefault("PYSPARK_PYTHON", sys.executable)
    env.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    if not args:
        print("usage: forge submit [spark-submit options] jobs/<stage>.py [forge arguments]", file=sys.stderr)
        return ERROR
    os.execve(os.path.join(env["SPARK_HOME"], "bin", "spark-submit"), ["spark-submit", *args], env)
    return 0  # not reached


def partial(results: dict[str, dict]) -> list[str]:
    """What makes a finished run partial: each mix output's parts off their targets by more than mix.tolerance."""
    outputs = results.get("mix", {}).get("extra", {}).get("outputs", {})
    return [
        f"mix output {name}: {p} {m['achieved']:.1%} of the tokens, target {m['target']:.1%}"
        for name, o in outputs.items()
        for p, m in o.get("missed", {}).items()
    ]


def _setup_logging(quiet: bool) -> None:
    logging.basicConfig(
        level=logging.WARNING if quiet else logging.INFO, format="forge: %(message)s", stream=sys.stderr
    )
    logging.getLogger("py4j").setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    from corpus.check import CheckFailed
    from corpus.config import ConfigError, load_config, parse_sets
    from corpus.classify.stage import ClassifyError
    from corpus.extract.llm import LlmError
    from corpus.filter.langid import ModelNotFound
    from corpus.io.files import InputError
    from corpus.pipeline import PipelineError
    from corpus.schema import SchemaError
    from corpus.spark.session import EnvironmentProblem
    from corpus.stage import StageError

    parser = _parser()
    args, rest = parser.parse_known_args(argv)
    if args.command == "submit":
        return submit(
            argv[argv.index("submit") + 1 :] if argv is not None else sys.argv[sys.argv.index("submit") + 1 :]
        )
    if rest and args.command != "cluster":
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    _setup_logging(args.quiet)
    try:
        if args.command == "config":
            if args.reference:
                from corpus.config import reference_markdown

                print(reference_markdown())
                return 0
            import yaml

            print(yaml.safe_dump(load_config(args.config, parse_sets(args.set)).to_dict(), sort_keys=False), end="")
            return 0
        if args.command == "sample-data":
            from corpus import samples

            samples.build(args.output, modules=args.modules, force=args.force)
            return 0
        if args.command == "score-calls":
            from corpus.trajectories.score import score_file

            if not os.path.exists(args.input):
                raise InputError(f"{args.input}: no such file")
            counts = score_file(args.input, args.output)
            log.info("score-calls: %s -> %s", ", ".join(f"{k} {v}" for k, v in sorted(counts.items())), args.output)
            return 0
        if args.command == "cluster":
            from corpus.spark import standalone

            return standalone.main(rest)
        if args.command == "report":
            from corpus.report import report

            print(report(args.out))
            return 0
        return _spark_command(args, load_config, parse_sets(args.set))
    except (
        CheckFailed,
        ConfigError,
        InputError,
        PipelineError,
        StageError,
        SchemaError,
        EnvironmentProblem,
        ModelNotFound,
        ClassifyError,
        LlmError,
    ) as err:
        print(f"forge: error: {err}", file=sys.stderr)
        return ERROR
    except Exception as err:  # noqa: BLE001 - only a forge error raised inside a Spark task is handled here
        message = task_error(err)
        if message is None:
            raise  # a bug: the traceback is what a report needs
        print(f"forge: error: {message}", file=sys.stderr)
        return ERROR
    except KeyboardInterrupt:
        print(
            "\nforge: interrupted. Committed stages are kept and nothing half-written counts as done: run the "
            "same command again to resume from the first stage that did not finish.",
            file=sys.stderr,
        )
        return INTERRUPTED


def _spark_command(args, load_config, overrides: dict) -> int:
    from corpus.config import ConfigError, InputSpec
    from corpus.pipeline import prepare_stages, run_pipeline, run_single
    from corpus.stages import STAGES, stage_output
    from corpus.spark.session import build_session

    if args.command == "run" and args.output:
        overrides.setdefault("run", {})["output"] = args.output
    if args.command == "classify":
        overrides.setdefault("classify", {}).update(
            {k: v for k, v in (("model", args.model), ("threshold", args.threshold)) if v is not None}
        )
    try:
        config = load_config(args.config, overrides)
    except ConfigError as err:
        if args.command != "run":
            raise
        from corpus import check
        from corpus.config import read_config

        missing = check.raw_input_problems(read_config(args.config, overrides)[0])
        if not missing:
            raise
        raise ConfigError(f"{err}\n" + "\n".join(missing)) from None
    # everything that can be known to fail is checked before Spark starts (corpus.check), and a foreign output
    # folder is refused: neither needs a session
    if args.command == "run":
        from corpus import check
        from corpus.pipeline import claim_run_folder

        made = check.check(config, args.overwrite_foreign)
        if args.check:
            from corpus import estimate

            print(check.summary(config, made) + estimate.summary(config))
            return 0
        claim_run_folder(config, args.overwrite_foreign)
    else:
        from corpus import check

        check.stage_inputs(args.command, args.input)
        from corpus.stage import claim

        claim(args.output, f"output of stage {args.command}", args.overwrite_foreign)
    t0 = time.perf_counter()
    prepare_stages(config, list(STAGES) if args.command == "run" else [args.command])  # while the JVM starts
    spark = build_session(config.spark, master=args.master, app_name=f"forge {args.command}")
    if args.command == "run":
        results = run_pipeline(
            spark, config, start=args.start, only=args.only, force=args.force, overwrite_foreign=args.overwrite_foreign
        )
        from corpus.report import report

        text = report(config.run.output)
        if not args.quiet:
            print(text)
        ran = [n for n, s in results.items() if not s.get("skipped")]
        log.info(
            "done in %.1fs (%d stages run, %d skipped)", time.perf_counter() - t0, len(ran), len(results) - len(ran)
        )
        if "write" in results:
            write_dir = stage_output(config, "write")
            outputs = results["write"].get("extra", {}).get("outputs", {})
            for name in outputs:
                log.info("shards and manifest.json: %s/%s/", write_dir, name)
            log.info("dataset card: %s/README.md", write_dir)
        log.info("report: %s/report.md and report.html", config.run.output.rstrip("/"))
        misses = partial(results)
        if misses:
            print(
                "forge: the run finished, but its mix missed targets (the shards are written):\n"
                + "\n".join(f"  - {m}" for m in misses)
                + "\nAdd inputs for those parts, change the ratios, or accept it with --allow-partial.",
                file=sys.stderr,
            )
            if not args.allow_partial:
                return PARTIAL
        return 0
    inputs: list = args.input
    if args.command.startswith("ingest-"):
        from pydantic import ValidationError

        from corpus.config import ConfigError

        try:
            inputs = [InputSpec(path=p, source=args.source, part=args.part) for p in args.input]
        except ValidationError as err:
            raise ConfigError("; ".join(f"--input/--part: {e['msg']}" for e in err.errors())) from None
    stats = run_single(spark, config, args.command, inputs, args.output, args.force, args.overwrite_foreign)
    log.info(
        "%s: %d in, %d out, %d rejected -> %s",
        args.command,
        stats["rows_in"],
        stats["rows_out"],
        stats["rows_rejected"],
        args.output,
    )
    return 0


if __name__ == "__main__":  # python -m corpus.cli
    sys.exit(main())
