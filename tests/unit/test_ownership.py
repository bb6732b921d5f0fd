"""Nothing a user owns is deleted or replaced: output folders forge did not write are refused, on local paths and
S3 prefixes, before Spark starts; ``--force`` does not override this, ``--overwrite-foreign`` does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from corpus import cli
from corpus.config import parse_config
from corpus.io import files
from corpus.pipeline import claim_run_folder
from corpus.stage import ForeignOutput, claim


def _user_folder(tmp_path: Path) -> Path:
    d = tmp_path / "mine"
    d.mkdir()
    (d / "notes.txt").write_text("precious")
    return d


def test_claim_takes_missing_empty_and_forge_folders(tmp_path):
    claim(str(tmp_path / "new"), "output")
    (tmp_path / "empty").mkdir()
    claim(str(tmp_path / "empty"), "output")
    made = tmp_path / "made"
    made.mkdir()
    (made / "data").mkdir()
    files.write_marker(str(made), "stage", "filter")
    claim(str(made), "output")


def test_claim_accepts_outputs_of_versions_before_the_marker(tmp_path):
    old = tmp_path / "old"
    old.mkdir()
    (old / "_stats.json").write_text(json.dumps({"producer": "corpus 0.1.0", "stage": "filter"}))
    claim(str(old), "output")


def test_claim_refuses_a_foreign_folder_and_a_file(tmp_path):
    mine = _user_folder(tmp_path)
    with pytest.raises(ForeignOutput, match="not written by forge") as err:
        claim(str(mine), "output of stage ingest-text")
    assert str(mine) in str(err.value) and "--overwrite-foreign" in str(err.value)
    claim(str(mine), "output", overwrite_foreign=True)  # explicitly allowed
    a_file = tmp_path / "a.txt"
    a_file.write_text("x")
    with pytest.raises(ForeignOutput, match="is an existing file"):
        claim(str(a_file), "output", overwrite_foreign=True)
    # a stats file that is not forge's does not make a folder forge's
    (mine / "_stats.json").write_text('{"producer": "someone else"}')
    with pytest.raises(ForeignOutput):
        claim(str(mine), "output")


@pytest.mark.parametrize("extra", [[], ["--force"]])
def test_stage_command_refuses_foreign_output_before_spark(tmp_path, extra, capsys):
    mine = _user_folder(tmp_path)
    src = tmp_path / "in.jsonl"
    src.write_text('{"text": "hello world"}\n')
    code = cli.main(["ingest-text", "--input", str(src), "--output", str(mine), *extra])
    assert code == 2
    assert "not written by forge" in capsys.readouterr().err
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]
    assert (mine / "notes.txt").read_text() == "precious"


def test_run_folder_claim(tmp_path, capsys):
    mine = _user_folder(tmp_path)
    cfg = parse_config({"run": {"output": str(mine)}, "inputs": {"text": [str(tmp_path)]}})
    with pytest.raises(ForeignOutput, match="run folder"):
        claim_run_folder(cfg)
    assert cli.main(["run", "--output", str(mine), "--set", f"inputs.text=[{tmp_path}]", "--force"]) == 2
    err = capsys.readouterr().err
    assert "run.output:" in err and "not written by forge" in err
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]
    # a new folder is made forge's; a folder of an older run (committed stages, no marker) is taken
    fresh = parse_config({"run": {"output": str(tmp_path / "run")}})
    claim_run_folder(fresh)
    assert files.made_by_forge(str(tmp_path / "run"))
    legacy = tmp_path / "legacy"
    (legacy / "filter").mkdir(parents=True)
    (legacy / "filter" / "_stats.json").write_text('{"producer": "corpus 0.1.0"}')
    claim_run_folder(parse_config({"run": {"output": str(legacy)}}))
    assert (legacy / files.MARKER).exists()


def test_stale_temporary_folders_only_forge_ones(tmp_path):
    final = tmp_path / "filter"
    theirs = tmp_path / "_tmp-filter-mine"
    theirs.mkdir()
    (theirs / "keep.txt").write_text("x")
    ours = tmp_path / "_tmp-filter-0123456789ab"
    ours.mkdir()
    files.write_marker(str(ours), "stage", "filter")
    empty = tmp_path / "_tmp-filter-abcdefabcdef"
    empty.mkdir()
    assert files.temporary_siblings(str(final)) == sorted([str(ours), str(empty)])


def test_sample_data_refuses_a_foreign_folder(tmp_path):
    from corpus import samples

    mine = _user_folder(tmp_path)
    with pytest.raises(ForeignOutput):
        samples.build(str(mine), modules=1, force=True)
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]


def test_s3_prefix_claim(s3_server):
    s3_server.client().put_object(Bucket="forge", Key="users/mine/notes.txt", Body=b"precious")
    with pytest.raises(ForeignOutput, match="not written by forge"):
        claim("s3://forge/users/mine", "output")
    claim("s3://forge/users/nothing-here", "output")
    files.write_marker("s3://forge/users/ours", "stage", "filter")
    files.write_text("s3://forge/users/ours/data/x.parquet", "x")
    claim("s3://forge/users/ours", "output")
    assert files.is_empty("s3://forge/users/nothing-here")
    assert not files.is_empty("s3://forge/users/mine")
