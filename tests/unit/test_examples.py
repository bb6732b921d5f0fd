"""The example configs (configs/examples/) pass `forge run --check` once their inputs exist: each input path is
pointed at a real file of its kind in a temporary folder (an S3 path at a local one), so the test checks what a
user's first hour depends on: the keys are valid, every mixed part has a source, the classifier has examples."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest
import yaml

from corpus import cli

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "configs" / "examples").glob("*.yaml"))


def _fill(kind: str, folder: Path) -> None:
    """A real file of the kind of input ``kind`` reads."""
    folder.mkdir(parents=True)
    if kind == "web":
        from corpus.web.warc import write_warc

        write_warc(
            str(folder / "a.warc.gz"), [("https://example.org/", b"<html><body><p>hi</p></body></html>", "text/html")]
        )
    elif kind == "apis":
        import botocore

        model = next((Path(botocore.__file__).parent / "data" / "sqs").glob("*/service-2.json*"))
        shutil.copy(model, folder / model.name)
    elif kind == "trajectories":
        line = {"messages": [{"role": "user", "content": "hi"}], "tools": []}
        with gzip.open(folder / "t.jsonl.gz", "wt") as f:
            f.write(json.dumps(line) + "\n")
    else:
        (folder / "lib-0.1.tar.gz").write_bytes(b"")  # python: a folder of wheels or sdists (read at run time)


def test_there_are_examples_for_the_first_hour():
    assert {p.name for p in EXAMPLES} >= {
        "common-crawl-warc.yaml",
        "common-crawl-wet.yaml",
        "own-warcs.yaml",
        "own-specs.yaml",
        "own-trajectories.yaml",
    }


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_an_example_config_passes_the_check(example, tmp_path, capsys):
    data = yaml.safe_load(example.read_text())
    assert f"--config configs/examples/{example.name} --check" in example.read_text(), "the header says how to check it"
    data["run"]["output"] = str(tmp_path / "out")
    for kind, specs in data["inputs"].items():
        for i, spec in enumerate(specs):
            if not spec["path"].startswith(("pkg:", "python:")):
                spec["path"] = str(tmp_path / "inputs" / f"{kind}-{i}")
                _fill(kind, Path(spec["path"]))
    config = tmp_path / example.name
    config.write_text(yaml.safe_dump(data))
    code = cli.main(["run", "--config", str(config), "--check"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert captured.out.startswith("config OK") and "will run" in captured.out
