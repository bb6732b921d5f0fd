"""Crawled HTML documentation pages → operations, best effort.

A page counts as documenting callables when it has at least one of these structures (anything else yields no
operation; the page itself is still ingested as a document by ``ingest-web``):

* **pydoc** pages: ``<dt><a name="-func"><strong>func</strong></a>(signature)</dt><dd>doc</dd>`` (module
  functions) and ``<a name="Class-method">`` (methods);
* **Sphinx** API pages (``<dl class="py function">`` / ``method`` / ``classmethod`` / ``staticmethod``, and
  the older ``<dl class="function">``), whose ``<dt id="module.name">`` holds the signature;
* **HTTP endpoints**: a heading, ``<dt>`` or the first line of a ``<code>`` / ``<pre>`` block that reads
  ``GET /path`` (any HTTP method); the description is the text up to the next heading.

Signatures are parsed with Python's own ``ast`` (``def f(<signature>): pass``): parameter names, which are
required (no default), defaults that are literals, keyword-only arguments. A signature ``ast`` cannot parse
(C builtins' ``...``, ``[optional]`` brackets) keeps the operation with its parameters unknown, noted.
"""

from __future__ import annotations

import ast
import re
from typing import Any
from urllib.parse import urlparse

from corpus.apis.model import Operation, Param
from corpus.apis.specs import html_to_text

_HTTP = re.compile(r"^\s*(GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS)\s+(/[^\s]*)", re.I)
_PATH_PARAM = re.compile(r"\{([A-Za-z_][\w.-]*)\}|(?<=/):([A-Za-z_]\w*)")
_HTTP_ANY = re.compile(r">\s*(GET|POST|PUT|PATCH|DELETE)\s+/", re.I)
_SPHINX = re.compile(r"\b(function|method|classmethod|staticmethod)\b")
_PY_LITERAL_TYPES = {
    bool: "boolean",
    int: "integer",
    float: "number",
    str: "string",
    list: "array",
    tuple: "array",
    dict: "object",
}
MAX_DESCRIPTION = 4000


def looks_like_api_page(html: str) -> bool:
    """A cheap test before parsing: one of the three structures' markers is in the text."""
    return ('<a name="' in html and "<strong>" in html) or 'class="py ' in html or _HTTP_ANY.search(html) is not None


def parse_signature(sig: str) -> tuple[list[Param], str | None]:
    """Parameters from a Python signature's inside (``a, b=1, *, c``); (params, problem)."""
    sig = sig.strip()
    try:
        fn = ast.parse(f"def f({sig}): pass").body[0]
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return [], f"signature not parsed: ({sig[:120]})"
    args = fn.args  # type: ignore[attr-defined]
    out: list[Param] = []
    positional = list(args.posonlyargs) + list(args.args)
    defaults = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
    for a, d in zip(positional, defaults):
        if a.arg in ("self", "cls"):
            continue
        out.append(_arg_param(a, d, "argument"))
    for a, d in zip(args.kwonlyargs, args.kw_defaults):
        out.append(_arg_param(a, d, "keyword"))
    return out, None


def _arg_param(a: ast.arg, default: ast.expr | None, location: str) -> Param:
    value: Any = None
    has_default = default is not None
    if has_default:
        try:
            value = ast.literal_eval(default)
        except (ValueError, SyntaxError, TypeError, RecursionError):
            value = None
    ptype = "any"
    if a.annotation is not None:
        ann = ast.unparse(a.annotation)
        ptype = {
            "str": "string",
            "int": "integer",
            "float": "number",
            "bool": "boolean",
            "list": "array",
            "dict": "object",
        }.get(ann, ann)
    elif value is not None:
        ptype = _PY_LITERAL_TYPES.get(type(value), "any")
    return Param(
        name=a.arg,
        location=location,
        type=ptype,
        required=not has_default,
        default=value if isinstance(value, (str, int, float, bool)) else None,
    )


def _text(el) -> str:
    return " ".join(el.text_content().split())


