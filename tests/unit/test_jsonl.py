"""corpus.io.jsonl: bounded lines, JSON with a nesting limit, JSON arrays item by item, gunzip that hands out
what it read before damage."""

from __future__ import annotations

import gzip
import io
import zlib

import pytest

from corpus.io import jsonl


def _lines(data: bytes, max_line: int, block: int = 4):
    return list(jsonl.lines(io.BytesIO(data).read, max_line, block=block))


@pytest.mark.parametrize("block", [1, 3, 4, 64])
def test_lines_offsets_and_overlong_lines(block):
    data = b"ab\n" + b"x" * 20 + b"\n\ncd"
    assert _lines(data, 8, block) == [(0, b"ab\n", 3), (3, None, 21), (24, b"\n", 1), (25, b"cd", 2)]
    assert _lines(b"y" * 30, 8, block) == [(0, None, 30)]
    assert _lines(b"", 8, block) == []


def test_loads_depth_limit():
    assert jsonl.depth([[1], {"a": {"b": []}}]) == 4 and jsonl.depth(5) == 0
    assert jsonl.loads('{"a": [1, 2]}') == {"a": [1, 2]}
    with pytest.raises(jsonl.TooDeep, match="65 deep"):
        jsonl.loads("[" * 65 + "]" * 65)
    with pytest.raises(jsonl.TooDeep, match="recursion"):
        jsonl.loads("[" * 100_000 + "]" * 100_000, max_depth=None)
    with pytest.raises(ValueError):
        jsonl.loads("{nope")
    assert not isinstance(jsonl.TooDeep("x"), ValueError)  # malformed-JSON handlers must not take it


def _items(data, max_item=1000, block=3):
    data = data.encode() if isinstance(data, str) else data
    return [
        (n, type(v).__name__ if isinstance(v, Exception) else v)
        for n, v in jsonl.array_items(io.BytesIO(data).read, max_item, block=block)
    ]


def test_array_items_across_block_boundaries():
    assert _items('[1, 2345, {"a": [1,2]}, "x", true, null]') == [
        (1, 1),
        (2, 2345),
        (3, {"a": [1, 2]}),
        (4, "x"),
        (5, True),
        (6, None),
    ]
    assert _items(" [ ] ") == []
    assert _items('["caf\u00e9", "\u4e2d\u6587"]', block=1) == [(1, "caf\u00e9"), (2, "\u4e2d\u6587")]


def test_array_items_bad_input_ends_with_a_reason():
    assert _items("[1, 2") == [(1, 1), (2, 2), (3, "Malformed")]
    assert _items("[1, 2 3]") == [(1, 1), (2, 2), (3, "Malformed")]
    assert _items('{"a": 1}') == [(1, "Malformed")]
    assert _items(b'["a", "\xff"]') == [(1, "a"), (2, "Malformed")]
    assert _items('["' + "z" * 50 + '", 1]', max_item=20) == [(1, "OverLimit")]
    assert _items("[" + "[" * 70 + "]" * 70 + ", 5]") == [(1, "TooDeep"), (2, 5)]
    assert _items("[" + "[" * 100_000 + "]" * 100_000 + ", 5]", block=1 << 20) == [(1, "TooDeep")]


def test_gunzip_members_bombs_and_damage():
    two = gzip.compress(b"one\ntwo\n") + gzip.compress(b"three\n")
    assert jsonl.Gunzip(io.BytesIO(two), block=2).read(100) == b"one\ntwo\nthree\n"
    # a bomb: each read returns at most what was asked, whatever the ratio
    bomb = gzip.compress(b"\0" * (64 << 20))
    reader = jsonl.Gunzip(io.BytesIO(bomb))
    assert len(reader.read(1000)) == 1000 and len(reader._buf) < 2 << 20
    # cut off: the bytes before the cut come first, then the error
    data = gzip.compress("".join(f"line {i}\n" for i in range(5000)).encode())
    reader = jsonl.Gunzip(io.BytesIO(data[: len(data) // 2]), block=256)
    got = b""
    with pytest.raises(EOFError):
        while chunk := reader.read(1000):
            got += chunk
    assert got.startswith(b"line 0\nline 1\n") and len(got) > 1000
    # corrupt bytes in the middle: zlib's error, after the good part
    bad = bytearray(data)
    bad[len(bad) // 2 : len(bad) // 2 + 20] = b"\xff" * 20
    reader = jsonl.Gunzip(io.BytesIO(bytes(bad)), block=256)
    got = b""
    with pytest.raises((zlib.error, EOFError)):
        while chunk := reader.read(1000):
            got += chunk
    assert got.startswith(b"line 0\n")
