"""PII and secret patterns, and the redaction of one text.

Written by hand because no maintained library fits a corpus pass: detect-secrets (Yelp) scans repositories line
by line through ~20 plugin objects and reports rather than rewrites; Presidio needs spaCy models. Here each kind
is one compiled regex, run only when a cheap substring test says the text could hold it, and every match is
replaced in place by ``<KIND>`` (``<EMAIL>``, ``<AWS_ACCESS_KEY>``, ...; generic secrets become ``<SECRET>``).

False positives, by design and documented in the README:

* ``ip_address`` matches any valid dotted quad, so a version string such as ``1.2.3.4`` is redacted; only global
  addresses count (private, loopback, link-local and the RFC 5737 documentation ranges are left alone when
  ``keep_documentation_values`` is on).
* ``key_assignment`` redacts a value of 16+ characters with letters and digits and enough entropy after a
  key-like name (``api_key = ...``, ``"token": "..."``); a long random-looking identifier assigned to such a name
  is redacted even if it is not a secret. Placeholders (``YOUR_API_KEY``, ``<token>``, ``xxxxxxxx``) are kept.
* ``email`` keeps the reserved example domains (RFC 2606 / 6761) that documentation uses, and role mailboxes
  (``support@``, ``security@``, ...), which are not people.
* A dotted quad right after ``RFC nnnn``, ``section``, ``§``, ``version`` or ``v`` is a section or version
  number and is kept; other version-like quads are not told apart from addresses.
* ``key_assignment`` does not fire after ``:`` or ``/`` (``arn:aws:secretsmanager:...:secret:MyDatabase-a1b2``
  names a secret; it is not one).
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections import Counter
from dataclasses import dataclass
from typing import Callable

_IPV4 = r"(?<![\w.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?![\w]|\.\d)"
_IPV6 = r"(?<![\w:.])(?=[0-9A-Fa-f:.]*::?[0-9A-Fa-f]*:)[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?![\w:])"
_KEY_NAMES = (r"api[_-]?key|apikey|secret[_-]?key|secret|client[_-]?secret|access[_-]?token|auth[_-]?token|"
              r"refresh[_-]?token|token|password|passwd|pwd")
EXAMPLE_DOMAINS = ("example.com", "example.org", "example.net")
EXAMPLE_TLDS = (".test", ".example", ".invalid", ".localhost", ".local")
# role addresses, not people: documentation tells readers to write to them
ROLE_MAILBOXES = {"support", "help", "info", "contact", "admin", "sales", "security", "abuse", "postmaster",
                  "webmaster", "noreply", "no-reply", "feedback", "privacy", "legal", "press"}
# a dotted quad right after these is a section or version number, not an address ("RFC 5280 4.2.1.6")
_NOT_AN_ADDRESS = re.compile(r"(?i)(?:\brfc\s*\d+[,:]?\s*|\bsection\s+|§\s*|\bversion\s+|\bv)$")


@dataclass(frozen=True)
class Kind:
    name: str
    pattern: re.Pattern
    triggers: tuple[str, ...]  # substrings of the lowercased text; the regex runs only if one is present
    group: int = 0  # the group replaced (0: the whole match)
    placeholder: str = ""
    prefilter: re.Pattern | None = None  # a cheaper regex the lowercased text must match too
    not_after: re.Pattern | None = None  # a match right after text matching this (ending there) is kept


def _kinds() -> list[Kind]:
    aws_prefixes = ("AKIA", "ASIA", "ABIA", "ACCA", "AGPA", "AIDA", "AROA", "AIPA", "ANPA", "ANVA", "APKA")
    k = [
        Kind("private_key", re.compile(
            r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----(?:[\s\S]*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----|"
            r"[A-Za-z0-9+/=\s:,-]*)"), ("private key-----",)),
        Kind("jwt", re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"), ("eyj",)),
        Kind("aws_access_key", re.compile(r"(?<![A-Z0-9])(?:" + "|".join(aws_prefixes) + r")[A-Z0-9]{16}(?![A-Z0-9])"),
             tuple(p.lower() for p in aws_prefixes)),
        Kind("aws_secret_key", re.compile(r"(?i:aws_?secret_?access_?key|secret_?access_?key|aws_?secret)[\"']?\s*"
                                          r"(?:[:=]|=>)\s*[\"']?([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+])"),
             ("secret",), group=1),
        Kind("github_token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})\b"),
             ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_")),
        Kind("slack_token", re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,250}"), ("xox",)),
        Kind("google_api_key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}(?![0-9A-Za-z_-])"), ("aiza",)),
        Kind("stripe_key", re.compile(r"\b(?:sk|rk)_live_[0-9A-Za-z]{20,247}\b"), ("_live_",)),
        Kind("openai_key", re.compile(r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{32,}"), ("sk-",)),
        Kind("bearer_token", re.compile(r"(?i:\bbearer\s+)([A-Za-z0-9\-._~+/]{20,}=*)"), ("bearer",), group=1),
        Kind("key_assignment", re.compile(r"(?i)(?<![:/])\b(?:" + _KEY_NAMES + r")\b[\"']?\s*(?:[:=]|:=|=>)\s*[\"']?"
                                          r"([A-Za-z0-9/+_\-.=~]{16,})"),
             ("key", "secret", "token", "pass", "pwd"), group=1, placeholder="<SECRET>",
             prefilter=re.compile(r"(?:key|secret|token|passwd|password|pwd)[\"']?\s*(?::=|=>|[:=])\s*[\"']?"
                                  r"[a-z0-9/+_\-.=~]{16}")),
        Kind("email", re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]{1,64}@(?:[A-Za-z0-9-]{1,63}\.)+[A-Za-z]{2,24}"
                                 r"(?![\w-])"), ("@",)),
        Kind("ip_address", re.compile(_IPV4), (".",), prefilter=re.compile(r"\d\.\d{1,3}\.\d{1,3}\.\d"),
             not_after=_NOT_AN_ADDRESS),
        Kind("ip_address", re.compile(_IPV6), ("::", ":"), prefilter=re.compile(r"::|[0-9a-f]:[0-9a-f]{1,4}:[0-9a-f]")),
    ]
    return k


KINDS = _kinds()  # in order: private keys first (they contain other tokens), generic key assignments after the specific
NAMES = list(dict.fromkeys(k.name for k in KINDS))


def entropy(s: str) -> float:
    """Shannon entropy of the characters of ``s``, in bits per character."""
    if not s:
        return 0.0
    n = len(s)
    return -sum(c / n * math.log2(c / n) for c in Counter(s).values())


def _looks_secret(value: str, min_entropy: float) -> bool:
    return (any(c.isdigit() for c in value) and any(c.isalpha() for c in value)
            and entropy(value) >= min_entropy and "example" not in value.lower())


def _keep(kind: str, value: str, min_entropy: float, keep_docs: bool) -> bool:
    """Whether a match is left alone (documentation values, placeholders)."""
    if kind in ("bearer_token", "key_assignment"):
        return not _looks_secret(value, min_entropy)
    if not keep_docs:
        return False
    if kind in ("aws_access_key", "aws_secret_key"):
        return value.endswith("EXAMPLE") or "EXAMPLEKEY" in value
    if kind == "email":
        local, domain = (p.lower() for p in value.rsplit("@", 1))
        return domain in EXAMPLE_DOMAINS or domain.endswith(tuple("." + d for d in EXAMPLE_DOMAINS)) \
            or domain.endswith(EXAMPLE_TLDS) or local in ROLE_MAILBOXES or local.endswith("-support")
    if kind == "ip_address":
        try:
            return not ipaddress.ip_address(value).is_global
        except ValueError:
            return True  # not an address after all (e.g. a time like 10:30:00)
    return False


class Redactor:
    """Redacts the configured kinds; ``redact(text)`` → (text, counts by kind)."""

    def __init__(self, kinds: list[str] | None = None, keep_documentation_values: bool = True,
                 min_entropy: float = 3.0) -> None:
        self.kinds = [k for k in KINDS if kinds is None or k.name in kinds]
        self.keep_docs = keep_documentation_values
        self.min_entropy = min_entropy

    def _replacer(self, kind: Kind, counts: Counter) -> Callable[[re.Match], str]:
        placeholder = kind.placeholder or f"<{kind.name.upper()}>"

        def replace(m: re.Match) -> str:
            value = m.group(kind.group)
            if _keep(kind.name, value, self.min_entropy, self.keep_docs):
                return m.group(0)
            if kind.not_after is not None and kind.not_after.search(m.string, max(0, m.start() - 24), m.start()):
                return m.group(0)
            counts[kind.name] += 1
            if kind.group == 0:
                return placeholder
            start, end = m.start(kind.group) - m.start(0), m.end(kind.group) - m.start(0)
            whole = m.group(0)
            return whole[:start] + placeholder + whole[end:]

        return replace

    def redact(self, text: str) -> tuple[str, Counter]:
        counts: Counter = Counter()
        lowered = text.lower()
        for kind in self.kinds:
            if any(t in lowered for t in kind.triggers) and (kind.prefilter is None or kind.prefilter.search(lowered)):
                new = kind.pattern.sub(self._replacer(kind, counts), text)
                if new is not text and counts[kind.name]:
                    text = new
                    lowered = text.lower()
        return text, counts
