"""One API operation, whatever spec it came from, and its two renderings: markdown text and a tool schema.

Every spec reader (OpenAPI / Swagger, botocore, Google discovery, HTML docs pages) produces :class:`Operation`
objects; everything after that is shared. ``text`` is what the pretraining corpus sees (readable markdown);
``tool_schema`` is a JSON-schema function definition in the OpenAI tools format, which the trajectory stage (#6)
verifies and synthesises calls against.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

# OpenAI function names: ^[a-zA-Z0-9_-]{1,64}$
_NAME_BAD = re.compile(r"[^A-Za-z0-9_-]+")
MAX_NAME = 64
JSON_TYPES = {"string", "integer", "number", "boolean", "array", "object", "null"}


@dataclass
class Param:
    name: str
    location: str  # path | query | header | cookie | body | form | argument
    type: str  # a JSON-schema type, or the spec's own where it has no JSON equivalent ("timestamp", "blob")
    required: bool = False
    description: str = ""
    enum: list[str] | None = None
    default: Any = None
    schema: dict | None = None  # JSON schema of the value (summarised, depth-limited), for tool_schema
    kind: str | None = None  # a Python parameter's kind: positional_only, keyword_only, var_positional, ...

    def row(self) -> dict:
        return {
            "name": self.name,
            "location": self.location,
            "type": self.type,
            "required": self.required,
            "enum": self.enum,
            "default": None if self.default is None else json.dumps(self.default, sort_keys=True),
            "description": self.description,
            "kind": self.kind,
        }


@dataclass
class Operation:
    provider: str  # who publishes the API: "aws", "google", an OpenAPI spec's provider
    api: str  # the API / service name
    version: str
    operation_id: str
    kind: str  # http | sdk | function | class | method
    spec_format: str  # openapi-3 | swagger-2 | botocore | discovery | html | python
    description: str = ""
    api_title: str = ""
    method: str | None = None
    path: str | None = None
    sdk_name: str | None = None
    parameters: list[Param] = field(default_factory=list)
    request_schema: dict | None = None
    response_schema: dict | None = None
    examples: list[Any] = field(default_factory=list)
    deprecated: bool = False
    url: str | None = None  # the page it was read from (HTML docs); None for spec files
    base_url: str | None = None  # the server the paths are relative to, when the spec says
    notes: list[str] = field(default_factory=list)  # e.g. "remote $ref refused: http://..."
    signature: str | None = None  # a Python callable's signature: "json.dumps(obj, *, skipkeys=False, ...)"
    spec_file: str | None = None  # where it was read, when the reader knows better than the input file's path
    licence: str | None = None  # the licence of the package it comes from, when the package says

    # ------------------------------------------------------------------------------------------ renderings

    def function_name(self) -> str:
        """A valid OpenAI function name: the SDK name or operation id with other characters as ``_``, cut to
        64 characters with a short hash of the full name when too long."""
        raw = self.sdk_name or self.operation_id or f"{self.method}_{self.path}"
        name = _NAME_BAD.sub("_", raw).strip("_") or "operation"
        if len(name) > MAX_NAME:
            digest = hashlib.sha256(raw.encode()).hexdigest()[:8]
            name = f"{name[: MAX_NAME - 9]}_{digest}"
        return name

    def tool_schema(self) -> dict:
        properties: dict[str, Any] = {}
        required: list[str] = []
        for p in self.parameters:
            if p.name in properties:  # the same name in two locations (path and query): keep the first
                continue
            prop = dict(p.schema) if p.schema else {}
            if p.type in JSON_TYPES:
                prop.setdefault("type", p.type)
            elif p.type in ("timestamp", "blob") and "type" not in prop:
                prop.update(type="string", format="date-time" if p.type == "timestamp" else "byte")
            # any other type (a Python annotation, "any") has no JSON-schema equivalent: left open
            if prop.pop("nullable", False) and isinstance(prop.get("type"), str):  # OpenAPI's flag, in JSON schema
                prop["type"] = [prop["type"], "null"]
            if p.description:
                prop["description"] = p.description
            if p.enum:
                prop["enum"] = p.enum
            if p.default is not None:
                prop["default"] = p.default
            properties[p.name] = prop
            if p.required:
                required.append(p.name)
        description = self.description or self.title()
        return {
            "type": "function",
            "function": {
                "name": self.function_name(),
                "description": description,
                "parameters": {"type": "object", "properties": properties, "required": required},
            },
        }

    def title(self) -> str:
        if self.spec_format == "python":
            return f"{self.operation_id} ({self.provider} {self.version})".replace(" )", ")")
        return f"{self.api_title or self.api} {self.version}: {self.operation_id}".strip()

    def markdown(self) -> str:
        lines = [f"# {self.title()}", ""]
        call = []
        if self.method and self.path:
            call.append(f"`{self.method.upper()} {self.path}`")
        if self.sdk_name:
            call.append(f"SDK: `{self.sdk_name}`")
        if self.signature:
            lines += ["```python", self.signature, "```", ""]
        elif call:
            lines += [" · ".join(call), ""]
        if self.deprecated:
            lines += ["**Deprecated.**", ""]
        if self.description:
            lines += [self.description, ""]
        if self.parameters:
            lines += ["## Parameters", ""]
            python = self.spec_format == "python"
            for p in self.parameters:
                shown = p.type if not (python and p.type == "any") else ""
                if p.schema and p.schema.get("nullable") and shown and "null" not in shown:
                    shown += " (nullable)"
                bits = [shown, p.location] + (["required"] if p.required else [])
                stars = {"var_positional": "*", "var_keyword": "**"}.get(p.kind or "", "")
                line = f"- `{stars}{p.name}` ({', '.join(b for b in bits if b)})"
                if p.description:
                    line += f": {p.description}"
                if p.enum:
                    line += (
                        " One of: "
                        + ", ".join(f"`{e}`" for e in p.enum[:50])
                        + (", …" if len(p.enum) > 50 else "")
                        + "."
                    )
                if p.default is not None:
                    line += f" Default: `{repr(p.default) if python else json.dumps(p.default)}`."
                lines.append(line)
            lines.append("")
        for heading, sch in (("Request body", self.request_schema), ("Response", self.response_schema)):
            if sch:
                lines += [f"## {heading}", ""] + schema_lines(sch) + [""]
        if self.examples and self.spec_format == "python":
            lines += ["## Examples", ""]
            for ex in self.examples[:5]:
                lines += ([ex["prose"], ""] if ex.get("prose") else []) + ["```pycon", ex["doctest"], "```", ""]
        elif self.examples:
            lines += ["## Examples", ""]
            for ex in self.examples[:5]:
                body = ex if isinstance(ex, str) else json.dumps(ex, indent=2, sort_keys=True, ensure_ascii=False)
                lines += ["```json" if not isinstance(ex, str) else "```", body, "```", ""]
        return "\n".join(lines).strip().replace("\xa0", " ") + "\n"  # no-break spaces: layout, not content

    def record(self) -> dict:
        """The typed record (tool_doc schema, without id / source / text, which the stage adds)."""
        return {
            "provider": self.provider,
            "api": self.api,
            "api_title": self.api_title or None,
            "version": self.version,
            "operation_id": self.operation_id,
            "kind": self.kind,
            "spec_format": self.spec_format,
            "method": self.method.upper() if self.method else None,
            "path": self.path,
            "sdk_name": self.sdk_name,
            "description": self.description,
            "parameters": [p.row() for p in self.parameters],
            "request_schema": None if self.request_schema is None else json.dumps(self.request_schema, sort_keys=True),
            "response_schema": None
            if self.response_schema is None
            else json.dumps(self.response_schema, sort_keys=True),
            "examples": [e if isinstance(e, str) else json.dumps(e, sort_keys=True) for e in self.examples],
            "deprecated": self.deprecated,
            "base_url": self.base_url,
            "signature": self.signature,
            "licence": self.licence,
            "tool_schema": json.dumps(self.tool_schema(), sort_keys=True),
        }


def schema_lines(sch: dict, indent: int = 0, limit: int = 200) -> list[str]:
    """A summarised JSON schema as a markdown bullet list (properties nested by indentation)."""
    out: list[str] = []

    def walk(s: dict, depth: int) -> None:
        props = s.get("properties") or {}
        if not props and s.get("type") == "array" and isinstance(s.get("items"), dict):
            walk(s["items"], depth)
            return
        required = set(s.get("required") or [])
        for name, p in props.items():
            if len(out) >= limit:
                return
            t = type_label(p)
            line = "  " * depth + f"- `{name}` ({t}{', required' if name in required else ''})"
            if p.get("description"):
                line += f": {first_sentence(p['description'])}"
            out.append(line)
            walk(p, depth + 1)

    walk(sch, indent)
    if not out:
        out.append(f"- {type_label(sch)}" + (f": {sch['description']}" if sch.get("description") else ""))
    return out


def type_label(s: dict) -> str:
    label = _type_label(s)
    return f"{label} (nullable)" if s.get("nullable") and label != "null" else label


def _type_label(s: dict) -> str:
    if s.get("$recursive"):
        return f"{s['$recursive']} (recursive)"
    t = s.get("type") or ("object" if s.get("properties") else "any")
    if t == "array" and isinstance(s.get("items"), dict):
        return f"array of {type_label(s['items'])}"
    if s.get("title") and t == "object":
        return f"{s['title']} object"
    return str(t)


def first_sentence(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    m = re.search(r"(?<=[.!?])\s", text)
    cut = text[: m.start()] if m and m.start() < limit else text[:limit]
    return cut + ("…" if len(cut) < len(text) and not cut.endswith((".", "!", "?")) else "")