def _pydoc(root, api: str) -> list[tuple[str, str, str]]:
    """(dotted name, signature inside, description) for each pydoc function / method entry."""
    out = []
    for a in root.iterfind(".//dt/a[@name]"):
        anchor = a.get("name") or ""
        strong = a.find("strong")
        if "-" not in anchor or strong is None:
            continue
        owner, _, func = anchor.partition("-")
        if not func or func.startswith("_"):
            continue
        dt = a.getparent()
        rest = (a.tail or "") + "".join((sib.text_content() + (sib.tail or "")) for sib in a.itersiblings())
        rest = " ".join(rest.replace("\xa0", " ").split())
        m = re.match(r"^\((.*)\)", rest)
        if not m:
            continue
        dd = dt.getnext()
        desc = _text(dd) if dd is not None and dd.tag == "dd" else ""
        name = ".".join(p for p in (api, owner, func) if p)
        out.append((name, m.group(1), desc))
    return out


def _sphinx(root) -> list[tuple[str, str, str]]:
    out = []
    for dl in root.iterfind(".//dl[@class]"):
        cls = dl.get("class") or ""
        if not _SPHINX.search(cls) or "field-list" in cls:
            continue
        dt = dl.find("dt")
        if dt is None:
            continue
        name = dt.get("id") or ""
        text = _text(dt).replace("¶", "").strip()
        m = re.search(r"\((.*)\)", text)
        if not name or not m:
            continue
        dd = dl.find("dd")
        desc = _text(dd) if dd is not None else ""
        out.append((name, m.group(1), desc))
    return out


def _endpoints(root) -> list[tuple[str, str, str]]:
    """(method, path, description) for ``GET /path`` lines in headings, dts and code blocks."""
    out, seen = [], set()
    for el in root.iter("h1", "h2", "h3", "h4", "h5", "dt", "code", "pre"):
        first = (el.text_content() or "").strip().split("\n", 1)[0]
        m = _HTTP.match(first)
        if not m or (m.group(1).upper(), m.group(2)) in seen:
            continue
        seen.add((m.group(1).upper(), m.group(2)))
        desc = []
        for sib in el.itersiblings():
            if sib.tag in ("h1", "h2", "h3", "h4", "h5") or sum(len(d) for d in desc) > MAX_DESCRIPTION:
                break
            if sib.tag in ("p", "dd", "ul", "ol", "table", "div"):
                desc.append(_text(sib))
        if not desc and el.getparent() is not None and el.tag == "code":  # a code span inside a paragraph
            desc.append(_text(el.getparent()))
        out.append((m.group(1).upper(), m.group(2), "\n\n".join(d for d in desc if d)))
    return out


def operations(html: str, url: str | None, source: str) -> tuple[list[Operation], str | None]:
    """Operations documented on one page, and the structure found (pydoc | sphinx | http | None)."""
    import lxml.html
    from lxml import etree

    if not looks_like_api_page(html):
        return [], None
    try:
        root = lxml.html.document_fromstring(html)
    except (etree.ParserError, ValueError):
        return [], None
    title = root.findtext(".//title") or ""
    host = urlparse(url).hostname if url else None
    provider = host or source
    m = re.match(r"Python: (?:module|package) ([\w.]+)", title.strip())
    api = m.group(1) if m else ""
    found = "pydoc"
    entries = _pydoc(root, api) if m else []
    if not entries:
        entries, found = _sphinx(root), "sphinx"
    ops: list[Operation] = []
    for name, sig, desc in entries:
        params, problem = parse_signature(sig)
        ops.append(
            Operation(
                provider=provider,
                api=api or name.rsplit(".", 1)[0],
                api_title=title.strip(),
                version="",
                operation_id=name,
                kind="function",
                spec_format="html",
                sdk_name=name,
                description=desc[:MAX_DESCRIPTION],
                parameters=params,
                url=url,
                notes=[problem] if problem else [],
            )
        )
    if ops:
        return ops, found
    for method, path, desc in _endpoints(root):
        params = [
            Param(name=a or b, location="path", type="string", required=True) for a, b in _PATH_PARAM.findall(path)
        ]
        ops.append(
            Operation(
                provider=provider,
                api=api or (title.strip() or provider),
                api_title=title.strip(),
                version="",
                operation_id=f"{method} {path}",
                kind="http",
                spec_format="html",
                method=method,
                path=path,
                description=html_to_text(desc)[:MAX_DESCRIPTION],
                parameters=params,
                url=url,
            )
        )
    return ops, "http" if ops else None
