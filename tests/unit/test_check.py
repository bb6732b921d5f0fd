"""The checks made before Spark starts (corpus.check, `forge run --check`), the CLI's help, and what fingerprints
leave out."""

from __future__ import annotations

import os

import pytest

from corpus import check, cli
from corpus.config import ConfigError, parse_config


def _warc_folder(tmp_path):
    folder = tmp_path / "warcs"
    folder.mkdir()
    from corpus.web.warc import write_warc

    write_warc(str(folder / "a.warc.gz"), [("https://example.org/", b"<html><body>hi</body></html>", "text/html")])
    return folder


def test_every_problem_is_reported_at_once_with_the_resolved_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("not a WARC")
    cfg = parse_config(
        {
            "run": {"output": str(tmp_path / "out")},
            "inputs": {
                "web": [{"path": "crawl/segments"}, {"path": "notes"}],
                "text": [{"path": "maybe.jsonl", "optional": True}],
            },
        }
    )
    with pytest.raises(check.CheckFailed) as err:
        check.check(cfg)
    text = str(err.value)
    assert f"inputs.web[0].path: {tmp_path}/crawl/segments does not exist (as written: 'crawl/segments')" in text
    assert f"inputs.web[1].path: {tmp_path}/notes holds 1 files but none the stage reads" in text
    assert "maybe.jsonl" not in text, "an optional input may be missing"
    # the default mix wants parts nothing here makes; classify has no positives
    assert "mix.outputs.stage1.ratios.code is 0.32, but nothing in this run makes code documents" in text
    assert "mix.outputs.stage2.ratios.tool_doc" in text
    assert "classify has no positives" in text
    assert text.startswith(f"{len(check.problems(cfg))} problems in the config; nothing was run")
    assert not (tmp_path / "out").exists(), "checking makes nothing"


def test_a_web_only_config_passes_once_its_mix_asks_only_for_what_it_makes(tmp_path):
    folder = _warc_folder(tmp_path)
    cfg = {
        "run": {"output": str(tmp_path / "out")},
        "inputs": {"web": [{"path": str(folder), "part": "text"}]},
        "classify": {"enabled": False},
        "mix": {"outputs": {"web": {"ratios": {"text": 1.0}}}},
    }
    assert check.check(parse_config(cfg)) == {"text": ["inputs.web[0]"]}
    # with classify on and no agent data, it has no positives; its negatives are there
    on = parse_config({**cfg, "classify": {"enabled": True}})
    assert [p.split(":")[0] for p in check.problems(on)] == ["classify has no positives"]
    # an agent_web share needs classify, which needs positives: API specs give them
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "api.json").write_text('{"openapi": "3.0.0", "info": {"title": "t", "version": "1"}, "paths": {}}')
    full = parse_config(
        {
            **cfg,
            "classify": {"enabled": True},
            "inputs": {**cfg["inputs"], "apis": [{"path": str(specs)}]},
            "mix": {"outputs": {"web": {"ratios": {"text": 0.5, "agent_web": 0.25, "tool_doc": 0.25}}}},
        }
    )
    made = check.check(full)
    assert made["agent_web"] == ["classify"] and made["tool_doc"] == ["inputs.apis[0]"]
    assert made["trajectory"] == ["synthesize"] and made["instruction"] == ["extract"]


def test_a_foreign_run_folder_is_one_of_the_problems(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("precious")
    cfg = parse_config({"run": {"output": str(mine)}, "inputs": {"web": [{"path": str(_warc_folder(tmp_path))}]}})
    found = check.problems(cfg)
    assert found[0].startswith("run.output:") and "not written by forge" in found[0]
    assert not any("run.output" in p for p in check.problems(cfg, overwrite_foreign=True))
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]


def test_config_errors_ratios_and_epochs_all_at_once():
    with pytest.raises(ConfigError) as err:
        parse_config(
            {
                "mix": {
                    "outputs": {
                        "a": {"ratios": {"text": 0.6, "code": 0.5}},
                        "b": {"ratios": {"text": 1.0}, "max_epochs": 0},
                    }
                }
            }
        )
    assert "ratios must sum to 1; these sum to 1.1" in str(err.value)
    assert "max_epochs must be at least 1" in str(err.value)


