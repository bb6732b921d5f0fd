"""Verification of imported trajectories, in APIGen's order (Liu et al. 2024, arXiv 2406.18518): format, then
"execution" — here a check of every call against the offered function's JSON schema, since no live API exists —
then a semantic check that needs no model. Each check records ``pass`` or the reason it failed:

* ``format``: ``no_tool_calls`` (no assistant message calls a tool), else ``pass`` (the importers already
  refused calls that do not parse: ``malformed_call``).
* ``schema``: ``unknown_function``, ``missing_required``, ``unknown_parameter``, ``wrong_type``, ``not_in_enum``,
  ``out_of_range`` — the first failure, with the function and parameter in the detail.
* ``grounding``: string argument values (4+ characters, not from an enum) should appear in the conversation before
  the call (user, system and tool messages); ``ungrounded_argument`` otherwise. Models often normalise values
  ("NYC" → "New York"), so by default this only flags (``verify.grounding: flag``).
"""

from __future__ import annotations

import json
from typing import Any

# JSON-schema types and the spellings BFCL and others use for them
_TYPES = {
    "string": (str,),
    "str": (str,),
    "integer": (int,),
    "int": (int,),
    "number": (int, float),
    "float": (int, float),
    "double": (int, float),
    "boolean": (bool,),
    "bool": (bool,),
    "array": (list,),
    "list": (list,),
    "tuple": (list,),
    "object": (dict,),
    "dict": (dict,),
}


def _type_ok(value: Any, typ: Any) -> bool:
    if isinstance(typ, list):
        return any(_type_ok(value, t) for t in typ)
    if typ in (None, "any", "null") and value is None:
        return True
    allowed = _TYPES.get(str(typ).lower()) if isinstance(typ, str) else None
    if allowed is None:
        return True  # a type we do not know (Java's HashMap, ...): not checked
    if isinstance(value, bool) and bool not in allowed:
        return False
    return isinstance(value, allowed)


def check_call(call: dict, tools: dict[str, dict]) -> tuple[str, str] | None:
    """The first schema failure of one call as (reason, detail), or None."""
    name = call["name"]
    fn = tools.get(name)
    if fn is None:
        return "unknown_function", name
    args = json.loads(call["arguments"]) if isinstance(call["arguments"], str) else call["arguments"]
    params = fn.get("parameters") or {}
    props = params.get("properties") or {}
    for req in params.get("required") or []:
        if req not in args:
            return "missing_required", f"{name}.{req}"
    for key, value in args.items():
        spec = props.get(key)
        if spec is None:
            if props or params.get("additionalProperties") is False:
                return "unknown_parameter", f"{name}.{key}"
            continue
        if "type" in spec and not _type_ok(value, spec["type"]):
            return "wrong_type", f"{name}.{key}: {type(value).__name__} is not {spec['type']}"
        if spec.get("enum") and value not in spec["enum"]:
            return "not_in_enum", f"{name}.{key}: {str(value)[:60]}"
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if "minimum" in spec and value < spec["minimum"] or "maximum" in spec and value > spec["maximum"]:
                return "out_of_range", f"{name}.{key}: {value}"
    return None


def _norm(text: str) -> str:
    return " ".join(str(text).casefold().split())


def _strings(value: Any):
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)


def verify(traj: dict) -> dict[str, str]:
    """Checks of one trajectory: {"format", "schema", "grounding"} → "pass" or "reason: detail"."""
    tools = {t["name"]: t for t in traj["tools"]}
    calls = [(i, c) for i, m in enumerate(traj["messages"]) for c in (m.get("tool_calls") or [])]
    checks = {"format": "pass" if calls else "no_tool_calls"}
    schema_result = "pass"
    for _, call in calls:
        failed = check_call(call, tools)
        if failed:
            schema_result = f"{failed[0]}: {failed[1]}"
            break
    checks["schema"] = schema_result if calls else "skipped"
    grounded = "pass"
    for i, call in calls:
        context = _norm(
            " ".join(m.get("content") or "" for m in traj["messages"][:i] if m["role"] in ("user", "system", "tool"))
        )
        args = json.loads(call["arguments"])
        props = (tools.get(call["name"], {}).get("parameters") or {}).get("properties") or {}
        for key, value in args.items():
            if (props.get(key) or {}).get("enum"):
                continue
            for s in _strings(value):
                if len(s.strip()) >= 4 and _norm(s) not in context:
                    grounded = f"ungrounded_argument: {call['name']}.{key}"
                    break
            if grounded != "pass":
                break
        if grounded != "pass":
            break
    checks["grounding"] = grounded if calls else "skipped"
    return checks


def render(traj: dict) -> str:
    """The trajectory as pretraining text (the documented format: docs/trajectories.md)."""
    parts = ["### Tools"] + [json.dumps(t, ensure_ascii=False, sort_keys=True) for t in traj["tools"]]
    for m in traj["messages"]:
        if m["role"] == "tool":
            whose = f" ({m['tool_name']})" if m.get("tool_name") else ""
            parts.append(f"\n### Tool result{whose}")
            parts.append(m.get("content") or "")
            continue
        parts.append(f"\n### {m['role'].capitalize()}")
        if m.get("content"):
            parts.append(m["content"])
        for c in m.get("tool_calls") or []:
            parts.append(f'<tool_call>{{"name": {json.dumps(c["name"])}, "arguments": {c["arguments"]}}}</tool_call>')
    return "\n".join(parts).strip()


def parse_rendered(text: str) -> dict:
    """The inverse of :func:`render` for what pairs need: the user turns, the tool results in order, and the
    assistant's last words."""
    users, results, assistant = [], [], []
    for block in text.split("\n\n### ")[1:] if not text.startswith("### ") else ("\n" + text).split("\n### ")[1:]:
        header, _, body = block.partition("\n")
        if header == "User":
            users.append(body.strip())
        elif header.startswith("Tool result"):
            results.append(body.strip())
        elif header == "Assistant":
            assistant.append(body.strip())
    final = " ".join(a for a in assistant if a and "<tool_call>" not in a)
    return {"user_turns": users, "results": results, "final": final}
