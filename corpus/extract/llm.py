"""Instruction-response extraction and refinement through an OpenAI-compatible chat-completions endpoint.

Any server that speaks ``POST {base_url}/chat/completions`` works: vLLM, llama.cpp's server, a hosted API. The
client is plain urllib3 (already a dependency through botocore): batched per Spark task, ``concurrency`` requests
in flight, retries with exponential backoff on 429 / 5xx / connection errors (``Retry-After`` honoured), a
response cache keyed by (prompt version, model, request hash), token and cost accounting, and a hard budget.

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

from corpus.config import LlmEndpoint, LlmSection
from corpus.io import files

EXTRACT_PROMPT = """You extract instruction-response pairs from web documents, to train an assistant that uses \
tools and APIs.
Find the questions, tasks or how-tos that the document answers, with their complete answers (keep code and \
commands exactly). Do not invent content that is not in the document.
Reply with JSON only: {"pairs": [{"instruction": "...", "response": "..."}]}.
If the document holds no such pair, reply with the single word: void"""

REFINE_PROMPT = """You refine an instruction-response pair for training an assistant that uses tools and APIs.
Fix the format, make the instruction self-contained, and add missing context or intermediate steps to the \
response. Change the answer only when it is clearly wrong.
Reply with JSON only: {"instruction": "...", "response": "..."}"""


class LlmError(RuntimeError):
    pass


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
        return cls(max_tokens=cfg.max_total_tokens * share if cfg.max_total_tokens else None,
                   max_cost=cfg.max_cost_usd * share if cfg.max_cost_usd else None,
                   usd_in=cfg.usd_per_million_input, usd_out=cfg.usd_per_million_output)

    def settle(self, reservation: tuple[float, float], prompt_tokens: int, completion_tokens: int) -> None:
        with self._lock:
            self._reserved_tokens -= reservation[0]
            self._reserved_cost -= reservation[1]
            self.tokens += prompt_tokens + completion_tokens
            self.cost += (prompt_tokens * self.usd_in + completion_tokens * self.usd_out) / 1e6


@dataclass
class Reply:
    content: str | None
    status: str  # ok | cached | error | budget
    prompt_tokens: int = 0
    completion_tokens: int = 0
    detail: str | None = None


class Client:
    """One per Spark task (or per process in tests)."""

    def __init__(self, cfg: LlmEndpoint, cache_dir: str | None, budget: Budget, api_key: str | None = None) -> None:
        import urllib3

        self.cfg = cfg
        self.cache_dir = cache_dir
        self.budget = budget
        self.url = cfg.base_url.rstrip("/") + "/chat/completions"
        retry = urllib3.Retry(total=cfg.retries, backoff_factor=cfg.backoff_seconds,
                              status_forcelist=(429, 500, 502, 503, 504), allowed_methods=frozenset({"POST"}),
                              respect_retry_after_header=True, raise_on_status=False)
        self.http = urllib3.PoolManager(maxsize=cfg.concurrency, retries=retry,
                                        timeout=urllib3.Timeout(total=cfg.timeout_seconds))
        headers = {"Content-Type": "application/json"}
        key = api_key or read_api_key(cfg)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self.headers = headers

    def _key(self, messages: list[dict]) -> str:
        body = json.dumps({"v": self.cfg.prompt_version, "model": self.cfg.model, "messages": messages,
                           "temperature": self.cfg.temperature, "max_tokens": self.cfg.max_tokens}, sort_keys=True)
        return hashlib.sha256(body.encode()).hexdigest()

    def _cache_path(self, key: str) -> str | None:
        return posixpath.join(self.cache_dir, key[:2], f"{key}.json") if self.cache_dir else None

    def complete(self, messages: list[dict]) -> Reply:
        key = self._key(messages)
        path = self._cache_path(key)
        if path and files.exists(path):
            cached = json.loads(files.read_text(path))
            return Reply(cached["content"], "cached")
        reservation = self.budget.reserve(sum(len(m["content"]) for m in messages), self.cfg.max_tokens)
        if reservation is None:
            return Reply(None, "budget")
        body = {"model": self.cfg.model, "messages": messages, "temperature": self.cfg.temperature,
                "max_tokens": self.cfg.max_tokens}
        try:
            resp = self.http.request("POST", self.url, body=json.dumps(body).encode(), headers=self.headers)
        except Exception as err:  # connection errors after the retries
            self.budget.settle(reservation, 0, 0)
            return Reply(None, "error", detail=f"{type(err).__name__}: {err}"[:300])
        if resp.status != 200:
            self.budget.settle(reservation, 0, 0)
            return Reply(None, "error", detail=f"HTTP {resp.status}: {resp.data[:200]!r}")
        try:
            data = json.loads(resp.data)
            content = data["choices"][0]["message"]["content"] or ""
            usage = data.get("usage") or {}
        except (ValueError, KeyError, IndexError, TypeError) as err:
            self.budget.settle(reservation, 0, 0)
            return Reply(None, "error", detail=f"unreadable response: {err}")
        p_tok, c_tok = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
        self.budget.settle(reservation, p_tok, c_tok)
        if path:
            files.make_dirs(posixpath.dirname(path))
            files.write_text(path, json.dumps({"content": content, "usage": usage}))
        return Reply(content, "ok", p_tok, c_tok)

    def complete_many(self, requests: list[list[dict]]) -> list[Reply]:
        """Requests in order, ``concurrency`` in flight."""
        if len(requests) <= 1 or self.cfg.concurrency == 1:
            return [self.complete(r) for r in requests]
        with ThreadPoolExecutor(max_workers=self.cfg.concurrency) as pool:
            return list(pool.map(self.complete, requests))


def read_api_key(cfg: LlmEndpoint) -> str | None:
    """The API key from the environment variable ``cfg.api_key_env`` names (None when no variable is named).
    The stage reads it on the driver and hands it to its tasks, so executors need not have it set."""
    if not cfg.api_key_env:
        return None
    key = os.environ.get(cfg.api_key_env)
    if not key:
        raise LlmError(f"extract.llm.api_key_env: environment variable {cfg.api_key_env} is not set")
    return key


def stage_args(cfg: LlmEndpoint, run_output: str, tasks: int) -> tuple[str, float, str | None]:
    """(cache folder, budget share per task, API key) for a stage that calls the endpoint. Runs on the driver: a
    missing key fails before any task starts."""
    key = read_api_key(cfg)
    cache = cfg.cache or posixpath.join(run_output.rstrip("/"), "llm-cache")
    return cache, 1.0 / max(1, tasks), key


def extract_messages(text: str, cfg: LlmSection) -> list[dict]:
    return [{"role": "system", "content": EXTRACT_PROMPT},
            {"role": "user", "content": text[: cfg.max_document_chars]}]


def refine_messages(instruction: str, response: str) -> list[dict]:
    return [{"role": "system", "content": REFINE_PROMPT},
            {"role": "user", "content": json.dumps({"instruction": instruction, "response": response},
                                                   ensure_ascii=False)}]


def _json_object(content: str):
    content = content.strip()
    fence = re.search(r"```(?:json)?\s*(.*?)```", content, re.S)
    if fence:
        content = fence.group(1).strip()
    start = content.find("{")
    if start < 0:
        raise ValueError("no JSON object in the reply")
    return json.JSONDecoder().raw_decode(content[start:])[0]


def parse_pairs(content: str) -> list[tuple[str, str]] | None:
    """Pairs from an extraction reply; [] for ``void``; None when the reply cannot be read."""
    if content.strip().strip(".").lower() == "void":
        return []
    try:
        obj = _json_object(content)
        pairs = obj["pairs"] if isinstance(obj, dict) else obj
        return [(str(p["instruction"]), str(p["response"])) for p in pairs
                if isinstance(p, dict) and "instruction" in p and "response" in p]
    except (ValueError, KeyError, TypeError):
        return None


def parse_refined(content: str) -> tuple[str, str] | None:
    try:
        obj = _json_object(content)
        return str(obj["instruction"]), str(obj["response"])
    except (ValueError, KeyError, TypeError):
        return None
