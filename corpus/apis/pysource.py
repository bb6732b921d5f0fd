"""Python source → one operation per public function, class and method, read statically.

The largest source of real, documented APIs on a machine without internet is the Python it runs: the standard
library and every installed distribution. They are read as source with ``ast`` and never imported (importing an
untrusted package runs its code), so a folder of wheels from anywhere is as safe to read as the stdlib.

**Units.** The driver lists one unit per distribution (:func:`list_units`): an installed ``*.dist-info`` folder
(its files from ``RECORD``), a wheel (``.whl``), an sdist (``.tar.gz``, ``.tgz``, ``.zip``), or, for a source
folder without distribution metadata such as the standard library, each top-level module or package. A task
reads a unit whole, because naming needs all of a distribution's modules at once.

**Public names.** A definition is public when its name has no leading ``_`` and some public module (no ``_``
component, not a test or vendored folder) exposes it: by defining it (within ``__all__`` when the module sets
one) or by re-exporting it (``from .impl import name``, ``from .impl import *``). A definition exposed under
several names is one record, named by the shortest (``requests.get``, not ``requests.api.get``); the others are
listed as aliases. Re-exports are followed across the unit's modules, a few hops deep.

**Records.** Functions, classes (the constructor's signature) and public methods (``Class.method``) with a
docstring (``undocumented`` lets the others in too): the signature with parameter kinds, annotations and
defaults as a JSON schema (annotations first, then the docstring's types in Google, NumPy or Sphinx style via
``docstring_parser``, then the default's type), the docstring as text (its parameter sections become the
parameter list), the doctest runs as examples, the distribution's version and licence. ``spec_file`` is the
file relative to the unit (``requests-2.32.3/requests/api.py``): a machine's paths never reach the corpus.
"""

from __future__ import annotations

import ast
import csv
import doctest
import email.parser
import io
import os
import posixpath
import re
import tarfile
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterator

from corpus.apis.model import Operation, Param
from corpus.apis.specs import SpecError

ARCHIVES = (".whl", ".tar.gz", ".tgz", ".zip")
# folders whose modules are not an API: tests, vendored copies of other distributions (their own records come
# from those distributions), examples, build helpers; and the stdlib's own non-library folders
SKIP_PARTS = frozenset(
    {
        "test",
        "tests",
        "testing",
        "_vendor",
        "vendor",
        "vendored",
        "_vendored",
        "examples",
        "example",
        "docs",
        "doc",
        "benchmarks",
        "bench",
        "idlelib",
        "turtledemo",
        "lib2to3",
        "ensurepip",
        "site-packages",
        "dist-packages",
        "__pycache__",
        "conftest",
        "setup",
    }
)
MAX_MEMBERS = 200_000
HOPS = 4  # re-export chains followed this deep


@dataclass
class Unit:
    """What a task reads: a distribution's or a module's Python files, and who publishes them."""

    provider: str  # the distribution's name, or "python" for the standard library
    version: str
    label: str  # prefix of spec_file: "requests-2.32.3", "python3.11"
    licence: str | None
    files: list[tuple[str, bytes]]  # (path relative to the import root, source)


@dataclass
class Definition:
    module: str
    name: str  # within the module: "f", "Cls", "Cls.method"
    kind: str  # function | class | method
    file: str
    args: ast.arguments | None
    returns: str | None
    doc: str
    decorators: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------------------- the driver's listing


def list_units(path: str) -> list[tuple[str, int]]:
    """(unit path, bytes) of a Python input: archives anywhere (local or remote), ``*.dist-info`` folders of a
    local site-packages, else each top-level module / package of a local source folder."""
    from corpus.io import files

    if path.lower().endswith(ARCHIVES) or not os.path.isdir(path):
        return [(e.path, e.size) for e in files.list_files(path, ARCHIVES)]
    if os.path.isfile(os.path.join(path, "__init__.py")):  # a package itself: one unit
        return [
            (
                path,
                sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs if f.endswith(".py")),
            )
        ]
    out: list[tuple[str, int]] = []
    names = sorted(os.listdir(path))
    dist_infos = [n for n in names if n.endswith(".dist-info")]
    for n in names:
        full = os.path.join(path, n)
        if n.lower().endswith(ARCHIVES) and os.path.isfile(full):
            out.append((full, os.path.getsize(full)))
    if dist_infos:
        for n in dist_infos:
            full = os.path.join(path, n)
            out.append((full, sum(size for rel, size in _record(full) if rel.endswith(".py"))))
        return out
    for n in names:  # a source folder: the standard library, or your own packages
        full = os.path.join(path, n)
        if n in SKIP_PARTS or n.startswith((".", "_")) and n != "__init__.py":
            continue
        if n.endswith(".py") and os.path.isfile(full):
            out.append((full, os.path.getsize(full)))
        elif os.path.isdir(full) and os.path.isfile(os.path.join(full, "__init__.py")) and n.isidentifier():
            out.append(
                (
                    full,
                    sum(
                        os.path.getsize(os.path.join(d, f))
                        for d, _, fs in os.walk(full)
                        for f in fs
                        if f.endswith(".py")
                    ),
                )
            )
    return out


