"""PII and secrets: what each kind finds, and the redaction of one text.

Secrets are found with **detect-secrets**' plugins (Yelp's maintained rules) wherever one fits: AWS access keys and
quoted secret keys, Azure storage account keys, GitHub and GitLab tokens, JSON web tokens (checked to decode),
Slack tokens and webhooks, Stripe live keys, SendGrid, npm, PyPI, Square, Mailchimp, Twilio, Discord and Telegram
tokens, and the keyword detector (``password = "..."``, ``db_pass: ...``, ``api_key=...``, in code and config
syntax). detect-secrets scans repositories line by line and reports; here its plugins' ``analyze_string`` finds
the values and the redactor replaces them in place. Its high-entropy-string plugins are not used: they flag
every digest, UUID and base64 image.

Written here, because no detect-secrets plugin covers them: whole PEM / OpenSSH / PGP private-key blocks (its
plugin finds the header line only), credentials in URLs (``scheme://user:password@host``; its plugin refuses
passwords with ``!$&*+,;=``), Google API keys, current OpenAI keys (``sk-proj-...``; its plugin knows the 2023
format only), fine-grained GitHub tokens (``github_pat_``), AWS secret keys in config files (unquoted), bearer
tokens, token-named assignments (``access_token: ...``, which its keyword list lacks), emails and IP addresses.

Every kind runs only when a cheap substring test (on the lower-cased text) says the text could hold it. Values
made for documentation are kept when ``keep_documentation_values`` is on: AWS's published ``...EXAMPLE`` keys,
reserved example domains and role mailboxes, non-global IP addresses, and placeholders (``YOUR_API_KEY``,
``<token>``, ``${VAR}``, ``os.environ[...]``, ``XXXX``, low-entropy values), as detect-secrets' own heuristics
judge them. False positives by design, documented in the README: a version string that is a valid public IPv4
address, and a long random identifier assigned to a secret-like name.
"""

from __future__ import annotations

import importlib
import ipaddress
import math
import re
import string
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Iterator

_IPV4 = r"(?<![\w.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?![\w]|\.\d)"
_IPV6 = r"(?<![\w:.])(?=[0-9A-Fa-f:.]*::?[0-9A-Fa-f]*:)[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?![\w:])"
_TOKEN_NAMES = r"access[_-]?token|auth[_-]?token|refresh[_-]?token|api[_-]?token|bot[_-]?token|token|bearer"
EXAMPLE_DOMAINS = ("example.com", "example.org", "example.net")
EXAMPLE_TLDS = (".test", ".example", ".invalid", ".localhost", ".local")
# role addresses, not people: documentation tells readers to write to them
ROLE_MAILBOXES = {
    "support",
    "help",
    "info",
    "contact",
    "admin",
    "sales",
    "security",
    "abuse",
    "postmaster",
    "webmaster",
    "noreply",
    "no-reply",
    "feedback",
    "privacy",
    "legal",
    "press",
}
# a dotted quad right after these is a section or version number, not an address ("RFC 5280 4.2.1.6")
_NOT_AN_ADDRESS = re.compile(r"(?i)(?:\brfc\s*\d+[,:]?\s*|\bsection\s+|§\s*|\bversion\s+|\bv)$")
TOKEN_CHARS = re.compile(r"[A-Za-z0-9_\-]*")  # a token matched by its prefix is redacted to its end
JWT_CHARS = re.compile(r"[A-Za-z0-9_\-.=+/]*")
# placeholders and references, not values: <...>, ${...}, {{...}}, $VAR, os.environ[...], getenv(...), XXXX...
_PLACEHOLDER = re.compile(
    r"(?i)^(?:<[^>]*>|\$\{?[\w.-]+\}?|\{\{.*\}\}|%\(?\w+\)?s?|x{4,}|\*{3,}|\.{3,}|"
    r"(?:your|my|the)[_-]?\w*|.*(?:example|placeholder|changeme|dummy|redacted|sample).*)$"
)
# keys vendors publish in their documentation (AWS's ...EXAMPLE pair is matched by its suffix)
DOCUMENTED_VALUES = frozenset(
    {
        "sk_test_4eC39HqLyjWDarjtT1zdp7dc",
        "pk_test_TYooMQauvdEDq54NiTphI7jx",
        "sk_test_BQokikJOvBiI2HlWgH4olfQ2",
        "pk_test_6pRNASCoBOKtIshFeQd4XMUh",
    }
)
# an unquoted assigned value that can be a secret: one token, no call, index or attribute chain
_UNQUOTED_VALUE = re.compile(r"[A-Za-z0-9/+_\-=~!@#$%^&*.]{6,}")
_DOTTED = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+")  # rust_openssl.hpke.MLKEM768X25519PrivateKey
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?")
_IN_A_NAME = re.compile(r"(?i)[:/][\w\-]*(?:pass|pwd|secret|key|token)[\w\-]*[\"'`\]]{0,2}\s*[:=]\s*[\"'`]?$")
# passwords that documentation writes into example URLs (scheme://user:pass@host)
EXAMPLE_PASSWORDS = frozenset(
    {
        "pass",
        "password",
        "passwd",
        "pwd",
        "pw",
        "secret",
        "mypassword",
        "changeme",
        "foo",
        "bar",
        "baz",
        "thing",
        "test",
        "testing",
        "letmein",
        "hunter2",
        "pass123",
    }
)
_REFERENCE = re.compile(r"(?i)(?:os\.environ|getenv|process\.env|env\[|\benv\(|secrets\.|config\[|settings\.)")


