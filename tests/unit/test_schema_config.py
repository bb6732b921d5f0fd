import pyarrow as pa
import pytest

from corpus import schema
from corpus.config import ConfigError, load_config, parse_config, reference_markdown
from corpus.ids import content_id, normalize_text, text_hash


def test_every_schema_file_loads_into_arrow_and_spark():
    for name in ("document", "rejects", "manifest"):
        s = schema.load(name)
        assert s.version >= 1 and s.arrow.names == s.names
        assert [f.name for f in s.spark.fields] == s.names


def test_document_schema_has_the_issue_fields():
    names = schema.document().names
    for f in ("id", "part", "source", "url", "lang", "lang_score", "text", "metadata", "signals", "dedup_cluster"):
        assert f in names
    assert schema.document().field("url").nullable and not schema.document().field("text").nullable
    assert schema.document().arrow.field("signals").type == pa.list_(
        pa.struct([("key", pa.string()), ("value", pa.float64())])
    )


def test_validate_table_catches_wrong_columns_types_nulls_and_enums():
    s = schema.document()
    good = pa.Table.from_pylist(
        [{"id": "a", "part": "text", "source": "s", "text": "t", "metadata": "{}"}], schema=s.arrow
    )
    schema.validate_table(good, s)
    with pytest.raises(schema.SchemaError, match="columns"):
        schema.validate_table(good.drop_columns(["url"]), s)
    bad_part = good.set_column(1, "part", pa.array(["novel"]))
    with pytest.raises(schema.SchemaError, match="outside"):
        schema.validate_table(bad_part, s)
    nulls = good.set_column(s.names.index("text"), pa.field("text", pa.string()), pa.array([None], pa.string()))
    with pytest.raises(schema.SchemaError, match="not nullable"):
        schema.validate_table(nulls, s)
    wrong = good.set_column(s.names.index("lang_score"), "lang_score", pa.array(["x"]))
    with pytest.raises(schema.SchemaError, match="type"):
        schema.validate_table(wrong, s)


def test_validate_json_checks_manifest_shape():
    m = schema.load("manifest")
    ok = {
        "schema": "manifest",
        "schema_version": 3,
        "document_schema_version": 3,
        "producer": "corpus",
        "name": "x",
        "output": "stage1",
        "rows": 1,
        "bytes": 2,
        "tokens": 5,
        "unique_documents": 1,
        "unique_tokens": 5,
        "tokenizer": "tiktoken:x",
        "tokenizer_sha256": "00",
        "rows_by_part": {"text": 1},
        "tokens_by_part": {"text": 5},
        "parts": {"text": {"documents": 1, "rows": 1, "epochs": 1.0, "tokens": 5, "unique_tokens": 5}},
        "composition": {"target": {"text": 1.0}, "achieved": {"text": 1.0}},
        "shards": [
            {
                "path": "a.parquet",
                "rows": 1,
                "bytes": 2,
                "sha256": "00",
                "tokens": 5,
                "rows_by_part": {"text": 1},
                "tokens_by_part": {"text": 5},
            }
        ],
        "write": {},
        "config": {},
    }
    schema.validate_json(ok, m)
    with pytest.raises(schema.SchemaError, match="shards\\[0\\].rows"):
        schema.validate_json({**ok, "shards": [{**ok["shards"][0], "rows": "1"}]}, m)
    with pytest.raises(schema.SchemaError, match="unknown keys"):
        schema.validate_json({**ok, "extra": 1}, m)


def test_config_defaults_and_default_yaml_validate():
    cfg = load_config("configs/default.yaml")
    assert cfg.filter.lang.min_score == 0.65 and cfg.run.output == "out"
    assert cfg.inputs.web[0].part == "tool_doc" and cfg.inputs.text[0].source_name == "web-pool"


@pytest.mark.parametrize(
    "data, message",
    [
        ({"filter": {"lang": {"min_score": 1.5}}}, "filter.lang.min_score"),
        ({"filter": {"lang": {"bogus": 1}}}, "unknown key 'filter.lang.bogus'"),
        ({"nonsense": {}}, "unknown key 'nonsense'"),
        ({"ingest-web": {"max_page_bytes": "lots"}}, "ingest-web.max_page_bytes"),
        ({"inputs": {"text": [{"path": "x", "part": "poetry"}]}}, "inputs.text.0.part"),
        ({"dedup": {"keep": "random"}}, "dedup.keep"),
        ({"run": {"name": "has space"}}, "run.name"),
    ],
)
def test_config_errors_name_the_key(data, message):
    with pytest.raises(ConfigError, match=message.replace(".", "\\.").replace("'", ".")):
        parse_config(data)


def test_config_file_errors_name_the_file(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("filter: [unclosed")
    with pytest.raises(ConfigError, match=str(p)):
        load_config(p)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")


def test_byte_sizes_accept_units():
    cfg = parse_config({"write": {"row_group_bytes": "64MiB"}})
    assert int(cfg.write.row_group_bytes) == 64 * 1024 * 1024


def test_docs_carry_the_current_config_reference():
    with open("docs/config.md", encoding="utf-8") as f:
        assert reference_markdown() in f.read(), "docs/config.md's config reference is stale: run `make docs`"


def test_docs_links_resolve():
    """Every relative link of the README and docs/ names a file that exists (and an anchor its page has)."""
    import re
    from pathlib import Path

    def anchors(page: Path) -> set[str]:
        text, fence, out = page.read_text("utf-8"), False, set()
        for line in text.splitlines():
            fence = fence != line.startswith("```")
            if not fence and re.match(r"^#{1,6} ", line):
                name = line.split(" ", 1)[1].strip().lower()
                out.add(re.sub(r"[^\w\- ]", "", name).replace(" ", "-"))
        return out

    pages = [Path("README.md"), *sorted(Path("docs").rglob("*.md"))]
    broken = []
    for page in pages:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text("utf-8")):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page.resolve()
            if not dest.exists():
                broken.append(f"{page}: {target}")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                broken.append(f"{page}: {target} (no such heading)")
            elif Path.cwd() not in dest.parents and dest != Path.cwd():
                broken.append(f"{page}: {target} (outside the repository)")
    assert not broken, broken
    assert Path("README.md").stat().st_size <= 15_000


