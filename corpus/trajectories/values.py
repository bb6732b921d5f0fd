"""Argument values a user would plausibly give, made from a parameter's botocore shape (enums, length limits,
patterns, numeric ranges), its name (``QueueName``, ``CidrBlock``, ``Description``), and the real values in the
service's documented examples (``examples-1.json``). Every choice is seeded, so the same task gets the same values
in every run; none is a placeholder like ``example-name``. Values are JSON (timestamps as ISO 8601 text, blobs as
text), since they are written into tool calls; botocore takes both forms.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from typing import Any

# what a team names its resources after; combined with the resource noun and a seeded suffix
TOPICS = [
    "orders",
    "billing",
    "analytics",
    "inventory",
    "payments",
    "customer-profiles",
    "audit-logs",
    "web-frontend",
    "data-lake",
    "ml-training",
    "checkout",
    "search-index",
    "notifications",
    "reporting",
    "shipping",
    "user-uploads",
    "fraud-detection",
    "recommendations",
    "clickstream",
    "support-tickets",
    "marketing",
    "iot-telemetry",
    "video-transcode",
    "backups",
    "mobile-api",
    "partner-feeds",
    "invoices",
    "catalog",
    "session-store",
    "image-thumbnails",
    "etl-nightly",
    "metrics",
    "chat-events",
    "ledger",
    "geo-tiles",
    "email-digest",
]
SUFFIXES = ["", "", "-prod", "-dev", "-staging", "-eu", "-us", "-v2", "-2026", "-blue", "-green", "-01", "-test"]
SENTENCES = [
    "Created for the {topic} team's workload.",
    "Holds {topic} data for the quarterly review.",
    "Used by the {topic} service in {env}.",
    "Temporary resource for the {topic} migration.",
    "Managed by the platform team for {topic}.",
    "Part of the {topic} pipeline rollout.",
]
ENVS = ["production", "staging", "development", "the load test"]
ACCOUNT = "123456789012"
REGION = "us-east-1"


def pick(seed: str, options: list) -> Any:
    """A seeded choice: the same seed string always picks the same option."""
    return options[int(hashlib.sha256(seed.encode()).hexdigest()[:12], 16) % len(options)]


def number(seed: str, low: int, high: int) -> int:
    return low + int(hashlib.sha256(seed.encode()).hexdigest()[:12], 16) % (high - low + 1)


def words(name: str) -> list[str]:
    """``DBInstanceIdentifier`` → ["db", "instance", "identifier"]."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", " ", name)
    return [w.lower() for w in re.split(r"[^A-Za-z0-9]+", spaced) if w]


