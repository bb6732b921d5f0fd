"""Conversations from executed tasks: the user's turns say the goal (in one of many phrasings, stating every value
only the user can know), the assistant calls the tools (taking ids from earlier real results), the tool messages
carry the real results or real errors, and the assistant's replies summarise what the results say.

Also irrelevance cases (as BFCL and Toucan have): the user asks for something none of the offered tools does,
and the assistant says so instead of calling one.
"""

from __future__ import annotations

import json
import re
from typing import Any

from corpus.extract.rules import imperative
from corpus.ids import dumps
from corpus.trajectories.aws import verb
from corpus.trajectories.plans import Plan, Run
from corpus.trajectories.formats import message
from corpus.trajectories.values import number, pick

ASK_ONE = [
    "{Goal}.",
    "Could you {goal}?",
    "I need to {goal}.",
    "Please {goal}.",
    "Can you help me {goal}?",
    "{Goal}, please.",
    "I'd like you to {goal}.",
    "Go ahead and {goal}.",
    "Would you {goal} for me?",
    "We need to {goal}. Can you take care of it?",
]
ASK_MORE = [
    "Now {goal}.",
    "Next, {goal}.",
    "Great. Could you also {goal}?",
    "Thanks. Now please {goal}.",
    "OK, and {goal}.",
    "Good. After that, {goal}.",
    "Perfect — now {goal}.",
]
JOIN = [", then ", "; after that, ", ", and then ", ". Then "]
CHECK = [
    "make sure it exists first (create it if it doesn't)",
    "check whether it is already there, and create it if not",
    "see if it exists; if not, set it up",
]
OFF_TOPIC = [
    "Book a table for two at an Italian restaurant near me tonight at 8.",
    "What's the weather going to be in Lisbon tomorrow?",
    "Translate 'see you next week' into Japanese.",
    "Convert 250 US dollars to euros at today's rate.",
    "Send a birthday message to my sister on WhatsApp.",
    "Find me a flight from Boston to Denver next Friday.",
    "Summarise the plot of Moby-Dick in three sentences.",
    "Order a large pepperoni pizza to my office.",
    "Play some relaxing jazz in the living room.",
    "How many calories are in a bowl of oatmeal?",
    "Schedule a dentist appointment for next Tuesday morning.",
    "What is the population of Nairobi?",
    "Turn off the lights in the kitchen.",
    "Recommend a good science fiction novel from the last five years.",
    "Calculate the monthly payment on a $300,000 mortgage at 6% over 30 years.",
    "Post a photo of my dog to Instagram with the caption 'Sunday walk'.",
]


def _lower(s: str) -> str:
    return s[0].lower() + s[1:] if s and not (len(s) > 1 and s[1].isupper()) else s


def human(member: str) -> str:
    """``QueueName`` → "queue name"; ``DBInstanceIdentifier`` → "DB instance identifier"."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", " ", member)
    return " ".join(w if w.isupper() and len(w) > 1 else w.lower() for w in spaced.split())


SYNONYMS = {
    "create": ["create", "set up", "make"],
    "delete": ["delete", "remove"],
    "list": ["list", "show me"],
    "describe": ["describe", "show me the details of", "look up"],
    "get": ["get", "fetch", "look up"],
    "retrieve": ["retrieve", "get", "fetch"],
    "return": ["return", "give me", "get"],
    "update": ["update", "change"],
    "modify": ["modify", "change"],
    "add": ["add", "attach"],
    "send": ["send", "deliver"],
    "start": ["start", "kick off"],
    "stop": ["stop", "halt"],
    "put": ["put", "store"],
    "tag": ["tag", "label"],
}


def vary(goal_text: str, seed: str) -> str:
    """The goal with its verb said one of a few ways ("create" → "set up"), seeded."""
    first, _, rest = goal_text.partition(" ")
    options = SYNONYMS.get(first.lower())
    return f"{pick(seed, options)} {rest}".strip() if options else goal_text


def goal(op: str, record: dict | None) -> str:
    """What an operation does, as a command: its description's first sentence made imperative; its name's words
    when the description states no action."""
    desc = " ".join(((record or {}).get("description") or "").split())
    first = re.split(r"(?<=[.!?])\s", desc, maxsplit=1)[0] if desc else ""
    action = imperative(first) if first else ""
    if action and len(action.split()) <= 22:
        return _lower(action.rstrip(".:"))
    if "." in op:  # a Python function
        return f"call `{op}`"
    return " ".join([verb(op).lower()] + [w for w in human(op[len(verb(op)) :]).split()])


def say(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def stating(stated: dict, goal_text: str = "") -> str:
    """The values only the user can know, in words: 'with queue name "orders" and tags [...]' (in parentheses when
    the goal already says "with")."""
    if not stated:
        return ""
    parts = [f"{human(k)} {say(v)}" for k, v in stated.items()]
    listed = ", ".join(parts[:-1]) + " and " + parts[-1] if len(parts) > 1 else parts[0]
    return f" ({listed})" if " with " in f" {goal_text} " else " with " + listed


def past(op: str) -> str:
    from lemminflect import getInflection

    v = verb(op).lower()
    done = getInflection(v, tag="VBD")
    return done[0] if done else v


FACT = re.compile(r"(Id|Arn|ARN|Url|Name|Status|State|Count|Version|Type|Key|Enabled)$")


def facts(result: Any, limit: int = 3) -> list[str]:
    """The result's notable scalar fields ('QueueUrl is https://…'), or how many items a listing returned."""
    found: list[str] = []

    def walk(value: Any, key: str, depth: int) -> None:
        if len(found) >= limit or depth > 4:
            return
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, k, depth + 1)
        elif isinstance(value, list):
            if key and value and not isinstance(value[0], (dict, list)):
                found.append(f"{human(key)}: {', '.join(str(v) for v in value[:3])}")
            elif key:
                found.append(f"{len(value)} {human(key)}" if len(value) != 1 else f"one entry in {human(key)}")
                if value:
                    walk(value[0], "", depth + 1)
        elif key and FACT.search(key) and value not in (None, ""):
            found.append(f"{human(key)} {json.dumps(value) if not isinstance(value, str) else value}")

    walk(result, "", 0)
    return found[:limit]


