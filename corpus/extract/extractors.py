"""The rule-based extractors, one object each: its name (the value in ``extract.extractors``, the ``extractor``
of its pairs and the ``pairs.<name>`` counter), the documents it reads and the function that finds its pairs.
The stage runs, for each document, every enabled extractor that reads that kind of document, in the order of
:data:`EXTRACTORS`; so a new extractor is one function, one line there, its name in the config's list, and a
test. The LLM extractor is not here: it batches requests across documents (``corpus.extract.llm``).

Kinds of documents: ``trajectory`` (the ``trajectory`` part), ``tool`` (a document joined to its ingest-apis
record) and ``text`` (everything else in ``extract.parts``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Callable

from corpus.extract import doctests, rules

# (instruction, response, metadata) of one candidate pair
Found = tuple[str, str, dict]


@dataclass(frozen=True)
class Doc:
    """What an extractor sees of one document: the row, its ingest-apis record (or None) and the metadata every
    pair of it starts from."""

    row: dict
    tool: dict | None
    meta: dict

    @property
    def kind(self) -> str:
        return "trajectory" if self.row["part"] == "trajectory" else "tool" if self.tool is not None else "text"


@dataclass(frozen=True)
class Extractor:
    name: str
    reads: str  # the kind of document: "trajectory", "tool" or "text"
    find: Callable[..., list[Found]]  # (doc: Doc, cfg, out: Emitter, box: DoctestBox | None) -> pairs


def executed_usage_pair(doc: dict) -> tuple[str, str] | None:
    """The usage pair of an executed trajectory (its metadata names the calls' SDK functions), else None."""
    from corpus.trajectories import tasks
    from corpus.trajectories.verify import parse_rendered

    try:
        meta = json.loads(doc.get("metadata") or "{}")
    except ValueError:
        return None
    bp = meta.get("blueprint") or {}
    if not meta.get("executed") or not bp.get("sdk_calls") or bp.get("library") not in ("boto3", "python"):
        return None
    parsed = parse_rendered(doc["text"])
    calls = bp.get("calls") or []
    if len(parsed["results"]) != len(calls) or len(calls) != len(bp["sdk_calls"]):
        return None  # the text was changed on the way (e.g. cut by decontamination): no pair
    return tasks.usage_pair(
        bp["sdk_calls"],
        [c["arguments"] for c in calls],
        parsed["results"],
        parsed["user_turns"],
        parsed["final"],
        bp["library"],
    )


def _executed_usage(doc: Doc, cfg, out, box) -> list[Found]:
    pair = executed_usage_pair(doc.row)
    return [(*pair, doc.meta)] if pair else []


def _operation(tool: dict, spec_format: str | None = None) -> dict:
    return {
        "api": tool.get("api"),
        "operation_id": tool.get("operation_id"),
        "spec_format": spec_format or tool.get("spec_format"),
    }


def _doctest(doc: Doc, cfg, out, box) -> list[Found]:
    """Doctest runs of a Python function's docs, executed in the sandbox (``box``): verified when the output
    matches. A library's functions past ``doctest_max_per_api`` are skipped (one package would drown the rest)."""
    tool = doc.tool
    rank = tool.get("doctest_rank")
    if rank is not None and rank > cfg.doctest_max_per_api:
        out.count("doctest_functions_over_api_cap")
        return []
    if tool.get("spec_format") != "python":
        return []
    found = []
    for p in doctests.doctest_pairs(tool, box, cfg.doctest_max_blocks):
        outcome = (
            "failed"
            if p["status"] == "failed"
            else "verified"
            if p["verified"]
            else "output_differs"
            if p["executed"]
            else "not_run"
        )
        out.count(f"doctest_pairs:{outcome}")
        meta = {
            **doc.meta,
            "executed": p["executed"],
            "verified": p["verified"],
            "operation": _operation(tool, "python"),
        }
        if p["status"] == "failed":
            meta["failed"] = p["detail"]
        found.append((p["instruction"], p["response"], meta))
    return found


def _api_operation(doc: Doc, cfg, out, box) -> list[Found]:
    pair = rules.api_operation_pair(doc.tool, cfg.api_operation_without_example)
    if not pair:
        return []
    made = rules.documented_example(doc.tool) is None  # the template restating the documentation
    return [(*pair, {**doc.meta, "operation": _operation(doc.tool), "template_made": made})]


def _qa(doc: Doc, cfg, out, box) -> list[Found]:
    return [(i, r, doc.meta) for i, r in rules.qa_pairs(doc.row["text"], cfg.max_pairs_per_document)]


def _code_example(doc: Doc, cfg, out, box) -> list[Found]:
    text, title = doc.row["text"], doc.row.get("title")
    return [(i, r, doc.meta) for i, r in rules.code_example_pairs(text, title, cfg.max_pairs_per_document)]


EXTRACTORS: tuple[Extractor, ...] = (
    Extractor("executed_usage", "trajectory", _executed_usage),
    Extractor("doctest", "tool", _doctest),
    Extractor("api_operation", "tool", _api_operation),
    Extractor("qa", "text", _qa),
    Extractor("code_example", "text", _code_example),
)