class Values:
    """Value maker for one task (``seed``) of one service; ``examples``: member name → real values from the
    service's documented examples."""

    def __init__(self, seed: str, service: str, examples: dict[str, list] | None = None) -> None:
        self.seed, self.service, self.examples = seed, service, examples or {}
        self.topic = pick(f"{seed}:topic", TOPICS)
        self.suffix = pick(f"{seed}:suffix", SUFFIXES)

    def name(self, noun: str, key: str = "") -> str:
        noun = "-".join(words(noun)) or "resource"
        extra = f"-{number(f'{self.seed}:{key}', 2, 99)}" if key else ""
        return f"{self.topic}-{noun}{self.suffix}{extra}"

    def value(self, shape, member: str, noun: str, depth: int = 0, key: str = "", real: bool = True) -> Any:
        """A value for ``member`` (a botocore shape); ``noun`` names the resource the task is about. ``real``:
        may take a documented example's value (not for the names of new resources, which must be new)."""
        key = f"{key}.{member}" if key else member
        typ = shape.type_name
        if typ == "structure":
            if depth > 3:
                return {}
            return {
                m: self.value(s, m, noun, depth + 1, key, real)
                for m, s in shape.members.items()
                if m in shape.required_members or self._wanted_optional(m)
            }
        if typ == "list":
            low = max(1, int(shape.metadata.get("min", 1)))
            return [self.value(shape.member, member, noun, depth + 1, f"{key}[{i}]", real) for i in range(min(low, 3))]
        if typ == "map":
            return {
                self._string(shape.key, "Key", noun, f"{key}.k"): self.value(
                    shape.value, "Value", noun, depth + 1, f"{key}.v"
                )
            }
        documented = self._example(member, shape, key) if real else None
        if documented is not None:
            return documented
        if getattr(shape, "enum", None):
            return pick(f"{self.seed}:{key}", list(shape.enum))
        if typ in ("integer", "long"):
            return self._integer(shape, member, key)
        if typ in ("float", "double"):
            return float(self._integer(shape, member, key))
        if typ == "boolean":
            return pick(f"{self.seed}:{key}", [True, False])
        if typ == "timestamp":
            day = dt.datetime(2026, 1, 5, tzinfo=dt.timezone.utc) + dt.timedelta(
                days=number(f"{self.seed}:{key}", 0, 300)
            )
            return day.replace(hour=number(f"{self.seed}:{key}:h", 0, 23)).strftime("%Y-%m-%dT%H:%M:%SZ")
        if typ == "blob":  # botocore encodes text given for a blob; JSON can carry it
            return f"{self.topic} payload {number(f'{self.seed}:{key}', 100, 999)}"
        return self._string(shape, member, noun, key)

    @staticmethod
    def _wanted_optional(member: str) -> bool:
        return member in ("Tags", "tags", "Description")

    def _example(self, member: str, shape, key: str) -> Any:
        """A real value from the documented examples, for a third of the tasks (the rest are made here, so the
        corpus does not repeat the examples' few values)."""
        found = [v for v in self.examples.get(member, []) if _fits(v, shape)]
        if not found or number(f"{self.seed}:{key}:ex", 0, 2):
            return None
        return pick(f"{self.seed}:{key}:exv", found)

    def _integer(self, shape, member: str, key: str) -> int:
        low = int(shape.metadata.get("min", 1))
        high = int(shape.metadata.get("max", max(low, 1) * 100 if low > 0 else 100))
        lname = member.lower()
        if lname.startswith("max") and ("result" in lname or "item" in lname or "record" in lname):
            preferred = [5, 10, 20, 25, 50]
        elif "port" in lname:
            preferred = [443, 8080, 5432, 3306, 6379]
        elif "second" in lname or "timeout" in lname:
            preferred = [30, 60, 300, 900]
        elif "days" in lname:
            preferred = [7, 14, 30, 90]
        else:
            preferred = [1, 2, 3, 5, 10]
        fitting = [p for p in preferred if low <= p <= high]
        return pick(f"{self.seed}:{key}", fitting) if fitting else low

    def _string(self, shape, member: str, noun: str, key: str) -> str:
        w = words(member)
        last = w[-1] if w else ""
        meta = getattr(shape, "metadata", {}) or {}
        candidates: list[str]
        if last in ("arn",) or member.endswith("ARN"):
            kind = "-".join(w[:-1]) or noun
            candidates = [f"arn:aws:{self.service}:{REGION}:{ACCOUNT}:{kind}/{self.name(noun, key)}"]
        elif "email" in w:
            candidates = [f"{self.topic.split('-')[0]}-team@example.com"]
        elif last in ("url", "uri", "endpoint"):
            candidates = [f"https://{self.topic}.example.com/hooks/{number(self.seed + key, 100, 999)}"]
        elif last in ("description", "comment", "message", "reason", "body", "summary", "note"):
            text = pick(f"{self.seed}:{key}", SENTENCES).format(
                topic=self.topic.replace("-", " "), env=pick(f"{self.seed}:env", ENVS)
            )
            candidates = [text]
        elif "region" in w:
            candidates = [REGION]
        elif w[-2:] == ["availability", "zone"]:
            candidates = [f"{REGION}a"]
        elif "cidr" in w:
            candidates = [f"10.{number(self.seed + key, 0, 200)}.0.0/16"]
        elif w[-2:] == ["image", "id"]:
            candidates = ["ami-12c6146b"]
        elif w[-2:] == ["instance", "type"]:
            candidates = [pick(f"{self.seed}:{key}", ["t3.micro", "t3.small", "m5.large"])]
        elif "policy" in w and ("document" in w or last == "policy"):
            candidates = [
                '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "'
                f'{self.service}:*", "Resource": "*"}}]}}'
            ]
        elif "token" in w:
            candidates = [f"{self.topic}-{number(self.seed + key, 10000, 99999)}"]
        elif last in ("key", "value") and ("tag" in key.lower() or member in ("Key", "Value")):
            candidates = [
                "team" if last == "key" else self.topic.split("-")[0],
                "env" if last == "key" else pick(f"{self.seed}:env", ["prod", "dev", "staging"]),
            ]
        elif last == "prefix":
            candidates = [f"{self.topic}/"]
        else:
            candidates = [self.name(noun if last in ("name", "id", "identifier") or not w else "-".join(w), key)]
        candidates += [
            self.name(noun, key).replace("-", "_"),
            self.name(noun, key).replace("-", "")[:60],
            f"{self.topic.replace('-', '')}{number(self.seed + key, 10, 99)}",
        ]
        for c in candidates:
            if _fits(c, shape):
                return c
        return candidates[0][: int(meta.get("max", 64))]


def _fits(value: Any, shape) -> bool:
    meta = getattr(shape, "metadata", {}) or {}
    typ = shape.type_name
    if typ == "string":
        if not isinstance(value, str):
            return False
        if getattr(shape, "enum", None) and value not in shape.enum:
            return False
        if len(value) < int(meta.get("min", 0)) or len(value) > int(meta.get("max", 1 << 20)):
            return False
        pattern = meta.get("pattern")
        if pattern:
            try:
                return re.fullmatch(pattern, value) is not None
            except re.error:  # a Java-only construct: not checked here (the service checks it)
                return True
        return True
    if typ in ("integer", "long"):
        return (
            isinstance(value, int)
            and not isinstance(value, bool)
            and int(meta.get("min", -(1 << 62))) <= value <= int(meta.get("max", 1 << 62))
        )
    if typ == "boolean":
        return isinstance(value, bool)
    return False