def _record(dist_info: str) -> list[tuple[str, int]]:
    """(path relative to site-packages, size) of a dist-info's RECORD rows; [] when it has none."""
    try:
        with open(os.path.join(dist_info, "RECORD"), encoding="utf-8", errors="replace") as fh:
            rows = list(csv.reader(fh))
    except OSError:
        return []
    out = []
    for row in rows:
        if not row or row[0].startswith(("..", "/")):
            continue
        size = int(row[2]) if len(row) > 2 and row[2].isdigit() else 0
        out.append((row[0], size))
    return out


# ------------------------------------------------------------------------------------------- reading one unit


def _metadata(raw: bytes | None) -> tuple[str, str, str | None]:
    """(name, version, licence) from METADATA / PKG-INFO bytes."""
    if not raw:
        return "", "", None
    msg = email.parser.BytesHeaderParser().parsebytes(raw[: 256 * 1024])

    def get(key: str) -> str:
        return str(msg.get(key) or "").strip()  # a non-ASCII header comes back as an email Header object

    licence = get("License-Expression")
    if not licence:
        text = get("License")
        licence = text if text and len(text) <= 80 and "\n" not in text and text.upper() != "UNKNOWN" else None
    if not licence:
        classifiers = [
            str(c).rsplit("::", 1)[-1].strip()
            for c in msg.get_all("Classifier") or []
            if str(c).startswith("License ::")
        ]
        licence = "; ".join(classifiers) or None
    return get("Name"), get("Version"), licence or None


def _wanted(rel: str) -> bool:
    parts = rel.split("/")
    return (
        rel.endswith(".py")
        and not any(p in SKIP_PARTS for p in parts[:-1])
        and not parts[-1].startswith(("test_", "conftest"))
        and parts[-1] not in ("setup.py", "__main__.py")
    )


def read_unit(path: str, max_file_bytes: int, max_unit_bytes: int) -> Unit:
    """The unit at ``path`` (see :func:`list_units`); SpecError for an archive that is damaged or too large."""
    if path.endswith(".dist-info"):
        return _installed(path, max_file_bytes, max_unit_bytes)
    low = path.lower()
    if low.endswith((".whl", ".zip")):
        return _zip(path, max_file_bytes, max_unit_bytes, wheel=low.endswith(".whl"))
    if low.endswith((".tar.gz", ".tgz")):
        return _tar(path, max_file_bytes, max_unit_bytes)
    return _source_folder(path, max_file_bytes, max_unit_bytes)


class _Budget:
    """Bounds what one unit may hold, whatever its headers claim."""

    def __init__(self, path: str, max_file: int, max_unit: int) -> None:
        self.path, self.max_file, self.max_unit, self.total, self.skipped = path, max_file, max_unit, 0, 0

    def take(self, size: int) -> bool:
        if size > self.max_file:
            self.skipped += 1  # a generated module of many MB is data, not an API
            return False
        self.total += size
        if self.total > self.max_unit:
            raise SpecError("too_large", f"{self.path}: over {self.max_unit} bytes of Python source")
        return True