def report(op: str, outcome) -> str:
    said = facts(outcome.result)
    what = human(op[len(verb(op)) :]) or "request"
    empty = (
        [human(k) for k, v in (outcome.result or {}).items() if v in ({}, [], "")]
        if isinstance(outcome.result, dict)
        else []
    )
    if not said and empty:
        return f"{past(op).capitalize()} the {what}: no {', no '.join(empty)}."
    if not said:
        return f"{past(op).capitalize()} the {what}; the call succeeded and returned no further details."
    return f"{past(op).capitalize()} the {what}: " + "; ".join(said) + "."


def conversation(
    plan: Plan, run: Run, records: dict[str, dict], offered: list[dict], seed: str, api_title: str, say_result=None
) -> dict:
    """The trajectory of one executed plan. ``records``: operation name → its tool_doc record; ``offered``: the
    tools (functions) the assistant is given; ``say_result(op, outcome)``: the assistant's words on a result
    (default: :func:`report`, for API responses)."""
    say_result = say_result or report
    steps = plan.steps
    start = 1 if plan.recovery else 0
    # the user's turns: the first asks for the root (and maybe more); later turns ask for the rest
    cut = len(steps)
    if len(steps) - start >= 2 and number(f"{seed}:turns", 0, 9) < 6:
        cut = start + 1 + number(f"{seed}:cut", 0, max(0, len(steps) - start - 2))
    turns = [range(0, cut), range(cut, len(steps))] if cut < len(steps) else [range(0, len(steps))]
    msgs: list[dict] = []
    for t, span in enumerate(turns):
        asks = []
        for i in span:
            if plan.recovery and i == 0:
                continue
            g = vary(goal(steps[i].operation, records.get(steps[i].operation)), f"{seed}:v{i}")
            g += stating(steps[i].stated, g)
            if plan.recovery and i == 1:
                g += f" ({pick(seed + ':chk', CHECK)})"
            asks.append(g)
        joined = asks[0]
        for k, a in enumerate(asks[1:], 1):
            joined += pick(f"{seed}:j{t}:{k}", JOIN) + a
        template = pick(f"{seed}:ask{t}", ASK_ONE if t == 0 else ASK_MORE)
        text = template.replace("{Goal}", joined[0].upper() + joined[1:]).replace("{goal}", joined)
        python = "." in steps[0].operation
        if t == 0 and number(f"{seed}:ctx", 0, 2) == 0:
            text = f"I'm working with {api_title if python else 'the ' + api_title}. " + text
        elif t == 0 and python and f"`{steps[0].operation}`" not in text:
            text += f" Use {api_title}."
        msgs.append(message("user", text))
        for i in span:
            call = {"name": offered_name(records, steps[i].operation), "arguments": dumps(run.calls[i][1])}
            lead = None
            if plan.recovery and i == 1:
                err = run.outcomes[0]
                lead = f"It does not exist yet ({err.error_code}: {err.error_message.rstrip('.')}), so I'll create it."
            msgs.append(message("assistant", lead, [call]))
            msgs.append(message("tool", run.outcomes[i].text(), tool_name=call["name"]))
        lines = [say_result(steps[i].operation, run.outcomes[i]) for i in span if not (plan.recovery and i == 0)]
        msgs.append(message("assistant", " ".join(lines)))
    refs = [{"name": offered_name(records, op), "arguments": args} for op, args in run.calls]
    return {"tools": offered, "messages": msgs, "reference_calls": refs}


