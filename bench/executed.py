"""Executed trajectories (issue #24): what the default run's trajectories are, how fast `forge synthesize`
executes them, and whether the state check catches a corrupted call.

    python bench/executed.py [OUT]        (also: python bench/run.py --only executed; OUT defaults to out/)

1. **Shards.** Every trajectory in OUT/write's outputs (each id once): share carrying real execution results,
   with ≥ 2 calls and an argument taken from an earlier result, with ≥ 2 user turns, with an `example-`
   placeholder, tool results that are `{}`, template-made share, share of characters that are tool schemas.
2. **Speed.** `forge synthesize` on local[2] over OUT/ingest-apis (botocore, Google discovery, crawled docs), at
   `max_per_api` 20, 40 (the default) and 80: trajectories/s per core, operations executed per source. Baseline
   in the same command: the default's tasks planned and run in one plain Python process (no Spark), so the ratio
   says what the stage costs over its kernel.
3. **Corruption.** For executed multi-call tasks of every executable AWS service: one call's argument that names
   the resource is changed; the share of corrupted tasks the output or state check rejects (should be 100%).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pyarrow.dataset as ds

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = HERE / "work" / "executed"
FORGE = [sys.executable, "-m", "corpus"]


def shards(out: Path) -> dict:
    result = {}
    for output in sorted((out / "write").iterdir()) if (out / "write").exists() else []:
        if not list(output.glob("*.parquet")):
            continue
        table = ds.dataset(sorted(str(p) for p in output.glob("*.parquet")), format="parquet").to_table(
            filter=ds.field("part") == "trajectory", columns=["id", "source", "text", "metadata"]
        )
        seen: set = set()
        n = Counter()
        chars = schema_chars = 0
        firsts: set = set()
        grams: list = []
        for row in table.to_pylist():
            if row["id"] in seen:
                continue
            seen.add(row["id"])
            meta = json.loads(row["metadata"])
            bp = meta.get("blueprint") or {}
            text = row["text"]
            calls = text.count("<tool_call>")
            n["trajectories"] += 1
            n["executed"] += bool(meta.get("executed"))
            n["template_made"] += bool(meta.get("template_made"))
            n["multi_call_from_results"] += calls >= 2 and bool(bp.get("from_results"))
            n["multi_turn"] += text.count("### User") >= 2
            n["placeholder"] += "example-" in text
            n["recovery"] += bp.get("kind") == "recovery"
            n["irrelevance"] += bp.get("kind") == "irrelevance"
            n[f"source.{row['source']}"] += 1
            results = text.split("### Tool result")[1:]
            n["tool_results"] += len(results)
            n["tool_results_empty"] += sum(r.split("\n", 2)[1].strip() == "{}" for r in results if "\n" in r)
            chars += len(text)
            user = text.split("### User\n", 1)[1].split("\n### ", 1)[0] if "### User\n" in text else ""
            firsts.add(user)
            tokens = user.lower().split()
            grams += [tuple(tokens[i : i + 3]) for i in range(len(tokens) - 2)]
            schema_chars += len(text.split("\n### ", 1)[0]) if text.startswith("### Tools") else 0
        t = max(n["trajectories"], 1)
        result[output.name] = {
            "trajectories": n["trajectories"],
            **{
                k: round(n[k] / t, 4)
                for k in (
                    "executed",
                    "template_made",
                    "multi_call_from_results",
                    "multi_turn",
                    "placeholder",
                    "recovery",
                    "irrelevance",
                )
            },
            "tool_results_empty": round(n["tool_results_empty"] / max(n["tool_results"], 1), 4),
            "schema_char_share": round(schema_chars / max(chars, 1), 4),
            "distinct_first_user_turns": round(len(firsts) / t, 4),
            "user_turn_distinct_trigram_ratio": round(len(set(grams)) / max(len(grams), 1), 4),
            "by_source": {k[7:]: v for k, v in n.items() if k.startswith("source.")},
        }
    return result


def speed(out: Path) -> dict:
    tools = out / "ingest-apis"
    result = {}
    for cap in (20, 40, 80):
        cfg = WORK / f"synth-{cap}.yaml"
        cfg.parent.mkdir(parents=True, exist_ok=True)
        cfg.write_text(f"synthesize:\n  max_per_api: {cap}\n")
        syn = WORK / f"synth-{cap}"
        t0 = time.perf_counter()
        subprocess.run(
            FORGE
            + [
                "-q",
                "synthesize",
                "--input",
                str(tools),
                "--output",
                str(syn),
                "--config",
                str(cfg),
                "--master",
                "local[2]",
                "--force",
            ],
            check=True,
            cwd=ROOT,
            capture_output=True,
        )
        wall = time.perf_counter() - t0
        st = json.loads((syn / "_stats.json").read_text())
        c = st["counters"]
        per_source = {}
        for k, v in c.items():
            if k.startswith("operations."):
                src = k.split(".", 1)[1]
                per_source[src] = {
                    "operations": v,
                    "executed": c.get(f"operations_executed.{src}", 0),
                    "share": round(c.get(f"operations_executed.{src}", 0) / max(v, 1), 4),
                }
        result[f"max_per_api={cap}"] = {
            "tasks": st["rows_in"],
            "trajectories": st["rows_out"],
            "rejects": st["rejects_by_reason"],
            "stage_seconds": st["seconds"],
            "command_seconds": round(wall, 1),
            "trajectories_per_s_per_core": round(st["rows_out"] / st["seconds"] / 2, 2),
            "calls_executed": c.get("calls_executed", 0),
            "operations_by_source": per_source,
        }
    # the kernel alone: the same groups at the default cap in one process
    import pyarrow.compute as pc

    from corpus.config import SynthesizeSection
    from corpus.trajectories.synthesize import FIELDS, synthesize_group

    table = ds.dataset(str(tools / "tools"), format="parquet").to_table(
        filter=ds.field("spec_format") == "botocore", columns=FIELDS
    )
    cfg = SynthesizeSection(max_per_api=40)
    t0 = time.perf_counter()
    made = 0
    for key in sorted(set(zip(table.column("api").to_pylist(), table.column("version").to_pylist()))):
        group = table.filter(pc.and_(pc.equal(table["api"], key[0]), pc.equal(table["version"], key[1])))
        made += sum(1 for k in synthesize_group(group, cfg, 42).column("_kind").to_pylist() if k == "doc")
    secs = time.perf_counter() - t0
    result["kernel_one_process"] = {
        "trajectories": made,
        "seconds": round(secs, 1),
        "trajectories_per_s": round(made / secs, 2),
    }
    stage = result["max_per_api=40"]
    result["stage_over_kernel_per_core"] = round(stage["trajectories_per_s_per_core"] / (made / secs), 3)
    return result


def corruption(services: int = 400, per_service: int = 3) -> dict:
    from corpus.trajectories import aws, tasks
    from corpus.trajectories.verify import verify

    n = Counter()
    for client in sorted(aws.session().get_available_services())[:services]:
        if not aws.supported(client):
            continue
        service = aws.Service(client)
        roots = [r for r in service.roots() if service.checkable(r)]
        if not roots:
            continue
        learned: dict = {}
        with aws.Environment(client) as env:
            for k in range(per_service):
                root = roots[k % len(roots)]
                plan, run, reason = aws.run_task(service, env, root, f"c:{client}:{root}:{k}", learned)
                if reason != "pass" or len(run.calls) < 2:
                    continue
                start = 2 if plan.recovery else 1
                target = next(
                    (
                        (i, m)
                        for i, s in enumerate(plan.steps)
                        if i >= start
                        for m, v in s.arguments.items()
                        if isinstance(v, aws.Ref) or (isinstance(v, str) and v in plan.steps[start - 1].stated.values())
                    ),
                    None,
                )
                if target is None:
                    n["no_identity_argument"] += 1
                    continue
                i, member = target
                steps = [aws.Step(s.operation, dict(s.arguments), dict(s.stated)) for s in plan.steps]
                value = aws.resolve(steps[i].arguments[member], run.outcomes)
                steps[i].arguments[member] = (
                    [v + "x" for v in value]
                    if isinstance(value, list)
                    else (value + "x" if isinstance(value, str) else value)
                )
                bad = aws.execute(
                    env,
                    aws.Plan(plan.root, steps, plan.probe, plan.expect, plan.recovery),
                    f"c:{client}:{root}:{k}:bad",
                )
                n["corrupted"] += 1
                caught = bad.output != "pass" or bad.state != "pass"
                n["rejected_by_execution"] += caught
                if not caught:  # the stage also verifies the conversation (grounding: values come from earlier
                    # results or the user); a mock that accepts any ARN runs the call, the verification does not
                    offered = [{"name": op, "parameters": {}} for op in dict.fromkeys(s.operation for s in steps)]
                    traj = tasks.conversation(
                        aws.Plan(plan.root, steps, plan.probe, plan.expect, plan.recovery),
                        bad,
                        {},
                        offered,
                        f"c:{client}:{root}:{k}",
                        client,
                    )
                    checks = verify(traj)
                    caught = any(v not in ("pass", "skipped") for v in checks.values())
                n["rejected"] += caught
                if not caught:
                    n[f"missed.{client}.{steps[i].operation}"] += 1
    return {
        "corrupted": n["corrupted"],
        "rejected_by_execution_checks": n["rejected_by_execution"],
        "rejected": n["rejected"],
        "share_rejected": round(n["rejected"] / max(n["corrupted"], 1), 4),
        "missed": {k[7:]: v for k, v in n.items() if k.startswith("missed.")},
        "no_identity_argument": n["no_identity_argument"],
    }


def bench(out: Path = ROOT / "out") -> dict:
    sys.path.insert(0, str(ROOT))
    return {"shards": shards(out), "speed": speed(out), "corruption": corruption()}


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "out"
    print(json.dumps(bench(target), indent=2))
