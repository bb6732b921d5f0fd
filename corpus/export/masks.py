"""Loss masks for agent data: which tokens of a trajectory or instruction pair a trainer should learn from.

Trajectories and instruction pairs are written as blocks under role headings (docs/trajectories.md;
:func:`corpus.trajectories.verify.render`, :func:`corpus.extract.stage.render`)::

    ### Tools / ### System / ### User / ### Assistant / ### Tool result (name) / ### Instruction / ### Response

A block's heading starts the text or follows a blank line, and its body runs to the blank line before the next
heading. The bodies of the trained blocks (default: ``Assistant`` and ``Response``, so the assistant's words and
its ``<tool_call>`` lines) are trained; headings, tool schemas, system prompts, user turns and tool results are
not. A token is trained when its first byte lies in a trained body (BPE may join a body's last punctuation with
the blank line after it: that token is trained). The end-of-document token is trained when the last block is,
which teaches the model to stop after its answer.
"""

from __future__ import annotations

import re

import numpy as np

ROLES = ("Tools", "System", "User", "Assistant", "Tool result", "Instruction", "Response")
HEADING = re.compile(
    rb"(?:\A|\n\n)### (Tools|System|User|Assistant|Tool result(?: \([^\n]*\))?|Instruction|"
    rb"Response)(?:\n|\Z)"
)


_AT = re.compile(rb"### (Tools|System|User|Assistant|Tool result(?: \([^\n]*\))?|Instruction|Response)(?:\n|\Z)")


def _headings(data: bytes) -> list[re.Match]:
    """HEADING's matches, found by searching for the blank line and "### " (bytes.find, a C loop) and matching
    only there: a scan of the whole text by the regex engine cost more than the rest of the mask."""
    found = []
    at = 0 if data.startswith(b"### ") else data.find(b"\n\n### ")
    while at != -1:
        start = at if at == 0 and data.startswith(b"### ") else at + 2
        m = _AT.match(data, start)
        if m is not None:
            found.append((at, m))
        at = data.find(b"\n\n### ", start if m is None else m.end())  # matches do not overlap, as finditer's
    return found


def blocks(data: bytes) -> list[tuple[str, int, int]]:
    """(role, body start, body end) of each block of a rendered document's UTF-8 bytes; [] when it has none."""
    found = _headings(data)
    out = []
    for i, (_, m) in enumerate(found):
        role = m.group(1).decode()
        role = "Tool result" if role.startswith("Tool result") else role
        end = found[i + 1][0] if i + 1 < len(found) else len(data)
        out.append((role, m.end(), end))
    return out


def trained_spans(text: str, trained: frozenset[str]) -> tuple[list[tuple[int, int]], bool] | None:
    """(byte spans of the trained bodies, whether the last block is trained); None for a text without blocks."""
    found = blocks(text.encode("utf-8"))
    if not found:
        return None
    return [(s, e) for role, s, e in found if role in trained and e > s], found[-1][0] in trained


def token_mask(starts: np.ndarray, spans: list[tuple[int, int]]) -> np.ndarray:
    """1 for each token whose first byte (``starts``, sorted) lies in one of ``spans``, else 0."""
    mask = np.zeros(len(starts), np.uint8)
    for s, e in spans:
        mask[np.searchsorted(starts, s, "left") : np.searchsorted(starts, e, "left")] = 1
    return mask