def _installed(dist_info: str, max_file: int, max_unit: int) -> Unit:
    root = os.path.dirname(dist_info)
    try:
        with open(os.path.join(dist_info, "METADATA"), "rb") as fh:
            name, version, licence = _metadata(fh.read())
    except OSError:
        name, version, licence = os.path.basename(dist_info).split("-")[0], "", None
    budget = _Budget(dist_info, max_file, max_unit)
    files = []
    for rel, _ in _record(dist_info):
        full = os.path.join(root, rel)
        if not _wanted(rel) or not os.path.isfile(full):
            continue
        if budget.take(os.path.getsize(full)):
            with open(full, "rb") as fh:
                files.append((rel, fh.read()))
    return Unit(provider=_norm(name), version=version, label=f"{_norm(name)}-{version}", licence=licence, files=files)


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _zip(path: str, max_file: int, max_unit: int, wheel: bool) -> Unit:
    from corpus.io import files as fs

    try:
        with fs.open_input(path) as fh:
            data = fh.read()
        zf = zipfile.ZipFile(io.BytesIO(data))
        infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as err:
        raise SpecError("bad_archive", f"{path}: {type(err).__name__}: {err}") from None
    if len(infos) > MAX_MEMBERS:
        raise SpecError("too_large", f"{path}: {len(infos)} members")
    names = [i.filename for i in infos]
    meta_name = next(
        (n for n in names if n.endswith(".dist-info/METADATA" if wheel else "PKG-INFO") and n.count("/") <= 1), None
    )
    budget = _Budget(path, max_file, max_unit)
    try:
        name, version, licence = _metadata(
            zf.read(meta_name) if meta_name and zf.getinfo(meta_name).file_size < max_file else None
        )
        top = "" if wheel else _sdist_top(names)
        out = []
        for info in infos:
            rel = _sdist_rel(info.filename, top) if not wheel else info.filename
            if rel and not info.is_dir() and _wanted(rel) and budget.take(info.file_size):
                out.append((rel, _bounded(zf.open(info), info.file_size, path)))
    except SpecError:
        raise
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as err:
        raise SpecError("bad_archive", f"{path}: {type(err).__name__}: {err}") from None
    return _archive_unit(path, name, version, licence, out)


def _tar(path: str, max_file: int, max_unit: int) -> Unit:
    from corpus.io import files as fs

    budget = _Budget(path, max_file, max_unit)
    out, meta = [], None
    try:
        with fs.open_input(path) as fh, tarfile.open(fileobj=fh, mode="r|gz") as tf:
            count = 0
            for member in tf:
                count += 1
                if count > MAX_MEMBERS:
                    raise SpecError("too_large", f"{path}: over {MAX_MEMBERS} members")
                if not member.isfile():
                    continue
                parts = member.name.split("/")
                if len(parts) == 2 and parts[1] == "PKG-INFO" and member.size < max_file:
                    meta = tf.extractfile(member).read()
                    continue
                rel = _sdist_rel(member.name, parts[0] + "/")
                if rel and _wanted(rel) and budget.take(member.size):
                    out.append((rel, _bounded(tf.extractfile(member), member.size, path)))
    except SpecError:
        raise
    except (tarfile.TarError, OSError, EOFError, ValueError) as err:
        raise SpecError("bad_archive", f"{path}: {type(err).__name__}: {err}") from None
    name, version, licence = _metadata(meta)
    return _archive_unit(path, name, version, licence, out)


def _bounded(fh, size: int, path: str) -> bytes:
    """At most the declared size plus one byte: a member that inflates past its header is refused."""
    data = fh.read(size + 1)
    if len(data) > size:
        raise SpecError("bad_archive", f"{path}: a member is larger than its header says")
    return data


def _sdist_top(names: list[str]) -> str:
    tops = {n.split("/", 1)[0] for n in names if "/" in n}
    return f"{tops.pop()}/" if len(tops) == 1 else ""


def _sdist_rel(name: str, top: str) -> str:
    """An sdist member's path relative to its import root (the top folder and a ``src/`` layout stripped)."""
    rel = name[len(top) :] if top and name.startswith(top) else name
    return rel[4:] if rel.startswith("src/") else rel


def _archive_unit(path: str, name: str, version: str, licence: str | None, out: list) -> Unit:
    if not name:  # no metadata: the file name says it ("pkg-1.0-py3-none-any.whl", "pkg-1.0.tar.gz")
        base = re.sub(r"(\.tar\.gz|\.tgz|\.zip|\.whl)$", "", posixpath.basename(path), flags=re.I)
        name, _, rest = base.partition("-")
        version = version or rest.split("-")[0]
    return Unit(
        provider=_norm(name), version=version, label=f"{_norm(name)}-{version}".rstrip("-"), licence=licence, files=out
    )


def _source_folder(path: str, max_file: int, max_unit: int) -> Unit:
    """A top-level module or package of a folder without distribution metadata (the standard library)."""
    root = os.path.dirname(path.rstrip("/"))
    folder = os.path.basename(root)
    m = re.fullmatch(r"python(\d+\.\d+)", folder)
    stdlib = m is not None and os.path.isfile(os.path.join(root, "os.py"))
    budget = _Budget(path, max_file, max_unit)
    files = []
    walk = [(root, [], [os.path.basename(path)])] if os.path.isfile(path) else os.walk(path)
    for d, dirs, fnames in walk:
        dirs[:] = sorted(x for x in dirs if x not in SKIP_PARTS)
        for f in sorted(fnames):
            full = os.path.join(d, f)
            rel = os.path.relpath(full, root).replace(os.sep, "/")
            if _wanted(rel) and budget.take(os.path.getsize(full)):
                with open(full, "rb") as fh:
                    files.append((rel, fh.read()))
    if stdlib:
        return Unit(provider="python", version=m.group(1), label=folder, licence="PSF-2.0", files=files)
    return Unit(provider=_norm(folder), version="", label=_norm(folder), licence=None, files=files)


