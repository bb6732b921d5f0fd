"""ToolRL's fine-grained tool-call reward (Qian et al. 2025, "ToolRL: Reward is All Tool Learning Needs",
arXiv 2504.13958, §3.3; as in the authors' code).

``reward = format + correctness``:

* **format** ∈ {0, 1}: the prediction parses into well-formed calls (a name and an object of arguments each).
* **correctness** ∈ [-3, 3]: an unparseable prediction scores -3 and a reference with no call scores 0; otherwise

      score = J(names) + Σ over reference calls of [J(parameter names) + number of parameters with a right value]
      S_max = 1 + Σ over reference calls of (1 + number of its parameters)
      correctness = 6 · score / S_max − 3

  where J is the multiset Jaccard |A ∩ B| / (|A| + |B| − |A ∩ B|), and each reference call is compared with the
  best not-yet-used predicted call of the same name (greedy, in reference order; "best" by J(parameter names) plus
  the *share* of parameters right, where ToolRL's code uses the count: the same on plain references, and with
  BFCL's optional arguments it keeps a call that gives more of them from winning over an exact one). A
  prediction equal to the reference scores exactly 3.

References may be plain calls (``[{"name", "arguments"}]``) or BFCL's possible answers
(``[{"func": {"arg": [allowed values...]}}]``), where an argument allows several values and ``""`` among them
marks it optional: an optional argument counts among the reference's parameters only when the prediction gives
it; an empty list allows no value, so the argument must be left out. Values compare as JSON values, numbers by
value (1 == 1.0, booleans are not numbers) and strings trimmed and
case-folded.
"""

from __future__ import annotations

import ast
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from corpus.io import jsonl


@dataclass
class Call:
    name: str
    arguments: dict[str, Any]


@dataclass
class RefCall:
    name: str
    allowed: dict[str, list[Any]]  # argument -> allowed values
    optional: set[str] = field(default_factory=set)


class ParseError(ValueError):
    pass


# ---------------------------------------------------------------------------------------------- parsing calls


def _call(obj: Any) -> Call:
    """One call from {"name", "arguments"} (arguments an object or a JSON string), an OpenAI tool call
    ({"function": {...}}), or BFCL's {"name": {args}}."""
    if not isinstance(obj, dict):
        raise ParseError(f"a call must be an object, got {type(obj).__name__}")
    if "function" in obj and isinstance(obj["function"], dict):
        obj = obj["function"]
    if "name" in obj:
        args = obj.get("arguments", obj.get("parameters", {}))
        if isinstance(args, str):
            try:
                args = jsonl.loads(args) if args.strip() else {}
            except ValueError as err:
                raise ParseError(f"arguments of {obj['name']!r} are not JSON: {err}") from None
        if not isinstance(obj["name"], str) or not obj["name"]:
            raise ParseError("a call's name must be a non-empty string")
        if not isinstance(args, dict):
            raise ParseError(f"arguments of {obj['name']!r} must be an object")
        return Call(obj["name"], args)
    if len(obj) == 1:
        ((name, args),) = obj.items()
        if isinstance(args, dict):
            return Call(name, args)
    raise ParseError(f"not a call: {json.dumps(obj)[:100]}")


_TAGGED = re.compile(r"<tool_call>\s*(.*?)\s*</tool_call>", re.S)


def _python_calls(text: str) -> list[Call]:
    """BFCL's Python-syntax output: ``[f(a=1), g.h(b='x')]`` or ``f(a=1)``."""
    try:
        tree = ast.parse(text.strip(), mode="eval").body
    except (RecursionError, MemoryError):
        raise jsonl.TooDeep("Python call syntax nested too deep for the parser") from None
    nodes = tree.elts if isinstance(tree, (ast.List, ast.Tuple)) else [tree]
    calls = []
    for node in nodes:
        if not isinstance(node, ast.Call) or node.args:
            raise ParseError("only keyword-argument calls are accepted")
        calls.append(Call(ast.unparse(node.func), {k.arg: ast.literal_eval(k.value) for k in node.keywords}))
    return calls


def parse_calls(predicted: Any) -> list[Call]:
    """Calls from a list of call objects, or from a raw model output: JSON (a call or a list of calls),
    ``<tool_call>`` tags around JSON calls, or Python call syntax. Raises ParseError, or
    :class:`corpus.io.jsonl.TooDeep` for JSON nested past its limit (a reason of its own for importers)."""
    if isinstance(predicted, str):
        text = predicted.strip()
        tagged = _TAGGED.findall(text)
        if tagged:
            return [_call(jsonl.loads(t)) for t in tagged]
        fence = re.fullmatch(r"```(?:json|python)?\s*(.*?)```", text, re.S)
        text = fence.group(1).strip() if fence else text
        try:
            obj = jsonl.loads(text)
        except ValueError:
            try:
                return _python_calls(text)
            except (SyntaxError, ValueError) as err:
                raise ParseError(f"not JSON nor Python calls: {err}") from None
        predicted = obj
    if isinstance(predicted, dict):
        if "tool_calls" in predicted:
            predicted = predicted["tool_calls"]
        else:
            predicted = [predicted]
    if not isinstance(predicted, list):
        raise ParseError(f"calls must be a list, got {type(predicted).__name__}")
    try:
        return [_call(c) for c in predicted]
    except (ValueError, TypeError) as err:
        raise ParseError(str(err)) from None


