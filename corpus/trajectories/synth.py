"""Trajectories synthesised from API operations, APIGen-MT style (Prabhakar et al. 2025, arXiv 2504.03601), with
deterministic templates (no model).

For each operation (an ingest-apis ``tool_doc`` record):

1. **Blueprint**: the user intent (the operation's description made imperative, "Delete an ACME endpoint with
   the AWS Certificate Manager API."), the ground-truth call (the operation's OpenAI ``tool_schema`` name, its
   required arguments with values made from their JSON schema: enum → first value, default, minimum, a
   ``example-<name>`` string, ...) and the expected outcome (an example of the response schema).
2. **Review** by the checks of :mod:`corpus.trajectories.verify` (format, schema, grounding): a blueprint whose
   call does not fit its own schema, or has no intent, is rejected.
3. **Conversation** following the blueprint: the user asks (stating the argument values, so they are grounded),
   the assistant calls the tool, the tool answers with the expected outcome, the assistant reports. The API's
   other operations are offered too (up to ``distractors``, chosen by a seeded hash), so choosing the tool is
   part of the task. Provenance says ``template_made: true``; results are examples built from the response
   schema, not real API output.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from corpus.extract.rules import imperative
from corpus.ids import dumps
from corpus.trajectories.formats import message


class SynthError(ValueError):
    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason, self.detail = reason, detail


def example_value(schema: Any, name: str = "value", depth: int = 0) -> Any:
    """A deterministic value that fits a (summarised) JSON schema."""
    if not isinstance(schema, dict) or depth > 4:
        return f"example-{_slug(name)}"
    if schema.get("enum"):
        return schema["enum"][0]
    if "default" in schema and schema["default"] is not None:
        return schema["default"]
    typ = schema.get("type")
    if isinstance(typ, list):
        typ = next((t for t in typ if t != "null"), "string")
    if typ in ("integer", "number"):
        low = schema.get("minimum", 1)
        high = schema.get("maximum")
        value = low if high is None else min(max(low, 1), high)
        return int(value) if typ == "integer" else float(value)
    if typ == "boolean":
        return True
    if typ == "array":
        return [example_value(schema.get("items") or {"type": "string"}, name, depth + 1)]
    if typ == "object" or "properties" in schema:
        props = schema.get("properties") or {}
        return {k: example_value(props[k], k, depth + 1) for k in schema.get("required") or [] if k in props}
    fmt = schema.get("format")
    if fmt == "date-time":
        return "2026-01-01T00:00:00Z"
    if fmt == "date":
        return "2026-01-01"
    return f"example-{_slug(name)}"


def _slug(name: str) -> str:
    s = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "-", name)
    return re.sub(r"[^a-z0-9]+", "-", s.lower()).strip("-") or "value"


def _function(record: dict) -> dict:
    schema = json.loads(record["tool_schema"]) if isinstance(record["tool_schema"], str) else record["tool_schema"]
    fn = schema.get("function", schema)
    return {"name": fn["name"], "description": fn.get("description") or "",
            "parameters": fn.get("parameters") or {"type": "object", "properties": {}}}


def _say(key: str, value: Any) -> str:
    return f'{key} "{value}"' if isinstance(value, str) else f"{key} {json.dumps(value, ensure_ascii=False)}"


def blueprint(record: dict) -> dict:
    """The task blueprint of one operation: intent, ground-truth call, expected outcome."""
    fn = _function(record)
    desc = " ".join((record.get("description") or "").split())
    first = re.split(r"(?<=[.!?])\s", desc, 1)[0] if desc else ""
    action = imperative(first)
    if not action:
        raise SynthError("no_intent", f"description does not start with a verb: {first[:80]!r}")
    api = record.get("api_title") or record.get("api") or ""
    api = api if api.lower().endswith("api") else f"{api} API"
    params = fn["parameters"]
    props = params.get("properties") or {}
    args = {k: example_value(props.get(k), k) for k in params.get("required") or [] if k in props}
    response = record.get("response_schema")
    outcome = example_value(json.loads(response) if isinstance(response, str) else response, "result") \
        if response else {}
    return {"intent": f"{action[0].upper()}{action[1:]} with the {api}.", "function": fn["name"],
            "arguments": args, "outcome": outcome if isinstance(outcome, dict) else {"result": outcome}}


def _pick(seed: int, key: str) -> str:
    return hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()


def conversation(record: dict, siblings: list[dict], seed: int, distractors: int) -> tuple[dict, dict]:
    """(trajectory, blueprint) for one operation; ``siblings`` are the other operations of its API."""
    bp = blueprint(record)
    others = sorted((s for s in siblings if s["id"] != record["id"]), key=lambda s: _pick(seed, s["id"]))
    tools = [_function(record)] + [_function(s) for s in others[:distractors]]
    tools.sort(key=lambda t: _pick(seed + 1, t["name"]))
    ask = bp["intent"]
    if bp["arguments"]:
        ask += " Use " + ", ".join(_say(k, v) for k, v in bp["arguments"].items()) + "."
    call = {"name": bp["function"], "arguments": dumps(bp["arguments"])}
    result = dumps(bp["outcome"])
    msgs = [message("user", ask), message("assistant", None, [call]),
            message("tool", result, tool_name=bp["function"]),
            message("assistant", f"Done: {bp['function']} succeeded" + (f" and returned {result}." if bp["outcome"]
                                                                           else "."))]
    return {"tools": tools, "messages": msgs, "reference_calls": [{"name": call["name"],
                                                                   "arguments": bp["arguments"]}]}, bp