# ------------------------------------------------------------------------------------------- definitions


def module_name(rel: str) -> str | None:
    parts = rel[:-3].split("/")
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts) if parts and all(p.isidentifier() for p in parts) else None


def _is_public_module(module: str) -> bool:
    return all(not p.startswith("_") and p not in SKIP_PARTS for p in module.split("."))


def _decorators(node) -> list[str]:
    out = []
    for d in node.decorator_list:
        target = d.func if isinstance(d, ast.Call) else d
        out.append(ast.unparse(target))
    return out


@dataclass
class ModuleFacts:
    defs: dict[str, Definition] = field(default_factory=dict)  # top-level and Class.method
    imports: list[tuple[str, str, str]] = field(default_factory=list)  # (target module, name or "*", as)
    all_names: list[str] | None = None


def _resolve_from(module: str, is_package: bool, node: ast.ImportFrom) -> str | None:
    if not node.level:
        return node.module
    base = module.split(".") if is_package else module.split(".")[:-1]
    if node.level > 1:
        base = base[: len(base) - (node.level - 1)] if node.level - 1 <= len(base) else []
    if not base and node.level:
        return None
    return ".".join(base + ([node.module] if node.module else []))


def module_facts(rel: str, source: bytes) -> tuple[str, ModuleFacts] | None:
    """The definitions, imports and ``__all__`` of one module; None when its path is not importable. SyntaxError
    etc. propagate (the caller counts them)."""
    module = module_name(rel)
    if module is None:
        return None
    tree = ast.parse(source, filename=rel)
    facts = ModuleFacts()
    is_package = rel.endswith("__init__.py")

    def body_nodes(body):
        for node in body:  # definitions under a top-level `if` / `try` (platform branches) count too
            if isinstance(node, ast.If):
                yield from body_nodes(node.body)
                yield from body_nodes(node.orelse)
            elif isinstance(node, ast.Try):
                yield from body_nodes(node.body)
                for h in node.handlers:
                    yield from body_nodes(h.body)
            else:
                yield node

    for node in body_nodes(tree.body):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if "overload" in "".join(_decorators(node)):
                continue
            facts.defs.setdefault(
                node.name,
                Definition(
                    module,
                    node.name,
                    "function",
                    rel,
                    node.args,
                    ast.unparse(node.returns) if node.returns else None,
                    ast.get_docstring(node) or "",
                    _decorators(node),
                ),
            )
        elif isinstance(node, ast.ClassDef):
            init = next(
                (
                    n
                    for n in node.body
                    if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == "__init__"
                ),
                None,
            )
            doc = ast.get_docstring(node) or ""
            init_doc = ast.get_docstring(init) if init is not None else ""
            if init_doc and init_doc not in doc:
                doc = f"{doc}\n\n{init_doc}".strip()
            facts.defs.setdefault(
                node.name,
                Definition(
                    module,
                    node.name,
                    "class",
                    rel,
                    init.args if init is not None else None,
                    None,
                    doc,
                    _decorators(node),
                ),
            )
            for sub in node.body:
                if isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef)) and not sub.name.startswith("_"):
                    decos = _decorators(sub)
                    if any(
                        d == "property" or d.endswith(("overload", ".setter", ".deleter", "cached_property"))
                        for d in decos
                    ):
                        continue
                    facts.defs.setdefault(
                        f"{node.name}.{sub.name}",
                        Definition(
                            module,
                            f"{node.name}.{sub.name}",
                            "method",
                            rel,
                            sub.args,
                            ast.unparse(sub.returns) if sub.returns else None,
                            ast.get_docstring(sub) or "",
                            decos,
                        ),
                    )
        elif isinstance(node, ast.ImportFrom):
            target = _resolve_from(module, is_package, node)
            if target:
                for a in node.names:
                    facts.imports.append((target, a.name, a.asname or a.name))
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets) and node.value is not None:
                try:
                    value = ast.literal_eval(node.value)
                    facts.all_names = [str(v) for v in value] if isinstance(value, (list, tuple)) else None
                except (ValueError, SyntaxError, TypeError, RecursionError):
                    facts.all_names = None
    return module, facts


