"""botocore service models (``botocore/data/<service>/<api-version>/service-2.json[.gz]``) → operations.

A model has ``metadata`` (service id, full name, API version, protocol), ``operations`` (HTTP method and request
URI, input / output shape names, HTML documentation) and ``shapes`` (structures, lists, maps and scalars; a
structure's members say where they travel: ``uri``, ``querystring``, ``header``, or the body). The sibling
``examples-1.json[.gz]``, when present, holds titled example calls, attached to their operation.
"""

from __future__ import annotations

from typing import Any

from corpus.apis.model import Operation, Param
from corpus.apis.specs import html_to_text

_SCALAR = {
    "string": "string",
    "integer": "integer",
    "long": "integer",
    "boolean": "boolean",
    "float": "number",
    "double": "number",
    "timestamp": "timestamp",
    "blob": "blob",
}
_LOCATION = {"uri": "path", "querystring": "query", "header": "header", "headers": "header", "statusCode": "status"}


def _snake(name: str) -> str:
    """boto3's method name for an operation (``PutObject`` → ``put_object``): botocore's own ``xform_name``."""
    from botocore import xform_name

    return xform_name(name)


class _Shapes:
    def __init__(self, shapes: dict) -> None:
        self.shapes = shapes

    def schema(self, name: str | None, depth: int = 4, stack: tuple[str, ...] = (), describe: int = 1) -> dict:
        """JSON schema of a shape, depth-limited; a shape already open on the path becomes ``$recursive``.
        Member descriptions on the first ``describe`` levels only (as in corpus.apis.specs.summarise)."""
        shape = self.shapes.get(name or "")
        if not isinstance(shape, dict):
            return {"type": "object", "description": f"unknown shape {name}"} if name else {}
        if name in stack:
            return {"$recursive": name, "type": "object"}
        stack = stack + (name,)
        t = shape.get("type")
        out: dict[str, Any] = {}
        if t == "structure":
            out["type"] = "object"
            out["title"] = name
            if depth > 0:
                props = {}
                for member, ref in (shape.get("members") or {}).items():
                    sub = self.schema(ref.get("shape"), depth - 1, stack, describe - 1)
                    doc = html_to_text(ref.get("documentation") or "") if describe > 0 else ""
                    if doc:
                        sub = {**sub, "description": doc}
                    props[member] = sub
                if props:
                    out["properties"] = props
            if shape.get("required"):
                out["required"] = sorted(shape["required"])
        elif t == "list":
            out["type"] = "array"
            out["items"] = (
                self.schema((shape.get("member") or {}).get("shape"), depth - 1, stack, describe - 1)
                if depth > 0
                else {"type": "object"}
            )
        elif t == "map":
            out["type"] = "object"
            if depth > 0:
                out["additionalProperties"] = self.schema(
                    (shape.get("value") or {}).get("shape"), depth - 1, stack, describe - 1
                )
        else:
            jt = _SCALAR.get(t, "string")
            if jt in ("timestamp", "blob"):
                out.update(type="string", format="date-time" if jt == "timestamp" else "byte")
            else:
                out["type"] = jt
            if isinstance(shape.get("enum"), list):
                out["enum"] = [str(v) for v in shape["enum"]]
            for src, dst in (("min", "minimum"), ("max", "maximum")):
                if isinstance(shape.get(src), (int, float)) and jt in ("integer", "number"):
                    out[dst] = shape[src]
            if isinstance(shape.get("pattern"), str):
                out["pattern"] = shape["pattern"]
        return out


def operations(doc: dict, examples: dict | None = None, client: str | None = None) -> list[Operation]:
    """Operations of one model. ``client`` is the name ``boto3.client(...)`` takes, i.e. the model's folder
    under ``botocore/data`` (default: the endpoint prefix, which agrees for most services)."""
    meta = doc.get("metadata") or {}
    api = str(meta.get("endpointPrefix") or meta.get("serviceId") or "unknown").lower()
    service = str(meta.get("serviceId") or api)
    sdk_client = client or api
    version = str(meta.get("apiVersion") or "")
    shapes = _Shapes(doc.get("shapes") or {})
    examples = (examples or {}).get("examples") or {}
    out = []
    for name in sorted(doc.get("operations") or {}):
        op = doc["operations"][name]
        if not isinstance(op, dict):
            continue
        http = op.get("http") or {}
        params = []
        input_name = (op.get("input") or {}).get("shape")
        input_shape = shapes.shapes.get(input_name or "") or {}
        required = set(input_shape.get("required") or [])
        for member, ref in (input_shape.get("members") or {}).items():
            sch = shapes.schema(ref.get("shape"), depth=3, describe=0)
            desc = html_to_text(ref.get("documentation") or "")
            ptype = _SCALAR.get((shapes.shapes.get(ref.get("shape")) or {}).get("type"), sch.get("type", "object"))
            params.append(
                Param(
                    name=member,
                    location=_LOCATION.get(ref.get("location"), "body"),
                    type=ptype,
                    required=member in required,
                    description=desc,
                    enum=sch.get("enum"),
                    schema={k: v for k, v in sch.items() if k not in ("enum", "description")},
                )
            )
        output_name = (op.get("output") or {}).get("shape")
        out.append(
            Operation(
                provider="aws",
                api=api,
                api_title=str(meta.get("serviceFullName") or service),
                version=version,
                operation_id=name,
                kind="http",
                spec_format="botocore",
                description=html_to_text(op.get("documentation") or ""),
                method=http.get("method"),
                path=http.get("requestUri"),
                sdk_name=f"{sdk_client}.{_snake(name)}",
                parameters=params,
                request_schema=None,  # the parameters are the request (members of the input shape)
                response_schema=shapes.schema(output_name, depth=3) if output_name else None,
                examples=[_example(e) for e in examples.get(name, []) if isinstance(e, dict)],
                deprecated=bool(op.get("deprecated")),
            )
        )
    return out


def _example(e: dict) -> dict:
    out = {k: e[k] for k in ("title", "description", "input", "output") if e.get(k) is not None}
    if isinstance(out.get("description"), str):
        out["description"] = html_to_text(out["description"])
    return out