def offered_name(records: dict[str, dict], op: str) -> str:
    rec = records.get(op)
    return function(rec)["name"] if rec else op


def function(record: dict, short: bool = True) -> dict:
    """The OpenAI function of a tool_doc record; ``short`` keeps descriptions to their first sentences (as agent
    frameworks present tools), so the schemas do not swamp the conversation."""
    schema = json.loads(record["tool_schema"]) if isinstance(record["tool_schema"], str) else record["tool_schema"]
    fn = schema.get("function", schema)
    params = fn.get("parameters") or {"type": "object", "properties": {}}
    if short:
        params = json.loads(json.dumps(params))
        for spec in (params.get("properties") or {}).values():
            if isinstance(spec, dict):
                _trim(spec, 0)
    return {"name": fn["name"], "description": _first(fn.get("description") or "", 240), "parameters": params}


def _first(text: str, limit: int) -> str:
    text = " ".join(text.split())
    m = re.search(r"(?<=[.!?])\s", text)
    out = text[: m.start()] if m else text
    return out if len(out) <= limit else out[: limit - 1].rsplit(" ", 1)[0] + "…"


def _trim(spec: dict, depth: int) -> None:
    if "description" in spec:
        if depth:
            spec.pop("description")
        else:
            spec["description"] = _first(str(spec["description"]), 160)
    spec.pop("title", None)
    spec.pop("pattern", None)  # the service checks it; a regex per field would swamp the conversation
    for sub in (spec.get("properties") or {}).values():
        if isinstance(sub, dict):
            _trim(sub, depth + 1)
    if isinstance(spec.get("items"), dict):
        _trim(spec["items"], depth + 1)


def irrelevant(offered: list[dict], seed: str, api_title: str) -> dict:
    """A request none of the offered tools fits, and the assistant's refusal to call one."""
    ask = pick(f"{seed}:off", OFF_TOPIC)
    names = ", ".join(t["name"] for t in offered[:3])
    reply = (
        f"I can't do that with the tools I have here: they work with the {api_title} ({names}), and none of "
        f"them can help with this request. If you have a task for the {api_title}, I can take care of it."
    )
    return {"tools": offered, "messages": [message("user", ask), message("assistant", reply)], "reference_calls": []}


def _literal(value: Any) -> str:
    """A JSON value as Python source."""
    return repr(value)


def usage_pair(
    sdk_calls: list[str], arguments: list[dict], results: list[str], user_turns: list[str], final: str, library: str
) -> tuple[str, str]:
    """An instruction pair from an executed task: the user's request(s), answered with the code that makes the
    same calls and the results they really returned. ``sdk_calls``: ``client.method`` (boto3) or
    ``module.function`` (python) per call; ``results``: each call's tool message as the trajectory shows it."""
    lines = []
    if library == "boto3":
        clients = list(dict.fromkeys(sdk.split(".", 1)[0] for sdk in sdk_calls))
        lines += ["import boto3", ""] + [f"{_var(c)} = boto3.client({c!r})" for c in clients]
    else:
        lines += [f"import {m}" for m in dict.fromkeys(sdk.rsplit(".", 1)[0] for sdk in sdk_calls)]
    for sdk, args, result in zip(sdk_calls, arguments, results):
        owner, method = sdk.split(".", 1) if library == "boto3" else sdk.rsplit(".", 1)
        call_args = ", ".join(f"{k}={_literal(v)}" for k, v in args.items())
        lines += ["", f"{_var(owner) if library == 'boto3' else owner}.{method}({call_args})"]
        shown = result
        try:
            error = json.loads(result).get("Error") if result.startswith('{"Error"') else None
        except ValueError:
            error = None
        if isinstance(error, dict):
            shown = f"raises {error.get('Code')}: {error.get('Message')}"
        if len(shown) > 600:
            shown = shown[:597] + "…"
        lines += [f"# → {part}" if i == 0 else f"#   {part}" for i, part in enumerate(shown.splitlines() or [""])]
    intro = (
        "With boto3, these calls do it (each result shown is what the call returned):"
        if library == "boto3"
        else "In Python (each result shown is what the call returned):"
    )
    instruction = "\n\n".join(t.strip() for t in user_turns if t.strip())
    return instruction, f"{intro}\n\n```python\n" + "\n".join(lines) + f"\n```\n\n{final.strip()}"


def _var(client: str) -> str:
    return re.sub(r"\W", "_", client)
