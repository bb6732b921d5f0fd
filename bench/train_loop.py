"""A plain PyTorch training loop on `forge export`'s packed rows, with the loss mask applied: what README
"Feeding a trainer" shows, measured.

    python bench/train_loop.py OUT/export/stage2 [--steps 300] [--batch 2]

Model: a 2-layer causal transformer (width 64) with tied embeddings over the tokenizer's whole vocabulary, on the
CPU. Each step reads the next `--batch` packed rows (the Arrow files memory-mapped, rows sliced in place, in the
manifest's file order), trains on inputs `[:-1]` against targets `[1:]`, and weights each target's loss by
`loss_mask[1:]`, so only trained tokens (assistant turns and tool calls in trajectories, responses in pairs,
all of plain text) count. Prints one JSON line: the model's tokens/s, the data path's tokens/s alone (the same
reading and tensor conversion without the model), their ratio, and the masked loss at the start and the end.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow as pa
import torch
from torch import nn


def batches(folder: Path, batch: int, cycle: bool = True) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(ids, mask) tensors of ``batch`` packed rows at a time, over the files in manifest order (again and again
    when ``cycle``)."""
    manifest = json.loads((folder / "manifest.json").read_text())
    width = manifest["packed"]["sequence_length"] + 1
    paths = [folder / f["packed"]["path"] for f in manifest["files"] if f["packed"]["sequences"]]
    while True:
        for path in paths:
            for rows in pa.ipc.open_stream(pa.memory_map(str(path))):  # record batches, views of the mapped file
                for start in range(0, rows.num_rows, batch):
                    group = rows.slice(start, batch)
                    n = group.num_rows
                    # flatten(), not .values: a slice's values are the whole batch's
                    ids = group.column(0).flatten().to_numpy().reshape(n, width).astype(np.int64)
                    mask = group.column(1).flatten().to_numpy().reshape(n, width)
                    yield torch.from_numpy(ids), torch.from_numpy(mask.astype(np.float32))
        if not cycle:
            return


class TinyLM(nn.Module):
    def __init__(self, vocab: int, width: int = 64, layers: int = 2, heads: int = 4, context: int = 4097) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        self.position = nn.Embedding(context, width)
        layer = nn.TransformerEncoderLayer(width, heads, 4 * width, dropout=0.0, batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        n = ids.shape[1]
        causal = nn.Transformer.generate_square_subsequent_mask(n)
        h = self.embed(ids) + self.position(torch.arange(n))
        h = self.norm(self.blocks(h, mask=causal, is_causal=True))
        return h @ self.embed.weight.T / self.embed.weight.shape[1] ** 0.5  # tied, scaled: logits start near 0


def masked_loss(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    losses = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="none")
    weights = mask.reshape(-1)
    return (losses * weights).sum() / weights.sum().clamp(min=1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", type=Path)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch", type=int, default=2)
    args = ap.parse_args()
    torch.manual_seed(0)
    manifest = json.loads((args.folder / "manifest.json").read_text())
    vocab = manifest["tokenizer"]["vocab_size"]
    # the data path alone: every row of the output read and converted once, no model
    t0 = time.perf_counter()
    loaded = 0
    for ids, mask in batches(args.folder, args.batch, cycle=False):
        loaded += ids[:, :-1].numel()
    load_rate = loaded / (time.perf_counter() - t0)
    model = TinyLM(vocab, context=manifest["packed"]["sequence_length"] + 1)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    source = batches(args.folder, args.batch)
    losses, trained, consumed = [], 0.0, 0
    t0 = time.perf_counter()
    for _ in range(args.steps):
        ids, mask = next(source)
        logits = model(ids[:, :-1])
        loss = masked_loss(logits, ids[:, 1:], mask[:, 1:])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        consumed += ids[:, :-1].numel()
        trained += float(mask[:, 1:].sum())
    model_rate = consumed / (time.perf_counter() - t0)
    first, last = float(np.mean(losses[:10])), float(np.mean(losses[-10:]))
    print(
        json.dumps(
            {
                "steps": args.steps,
                "batch": args.batch,
                "sequence": manifest["packed"]["sequence_length"],
                "parameters": sum(p.numel() for p in model.parameters()),
                "threads": torch.get_num_threads(),
                "model_tokens_per_s": round(model_rate),
                "loader_tokens_per_s": round(load_rate),
                "loader_over_model": round(load_rate / model_rate, 1),
                "trained_share": round(trained / consumed, 3),
                "masked_loss_first10": round(first, 3),
                "masked_loss_last10": round(last, 3),
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
