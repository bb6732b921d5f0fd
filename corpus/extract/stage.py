"""The ``extract`` stage: instruction-response pairs from ``agent_web`` and docs pages (MAmmoTH2-style).

Per document (a ``mapInArrow`` batch function): the rule-based extractors (``corpus.extract.rules``), the typed
ingest-apis record for ``api_operation`` (joined by document id), optionally an LLM (``corpus.extract.llm``) that
extracts pairs and / or refines them. Every candidate pair is checked — non-empty, length bounds, the response not
a copy of the instruction, language — and rejected with the failed check as its reason. Identical pairs (same
content hash) from several documents are kept once (``duplicate_pair``, with ``duplicate_of``), by a Spark window.

Counting: ``rows_in`` is the number of candidate pairs; out + rejected = in. Documents scanned, pairs by
extractor and the LLM's requests, cache hits, tokens, cost and budget skips are counters.

Output: ``data/`` holds one ``instruction`` document per pair, its text rendered as::

    ### Instruction
    <instruction>

    ### Response
    <response>

and ``pairs/`` the same pairs typed (schema ``instruction``).
"""

from __future__ import annotations

import json
import posixpath
import re
from typing import Iterable, Iterator

import pyarrow as pa

from corpus.config import ExtractStageSection
from corpus.extract import doctests
from corpus.extract.extractors import EXTRACTORS, Doc, executed_usage_pair  # noqa: F401 (re-exported)
from corpus.ids import content_id, dumps
from corpus.spark import datasets
from corpus.spark.envelope import Emitter

STAGE = "extract"
_WORD = re.compile(r"\w+")


def render(instruction: str, response: str) -> str:
    return f"### Instruction\n{instruction.strip()}\n\n### Response\n{response.strip()}"


def check_pair(instruction: str, response: str, cfg: ExtractStageSection) -> tuple[str, str] | None:
    """The first failed check as (reason, detail), or None. Language is checked apart (batched)."""
    iw, rw = instruction.split(), response.split()
    if not iw:
        return "empty_instruction", None
    if not rw:
        return "empty_response", None
    if len(iw) < cfg.min_instruction_words:
        return "instruction_too_short", f"{len(iw)} words < {cfg.min_instruction_words}"
    if len(iw) > cfg.max_instruction_words:
        return "instruction_too_long", f"{len(iw)} words > {cfg.max_instruction_words}"
    if len(rw) < cfg.min_response_words:
        return "response_too_short", f"{len(rw)} words < {cfg.min_response_words}"
    if len(rw) > cfg.max_response_words:
        return "response_too_long", f"{len(rw)} words > {cfg.max_response_words}"
    r_words = set(_WORD.findall(response.lower()))
    i_words = set(_WORD.findall(instruction.lower()))
    if r_words and len(r_words & i_words) / len(r_words) >= cfg.max_copy_overlap:
        return "response_copies_instruction", f"{len(r_words & i_words) / len(r_words):.2f} of its words"
    return None


class _Llm:
    """The LLM side of one task: a client with this task's share of the budget."""

    def __init__(
        self,
        cfg: ExtractStageSection,
        cache: str | None,
        share: float,
        api_key: str | None = None,
        scope: str | None = None,
    ) -> None:
        from corpus.extract import llm

        lc = cfg.llm
        budget = llm.Budget.share(lc, share)
        self.mod = llm
        self.cfg = lc
        self.client = llm.Client(lc, cache, budget, api_key, cfg.max_llm_failure_rate, scope)

    def finish(self, out: Emitter) -> None:
        out.count("llm_cost_micro_usd", round(self.client.budget.cost * 1e6))
        for change in self.client.format_changes:
            out.count(f"llm_response_format:{change}")


SAMPLE_PAIRS = 50


