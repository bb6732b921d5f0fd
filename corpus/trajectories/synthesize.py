"""The ``synthesize`` stage: verified trajectories made from ingest-apis' operation records (APIGen-MT style,
template-made; see :mod:`corpus.trajectories.synth`).

Input: a committed ``ingest-apis`` output (its ``tools/`` dataset). Operations are grouped by API version
(``groupBy(provider, api, version).applyInArrow``: each group sees its API's other operations, which are offered
as distractor tools), and at most ``synthesize.max_per_api`` operations per API version are used, chosen by a
seeded hash (so large APIs do not crowd out small ones). ``rows_in`` counts the operations used; those beyond
the cap are counted in ``operations_over_cap``.

Rejects: ``no_intent`` (the description does not start with a verb), the verification reasons
(``unknown_function``, ``missing_required``, ``wrong_type``, ``not_in_enum``, ``out_of_range``,
``ungrounded_argument``, ``no_tool_calls``) should a blueprint's call not fit its own schema, and
``judge_rejected`` when an LLM committee (``synthesize.judge``, off by default) reviews the conversations and its
majority turns one down.
"""

from __future__ import annotations

import hashlib
import posixpath

import pyarrow as pa

from corpus.config import SynthesizeSection
from corpus.ids import content_id, dumps
from corpus.spark import datasets
from corpus.spark.envelope import Emitter, envelope_schema
from corpus.trajectories.stage import SIDE, emit
from corpus.trajectories.synth import SynthError, conversation
from corpus.trajectories.verify import render, verify

STAGE = "synthesize"
FIELDS = ["id", "source", "provider", "api", "api_title", "version", "operation_id", "spec_format", "description",
          "response_schema", "tool_schema"]


def synthesize_group(table: pa.Table, cfg: SynthesizeSection, seed: int, judge_args=None, llm_args=None
                     ) -> pa.Table:
    """applyInArrow function: one API version's operation records → envelope rows. ``judge_args`` / ``llm_args``:
    (cache, budget share, API key) when the LLM judge reviews the conversations / an LLM plays the user."""
    from corpus.trajectories.judge import Judge

    out = Emitter(STAGE)
    records = sorted(table.to_pylist(), key=lambda r: hashlib.sha256(f"{seed}:{r['id']}".encode()).hexdigest())
    chosen, over = records[: cfg.max_per_api], records[cfg.max_per_api:]
    out.count("operations_over_cap", len(over))
    made = []  # (record, location, trajectory, blueprint)
    for rec in chosen:
        out.count("records_in")
        location = f"{rec['source']}:{rec['api']}/{rec['version']}/{rec['operation_id']}"
        try:
            traj, bp = conversation(rec, records, seed, cfg.distractors)
        except SynthError as err:
            out.reject(err.reason, err.detail or None, location=location, source=rec["source"], part="trajectory")
            continue
        made.append((rec, location, traj, bp))
    voiced = simulate([(traj, bp) for _, _, traj, bp in made], cfg, llm_args, out) if llm_args else [None] * len(made)
    kept: list = []
    for (rec, location, traj, bp), model in zip(made, voiced):
        checks = verify(traj)
        failed = next((v for v in checks.values() if v not in ("pass", "skipped")), None)
        text = render(traj)
        tid = content_id(dumps({"tools": traj["tools"], "messages": traj["messages"]}))
        provenance = {"template_made": model is None, "operation": location, "tool_doc_id": rec["id"],
                      "blueprint": bp, **({"user_simulated_by": model} if model else {})}
        metadata = dumps({**provenance, "location": location, "checks": checks})
        if failed:
            reason, _, detail = failed.partition(": ")
            out.reject(reason, detail or None, location=location, source=rec["source"], part="trajectory", id=tid,
                       text=text, metadata=metadata)
            continue
        kept.append((dict(id=tid, part="trajectory", source=rec["source"], source_id=rec["id"], text=text,
                          metadata=metadata),
                     dumps({"id": tid, "source": rec["source"], "source_format": "synthesized", "source_id": rec["id"],
                            "tools": dumps(traj["tools"]), "messages": traj["messages"],
                            "reference_calls": dumps(traj["reference_calls"]),
                            "checks": dict(sorted(checks.items())), "reward": None,
                            "provenance": dumps(provenance)})))
    emit(out, kept, Judge(cfg.judge, *judge_args, cfg.max_llm_failure_rate) if judge_args else None)
    return pa.Table.from_batches([out.batch()], schema=envelope_schema())


SIMULATE_PROMPT = """You write training conversations for an assistant that calls APIs.
Given a task blueprint (the user's intent, the call that fulfils it, and the call's result), write
1. the user's request, in natural words, stating every argument value exactly as given, and
2. the assistant's final reply to the user after the call returned the result.
Reply with JSON only: {"user": "...", "assistant": "..."}"""


