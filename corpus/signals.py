"""The ``signals`` column: numeric annotations as a list of ``{key, value}`` structs, sorted by key.

A list of structs rather than an Arrow map, because the shards must open unchanged in every reader trainers
use, and Hugging Face ``datasets`` has no type for Arrow maps (``map<string, double>`` raises there).
"""

from __future__ import annotations

from typing import Any


def as_dict(value: Any) -> dict[str, float]:
    """The signals of a row (None, a list of {key, value} dicts, or (key, value) pairs) as a dict."""
    if not value:
        return {}
    if isinstance(value, dict):
        return dict(value)
    return {(v["key"] if isinstance(v, dict) else v[0]): (v["value"] if isinstance(v, dict) else v[1]) for v in value}


def as_list(values: dict[str, float]) -> list[dict] | None:
    """The column value for a dict of signals (None when empty)."""
    return [{"key": k, "value": float(v)} for k, v in sorted(values.items())] or None


def merged(value: Any, **updates: float) -> list[dict] | None:
    """Existing signals with ``updates`` set."""
    out = as_dict(value)
    out.update(updates)
    return as_list(out)
