"""Each stage alone on Spark (local[2]), on real data and on bad input; outputs checked against the schemas."""

from __future__ import annotations

import json
import os
from collections import Counter

import pytest

from corpus.config import InputSpec, parse_config
from corpus.pipeline import run_single
from corpus.signals import as_dict
from tests.conftest import assert_stage_output

pytestmark = pytest.mark.spark


def _cfg(**sections):
    return parse_config(sections)


def test_ingest_web_real_pages(spark, sample_dir, tmp_path):
    counts = json.loads((sample_dir / "_SUCCESS").read_text())
    out = tmp_path / "ingest-web"
    stats = run_single(
        spark, _cfg(), "ingest-web", [InputSpec(path=str(sample_dir / "web"), source="pydoc")], str(out), force=False
    )
    docs, rejects, stats = assert_stage_output(out, stats)
    assert stats["rows_in"] == counts["pydoc_pages"] and docs.num_rows == counts["pydoc_pages"]
    assert stats["counters"]["warc_records.response"] == counts["warc_pages"]
    assert stats["counters"]["warc_records.request"] == counts["warc_pages"]
    rows = docs.to_pylist()
    from_warc = [r for r in rows if r["url"]]
    assert len(from_warc) == counts["warc_pages"] and len(rows) - len(from_warc) == counts["html_files"]
    assert all(r["title"] for r in rows)
    assert all(r["source"] == "pydoc" and r["part"] == "text" and r["lang"] is None for r in rows)
    meta = json.loads(from_warc[0]["metadata"])
    assert meta["encoding"] == "utf-8" and meta["http_status"] == 200 and "@" in meta["location"]


def test_ingest_web_survives_every_bad_input(spark, bad_web_dir, tmp_path):
    out = tmp_path / "ingest-web"
    stats = run_single(spark, _cfg(), "ingest-web", [InputSpec(path=str(bad_web_dir))], str(out), force=False)
    docs, rejects, stats = assert_stage_output(out, stats)
    by_file = Counter((r["location"].split("@")[0].rsplit("/", 1)[-1], r["reason"]) for r in rejects.to_pylist())
    assert by_file == Counter(
        {
            ("empty.warc.gz", "empty_file"): 1,
            ("empty.html", "empty_file"): 1,
            ("notwarc.warc.gz", "corrupt_file"): 1,
            ("random.warc", "corrupt_file"): 1,
            ("truncated.warc.gz", "truncated_record"): 1,
            ("corrupt-middle.warc.gz", "corrupt_record"): 1,
            ("nonhtml.warc.gz", "not_html"): 2,
            ("binary.html", "not_html"): 1,
            ("garbage.html", "bad_encoding"): 1,
            ("big.warc.gz", "too_large"): 1,
            ("big.html", "too_large"): 1,
        }
    )
    kept = {(r["url"] or json.loads(r["metadata"])["location"].rsplit("/", 1)[-1]): r for r in docs.to_pylist()}
    assert {
        "http://t/good",
        "http://t/trunc0",
        "http://t/trunc1",
        "http://t/odd",
        "latin1.html",
        "invalid-utf8.html",
    } <= set(kept)
    assert "http://t/trunc2" in kept, "the record after the corrupt member must be recovered"
    assert "café crème" in kept["latin1.html"]["text"]
    assert json.loads(kept["latin1.html"]["metadata"])["encoding_from"] == "meta"


def test_ingest_text_stage(spark, text_inputs, tmp_path):
    out = tmp_path / "ingest-text"
    stats = run_single(
        spark, _cfg(), "ingest-text", [InputSpec(path=str(text_inputs), source="readmes")], str(out), force=False
    )
    docs, rejects, stats = assert_stage_output(out, stats)
    assert docs.num_rows == 30  # 20 jsonl + 5 gz + 5 parquet
    assert Counter(rejects.column("reason").to_pylist()) == Counter(
        {"malformed_json": 2, "invalid_utf8": 2, "missing_text": 2, "bad_text_type": 1, "empty_text": 1}
    )