@dataclass(frozen=True)
class Kind:
    """One kind of PII or secret: ``find(text)`` yields ``(start, end)`` spans of values, ``triggers`` are
    substrings of the lower-cased text without which ``find`` is not run."""

    name: str
    find: Callable[[str], Iterator[tuple[int, int]]]
    triggers: tuple[str, ...]
    placeholder: str = ""
    source: str = "forge"  # "detect-secrets" when the rule is one of its plugins


def _regex(pattern: str | re.Pattern, group: int = 0, flags: int = 0, extend: re.Pattern | None = None):
    rx = re.compile(pattern, flags) if isinstance(pattern, str) else pattern

    def find(text: str) -> Iterator[tuple[int, int]]:
        for m in rx.finditer(text):
            if m.group(group):
                end = m.end(group)
                if extend is not None:
                    end = extend.match(text, end).end()
                yield m.start(group), end

    return find


def _anchored(anchor: str, pattern: str, left: str, reach: int):
    """Spans of ``pattern`` found from a literal-led ``anchor``: for each anchor match, the start moves left over
    up to ``reach`` characters of ``left`` and ``pattern`` must match from one of those starts across the anchor.
    Python's regex engine scans fast only for a pattern that starts with a literal; one that starts with a
    character class (an address, an email) is tried at every position of every text."""
    anchor_rx, rx, left_set = re.compile(anchor), re.compile(pattern), frozenset(left)

    def find(text: str) -> Iterator[tuple[int, int]]:
        done = 0
        for a in anchor_rx.finditer(text):
            if a.start() < done:
                continue
            start = a.start()
            while start > 0 and a.start() - start < reach and text[start - 1] in left_set:
                start -= 1
            for s in range(start, a.start() + 1):
                m = rx.match(text, s)
                if m and m.end() > a.start():
                    yield m.start(), m.end()
                    done = m.end()
                    break

    return find


def _plugin(path: str, extend: re.Pattern | None = TOKEN_CHARS, **kwargs) -> Callable[[str], Iterator[tuple[int, int]]]:
    """Spans of the values a detect-secrets plugin (``module.Class`` under ``detect_secrets.plugins``) finds.
    ``extend``: a value its regex matched by a prefix is redacted to the end of the token."""
    module, cls = path.rsplit(".", 1)
    plugin = getattr(importlib.import_module(f"detect_secrets.plugins.{module}"), cls)()

    def find(text: str) -> Iterator[tuple[int, int]]:
        for value in set(plugin.analyze_string(text, **kwargs)):
            if not value:
                continue
            start = text.find(value)
            while start >= 0:
                end = start + len(value)
                if extend is not None:
                    end = extend.match(text, end).end()
                yield start, end
                start = text.find(value, end)

    return find


