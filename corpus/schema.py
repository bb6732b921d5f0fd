"""Versioned dataset schemas: one JSON file per dataset in ``corpus/schemas/`` (``schemas/`` at the repo top).

Each file lists fields with a type string. This module is the one loader: it turns a file into a pyarrow schema
(what batch functions and the shard writer use), a Spark schema (what ``mapInArrow`` and readers declare), and
validates data against it (tests check every stage's output with :func:`validate_table`).

Type strings: ``string``, ``binary``, ``bool``, ``int32``, ``int64``, ``float32``, ``float64``, ``list<T>``,
``map<K,V>``, ``struct<name:T,...>``, and ``json`` (any JSON value; stored as a JSON string in tables).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

import pyarrow as pa

_PRIMITIVES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "binary": pa.binary(),
    "bool": pa.bool_(),
    "int32": pa.int32(),
    "int64": pa.int64(),
    "float32": pa.float32(),
    "float64": pa.float64(),
    "json": pa.string(),
}


class SchemaError(ValueError):
    """Data does not match its schema; the message names the dataset and the field."""


@dataclass(frozen=True)
class Field:
    name: str
    type: str
    nullable: bool
    doc: str = ""
    enum: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Schema:
    name: str
    version: int
    doc: str
    fields: tuple[Field, ...]
    _arrow: pa.Schema = field(repr=False, compare=False, default=None)  # type: ignore[assignment]

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.fields]

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"schema {self.name!r} has no field {name!r}")

    @property
    def arrow(self) -> pa.Schema:
        return self._arrow

    @property
    def spark(self):
        """The Spark StructType (imported lazily: batch functions must not need pyspark)."""
        from pyspark.sql.pandas.types import from_arrow_schema

        return from_arrow_schema(self._arrow)

    def empty_table(self) -> pa.Table:
        return self._arrow.empty_table()


def _split_top(s: str) -> list[str]:
    """Split on commas that are not nested inside <...>."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(s):
        if ch == "<":
            depth += 1
        elif ch == ">":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(s[start:i].strip())
            start = i + 1
    parts.append(s[start:].strip())
    return parts


def arrow_type(spec: str) -> pa.DataType:
    """Parse a type string into a pyarrow type."""
    spec = spec.strip()
    if spec in _PRIMITIVES:
        return _PRIMITIVES[spec]
    if not spec.endswith(">") or "<" not in spec:
        raise SchemaError(f"unknown type {spec!r}")
    head, inner = spec[: spec.index("<")], spec[spec.index("<") + 1 : -1]
    if head == "list":
        return pa.list_(arrow_type(inner))
    if head == "map":
        key, value = _split_top(inner)
        return pa.map_(arrow_type(key), arrow_type(value))
    if head == "struct":
        members = []
        for part in _split_top(inner):
            name, _, typ = part.partition(":")
            members.append(pa.field(name.strip(), arrow_type(typ)))
        return pa.struct(members)
    raise SchemaError(f"unknown type {spec!r}")


@lru_cache(maxsize=None)
def load(name: str) -> Schema:
    """Load ``corpus/schemas/<name>.json``."""
    try:
        raw = json.loads(resources.files("corpus").joinpath("schemas", f"{name}.json").read_text("utf-8"))
    except FileNotFoundError:
        raise SchemaError(f"no schema file for dataset {name!r} in corpus/schemas/") from None
    fields = tuple(
        Field(
            name=f["name"],
            type=f["type"],
            nullable=bool(f.get("nullable", True)),
            doc=f.get("doc", ""),
            enum=tuple(f["enum"]) if "enum" in f else None,
        )
        for f in raw["fields"]
    )
    arrow = pa.schema(
        [pa.field(f.name, arrow_type(f.type), nullable=f.nullable) for f in fields],
        metadata={"corpus.schema": raw["name"], "corpus.schema_version": str(raw["version"])},
    )
    return Schema(name=raw["name"], version=int(raw["version"]), doc=raw.get("doc", ""), fields=fields, _arrow=arrow)


