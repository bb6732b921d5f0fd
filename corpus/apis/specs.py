"""Reading spec files safely: bytes → text → JSON/YAML → which format; local ``$ref`` resolution; HTML → text.

Every failure raises :class:`SpecError` with a machine-readable ``reason`` (the stage turns it into a reject row
naming the file): ``corrupt_gzip``, ``not_utf8``, ``empty_file``, ``malformed_json``, ``malformed_yaml``,
``unknown_format``, ``not_a_spec``, ``too_large`` (also a YAML alias bomb: see :func:`alias_expansion`), ``too_deep``.
"""

from __future__ import annotations

import html
import json
import re
import zlib
from typing import Any

import yaml

from corpus.io import jsonl

try:  # libyaml's parser is ~10x faster than the pure-Python one; both are safe loaders
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover - libyaml is in PyYAML's wheels
    from yaml import SafeLoader as _Loader


class SpecError(ValueError):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def decompress(data: bytes, name: str, max_bytes: int) -> bytes:
    """Gunzip ``.gz`` files (bounded: a gzip bomb stops at ``max_bytes``)."""
    if not name.endswith(".gz"):
        return data
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = d.decompress(data, max_bytes + 1)
    except zlib.error as err:
        raise SpecError("corrupt_gzip", str(err)) from None
    if len(out) > max_bytes:
        raise SpecError("too_large", f"over {max_bytes} bytes uncompressed")
    if not d.eof:
        raise SpecError("corrupt_gzip", "truncated gzip stream")
    return out


