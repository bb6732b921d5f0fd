"""The ``ingest-trajectories`` stage: function-calling datasets → verified ``trajectory`` documents.

Inputs (``inputs.trajectories``) are JSONL files (``.jsonl``, ``.json`` holding JSON lines, ``.json`` holding one
JSON array, optionally ``.gz``) in any of the formats of :mod:`corpus.trajectories.formats` (detected per record,
or ``ingest-trajectories.format``). Each record is imported, verified (:mod:`corpus.trajectories.verify`) and, when
it has reference calls (BFCL), scored with ToolRL's reward. Kept trajectories become ``trajectory`` documents
(text: :func:`corpus.trajectories.verify.render`) and typed rows in ``trajectories/`` (schema ``trajectory``).

Rejects, each with the file and line in ``location``: ``malformed_json``, ``invalid_utf8``, ``too_deep`` (JSON nested
past :data:`corpus.io.jsonl.MAX_DEPTH`, also inside argument strings), ``not_an_object``, ``unknown_format``,
``no_messages``, ``bad_message``, ``malformed_tools``, ``malformed_call``, ``no_tool_calls``, the schema check's
reasons (``unknown_function``, ``missing_required``, ``unknown_parameter``, ``wrong_type``, ``not_in_enum``,
``out_of_range``), ``ungrounded_argument`` (when ``grounding: reject``), ``judge_rejected`` (when the LLM judge,
``ingest-trajectories.judge``, is on and its majority says the calls do not fulfil the request), ``too_large`` (a
record over ``max_record_bytes``), ``bad_record`` (a shape no check foresaw), ``unreadable_file`` (damaged
compression: the records before the damage are read).
"""

from __future__ import annotations

import gzip
import json
import zlib
from typing import Iterable, Iterator

import pyarrow as pa

from corpus.config import IngestTrajectoriesSection
from corpus.ids import content_id, dumps
from corpus.io import jsonl
from corpus.signals import as_list
from corpus.spark.envelope import Emitter
from corpus.trajectories import formats
from corpus.trajectories.score import score_calls
from corpus.trajectories.verify import render, verify

STAGE = "ingest-trajectories"
SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".json.gz", ".ndjson")
SIDE = "trajectory"


def records(path: str, cfg: IngestTrajectoriesSection) -> Iterator[tuple[int, object]]:
    """(line or item number, record) of one file: JSON lines, or one JSON array. A record is the parsed value, or
    the exception in its place: ``ValueError`` (malformed JSON), :class:`jsonl.TooDeep`, :class:`jsonl.OverLimit`.
    Bytes are read after decompression in bounded blocks, one record at a time: a record over
    ``max_record_bytes`` is read through and refused (in an array, whose later items cannot then be found, it ends
    the file), so memory does not grow with the file or with a bomb's ratio."""
    from corpus.io import files

    max_record = int(cfg.max_record_bytes)
    with files.open_input(path) as raw:
        stream = jsonl.Gunzip(raw) if path.lower().endswith(".gz") else raw
        pending = [stream.read(1 << 16)]

        def read(n: int) -> bytes:
            return pending.pop() if pending else stream.read(n)

        if pending[0].lstrip()[:1] == b"[":
            yield from jsonl.array_items(read, max_record)
            return
        for n, (_, line, length) in enumerate(jsonl.lines(read, max_record), 1):
            if line is None:
                yield n, jsonl.OverLimit(f"a line of {length} bytes > max_record_bytes {max_record}")
                continue
            if not line.strip():
                continue
            try:
                yield n, jsonl.loads(line)
            except (ValueError, jsonl.TooDeep) as err:
                yield n, err


def emit(out: Emitter, kept: list[tuple[dict, str]], judge=None) -> None:
    """Write kept trajectories (document fields, side payload), after the judge when one is configured."""
    verdicts = judge.verdicts([doc["text"] for doc, _ in kept], out) if judge and kept else [None] * len(kept)
    for (doc, side), verdict in zip(kept, verdicts):
        if verdict:
            out.reject(
                verdict[0],
                verdict[1],
                location=json.loads(doc["metadata"])["location"],
                id=doc["id"],
                part=doc["part"],
                source=doc["source"],
                text=doc["text"],
                metadata=doc["metadata"],
            )
            continue
        out.doc(**doc)
        out.side(SIDE, side)
    kept.clear()


