"""Machine paths never reach the corpus: scrub_paths, display_path and relative_name on this machine's roots."""

from __future__ import annotations

import os
import sys
import sysconfig

from corpus.config import load_config, resolve_package_path
from corpus.text.paths import display_path, relative_name, scrub_paths

SITE = sysconfig.get_paths()["purelib"]
STDLIB = sysconfig.get_paths()["stdlib"]


def test_install_paths_become_package_relative():
    assert scrub_paths(f'File "{SITE}/requests/api.py", line 3') == 'File "requests/api.py", line 3'
    assert scrub_paths(f"<module 'json' from '{STDLIB}/json/__init__.py'>") == "<module 'json' from 'json/__init__.py'>"
    # a root on its own, as pydoc shows sys.base_prefix (also HTML-escaped)
    assert sys.base_prefix not in scrub_paths(f"base_prefix = '{sys.base_prefix}'")
    assert sys.base_prefix not in scrub_paths(f"BASE_PREFIX = &#x27;{sys.base_prefix}&#x27;<br>")
    # other machines' paths quoted in documentation lose the install prefix too; other paths stay
    assert scrub_paths(r"C:\Python310\lib\site-packages\regex\regex.py") == r"regex\regex.py"
    assert scrub_paths("/etc/hosts and /usr/bin/env") == "/etc/hosts and /usr/bin/env"


def test_config_dumps_portable_input_paths():
    cfg = load_config("configs/default.yaml")
    dumped = cfg.to_dict()["inputs"]
    assert [i["path"] for i in dumped["apis"]][:2] == [
        "pkg:botocore/data",
        "pkg:googleapiclient/discovery_cache/documents",
    ]
    assert [i["path"] for i in dumped["python"]] == ["python:stdlib", "python:site-packages"]
    assert cfg.inputs.python[1].path == SITE  # resolved for reading
    assert all(sys.prefix not in str(v) and sys.base_prefix not in str(v) for v in dumped.values())
    assert display_path(resolve_package_path("pkg:botocore/data")) == "pkg:botocore/data"
    assert display_path("/data/specs") == "/data/specs" and display_path("s3://b/k") == "s3://b/k"


def test_spec_files_are_named_relative_to_their_input(tmp_path):
    boto = resolve_package_path("pkg:botocore/data")
    assert (
        relative_name(os.path.join(boto, "sqs", "2012-11-05", "service-2.json.gz"), boto)
        == "botocore/data/sqs/2012-11-05/service-2.json.gz"
    )
    (tmp_path / "specs" / "a").mkdir(parents=True)
    assert relative_name(str(tmp_path / "specs" / "a" / "x.yaml"), str(tmp_path / "specs")) == "specs/a/x.yaml"
    assert relative_name("s3://bucket/specs/x.yaml", "s3://bucket/specs") == "s3://bucket/specs/x.yaml"