def public_names(mods: dict[str, ModuleFacts]) -> dict[tuple[str, str], list[str]]:
    """(module, top-level name) of each definition → the public dotted names that expose it, shortest first."""
    exposed: dict[tuple[str, str], set[str]] = {}

    def locate(module: str, name: str, hops: int) -> tuple[str, str] | None:
        facts = mods.get(module)
        if facts is None or hops > HOPS:
            return None
        if name in facts.defs:
            return module, name
        for target, imported, alias in facts.imports:
            if alias == name and imported != "*":
                found = locate(target, imported, hops + 1)
                if found:
                    return found
            elif imported == "*":
                found = locate(target, name, hops + 1)
                if found and not name.startswith("_"):
                    return found
        return None

    def visible(module: str, hops: int = 0) -> set[str]:
        """Public names a module offers (for ``import *`` and its own listing)."""
        facts = mods[module]
        if facts.all_names is not None:
            return set(facts.all_names)
        names = {n for n in facts.defs if "." not in n and not n.startswith("_")}
        for target, imported, alias in facts.imports:
            if imported == "*" and target in mods and hops < HOPS:
                names |= visible(target, hops + 1)
            elif not alias.startswith("_") and target in mods:
                names.add(alias)
        return names

    for module in mods:
        if not _is_public_module(module):
            continue
        for name in visible(module):
            if name.startswith("_"):
                continue
            found = locate(module, name, 0)
            if found:
                exposed.setdefault(found, set()).add(f"{module}.{name}")

    def order(found: tuple[str, str]):  # names in the definition's own top-level package first, then shortest
        top = found[0].split(".")[0]
        return lambda s: (s.split(".")[0] != top, s.count("."), len(s), s)

    return {k: sorted(v, key=order(k)) for k, v in exposed.items()}


# ------------------------------------------------------------------------------------------- operations

_SIMPLE_TYPES = {
    "int": "integer",
    "float": "number",
    "str": "string",
    "bytes": "string",
    "bool": "boolean",
    "list": "array",
    "tuple": "array",
    "set": "array",
    "frozenset": "array",
    "dict": "object",
    "None": "null",
    "NoneType": "null",
    "List": "array",
    "Tuple": "array",
    "Set": "array",
    "Sequence": "array",
    "Iterable": "array",
    "Collection": "array",
    "Dict": "object",
    "Mapping": "object",
    "MutableMapping": "object",
    "integer": "integer",
    "string": "string",
    "boolean": "boolean",
    "number": "number",
    "array": "array",
    "array_like": "array",
    "array-like": "array",
    "sequence": "array",
    "iterable": "array",
    "mapping": "object",
    "dictionary": "object",
    "callable": None,
    "Callable": None,
    "Any": None,
    "object": None,
}


def annotation_schema(expr: ast.expr | None, depth: int = 0) -> dict:
    """A JSON schema for a type annotation; {} when it has no JSON equivalent."""
    if expr is None or depth > 4:
        return {}
    if isinstance(expr, ast.Constant):
        if expr.value is None:
            return {"type": "null"}
        if isinstance(expr.value, str):  # a forward reference
            try:
                return annotation_schema(ast.parse(expr.value, mode="eval").body, depth + 1)
            except (SyntaxError, ValueError, RecursionError):
                return {}
        return {}
    if isinstance(expr, ast.Set):  # a docstring's "{'L', 'U'}": one of these values
        values = [e.value for e in expr.elts if isinstance(e, ast.Constant) and _json_scalar(e.value)]
        return {"enum": values} if values and len(values) == len(expr.elts) else {}
    if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.BitOr):
        return _union([annotation_schema(expr.left, depth + 1), annotation_schema(expr.right, depth + 1)])
    if isinstance(expr, (ast.Name, ast.Attribute)):
        t = _SIMPLE_TYPES.get(ast.unparse(expr).rsplit(".", 1)[-1])
        return {"type": t} if t else {}
    if isinstance(expr, ast.Subscript):
        head = ast.unparse(expr.value).rsplit(".", 1)[-1]
        args = expr.slice.elts if isinstance(expr.slice, ast.Tuple) else [expr.slice]
        if head == "Optional":
            return _union([annotation_schema(args[0], depth + 1), {"type": "null"}])
        if head == "Union":
            return _union([annotation_schema(a, depth + 1) for a in args])
        if head == "Literal":
            values = [a.value for a in args if isinstance(a, ast.Constant) and _json_scalar(a.value)]
            return {"enum": values} if values and len(values) == len(args) else {}
        if head == "Annotated":
            return annotation_schema(args[0], depth + 1)
        t = _SIMPLE_TYPES.get(head)
        if t == "array":
            items = annotation_schema(args[0], depth + 1) if head not in ("tuple", "Tuple") or len(args) == 2 else {}
            return {"type": "array", **({"items": items} if items else {})}
        return {"type": t} if t else {}
    return {}