def decode_text(data: bytes) -> str:
    """Specs are UTF-8 (JSON's RFC 8259 requires it; YAML 1.2 allows UTF-16 only with a BOM, which we accept)."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise SpecError("not_utf8", f"invalid UTF-8 at byte {err.start}") from None


def parse(text: str, name: str) -> Any:
    """JSON by extension (``.json``), YAML otherwise; a JSON file that fails is not retried as YAML."""
    if not text.strip():
        raise SpecError("empty_file", "no content")
    if name.endswith((".json", ".json.gz")):
        try:
            return jsonl.loads(text, max_depth=None)  # specs nest deeply; only what the parser refuses is refused
        except json.JSONDecodeError as err:
            raise SpecError("malformed_json", f"line {err.lineno} column {err.colno}: {err.msg}") from None
        except jsonl.TooDeep as err:
            raise SpecError("too_deep", str(err)) from None
    try:
        doc = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1} column {mark.column + 1}: " if mark else ""
        problem = str(getattr(err, "problem", None) or err)
        raise SpecError("too_deep" if "nesting depth" in problem else "malformed_yaml", where + problem) from None
    except RecursionError:
        raise SpecError("too_deep", "YAML nested deeper than the parser's recursion limit") from None
    if "*" in text:  # aliases: what the readers would walk once they are expanded must stay near what was loaded
        distinct, expanded = alias_expansion(doc)
        if expanded is None:
            raise SpecError("too_large", "a YAML alias refers to a node that contains it (infinite when expanded)")
        if expanded > MAX_ALIAS_EXPANSION * distinct + ALIAS_SLACK:
            raise SpecError(
                "too_large",
                f"YAML aliases expand {distinct} nodes to {expanded}: over {MAX_ALIAS_EXPANSION}x (an alias bomb)",
            )
    return doc


# YAML aliases share one loaded node, so a few hundred bytes can stand for billions of nodes ("billion laughs"):
# loading is cheap, but every reader that walks the spec (summaries, examples, JSON output) expands them. A spec
# whose aliases expand it more than this factor (plus the slack, for small specs that reuse a block often) is
# refused (`too_large`) before anything walks it.
MAX_ALIAS_EXPANSION = 10
ALIAS_SLACK = 100_000


def alias_expansion(doc: Any) -> tuple[int, int | None]:
    """(nodes as loaded, nodes once aliases are expanded; None for a cycle) of a loaded YAML document: equal
    without aliases. Time linear in the nodes as loaded, no recursion."""
    size: dict[int, int] = {}
    distinct = 0
    open_: set[int] = set()
    stack: list[tuple[Any, bool]] = [(doc, False)]
    while stack:
        node, done = stack.pop()
        if not isinstance(node, (dict, list)):
            continue
        key = id(node)
        children = list(node.values()) if isinstance(node, dict) else node
        if done:
            size[key] = 1 + sum(size.get(id(c), 1) for c in children)
            distinct += 1 + sum(1 for c in children if not isinstance(c, (dict, list)))
            open_.discard(key)
            continue
        if key in size:
            continue
        if key in open_:
            return distinct, None
        open_.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in children if isinstance(c, (dict, list)) and id(c) not in size)
    return distinct, size.get(id(doc), 1)


def detect(doc: Any) -> str:
    """openapi-3 | swagger-2 | botocore | discovery | mcp, or SpecError(unknown_format)."""
    if not isinstance(doc, dict):
        raise SpecError("unknown_format", f"top level is {type(doc).__name__}, not a mapping")
    if "openapi" in doc:
        v = str(doc["openapi"])
        if re.match(r"^3\.[0-9]+(\.[0-9]+)?", v):
            return "openapi-3"
        raise SpecError("unknown_format", f"openapi version {v!r} (3.x is supported)")
    if "swagger" in doc:
        v = str(doc["swagger"])
        if v in ("2.0", "2"):
            return "swagger-2"
        raise SpecError("unknown_format", f"swagger version {v!r} (2.0 is supported)")
    if isinstance(doc.get("operations"), dict) and isinstance(doc.get("metadata"), dict):
        return "botocore"
    if doc.get("kind") == "discovery#restDescription" or (
        "discoveryVersion" in doc and ("resources" in doc or "methods" in doc)
    ):
        return "discovery"
    if mcp_tools(doc) is not None:
        return "mcp"
    if doc.get("kind") == "discovery#directoryList":
        raise SpecError("not_a_spec", "a discovery directory list (an index of APIs, no operations)")
    keys = ", ".join(sorted(map(str, doc))[:8])
    raise SpecError(
        "unknown_format", f"not OpenAPI 3, Swagger 2, botocore, discovery or an MCP tools/list result (keys: {keys})"
    )


def mcp_tools(doc: Any) -> list | None:
    """The tool list of an MCP ``tools/list`` result (``{"tools": [...]}``, bare or inside its JSON-RPC response
    ``{"jsonrpc": "2.0", "result": {"tools": [...]}}``) when every tool has a name and an ``inputSchema``;
    else None."""
    if isinstance(doc, dict) and isinstance(doc.get("result"), dict) and "jsonrpc" in doc:
        doc = doc["result"]
    tools = doc.get("tools") if isinstance(doc, dict) else None
    if not isinstance(tools, list) or not tools:
        return None
    ok = all(
        isinstance(t, dict) and isinstance(t.get("name"), str) and isinstance(t.get("inputSchema"), dict) for t in tools
    )
    return tools if ok else None


# --------------------------------------------------------------------------------------------- $ref


class Refs:
    """Local JSON-pointer ``$ref`` resolution for one document.

    Written here rather than taken from jsonref / referencing: only same-document pointers may resolve (a remote
    ``$ref`` is refused, never fetched, and noted), and the schema walk needs its own stack of open refs to cut
    cycles, which a proxying resolver would hide. RFC 6901 escapes (``~0``, ``~1``) and %-encoding are handled.
    """

    def __init__(self, doc: Any) -> None:
        self.doc = doc
        self.refused: list[str] = []
        self.broken: list[str] = []

    def lookup(self, ref: str) -> Any:
        """The target of a local ref, or None (a remote ref is recorded in ``refused``, a dangling one in
        ``broken``)."""
        if not ref.startswith("#"):
            if ref not in self.refused:
                self.refused.append(ref)
            return None
        node = self.doc
        from urllib.parse import unquote

        for raw in unquote(ref[1:]).split("/")[1:]:
            key = raw.replace("~1", "/").replace("~0", "~")
            if isinstance(node, dict) and key in node:
                node = node[key]
            elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
                node = node[int(key)]
            else:
                if ref not in self.broken:
                    self.broken.append(ref)
                return None
        return node

    def deref(self, node: Any, limit: int = 32) -> Any:
        """Follow a chain of ``$ref`` objects (a ref to a ref ...) to a non-ref node; None when it cannot."""
        seen = 0
        while isinstance(node, dict) and isinstance(node.get("$ref"), str):
            seen += 1
            if seen > limit:
                return None
            node = self.lookup(node["$ref"])
        return node

    def notes(self) -> list[str]:
        return [f"remote $ref refused (not fetched): {r}" for r in self.refused] + [
            f"unresolvable $ref: {r}" for r in self.broken
        ]


def summarise(schema: Any, refs: Refs, depth: int = 4, max_props: int = 60, describe: int = 1) -> dict:
    """A JSON schema cut to ``depth`` levels with every local ``$ref`` inlined; a ref already open on the path
    (a cycle) becomes ``{"$recursive": Name}``. Descriptions (HTML removed) are kept on the first ``describe``
    levels only: deeper ones made a record ~5x larger while adding little a model needs to form a call."""

    def walk(node: Any, level: int, stack: tuple[str, ...]) -> dict:
        if not isinstance(node, dict):
            return {}
        ref = node.get("$ref")
        if isinstance(ref, str):
            name = ref.rsplit("/", 1)[-1]
            if ref in stack:
                return {"$recursive": name, "type": "object"}
            target = refs.lookup(ref)
            if target is None:
                return {"type": "object", "description": f"unresolved reference {ref}"}
            out = walk(target, level, stack + (ref,))
            if isinstance(target, dict) and out.get("type") == "object":
                out.setdefault("title", name)
            return out
        out: dict[str, Any] = {}
        for key in ("type", "format", "enum", "default", "minimum", "maximum", "pattern", "nullable"):
            if key in node and node[key] is not None:
                value = node[key]
                if key == "enum" and isinstance(value, list):
                    value = [v for v in value if isinstance(v, (str, int, float, bool))][:100]
                if isinstance(value, (str, int, float, bool, list)):
                    out[key] = value
        if isinstance(out.get("type"), list):  # OpenAPI 3.1: ["string", "null"]
            types = [t for t in out["type"] if t != "null"]
            if len(types) < len(out["type"]) and types:
                out["nullable"] = True
            out["type"] = types[0] if types else "null"
        if level <= describe and isinstance(node.get("description"), str) and node["description"].strip():
            out["description"] = html_to_text(node["description"])
        for combo in ("allOf", "oneOf", "anyOf"):
            if isinstance(node.get(combo), list) and level < depth:
                parts = [walk(p, level + 1, stack) for p in node[combo][:10]]
                if combo == "allOf":  # merge the parts' properties: what a client must send
                    for p in parts:
                        out.setdefault("properties", {}).update(p.get("properties", {}))
                        out.setdefault("required", []).extend(p.get("required", []))
                        if "type" in p and "type" not in out:
                            out["type"] = p["type"]
                else:
                    real = [p for p in parts if p.get("type") != "null" or len(p) > 1]
                    if len(real) == 1 and len(parts) == 2:  # OpenAPI 3.1's anyOf: [T, {type: null}]: T, nullable
                        for key, value in real[0].items():
                            out.setdefault(key, value)
                        out["nullable"] = True
                    else:
                        out[combo] = parts
        props = node.get("properties")
        if isinstance(props, dict):
            out.setdefault("type", "object")
            if level < depth:
                kept = out.setdefault("properties", {})
                for name in list(props)[:max_props]:
                    kept[str(name)] = walk(props[name], level + 1, stack)
            req = node.get("required")
            if isinstance(req, list):
                out.setdefault("required", []).extend(str(r) for r in req)
        items = node.get("items")
        if isinstance(items, dict):
            out.setdefault("type", "array")
            out["items"] = walk(items, level + 1, stack) if level < depth else {"type": items.get("type", "object")}
        if "required" in out:
            out["required"] = sorted(set(out["required"]))
            if not out["required"]:
                del out["required"]
        if out.get("properties") == {}:
            del out["properties"]
        return out

    return walk(schema, 0, ())


def json_type(t: Any) -> str:
    return t if isinstance(t, str) and t else "string"


# --------------------------------------------------------------------------------------------- HTML → text

_TAGLIKE = re.compile(r"<[A-Za-z/!]")
_BLOCK = {
    "p",
    "div",
    "ul",
    "ol",
    "dl",
    "dt",
    "dd",
    "table",
    "tr",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "pre",
    "important",
    "note",
    "blockquote",
    "section",
    "para",
}


def html_to_text(fragment: str) -> str:
    """Clean text from an HTML description fragment (botocore, discovery and OpenAPI descriptions carry HTML):
    paragraphs and list items on their own lines (items as ``- ``), ``<code>`` as backticks, everything else as
    its text. lxml parses the fragment (forgiving of broken markup); trafilatura is for whole pages, not for
    the thousands of small fragments in a spec."""
    if not fragment:
        return ""
    if not _TAGLIKE.search(fragment):
        return _squeeze(html.unescape(fragment))
    import lxml.html
    from lxml import etree

    try:
        root = lxml.html.fragment_fromstring(fragment, create_parent="div")
    except (etree.ParserError, ValueError):
        return _squeeze(re.sub(r"<[^>]+>", " ", html.unescape(fragment)))
    parts: list[str] = []
    _emit(root, parts)
    text = "".join(parts)
    lines = [" ".join(line.split()) for line in text.split("\n")]
    out: list[str] = []
    for line in lines:
        if out and out[-1] == "-" and line:  # a list item whose text sits in a <p> inside the <li>
            out[-1] = f"- {line}"
        elif line or (out and out[-1] and out[-1] != "-"):
            out.append(line)
    return "\n".join(out).strip()


def _emit(el, parts: list[str]) -> None:
    tag = el.tag if isinstance(el.tag, str) else ""
    tag = tag.lower()
    if tag in ("script", "style", "br"):
        parts.append("\n" if tag == "br" else "")
        if el.tail:
            parts.append(el.tail)
        return
    block = tag in _BLOCK
    if block or tag == "li":
        parts.append("\n")
    if tag == "li":
        parts.append("- ")
    if tag == "code":
        parts.append("`")
    if el.text:
        parts.append(el.text)
    for child in el:
        _emit(child, parts)
    if tag == "code":
        parts.append("`")
    if block or tag == "li":
        parts.append("\n")
    if el.tail:
        parts.append(el.tail)


def _squeeze(text: str) -> str:
    paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", text)]
    return "\n\n".join(p for p in paragraphs if p)
