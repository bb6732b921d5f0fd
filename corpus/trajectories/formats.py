"""Importers: function-calling records in the common formats → one trajectory shape.

A trajectory is ``{"tools": [...], "messages": [...], "reference_calls": ... | None}`` where each message is
``{"role", "content", "tool_calls": [{"name", "arguments"}] | None, "tool_name"}`` (arguments a JSON object
string, so every record has one Arrow type). Formats:

* ``openai``: ``{"messages": [...], "tools": [...]}`` with ``tool_calls`` on assistant messages
  (``{"function": {"name", "arguments"}}``) and ``role: tool`` results (matched to their call by
  ``tool_call_id``).
* ``sharegpt`` (Glaive, ToolACE and the like): ``{"conversations": [{"from", "value"}], "tools"?, "system"?}``;
  ``function_call`` turns hold a JSON call, ``observation`` / ``tool`` turns the result, and an assistant turn that
  is only calls (``[f(a=1)]``, ToolACE's style, or JSON) becomes tool calls. Tools come from ``tools`` or are read
  from the system prompt (a JSON list or objects of functions inside it).
* ``xlam`` (APIGen): ``{"id", "query", "tools", "answers"}`` with ``tools`` and ``answers`` as JSON strings.
* ``bfcl``: ``{"id", "question": [[turn messages]], "function": [...], "ground_truth"?}``: the user turns, and
  the possible answers as ``reference_calls`` with one valid answer (the first allowed value of each argument)
  as the assistant's calls.

Each importer raises :class:`FormatError` with a machine-readable reason. Records are untrusted: every value is
checked for the shape it is used as before it is used (message text a string, parameters a JSON-schema object,
each property an object, ``required`` a list of names, ...), so valid JSON of the wrong shape is a reject
(``bad_message``, ``malformed_tools``, ``malformed_call``), never a crash.
"""

from __future__ import annotations

import json
import re
from typing import Any

from corpus.ids import dumps
from corpus.io import jsonl
from corpus.trajectories.score import ParseError, parse_calls


class FormatError(ValueError):
    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason, self.detail = reason, detail


def message(role: str, content: str | None = None, tool_calls: list | None = None, tool_name: str | None = None):
    return {"role": role, "content": content or "", "tool_calls": tool_calls, "tool_name": tool_name}


def _call_rows(calls) -> list[dict]:
    return [{"name": c.name, "arguments": dumps(c.arguments)} for c in calls]


def _type_name(value: Any) -> str:
    return type(value).__name__


def check_parameters(name: str, params: Any) -> dict:
    """A function's ``parameters``, checked to be the JSON-schema object the verifier reads: an object whose
    ``properties`` map names to objects, ``required`` a list of names, ``enum`` lists, numeric bounds numbers."""
    if params is None:
        return {"type": "object", "properties": {}}
    if not isinstance(params, dict):
        raise FormatError("malformed_tools", f"parameters of {name!r} are a {_type_name(params)}, not an object")
    props = params.get("properties")
    if props is not None and not isinstance(props, dict):
        raise FormatError("malformed_tools", f"properties of {name!r} are a {_type_name(props)}, not an object")
    for key, spec in (props or {}).items():
        if not isinstance(spec, dict):
            raise FormatError("malformed_tools", f"property {name}.{key} is a {_type_name(spec)}, not an object")
        if "enum" in spec and not isinstance(spec["enum"], list):
            raise FormatError("malformed_tools", f"enum of {name}.{key} is a {_type_name(spec['enum'])}, not a list")
        for bound in ("minimum", "maximum"):
            if bound in spec and (isinstance(spec[bound], bool) or not isinstance(spec[bound], (int, float))):
                raise FormatError("malformed_tools", f"{bound} of {name}.{key} is not a number")
    required = params.get("required")
    if required is not None and not (isinstance(required, list) and all(isinstance(r, str) for r in required)):
        raise FormatError("malformed_tools", f"required of {name!r} is not a list of names")
    return params