def _json_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool)) and value == value  # NaN is no JSON


def _union(schemas: list[dict]) -> dict:
    if any(not s for s in schemas):
        return {}  # one member has no JSON type: the union is open
    types = []
    for s in schemas:
        t = s.get("type")
        if not isinstance(t, str):
            return {}
        if t not in types:
            types.append(t)
    return {"type": types[0] if len(types) == 1 else types}


_DOC_TYPE = re.compile(r"[A-Za-z_][\w.-]*")


def docstring_type_schema(text: str | None) -> dict:
    """A JSON schema from a docstring's type ("int", "list of str", "str or None", "bool, optional")."""
    if not text:
        return {}
    text = text.replace("`", "").strip()
    nullable = bool(re.search(r"\bor None\b|\bNone or\b|\|\s*None\b", text))
    core = re.split(r",\s*(?:optional|default)", text)[0]
    core = re.sub(r"\s*(\bor None\b|\|\s*None)\s*", "", core).strip()
    try:
        schema = annotation_schema(ast.parse(core, mode="eval").body)
    except (SyntaxError, ValueError, RecursionError):
        m = _DOC_TYPE.match(core)
        t = _SIMPLE_TYPES.get(m.group(0)) if m else None
        schema = {"type": t} if t else {}
        if t == "array" and " of " in core:
            item = _SIMPLE_TYPES.get(core.split(" of ", 1)[1].split()[0].rstrip("s"))
            if item:
                schema["items"] = {"type": item}
    if nullable and schema.get("type") and isinstance(schema["type"], str):
        schema = {**schema, "type": [schema["type"], "null"]}
    return schema


def _literal(expr: ast.expr) -> tuple[bool, Any]:
    try:
        value = ast.literal_eval(expr)
    except (ValueError, SyntaxError, TypeError, RecursionError, MemoryError):
        return False, None
    if isinstance(value, tuple):
        value = list(value)
    if isinstance(value, (str, int, float, bool, list, dict)) or value is None:
        try:
            import json

            json.dumps(value)
            return True, value
        except (TypeError, ValueError):
            return False, None
    return False, None


def _schema_type_label(schema: dict, fallback: str) -> str:
    t = schema.get("type")
    if isinstance(t, list):
        return " or ".join(t)
    if schema.get("enum"):
        return "enum"
    return t or fallback or "any"


def parameters(d: Definition, docs: dict) -> tuple[list[Param], str]:
    """The definition's parameters (self / cls dropped) and its signature text."""
    args = d.args
    if args is None:
        return [], "()"
    positional = list(args.posonlyargs) + list(args.args)
    defaults: list[ast.expr | None] = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
    drop_first = d.kind in ("class", "method") and "staticmethod" not in d.decorators and positional
    out: list[Param] = []

    def add(a: ast.arg, default: ast.expr | None, location: str, kind: str) -> None:
        ann = annotation_schema(a.annotation)
        doc = docs.get(a.arg)
        if not ann and doc is not None:
            ann = docstring_type_schema(doc.type_name)
        has_default = default is not None
        ok, value = _literal(default) if has_default else (False, None)
        if not ann and ok and value is not None:
            ann = {
                "type": {
                    bool: "boolean",
                    int: "integer",
                    float: "number",
                    str: "string",
                    list: "array",
                    dict: "object",
                }[type(value)]
            }
        description = rst_text(" ".join((doc.description or "").split())) if doc is not None else ""
        if has_default and not ok:
            description = f"{description} Default: `{ast.unparse(default)}`.".strip()
        annotation = ast.unparse(a.annotation) if a.annotation is not None else (doc.type_name if doc else "")
        annotation = " ".join((annotation or "").split())[:200]
        schema = dict(ann)
        if kind in ("var_positional", "var_keyword"):
            schema = {"type": "array"} if kind == "var_positional" else {"type": "object"}
        out.append(
            Param(
                name=a.arg,
                location=location,
                type=annotation or _schema_type_label(ann, ""),
                required=not has_default and kind not in ("var_positional", "var_keyword"),
                description=description,
                default=value if ok else None,
                schema=schema or None,
                kind=kind,
            )
        )

    for i, (a, default) in enumerate(zip(positional, defaults)):
        if i == 0 and drop_first:
            continue
        kind = "positional_only" if i < len(args.posonlyargs) else "positional_or_keyword"
        add(a, default, "argument", kind)
    if args.vararg:
        add(args.vararg, None, "argument", "var_positional")
    for a, default in zip(args.kwonlyargs, args.kw_defaults):
        add(a, default, "keyword", "keyword_only")
    if args.kwarg:
        add(args.kwarg, None, "keyword", "var_keyword")
    shown = ast.arguments(
        posonlyargs=args.posonlyargs,
        args=args.args,
        vararg=args.vararg,
        kwonlyargs=args.kwonlyargs,
        kw_defaults=args.kw_defaults,
        kwarg=args.kwarg,
        defaults=args.defaults,
    )
    if drop_first:
        if args.posonlyargs:
            shown.posonlyargs = args.posonlyargs[1:]
        else:
            shown.args = args.args[1:]
        n_pos = len(shown.posonlyargs) + len(shown.args)
        shown.defaults = args.defaults[-n_pos:] if n_pos and args.defaults else []
        if len(shown.defaults) > n_pos:
            shown.defaults = shown.defaults[len(shown.defaults) - n_pos :]
    return out, f"({ast.unparse(shown)})"