def reference_calls(reference: Any) -> list[RefCall]:
    """Reference calls from plain calls or from BFCL's possible-answer form."""
    if isinstance(reference, dict) and "ground_truth" in reference:
        reference = reference["ground_truth"]
    out = []
    for item in reference or []:
        if isinstance(item, dict) and len(item) == 1 and "name" not in item and "function" not in item:
            ((name, args),) = item.items()
            if isinstance(args, dict) and all(isinstance(v, list) for v in args.values()):
                # an empty list allows no value: the argument must not be given (an extra key if it is)
                allowed = {k: list(v) for k, v in args.items() if v}
                optional = {k for k, v in allowed.items() if "" in v}
                out.append(RefCall(name, allowed, optional))
                continue
        call = _call(item)
        out.append(RefCall(call.name, {k: [v] for k, v in call.arguments.items()}))
    return out


# ---------------------------------------------------------------------------------------------- comparing values


def values_equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))
    if isinstance(a, str) and isinstance(b, str):
        return a.strip().casefold() == b.strip().casefold()
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(values_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_allowed(a[k], b[k]) for k in a)
    return a is None and b is None


def _allowed(value: Any, allowed: Any) -> bool:
    """``value`` equals ``allowed``, or (BFCL nests allowed-value lists inside dicts) one of its elements."""
    if values_equal(value, allowed):
        return True
    return isinstance(allowed, list) and not isinstance(value, list) and any(values_equal(value, a) for a in allowed)


def _value_ok(value: Any, allowed: list[Any]) -> bool:
    return any(a != "" and _allowed(value, a) for a in allowed)


def jaccard(a: Counter, b: Counter) -> float:
    inter = sum((a & b).values())
    union = sum(a.values()) + sum(b.values()) - inter
    return inter / union if union else 1.0


# ---------------------------------------------------------------------------------------------- the reward


def _ref_keys(ref: RefCall, pred: Call | None) -> set[str]:
    """The reference's parameters for this comparison: the required ones, plus optional ones the call gives."""
    keys = set(ref.allowed) - ref.optional
    if pred is not None:
        keys |= ref.optional & set(pred.arguments)
    return keys


def _match(ref: RefCall, pred: Call) -> tuple[float, int, set[str]]:
    keys = _ref_keys(ref, pred)
    j = jaccard(Counter(keys), Counter(list(pred.arguments)))
    right = sum(1 for k in keys if k in pred.arguments and _value_ok(pred.arguments[k], ref.allowed[k]))
    return j, right, keys


def _rank(m: tuple[float, int, set[str]]) -> tuple[float, int]:
    return m[0] + m[1] / max(1, len(m[2])), m[1]


def score_calls(reference: Any, predicted: Any) -> dict:
    """ToolRL's reward components for one prediction against one reference (see the module doc)."""
    refs = reference_calls(reference)
    try:
        calls = parse_calls(predicted)
    except (ParseError, jsonl.TooDeep, RecursionError) as err:
        return {
            "format": 0,
            "name": 0.0,
            "param_names": 0.0,
            "param_values": 0.0,
            "correctness": -3.0,
            "reward": -3.0,
            "error": str(err),
        }
    if not refs:
        return {"format": 1, "name": 0.0, "param_names": 0.0, "param_values": 0.0, "correctness": 0.0, "reward": 1.0}
    name_j = jaccard(Counter(r.name for r in refs), Counter(c.name for c in calls))
    used: set[int] = set()
    names_sum = values_sum = 0.0
    s_max = 1.0
    exact = name_j == 1.0 and len(calls) == len(refs)
    for ref in refs:
        best, best_i = None, None
        for i, call in enumerate(calls):
            if i in used or call.name != ref.name:
                continue
            m = _match(ref, call)
            # ranked by the share of its parameters right, not the count: with BFCL's optional arguments a call
            # that gives more of them could otherwise win over the one that matches exactly
            if best is None or _rank(m) > _rank(best):
                best, best_i = m, i
        if best is None:
            s_max += 1 + len(_ref_keys(ref, None))
            exact = False
            continue
        used.add(best_i)
        j, right, keys = best
        names_sum += j
        values_sum += right
        s_max += 1 + len(keys)
        exact = exact and j == 1.0 and right == len(keys)
    score = name_j + names_sum + values_sum
    correctness = 3.0 if exact else 6.0 * score / s_max - 3.0
    return {
        "format": 1,
        "name": round(name_j, 6),
        "param_names": round(names_sum, 6),
        "param_values": round(values_sum, 6),
        "correctness": round(correctness, 6),
        "reward": round(1 + correctness, 6),
    }


def score_file(src: str, dest: str) -> dict:
    """``forge score-calls``: each JSONL line has ``tools``, ``reference`` and ``predicted``; each output line is
    the input plus ``format``, ``name``, ``param_names``, ``param_values``, ``correctness`` and ``reward``. A line
    that is not a JSON object, or lacks ``reference`` or ``predicted``, is written back with an ``error`` naming
    the file and line (and no reward). Returns counts."""
    counts: Counter = Counter()
    with open(src, encoding="utf-8") as f, open(dest, "w", encoding="utf-8") as out:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            counts["lines"] += 1
            try:
                row = json.loads(line)
                if not isinstance(row, dict):
                    raise ValueError("not a JSON object")
                missing = [k for k in ("reference", "predicted") if k not in row]
                if missing:
                    raise ValueError(f"missing {', '.join(missing)}")
            except ValueError as err:
                counts["errors"] += 1
                out.write(json.dumps({"error": f"{src}:{n}: {err}"}) + "\n")
                continue
            result = score_calls(row["reference"], row["predicted"])
            counts["unparseable" if result["format"] == 0 else "scored"] += 1
            out.write(json.dumps({**row, **result}, ensure_ascii=False) + "\n")
    return dict(counts)
