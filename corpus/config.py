"""The run config: one YAML file, validated on load.

Every section is a pydantic model with ``extra="forbid"``: an unknown key or a bad value is an error that names
it (``filter.lang.min_score: Input should be less than or equal to 1``). Every threshold has a default with its
source; ``forge config --reference`` prints the reference table that docs/config.md carries.

A stage's config section has the stage's name (``ingest-web:``, ``filter:``, ``dedup:``, ``write:``), and its
model lives beside the stage's code (``corpus/<package>/config.py``, on the base in :mod:`corpus.sections`); this
module assembles them with the run-level sections (run, spark, inputs) and re-exports them.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ByteSize,
    Field,
    ValidationError,
    field_serializer,
    field_validator,
)

from corpus.ids import dumps
from corpus.sections import PARTS, PYTHON_PATHS, ConfigError, LlmEndpoint, Part, Section, resolve_package_path
from corpus.web.config import HtmlExtractSection, IngestWebSection
from corpus.crawl.config import CrawlSection
from corpus.apis.config import IngestApisSection
from corpus.text.config import IngestTextSection
from corpus.trajectories.config import IngestTrajectoriesSection, JudgeSection, SynthesizeSection
from corpus.filter.config import (
    C4Section,
    FilterSection,
    FineWebSection,
    GopherQualitySection,
    GopherRepetitionSection,
    LangSection,
    TechnicalSection,
)
from corpus.dedup.config import DedupSection, ExactDedupSection, MinHashSection
from corpus.classify.config import ClassifySection, FastTextTrainSection
from corpus.extract.config import ExtractStageSection, LlmSection
from corpus.decontaminate.config import BenchmarkSpec, DecontaminateSection
from corpus.redact.config import REDACT_KINDS, RedactKind, RedactSection
from corpus.mix.config import MixOutput, MixSection
from corpus.write.config import WriteSection
from corpus.export.config import ExportSection


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
    progress: bool = Field(
        True,
        description="Print a progress line for the running stage every `progress_seconds`: "
        "`forge <stage>: <step>`, tasks done, records read and their rate, elapsed time and an ETA (Spark's own "
        "console bar, which names Spark's stage numbers only, stays off).",
    )
    progress_seconds: float = Field(10.0, gt=0, description="Seconds between progress lines.")
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


# sections of the stages after `write`: not part of what the shards are (left out of write's fingerprint and of
# the config the manifest carries, so exporting again does not rewrite the shards)
AFTER_WRITE: tuple[str, ...] = ("export",)


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
    data, origin = read_config(path, overrides)
    return parse_config(data, origin)


def read_config(path: str | Path | None = None, overrides: dict | None = None) -> tuple[dict, str]:
    """The YAML config as parsed, with the overrides merged in, and its origin for messages (not validated)."""
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
        data = _deep_merge(data, overrides) if isinstance(data, dict) else data
    return data, origin


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
