"""The ``synthesize`` stage: function-calling trajectories made by *executing* tasks (APIGen's verification by
execution, Liu et al. 2024, arXiv 2406.18518; APIGen-MT's blueprints with state checks, Prabhakar et al. 2025,
arXiv 2504.03601), offline.

Input: a committed ``ingest-apis`` output (its ``tools/`` dataset). Operations are grouped by API version
(``groupBy(provider, api, version).applyInArrow``). An API version is executable when an environment runs it:
AWS services that moto mocks (:mod:`corpus.trajectories.aws`). For each, up to ``synthesize.max_per_api`` tasks
are planned from its dependency graph (a root that makes a resource, then calls that use it, ids taken from
earlier real results), run in a fresh mock, and kept only when every call succeeded and the final state is the
expected one; the conversation (:mod:`corpus.trajectories.tasks`) carries the real results. Operations of APIs no
environment runs stay tool docs (and instruction pairs): they are counted in ``operations_not_executable``, per
source in ``operations_not_executable.<source>``, not made into trajectories.

``rows_in`` counts tasks. Rejects: ``call_failed`` (a real error from the service, with its code and message),
``missing_output`` (a result lacked the id a later call needed), ``recovery_not_needed`` (a get-or-create
task found its resource before making it), ``state_mismatch`` (the final state is not the
expected one), ``no_state_check`` (nothing read-only can check the resource), the verification reasons of
:mod:`corpus.trajectories.verify`, and ``judge_rejected`` when an LLM committee (``synthesize.judge``) turns one
down.
"""

from __future__ import annotations

import hashlib
import posixpath

import pyarrow as pa

from corpus.config import SynthesizeSection
from corpus.ids import content_id, dumps
from corpus.spark import datasets
from corpus.spark.envelope import Emitter, envelope_schema
from corpus.trajectories.ingest import SIDE, emit
from corpus.trajectories.verify import render, verify

STAGE = "synthesize"
FIELDS = [
    "id",
    "source",
    "provider",
    "api",
    "api_title",
    "version",
    "operation_id",
    "spec_format",
    "description",
    "response_schema",
    "tool_schema",
    "sdk_name",
    "kind",
    "parameters",
]


def _order(seed, key: str) -> str:
    return hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()


def environment(records: list[dict]) -> tuple[str, str] | None:
    """Which environment runs an API group: ("aws", boto3 client name) for a botocore service moto mocks,
    ("python", module) for a standard-library module on the sandbox's allow-list; None when none does."""
    first = records[0]
    if first.get("spec_format") == "botocore" and first.get("sdk_name"):
        from corpus.trajectories.aws import supported

        client = first["sdk_name"].split(".", 1)[0]
        return ("aws", client) if supported(client, first.get("version") or "") else None
    from corpus.trajectories.python import module_of

    modules = {module_of(r) for r in records} - {None}
    return ("python", modules.pop()) if modules else None


def synthesize_group(table: pa.Table, cfg: SynthesizeSection, seed: int, judge_args=None, llm_args=None) -> pa.Table:
    """applyInArrow function: one API version's operation records → envelope rows. ``judge_args`` / ``llm_args``:
    (cache, budget share, API key) when the LLM judge reviews the conversations / an LLM plays the user."""
    from corpus.trajectories.judge import Judge

    out = Emitter(STAGE)
    records = table.to_pylist()
    env = environment(records) if records else None
    if env is None:
        out.count("operations_not_executable", len(records))
        if records:
            out.count(f"operations_not_executable.{records[0]['source']}", len(records))
            out.count(f"operations.{records[0]['source']}", len(records))
        return pa.Table.from_batches([out.batch()], schema=envelope_schema())
    made = (execute_tasks if env[0] == "aws" else execute_python_tasks)(records, env[1], cfg, seed, out)
    voiced = simulate([(traj, bp) for _, _, traj, bp in made], cfg, llm_args, out) if llm_args else [None] * len(made)
    kept: list = []
    for (rec, location, traj, bp), model in zip(made, voiced):
        checks = {**verify(traj), **bp.pop("checks")} if traj["reference_calls"] else bp.pop("checks")
        failed = next((v for v in checks.values() if v not in ("pass", "skipped")), None)
        text = render(traj)
        tid = content_id(dumps({"tools": traj["tools"], "messages": traj["messages"]}))
        provenance = {
            "template_made": False,
            "executed": bool(traj["reference_calls"]),
            "operation": location,
            "tool_doc_id": rec["id"],
            "blueprint": bp,
            **({"user_simulated_by": model} if model else {}),
        }
        metadata = dumps({**provenance, "location": location, "checks": checks})
        if failed:
            reason, _, detail = failed.partition(": ")
            out.reject(
                reason,
                detail or None,
                location=location,
                source=rec["source"],
                part="trajectory",
                id=tid,
                text=text,
                metadata=metadata,
            )
            continue
        measure(traj, bp, out)
        kept.append(
            (
                dict(
                    id=tid, part="trajectory", source=rec["source"], source_id=rec["id"], text=text, metadata=metadata
                ),
                dumps(
                    {
                        "id": tid,
                        "source": rec["source"],
                        "source_format": "synthesized",
                        "source_id": rec["id"],
                        "tools": dumps(traj["tools"]),
                        "messages": traj["messages"],
                        "reference_calls": dumps(traj["reference_calls"]),
                        "checks": dict(sorted(checks.items())),
                        "reward": None,
                        "provenance": dumps(provenance),
                    }
                ),
            )
        )
    emit(out, kept, Judge(cfg.judge, *judge_args, cfg.max_llm_failure_rate) if judge_args else None)
    return pa.Table.from_batches([out.batch()], schema=envelope_schema())