def _tool_list(tools: Any) -> list[dict]:
    """Functions as {name, description, parameters}, from OpenAI tools, plain functions or a JSON string."""
    if isinstance(tools, str):
        try:
            tools = jsonl.loads(tools) if tools.strip() else []
        except ValueError as err:
            raise FormatError("malformed_tools", str(err)[:200]) from None
    if isinstance(tools, dict):
        tools = [tools]
    if not isinstance(tools, list):
        raise FormatError("malformed_tools", f"tools must be a list, got {type(tools).__name__}")
    out = []
    for t in tools:
        if isinstance(t, dict) and t.get("type") == "function" and isinstance(t.get("function"), dict):
            t = t["function"]
        if not isinstance(t, dict) or not isinstance(t.get("name"), str):
            raise FormatError("malformed_tools", f"a tool without a name: {json.dumps(t)[:120]}")
        description = t.get("description") or ""
        if not isinstance(description, str):
            raise FormatError("malformed_tools", f"description of {t['name']!r} is a {_type_name(description)}")
        params = check_parameters(t["name"], t.get("parameters") or None)
        out.append({"name": t["name"], "description": description, "parameters": params})
    return out


def _text(value: Any, where: str, allow_json: bool = False) -> str | None:
    """Message text: a string, null, or a list of text parts (``{"type": "text", "text": ...}`` or strings); with
    ``allow_json`` (tool results) any JSON value, written as JSON. Anything else is ``bad_message``."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list) and all(
        isinstance(p, str) or (isinstance(p, dict) and isinstance(p.get("text", ""), str)) for p in value
    ):
        return "".join(p if isinstance(p, str) else p.get("text", "") for p in value)
    if allow_json:
        return dumps(value)
    raise FormatError("bad_message", f"{where}: content is a {_type_name(value)}, not text")


def _calls(raw: Any, where: str) -> list[dict]:
    try:
        return _call_rows(parse_calls(raw))
    except ParseError as err:
        raise FormatError("malformed_call", f"{where}: {err}") from None


def from_openai(rec: dict) -> dict:
    msgs = rec.get("messages")
    if not isinstance(msgs, list) or not msgs:
        raise FormatError("no_messages")
    tools = _tool_list(rec.get("tools") or rec.get("functions") or [])
    out, names_by_id = [], {}
    for i, m in enumerate(msgs):
        if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant", "tool", "function"):
            role = m.get("role") if isinstance(m, dict) else m
            raise FormatError("bad_message", f"message {i}: role {str(role)[:60]!r}")
        where = f"message {i}"
        if m["role"] == "assistant" and (m.get("tool_calls") or m.get("function_call")):
            raw = m.get("tool_calls") or [m["function_call"]]
            if not isinstance(raw, list):
                raise FormatError("malformed_call", f"{where}: tool_calls is a {_type_name(raw)}, not a list")
            calls = _calls(raw, where)
            for tc, row in zip(raw, calls):
                if isinstance(tc, dict) and isinstance(tc.get("id"), str) and tc["id"]:
                    names_by_id[tc["id"]] = row["name"]
            out.append(message("assistant", _text(m.get("content"), where), calls))
        elif m["role"] in ("tool", "function"):
            name = m.get("name")
            call_id = m.get("tool_call_id")
            if not isinstance(name, str) or not name:
                name = names_by_id.get(call_id) if isinstance(call_id, str) else None
            out.append(message("tool", _text(m.get("content"), where, allow_json=True), tool_name=name))
        else:
            out.append(message(m["role"], _text(m.get("content"), where)))
    return {"tools": tools, "messages": out, "reference_calls": None}


_ROLES = {
    "system": "system",
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "function_call": "assistant",
    "observation": "tool",
    "tool": "tool",
    "function_response": "tool",
}
_FUNCTIONS_IN_TEXT = re.compile(r"(\[\s*\{.*\}\s*\]|\{\s*\"name\".*\})", re.S)


def _tools_from_system(text: str) -> list[dict]:
    """Functions written into a system prompt as JSON (a list, or one object per function)."""
    m = _FUNCTIONS_IN_TEXT.search(text or "")
    if not m:
        return []
    blob = m.group(1)
    try:
        return _tool_list(json.loads(blob))
    except (ValueError, FormatError):
        decoder, objs, pos = json.JSONDecoder(), [], 0
        while True:
            start = blob.find("{", pos)
            if start < 0:
                break
            try:
                obj, end = decoder.raw_decode(blob, start)
            except ValueError:
                pos = start + 1
                continue
            if isinstance(obj, dict) and "name" in obj:
                objs.append(obj)
            pos = end
        return _tool_list(objs) if objs else []


def _looks_like_calls(text: str) -> bool:
    t = text.strip()
    return bool(re.fullmatch(r"\[\s*[\w.]+\(.*\)\s*\]", t, re.S) or re.fullmatch(r"<tool_call>.*</tool_call>", t, re.S))


def from_sharegpt(rec: dict) -> dict:
    turns = rec.get("conversations") or rec.get("conversation")
    if not isinstance(turns, list) or not turns:
        raise FormatError("no_messages")
    system = _text(rec.get("system"), "system") or ""
    tools = _tool_list(rec["tools"]) if rec.get("tools") else []
    out, last_calls = [], []
    if system:
        out.append(message("system", system))
    for i, t in enumerate(turns):
        if not isinstance(t, dict):
            raise FormatError("bad_message", f"turn {i} is not an object")
        who = t.get("from") or t.get("role")
        role = _ROLES.get(who) if isinstance(who, str) else None
        if role is None:
            raise FormatError("bad_message", f"turn {i}: unknown speaker {str(who)[:60]!r}")
        value = t.get("value", t.get("content")) or ""
        if who == "function_call" and isinstance(value, (dict, list)):
            pass  # a call object, read by _calls
        else:
            value = _text(value, f"turn {i}", allow_json=role == "tool") or ""
        if who == "system":
            system = value
            out.append(message("system", value))
        elif who == "function_call":
            last_calls = _calls(value, f"turn {i}")
            out.append(message("assistant", None, last_calls))
        elif role == "assistant" and _looks_like_calls(value):
            last_calls = _calls(value, f"turn {i}")
            out.append(message("assistant", None, last_calls))
        elif role == "tool":
            out.append(
                message(
                    "tool",
                    value if isinstance(value, str) else dumps(value),
                    tool_name=last_calls[0]["name"] if len(last_calls) == 1 else None,
                )
            )
        else:
            out.append(message(role, value))
    if not tools:
        tools = _tools_from_system(system)
    return {"tools": tools, "messages": out, "reference_calls": None}


def from_xlam(rec: dict) -> dict:
    if not rec.get("query"):
        raise FormatError("no_messages", "no query")
    if not isinstance(rec["query"], str):
        raise FormatError("bad_message", f"query is a {_type_name(rec['query'])}, not text")
    answers = rec.get("answers")
    if isinstance(answers, str):
        try:
            answers = jsonl.loads(answers)
        except ValueError as err:
            raise FormatError("malformed_call", f"answers: {err}") from None
    calls = _calls(answers if answers is not None else [], "answers")
    msgs = [message("user", rec["query"])]
    if calls:
        msgs.append(message("assistant", None, calls))
    return {"tools": _tool_list(rec.get("tools") or []), "messages": msgs, "reference_calls": None}


def from_bfcl(rec: dict) -> dict:
    turns = rec.get("question")
    if not isinstance(turns, list) or not turns:
        raise FormatError("no_messages")
    msgs = []
    for turn in turns:
        for m in turn if isinstance(turn, list) else [turn]:
            if isinstance(m, dict) and m.get("role") in ("system", "user", "assistant"):
                msgs.append(message(m["role"], _text(m.get("content"), f"question turn {len(msgs)}")))
    tools = _tool_list(rec.get("function") or [])
    ref = rec.get("ground_truth")
    if isinstance(ref, list) and ref and all(isinstance(c, dict) and len(c) == 1 for c in ref):
        answer = []
        for item in ref:
            ((name, args),) = item.items()
            if not isinstance(args, dict):
                raise FormatError("malformed_call", f"ground truth of {name!r}")
            answer.append(
                {
                    "name": name,
                    "arguments": dumps({k: v[0] for k, v in args.items() if isinstance(v, list) and v and v[0] != ""}),
                }
            )
        msgs.append(message("assistant", None, answer))
    else:
        ref = None
    return {"tools": tools, "messages": msgs, "reference_calls": ref}


IMPORTERS = {"openai": from_openai, "sharegpt": from_sharegpt, "xlam": from_xlam, "bfcl": from_bfcl}


def detect(rec: dict) -> str:
    """The format of a record, from its keys."""
    if "question" in rec and "function" in rec:
        return "bfcl"
    if "query" in rec and "answers" in rec:
        return "xlam"
    if "conversations" in rec or "conversation" in rec:
        return "sharegpt"
    if "messages" in rec:
        return "openai"
    raise FormatError("unknown_format", f"keys {sorted(rec)[:8]}")


def import_record(rec: Any, fmt: str = "auto") -> tuple[str, dict]:
    if not isinstance(rec, dict):
        raise FormatError("not_an_object", type(rec).__name__)
    fmt = detect(rec) if fmt == "auto" else fmt
    return fmt, IMPORTERS[fmt](rec)