SIMULATE_SCHEMA = {"type": "object", "properties": {"user": {"type": "string"}, "assistant": {"type": "string"}},
                   "required": ["user", "assistant"], "additionalProperties": False}


def simulate(made: list[tuple[dict, dict]], cfg: SynthesizeSection, llm_args, out: Emitter) -> list[str | None]:
    """Let an LLM play the user (and word the assistant's last reply) for each blueprint, in place; returns the
    model name per trajectory, or None where the template stays (no reply, unreadable reply, budget spent)."""
    from corpus.extract import llm

    client = llm.Client(cfg.llm, llm_args[0], llm.Budget.share(cfg.llm, llm_args[1]), llm_args[2],
                        cfg.max_llm_failure_rate, llm_args[3] if len(llm_args) > 3 else None)
    requests = [[{"role": "system", "content": SIMULATE_PROMPT},
                 {"role": "user", "content": dumps({"intent": bp["intent"], "call": {"name": bp["function"],
                                                    "arguments": bp["arguments"]}, "result": bp["outcome"]})}]
                for _, bp in made]
    replies = client.complete_many(requests, SIMULATE_SCHEMA, _parse_voiced)
    llm.account(replies, out, "simulate")  # failures are counted there and checked by the stage
    models = []
    for (traj, _), reply in zip(made, replies):
        if reply.value is None:
            out.count("simulate_template_kept")
            models.append(None)
            continue
        traj["messages"][0]["content"], traj["messages"][-1]["content"] = reply.value
        models.append(cfg.llm.model)
    return models


def _parse_voiced(content: str | None) -> tuple[str, str] | None:
    from corpus.extract import llm

    try:
        voiced = llm._json_object(content or "")
        user, final = voiced["user"], voiced["assistant"]
    except (ValueError, KeyError, TypeError):
        return None
    return (user, final) if isinstance(user, str) and isinstance(final, str) and user.strip() else None


def build(ctx):
    from pyspark.sql import functions as F

    from corpus import schema
    from corpus.stage import StageError, write_envelope

    cfg: SynthesizeSection = ctx.config.synthesize
    seed = ctx.config.run.seed
    from corpus.io import files

    paths = []
    for i in ctx.inputs:
        p = str(getattr(i, "path", i)).rstrip("/")
        # an ingest-apis output folder (its tools/), or a tool_doc dataset itself
        tools = posixpath.join(p, "tools") if files.exists(posixpath.join(p, "tools")) else p
        if not files.exists(tools) or files.exists(posixpath.join(tools, "data")):
            raise StageError(f"synthesize: {p} has no tools/ dataset (give an ingest-apis output)")
        paths.append(tools)
    records = datasets.read(ctx.spark, *paths, schema=schema.load("tool_doc").spark).select(*FIELDS)
    if cfg.sources:
        records = records.where(F.col("source").isin(list(cfg.sources)))
    from pyspark.sql.pandas.types import from_arrow_schema

    extra: dict = {"tools": paths}
    judge_args = None
    if cfg.judge.enabled:
        from corpus.extract.llm import stage_args

        tasks = int(ctx.spark.conf.get("spark.sql.shuffle.partitions"))
        judge_args = stage_args(cfg.judge, ctx.config.run.output, tasks, f"{ctx.tmp}:judge")
        extra["judge"] = {"base_url": cfg.judge.base_url, "model": cfg.judge.model, "votes": cfg.judge.votes}
    llm_args = None
    if cfg.llm.enabled:
        from corpus.extract.llm import stage_args

        llm_args = stage_args(cfg.llm, ctx.config.run.output, int(ctx.spark.conf.get("spark.sql.shuffle.partitions")),
                              f"{ctx.tmp}:simulate")
        extra["llm"] = {"base_url": cfg.llm.base_url, "model": cfg.llm.model}
    env = records.groupBy("provider", "api", "version").applyInArrow(
        lambda table: synthesize_group(table, cfg, seed, judge_args, llm_args), from_arrow_schema(envelope_schema()))
    # the groups' envelope split and written by the tasks that made it (no persisted copy, no job per dataset)
    outcome = write_envelope(ctx, env, lambda batches: batches, extra=extra,
                             sides={SIDE: ("trajectories", "trajectory")})
    uses = {**({"judge": cfg.judge} if judge_args else {}), **({"simulate": cfg.llm} if llm_args else {})}
    if uses:
        from corpus.extract.llm import check_failures

        outcome.extra["llm_calls"] = check_failures(STAGE, uses, outcome.counters, cfg.max_llm_failure_rate)
    return outcome
