"""OpenAPI 3.x and Swagger 2.0 (JSON or YAML) → operations, one per (path, HTTP method).

Local ``$ref``s (path items, parameters, request bodies, responses, schemas) are resolved; a remote ``$ref`` is
refused (never fetched) and noted in the record; a cyclic schema is cut where it closes (``$recursive``).
Provider and API names come from the ``x-providerName`` / ``x-serviceName`` extensions that APIs.guru's
openapi-directory sets, else from the server host and the title.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlparse

from corpus.apis.model import Operation, Param
from corpus.apis.specs import Refs, html_to_text, json_type, summarise

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
_SLUG = re.compile(r"[^a-z0-9]+")


def _slug(s: str) -> str:
    return _SLUG.sub("-", s.lower()).strip("-") or "api"


def iter_operations(doc: dict, refs: Refs):
    """(path, method, path item, operation) for every operation, in path order."""
    paths = doc.get("paths")
    if not isinstance(paths, dict):
        return
    for path in sorted(paths, key=str):
        item = refs.deref(paths[path])
        if not isinstance(item, dict):
            continue
        for method in METHODS:
            op = item.get(method)
            if isinstance(op, dict):
                yield str(path), method, item, op


def _names(doc: dict, swagger: bool) -> tuple[str, str, str, str | None]:
    info = doc.get("info") if isinstance(doc.get("info"), dict) else {}
    title = str(info.get("title") or "").strip()
    if swagger:
        host = str(doc.get("host") or "")
        scheme = (doc.get("schemes") or ["https"])[0] if isinstance(doc.get("schemes"), list) else "https"
        base = f"{scheme}://{host}{doc.get('basePath') or ''}" if host else None
    else:
        servers = doc.get("servers") if isinstance(doc.get("servers"), list) else []
        base = servers[0].get("url") if servers and isinstance(servers[0], dict) else None
        host = urlparse(base).hostname if base and "://" in base else ""
    provider = str(info.get("x-providerName") or host or _slug(title) or "unknown")
    api = str(info.get("x-serviceName") or _slug(title) or provider)
    return provider, api, title, base


def _param(p: dict, refs: Refs, swagger: bool) -> Param | None:
    p = refs.deref(p)
    if not isinstance(p, dict) or not p.get("name"):
        return None
    loc = str(p.get("in") or "query")
    if swagger and loc == "body":
        sch = summarise(p.get("schema") or {}, refs, depth=3)
        return Param(
            name=str(p["name"]),
            location="body",
            type=json_type(sch.get("type") or "object"),
            required=bool(p.get("required")),
            description=html_to_text(str(p.get("description") or "")),
            schema={k: v for k, v in sch.items() if k != "description"},
        )
    # OpenAPI 3 keeps the type in `schema`; Swagger 2 on the parameter itself
    sch = summarise(p["schema"], refs, depth=2) if isinstance(p.get("schema"), dict) else summarise(p, refs, 2)
    sch.pop("description", None)
    enum = [str(e) for e in sch.pop("enum")] if isinstance(sch.get("enum"), list) else None
    default = sch.pop("default", None)
    return Param(
        name=str(p["name"]),
        location="form" if loc == "formData" else loc,
        type=json_type(sch.get("type")),
        required=bool(p.get("required")) or loc == "path",
        description=html_to_text(str(p.get("description") or "")),
        enum=enum,
        default=default,
        schema=sch or None,
    )


def _media_schema(content: Any, refs: Refs) -> tuple[dict | None, list]:
    """Schema and examples of the JSON media type (else the first one) of an OpenAPI 3 content map."""
    if not isinstance(content, dict) or not content:
        return None, []
    mime = next((m for m in content if "json" in str(m)), next(iter(content)))
    media = refs.deref(content[mime]) or {}
    examples = []
    if "example" in media:
        examples.append(media["example"])
    if isinstance(media.get("examples"), dict):
        for ex in list(media["examples"].values())[:3]:
            ex = refs.deref(ex)
            if isinstance(ex, dict) and "value" in ex:
                examples.append(ex["value"])
    sch = summarise(media.get("schema"), refs, depth=3) if isinstance(media.get("schema"), dict) else None
    return sch, examples


def _response(op: dict, refs: Refs, swagger: bool) -> tuple[dict | None, list]:
    responses = op.get("responses") if isinstance(op.get("responses"), dict) else {}
    codes = sorted((str(c) for c in responses if str(c).startswith("2")), key=str) or (
        ["default"] if "default" in responses else []
    )
    for code in codes:
        key = code if code in responses else int(code) if code.isdigit() and int(code) in responses else None
        r = refs.deref(responses.get(key)) if key is not None else None
        if not isinstance(r, dict):
            continue
        if swagger:
            sch = summarise(r["schema"], refs, depth=3) if isinstance(r.get("schema"), dict) else None
            ex = list((r.get("examples") or {}).values())[:2] if isinstance(r.get("examples"), dict) else []
        else:
            sch, ex = _media_schema(r.get("content"), refs)
        if sch is None and r.get("description"):
            sch = {"description": html_to_text(str(r["description"]))}
        return sch, ex
    return None, []


def operations(doc: dict, spec_format: str) -> list[Operation]:
    swagger = spec_format == "swagger-2"
    refs = Refs(doc)
    provider, api, title, base = _names(doc, swagger)
    info = doc.get("info") if isinstance(doc.get("info"), dict) else {}
    version = str(info.get("version") or "")
    out = []
    for path, method, item, op in iter_operations(doc, refs):
        refs.refused.clear(), refs.broken.clear()  # notes are per operation
        params: list[Param] = []
        seen: set[tuple[str, str]] = set()
        for raw in list(op.get("parameters") or []) + list(item.get("parameters") or []):  # op-level wins
            p = _param(raw, refs, swagger)
            if p is not None and (p.name, p.location) not in seen:
                seen.add((p.name, p.location))
                params.append(p)
        request, examples = None, []
        if not swagger and op.get("requestBody") is not None:
            body = refs.deref(op["requestBody"]) or {}
            request, examples = _media_schema(body.get("content"), refs) if isinstance(body, dict) else (None, [])
            if request is not None:
                params.append(
                    Param(
                        name="body",
                        location="body",
                        type=json_type(request.get("type") or "object"),
                        required=bool(body.get("required")),
                        description=html_to_text(str(body.get("description") or "")),
                        schema={k: v for k, v in request.items() if k != "description"},
                    )
                )
        elif swagger:
            request = next((p.schema for p in params if p.location == "body"), None)
        response, response_examples = _response(op, refs, swagger)
        summary = html_to_text(str(op.get("summary") or ""))
        description = html_to_text(str(op.get("description") or ""))
        if summary and not description.startswith(summary):
            description = f"{summary}\n\n{description}".strip()
        out.append(
            Operation(
                provider=provider,
                api=api,
                api_title=title,
                version=version,
                operation_id=str(op.get("operationId") or f"{method.upper()} {path}"),
                kind="http",
                spec_format=spec_format,
                description=description,
                method=method,
                path=path,
                parameters=params,
                request_schema=request,
                response_schema=response,
                examples=[{"request": e} for e in examples[:2]] + [{"response": e} for e in response_examples[:2]],
                deprecated=bool(op.get("deprecated")),
                base_url=base,
                notes=refs.notes(),
            )
        )
    return out
