"""An LLM judge for trajectories: APIGen's third check (semantic: do the calls, and their results, fulfil every
request of the user?), through the OpenAI-compatible client of :mod:`corpus.extract.llm`. With ``votes`` > 1 it
is a committee (APIGen-MT reviews blueprints with one): each judge is asked with its own seat number in the
prompt (so replies are cached apart), and the majority decides.
"""

from __future__ import annotations

from corpus.config import JudgeSection
from corpus.extract import llm
from corpus.spark.envelope import Emitter

PROMPT = """You check function-calling conversations used to train assistants that call tools.
Given the tools offered and the conversation, decide whether the assistant's tool calls (and their results, when
shown) fulfil every request of the user: the right functions, with argument values the user asked for.
Reply with JSON only: {"pass": true or false, "reason": "<one sentence>"}"""


def messages(rendered: str, seat: int) -> list[dict]:
    return [{"role": "system", "content": PROMPT + f"\n(Judge {seat + 1}.)"}, {"role": "user", "content": rendered}]


VERDICT_SCHEMA = llm._object({"pass": {"type": "boolean"}, "reason": {"type": "string"}})


def parse_verdict(content: str | None) -> tuple[bool, str] | None:
    if not content:
        return None
    try:
        obj = llm._json_object(content)
        if not isinstance(obj.get("pass"), bool):
            return None  # "pass": "maybe" is no verdict
        return obj["pass"], str(obj.get("reason") or "")
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


class Judge:
    """One task's judge: a client with the task's share of the budget."""

    def __init__(
        self,
        cfg: JudgeSection,
        cache: str | None,
        share: float,
        api_key: str | None,
        scope: str | None = None,
        max_failure_rate: float = 1.0,
    ) -> None:
        self.cfg = cfg
        self.client = llm.Client(cfg, cache, llm.Budget.share(cfg, share), api_key, max_failure_rate, scope)

    def verdicts(self, rendered: list[str], out: Emitter) -> list[tuple[str, str] | None]:
        """Per trajectory: None (pass), or (reason, detail) to reject. A trajectory no judge gave a readable verdict
        for (errors, unreadable replies, budget spent) is rejected as ``judge_no_verdict`` unless ``on_no_verdict:
        keep``; every failed call is counted (``judge_error``, ``judge_unreadable``) for the stage's check."""
        votes = self.cfg.votes
        requests = [messages(text, seat) for text in rendered for seat in range(votes)]
        replies = self.client.complete_many(requests, VERDICT_SCHEMA, parse_verdict)
        llm.account(replies, out, "judge")
        results = []
        for i in range(len(rendered)):
            mine = replies[i * votes : (i + 1) * votes]
            counted = [r.value for r in mine if r.value is not None]
            if not counted:
                out.count("judge_no_verdict")
                if self.cfg.on_no_verdict == "reject":
                    why = ", ".join(sorted({r.status + (f" ({r.detail})" if r.detail else "") for r in mine}))
                    results.append(("judge_no_verdict", f"no readable verdict from {votes} judge(s): {why}"[:300]))
                else:
                    results.append(None)
                continue
            against = [p for p in counted if not p[0]]
            if len(against) * 2 > len(counted):
                results.append(("judge_rejected", f"{len(against)} of {len(counted)}: {against[0][1]}"[:300]))
            else:
                results.append(None)
        out.count("judge_cost_micro_usd", round(self.client.budget.cost * 1e6))
        return results
