"""ingest-apis readers without Spark: real botocore models and Google discovery documents (installed packages),
OpenAPI 3 / Swagger 2 edge cases ($ref cycles, remote refs, YAML), pydoc pages, and every kind of bad input."""

from __future__ import annotations

import gzip
import json
import os
import re
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pytest

from corpus import samples, schema
from corpus.apis import botocore_models, discovery, htmldocs, openapi
from corpus.apis.specs import Refs, html_to_text, parse, summarise
from corpus.apis.ingest import ingest_batch, is_companion, read_operations, tool_rows
from corpus.config import load_config, resolve_package_path
from corpus.spark.envelope import split
from corpus.web.ingest import TASK_SCHEMA
from tests.bombs import yaml_laughs

BOTOCORE = Path(resolve_package_path("pkg:botocore/data"))
DISCOVERY = Path(resolve_package_path("pkg:googleapiclient/discovery_cache/documents"))
CFG = load_config().ingest_apis
NAME_OK = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def _run(paths: list[Path], cfg=CFG):
    """The stage's batch function over files, as one task: (documents, rejects, counters, tool rows)."""
    pieces = [
        {
            "path": str(p),
            "size": p.stat().st_size,
            "source": "test",
            "part": "tool_doc",
            "start": 0,
            "end": p.stat().st_size,
        }
        for p in paths
    ]
    out = list(ingest_batch([pa.RecordBatch.from_pylist([{"task": 0, "pieces": pieces}], schema=TASK_SCHEMA)], cfg))
    docs, rejects, counts = split(out)
    table = pa.Table.from_batches(out)
    side = table.filter(pa.compute.equal(table["_kind"], "tool")).select(["_detail"])
    tools = pa.Table.from_batches(list(tool_rows(side.to_batches())), schema=schema.load("tool_doc").arrow)
    return docs, rejects, counts, tools


# ----------------------------------------------------------------------------------------- real specs


def test_botocore_s3_every_operation_with_structure():
    model = json.loads(gzip.decompress((BOTOCORE / "s3/2006-03-01/service-2.json.gz").read_bytes()))
    ops = botocore_models.operations(model, client="s3")
    assert len(ops) == len(model["operations"]) > 90
    put = next(o for o in ops if o.operation_id == "PutObject")
    assert (put.method, put.path, put.sdk_name) == ("PUT", "/{Bucket}/{Key+}", "s3.put_object")
    params = {p.name: p for p in put.parameters}
    assert params["Bucket"].location == "path" and params["Bucket"].required
    assert params["ContentType"].location == "header" and not params["ContentType"].required
    assert params["Body"].location == "body" and params["Body"].type == "blob"
    assert "STANDARD" in params["StorageClass"].enum
    assert "<p>" not in put.description and "Adds an object to a bucket" in put.description
    tool = put.tool_schema()["function"]
    assert tool["name"] == "s3_put_object" and {"Bucket", "Key"} <= set(tool["parameters"]["required"])
    assert tool["parameters"]["properties"]["Body"] == {
        "type": "string",
        "format": "byte",
        "description": params["Body"].description,
    }
    assert put.response_schema["properties"]["ETag"]["type"] == "string"


def test_botocore_examples_are_attached():
    d = BOTOCORE / "ec2/2016-11-15"
    model = json.loads(gzip.decompress((d / "service-2.json.gz").read_bytes()))
    examples = json.loads((d / "examples-1.json").read_text())
    ops = {o.operation_id: o for o in botocore_models.operations(model, examples, client="ec2")}
    with_examples = [n for n in examples["examples"] if examples["examples"][n]]
    assert with_examples and all(ops[n].examples for n in with_examples)
    assert "## Examples" in ops[with_examples[0]].markdown()


def test_discovery_nested_resources_and_refs():
    doc = json.loads((DISCOVERY / "drive.v3.json").read_text())
    ops = {o.operation_id: o for o in discovery.operations(doc)}
    assert len(ops) == discovery.count_methods(doc) == len(re.findall(r'"httpMethod"', json.dumps(doc)))
    create = ops["drive.files.create"]
    assert (create.method, create.sdk_name, create.version) == ("POST", "drive.files().create", "v3")
    body = next(p for p in create.parameters if p.location == "body")
    assert body.schema["title"] == "File" and "name" in body.schema["properties"]
    assert create.tool_schema()["function"]["parameters"]["properties"]["ignoreDefaultVisibility"]["default"] is False
    # resources nested three deep: projects.regions.clusters
    dataproc = json.loads((DISCOVERY / "dataproc.v1.json").read_text())
    ops = {o.operation_id: o for o in discovery.operations(dataproc)}
    assert len(ops) == len(re.findall(r'"httpMethod"', json.dumps(dataproc))) > 100
    assert (
        ops["dataproc.projects.regions.clusters.create"].sdk_name == "dataproc.projects().regions().clusters().create"
    )


