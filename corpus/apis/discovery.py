"""Google API discovery documents (``kind: discovery#restDescription``) → operations.

Methods live under ``methods`` and ``resources.<name>.methods``, with resources nested to any depth. Each method
has an ``id`` (``drive.files.list``), ``httpMethod``, ``path`` relative to ``rootUrl + servicePath``, and
``parameters`` (``location``: path or query). The request and response bodies are ``$ref``s to ``schemas`` by
schema id (not JSON pointers), so they are resolved here by name, cycles cut the same way as for OpenAPI.
"""

from __future__ import annotations

from typing import Any, Iterator

from corpus.apis.model import Operation, Param
from corpus.apis.specs import Refs, html_to_text, json_type, summarise


def _methods(node: dict, trail: tuple[str, ...] = (), depth: int = 0) -> Iterator[tuple[tuple[str, ...], dict]]:
    if depth > 20:  # a malformed document nesting resources without end
        return
    for name, m in sorted((node.get("methods") or {}).items()):
        if isinstance(m, dict):
            yield trail + (name,), m
    for name, r in sorted((node.get("resources") or {}).items()):
        if isinstance(r, dict):
            yield from _methods(r, trail + (name,), depth + 1)


def count_methods(doc: dict) -> int:
    return sum(1 for _ in _methods(doc))


class _ById(Refs):
    """Discovery ``$ref`` values name a schema by id (``"$ref": "File"``), not by JSON pointer."""

    def lookup(self, ref: str) -> Any:
        schemas = self.doc.get("schemas") or {}
        if ref.startswith("#"):
            return super().lookup(ref)
        if ref in schemas:
            return schemas[ref]
        if ref not in self.broken:
            self.broken.append(ref)
        return None


def _typed(value: Any, ptype: str) -> Any:
    """Discovery documents write every default as a string (``"false"``, ``"100"``): give it its type."""
    if not isinstance(value, str):
        return value
    try:
        if ptype == "boolean" and value in ("true", "false"):
            return value == "true"
        if ptype == "integer":
            return int(value)
        if ptype == "number":
            return float(value)
    except ValueError:
        pass
    return value


def operations(doc: dict) -> list[Operation]:
    refs = _ById(doc)
    api = str(doc.get("name") or "unknown")
    version = str(doc.get("version") or "")
    base = (doc.get("rootUrl") or "") + (doc.get("servicePath") or "")
    out = []
    for trail, m in _methods(doc):
        refs.refused.clear(), refs.broken.clear()  # notes are per operation
        params = []
        order = m.get("parameterOrder") or []
        names = list(order) + sorted(n for n in (m.get("parameters") or {}) if n not in order)
        for pname in names:
            p = (m.get("parameters") or {}).get(pname)
            if not isinstance(p, dict):
                continue
            ptype = json_type(p.get("type"))
            schema: dict[str, Any] = {}
            if p.get("repeated"):
                schema = {"type": "array", "items": {"type": ptype}}
                ptype = "array"
            if p.get("format"):
                (schema.setdefault("items", {}) if p.get("repeated") else schema)["format"] = p["format"]
            params.append(
                Param(
                    name=pname,
                    location=p.get("location") or "query",
                    type=ptype,
                    required=bool(p.get("required")),
                    description=html_to_text(p.get("description") or ""),
                    enum=[str(e) for e in p["enum"]] if isinstance(p.get("enum"), list) else None,
                    default=_typed(p.get("default"), ptype),
                    schema=schema or None,
                )
            )
        request = summarise(m["request"], refs, depth=3) if isinstance(m.get("request"), dict) else None
        if request:
            params.append(
                Param(
                    name="body",
                    location="body",
                    type="object",
                    required=True,
                    description=f"The request body ({m['request'].get('$ref', 'object')}).",
                    schema={k: v for k, v in request.items() if k != "description"},
                )
            )
        response = summarise(m["response"], refs, depth=3) if isinstance(m.get("response"), dict) else None
        path = m.get("flatPath") or m.get("path")
        out.append(
            Operation(
                provider="google",
                api=api,
                api_title=str(doc.get("title") or api),
                version=version,
                operation_id=str(m.get("id") or ".".join((api,) + trail)),
                kind="http",
                spec_format="discovery",
                description=html_to_text(m.get("description") or ""),
                method=m.get("httpMethod"),
                path="/" + str(path).lstrip("/") if path else None,
                sdk_name=api + "".join(f".{r}()" for r in trail[:-1]) + f".{trail[-1]}",
                parameters=params,
                request_schema=request,
                response_schema=response,
                deprecated=bool(m.get("deprecated")),
                base_url=base or None,
                notes=refs.notes(),
            )
        )
    return out