def measure(traj: dict, bp: dict, out: Emitter) -> None:
    """Counters that say what the trajectories are like (the report's "synthesize: trajectories" table)."""
    out.count("trajectories")
    calls = len(traj["reference_calls"])
    results = [m.get("content") or "" for m in traj["messages"] if m["role"] == "tool"]
    out.count("trajectories_executed", bool(calls))
    out.count("trajectories_multi_call", calls >= 2)
    out.count("trajectories_from_results", calls >= 2 and bool(bp.get("from_results")))
    out.count("trajectories_multi_turn", sum(m["role"] == "user" for m in traj["messages"]) >= 2)
    out.count("trajectories_recovery", bp.get("kind") == "recovery")
    out.count("trajectories_irrelevance", bp.get("kind") == "irrelevance")
    out.count("trajectories_placeholder", any("example-" in (m.get("content") or "") for m in traj["messages"]))
    out.count("calls", calls)
    out.count("tool_results", len(results))
    out.count("tool_results_empty", sum(r.strip() in ("{}", "") for r in results))


def execute_python_tasks(records: list[dict], module: str, cfg: SynthesizeSection, seed: int, out: Emitter) -> list:
    """Up to ``cfg.max_per_api`` tasks calling the module's documented functions in the sandbox: one call, or
    (one task in two, where a function takes the result) two chained calls. A function that fails is not used
    again in the group; a follower that fails is not chained again."""
    from corpus.trajectories import python, tasks

    functions = sorted((r for r in records if python.module_of(r)), key=lambda r: _order(seed, r["id"]))
    followers = [r for r in functions if python.takes_one(r)]
    by_op = {r["operation_id"]: r for r in records}
    base = f"{records[0]['source']}:{module}"
    title = f"the Python `{module}` module"
    out.count("operations_not_executable", len(records) - len(functions))
    dead: set[str] = set()
    used: set[str] = set()
    made: list = []
    k = 0
    with python.Sandbox(module) as box:
        while k < cfg.max_per_api and len(dead) < len(functions):
            fn = functions[k % len(functions)]
            tseed = f"{seed}:{base}:{fn['operation_id']}:{k}"
            k += 1
            if fn["operation_id"] in dead:
                continue
            out.count("records_in")
            location = f"{base}/{fn['operation_id']}"
            chain = [g for g in followers if g["operation_id"] not in dead and g["id"] != fn["id"]]
            follower = python.pick(f"{tseed}:g", chain) if chain and python.number(f"{tseed}:chain", 0, 1) else None
            plan = python.plan(fn, follower, tseed)
            run = python.execute(box, plan)
            if run.output != "pass" and follower is not None and len(run.outcomes) == 2:
                dead.add(follower["operation_id"])  # the first call ran: try it alone
                plan = python.plan(fn, None, tseed)
                run = python.execute(box, plan)
            reason = run.output if run.output != "pass" else run.state
            if reason != "pass":
                dead.add(fn["operation_id"])
                code, _, detail = reason.partition(": ")
                out.reject(
                    code,
                    detail[:300] or None,
                    location=location,
                    source=fn["source"],
                    part="trajectory",
                    metadata=dumps(
                        {"location": location, "calls": [{"name": op, "arguments": a} for op, a in run.calls]}
                    ),
                )
                continue
            ops = list(dict.fromkeys(s.operation for s in plan.steps))
            used.update(ops)
            offered = [tasks.function(by_op[op]) for op in ops]
            spare = sorted((r for r in functions if r["operation_id"] not in ops), key=lambda r: _order(tseed, r["id"]))
            offered += [tasks.function(r) for r in spare[: cfg.distractors]]
            offered.sort(key=lambda t: _order(f"{tseed}:tools", t["name"]))
            traj = tasks.conversation(plan, run, by_op, offered, tseed, title, python.report)
            bp = {
                "kind": "task",
                "root": fn["operation_id"],
                "expect": plan.expect,
                "calls": traj["reference_calls"],
                "library": "python",
                "sdk_calls": [by_op[op]["operation_id"] for op, _ in run.calls],
                "from_results": sum(isinstance(v, python.Ref) for s in plan.steps for v in s.arguments.values()),
                "checks": {"execution": "pass", "output": run.output, "state": run.state},
            }
            out.count("calls_executed", len(run.calls))
            made.append((fn, location, traj, bp))
    source = records[0]["source"]
    out.count("operations_executed", len(used))
    out.count(f"operations_executed.{source}", len(used))
    out.count(f"operations.{source}", len(records))
    return made


