"""Python source as tool docs (corpus.apis.pysource), without Spark: the real standard library and installed
distributions, and packages built at test time as a wheel and an sdist, with every kind of bad archive."""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import pkgutil
import io
import json
import os
import tarfile
import zipfile
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pytest

from corpus import schema
from corpus.apis import pysource
from corpus.apis.specs import SpecError
from corpus.apis.ingest import ingest_batch, tool_rows
from corpus.config import load_config, resolve_package_path
from corpus.spark.envelope import split
from corpus.web.ingest import TASK_SCHEMA

STDLIB = resolve_package_path("python:stdlib")
SITE = resolve_package_path("python:site-packages")
MB = 1 << 20


def _ops(path: str, counts: Counter | None = None, **kw) -> dict[str, pysource.Operation]:
    counts = Counter() if counts is None else counts
    return {
        o.operation_id: o
        for o in pysource.unit_operations(path, counts, kw.pop("max_file", 2 * MB), kw.pop("max_unit", 256 * MB), **kw)
    }


def _dist_info(name: str) -> str:
    dist = importlib.metadata.distribution(name)
    return str(Path(dist._path))  # the installed *.dist-info folder


def test_stdlib_json_signature_kinds_defaults_and_reexports():
    ops = _ops(os.path.join(STDLIB, "json"))
    dumps = ops["json.dumps"]
    assert dumps.kind == "function" and dumps.spec_format == "python" and dumps.provider == "python"
    assert dumps.signature.startswith("json.dumps(obj, *, skipkeys=False, ensure_ascii=True")
    params = {p.name: p for p in dumps.parameters}
    assert params["obj"].kind == "positional_or_keyword" and params["obj"].required
    assert params["skipkeys"].kind == "keyword_only" and params["skipkeys"].default is False
    assert params["kw"].kind == "var_keyword" and not params["kw"].required
    fn = dumps.tool_schema()["function"]
    assert fn["parameters"]["required"] == ["obj"]
    assert fn["parameters"]["properties"]["skipkeys"] == {"type": "boolean", "default": False}
    assert dumps.description.startswith("Serialize `obj` to a JSON formatted `str`.")  # ``rst`` made plain
    # JSONDecoder is defined in json.decoder and re-exported by json: one record, under the shorter name
    assert "json.JSONDecoder" in ops and "json.decoder.JSONDecoder" not in ops
    assert "Also exported as `json.decoder.JSONDecoder`" in ops["json.JSONDecoder"].description
    assert ops["json.JSONDecoder"].kind == "class" and ops["json.JSONDecoder.decode"].kind == "method"
    assert ops["json.JSONDecoder.decode"].signature == "json.JSONDecoder.decode(s, _w=WHITESPACE.match)"
    assert not any(name.split(".")[-1].startswith("_") for name in ops)
    assert dumps.spec_file == "python3.11/json/__init__.py" and dumps.licence == "PSF-2.0"


def test_installed_distribution_requests_names_version_licence_and_no_machine_paths():
    counts = Counter()
    ops = _ops(_dist_info("requests"), counts)
    version = importlib.metadata.version("requests")
    get = ops["requests.get"]  # defined in requests.api, re-exported by requests
    assert get.provider == "requests" and get.version == version and get.licence == "Apache-2.0"
    assert get.spec_file == f"requests-{version}/requests/api.py"
    params = {p.name: p for p in get.parameters}
    assert params["url"].description == "URL for the new `Request` object."  # Sphinx :param:, role made plain
    assert params["params"].required is False
    assert "Returns (requests.Response)" in get.description or "Returns" in get.description
    for op in ops.values():
        assert SITE not in op.markdown() and SITE not in json.dumps(op.record())
    assert counts["python_units"] == 1 and counts["python:function"] >= 10
    assert counts["python_private_skipped"] > 0