def _same_type(a: pa.DataType, b: pa.DataType) -> bool:
    """Type equality that ignores child field names and nullability (Spark and pyarrow name map/list children
    differently; nullability is checked on the data)."""
    if pa.types.is_map(a) and pa.types.is_map(b):
        return _same_type(a.key_type, b.key_type) and _same_type(a.item_type, b.item_type)
    if (pa.types.is_list(a) or pa.types.is_large_list(a)) and (pa.types.is_list(b) or pa.types.is_large_list(b)):
        return _same_type(a.value_type, b.value_type)
    if pa.types.is_struct(a) and pa.types.is_struct(b):
        return [f.name for f in a] == [f.name for f in b] and all(_same_type(x.type, y.type) for x, y in zip(a, b))
    if pa.types.is_large_string(a):
        a = pa.string()
    if pa.types.is_large_string(b):
        b = pa.string()
    return a.equals(b)


def validate_table(table: pa.Table, schema: Schema, what: str = "") -> None:
    """Raise SchemaError unless ``table`` has exactly the schema's columns, types, non-null fields and enums."""
    label = what or schema.name
    if table.column_names != schema.names:
        raise SchemaError(
            f"{label}: columns {table.column_names} != schema {schema.name} v{schema.version} {schema.names}"
        )
    for f in schema.fields:
        col = table.column(f.name)
        expected = schema.arrow.field(f.name).type
        if not _same_type(col.type, expected):
            raise SchemaError(f"{label}: field {f.name!r} has type {col.type}, schema says {f.type}")
        if not f.nullable and col.null_count:
            raise SchemaError(f"{label}: field {f.name!r} is not nullable but has {col.null_count} nulls")
        if f.enum is not None:
            values = set(v for v in col.to_pylist() if v is not None)
            bad = values - set(f.enum)
            if bad:
                raise SchemaError(f"{label}: field {f.name!r} has values {sorted(bad)} outside {list(f.enum)}")


def _check_json(value: Any, spec: str, path: str) -> None:
    spec = spec.strip()
    if spec == "json":
        return
    if spec == "string":
        ok = isinstance(value, str)
    elif spec in ("int32", "int64"):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif spec in ("float32", "float64"):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif spec == "bool":
        ok = isinstance(value, bool)
    elif spec.startswith("list<"):
        if not isinstance(value, list):
            raise SchemaError(f"{path}: expected a list, got {type(value).__name__}")
        for i, item in enumerate(value):
            _check_json(item, spec[5:-1], f"{path}[{i}]")
        return
    elif spec.startswith("map<"):
        if not isinstance(value, dict):
            raise SchemaError(f"{path}: expected an object, got {type(value).__name__}")
        _, vtype = _split_top(spec[4:-1])
        for k, v in value.items():
            _check_json(v, vtype, f"{path}.{k}")
        return
    elif spec.startswith("struct<"):
        if not isinstance(value, dict):
            raise SchemaError(f"{path}: expected an object, got {type(value).__name__}")
        members = dict(p.split(":", 1) for p in _split_top(spec[7:-1]))
        unknown = set(value) - set(members)
        if unknown:
            raise SchemaError(f"{path}: unknown keys {sorted(unknown)}")
        for name, typ in members.items():
            if name not in value:
                raise SchemaError(f"{path}: missing key {name!r}")
            _check_json(value[name], typ, f"{path}.{name}")
        return
    else:
        raise SchemaError(f"{path}: unknown type {spec!r}")
    if not ok:
        raise SchemaError(f"{path}: expected {spec}, got {value!r}")


def validate_json(obj: dict, schema: Schema, what: str = "") -> None:
    """Validate a JSON object (such as manifest.json) against a schema: exact keys, types, non-null fields."""
    label = what or schema.name
    if not isinstance(obj, dict):
        raise SchemaError(f"{label}: expected a JSON object")
    unknown = set(obj) - set(schema.names)
    if unknown:
        raise SchemaError(f"{label}: unknown keys {sorted(unknown)} (schema {schema.name} v{schema.version})")
    for f in schema.fields:
        if f.name not in obj:
            raise SchemaError(f"{label}: missing key {f.name!r}")
        if obj[f.name] is None:
            if not f.nullable:
                raise SchemaError(f"{label}: {f.name!r} must not be null")
            continue
        _check_json(obj[f.name], f.type, f"{label}.{f.name}")


def document() -> Schema:
    return load("document")


def rejects() -> Schema:
    return load("rejects")