def test_filter_and_dedup_stages(spark, sample_dir, tmp_path):
    ing = tmp_path / "ingest-text"
    readmes = str(sample_dir / "text" / "package-readmes.jsonl")  # no near-duplicates among them
    run_single(spark, _cfg(), "ingest-text", [InputSpec(path=readmes)], str(ing), False)
    # the same file twice: every document gets an exact duplicate with a different source
    ing2 = tmp_path / "ingest-text-2"
    run_single(spark, _cfg(), "ingest-text", [InputSpec(path=readmes, source="again")], str(ing2), False)
    filt = tmp_path / "filter"
    run_single(spark, _cfg(), "filter", [str(ing), str(ing2)], str(filt), False)
    docs, rejects, stats = assert_stage_output(filt)
    assert docs.num_rows > 0 and set(docs.column("lang").to_pylist()) == {"en"}
    assert all(as_dict(s)["words"] > 0 for s in docs.column("signals").to_pylist())
    assert all(r["text"] and r["detail"] for r in rejects.to_pylist()), "filter rejects keep text and detail"
    dd = tmp_path / "dedup"
    run_single(spark, _cfg(), "dedup", [str(filt)], str(dd), False)
    kept, dropped, stats = assert_stage_output(dd)
    assert kept.num_rows * 2 == docs.num_rows and set(dropped.column("reason").to_pylist()) == {"exact_duplicate"}
    kept_ids = set(kept.column("id").to_pylist())
    assert set(dropped.column("duplicate_of").to_pylist()) <= kept_ids
    assert kept.column("dedup_cluster").to_pylist() == kept.column("id").to_pylist()


def test_uncommitted_input_is_refused(spark, tmp_path):
    from corpus.stage import StageError

    (tmp_path / "half" / "data").mkdir(parents=True)
    with pytest.raises(StageError, match="not committed"):
        run_single(spark, _cfg(), "filter", [str(tmp_path / "half")], str(tmp_path / "f"), False)


def test_time_limit_is_enforced_inside_spark_workers(spark, tmp_path):
    """A page over the limit becomes a `timeout` reject in the Spark stage; the other page is kept."""
    from corpus.web.warc import write_warc

    slow = (
        "<html><body>"
        + "".join(f"<div><p>Paragraph {i} with some words in it.</p></div>" for i in range(30000))
        + "</body></html>"
    ).encode()
    fine = (
        b"<html><body><article><p>"
        + b"A short page with a few plain words in one paragraph. " * 5
        + b"</p></article></body></html>"
    )
    (tmp_path / "in").mkdir()
    write_warc(
        str(tmp_path / "in" / "pages.warc.gz"),
        [("http://t/slow", slow, "text/html"), ("http://t/fine", fine, "text/html")],
    )
    out = tmp_path / "out"
    run_single(
        spark,
        _cfg(**{"ingest-web": {"time_limit_seconds": 0.3}}),
        "ingest-web",
        [InputSpec(path=str(tmp_path / "in"))],
        str(out),
        False,
    )
    docs, rejects, stats = assert_stage_output(out)
    assert docs.column("url").to_pylist() == ["http://t/fine"]
    assert rejects.column("reason").to_pylist() == ["timeout"]
    assert "time_limit_not_enforced" not in stats["counters"]


def _ingest_apis(spark, inputs, tmp_path):
    """(documents, rejects, stats, tools) of ingest-apis on ``inputs``, its outputs validated: the stage's
    invariants, the typed `tools/` dataset's schema, one typed record per document."""
    import pyarrow.parquet as pq

    from corpus import schema

    out = tmp_path / "ingest-apis"
    stats = run_single(spark, _cfg(), "ingest-apis", inputs, str(out), force=False)
    docs, rejects, stats = assert_stage_output(out, stats)
    tools = pq.read_table(str(out / "tools"))
    schema.validate_table(tools, schema.load("tool_doc"), "tools")
    assert sorted(tools["id"].to_pylist()) == sorted(docs["id"].to_pylist())
    return docs, rejects, stats, tools


