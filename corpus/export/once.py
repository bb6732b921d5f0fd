"""Tokenize each distinct document once, however many copies of it ``write`` placed and in however many shards.

``mix`` repeats documents (the default run's stage2 writes its instruction pairs 4×), and ``write`` scatters the
copies over the shards of every output, so exporting shard by shard would tokenize a document once per shard it
is in: the default run's outputs hold 175,534 distinct documents in 234,790 rows. Where the copies are is not a
secret, though: ``write`` placed them by a rule of the seed, the output's copy rule and the document's id and part
(:func:`corpus.write.shuffle.copy_locations`), which its manifest records. So, in two Spark jobs:

1. **tokenize**: one task per shard reads the shard's ids, parts and texts, recomputes every location of each of
   its documents, and tokenizes (and masks) only the documents it *owns*: those whose copy with the smallest row
   key is in this shard (random keys, so the work is spread evenly). It appends their ids and masks to one Arrow
   IPC scratch file, in record batches that each hold the documents bound for one shard (every shard holding a
   copy, its own included).
2. **lay out**: one task per shard reads the batches bound for it from every scratch file (memory-mapped when
   local), takes its rows' ids, parts and masks in the shard's order, and writes the formats.

The output never depends on the rule being right: a document the rule does not send to a shard that holds it
(an edited manifest or shards) is tokenized by that shard's lay-out task, counted and warned about.
"""

from __future__ import annotations

import posixpath
from typing import Iterator

import numpy as np
import pyarrow as pa

from corpus.export.shard import ShardExporter
from corpus.io import files
from corpus.write.shuffle import OutputPlan, copy_locations, open_ipc

SCRATCH = pa.schema(
    [
        pa.field("id", pa.string()),
        pa.field("tokens", pa.list_(pa.int32())),
        pa.field("mask", pa.list_(pa.uint8())),
        pa.field("eod_trained", pa.uint8()),
        pa.field("unmarked", pa.bool_()),
    ]
)
# a tokenize task's result rows: one per shard it has documents for, and the task's own counts (output null)
TOKENIZED = pa.schema(
    [
        pa.field("output", pa.string()),
        pa.field("shard", pa.int64()),
        pa.field("path", pa.string()),
        pa.field("batches", pa.list_(pa.int32())),
        pa.field("documents", pa.int64()),
        pa.field("tokens", pa.int64()),
    ]
)
SCRATCH_DIR = "_tokens"  # the tokenize job's scratch files, in the stage's temporary folder until laid out


def plan_of(output: str, manifest: dict) -> tuple[OutputPlan, int] | None:
    """(the output's copy rule, the seed) from its write manifest; None when the manifest predates the rule."""
    write = manifest.get("write", {})
    rule = write.get("copies")
    if rule is None or "seed" not in write or "shards_planned" not in write:
        return None
    return OutputPlan(output, int(write["shards_planned"]), rule["whole"], rule["thresholds"] or {}), int(write["seed"])


def locations(
    plans: list[OutputPlan], seed: int, ids: list[str], parts: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every copy of the documents in every output: (document index, output index, shard), sorted by document
    and then row key, so each document's first entry is its owner; and the row keys."""
    docs, outs, shards, keys = [], [], [], []
    for k, plan in enumerate(plans):
        rows, where, key = copy_locations(plan, seed, ids, parts)
        docs.append(rows)
        outs.append(np.full(len(rows), k, np.int64))
        shards.append(where.astype(np.int64))
        keys.append(key)
    doc, out, shard, key = (np.concatenate(x) for x in (docs, outs, shards, keys))
    order = np.lexsort((key, doc))
    return doc[order], out[order], shard[order], key[order]


class _ScratchFile:
    """One tokenize task's IPC file: record batches of the documents bound for one shard each."""

    def __init__(self, path: str) -> None:
        self.path = path
        fs, inner = files.filesystem(path)
        self._sink = fs.open_output_stream(inner)
        self._writer = pa.ipc.new_file(self._sink, SCRATCH)
        self.batches: dict[tuple[int, int], list[int]] = {}
        self._written = 0

    def write(self, dest: tuple[int, int], docs: list[tuple]) -> None:
        """``docs``: (id, ids, mask or None, eod_trained, unmarked) bound for shard ``dest``."""
        lengths = np.fromiter((len(d[1]) for d in docs), np.int64, len(docs))
        offsets = pa.array(np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32))
        values = np.concatenate([d[1] for d in docs]).astype(np.int32, copy=False) if docs else np.zeros(0, np.int32)
        masked = [d[2] if d[2] is not None else np.zeros(0, np.uint8) for d in docs]
        mask_offsets = np.concatenate([[0], np.cumsum([len(m) for m in masked])]).astype(np.int32)
        mask = pa.ListArray.from_arrays(
            pa.array(mask_offsets),
            pa.array(np.concatenate(masked), pa.uint8()),
            mask=pa.array([d[2] is None for d in docs]),
        )
        batch = pa.RecordBatch.from_arrays(
            [
                pa.array([d[0] for d in docs], pa.string()),
                pa.ListArray.from_arrays(offsets, pa.array(values)),
                mask,
                pa.array([d[3] for d in docs], pa.uint8()),
                pa.array([d[4] for d in docs], pa.bool_()),
            ],
            schema=SCRATCH,
        )
        self._writer.write_batch(batch)
        self.batches.setdefault(dest, []).append(self._written)
        self._written += 1

    def close(self) -> None:
        self._writer.close()
        self._sink.close()