def doctest_blocks(doc: str) -> list[dict]:
    """Runs of doctest examples with the prose just before them: {prose, code, output, doctest}."""
    try:
        parsed = doctest.DocTestParser().parse(doc)
    except ValueError:  # inconsistent indentation inside an example
        return []
    blocks: list[dict] = []
    prose = ""
    current: list[doctest.Example] = []
    for piece in parsed:
        if isinstance(piece, doctest.Example):
            current.append(piece)
            continue
        if current and piece.strip():
            blocks.append(_block(prose, current))
            current = []
        if piece.strip():
            prose = _intro(piece)
    if current:
        blocks.append(_block(prose, current))
    return blocks


_SECTION = re.compile(r"^\s*(?:[-=~^]{3,}|(?:Examples?|Usage|Doctests?|For example)\s*:*)\s*$", re.I | re.M)


def _intro(text: str) -> str:
    """The paragraph before an example, without section headings ("Examples", "--------"); '' when none."""
    para = _SECTION.sub("", text.strip()).strip().split("\n\n")[-1]
    para = rst_text(" ".join(para.split()))
    return para if len(para.split()) >= 3 and not para.startswith(".. ") else ""


_ROLE = re.compile(
    r":(?:py:)?(?:class|func|meth|attr|mod|obj|exc|data|const|ref|term|doc|samp|file|envvar|"
    r"kbd|program|option|pep|rfc)?:`~?([^`<]*?)(?:\s*<[^>]*>)?`"
)
_DIRECTIVE = re.compile(
    r"^(\s*)\.\. (versionadded|versionchanged|deprecated|note|warning|seealso|see also)::"
    r"[ \t]*(.*)$",
    re.M | re.I,
)
_DIRECTIVE_WORDS = {
    "versionadded": "New in version",
    "versionchanged": "Changed in version",
    "deprecated": "Deprecated since version",
    "note": "Note:",
    "warning": "Warning:",
    "seealso": "See also:",
    "see also": "See also:",
}


def rst_text(text: str) -> str:
    """reStructuredText markup as plain reading text: roles (:class:`X` → `X`), ``literals`` (→ `literals`),
    version directives (.. versionadded:: 1.2 → New in version 1.2.). Other text is left as written."""
    text = _ROLE.sub(lambda m: f"`{m.group(1).strip()}`", text)
    text = re.sub(r"``([^`]+)``", r"`\1`", text)

    def directive(m: re.Match) -> str:
        word = _DIRECTIVE_WORDS[m.group(2).lower()]
        rest = m.group(3).strip()
        if word.endswith("version"):
            return f"{m.group(1)}{word} {rest}." if rest else f"{m.group(1)}{word}."
        return f"{m.group(1)}{word} {rest}".rstrip()

    text = _DIRECTIVE.sub(directive, text)
    return re.sub(r"(?m)^([ \t]*(?:New in|Changed in|Deprecated since) version[^\n]*?\.)\n[ \t]+(\S)", r"\1 \2", text)


def _block(prose: str, examples: list) -> dict:
    lines = []
    for ex in examples:
        src = ex.source.rstrip("\n").split("\n")
        lines += [f">>> {src[0]}"] + [f"... {s}" for s in src[1:]]
        lines += ex.want.rstrip("\n").split("\n") if ex.want else []
    return {
        "prose": " ".join(prose.split()),
        "doctest": "\n".join(lines),
        "code": "".join(e.source for e in examples),
        "output": [e.want for e in examples],
    }