@pytest.mark.parametrize("name", ["s3/2006-03-01/service-2.json.gz", "lambda/2015-03-31/service-2.json.gz"])
def test_tool_schemas_are_valid_openai_functions(name):
    model = json.loads(gzip.decompress((BOTOCORE / name).read_bytes()))
    for op in botocore_models.operations(model, client=name.split("/")[0]):
        fn = op.tool_schema()["function"]
        assert NAME_OK.match(fn["name"]) and fn["parameters"]["type"] == "object"
        assert set(fn["parameters"]["required"]) <= set(fn["parameters"]["properties"])


def test_versions_of_one_api_are_kept_apart():
    docs, rejects, counts, tools = _run([DISCOVERY / "drive.v2.json", DISCOVERY / "drive.v3.json"])
    versions = Counter(tools["version"].to_pylist())
    assert set(versions) == {"v2", "v3"} and rejects.num_rows == 0
    assert docs.num_rows == tools.num_rows == counts["records_in"]
    assert len(set(docs["id"].to_pylist())) == docs.num_rows  # v2 and v3 of one method: different ids


# ----------------------------------------------------------------------------------------- OpenAPI

PET = {
    "openapi": "3.0.3",
    "info": {"title": "Pet Store", "version": "1.2", "x-providerName": "example.com"},
    "servers": [{"url": "https://api.example.com/v1"}],
    "paths": {
        "/pets/{petId}": {
            "parameters": [{"$ref": "#/components/parameters/PetId"}],
            "get": {
                "operationId": "getPet",
                "summary": "Get a pet",
                "description": "Returns <b>one</b> pet.",
                "parameters": [{"name": "verbose", "in": "query", "schema": {"type": "boolean", "default": False}}],
                "responses": {
                    "200": {
                        "description": "ok",
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/Pet"},
                                "example": {"id": 1, "name": "Rex"},
                            }
                        },
                    }
                },
            },
            "put": {
                "operationId": "putPet",
                "requestBody": {"$ref": "#/components/requestBodies/PetBody"},
                "responses": {"204": {"description": "stored"}},
            },
        },
        "/remote": {
            "get": {
                "parameters": [{"$ref": "https://evil.example/params.yaml#/Limit"}],
                "responses": {"200": {"$ref": "http://127.0.0.1:1/never-fetched.json"}},
            }
        },
    },
    "components": {
        "parameters": {"PetId": {"name": "petId", "in": "path", "required": True, "schema": {"type": "integer"}}},
        "requestBodies": {
            "PetBody": {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Pet"}}},
            }
        },
        "schemas": {
            # a cycle: Pet -> owner (Person) -> pets (array of Pet); and Node refers to itself
            "Pet": {
                "type": "object",
                "required": ["name"],
                "properties": {
                    "id": {"type": "integer"},
                    "name": {"type": "string"},
                    "kind": {"type": "string", "enum": ["cat", "dog"]},
                    "owner": {"$ref": "#/components/schemas/Person"},
                    "tree": {"$ref": "#/components/schemas/Node"},
                },
            },
            "Person": {
                "type": "object",
                "properties": {"pets": {"type": "array", "items": {"$ref": "#/components/schemas/Pet"}}},
            },
            "Node": {"$ref": "#/components/schemas/Node"},
        },
    },
}


def test_openapi3_refs_cycles_and_remote_refs_refused():
    ops = {o.operation_id: o for o in openapi.operations(PET, "openapi-3")}
    assert set(ops) == {"getPet", "putPet", "GET /remote"}
    get = ops["getPet"]
    assert get.provider == "example.com" and get.base_url == "https://api.example.com/v1"
    assert get.description == "Get a pet\n\nReturns one pet."
    assert [(p.name, p.location, p.type, p.required) for p in get.parameters] == [
        ("verbose", "query", "boolean", False),
        ("petId", "path", "integer", True),
    ]
    assert get.response_schema["properties"]["owner"]["properties"]["pets"]["items"] == {
        "$recursive": "Pet",
        "type": "object",
    }
    assert get.examples == [{"response": {"id": 1, "name": "Rex"}}]
    put = ops["putPet"]
    body = next(p for p in put.parameters if p.location == "body")
    assert body.required and put.request_schema["required"] == ["name"]
    assert put.request_schema["properties"]["kind"]["enum"] == ["cat", "dog"]
    assert (
        "unresolved" in json.dumps(put.request_schema["properties"]["tree"])
        or put.request_schema["properties"]["tree"].get("type") == "object"
    )
    remote = ops["GET /remote"]
    assert any("remote $ref refused" in n and "evil.example" in n for n in remote.notes)
    assert remote.parameters == []
    json.dumps(put.tool_schema())  # serialisable: no cycles survive


