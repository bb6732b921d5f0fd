"""What every executable environment shares: a task's plan (steps whose arguments may refer to earlier real
results), the outcome of one call, and the run of a plan with its checks."""

from __future__ import annotations

import base64
import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Ref:
    """An argument taken from an earlier call's real output: ``call`` index, ``path`` into its result."""

    call: int
    path: tuple
    as_list: bool = False


@dataclass
class Step:
    operation: str
    arguments: dict  # member → literal value or Ref
    stated: dict = field(default_factory=dict)  # the literal values the user states


@dataclass
class Plan:
    root: str
    steps: list[Step]
    probe: Step | None
    expect: str  # "present" | "absent"
    recovery: bool = False  # a labelled failed-then-recovered task: the first call fails for real


@dataclass
class Outcome:
    ok: bool
    result: Any = None  # as the conversation shows it (long lists and strings cut)
    error_code: str = ""
    error_message: str = ""
    full: str = ""  # the whole result as JSON text, for the checks

    def text(self) -> str:
        if self.ok:
            return json.dumps(self.result, ensure_ascii=False, sort_keys=True)
        return json.dumps({"Error": {"Code": self.error_code, "Message": self.error_message}}, ensure_ascii=False)


@dataclass
class Run:
    """A plan's execution: resolved calls, real outcomes, the state check and the output check."""

    calls: list[tuple[str, dict]]
    outcomes: list[Outcome]
    state: str  # "pass" or "reason: detail"
    output: str


def resolve(value: Any, results: list[Outcome]) -> Any:
    """A literal, or the value a Ref points at in an earlier real result (KeyError/IndexError when absent)."""
    if not isinstance(value, Ref):
        return value
    got: Any = results[value.call].result
    for p in value.path:
        got = got[p]
    return [got] if value.as_list else got


def jsonable(value: Any, cap: int | None = 5) -> Any:
    """A botocore result as JSON: timestamps ISO 8601; blobs as their text when they are UTF-8, else as base64 (as
    the AWS CLI prints them: a KMS public key's DER bytes decoded as text would be noise in a trajectory); lists
    cut to ``cap`` items and strings to 400 characters (None: the whole result)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v, cap) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v, cap) for v in (value[:cap] if cap else value)]
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, (bytes, bytearray)):
        try:
            text = bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            text = base64.b64encode(bytes(value[:300] if cap else value)).decode("ascii")
        return text[:400] if cap else text
    if isinstance(value, str):
        return value[:400] if cap else value
    if isinstance(value, float) and value != value:
        return None
    return value