def _keyword_assignments() -> Callable[[str], Iterator[tuple[int, int]]]:
    """detect-secrets' keyword detector, line by line, in both of its syntaxes (code: quoted values; config:
    ``key: value`` / ``key=value``), plus assignments to token names, which its keyword list lacks."""
    from detect_secrets.plugins import keyword

    plugin = keyword.KeywordDetector()
    syntaxes = (keyword.QUOTES_REQUIRED_DENYLIST_REGEX_TO_GROUP, keyword.CONFIG_DENYLIST_REGEX_TO_GROUP)
    tokens = re.compile(
        r"(?i)(?<![:/\w])(?:" + _TOKEN_NAMES + r")[\"']?\s*(?:[:=]|:=|=>)\s*[\"']?"
        r"([A-Za-z0-9/+_\-.=~]{16,})"
    )
    # a line is scanned only when a secret-like name is followed by an assignment (what every syntax shares)
    # (run on the lower-cased text: a case-insensitive alternation costs Python's regex engine several times more)
    # ... and the value assigned has a digit: every value kept as a secret has one (see _looks_secret), and API
    # docs are full of `"Key": "string"` lines that would each cost detect-secrets' dozen regexes for nothing
    assigned = re.compile(
        r"(?:pass|pwd|secret|key|token|contrase)[\w\-]*[\"'`\]]{0,2}\s*(?:[:=]|=>|!=|==)\s*"
        r"[\"'`]?([^\s\"'`,;]*\d[^\s\"'`,;]*)"
    )
    assigned_any_case = re.compile(assigned.pattern, re.IGNORECASE)

    def find(text: str) -> Iterator[tuple[int, int]]:
        done = -1
        lowered = text.lower()
        found = assigned.finditer(lowered) if len(lowered) == len(text) else assigned_any_case.finditer(text)
        for m in found:  # the candidate lines, found by one scan of the whole text (lower-casing kept offsets)
            if m.start() < done:
                continue
            pos = text.rfind("\n", 0, m.start()) + 1
            done = text.find("\n", m.end())
            done = len(text) if done < 0 else done
            line = text[pos:done]
            values = {v for s in syntaxes for v in plugin.analyze_string(line, denylist_regex_to_group=s) if v}
            values.update(m.group(1) for m in tokens.finditer(line))
            for value in values:
                value = value.strip().rstrip(",;")
                at = line.find(value) if value else -1
                if at < 0 or _REFERENCE.search(line[max(0, at - 40) : at + len(value)]):
                    continue
                before = line[:at]
                quoted = before.rstrip()[-1:] in ("'", '"', "`")
                after = line[at + len(value) : at + len(value) + 1]
                if not quoted and (
                    not _UNQUOTED_VALUE.fullmatch(value) or _DOTTED.fullmatch(value) or after in ("(", "[", ".")
                ):
                    continue  # code, not a value: self.password = str(uuid4()), token = base64.b64encode(d)
                if _TIMESTAMP.fullmatch(value.strip("\"'`")):
                    continue  # "PasswordLastUsed": "2016-09-08T21:47:36Z"
                if _IN_A_NAME.search(before):
                    continue  # arn:aws:secretsmanager:...:secret:MyDatabase names a secret, it is not one
                yield pos + at, pos + at + len(value)

    return find


