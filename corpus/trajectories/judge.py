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


def parse_verdict(content: str | None) -> tuple[bool, str] | None:
    if not content:
        return None
    try:
        obj = llm._json_object(content)
        return bool(obj["pass"]), str(obj.get("reason") or "")
    except (ValueError, KeyError, TypeError):
        return None


class Judge:
    """One task's judge: a client with the task's share of the budget."""

    def __init__(self, cfg: JudgeSection, cache: str | None, share: float, api_key: str | None) -> None:
        self.cfg = cfg
        self.client = llm.Client(cfg, cache, llm.Budget.share(cfg, share), api_key)

    def verdicts(self, rendered: list[str], out: Emitter) -> list[tuple[str, str] | None]:
        """Per trajectory: None (pass), or (reason, detail) to reject. Unreadable or missing replies (errors,
        budget) do not reject: they are counted, and the trajectory keeps the verdict of the checks."""
        votes = self.cfg.votes
        requests = [messages(text, seat) for text in rendered for seat in range(votes)]
        replies = self.client.complete_many(requests)
        out.count("judge_prompt_tokens", sum(r.prompt_tokens for r in replies))
        out.count("judge_completion_tokens", sum(r.completion_tokens for r in replies))
        results = []
        for i in range(len(rendered)):
            mine = replies[i * votes:(i + 1) * votes]
            for r in mine:
                out.count(f"judge_{r.status}")
            parsed = [parse_verdict(r.content) for r in mine]
            counted = [p for p in parsed if p is not None]
            if not counted:
                out.count("judge_no_verdict")
                results.append(None)
                continue
            against = [p for p in counted if not p[0]]
            if len(against) * 2 > len(counted):
                results.append(("judge_rejected", f"{len(against)} of {len(counted)}: {against[0][1]}"[:300]))
            else:
                results.append(None)
        out.count("judge_cost_micro_usd", round(self.client.budget.cost * 1e6))
        return results