_DOCTEST_LINES = re.compile(r"(?m)^[ \t]*>>> .*(?:\n(?![ \t]*\n).*)*")


def describe(doc: str) -> tuple[str, dict, list[str], list[dict]]:
    """(description text, {param name: docstring param}, extra lines (returns, raises), doctest blocks)."""
    import docstring_parser

    examples = doctest_blocks(doc)
    try:
        parsed = docstring_parser.parse(doc)
    except Exception:  # docstring_parser raises ParseError and, on odd input, others: the text stays as written
        return _DOCTEST_LINES.sub("", doc).strip(), {}, [], examples
    # a summary wrapped over two lines comes back cut in two: joined again unless a blank line followed it
    gap = "\n\n" if parsed.blank_after_short_description else " "
    text = gap.join(t for t in (parsed.short_description, parsed.long_description) if t)
    text = rst_text(_SECTION.sub("", _DOCTEST_LINES.sub("", text))).strip()
    text = re.sub(r"\n{3,}", "\n\n", text)
    params = {p.arg_name.lstrip("*"): p for p in parsed.params}
    extra = []
    ret = parsed.returns
    if ret is not None and (ret.description or ret.type_name):
        extra.append(
            f"Returns{f' ({ret.type_name})' if ret.type_name else ''}: "
            f"{rst_text(' '.join((ret.description or '').split()))}".rstrip(": ")
        )
    for r in parsed.raises[:10]:
        extra.append(
            f"Raises {r.type_name or 'an error'}: {rst_text(' '.join((r.description or '').split()))}".rstrip(": ")
        )
    return text, params, extra, examples


def operations(unit: Unit, counts: Counter, undocumented: bool = False) -> list[Operation]:
    """The unit's public API as operations, one per definition (re-exports merged)."""
    mods: dict[str, ModuleFacts] = {}
    for rel, source in unit.files:
        try:
            found = module_facts(rel, source)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            counts["python_modules_unparsed"] += 1  # Python 2 code in an old sdist, templates named .py
            continue
        if found:
            mods.setdefault(found[0], found[1])
    counts["python_modules"] += len(mods)
    names = public_names(mods)
    ops = []
    for (module, top), public in sorted(names.items()):
        facts = mods[module]
        d = facts.defs[top]
        members = [d] + (
            [m for k, m in sorted(facts.defs.items()) if k.startswith(f"{top}.")] if d.kind == "class" else []
        )
        for m in members:
            qualified = public[0] + m.name[len(top) :]
            aliases = [p + m.name[len(top) :] for p in public[1:]]
            if not m.doc.strip() and not undocumented:
                counts[f"python_undocumented_skipped:{m.kind}"] += 1
                continue
            ops.append(_operation(unit, m, qualified, aliases))
            counts[f"python:{m.kind}"] += 1
            counts["python_reexports_merged"] += len(aliases)
    counts["python_private_skipped"] += sum(
        1 for module, facts in mods.items() for k in facts.defs if "." not in k and (module, k) not in names
    )
    return ops


def _operation(unit: Unit, d: Definition, qualified: str, aliases: list[str]) -> Operation:
    text, docs, extra, examples = describe(d.doc) if d.doc else ("", {}, [], [])
    params, signature = parameters(d, docs)
    returns = f" -> {d.returns}" if d.returns else ""
    prefix = "class " if d.kind == "class" else ""
    module = qualified.rsplit(".", 1)[0] if d.kind != "method" else qualified.rsplit(".", 2)[0]
    also = f"Also exported as {', '.join(f'`{a}`' for a in aliases[:3])}." if aliases else ""
    description = "\n\n".join(t for t in [text, "\n".join(extra), also] if t)
    return Operation(
        provider=unit.provider,
        api=module,
        api_title=module,
        version=unit.version,
        operation_id=qualified,
        kind=d.kind,
        spec_format="python",
        description=description,
        sdk_name=qualified,
        parameters=params,
        examples=examples,
        signature=f"{prefix}{qualified}{signature}{returns}",
        spec_file=f"{unit.label}/{d.file}",
        licence=unit.licence,
        deprecated=any("deprecat" in x.lower() for x in d.decorators),
    )


def unit_operations(
    path: str, counts: Counter, max_file_bytes: int, max_unit_bytes: int, undocumented: bool = False
) -> Iterator[Operation]:
    unit = read_unit(path, max_file_bytes, max_unit_bytes)
    counts["python_units"] += 1
    counts["python_files"] += len(unit.files)
    yield from operations(unit, counts, undocumented)