def test_numpy_style_types_become_json_schema():
    ops = _ops(_dist_info("numpy"))
    eigh = ops["numpy.linalg.eigh"]
    props = eigh.tool_schema()["function"]["parameters"]["properties"]
    assert props["UPLO"]["enum"] == ["L", "U"] and props["UPLO"]["default"] == "L"
    assert eigh.description.startswith(
        "Return the eigenvalues and eigenvectors of a complex Hermitian (conjugate symmetric)"
    )
    assert eigh.examples and eigh.examples[0]["doctest"].startswith(">>> import numpy as np")


@pytest.mark.parametrize(
    "text,expected",
    [
        ("int", {"type": "integer"}),
        ("int, optional", {"type": "integer"}),
        ("str or None", {"type": ["string", "null"]}),
        ("list of str", {"type": "array", "items": {"type": "string"}}),
        ("bool, default True", {"type": "boolean"}),
        ("Optional[int]", {"type": ["integer", "null"]}),
        ("{'a', 'b'}", {"enum": ["a", "b"]}),
        ("callable", {}),
    ],
)
def test_docstring_types(text, expected):
    assert pysource.docstring_type_schema(text) == expected


# ------------------------------------------------------------------------------------ packages built here

IMPL = '''
"""The implementation."""
from typing import Literal, Optional


def helper(names: list[str], limit: Optional[int] = None, mode: Literal["fast", "exact"] = "fast") -> int:
    """Count the names.

    Args:
        names: The names to count.
        limit: Stop counting here.
        mode: How to count.

    Returns:
        How many names there are.

    Count three names:

    >>> helper(["a", "b", "c"])
    3
    """
    return len(names[:limit])


def _private(x):
    """Not public."""


def undocumented(a, b=2):
    return a + b


class Counter:
    """A counter of things.

    :param start: where counting starts
    :type start: int
    """

    def __init__(self, start=0):
        self.n = start

    def add(self, k: int = 1) -> int:
        """Add ``k`` and return the new count."""
        self.n += k
        return self.n

    @property
    def value(self):
        """A property: not callable, no record."""
        return self.n
'''
INIT = (
    '"""Toy package."""\nfrom ._impl import helper, Counter, undocumented\n\n'
    '__all__ = ["helper", "Counter", "undocumented"]\n'
)
PY2 = 'print "hello"\n'
TEST = 'def test_it():\n    """A test, not an API."""\n'
METADATA = "Metadata-Version: 2.1\nName: Toy_Pkg\nVersion: 1.2.0\nLicense-Expression: MIT\n\nA toy.\n"


def _wheel(path: Path, extra: dict[str, bytes] | None = None) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("toy/__init__.py", INIT)
        zf.writestr("toy/_impl.py", IMPL)
        zf.writestr("toy/legacy.py", PY2)
        zf.writestr("toy/tests/test_toy.py", TEST)
        zf.writestr("toy_pkg-1.2.0.dist-info/METADATA", METADATA)
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return path