def test_self_referencing_ref_chain_terminates():
    refs = Refs(PET)
    assert refs.deref({"$ref": "#/components/schemas/Node"}) is None  # a ref to itself never resolves
    out = summarise({"$ref": "#/components/schemas/Node"}, refs)
    assert out["type"] == "object"


def test_swagger2_yaml(tmp_path):
    spec = tmp_path / "swagger.yaml"
    spec.write_text("""
swagger: "2.0"
info: {title: Todo API, version: "2"}
host: todo.example.org
basePath: /api
paths:
  /todos:
    post:
      operationId: addTodo
      parameters:
        - {name: body, in: body, required: true, schema: {$ref: "#/definitions/Todo"}}
        - {name: X-Trace, in: header, type: string}
      responses:
        "201": {description: created, schema: {$ref: "#/definitions/Todo"}}
    get:
      parameters: [{name: limit, in: query, type: integer, default: 20, enum: [10, 20, 50]}]
      responses: {"200": {description: ok, schema: {type: array, items: {$ref: "#/definitions/Todo"}}}}
definitions:
  Todo:
    type: object
    required: [title]
    properties:
      title: {type: string, description: "What to do"}
      subtasks: {type: array, items: {$ref: "#/definitions/Todo"}}
""")
    fmt, ops = read_operations(str(spec), spec.read_bytes(), CFG)
    assert fmt == "swagger-2"
    ops = {o.operation_id: o for o in ops}
    add = ops["addTodo"]
    assert add.base_url == "https://todo.example.org/api" and add.api == "todo-api"
    assert add.request_schema["required"] == ["title"]
    assert add.request_schema["properties"]["subtasks"]["items"]["$recursive"] == "Todo"
    listing = ops["GET /todos"]
    limit = listing.parameters[0]
    assert (limit.type, limit.default, limit.enum) == ("integer", 20, ["10", "20", "50"])
    assert listing.response_schema["type"] == "array"


# ----------------------------------------------------------------------------------------- HTML docs


def test_pydoc_pages_yield_functions_with_signatures():
    page = samples.pydoc_page("json")
    ops, found = htmldocs.operations(page, "http://127.0.0.1:8000/json.html", "pydoc")
    assert found == "pydoc"
    by_name = {o.operation_id: o for o in ops}
    dumps = by_name["json.dumps"]
    params = {p.name: p for p in dumps.parameters}
    assert params["obj"].required and params["obj"].location == "argument"
    assert params["indent"].location == "keyword" and not params["indent"].required
    assert params["sort_keys"].type == "boolean" and params["sort_keys"].default is False
    assert "Serialize" in dumps.description
    assert "json.JSONEncoder.encode" in by_name  # methods of classes
    assert not any(n.rsplit(".", 1)[1].startswith("_") for n in by_name)


def test_sphinx_and_http_endpoint_pages():
    sphinx = (
        '<html><head><title>shutil</title></head><body><dl class="py function"><dt class="sig sig-object py"'
        ' id="shutil.copy"><span class="sig-name descname">copy</span>(<em class="sig-param">src</em>, '
        '<em class="sig-param">dst</em>, <em class="sig-param">*</em>, <em class="sig-param">'
        'follow_symlinks=True</em>)<a class="headerlink">¶</a></dt><dd><p>Copies the file src.</p></dd>'
        "</dl></body></html>"
    )
    ops, found = htmldocs.operations(sphinx, "https://docs.example/shutil.html", "docs")
    assert found == "sphinx" and ops[0].operation_id == "shutil.copy"
    assert [(p.name, p.required) for p in ops[0].parameters] == [
        ("src", True),
        ("dst", True),
        ("follow_symlinks", False),
    ]
    rest = (
        "<html><head><title>Users API</title></head><body><h2>GET /users/{id}</h2><p>Fetch one user.</p>"
        "<h2>Errors</h2><p>none</p><pre>DELETE /users/:id\nAuthorization: Bearer</pre></body></html>"
    )
    ops, found = htmldocs.operations(rest, "https://api.example/docs", "docs")
    assert found == "http" and [o.operation_id for o in ops] == ["GET /users/{id}", "DELETE /users/:id"]
    assert ops[0].description == "Fetch one user." and ops[0].parameters[0].name == "id"
    assert htmldocs.operations("<html><body><p>Just prose.</p></body></html>", None, "x") == ([], None)