def test_ingest_apis_real_specs_pages_and_bad_input(spark, sample_dir, tmp_path):
    """botocore models (with their companion files), a discovery document, pydoc pages in WARCs, and a broken
    spec: one tool_doc per operation, the typed tools dataset matching the documents one to one."""
    import gzip as gz

    from corpus.apis import discovery
    from corpus.config import resolve_package_path

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "broken.yaml").write_text("openapi: 3.0.0\npaths: {\n")
    boto = resolve_package_path("pkg:botocore/data/sqs")
    disc = resolve_package_path("pkg:googleapiclient/discovery_cache/documents/tasks.v1.json")
    inputs = [
        InputSpec(path=boto, source="botocore", part="tool_doc"),
        InputSpec(path=disc, source="google", part="tool_doc"),
        InputSpec(path=str(sample_dir / "web"), source="pydoc", part="tool_doc"),
        InputSpec(path=str(bad), source="bad", part="tool_doc"),
    ]
    docs, rejects, stats, tools = _ingest_apis(spark, inputs, tmp_path)
    c = stats["counters"]
    import glob
    import json as js

    sqs_ops = sum(
        len(js.loads(gz.decompress(open(f, "rb").read()))["operations"])
        for f in glob.glob(f"{boto}/*/service-2.json.gz")
    )
    assert c["operations:botocore"] == sqs_ops
    assert c["operations:discovery"] == discovery.count_methods(js.loads(open(disc).read()))
    assert c["operations:html"] > 100 and c["pages_with_operations:pydoc"] > 10
    assert [(r["reason"], r["source"]) for r in rejects.to_pylist()] == [("malformed_yaml", "bad")]
    assert set(docs["part"].to_pylist()) == {"tool_doc"}
    by_format = Counter(tools["spec_format"].to_pylist())
    assert set(by_format) == {"botocore", "discovery", "html"}


def test_ingest_apis_python_units_and_an_optional_missing_input(spark, tmp_path):
    """inputs.python on Spark: a folder of a wheel, an sdist and a damaged archive (one unit each), plus the
    standard library's json package; an optional input that does not exist is skipped, not an error."""
    from corpus.config import PythonInputSpec, resolve_package_path
    from tests.unit.test_pysource import _sdist, _wheel

    wheels = tmp_path / "wheels"
    wheels.mkdir()
    _wheel(wheels / "toy_pkg-1.2.0-py3-none-any.whl")
    _sdist(wheels / "other_pkg-0.1.tar.gz")
    (wheels / "broken-1.0-py3-none-any.whl").write_bytes(b"PK\x03\x04 not a zip")
    stdlib_json = os.path.join(resolve_package_path("python:stdlib"), "json")
    inputs = [
        PythonInputSpec(path=str(wheels), source="wheels"),
        PythonInputSpec(path=stdlib_json, source="py"),
        InputSpec(path=str(tmp_path / "not-there"), source="npm-specs", part="tool_doc", optional=True),
    ]
    docs, rejects, stats, tools = _ingest_apis(spark, inputs, tmp_path)
    assert stats["extra"]["python_units"] == 4 and stats["counters"]["python_units"] == 3
    assert [(r["reason"], r["source"]) for r in rejects.to_pylist()] == [("bad_archive", "wheels")]
    ops = Counter(zip(tools["source"].to_pylist(), tools["provider"].to_pylist()))
    # the wheel and the sdist hold one version of one package: the same three records, with the same ids (left to
    # dedup)
    toy = [i for i, p in zip(tools["id"].to_pylist(), tools["provider"].to_pylist()) if p == "toy-pkg"]
    assert ops[("wheels", "toy-pkg")] == 6 and len(set(toy)) == 3
    assert ops[("py", "python")] >= 10 and "json.dumps" in tools["operation_id"].to_pylist()
    assert all(not p.startswith("/") for p in tools["spec_file"].to_pylist())