def _sdist(path: Path) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for name, text in [
            ("PKG-INFO", METADATA),
            ("src/toy/__init__.py", INIT),
            ("src/toy/_impl.py", IMPL),
            ("src/toy/legacy.py", PY2),
            ("tests/test_toy.py", TEST),
            ("setup.py", "import x\n"),
        ]:
            data = text.encode()
            info = tarfile.TarInfo(f"toy_pkg-1.2.0/{name}")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def test_wheel_and_sdist_give_the_same_public_api(tmp_path):
    wc, sc = Counter(), Counter()
    wheel = _ops(str(_wheel(tmp_path / "toy_pkg-1.2.0-py3-none-any.whl")), wc)
    sdist = _ops(str(_sdist(tmp_path / "toy_pkg-1.2.0.tar.gz")), sc)
    assert sorted(wheel) == sorted(sdist) == ["toy.Counter", "toy.Counter.add", "toy.helper"]
    helper = wheel["toy.helper"]
    assert (helper.provider, helper.version, helper.licence) == ("toy-pkg", "1.2.0", "MIT")
    assert helper.spec_file == "toy-pkg-1.2.0/toy/_impl.py" and sdist["toy.helper"].spec_file == helper.spec_file
    props = helper.tool_schema()["function"]["parameters"]
    assert props["properties"]["names"] == {
        "type": "array",
        "items": {"type": "string"},
        "description": "The names to count.",
    }
    assert props["properties"]["limit"]["type"] == ["integer", "null"]
    assert props["properties"]["mode"]["enum"] == ["fast", "exact"] and props["required"] == ["names"]
    assert helper.examples == [
        {
            "prose": "Count three names:",
            "doctest": '>>> helper(["a", "b", "c"])\n3',
            "code": 'helper(["a", "b", "c"])\n',
            "output": ["3\n"],
        }
    ]
    assert "Returns: How many names there are." in helper.description
    counter = wheel["toy.Counter"]
    assert (
        counter.signature == "class toy.Counter(start=0)"
        and counter.parameters[0].description == "where counting starts"
    )
    # undocumented is public (re-exported) but has no docstring; _private is private; legacy.py is Python 2;
    # the tests folder is not an API
    for c in (wc, sc):
        assert c["python_undocumented_skipped:function"] == 1 and c["python_modules_unparsed"] == 1
        assert c["python_private_skipped"] >= 1 and c["python_files"] == 3
    with_undocumented = _ops(str(tmp_path / "toy_pkg-1.2.0-py3-none-any.whl"), undocumented=True)
    assert with_undocumented["toy.undocumented"].signature == "toy.undocumented(a, b=2)"


def test_bad_archives_are_named_and_memory_stays_bounded(tmp_path, monkeypatch):
    broken = tmp_path / "broken-1.0-py3-none-any.whl"
    broken.write_bytes(b"PK\x03\x04 not a zip at all")
    with pytest.raises(SpecError) as err:
        _ops(str(broken))
    assert err.value.reason == "bad_archive" and str(broken) in str(err.value)
    # 66 MB of one repeated line compresses to ~64 KB: the declared size is checked before anything is read
    bomb = _wheel(tmp_path / "bomb-1.0-py3-none-any.whl", {"toy/big.py": b"x = 1\n" * (11 * MB)})
    counts = Counter()
    assert sorted(_ops(str(bomb), counts, max_file=2 * MB)) == ["toy.Counter", "toy.Counter.add", "toy.helper"]
    with pytest.raises(SpecError) as err:
        _ops(str(bomb), max_file=128 * MB, max_unit=8 * MB)
    assert err.value.reason == "too_large"
    monkeypatch.setattr(pysource, "MAX_MEMBERS", 3)
    with pytest.raises(SpecError) as err:
        _ops(str(_sdist(tmp_path / "many-1.0.tar.gz")))
    assert err.value.reason == "too_large"


def test_stage_batch_function_writes_typed_tools_and_rejects(tmp_path):
    good = _wheel(tmp_path / "toy_pkg-1.2.0-py3-none-any.whl")
    bad = tmp_path / "bad-1.0.tar.gz"
    bad.write_bytes(b"\x1f\x8b\x08\x00 truncated")
    pieces = [
        {
            "path": str(p),
            "size": p.stat().st_size,
            "source": "wheels",
            "part": "tool_doc",
            "start": 0,
            "end": p.stat().st_size,
            "kind": "python",
        }
        for p in (good, bad)
    ]
    out = list(
        ingest_batch(
            [pa.RecordBatch.from_pylist([{"task": 0, "pieces": pieces}], schema=TASK_SCHEMA)], load_config().ingest_apis
        )
    )
    docs, rejects, counts = split(out)
    table = pa.Table.from_batches(out)
    side = table.filter(pa.compute.equal(table["_kind"], "tool")).select(["_detail"])
    tools = pa.Table.from_batches(list(tool_rows(side.to_batches())), schema=schema.load("tool_doc").arrow)
    schema.validate_table(tools, schema.load("tool_doc"), "tools")
    assert sorted(tools["operation_id"].to_pylist()) == ["toy.Counter", "toy.Counter.add", "toy.helper"]
    assert sorted(docs["id"].to_pylist()) == sorted(tools["id"].to_pylist())
    assert [(r["reason"], r["location"]) for r in rejects.to_pylist()] == [("bad_archive", str(bad))]
    assert counts["records_in"] == 4 and counts["operations:python"] == 3
    docs = docs.to_pylist()
    text = next(d["text"] for d in docs if "toy.helper" in d["text"])
    assert text.startswith("# toy.helper (toy-pkg 1.2.0)\n\n```python\ntoy.helper(names: list[str], limit")
    assert '```pycon\n>>> helper(["a", "b", "c"])\n3\n```' in text
    meta = json.loads(next(d["metadata"] for d in docs if "toy.helper" in d["text"]))
    assert meta["licence"] == "MIT" and meta["spec_file"] == "toy-pkg-1.2.0/toy/_impl.py"