def test_html_descriptions_become_clean_text():
    text = html_to_text(
        "<p>Adds an <code>Object</code>.</p> <ul><li><p>one &amp; two</p></li><li>three</li></ul>"
        "<note>Careful<br/>now</note><script>alert(1)</script>"
    )
    assert text == "Adds an `Object`.\n\n- one & two\n\n- three\n\nCareful\nnow"
    assert html_to_text("<p>broken <b>markup") == "broken markup"


# ----------------------------------------------------------------------------------------- bad input


def test_every_bad_input_is_rejected_with_its_reason_and_the_job_goes_on(tmp_path):
    cfg = CFG.model_copy(update={"max_spec_bytes": 200_000})
    good = tmp_path / "good.json"
    good.write_text(json.dumps(PET))
    cases = {
        "malformed.json": (b'{"openapi": "3.0.0", "paths": {', "malformed_json"),
        "malformed.yaml": (b"openapi: 3.0.0\npaths: {\n  /a: [unclosed\n", "malformed_yaml"),
        "future.yaml": (b"openapi: 4.0.0\ninfo: {title: x, version: '1'}\npaths: {}\n", "unknown_format"),
        "old.json": (b'{"swaggerVersion": "1.2", "apis": []}', "unknown_format"),
        "list.json": (b"[1, 2, 3]", "unknown_format"),
        "latin1.yaml": ("openapi: 3.0.0\ninfo: {title: Caf\u00e9, version: '1'}\n".encode("latin-1"), "not_utf8"),
        "empty.json": (b"", "empty_file"),
        "corrupt.json.gz": (b"\x1f\x8b\x08\x00garbage-not-deflate", "corrupt_gzip"),
        "huge.json": (b'{"openapi": "3.0.0", "x": "' + b"a" * 300_000 + b'"}', "too_large"),
        "bomb.json.gz": (gzip.compress(b" " * 5_000_000), "too_large"),
        "odd.json": (
            b'{"openapi": "3.0.0", "info": "not a mapping", "paths": {"/a": {"get": {"parameters": 5}}}}',
            "unreadable_spec",
        ),
        # billion laughs: 9 ** 9 strings once its aliases are expanded, from a few hundred bytes
        "laughs.yaml": (yaml_laughs(levels=9).encode(), "too_large"),
        "loop.yaml": (b"openapi: 3.0.0\ninfo: &i {title: x, version: '1', x-self: *i}\npaths: {}\n", "too_large"),
        "deep.json": (b'{"openapi": "3.0.0", "x": ' + b"[" * 50_000 + b"]" * 50_000 + b"}", "too_deep"),
        "deep.yaml": (b"openapi: 3.0.0\nx: " + b"[" * 50_000 + b"]" * 50_000 + b"\n", "too_deep"),
    }
    for name, (data, _) in cases.items():
        (tmp_path / name).write_bytes(data)
    docs, rejects, counts, tools = _run([good] + [tmp_path / n for n in cases], cfg)
    got = {Path(r["location"]).name: r["reason"] for r in rejects.to_pylist()}
    assert got == {n: reason for n, (_, reason) in cases.items()}
    assert all(r["detail"] for r in rejects.to_pylist())
    assert docs.num_rows == tools.num_rows == 3
    assert counts["records_in"] == docs.num_rows + rejects.num_rows


def test_yaml_alias_bomb_keeps_memory_bounded(tmp_path):
    from tests.bombs import RSS_PRINT, peak_rss_mb

    (tmp_path / "laughs.yaml").write_text(yaml_laughs(levels=9))
    code = f"""
from pathlib import Path
from tests.unit.test_apis import _run
docs, rejects, counts, tools = _run([Path({str(tmp_path / "laughs.yaml")!r})])
print(rejects.column("reason").to_pylist())
{RSS_PRINT}
"""
    peak, out = peak_rss_mb(code)
    assert "['too_large']" in out and peak < 600, peak