def execute_tasks(records: list[dict], client: str, cfg: SynthesizeSection, seed: int, out: Emitter) -> list:
    """Plan and run up to ``cfg.max_per_api`` tasks in the API's environment; failed tasks are rejected here.
    Returns (record of the root operation, location, trajectory, blueprint) per executed task."""
    from corpus.trajectories import aws, tasks

    by_op = {r["operation_id"]: r for r in records}
    service = aws.Service(client)
    roots = sorted((r for r in service.roots() if r in by_op), key=lambda r: _order(seed, f"{client}:{r}"))
    unchecked = [r for r in roots if not service.checkable(r)]
    out.count("operations_without_state_check", len(unchecked))  # no task: nothing could check its outcome
    roots = [r for r in roots if r not in unchecked]
    base = f"{records[0]['source']}:{records[0]['api']}/{records[0]['version']}"
    api_title = records[0].get("api_title") or client
    title = api_title if api_title.lower().endswith("api") else f"{api_title} API"
    used: set[str] = set()
    made: list = []
    learned: dict = {}
    live = list(roots)
    budget, k = cfg.max_per_api, 0
    others = sorted(records, key=lambda r: _order(seed, r["id"]))
    with aws.Environment(client) as env:
        while live and k < budget:
            root = live[k % len(live)]
            tseed = f"{seed}:{base}:{root}:{k}"
            k += 1
            out.count("records_in")
            location = f"{base}/{root}"
            if aws.number(f"{tseed}:irr", 0, 999) < cfg.irrelevance_share * 1000:
                spare = sorted(others, key=lambda r: _order(tseed, r["id"]))
                offered = [tasks.function(r) for r in spare[: max(2, cfg.distractors + 1)]]
                made.append(
                    (
                        by_op[root],
                        location,
                        tasks.irrelevant(offered, tseed, title),
                        {"kind": "irrelevance", "checks": {"format": "pass", "relevance": "pass"}},
                    )
                )
                continue
            plan, run, reason = aws.run_task(service, env, root, tseed, learned)
            if root in learned.get("unavailable", ()) or reason.startswith("no_state_check"):
                live.remove(root)  # the mock cannot make it, or nothing left can check it: no more tasks
            if reason != "pass":
                code, _, detail = reason.partition(": ")
                calls = [{"name": op, "arguments": args} for op, args in (run.calls if run else [])]
                out.reject(
                    code,
                    detail[:300] or None,
                    location=location,
                    source=by_op[root]["source"],
                    part="trajectory",
                    metadata=dumps({"location": location, "calls": calls}),
                )
                continue
            ops = list(dict.fromkeys(s.operation for s in plan.steps))
            if any(op not in by_op for op in ops):  # an operation the input does not document
                out.reject(
                    "undocumented_operation",
                    ", ".join(op for op in ops if op not in by_op),
                    location=location,
                    source=by_op[root]["source"],
                    part="trajectory",
                )
                continue
            used.update(ops)
            offered = [tasks.function(by_op[op]) for op in ops]
            spare = sorted((r for r in others if r["operation_id"] not in ops), key=lambda r: _order(tseed, r["id"]))
            offered += [tasks.function(r) for r in spare[: cfg.distractors]]
            offered.sort(key=lambda t: _order(f"{tseed}:tools", t["name"]))
            traj = tasks.conversation(plan, run, by_op, offered, tseed, title)
            bp = {
                "kind": "recovery" if plan.recovery else "task",
                "root": root,
                "expect": plan.expect,
                "probe": plan.probe.operation,
                "calls": traj["reference_calls"],
                "library": "boto3",
                "sdk_calls": [by_op[op]["sdk_name"] for op, _ in run.calls],
                "from_results": sum(isinstance(v, aws.Ref) for s in plan.steps for v in s.arguments.values()),
                "checks": {"execution": "pass", "output": run.output, "state": run.state},
            }
            out.count("calls_executed", len(run.calls))
            for (op, _), got in zip(run.calls, run.outcomes):  # `{}` where the operation documents an answer
                shape = service.ops[op].output_shape
                out.count("tool_results_empty_unexpected", got.ok and not got.result and bool(shape and shape.members))
            made.append((by_op[root], location, traj, bp))
    source = records[0]["source"]
    out.count("operations_executed", len(used))
    out.count(f"operations_executed.{source}", len(used))
    out.count(f"operations.{source}", len(records))
    return made


