"""Machine paths out of text: a corpus must not carry the install paths of the machine that built it.

Documentation rendered on a machine (pydoc pages, doctest output, tracebacks) names files by where they are
installed there: ``/home/me/.venv/lib/python3.11/site-packages/requests/api.py``. Those become package-relative
(``requests/api.py``); the interpreter's own prefix and the home folder are cut the same way.
"""

from __future__ import annotations

import os
import re
import sys
import sysconfig

# any .../site-packages/ or .../dist-packages/, and any .../lib/pythonX.Y/ (the standard library)
_GENERIC = re.compile(
    r"(?:[A-Za-z]:)?(?:[/\\][^\s'\"<>:/\\]+)*[/\\](?:site|dist)-packages[/\\]"
    r"|(?:[A-Za-z]:)?(?:[/\\][^\s'\"<>:/\\]+)*[/\\]lib[/\\]python\d\.\d+[/\\]"
)


def _roots() -> list[str]:
    paths = sysconfig.get_paths()
    roots = {paths.get(k) for k in ("purelib", "platlib", "stdlib", "platstdlib")} | {sys.prefix, sys.base_prefix}
    return sorted((r.rstrip("/") + "/" for r in roots if r and len(r) > 1), key=len, reverse=True)


_ROOTS = _roots()
# a root named on its own ("base_prefix = '/usr/local'"): removed where a quote (also HTML-escaped), space,
# separator or the end follows
_BARE = {root: re.compile(re.escape(root[:-1]) + r"(?=['\"\s&<,;)\]]|$)") for root in _ROOTS}
_HOME = os.path.expanduser("~").rstrip("/") + "/"


def scrub_paths(text: str) -> str:
    """``text`` with this machine's install roots and any site-packages / stdlib prefix removed (the path
    continues package-relative) and the home folder shown as ``~/``."""
    if "/" not in text and "\\" not in text:
        return text
    for root in _ROOTS:
        text = text.replace(root, "")
        text = _BARE[root].sub("", text) if root[:-1] in text else text
    text = _GENERIC.sub("", text)
    if len(_HOME) > 2:
        text = text.replace(_HOME, "~/")
    return text


def display_path(path: str) -> str:
    """How a config shows an input path that ``resolve_package_path`` resolved on this machine: the standard
    library and site-packages as ``python:stdlib`` / ``python:site-packages``, a folder inside an installed
    package as ``pkg:NAME/sub``; any other path as it is. The form resolves again on any machine."""
    if "://" in path:
        return path
    paths = sysconfig.get_paths()
    norm = os.path.normpath(path)
    if norm == os.path.normpath(paths["stdlib"]):
        return "python:stdlib"
    for key in ("purelib", "platlib", "stdlib"):
        root = os.path.normpath(paths[key])
        if norm == root and key != "stdlib":
            return "python:site-packages"
        if norm.startswith(root + os.sep) and not (key == "stdlib" and "site-packages" in norm[len(root) :]):
            rel = norm[len(root) + 1 :].replace(os.sep, "/")
            if rel.split("/", 1)[0].isidentifier():
                return f"pkg:{rel}"
    return path


def relative_name(path: str, root: str) -> str:
    """How an input file is named in the output: inside an installed package, package-relative
    (``botocore/data/s3/2006-03-01/service-2.json.gz``); under a local input folder, relative to the folder's
    parent (``specs/petstore.yaml``); a remote URI as it is."""
    if "://" in path:
        return path
    scrubbed = scrub_paths(path)
    if scrubbed != path:
        return scrubbed
    base = os.path.dirname(os.path.normpath(root)) if os.path.isdir(root) else os.path.dirname(root)
    rel = os.path.relpath(path, base) if base else path
    return path if rel.startswith("..") else rel.replace(os.sep, "/")