def test_crawl_stage_two_hosts_then_ingest(spark, tmp_path):
    """Two real local sites (two hosts: two tasks), crawled by the Spark stage into WARCs that ingest-web and
    ingest-apis then read; a rerun resumes and fetches nothing again."""
    import pyarrow.parquet as pq

    from corpus import samples, schema
    from tests.unit.test_crawl import Site

    root = tmp_path / "site"
    root.mkdir()
    for m in ("json", "csv", "textwrap", "shutil"):
        (root / f"{m}.html").write_text(samples.pydoc_page(m), "utf-8")
    samples.write_site_index(root)
    sites = [Site(root), Site(root)]
    try:
        seeds = tmp_path / "seeds.txt"
        seeds.write_text("# two hosts\n" + "\n".join(s.url + "/index.html" for s in sites) + "\n")
        cfg = _cfg(crawl={"delay_seconds": 0.01, "max_pages": 10, "allow_private_seeds": True})
        out = tmp_path / "crawl"
        stats = run_single(spark, cfg, "crawl", [str(seeds)], str(out), force=False)
        log = pq.read_table(str(out / "log"))
        schema.validate_table(log, schema.load("crawl_log"), "crawl log")
        outcomes = Counter(log["outcome"].to_pylist())
        assert stats["rows_out"] == outcomes["archived"] == 10  # 5 per host: the total split evenly
        assert stats["rows_in"] == stats["rows_out"] + stats["rows_rejected"] == log.num_rows
        assert stats["counters"]["hosts"] == 2 and outcomes["robots_disallowed"] == 2
        assert all(s.hits["/private/notes.html"] == 0 for s in sites)
        archive = tmp_path / "crawl-warc"
        web = run_single(
            spark,
            _cfg(),
            "ingest-web",
            [InputSpec(path=str(archive), source="crawl")],
            str(tmp_path / "web"),
            force=False,
        )
        assert web["rows_out"] == 10
        apis = run_single(
            spark,
            _cfg(),
            "ingest-apis",
            [InputSpec(path=str(archive), source="crawl")],
            str(tmp_path / "apis"),
            force=False,
        )
        assert apis["counters"]["operations:html"] > 20
        # rerun (forced): nothing archived is fetched again
        for s in sites:
            s.requests.clear()
        again = run_single(
            spark,
            _cfg(crawl={"delay_seconds": 0.01, "max_pages": 12, "allow_private_seeds": True}),
            "crawl",
            [str(seeds)],
            str(out),
            force=True,
        )
        archived = {u for u, o in zip(log["url"].to_pylist(), log["outcome"].to_pylist()) if o == "archived"}
        fetched = {s.url + p for s in sites for _, p, _ in s.requests}
        assert not (fetched & archived) and again["counters"]["resumed_hosts"] == 2
    finally:
        for s in sites:
            s.close()


def test_rejects_counted_by_reason_while_written(spark, tmp_path):
    """With the stage's reasons listed, rejects are counted during their write (an observation); a reason
    outside the list makes the count give up (None), so the runner reads the rejects back instead."""
    from pyspark.sql.types import StructType

    from corpus import schema
    from corpus.stage import REJECTS, StageContext, count_rows, write_rejects

    fields = [f for f in schema.rejects().spark.fields if f.name != "stage"]
    rows = [
        tuple(str(k) if f.name == "id" else r if f.name == "reason" else None for f in fields)
        for k, r in enumerate(["exact_duplicate"] * 3 + ["near_duplicate"] * 2)
    ]
    df = spark.createDataFrame(rows, StructType(fields))

    def ctx(folder):
        return StageContext(
            name="dedup",
            spark=spark,
            config=parse_config({}),
            inputs=[],
            output=str(tmp_path / "out"),
            tmp=str(tmp_path / folder),
        )

    got = write_rejects(ctx("a"), df, ("exact_duplicate", "near_duplicate", "never_given"))
    assert got == {"exact_duplicate": 3, "near_duplicate": 2} and count_rows(ctx("a").path(REJECTS)) == 5
    assert write_rejects(ctx("b"), df, ("exact_duplicate",)) is None  # near_duplicate is not listed
    assert count_rows(ctx("b").path(REJECTS)) == 5


