"""The base of every config section (corpus.config assembles them): the parts, the error type, the
frozen, strict pydantic model, and an LLM endpoint's settings (the judge and the extractor use one)."""

from __future__ import annotations

from pathlib import Path

from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    model_validator,
)


PARTS: tuple[str, ...] = ("text", "agent_web", "tool_doc", "trajectory", "instruction", "code")


Part = Literal["text", "agent_web", "tool_doc", "trajectory", "instruction", "code"]


class ConfigError(ValueError):
    """The config file is missing, unparsable, or has an unknown key or a bad value (the message names it)."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


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
