"""Checks of the default run's shards for issue #25: where the instruction pairs come from, and whether any BFCL v4
question survives.

    python bench/corpus_checks.py [OUT]        (OUT defaults to out/)

1. Instruction pairs per extractor (each pair once), with the share of template-made ones.
2. Every user turn of every BFCL v4 category (the decontamination list) looked for in every line of every shard,
   compared as tokens (case, punctuation and spacing aside), by the item's length: the check `decontaminate` makes
   for 3–7 words, here for every length; and the items of 8+ words as whole token sequences anywhere in a line.
3. Every user turn and instruction of the shards, whole, against every BFCL item of any length (the check
   `decontaminate` adds for items under 3 words with `exact_turn_items`).
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path

import pyarrow.dataset as ds

ROOT = Path(__file__).resolve().parent.parent


def _norm(text: str) -> str:
    from corpus.decontaminate.ngrams import tokens

    return " ".join(tokens(text))


def bench(out: Path = ROOT / "out") -> dict:
    sys.path.insert(0, str(ROOT))
    from corpus.config import BenchmarkSpec
    from corpus.decontaminate import benchmarks

    result: dict = {"instruction_pairs": {}, "bfcl": {}}
    shards = {
        o.name: sorted(str(p) for p in o.glob("*.parquet"))
        for o in sorted((out / "write").iterdir())
        if list(o.glob("*.parquet"))
    }
    spec = BenchmarkSpec(name="bfcl-v4", path="builtin:bfcl-v4", fields=["question"])
    items = {_norm(i["text"]) for t in benchmarks.tasks(spec) for i in benchmarks.read_items(t)} - {""}
    by_len = Counter(min(len(i.split()), 8) for i in items)
    long_items = [i for i in items if len(i.split()) >= 8]
    for name, files in shards.items():
        table = ds.dataset(files, format="parquet").to_table(columns=["id", "part", "text", "metadata"])
        seen: set = set()
        extractors, template = Counter(), 0
        found = Counter({"whole user turns / instructions": 0})
        examples: dict = {}
        for row in table.to_pylist():
            if row["id"] in seen:
                continue
            seen.add(row["id"])
            if row["part"] == "instruction":
                meta = json.loads(row["metadata"])
                extractors[meta.get("extractor", "?")] += 1
                template += bool(meta.get("template_made"))
            lines = [_norm(line) for line in row["text"].split("\n")]
            for line in lines:
                if line in items:
                    k = min(len(line.split()), 8)
                    found[k] += 1
                    examples.setdefault(k, line[:80])
            # every user turn and instruction, whole, against every item of any length
            for turn in re.findall(r"(?:^|\n)### (?:User|Instruction)\n(.*?)(?=\n\n### |\n### |$)", row["text"], re.S):
                if _norm(turn) in items:
                    found["whole user turns / instructions"] += 1
                    examples.setdefault("turn", turn[:80])
            joined = " " + " ".join(lines) + " "
            found["8+ inside a document"] += sum(f" {i} " in joined for i in long_items if len(i) < len(joined))
        total = sum(extractors.values())
        result["instruction_pairs"][name] = {
            "pairs": total,
            "template_made": template,
            "by_extractor": {
                k: {"pairs": v, "share": round(v / max(total, 1), 4)} for k, v in extractors.most_common()
            },
        }
        result["bfcl"][name] = {
            "items_by_tokens": {str(k): v for k, v in sorted(by_len.items())},
            "lines_equal_to_an_item_by_tokens": {str(k): v for k, v in sorted(found.items(), key=str)},
            "examples": {str(k): v for k, v in sorted(examples.items(), key=str)},
        }
    return result


if __name__ == "__main__":
    print(json.dumps(bench(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "out"), indent=2))