def test_ids_are_content_hashes():
    assert content_id("hello", "http://a") == content_id("hello", "http://a")
    assert content_id("hello", "http://a") != content_id("hello", "http://b")
    assert len(content_id("x")) == 32
    assert normalize_text("  Héllo\n\tWORLD ") == "héllo world"
    assert text_hash("Hello  World") == text_hash("hello world\n")
    assert text_hash("hello world") != text_hash("hello, world")
    # NFKC maps compatibility forms and Unicode spaces; whitespace runs (incl. \v) collapse; a batch with
    # non-ASCII texts is normalised the same as each text alone
    assert normalize_text("\u00a0ﬁle\u2003NAME\x0b\u3000x ") == "file name x"
    import pyarrow as pa

    from corpus.ids import text_hashes

    texts = ["Plain ASCII  text", "ＦＵＬＬ width", None, "", "tab\tand\nnewline"]
    hashes = text_hashes(pa.array(texts))
    assert hashes.type == pa.binary() and {len(h) for h in hashes.to_pylist()} == {16}
    assert len(set(hashes.to_pylist())) == 4  # "" and None are one text
    assert [h.hex() for h in hashes.to_pylist()] == [text_hash(t or "") for t in texts]
    assert [h.hex() for h in text_hashes(pa.array(texts).slice(1)).to_pylist()] == [
        text_hash(t or "") for t in texts[1:]
    ]
    # only the texts that need it are normalised (ASCII ones and those already NFKC are kept): the result equals
    # NFKC of the whole batch, in order, for a mix of all three kinds (and a slice of it)
    import pyarrow.compute as pc

    from corpus.ids import _nfkc

    mixed = pa.array(["ascii", "ﬁle ①", "héllo", None, "Ｆｕｌｌ", "naïve café", "x\u00a0y", "ok"])
    for arr in (mixed, mixed.slice(2)):
        assert _nfkc(arr.fill_null("")).to_pylist() == pc.utf8_normalize(arr.fill_null(""), "NFKC").to_pylist()
    assert _nfkc(pa.array(["héllo"])).to_pylist() == ["héllo"] and _nfkc(pa.array(["ﬁ"])).to_pylist() == ["fi"]


def test_driver_java_options_and_the_class_archive(tmp_path, monkeypatch):
    """The driver JVM's options: local-mode options for local masters only, the class archive when `auto` finds
    one beside the interpreter (none when absent), an explicit archive that must exist, none at all when off."""
    from corpus.config import SparkSection
    from corpus.spark import session
    from corpus.spark.session import EnvironmentProblem, driver_java_options

    monkeypatch.delenv("FORGE_JVM_OPTIONS", raising=False)
    monkeypatch.setattr(session.sys, "prefix", str(tmp_path))
    cfg = SparkSection()
    assert driver_java_options(cfg, "local[2]") == cfg.local_java_options, "no archive built: none used"
    assert driver_java_options(cfg, "spark://h:7077") == ""
    (tmp_path / session.ARCHIVE_NAME).write_bytes(b"x")
    archive = f"-XX:SharedArchiveFile={tmp_path / session.ARCHIVE_NAME}"
    assert driver_java_options(cfg, "local[2]") == f"{cfg.local_java_options} {archive}"
    assert driver_java_options(cfg, "spark://h:7077") == archive, "the driver of a cluster run starts from it too"
    assert driver_java_options(SparkSection(class_archive=""), "local[2]") == cfg.local_java_options
    with pytest.raises(EnvironmentProblem, match="nowhere.jsa"):
        driver_java_options(SparkSection(class_archive=str(tmp_path / "nowhere.jsa")), "local[2]")
    monkeypatch.setenv("FORGE_JVM_OPTIONS", "-XX:ArchiveClassesAtExit=/tmp/a.jsa")
    assert (
        driver_java_options(SparkSection(class_archive="", local_java_options=""), "local[1]")
        == "-XX:ArchiveClassesAtExit=/tmp/a.jsa"
    )


def test_docs_carry_the_current_stage_registry():
    """docs/stages.md's table is generated from the registry (corpus.stages), one row per stage in run order."""
    from corpus.stages import ORDER, registry_markdown

    table = registry_markdown()
    assert [line.split("|")[2].strip().split("]")[0].strip("[`") for line in table.splitlines()[2:]] == ORDER
    with open("docs/stages.md", encoding="utf-8") as f:
        assert table in f.read(), "docs/stages.md's stage registry is stale: run `make docs`"


def test_docs_have_a_current_page_per_stage():
    """docs/stages/<stage>.md is generated from the registry and the config reference, one per stage, no other."""
    from pathlib import Path

    from corpus.stages import STAGES, stage_page

    pages = Path("docs/stages")
    assert sorted(p.stem for p in pages.glob("*.md")) == sorted(STAGES)
    for name in STAGES:
        assert (pages / f"{name}.md").read_text("utf-8") == stage_page(name), (
            f"docs/stages/{name}.md is stale: make docs"
        )
    assert "| `dedup.minhash.threshold` |" in stage_page("dedup")  # its section's settings are on its page
