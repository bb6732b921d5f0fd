"""Instruction-response extraction and refinement through an OpenAI-compatible chat-completions endpoint, and
the client every LLM use of the forge goes through (extraction, refinement, the trajectory judge, the simulated
user).

Any server that speaks ``POST {base_url}/chat/completions`` works: vLLM, llama.cpp's server, a hosted API. The
client is plain urllib3 (already a dependency through botocore): batched per Spark task, ``concurrency`` requests
in flight, retries with exponential backoff on 429 / 5xx / connection errors (``Retry-After`` honoured), a
response cache keyed by (prompt version, model, request hash), token and cost accounting, and a hard budget.

It fails closed. Each request asks for structured output: ``response_format`` with the reply's JSON schema
(``json_schema``, as OpenAI and vLLM take it; ``json_object`` with a schema, as llama.cpp's server takes it; or only
the prompt's JSON instruction), stepping down once per client when the server refuses a form. A reply that does
not parse is asked again once, with the reason; a reply that still does not parse is ``unreadable`` and is never
cached. Every call's outcome is counted (``<use>_ok``, ``_cached``, ``_error``, ``_unreadable``, ``_reasked``,
``_skipped_failing``); a task whose calls fail more often than ``max_llm_failure_rate`` stops calling, and the
stage, seeing the counts on the driver (:func:`check_failures`), warns on the console whenever a call failed and
fails, naming the endpoint and the counts, above the rate.

The budget is split evenly across the stage's tasks (a task cannot see the others' spending without a shared
service), and each request reserves its worst case before it is sent: the prompt at 2 characters per token (real
tokenisers give ~4 for English) plus ``max_tokens``. So the stage's total never exceeds the budget; a task that
cannot afford its next request stops sending and counts what it skipped.

Prompts follow MAmmoTH2 (Yue et al. 2024): extraction answers ``void`` when a page holds no natural
question-answer pair; refinement fixes format and adds missing context or steps, changing an answer only when it
is clearly wrong.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

from corpus.config import LlmEndpoint, LlmSection
from corpus.io import files

EXTRACT_PROMPT = """You extract instruction-response pairs from web documents, to train an assistant that uses \
tools and APIs.
Find the questions, tasks or how-tos that the document answers, with their complete answers (keep code and \
commands exactly). Do not invent content that is not in the document.
Reply with JSON only: {"pairs": [{"instruction": "...", "response": "..."}]}.
If the document holds no such pair, reply: {"pairs": []}"""

REFINE_PROMPT = """You refine an instruction-response pair for training an assistant that uses tools and APIs.
Fix the format, make the instruction self-contained, and add missing context or intermediate steps to the \
response. Change the answer only when it is clearly wrong.
Reply with JSON only: {"instruction": "...", "response": "..."}"""


class LlmError(RuntimeError):
    pass


def _object(properties: dict, required: list[str] | None = None) -> dict:
    return {
        "type": "object",
        "properties": properties,
        "required": required or list(properties),
        "additionalProperties": False,
    }


_TEXT = {"type": "string"}
PAIR_SCHEMA = _object({"instruction": _TEXT, "response": _TEXT})
EXTRACT_SCHEMA = _object({"pairs": {"type": "array", "items": PAIR_SCHEMA}})
REFINE_SCHEMA = PAIR_SCHEMA
REASK = (
    "Your reply could not be read: {why}. Reply again with JSON only, matching the schema you were given, and "
    "nothing else."
)
# response_format forms, most to least specific; a client steps down when the server refuses one
FORMATS = ("json_schema", "json_object", "none")


@dataclass
class Budget:
    """A task's share of the stage's token and cost budget."""

    max_tokens: float | None = None
    max_cost: float | None = None
    usd_in: float = 0.0
    usd_out: float = 0.0
    tokens: int = 0
    cost: float = 0.0
    _reserved_tokens: float = 0.0
    _reserved_cost: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def reserve(self, prompt_chars: int, max_completion: int) -> tuple[float, float] | None:
        """Reserve the worst case of one request; None when the budget cannot afford it."""
        tok_in = prompt_chars / 2
        need_tokens = tok_in + max_completion
        need_cost = (tok_in * self.usd_in + max_completion * self.usd_out) / 1e6
        with self._lock:
            if self.max_tokens is not None and self.tokens + self._reserved_tokens + need_tokens > self.max_tokens:
                return None
            if self.max_cost is not None and self.cost + self._reserved_cost + need_cost > self.max_cost:
                return None
            self._reserved_tokens += need_tokens
            self._reserved_cost += need_cost
        return need_tokens, need_cost

    @classmethod
    def share(cls, cfg: LlmEndpoint, share: float) -> "Budget":
        """A task's share of the stage's budget."""
        return cls(
            max_tokens=cfg.max_total_tokens * share if cfg.max_total_tokens else None,
            max_cost=cfg.max_cost_usd * share if cfg.max_cost_usd else None,
            usd_in=cfg.usd_per_million_input,
            usd_out=cfg.usd_per_million_output,
        )

    def settle(self, reservation: tuple[float, float], prompt_tokens: int, completion_tokens: int) -> None:
        with self._lock:
            self._reserved_tokens -= reservation[0]
            self._reserved_cost -= reservation[1]
            self.tokens += prompt_tokens + completion_tokens
            self.cost += (prompt_tokens * self.usd_in + completion_tokens * self.usd_out) / 1e6


@dataclass
class Reply:
    content: str | None
    status: str  # ok | cached | error | unreadable | budget | skipped_failing
    prompt_tokens: int = 0
    completion_tokens: int = 0
    detail: str | None = None
    value: object = None  # the parsed reply, when the caller gave a parser


FAILED = ("error", "unreadable", "skipped_failing")


@dataclass
class Health:
    calls: int = 0
    failures: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


_HEALTH: dict[str, Health] = {}
_HEALTH_LOCK = threading.Lock()


def _health(scope: str) -> Health:
    with _HEALTH_LOCK:
        return _HEALTH.setdefault(scope, Health())


MIN_CALLS_BEFORE_STOP = 10  # calls a task makes before its failure rate may stop it


class Client:
    """One per Spark task (or per process in tests). ``max_failure_rate``: above it (after a few calls) the task
    stops calling; the stage then fails on the driver (:func:`check_failures`)."""

    def __init__(
        self,
        cfg: LlmEndpoint,
        cache_dir: str | None,
        budget: Budget,
        api_key: str | None = None,
        max_failure_rate: float = 1.0,
        scope: str | None = None,
    ) -> None:
        import urllib3

        self.cfg = cfg
        self.cache_dir = cache_dir
        self.budget = budget
        self.max_failure_rate = max_failure_rate
        self.url = cfg.base_url.rstrip("/") + "/chat/completions"
        retry = urllib3.Retry(
            total=cfg.retries,
            backoff_factor=cfg.backoff_seconds,
            status_forcelist=(429, 500, 502, 503, 504),
            allowed_methods=frozenset({"POST"}),
            respect_retry_after_header=True,
            raise_on_status=False,
        )
        self.http = urllib3.PoolManager(
            maxsize=cfg.concurrency, retries=retry, timeout=urllib3.Timeout(total=cfg.timeout_seconds)
        )
        headers = {"Content-Type": "application/json"}
        key = api_key or read_api_key(cfg)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self.headers = headers
        self.format = cfg.response_format
        self.format_changes: list[str] = []
        # call and failure counts, shared by the clients of one stage run in this worker process (``scope``): a
        # stage that makes a client per group still stops calling a failing endpoint after a few calls
        self.health = _health(scope) if scope else Health()
        self._lock = threading.Lock()

    def _key(self, messages: list[dict], schema: dict | None) -> str:
        body = json.dumps(
            {
                "v": self.cfg.prompt_version,
                "model": self.cfg.model,
                "messages": messages,
                "temperature": self.cfg.temperature,
                "max_tokens": self.cfg.max_tokens,
                "schema": schema,
            },
            sort_keys=True,
        )
        return hashlib.sha256(body.encode()).hexdigest()

    def _cache_path(self, key: str) -> str | None:
        return posixpath.join(self.cache_dir, key[:2], f"{key}.json") if self.cache_dir else None

    def _failing(self) -> bool:
        h = self.health
        with h.lock:
            return h.calls >= MIN_CALLS_BEFORE_STOP and h.failures > self.max_failure_rate * h.calls

    def _record(self, status: str) -> None:
        h = self.health
        with h.lock:
            h.calls += 1
            h.failures += status in FAILED

    def _body(self, messages: list[dict], schema: dict | None, form: str) -> dict:
        body = {
            "model": self.cfg.model,
            "messages": messages,
            "temperature": self.cfg.temperature,
            "max_tokens": self.cfg.max_tokens,
        }
        if schema is not None and form == "json_schema":
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "reply", "schema": schema, "strict": True},
            }
        elif schema is not None and form == "json_object":
            body["response_format"] = {"type": "json_object", "schema": schema}
        return body

    def _post(self, messages: list[dict], schema: dict | None) -> Reply:
        """One request (urllib3 retries inside); steps the response format down when the server refuses it."""
        while True:
            form = self.format
            try:
                resp = self.http.request(
                    "POST", self.url, body=json.dumps(self._body(messages, schema, form)).encode(), headers=self.headers
                )
            except Exception as err:  # connection errors after the retries
                return Reply(None, "error", detail=f"{type(err).__name__}: {err}"[:300])
            if resp.status != 200:
                text = resp.data[:2000].decode("utf-8", "replace")
                refused = (
                    schema is not None
                    and form != "none"
                    and resp.status in (400, 422, 500)
                    and ("response_format" in text or "json_schema" in text or "json_object" in text)
                )
                if refused:
                    with self._lock:
                        if self.format == form:  # another thread may have stepped down already
                            self.format = FORMATS[FORMATS.index(form) + 1]
                            self.format_changes.append(f"{form} -> {self.format}")
                    continue
                return Reply(None, "error", detail=f"HTTP {resp.status}: {text[:200]!r}")
            try:
                data = json.loads(resp.data)
                content = data["choices"][0]["message"]["content"] or ""
                usage = data.get("usage") or {}
                return Reply(
                    content, "ok", int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
                )
            except (ValueError, KeyError, IndexError, TypeError) as err:
                return Reply(None, "error", detail=f"unreadable response: {err}")

    def _send(self, messages: list[dict], schema: dict | None) -> Reply:
        """A budgeted request: the worst case reserved first, the real usage settled after."""
        reservation = self.budget.reserve(sum(len(m["content"]) for m in messages), self.cfg.max_tokens)
        if reservation is None:
            return Reply(None, "budget")
        reply = self._post(messages, schema)
        self.budget.settle(reservation, reply.prompt_tokens, reply.completion_tokens)
        return reply

    def complete(
        self, messages: list[dict], schema: dict | None = None, parse: Callable[[str], object] | None = None
    ) -> Reply:
        """One call. With ``schema``, structured output is requested; with ``parse`` (content → value, or None
        when unreadable), an unreadable reply is asked again once, and only a readable one is cached."""
        key = self._key(messages, schema)
        path = self._cache_path(key)
        if path and files.exists(path):
            content = json.loads(files.read_text(path))["content"]
            value = parse(content) if parse else None
            if parse is None or value is not None:
                return Reply(content, "cached", value=value)
        if self._failing():
            return Reply(None, "skipped_failing", detail="this task's calls fail above max_llm_failure_rate")
        reply = self._send(messages, schema)
        if reply.status == "ok" and parse is not None:
            reply.value = parse(reply.content)
            if reply.value is None:
                again = messages + [
                    {"role": "assistant", "content": (reply.content or "")[:4000]},
                    {"role": "user", "content": REASK.format(why=_why_unreadable(reply.content))},
                ]
                second = self._send(again, schema)
                second.prompt_tokens += reply.prompt_tokens
                second.completion_tokens += reply.completion_tokens
                second.detail = "asked again"
                if second.status == "ok":
                    second.value = parse(second.content)
                    if second.value is None:
                        second.status = "unreadable"
                reply = second
        if reply.status in ("ok", "error", "unreadable"):
            self._record(reply.status)
        if reply.status == "ok" and path:
            files.make_dirs(posixpath.dirname(path))
            files.write_text(path, json.dumps({"content": reply.content}))
        return reply

    def complete_many(
        self, requests: list[list[dict]], schema: dict | None = None, parse: Callable[[str], object] | None = None
    ) -> list[Reply]:
        """Requests in order, ``concurrency`` in flight."""
        if len(requests) <= 1 or self.cfg.concurrency == 1:
            return [self.complete(r, schema, parse) for r in requests]
        with ThreadPoolExecutor(max_workers=self.cfg.concurrency) as pool:
            return list(pool.map(lambda r: self.complete(r, schema, parse), requests))


def _why_unreadable(content: str | None) -> str:
    if not content or not content.strip():
        return "it was empty"
    try:
        _json_object(content)
    except ValueError as err:
        return f"it is not a JSON object ({str(err)[:80]})"
    return "it lacks the fields the schema requires"


def account(replies: list[Reply], out, use: str) -> None:
    """Count one use's calls by outcome (``<use>_ok``, ``<use>_error``, ...) and tokens, for the stage's stats and
    :func:`check_failures`."""
    for r in replies:
        out.count(f"{use}_{r.status}")
        if r.detail == "asked again":
            out.count(f"{use}_reasked")
    out.count(f"{use}_prompt_tokens", sum(r.prompt_tokens for r in replies))
    out.count(f"{use}_completion_tokens", sum(r.completion_tokens for r in replies))


def check_failures(stage: str, uses: dict[str, LlmEndpoint], counters: dict[str, int], max_rate: float) -> dict:
    """On the driver, after the stage's tasks: warn when any LLM call failed; raise LlmError (nothing is
    committed) when failures exceed ``max_rate`` of the calls of any use. Returns the figures per use."""
    import logging

    log = logging.getLogger("corpus")
    report = {}
    for use, cfg in uses.items():
        ok = counters.get(f"{use}_ok", 0) + counters.get(f"{use}_cached", 0)
        failed = {s: counters.get(f"{use}_{s}", 0) for s in FAILED}
        calls = ok + sum(failed.values())
        report[use] = {"calls": calls, "ok": ok, **failed, "budget": counters.get(f"{use}_budget", 0)}
        if not sum(failed.values()):
            continue
        what = ", ".join(f"{n} {s.replace('_', ' ')}" for s, n in failed.items() if n)
        rate = sum(failed.values()) / calls
        log.warning(
            "%s: %d of %d %s calls to %s (model %s) failed (%s)",
            stage,
            sum(failed.values()),
            calls,
            use,
            cfg.base_url,
            cfg.model,
            what,
        )
        if rate > max_rate:
            raise LlmError(
                f"{stage}: {sum(failed.values())} of {calls} {use} calls to {cfg.base_url} (model "
                f"{cfg.model}) failed ({what}): {rate:.0%} is above max_llm_failure_rate {max_rate:g}; "
                f"nothing committed. Check the endpoint, or raise the limit."
            )
    return report


def read_api_key(cfg: LlmEndpoint) -> str | None:
    """The API key from the environment variable ``cfg.api_key_env`` names (None when no variable is named).
    The stage reads it on the driver and hands it to its tasks, so executors need not have it set."""
    if not cfg.api_key_env:
        return None
    key = os.environ.get(cfg.api_key_env)
    if not key:
        raise LlmError(f"extract.llm.api_key_env: environment variable {cfg.api_key_env} is not set")
    return key


def stage_args(
    cfg: LlmEndpoint, run_output: str, tasks: int, scope: str | None = None
) -> tuple[str, float, str | None, str | None]:
    """(cache folder, budget share per task, API key, health scope) for a stage that calls the endpoint. Runs on
    the driver: a missing key fails before any task starts. ``scope``: unique to this stage run (its temporary
    folder), so that the clients of one run in a worker share their failure counts and no other run's."""
    key = read_api_key(cfg)
    cache = cfg.cache or posixpath.join(run_output.rstrip("/"), "llm-cache")
    return cache, 1.0 / max(1, tasks), key, scope