def sample_pairs(spark, folder: str, n: int) -> dict[str, list[dict]]:
    """Up to ``n`` pairs per extractor (smallest content-hash ids: a seeded, stable choice), cut for display."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from corpus.io import files

    if not files.list_files(folder, (datasets.PARQUET_SUFFIX,)):
        return {}
    rows = (
        datasets.read(spark, folder)
        .select(
            "id", "extractor", F.substring("instruction", 1, 240).alias("i"), F.substring("response", 1, 300).alias("r")
        )
        .withColumn("_n", F.row_number().over(Window.partitionBy("extractor").orderBy("id")))
        .where(F.col("_n") <= n)
        .collect()
    )
    out: dict[str, list[dict]] = {}
    for r in sorted(rows, key=lambda r: (r["extractor"], r["_n"])):
        out.setdefault(r["extractor"], []).append({"instruction": r["i"], "response": r["r"]})
    return out


# The document columns extract_rows and the extractors read (the rest, e.g. signals, are decoded for nothing).
READ_COLUMNS = ("id", "part", "source", "url", "title", "text", "metadata")


def extract_rows(
    rows: list[dict],
    cfg: ExtractStageSection,
    out: Emitter,
    llm: _Llm | None = None,
    box: doctests.DoctestBox | None = None,
) -> None:
    """Candidate pairs of a batch of documents (rows may carry ``tool``: the ingest-apis record as JSON).
    ``box``: the sandboxed doctest runner (None: doctests are not run)."""
    from corpus.filter import langid

    parts = set(cfg.parts)
    candidates: list[tuple[dict, str, str, str, dict]] = []  # (doc, extractor, instruction, response, meta)
    llm_docs = []
    for doc in rows:
        if doc["part"] not in parts:  # the stage filters by part already; batch callers may not
            continue
        out.count("documents_scanned")
        d = Doc(
            doc, json.loads(doc["tool"]) if doc.get("tool") else None, {"part": doc["part"], "title": doc.get("title")}
        )
        for ex in EXTRACTORS:
            if ex.reads == d.kind and ex.name in cfg.extractors:
                candidates += [(doc, ex.name, i, r, m) for i, r, m in ex.find(d, cfg, out, box)]
        if d.kind == "text" and llm is not None and llm.cfg.extract:
            llm_docs.append(doc)
    if llm is not None and llm_docs:
        replies = llm.client.complete_many(
            [llm.mod.extract_messages(d["text"], llm.cfg) for d in llm_docs],
            llm.mod.EXTRACT_SCHEMA,
            llm.mod.parse_pairs,
        )
        llm.mod.account(replies, out, "llm")  # failures are counted there and checked by the stage
        for doc, reply in zip(llm_docs, replies):
            if reply.status == "budget":
                out.count("llm_skipped_budget")
                continue
            pairs = reply.value
            if pairs is None:
                continue
            out.count("llm_void" if not pairs else "llm_documents_with_pairs")
            meta = {"part": doc["part"], "title": doc.get("title"), "model": llm.cfg.model}
            candidates += [(doc, "llm", i, r, meta) for i, r in pairs[: cfg.max_pairs_per_document]]
    refined = [False] * len(candidates)
    if llm is not None and llm.cfg.refine and candidates:
        replies = llm.client.complete_many(
            [llm.mod.refine_messages(c[2], c[3]) for c in candidates], llm.mod.REFINE_SCHEMA, llm.mod.parse_refined
        )
        llm.mod.account(replies, out, "refine")  # a pair whose refinement failed is kept as extracted
        for k, reply in enumerate(replies):
            if reply.value:
                doc, ex, _, _, meta = candidates[k]
                candidates[k] = (doc, ex, reply.value[0], reply.value[1], {**meta, "refined_by": llm.cfg.model})
                refined[k] = True
            elif reply.status == "budget":
                out.count("refine_skipped_budget")
    if llm is not None:
        llm.finish(out)
    out.count("pairs_in", len(candidates))
    langs = (
        langid.predict([f"{c[2]}\n{c[3]}" for c in candidates], prose_only=True)
        if cfg.lang and candidates
        else [None] * len(candidates)
    )
    keep_langs = set(cfg.lang)
    for (doc, extractor, instruction, response, meta), lang, was_refined in zip(candidates, langs, refined):
        out.count(f"pairs.{extractor}")
        instruction, response = instruction.strip(), response.strip()
        text = render(instruction, response)
        pid = content_id(text)
        metadata = dumps({**meta, "extractor": extractor, "source_doc_id": doc["id"], "refined": was_refined})
        common = dict(
            id=pid, part="instruction", source=doc["source"], url=doc.get("url"), text=text, metadata=metadata
        )
        failed = (
            ("doctest_failed", meta["failed"][:500]) if meta.get("failed") else check_pair(instruction, response, cfg)
        )
        if failed is None and lang is not None and (lang[0] not in keep_langs or lang[1] < cfg.min_lang_score):
            failed = ("lang_not_kept", f"{lang[0]} ({lang[1]:.2f})")
        if failed:
            out.reject(failed[0], failed[1], location=doc["id"], **common)
            continue
        out.doc(
            **common,
            source_id=doc["id"],
            title=doc.get("title"),
            lang=lang[0] if lang else None,
            lang_score=round(lang[1], 4) if lang else None,
        )
        out.side(
            "pair",
            dumps(
                {
                    "id": pid,
                    "instruction": instruction,
                    "response": response,
                    "source_doc_id": doc["id"],
                    "extractor": extractor,
                    "refined": was_refined,
                    "source": doc["source"],
                    "url": doc.get("url"),
                    "metadata": metadata,
                }
            ),
        )


def extract_batch(
    batches: Iterable[pa.RecordBatch],
    cfg: ExtractStageSection,
    cache: str | None,
    share: float,
    api_key: str | None = None,
    scope: str | None = None,
) -> Iterator[pa.RecordBatch]:
    """mapInArrow function: documents (+ ``tool``) → envelope batches."""
    llm = _Llm(cfg, cache, share, api_key, scope) if cfg.llm.enabled else None
    box = doctests.shared_box() if "doctest" in cfg.extractors and cfg.doctest_run else None
    for batch in batches:
        out = Emitter(STAGE)
        extract_rows(batch.to_pylist(), cfg, out, llm, box)
        yield out.batch()


def tools_path(cfg: ExtractStageSection, inputs: list[str]) -> str | None:
    """The ingest-apis ``tools/`` dataset for ``api_operation``: configured, or beside the first input."""
    from corpus.io import files

    if cfg.tools:
        path = cfg.tools if cfg.tools.rstrip("/").endswith("tools") else posixpath.join(cfg.tools, "tools")
        if not files.exists(path):
            raise files.InputError(f"extract.tools: {path} does not exist")
        return path
    if not inputs:
        return None
    sibling = posixpath.join(posixpath.dirname(str(inputs[0]).rstrip("/")), "ingest-apis", "tools")
    return sibling if files.exists(sibling) else None


def build(ctx):
    from pyspark import StorageLevel
    from pyspark.sql import functions as F
    from pyspark.sql.pandas.types import from_arrow_schema
    from pyspark.sql.window import Window

    from corpus import schema
    from corpus.spark.envelope import envelope_schema
    from corpus.stage import StagePlan, document_paths, envelope_plan, read_documents

    cfg: ExtractStageSection = ctx.config.extract
    inputs = [str(getattr(i, "path", i)) for i in ctx.inputs]
    tools = tools_path(cfg, inputs)
    extra: dict = {"tools": tools}
    # The documents of most parts are read by the tasks themselves, row group by row group (their texts never
    # pass through the JVM); only the tool docs, which need their ingest-apis record, are joined by Spark.
    joined_parts = (
        [p for p in cfg.parts if p == "tool_doc"]
        if tools and {"api_operation", "doctest"} & set(cfg.extractors)
        else []
    )
    read_parts = [p for p in cfg.parts if p not in joined_parts]
    sources = []  # (DataFrame, whether its batches are row-group tasks)
    if read_parts or not joined_parts:
        sources.append((datasets.row_groups(ctx.spark, *document_paths(ctx.inputs)), True))
    if joined_parts:
        fields = [
            "api",
            "api_title",
            "provider",
            "version",
            "operation_id",
            "spec_format",
            "method",
            "path",
            "sdk_name",
            "description",
            "parameters",
            "base_url",
            "examples",
        ]
        tool_df = datasets.read(ctx.spark, tools)
        if "doctest" in cfg.extractors:  # rank the functions with doctests within their API (doctest_max_per_api)
            with_doctests = (F.col("spec_format") == "python") & (F.size("examples") > 0)
            kind_order = F.when(F.col("kind") == "function", 0).when(F.col("kind") == "class", 1).otherwise(2)
            by_api = Window.partitionBy("provider", "api", with_doctests).orderBy(kind_order, "id")
            tool_df = tool_df.withColumn("doctest_rank", F.when(with_doctests, F.row_number().over(by_api)))
            fields.append("doctest_rank")
        tool_df = tool_df.select("id", F.to_json(F.struct(*fields)).alias("tool"))
        docs = read_documents(ctx.spark, ctx.inputs).where(F.col("part").isin(joined_parts))
        sources.append((docs.join(tool_df.dropDuplicates(["id"]), "id", "left"), False))
    cache = api_key = scope = None
    share = 1.0
    if cfg.llm.enabled:
        from corpus.extract.llm import stage_args

        tasks = sum(df.rdd.getNumPartitions() for df, _ in sources)
        cache, share, api_key, scope = stage_args(cfg.llm, ctx.config.run.output, tasks, f"{ctx.tmp}:llm")
        extra["llm"] = {
            "base_url": cfg.llm.base_url,
            "model": cfg.llm.model,
            "cache": cache,
            "budget_share_per_task": share,
        }
    batch_rows = int(ctx.spark.conf.get("spark.sql.execution.arrow.maxRecordsPerBatch"))
    doc_arrow = schema.document().arrow
    read_arrow = pa.schema([doc_arrow.field(n) for n in READ_COLUMNS])

    def run(from_files: bool):
        def fn(batches):
            if from_files:  # the documents of read_parts, read with pyarrow: only the columns extract_rows uses
                batches = datasets.read_row_groups(
                    batches, read_arrow, batch_rows, where=datasets.where_in("part", read_parts)
                )
            return extract_batch(batches, cfg, cache, share, api_key, scope)

        return fn

    # persisted once: documents, rejects, pairs and counters all come from one pass (one set of LLM calls)
    envs = [df.mapInArrow(run(from_files), from_arrow_schema(envelope_schema())) for df, from_files in sources]
    env = envs[0]
    for more in envs[1:]:
        env = env.unionByName(more)
    env = env.persist(StorageLevel.MEMORY_AND_DISK)
    plan = envelope_plan(env, rows_in_counter="pairs_in", extra=extra)
    # identical pairs (same content hash) from several documents: the one from the smallest source id is kept
    ranked = plan.documents.withColumn(
        "_rank", F.row_number().over(Window.partitionBy("id").orderBy("source_id", "source"))
    )
    first = ranked.where(F.col("_rank") == 1).select("id", F.col("source_id").alias("_first"))
    kept = ranked.where(F.col("_rank") == 1).drop("_rank")
    dups = (
        ranked.where(F.col("_rank") > 1)
        .join(first, "id")
        .select(
            "id",
            F.lit("duplicate_pair").alias("reason"),
            F.concat(F.lit("also extracted from "), F.col("_first")).alias("detail"),
            "part",
            "source",
            F.col("source_id").alias("location"),
            "url",
            F.col("id").alias("duplicate_of"),
            "text",
            "metadata",
        )
    )
    rejects = plan.rejects.unionByName(dups)
    pair_schema = schema.load("instruction").spark
    pairs = (
        env.where(F.col("_kind") == "pair")
        .select(F.from_json("_detail", pair_schema).alias("p"))
        .select("p.*")
        .withColumn("_rank", F.row_number().over(Window.partitionBy("id").orderBy("source_doc_id", "source")))
        .where(F.col("_rank") == 1)
        .drop("_rank")
    )
    summary = plan.summary

    def summary_with_duplicates():
        counters, rejected, docs_n = summary()
        ctx.spark.sparkContext.setJobDescription(f"forge {STAGE}: duplicate pairs")
        n_dups = datasets.read(ctx.spark, ctx.path("rejects")).where(F.col("reason") == "duplicate_pair").count()
        if n_dups:
            rejected = {**rejected, "duplicate_pair": n_dups}
        return counters, rejected, docs_n - n_dups

    checks = []
    if cfg.llm.enabled:
        from corpus.extract.llm import check_failures

        uses = {"llm": cfg.llm, **({"refine": cfg.llm} if cfg.llm.refine else {})}

        def llm_health(outcome) -> None:
            outcome.extra["llm"]["calls"] = check_failures(STAGE, uses, outcome.counters, cfg.max_llm_failure_rate)

        checks.append(llm_health)

    def samples(outcome) -> None:  # the report's sample: the pairs of smallest id per extractor (a bounded read)
        ctx.spark.sparkContext.setJobDescription(f"forge {STAGE}: sample of pairs per extractor")
        outcome.extra["samples"] = sample_pairs(ctx.spark, ctx.path("pairs"), SAMPLE_PAIRS)

    checks.append(samples)
    return StagePlan(
        documents=kept,
        rejects=rejects,
        rows_in="pairs_in",
        summary=summary_with_duplicates,
        extra=extra,
        cleanup=plan.cleanup,
        outputs={"pairs": (pairs, "instruction")},
        checks=checks,
    )
