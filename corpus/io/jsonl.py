"""Reading JSON lines from untrusted files with bounded memory: lines cut from any byte stream in fixed-size
blocks (a line over the limit is skipped to its end, never held whole), and JSON parsed with a nesting limit.

Why not ``for line in file``: a line is read whole whatever its length, so one 3 GiB line (a small ``.jsonl.gz``
can inflate to one) exhausts the worker. Why a nesting limit: ``json.loads`` recurses in C and raises
``RecursionError`` near Python's recursion limit; code that walks a parsed value recursively fails far earlier
in a deeper stack. Both become reject rows (``too_large``, ``too_deep``) in the stages.
"""

from __future__ import annotations

import json
import zlib
from typing import Any, BinaryIO, Callable, Iterator

# Nesting deeper than this is refused. Real tool-call arguments and dataset records nest a handful of levels; a
# JSON schema of a large API rarely more than 20.
MAX_DEPTH = 64
BLOCK = 1 << 20


class TooDeep(Exception):
    """JSON nested deeper than the limit. Not a ValueError, so the handlers of malformed JSON do not take it."""


def depth(value: Any) -> int:
    """Nesting depth of a parsed JSON value (a scalar is 0, ``[]`` and ``{}`` are 1), without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        node, d = stack.pop()
        if isinstance(node, dict):
            node = node.values()
        elif not isinstance(node, list):
            continue
        d += 1
        deepest = max(deepest, d)
        stack.extend((child, d) for child in node if isinstance(child, (dict, list)))
    return deepest


def loads(text: str | bytes, max_depth: int | None = MAX_DEPTH) -> Any:
    """``json.loads`` that raises :class:`TooDeep` for nesting over ``max_depth`` (None: only what Python's
    recursion limit refuses) and ``ValueError`` for malformed JSON."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise TooDeep("JSON nested deeper than the parser's recursion limit") from None
    if max_depth is not None and isinstance(value, (dict, list)):
        d = depth(value)
        if d > max_depth:
            raise TooDeep(f"JSON nested {d} deep (limit {max_depth})")
    return value


class Gunzip:
    """``read(n)`` of the decompressed bytes of a gzip stream (any number of members), never more than about
    ``n`` + ``block`` bytes at a time whatever the compression ratio. Unlike ``gzip.GzipFile``, the bytes
    decompressed before damage (a corrupt or cut-off member) are handed out first; the error is raised by the
    next read, so a reader keeps every record before it."""

    def __init__(self, raw: BinaryIO, block: int = BLOCK) -> None:
        self.raw, self.block = raw, block
        self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._input = b""  # compressed bytes not yet given to the decompressor
        self._started = False  # the current member has had input
        self._buf = b""
        self._error: Exception | None = None
        self._done = False

    def read(self, n: int = -1) -> bytes:
        n = self.block if n is None or n < 0 else n
        while len(self._buf) < n and not self._done:
            self._step(max(n - len(self._buf), self.block))
        out, self._buf = self._buf[:n], self._buf[n:]
        if not out and self._error is not None:
            raise self._error
        return out

    def _step(self, want: int) -> None:
        data = self._z.unconsumed_tail or self._input
        self._input = b""
        if not data:
            data = self.raw.read(self.block)
            if not data:
                if self._started and not self._z.eof:
                    self._error = EOFError("compressed file ended before the end of a gzip member")
                self._done = True
                return
        self._started = True
        try:
            self._buf += self._z.decompress(data, want)
        except zlib.error as err:
            self._error, self._done = err, True
            return
        if self._z.eof:  # the next member, if any, starts in the bytes left over
            self._input = self._z.unused_data
            self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)
            self._started = False


def lines(
    read: Callable[[int], bytes], max_line: int, pos: int = 0, block: int = BLOCK
) -> Iterator[tuple[int, bytes | None, int]]:
    """``(offset, line, length)`` for each line of the stream ``read`` reads from, offsets counted from ``pos``.
    ``line`` includes its newline; it is None for a line longer than ``max_line`` bytes, which is read through in
    blocks and dropped (``length`` says how long it was). Memory stays within about ``max_line + block``."""
    pending = bytearray()
    skipping = 0  # bytes of an overlong line read so far (0: not inside one)
    while True:
        chunk = read(block)
        if not chunk:
            if skipping:
                yield pos, None, skipping
            elif pending:
                yield pos, bytes(pending), len(pending)
            return
        start = 0
        if skipping:
            nl = chunk.find(b"\n")
            if nl < 0:
                skipping += len(chunk)
                continue
            yield pos, None, skipping + nl + 1
            pos += skipping + nl + 1
            skipping, start = 0, nl + 1
        pending += memoryview(chunk)[start:]
        cut = 0
        while True:
            nl = pending.find(b"\n", cut)
            if nl < 0:
                break
            length = nl + 1 - cut
            if length > max_line:
                yield pos, None, length
            else:
                yield pos, bytes(pending[cut : nl + 1]), length
            pos += length
            cut = nl + 1
        del pending[:cut]
        if len(pending) > max_line:
            skipping = len(pending)
            pending = bytearray()