def extract_messages(text: str, cfg: LlmSection) -> list[dict]:
    return [{"role": "system", "content": EXTRACT_PROMPT}, {"role": "user", "content": text[: cfg.max_document_chars]}]


def refine_messages(instruction: str, response: str) -> list[dict]:
    return [
        {"role": "system", "content": REFINE_PROMPT},
        {"role": "user", "content": json.dumps({"instruction": instruction, "response": response}, ensure_ascii=False)},
    ]


def _json_object(content: str):
    content = content.strip()
    fence = re.search(r"```(?:json)?\s*(.*?)```", content, re.S)
    if fence:
        content = fence.group(1).strip()
    start = content.find("{")
    if start < 0:
        raise ValueError("no JSON object in the reply")
    return json.JSONDecoder().raw_decode(content[start:])[0]


def parse_pairs(content: str | None) -> list[tuple[str, str]] | None:
    """Pairs from an extraction reply; [] for none (``{"pairs": []}``, or ``void`` from servers without structured
    output); None when the reply cannot be read."""
    if content is None:
        return None
    if content.strip().strip(".").lower() == "void":
        return []
    try:
        obj = _json_object(content)
        pairs = obj["pairs"] if isinstance(obj, dict) else obj
        if not isinstance(pairs, list):
            return None
        return [
            (str(p["instruction"]), str(p["response"]))
            for p in pairs
            if isinstance(p, dict) and "instruction" in p and "response" in p
        ]
    except (ValueError, KeyError, TypeError):
        return None


def parse_refined(content: str | None) -> tuple[str, str] | None:
    try:
        obj = _json_object(content or "")
        return str(obj["instruction"]), str(obj["response"])
    except (ValueError, KeyError, TypeError):
        return None
