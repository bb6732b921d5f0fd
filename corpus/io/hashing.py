"""A write-only file that hashes what passes through it."""

from __future__ import annotations

import hashlib


class HashingSink:
    """A write-only file that hashes what passes through, so a shard's SHA-256 needs no second read."""

    def __init__(self, sink) -> None:
        self._sink = sink
        self.digest = hashlib.sha256()
        self.size = 0
        self.closed = False

    def write(self, data) -> int:
        view = memoryview(data)
        self.digest.update(view)
        self.size += view.nbytes
        self._sink.write(view)
        return view.nbytes

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        self._sink.flush()

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        if not self.closed:
            self._sink.close()
            self.closed = True
