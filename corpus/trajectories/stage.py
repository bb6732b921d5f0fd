"""The ``ingest-trajectories`` stage: function-calling datasets → verified ``trajectory`` documents.

Inputs (``inputs.trajectories``) are JSONL files (``.jsonl``, ``.json`` holding JSON lines, ``.json`` holding one
JSON array, optionally ``.gz``) in any of the formats of :mod:`corpus.trajectories.formats` (detected per record,
or ``ingest-trajectories.format``). Each record is imported, verified (:mod:`corpus.trajectories.verify`) and, when
it has reference calls (BFCL), scored with ToolRL's reward. Kept trajectories become ``trajectory`` documents
(text: :func:`corpus.trajectories.verify.render`) and typed rows in ``trajectories/`` (schema ``trajectory``).

Rejects, each with the file and line in ``location``: ``malformed_json``, ``not_an_object``, ``unknown_format``,
``no_messages``, ``bad_message``, ``malformed_tools``, ``malformed_call``, ``no_tool_calls``, the schema check's
reasons (``unknown_function``, ``missing_required``, ``unknown_parameter``, ``wrong_type``, ``not_in_enum``,
``out_of_range``), ``ungrounded_argument`` (when ``grounding: reject``), ``judge_rejected`` (when the LLM judge,
``ingest-trajectories.judge``, is on and its majority says the calls do not fulfil the request), ``too_large``,
``unreadable_file``.
"""

from __future__ import annotations

import gzip
import json
from typing import Iterable, Iterator

import pyarrow as pa

from corpus.config import IngestTrajectoriesSection
from corpus.ids import content_id, dumps
from corpus.signals import as_list
from corpus.spark.envelope import Emitter
from corpus.trajectories import formats
from corpus.trajectories.score import score_calls
from corpus.trajectories.verify import render, verify

STAGE = "ingest-trajectories"
SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".json.gz", ".ndjson")
SIDE = "trajectory"


def _records(path: str, data: bytes):
    """(line, record or the exception) of one file: JSON lines, or one JSON array."""
    if path.lower().endswith(".gz"):
        data = gzip.decompress(data)
    text = data.decode("utf-8")
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            items = json.loads(stripped)
        except ValueError:
            items = None
        if isinstance(items, list):
            yield from ((i + 1, item) for i, item in enumerate(items))
            return
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                yield n, json.loads(line)
            except ValueError as err:
                yield n, err


def emit(out: Emitter, kept: list[tuple[dict, str]], judge=None) -> None:
    """Write kept trajectories (document fields, side payload), after the judge when one is configured."""
    verdicts = judge.verdicts([doc["text"] for doc, _ in kept], out) if judge and kept else [None] * len(kept)
    for (doc, side), verdict in zip(kept, verdicts):
        if verdict:
            out.reject(verdict[0], verdict[1], location=json.loads(doc["metadata"])["location"], id=doc["id"],
                       part=doc["part"], source=doc["source"], text=doc["text"], metadata=doc["metadata"])
            continue
        out.doc(**doc)
        out.side(SIDE, side)
    kept.clear()


def process_record(rec, location: str, source: str, part: str, cfg: IngestTrajectoriesSection, out: Emitter,
                   kept: list | None = None):
    """Import, verify and score one record. Kept trajectories are appended to ``kept`` (written by :func:`emit`,
    after the judge) or, without it, written at once."""
    out.count("records_in")
    base = dict(location=location, source=source, part=part, text=None, metadata=None)
    if isinstance(rec, Exception):
        out.reject("malformed_json", str(rec)[:300], **base)
        return
    try:
        fmt, traj = formats.import_record(rec, cfg.format)
    except formats.FormatError as err:
        out.reject(err.reason, err.detail[:300] or None, **base, id=None)
        return
    except (KeyError, TypeError, ValueError) as err:
        out.reject("bad_record", f"{type(err).__name__}: {err}"[:300], **base)
        return
    out.count(f"format:{fmt}")
    checks = verify(traj)
    text = render(traj)
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
        calls = [{"name": c["name"], "arguments": json.loads(c["arguments"])}
                 for m in traj["messages"] for c in (m.get("tool_calls") or [])]
        reward = score_calls(traj["reference_calls"], calls)["reward"]
    doc = dict(id=tid, part=part, source=source, source_id=source_id, text=text, metadata=metadata,
               signals=as_list({"tool_reward": reward}) if reward is not None else None)
    side = dumps({"id": tid, "source": source, "source_format": fmt, "source_id": source_id,
                  "tools": dumps(traj["tools"]), "messages": traj["messages"],
                  "reference_calls": dumps(traj["reference_calls"]) if traj["reference_calls"] else None,
                  "checks": dict(sorted(checks.items())), "reward": reward, "provenance": dumps(provenance)})
    if kept is None:
        out.doc(**doc)
        out.side(SIDE, side)
    else:
        kept.append((doc, side))


def ingest_batch(batches: Iterable[pa.RecordBatch], cfg: IngestTrajectoriesSection, judge_args=None
                 ) -> Iterator[pa.RecordBatch]:
    """mapInArrow function: TASK_SCHEMA batches (files) → envelope batches. ``judge_args``: (cache, budget share,
    API key) when the LLM judge is on."""
    from corpus.io import files
    from corpus.trajectories.judge import Judge

    judge = Judge(cfg.judge, *judge_args) if judge_args else None
    kept: list = []

    for batch in batches:
        for task in batch.to_pylist():
            for piece in task["pieces"]:
                out = Emitter(STAGE)
                path, source, part = piece["path"], piece["source"], piece["part"]
                out.count("files")
                if int(piece["size"]) > int(cfg.max_file_bytes):
                    out.count("records_in")
                    out.reject("too_large", f"{piece['size']} bytes > {int(cfg.max_file_bytes)}", location=path,
                               source=source, part=part)
                    yield out.batch()
                    continue
                try:
                    with files.open_input(path) as fh:
                        data = fh.read()
                    records = list(_records(path, data))
                except (OSError, UnicodeDecodeError, EOFError, gzip.BadGzipFile) as err:
                    out.count("records_in")
                    out.reject("unreadable_file", f"{type(err).__name__}: {err}"[:300], location=path,
                               source=source, part=part)
                    yield out.batch()
                    continue
                for n, rec in records:
                    process_record(rec, f"{path}:{n}", source, part, cfg, out, kept)
                    if len(kept) >= 64:
                        emit(out, kept, judge)
                    if len(out) >= 512:
                        yield out.batch()
                emit(out, kept, judge)
                yield out.batch()


def build(ctx):
    from corpus.stage import write_envelope
    from corpus.web.ingest import file_tasks

    cfg: IngestTrajectoriesSection = ctx.config.ingest_trajectories
    task_df, extra = file_tasks(ctx, SUFFIXES, tasks_per_core=4)
    judge_args = None
    if cfg.judge.enabled:
        from corpus.extract.llm import stage_args

        judge_args = stage_args(cfg.judge, ctx.config.run.output, extra["tasks"])
        extra["judge"] = {"base_url": cfg.judge.base_url, "model": cfg.judge.model, "votes": cfg.judge.votes}
    return write_envelope(ctx, task_df, lambda it: ingest_batch(it, cfg, judge_args), extra=extra,
                          sides={SIDE: ("trajectories", "trajectory")})