def test_forge_run_check_prints_the_plan_without_spark(tmp_path, capsys, monkeypatch):
    import corpus.spark.session

    def no_spark(*a, **k):
        raise AssertionError("--check starts no Spark")

    monkeypatch.setattr(corpus.spark.session, "build_session", no_spark)
    folder = _warc_folder(tmp_path)
    config = tmp_path / "run.yaml"
    config.write_text(
        f"run: {{output: {tmp_path / 'out'}}}\n"
        f"inputs: {{web: [{{path: {folder}, part: text}}]}}\n"
        "classify: {enabled: false}\n"
        "mix: {outputs: {web: {ratios: {text: 1.0}}}}\n"
    )
    assert cli.main(["run", "--config", str(config), "--check"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"config OK; run folder {tmp_path / 'out'}")
    for line in ("ingest-web           will run", "filter               will run", "text         inputs.web[0]"):
        assert line in out, out
    assert "web          text 100%" in out
    assert not (tmp_path / "out").exists()
    # a problem: exit 2 and the list on stderr
    config.write_text(f"run: {{output: {tmp_path / 'out'}}}\ninputs: {{web: [{{path: {tmp_path}/none}}]}}\n")
    assert cli.main(["run", "--config", str(config), "--check"]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path}/none does not exist" in err and "nothing was run" in err


def test_a_stage_command_names_its_missing_inputs_before_spark(tmp_path, capsys):
    assert cli.main(["filter", "--input", "gone", str(tmp_path), "--output", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert f"forge filter: 1 input not found; nothing was run:\n  - {os.getcwd()}/gone" in err


def test_a_stage_command_takes_package_paths_as_a_config_does(capsys):
    """``--input pkg:botocore/data/sqs`` resolves as ``inputs.apis`` paths do (it raised a raw ArrowInvalid);
    a package or folder that is not installed is named as missing."""
    check.stage_inputs("ingest-apis", ["pkg:botocore/data/sqs", "python:stdlib"])
    with pytest.raises(check.CheckFailed) as err:
        check.stage_inputs("ingest-apis", ["pkg:botocore/no-such-folder", "pkg:no_such_package/data"])
    assert "2 inputs not found" in str(err.value) and "pkg:no_such_package/data" in str(err.value)


def test_every_subcommand_has_help_with_a_description(capsys):
    parser = cli._parser()
    commands = parser._subparsers._group_actions[0].choices
    assert "submit" in commands
    for name in commands:
        if name == "submit":
            continue  # spark-submit's own help, in a process of its own: below
        with pytest.raises(SystemExit) as done:
            cli.main([name, "--help"])
        assert done.value.code == 0, name
        out = capsys.readouterr().out
        assert out.startswith(f"usage: forge {name}"), (name, out[:200])
        description = out.split("\n\n")[1]
        assert len(description.split()) >= 4 and not description.startswith(("options:", "positional")), (
            name,
            description,
        )


def test_settings_that_cannot_change_output_are_not_fingerprinted():
    from corpus.pipeline import fingerprint
    from corpus.stages import STAGES

    base = parse_config({})
    for change in (
        {"spark": {"progress": False}},
        {"spark": {"log_level": "INFO"}},
        {"spark": {"master": "spark://elsewhere:7077"}},
        {"run": {"output": "s3://moved/run"}},
    ):
        for name in ("write", "filter"):
            stage = STAGES[name]
            assert fingerprint(parse_config(change), stage, [], ["u"]) == fingerprint(base, stage, [], ["u"]), change
    assert fingerprint(parse_config({"run": {"seed": 7}}), STAGES["write"], [], ["u"]) != fingerprint(
        base, STAGES["write"], [], ["u"]
    )


def test_forge_submit_finds_spark_without_an_activated_venv(tmp_path):
    """`.venv/bin/spark-submit` alone finds Spark through whatever python3 is on PATH; `forge submit` sets
    SPARK_HOME and the Python itself."""
    import subprocess
    import sys
    from pathlib import Path

    forge = str(Path(sys.executable).parent / "forge")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run([forge, "submit", "--version"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    import pyspark

    assert f"version {pyspark.__version__}" in done.stdout + done.stderr


def test_a_bad_value_and_a_missing_input_are_reported_together(tmp_path, capsys):
    config = tmp_path / "run.yaml"
    config.write_text(
        f"run: {{output: {tmp_path / 'out'}}}\n"
        f"inputs: {{web: [{{path: {tmp_path}/gone}}]}}\n"
        "mix: {outputs: {a: {ratios: {text: 0.6, code: 0.5}}}}\n"
    )
    assert cli.main(["run", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "ratios must sum to 1" in err and f"inputs.web[0].path: {tmp_path}/gone does not exist" in err


def _run_with(monkeypatch, tmp_path, results=None, raises=None):
    """`forge run` on a checked config, the session and the stages replaced (what the CLI makes of the outcome)."""
    import corpus.pipeline
    import corpus.report
    import corpus.spark.session

    def fake_run(*a, **k):
        if raises:
            raise raises
        return results

    monkeypatch.setattr(corpus.spark.session, "build_session", lambda *a, **k: None)
    monkeypatch.setattr(corpus.pipeline, "run_pipeline", fake_run)
    monkeypatch.setattr(corpus.report, "report", lambda out: "report")
    tmp_path.mkdir(parents=True, exist_ok=True)
    config = tmp_path / "run.yaml"
    config.write_text(
        f"run: {{output: {tmp_path / 'out'}}}\n"
        f"inputs: {{web: [{{path: {_warc_folder(tmp_path)}, part: text}}]}}\n"
        "classify: {enabled: false}\n"
        "mix: {outputs: {web: {ratios: {text: 1.0}}}}\n"
    )
    return config


def test_exit_codes_partial_allowed_and_interrupted(monkeypatch, tmp_path, capsys):
    missed = {"mix": {"extra": {"outputs": {"web": {"missed": {"text": {"target": 1.0, "achieved": 0.9}}}}}}}
    config = _run_with(monkeypatch, tmp_path, results=missed)
    assert cli.main(["-q", "run", "--config", str(config)]) == cli.PARTIAL == 3
    err = capsys.readouterr().err
    assert "mix output web: text 90.0% of the tokens, target 100.0%" in err and "--allow-partial" in err
    assert cli.main(["-q", "run", "--config", str(config), "--allow-partial"]) == 0
    assert cli.main(["-q", "run", "--config", str(_run_with(monkeypatch, tmp_path / "ok", results={}))]) == 0
    capsys.readouterr()
    config = _run_with(monkeypatch, tmp_path / "int", raises=KeyboardInterrupt())
    assert cli.main(["-q", "run", "--config", str(config)]) == cli.INTERRUPTED == 130
    assert "run the same command again to resume" in capsys.readouterr().err