def _only_rejects(batches):
    """A batch function that rejects every input row (its task writes no document file)."""
    from corpus.spark.envelope import Emitter

    for batch in batches:
        out = Emitter("probe")
        for n in batch.column("id").to_pylist():
            out.reject("odd" if n % 2 else "even", f"row {n}", id=str(n))
        out.count("records_in", batch.num_rows)
        yield out.batch()


def test_task_side_envelope_writes_count_and_keep_the_schema(spark, tmp_path):
    """write_envelope: one job whose tasks write their own files; counts come back per task, and a dataset
    without rows still gets a file with its schema."""
    import pyarrow.parquet as pq

    from corpus import schema
    from corpus.stage import DATA, REJECTS, StageContext, write_envelope

    ctx = StageContext(
        name="probe",
        spark=spark,
        config=parse_config({}),
        inputs=[],
        output=str(tmp_path / "out"),
        tmp=str(tmp_path / "tmp"),
    )
    outcome = write_envelope(ctx, spark.range(0, 101, 1, 4), _only_rejects, extra={"k": 1})
    assert (outcome.rows_in, outcome.rows_out, outcome.rejected) == (101, 0, {"even": 51, "odd": 50})
    assert outcome.extra == {"k": 1} and outcome.counters == {"records_in": 101}
    docs = pq.read_table(ctx.path(DATA))
    assert docs.num_rows == 0 and docs.schema == schema.document().arrow
    rejects = pq.read_table(ctx.path(REJECTS))
    assert sorted(int(i) for i in rejects.column("id").to_pylist()) == list(range(101))
    assert set(rejects.column("stage").to_pylist()) == {"probe"}
    assert sorted(os.listdir(ctx.path(REJECTS))) == [f"part-{k:05d}.zstd.parquet" for k in range(4)]


def _task_of(batches):
    import pyarrow as pa
    from pyspark import TaskContext

    task = TaskContext.get().partitionId()
    for b in batches:
        yield pa.RecordBatch.from_arrays(
            [b.column("path"), b.column("row_group"), pa.array([task] * b.num_rows)],
            names=["path", "row_group", "task"],
        )