# ------------------------------------------------------------------------------------ an independent count


def _runtime_keys(pkg):
    """Independent count: import the package and every public submodule, collect public, documented functions,
    classes and methods defined in the package, keyed (module, qualname)."""
    root = importlib.import_module(pkg)
    mods = [root]
    if hasattr(root, "__path__"):
        for info in pkgutil.walk_packages(root.__path__, pkg + "."):
            parts = info.name.split(".")
            if any(p.startswith("_") or p in pysource.SKIP_PARTS for p in parts):
                continue
            try:
                mods.append(importlib.import_module(info.name))
            except Exception:
                pass
    keys = set()
    for m in mods:
        names = getattr(m, "__all__", None)
        names = list(names) if names is not None else [n for n in vars(m) if not n.startswith("_")]
        for n in names:
            obj = getattr(m, n, None)
            if not (inspect.isfunction(obj) or inspect.isclass(obj)) or n.startswith("_"):
                continue
            mod = getattr(obj, "__module__", "") or ""
            if mod.split(".")[0] != pkg:
                continue
            generated = (
                inspect.isclass(obj) and hasattr(obj, "_fields") and (obj.__doc__ or "").startswith(f"{obj.__name__}(")
            )  # a namedtuple's made-up docstring
            own = (
                obj.__doc__
                if inspect.isfunction(obj)
                else (obj.__dict__.get("__doc__") or getattr(obj.__dict__.get("__init__"), "__doc__", None))
            )
            if own and not generated:
                keys.add((mod, obj.__qualname__))
            if inspect.isclass(obj):
                for k, v in vars(obj).items():
                    if k.startswith("_"):
                        continue
                    f = v.__func__ if isinstance(v, (staticmethod, classmethod)) else v
                    if inspect.isfunction(f) and f.__doc__ and f.__qualname__ == f"{obj.__qualname__}.{k}":
                        keys.add((f.__module__, f.__qualname__))  # an alias (get_all = getlist) is one method
    return keys


def _our_keys(dist):
    """The static reader's records of the installed distribution, keyed the same way."""
    d = importlib.metadata.distribution(dist)
    ops = list(pysource.unit_operations(str(Path(d._path)), Counter(), 2 << 20, 256 << 20))
    keys = set()
    for o in ops:
        rel = o.spec_file.split("/", 1)[1]
        mod = pysource.module_name(rel)
        q = o.operation_id.split(".")
        qual = ".".join(q[-2:]) if o.kind == "method" else q[-1]
        keys.add((mod, qual))
    return keys


@pytest.mark.parametrize(
    "dist,package",
    [
        ("requests", "requests"),
        ("packaging", "packaging"),
        ("urllib3", "urllib3"),
        ("click", "click"),
        ("idna", "idna"),
    ],
)
def test_public_callables_match_an_independent_count(dist, package):
    """The static reader against the packages imported and walked at run time (pkgutil, inspect): every public,
    documented function, class and method defined in the package, keyed by (defining module, qualified name);
    aliases are one callable. At least 99% of them are records."""
    runtime, ours = _runtime_keys(package), _our_keys(dist)
    assert len(runtime) >= 20
    missed = sorted(runtime - ours)
    assert len(runtime & ours) / len(runtime) >= 0.99, missed[:10]