def test_yaml_with_ordinary_anchors_is_read():
    """Anchors that reuse a block a few times (as real specs do) are not an alias bomb."""
    spec = (
        "openapi: 3.0.0\ninfo: {title: Pets, version: '1'}\ncomponents:\n  x-common: &page\n"
        "    - {name: page, in: query, schema: {type: integer}}\n    - {name: size, in: query, schema: "
        "{type: integer}}\npaths:\n"
        + "".join(
            f"  /r{i}:\n    get:\n      operationId: list{i}\n"
            "      parameters: *page\n      responses: {'200': "
            "{description: ok}}\n"
            for i in range(40)
        )
    )
    assert len(parse(spec, "anchors.yaml")["paths"]) == 40


def test_botocore_companion_files_are_skipped_not_rejected():
    d = BOTOCORE / "s3/2006-03-01"
    files = sorted(p for p in d.iterdir() if p.is_file())
    docs, rejects, counts, tools = _run(files)
    assert rejects.num_rows == 0 and counts["companion_files_skipped"] == len(files) - 1
    assert is_companion("x/paginators-1.json") and not is_companion("x/service-2.json.gz")
    schema.validate_table(docs, schema.document())
    schema.validate_table(tools, schema.load("tool_doc"))
    row = tools.to_pylist()[0]
    assert row["spec_format"] == "botocore" and json.loads(row["tool_schema"])["type"] == "function"


def test_package_paths_resolve():
    assert os.path.isdir(resolve_package_path("pkg:botocore/data"))
    with pytest.raises(ValueError, match="not installed"):
        resolve_package_path("pkg:no_such_package_xyz/data")


def test_openapi31_nullable_anyof_is_shown_as_nullable():
    spec = {
        "openapi": "3.1.0",
        "info": {"title": "T", "version": "1"},
        "paths": {
            "/x": {
                "get": {
                    "operationId": "getX",
                    "parameters": [
                        {"name": "q", "in": "query", "schema": {"anyOf": [{"type": "string"}, {"type": "null"}]}},
                        {"name": "n", "in": "query", "schema": {"type": ["integer", "null"]}},
                        {"name": "u", "in": "query", "schema": {"anyOf": [{"type": "string"}, {"type": "integer"}]}},
                    ],
                    "responses": {"200": {"description": "ok"}},
                }
            }
        },
    }
    [op] = openapi.operations(spec, "openapi-3")
    text = op.markdown()
    assert "- `q` (string (nullable), query)" in text and "- `n` (integer (nullable), query)" in text
    assert "(any)" not in text.split("`u`")[0]
    props = op.tool_schema()["function"]["parameters"]["properties"]
    assert props["q"]["type"] == ["string", "null"] and props["n"]["type"] == ["integer", "null"]


def test_mcp_tools_list_results_are_read(tmp_path):
    """A saved MCP tools/list result (the JSON-RPC response, as a client logs it) and a bare one."""
    tools = [
        {
            "name": "get_weather",
            "title": "Weather Information Provider",
            "description": "Get current weather information for a location",
            "inputSchema": {
                "type": "object",
                "properties": {
                    "location": {"type": "string", "description": "City name or zip code"},
                    "units": {"type": "string", "enum": ["metric", "imperial"], "default": "metric"},
                },
                "required": ["location"],
            },
            "annotations": {"readOnlyHint": True},
        },
        {
            "name": "list_files",
            "description": "List files in a folder",
            "inputSchema": {"type": "object", "properties": {"path": {"type": "string"}}},
        },
    ]
    rpc = tmp_path / "weather-server.json"
    rpc.write_text(json.dumps({"jsonrpc": "2.0", "id": 1, "result": {"tools": tools}}))
    bare = tmp_path / "files.json"
    bare.write_text(json.dumps({"tools": tools[1:], "serverInfo": {"name": "fs", "version": "0.3.0"}}))
    docs, rejects, counts, tools_table = _run([rpc, bare])
    assert rejects.num_rows == 0 and counts["specs:mcp"] == 2 and counts["operations:mcp"] == 3
    rows = {(r["api"], r["operation_id"]): r for r in tools_table.to_pylist()}
    weather = rows[("weather-server", "get_weather")]
    fn = json.loads(weather["tool_schema"])["function"]
    assert fn["name"] == "get_weather" and fn["parameters"]["required"] == ["location"]
    assert fn["parameters"]["properties"]["units"]["enum"] == ["metric", "imperial"]
    assert weather["notes"] == ["readOnlyHint: True"] and weather["spec_format"] == "mcp"
    assert rows[("fs", "list_files")]["version"] == "0.3.0"
