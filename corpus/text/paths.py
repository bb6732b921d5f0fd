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
_GENERIC = re.compile(r"(?:[A-Za-z]:)?(?:[/\\][^\s'\"<>:/\\]+)*[/\\](?:site|dist)-packages[/\\]"
                      r"|(?:[A-Za-z]:)?(?:[/\\][^\s'\"<>:/\\]+)*[/\\]lib[/\\]python\d\.\d+[/\\]")


def _roots() -> list[str]:
    paths = sysconfig.get_paths()
    roots = {paths.get(k) for k in ("purelib", "platlib", "stdlib", "platstdlib")} | {sys.prefix, sys.base_prefix}
    return sorted((r.rstrip("/") + "/" for r in roots if r and len(r) > 1), key=len, reverse=True)


_ROOTS = _roots()
_HOME = os.path.expanduser("~").rstrip("/") + "/"


def scrub_paths(text: str) -> str:
    """``text`` with this machine's install roots and any site-packages / stdlib prefix removed (the path
    continues package-relative) and the home folder shown as ``~/``."""
    if "/" not in text and "\\" not in text:
        return text
    for root in _ROOTS:
        text = text.replace(root, "")
    text = _GENERIC.sub("", text)
    if len(_HOME) > 2:
        text = text.replace(_HOME, "~/")
    return text