SIMULATE_PROMPT = """You write training conversations for an assistant that calls APIs.
Given a task (the user's first request, the calls that fulfil it, their real results, and the assistant's final
reply), rewrite
1. the user's first request, in natural words, stating every value it states exactly as given, and
2. the assistant's final reply, summarising what the results say.
Reply with JSON only: {"user": "...", "assistant": "..."}"""


SIMULATE_SCHEMA = {
    "type": "object",
    "properties": {"user": {"type": "string"}, "assistant": {"type": "string"}},
    "required": ["user", "assistant"],
    "additionalProperties": False,
}


def simulate(made: list[tuple[dict, dict]], cfg: SynthesizeSection, llm_args, out: Emitter) -> list[str | None]:
    """Let an LLM play the user (and word the assistant's last reply) for each blueprint, in place; returns the
    model name per trajectory, or None where the template stays (no reply, unreadable reply, budget spent)."""
    from corpus.extract import llm

    client = llm.Client(
        cfg.llm,
        llm_args[0],
        llm.Budget.share(cfg.llm, llm_args[1]),
        llm_args[2],
        cfg.max_llm_failure_rate,
        llm_args[3] if len(llm_args) > 3 else None,
    )
    requests = [
        [
            {"role": "system", "content": SIMULATE_PROMPT},
            {
                "role": "user",
                "content": dumps(
                    {
                        "request": traj["messages"][0]["content"],
                        "calls": bp.get("calls") or [],
                        "results": [m["content"] for m in traj["messages"] if m["role"] == "tool"],
                        "reply": traj["messages"][-1]["content"],
                    }
                ),
            },
        ]
        for traj, bp in made
    ]
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

        llm_args = stage_args(
            cfg.llm,
            ctx.config.run.output,
            int(ctx.spark.conf.get("spark.sql.shuffle.partitions")),
            f"{ctx.tmp}:simulate",
        )
        extra["llm"] = {"base_url": cfg.llm.base_url, "model": cfg.llm.model}
    env = records.groupBy("provider", "api", "version").applyInArrow(
        lambda table: synthesize_group(table, cfg, seed, judge_args, llm_args), from_arrow_schema(envelope_schema())
    )
    # the groups' envelope split and written by the tasks that made it (no persisted copy, no job per dataset)
    outcome = write_envelope(
        ctx, env, lambda batches: batches, extra=extra, sides={SIDE: ("trajectories", "trajectory")}
    )
    uses = {**({"judge": cfg.judge} if judge_args else {}), **({"simulate": cfg.llm} if llm_args else {})}
    if uses:
        from corpus.extract.llm import check_failures

        outcome.extra["llm_calls"] = check_failures(STAGE, uses, outcome.counters, cfg.max_llm_failure_rate)
    return outcome
