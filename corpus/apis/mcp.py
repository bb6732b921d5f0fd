"""MCP tool lists → operations.

An MCP server describes its tools in the result of ``tools/list``: each tool has a ``name``, an optional
``title`` and ``description``, an ``inputSchema`` (a JSON schema of its arguments) and, in newer servers, an
``outputSchema`` and ``annotations`` (read-only, destructive, idempotent hints). A saved result (bare, or the
whole JSON-RPC response) is an input like any spec; the server is named by ``serverInfo`` when the file holds
it (an ``initialize`` result saved beside the list), else by the file's name.
"""

from __future__ import annotations

import posixpath

from corpus.apis.model import Operation, Param
from corpus.apis.specs import Refs, html_to_text, json_type, mcp_tools, summarise


def operations(doc: dict, path: str) -> list[Operation]:
    tools = mcp_tools(doc) or []
    info = doc.get("serverInfo") or (doc.get("result") or {}).get("serverInfo") or {}
    stem = posixpath.basename(path).split(".")[0]
    server = str(info.get("name") or stem)
    version = str(info.get("version") or "")
    refs = Refs(doc)
    ops = []
    for tool in tools:
        schema = summarise(tool["inputSchema"], refs, depth=3, describe=2)
        required = set(schema.get("required") or [])
        params = [
            Param(
                name=str(name),
                location="argument",
                type=json_type(sub.get("type")),
                required=name in required,
                description=sub.get("description", ""),
                enum=sub.get("enum"),
                default=sub.get("default"),
                schema={k: v for k, v in sub.items() if k != "description"},
            )
            for name, sub in (schema.get("properties") or {}).items()
        ]
        hints = tool.get("annotations") if isinstance(tool.get("annotations"), dict) else {}
        notes = [f"{k}: {v}" for k, v in sorted(hints.items()) if k.endswith("Hint")]
        output = tool.get("outputSchema")
        ops.append(
            Operation(
                provider=server,
                api=server,
                api_title=str(info.get("title") or server),
                version=version,
                operation_id=tool["name"],
                kind="function",
                spec_format="mcp",
                description=html_to_text(str(tool.get("description") or tool.get("title") or "")),
                sdk_name=tool["name"],
                parameters=params,
                response_schema=summarise(output, refs, depth=3) if isinstance(output, dict) else None,
                notes=notes,
            )
        )
    return ops