def process_record(
    rec, location: str, source: str, part: str, cfg: IngestTrajectoriesSection, out: Emitter, kept: list | None = None
):
    """Import, verify and score one record. Kept trajectories are appended to ``kept`` (written by :func:`emit`,
    after the judge) or, without it, written at once."""
    out.count("records_in")
    base = dict(location=location, source=source, part=part, text=None, metadata=None)
    if isinstance(rec, Exception):
        reason = {jsonl.OverLimit: "too_large", jsonl.TooDeep: "too_deep", UnicodeDecodeError: "invalid_utf8"}.get(
            type(rec), "malformed_json"
        )
        out.reject(reason, str(rec)[:300], **base)
        return
    try:
        fmt, traj = formats.import_record(rec, cfg.format)
        checks = verify(traj)
        text = render(traj)
    except formats.FormatError as err:
        out.reject(err.reason, err.detail[:300] or None, **base, id=None)
        return
    except (jsonl.TooDeep, RecursionError) as err:
        out.reject("too_deep", str(err)[:300] or "nested too deep", **base)
        return
    except (KeyError, TypeError, ValueError, AttributeError) as err:  # a shape the importers did not foresee
        out.reject("bad_record", f"{type(err).__name__}: {err}"[:300], **base)
        return
    out.count(f"format:{fmt}")
    tid = content_id(dumps({"tools": traj["tools"], "messages": traj["messages"]}))
    source_id = str(rec.get("id")) if isinstance(rec, dict) and rec.get("id") is not None else None
    failed = None
    if checks["format"] != "pass" and cfg.require_calls:
        failed = checks["format"]
    elif checks["schema"] not in ("pass", "skipped"):
        failed = checks["schema"]
    elif checks["grounding"] not in ("pass", "skipped") and cfg.grounding == "reject":
        failed = checks["grounding"]
    for name, result in checks.items():
        out.count(f"check.{name}.{result.split(':')[0]}")
    provenance = {"file": location.rsplit(":", 1)[0], "line": int(location.rsplit(":", 1)[1]), "format": fmt}
    metadata = dumps({**provenance, "location": location, "checks": checks})
    if failed:
        reason, _, detail = failed.partition(": ")
        out.reject(reason, detail or None, **{**base, "text": text, "metadata": metadata}, id=tid)
        return
    reward = None
    if traj["reference_calls"]:
        calls = [
            {"name": c["name"], "arguments": json.loads(c["arguments"])}
            for m in traj["messages"]
            for c in (m.get("tool_calls") or [])
        ]
        reward = score_calls(traj["reference_calls"], calls)["reward"]
    doc = dict(
        id=tid,
        part=part,
        source=source,
        source_id=source_id,
        text=text,
        metadata=metadata,
        signals=as_list({"tool_reward": reward}) if reward is not None else None,
    )
    side = dumps(
        {
            "id": tid,
            "source": source,
            "source_format": fmt,
            "source_id": source_id,
            "tools": dumps(traj["tools"]),
            "messages": traj["messages"],
            "reference_calls": dumps(traj["reference_calls"]) if traj["reference_calls"] else None,
            "checks": dict(sorted(checks.items())),
            "reward": reward,
            "provenance": dumps(provenance),
        }
    )
    if kept is None:
        out.doc(**doc)
        out.side(SIDE, side)
    else:
        kept.append((doc, side))


def ingest_batch(
    batches: Iterable[pa.RecordBatch], cfg: IngestTrajectoriesSection, judge_args=None
) -> Iterator[pa.RecordBatch]:
    """mapInArrow function: TASK_SCHEMA batches (files) → envelope batches. ``judge_args``: (cache, budget share,
    API key) when the LLM judge is on."""
    from corpus.trajectories.judge import Judge

    judge = Judge(cfg.judge, *judge_args, cfg.max_llm_failure_rate) if judge_args else None
    kept: list = []

    for batch in batches:
        for task in batch.to_pylist():
            for piece in task["pieces"]:
                out = Emitter(STAGE)
                path, source, part = piece["path"], piece["source"], piece["part"]
                out.count("files")
                if not path.lower().endswith(SUFFIXES):  # listed so that nothing in a folder is skipped silently
                    out.count("records_in")
                    out.reject(
                        "unsupported_file", f"not one of {', '.join(SUFFIXES)}", location=path, source=source, part=part
                    )
                    yield out.batch()
                    continue
                try:
                    for n, rec in records(path, cfg):
                        process_record(rec, f"{path}:{n}", source, part, cfg, out, kept)
                        if len(kept) >= 64:
                            emit(out, kept, judge)
                        if len(out) >= 512:
                            yield out.batch()
                except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as err:
                    # the records before the damage are kept; the rest of the file is one reject
                    emit(out, kept, judge)
                    out.count("records_in")
                    out.reject(
                        "unreadable_file",
                        f"{type(err).__name__}: {err} (records before it were read)"[:300],
                        location=path,
                        source=source,
                        part=part,
                    )
                emit(out, kept, judge)
                yield out.batch()


def build(ctx):
    from corpus.stage import write_envelope
    from corpus.web.ingest import file_tasks

    cfg: IngestTrajectoriesSection = ctx.config.ingest_trajectories
    task_df, extra = file_tasks(ctx, SUFFIXES, tasks_per_core=4, report_others=True)
    judge_args = None
    if cfg.judge.enabled:
        from corpus.extract.llm import stage_args

        judge_args = stage_args(cfg.judge, ctx.config.run.output, extra["tasks"], f"{ctx.tmp}:judge")
        extra["judge"] = {"base_url": cfg.judge.base_url, "model": cfg.judge.model, "votes": cfg.judge.votes}
    outcome = write_envelope(
        ctx,
        task_df,
        lambda it: ingest_batch(it, cfg, judge_args),
        extra=extra,
        sides={SIDE: ("trajectories", "trajectory")},
    )
    if judge_args:
        from corpus.extract.llm import check_failures

        outcome.extra["judge"]["calls"] = check_failures(
            STAGE, {"judge": cfg.judge}, outcome.counters, cfg.max_llm_failure_rate
        )
    return outcome