def tokenize_fn(cfg, spec: str, plans: list[OutputPlan], seed: int, scratch: str):
    """mapInArrow function over the shard tasks (output, number: write's shard number, source): each task's owned
    documents tokenized
    into its scratch file; yields TOKENIZED rows."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import pyarrow.parquet as pq
        from pyspark import TaskContext

        names = [p.name for p in plans]
        task = TaskContext.get()
        out = _ScratchFile(posixpath.join(scratch, f"part-{task.partitionId():05d}-{task.attemptNumber()}.arrow"))
        tokenizer = ShardExporter(None, cfg, spec)  # its tokenizer and masks only: no files
        rows: list[dict] = []
        owned = tokens = 0
        for batch in batches:
            for t in batch.to_pylist():
                me = (names.index(t["output"]), int(t["number"]))
                fs, inner = files.filesystem(t["source"])
                with fs.open_input_file(inner) as f:
                    table = pq.read_table(f, columns=["id", "part", "text"])
                ids = table.column("id").to_pylist()
                first = {}
                for i, doc_id in enumerate(ids):
                    first.setdefault(doc_id, i)
                rows_of = np.fromiter(first.values(), np.int64, len(first))
                parts = table.column("part").take(pa.array(rows_of)).to_pylist()
                doc, where, shard, _ = locations(plans, seed, list(first), np.asarray(parts, dtype=object))
                starts = np.flatnonzero(np.concatenate([[True], doc[1:] != doc[:-1]]))
                ends = np.append(starts[1:], len(doc))
                texts = table.column("text")
                bound: dict[tuple[int, int], list[tuple]] = {}
                for d, s, e in zip(doc[starts].tolist(), starts.tolist(), ends.tolist()):
                    if (int(where[s]), int(shard[s])) != me:
                        continue  # another shard owns it
                    doc_id = ids[int(rows_of[d])]
                    unmarked_before = tokenizer.unmarked
                    got = tokenizer.tokenize(texts[int(rows_of[d])].as_py(), parts[d])
                    owned += 1
                    tokens += len(got[0])
                    entry = (doc_id, got[0], got[1], got[2], tokenizer.unmarked > unmarked_before)
                    for dest in dict.fromkeys(zip(where[s:e].tolist(), shard[s:e].tolist())):
                        bound.setdefault(dest, []).append(entry)
                for dest in sorted(bound):
                    out.write(dest, bound[dest])
        out.close()
        rows += [
            {"output": names[o], "shard": s, "path": out.path, "batches": b, "documents": None, "tokens": None}
            for (o, s), b in sorted(out.batches.items())
        ]
        rows.append(
            {"output": None, "shard": None, "path": out.path, "batches": [], "documents": owned, "tokens": tokens}
        )
        yield pa.RecordBatch.from_pylist(rows, schema=TOKENIZED)

    return run


def tokens_for(sources: list[tuple[str, list[int]]]) -> dict[str, tuple]:
    """The documents bound for one shard: id -> (ids, mask or None, eod_trained, unmarked), views of the
    scratch files."""
    found: dict[str, tuple] = {}
    for path, numbers in sources:
        reader = open_ipc(path)
        for n in numbers:
            batch = reader.get_batch(n)
            tok, mask = batch.column("tokens"), batch.column("mask")
            offsets, values = tok.offsets.to_numpy(), tok.values.to_numpy()
            m_offsets, m_values = mask.offsets.to_numpy(), mask.values.to_numpy()
            valid = mask.is_valid().to_numpy(zero_copy_only=False)
            eod = batch.column("eod_trained").to_numpy()
            unmarked = batch.column("unmarked").to_numpy(zero_copy_only=False)
            for i, doc_id in enumerate(batch.column("id").to_pylist()):
                found[doc_id] = (
                    values[offsets[i] : offsets[i + 1]],
                    m_values[m_offsets[i] : m_offsets[i + 1]] if valid[i] else None,
                    int(eod[i]),
                    bool(unmarked[i]),
                )
    return found