def _kinds() -> list[Kind]:
    aws_prefixes = ("akia", "asia", "abia", "acca", "a3t")
    return [  # in order: private keys first (they contain other tokens), generic assignments after the specific
        # the marker, optional headers (Proc-Type: ...), then a base64 body, to the END marker or the body's end
        Kind(
            "private_key",
            _regex(
                r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----[ \t]*\r?\n"
                r"(?:[A-Za-z-]+:[^\n]*\n)*\s*[A-Za-z0-9+/=]{40,}[A-Za-z0-9+/=\s]*"
                r"(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----)?"
            ),
            ("private key",),
        ),
        Kind(
            "url_credentials",
            _regex(r"://([^\s/?#@:\"'<>]{1,128}:[^\s/?#@\"'<>]{1,256})@(?=[\w.\[-])", group=1),
            ("://",),
            "<CREDENTIALS>",
        ),
        Kind("aws_access_key", _plugin("aws.AWSKeyDetector"), aws_prefixes + ("aws",), source="detect-secrets"),
        Kind(
            "aws_secret_key",
            _regex(
                r"(?i:aws_?secret_?access_?key|secret_?access_?key|aws_?secret)[\"']?\s*"
                r"(?:[:=]|=>)\s*[\"']?([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+])",
                group=1,
            ),
            ("secret",),
        ),
        Kind(
            "azure_storage_key",
            _plugin("azure_storage_key.AzureStorageKeyDetector", extend=None),
            ("accountkey=",),
            source="detect-secrets",
        ),
        Kind(
            "github_token",
            _plugin("github_token.GitHubTokenDetector"),
            ("ghp_", "gho_", "ghu_", "ghs_", "ghr_"),
            source="detect-secrets",
        ),
        Kind("github_token", _regex(r"\bgithub_pat_[A-Za-z0-9_]{22,255}"), ("github_pat_",)),
        Kind(
            "gitlab_token",
            _plugin("gitlab_token.GitLabTokenDetector"),
            ("glpat-", "gldt-", "glft-", "glsoat-", "glrt-", "gr1348941", "glcbt-", "glimt-"),
            source="detect-secrets",
        ),
        Kind("slack_token", _plugin("slack.SlackDetector"), ("xox", "hooks.slack.com"), source="detect-secrets"),
        Kind("stripe_key", _plugin("stripe.StripeDetector"), ("_live_",), source="detect-secrets"),
        Kind("sendgrid_key", _plugin("sendgrid.SendGridDetector"), ("sg.",), source="detect-secrets"),
        Kind("npm_token", _plugin("npm.NpmDetector", extend=None), ("_authtoken",), source="detect-secrets"),
        Kind("pypi_token", _plugin("pypi_token.PypiTokenDetector"), ("pypi-ag",), source="detect-secrets"),
        Kind("square_token", _plugin("square_oauth.SquareOAuthDetector"), ("sq0csp-",), source="detect-secrets"),
        # tokens without a distinctive prefix: looked for where their service is named
        Kind("mailchimp_key", _plugin("mailchimp.MailchimpDetector"), ("mailchimp",), source="detect-secrets"),
        Kind("twilio_key", _plugin("twilio.TwilioKeyDetector"), ("twilio",), source="detect-secrets"),
        Kind("discord_token", _plugin("discord.DiscordBotTokenDetector"), ("discord",), source="detect-secrets"),
        Kind(
            "telegram_token", _plugin("telegram_token.TelegramBotTokenDetector"), ("telegram",), source="detect-secrets"
        ),
        Kind("google_api_key", _regex(r"\bAIza[0-9A-Za-z_-]{35}(?![0-9A-Za-z_-])"), ("aiza",)),
        Kind("openai_key", _plugin("openai.OpenAIDetector"), ("t3blbkfj",), source="detect-secrets"),
        Kind("openai_key", _regex(r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{32,}"), ("sk-",)),
        Kind("jwt", _plugin("jwt.JwtTokenDetector", extend=JWT_CHARS), ("eyj",), source="detect-secrets"),
        Kind("bearer_token", _regex(r"(?i:\bbearer\s+)([A-Za-z0-9\-._~+/]{20,}=*)", group=1), ("bearer",)),
        Kind(
            "key_assignment",
            _keyword_assignments(),
            ("pass", "pwd", "secret", "key", "token", "contrase"),
            "<SECRET>",
            source="detect-secrets",
        ),
        Kind(
            "email",
            _anchored(
                r"@[A-Za-z0-9-]",
                r"(?<![\w.+-])[A-Za-z0-9._%+-]{1,64}@(?:[A-Za-z0-9-]{1,63}\.)+"
                r"[A-Za-z]{2,24}(?![\w-])",
                string.ascii_letters + string.digits + "._%+-",
                64,
            ),
            ("@",),
        ),
        Kind("ip_address", _anchored(r"\.\d{1,3}\.\d{1,3}\.\d", _IPV4, string.digits, 3), (".",)),
        Kind("ip_address", _anchored(r":[0-9A-Fa-f]{0,4}:", _IPV6, string.hexdigits + ":", 40), ("::", ":")),
    ]


KINDS = _kinds()
NAMES = list(dict.fromkeys(k.name for k in KINDS))
SECRET_KINDS = [n for n in NAMES if n not in ("email", "ip_address")]


def entropy(s: str) -> float:
    """Shannon entropy of the characters of ``s``, in bits per character."""
    if not s:
        return 0.0
    n = len(s)
    return -sum(c / n * math.log2(c / n) for c in Counter(s).values())


def _looks_secret(value: str, min_entropy: float) -> bool:
    """A value assigned to a secret-like name that is a real value, not a placeholder or a reference."""
    from detect_secrets.filters import heuristic

    v = value.strip("\"'`")
    if (
        len(v) < 6
        or _PLACEHOLDER.match(v)
        or heuristic.is_templated_secret(v)
        or heuristic.is_prefixed_with_dollar_sign(v)
        or heuristic.is_sequential_string(v)
        or heuristic.is_potential_uuid(v)
    ):
        return False
    return any(c.isdigit() for c in v) and any(c.isalpha() for c in v) and entropy(v) >= min_entropy


def _keep(kind: str, value: str, min_entropy: float, keep_docs: bool) -> bool:
    """Whether a found value is left alone (documentation values, placeholders)."""
    if keep_docs and value.strip("\"'`") in DOCUMENTED_VALUES:
        return True
    if kind in ("bearer_token", "key_assignment"):
        return not _looks_secret(value, min_entropy)
    if kind == "url_credentials":
        password = value.split(":", 1)[1]
        return (
            password.lower() in EXAMPLE_PASSWORDS or bool(_PLACEHOLDER.match(password)) or heuristic_templated(password)
        )
    if not keep_docs:
        return False
    if kind in ("aws_access_key", "aws_secret_key"):
        # ...EXAMPLE keys, and DNA: an ACCA / ASIA key id is 16 more characters, a gene is ACGT
        return value.endswith("EXAMPLE") or "EXAMPLEKEY" in value or not value.strip("ACGTN")
    if kind == "email":
        local, domain = (p.lower() for p in value.rsplit("@", 1))
        return (
            domain in EXAMPLE_DOMAINS
            or domain.endswith(tuple("." + d for d in EXAMPLE_DOMAINS))
            or domain.endswith(EXAMPLE_TLDS)
            or local in ROLE_MAILBOXES
            or local.endswith("-support")
        )
    if kind == "ip_address":
        try:
            return not ipaddress.ip_address(value).is_global
        except ValueError:
            return True  # not an address after all (e.g. a time like 10:30:00)
    return bool(re.fullmatch(r"[A-Za-z0-9_-]*?(?:x{8,}|X{8,}|0{12,})[A-Za-z0-9_-]*", value))  # ghp_XXXX...


def heuristic_templated(value: str) -> bool:
    from detect_secrets.filters import heuristic

    return heuristic.is_templated_secret(value) or heuristic.is_prefixed_with_dollar_sign(value)


class Redactor:
    """Redacts the configured kinds; ``redact(text)`` → (text, counts by kind)."""

    def __init__(
        self, kinds: list[str] | None = None, keep_documentation_values: bool = True, min_entropy: float = 3.0
    ) -> None:
        self.kinds = [k for k in KINDS if kinds is None or k.name in kinds]
        self.keep_docs = keep_documentation_values
        self.min_entropy = min_entropy

    def spans(self, text: str) -> list[tuple[int, int, Kind]]:
        """The values to replace, without overlaps (an earlier kind wins over a later one, then the longer)."""
        lowered = text.lower()
        found: list[tuple[int, int, int, Kind]] = []
        for rank, kind in enumerate(self.kinds):
            if not any(t in lowered for t in kind.triggers):
                continue
            for start, end in kind.find(text):
                value = text[start:end]
                if _keep(kind.name, value, self.min_entropy, self.keep_docs):
                    continue
                if kind.name == "ip_address" and _NOT_AN_ADDRESS.search(text, max(0, start - 24), start):
                    continue
                found.append((start, end, rank, kind))
        found.sort(key=lambda s: (s[2], s[0] - s[1]))
        taken: list[tuple[int, int, Kind]] = []
        for start, end, _, kind in found:
            if all(end <= a or start >= b for a, b, _ in taken):
                taken.append((start, end, kind))
        return sorted(taken, key=lambda s: s[0])

    def redact(self, text: str) -> tuple[str, Counter]:
        counts: Counter = Counter()
        if not text:
            return text, counts
        spans = self.spans(text)
        if not spans:
            return text, counts
        out, pos = [], 0
        for start, end, kind in spans:
            out += [text[pos:start], kind.placeholder or f"<{kind.name.upper()}>"]
            pos = end
            counts[kind.name] += 1
        out.append(text[pos:])
        return "".join(out), counts