def test_row_groups_make_balanced_runs_of_consecutive_row_groups(spark, tmp_path):
    """datasets.row_groups: every row group once, in file order, cut into per_core × cores tasks of consecutive
    row groups with about equal bytes (one big row group does not share its task)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from corpus.spark import datasets

    texts = [("x" * 2000 if k < 40 else "y" * 50) + str(k) for k in range(200)]
    table = pa.table({"text": texts})
    pq.write_table(table, str(tmp_path / "a.parquet"), row_group_size=40)  # one large row group, then small ones
    pq.write_table(table.slice(40), str(tmp_path / "b.parquet"), row_group_size=10)
    df = datasets.row_groups(spark, str(tmp_path), per_core=2)
    rows = df.mapInArrow(_task_of, "path string, row_group int, task long").collect()
    order = [(r["path"].rsplit("/", 1)[-1], r["row_group"]) for r in rows]
    assert order == [("a.parquet", k) for k in range(5)] + [("b.parquet", k) for k in range(16)]
    tasks = [r["task"] for r in rows]
    assert tasks[0] == 0 and tasks[-1] == 2 * spark.sparkContext.defaultParallelism - 1
    assert all(b - a in (0, 1) for a, b in zip(tasks, tasks[1:]))
    assert tasks.count(0) == 1, "the large row group is a task of its own"
    with pytest.raises(ValueError, match="tasks must number"):
        datasets.task_rows(spark, pa.table({"x": [1, 2, 3]}), 2, tasks=[0, 2, 2])


@pytest.mark.parametrize("closure_bytes", [1 << 20, 0])
def test_map_tasks_gives_each_task_its_own_rows_in_order(spark, monkeypatch, closure_bytes):
    """datasets.map_tasks, by the closure (a small task list) and by task_rows (limit 0): every task sees
    exactly its run of rows, in order, list columns intact; bad task numbers are refused either way."""
    import pyarrow as pa

    from corpus.spark import datasets

    monkeypatch.setattr(datasets, "CLOSURE_TASKS_BYTES", closure_bytes)
    table = pa.table(
        {"path": [f"p{i}" for i in range(7)], "batches": pa.array([[i, i + 1] for i in range(7)], pa.list_(pa.int32()))}
    )
    tasks = [0, 0, 1, 2, 2, 2, 3]

    def seen(batches):
        from pyspark import TaskContext

        task = TaskContext.get().partitionId()
        for b in batches:
            yield pa.record_batch(
                {
                    "task": pa.array([task] * b.num_rows, pa.int64()),
                    "path": b.column("path"),
                    "first": pa.array([x[0] for x in b.column("batches").to_pylist()], pa.int64()),
                }
            )

    rows = datasets.map_tasks(spark, table, seen, "task long, path string, first long", 4, tasks).collect()
    assert [(r["task"], r["path"], r["first"]) for r in sorted(rows, key=lambda r: r["path"])] == [
        (t, f"p{i}", i) for i, t in enumerate(tasks)
    ]
    with pytest.raises(ValueError, match="tasks must number"):
        datasets.map_tasks(spark, table, seen, "task long, path string, first long", 4, [0, 2, 2, 2, 3, 3, 3])


def test_jvm_class_archive_is_built_checked_and_refused_when_truncated(tmp_path):
    """corpus.spark.jvm_archive: a real archive made by a JVM that runs the workload, which a second JVM starts
    from (-Xshare:on fails otherwise); a truncated copy, which would crash a JVM, fails that check."""
    from corpus.spark import jvm_archive

    out = tmp_path / "forge-spark.jsa"
    assert jvm_archive.build(str(out)) is True
    assert out.stat().st_size > 10_000_000 and not list(tmp_path.glob("*.tmp-*"))
    truncated = tmp_path / "truncated.jsa"
    truncated.write_bytes(out.read_bytes()[:1_000_000])
    assert jvm_archive._run("--check", f"-XX:SharedArchiveFile={truncated} -Xshare:on").returncode != 0
    assert jvm_archive._run("--check", f"-XX:SharedArchiveFile={out} -Xshare:on").returncode == 0


def test_ingest_web_reads_wet_and_rejects_other_files(spark, sample_dir, tmp_path):
    """Common Crawl's WET files (conversion records: text already extracted) become documents as they are, beside
    WARCs and .html files; any other file in the folder is a reject naming it, never skipped silently."""
    from tests.bombs import wet_file

    d = tmp_path / "crawl"
    d.mkdir()
    pages = [
        (
            f"https://docs.example.org/page/{i}",
            f"Page {i}: call client.list_buckets() to list your buckets, then read the Buckets field of the response.",
        )
        for i in range(5)
    ]
    wet_file(d / "CC-MAIN-2026-0001.warc.wet.gz", pages)
    (d / "notes.txt").write_text("a stray file")
    (d / "index.html").write_text(next((sample_dir / "site").glob("*.html")).read_text())
    out = tmp_path / "web"
    stats = run_single(spark, parse_config({}), "ingest-web", [InputSpec(path=str(d), source="cc")], str(out), False)
    data, rejects, stats = assert_stage_output(out, stats)
    wet = [r for r in data.to_pylist() if json.loads(r["metadata"]).get("extracted_by") == "wet"]
    assert sorted(r["text"] for r in wet) == sorted(t for _, t in pages)
    assert all(r["date"] == "2026-11-30" for r in wet) and stats["counters"]["wet_records"] == 5
    assert data.num_rows == 6  # and the .html page
    assert [(r["reason"], os.path.basename(r["location"])) for r in rejects.to_pylist()] == [
        ("unsupported_file", "notes.txt")
    ]