class Malformed(ValueError):
    """The rest of a JSON array cannot be read (an item is malformed: no later item boundary can be trusted)."""


class OverLimit(Exception):
    """A record over the configured size."""


def array_items(
    read: Callable[[int], bytes], max_item: int, max_depth: int | None = MAX_DEPTH, block: int = BLOCK
) -> Iterator[tuple[int, Any]]:
    """``(number, item)`` for the items of one top-level JSON array read from ``read``, one at a time: a file of
    any size costs the memory of its largest item. ``item`` is the parsed value, or in its place :class:`TooDeep`
    (reading goes on, unless the parser itself gave up), :class:`OverLimit` (an item over ``max_item``
    characters) or :class:`Malformed`; after the last two the array cannot be followed, so they end it."""
    import codecs

    decoder = json.JSONDecoder()
    utf8 = codecs.getincrementaldecoder("utf-8")("strict")  # a sequence cut at a block's end waits for the next
    state = {"buf": "", "pos": 0, "eof": False}

    def more(want: int) -> bool:
        """Append the next block to the buffer; False at the end of the stream."""
        if state["eof"]:
            return False
        chunk = read(max(want, block))
        state["eof"] = not chunk
        state["buf"] += utf8.decode(chunk, final=state["eof"])
        return not state["eof"]

    def skip_ws() -> bool:
        """Move to the next non-blank character; False at the end of the stream."""
        while True:
            buf, pos = state["buf"], state["pos"]
            while pos < len(buf) and buf[pos] in " \t\r\n":
                pos += 1
            if pos < len(buf):
                state["pos"] = pos
                return True
            state["buf"], state["pos"] = "", 0
            if not more(block):
                return False

    n = 0
    try:
        if not skip_ws() or state["buf"][state["pos"]] != "[":
            yield 1, Malformed("not a JSON array")
            return
        state["pos"] += 1
        while True:
            if not skip_ws():
                yield n + 1, Malformed("the array is not closed")
                return
            if state["buf"][state["pos"]] == "]":
                return
            if n:
                if state["buf"][state["pos"]] != ",":
                    yield n + 1, Malformed(f"expected ',' or ']' after item {n}")
                    return
                state["pos"] += 1
                if not skip_ws():
                    yield n + 1, Malformed("the array is not closed")
                    return
            n += 1
            want = block
            while True:
                buf, pos = state["buf"], state["pos"]
                try:
                    value, end = decoder.raw_decode(buf, pos)
                except RecursionError:
                    yield (
                        n,
                        TooDeep(
                            "JSON nested deeper than the parser's recursion limit (the rest of the "
                            "array cannot be followed)"
                        ),
                    )
                    return
                except json.JSONDecodeError as err:
                    if len(buf) - pos > max_item:
                        yield n, OverLimit(f"an item over {max_item} characters")
                        return
                    if more(want):
                        want *= 2  # a long item is parsed again O(log size) times, not once per block
                        continue
                    yield n, Malformed(f"item {n}: {err}")
                    return
                if end == len(buf) and not isinstance(value, (dict, list, str)) and more(want):
                    continue  # a number or literal cut at the block's end
                break
            if end - pos > max_item:
                yield n, OverLimit(f"an item of {end - pos} characters > {max_item}")
                return
            if max_depth is not None and isinstance(value, (dict, list)) and depth(value) > max_depth:
                yield n, TooDeep(f"JSON nested {depth(value)} deep (limit {max_depth})")
            else:
                yield n, value
            state["buf"], state["pos"] = buf[end:], 0
    except UnicodeDecodeError as err:
        yield n + 1, Malformed(f"invalid UTF-8 after item {n}: {err.reason}")
