"""Is a stage's memory flat past the scale corpus's 1M documents? Runs one stage of bench/scale.py on the corpus's
files linked ``--times`` times (3,000,000 rows by default). Only for stages that treat each row on its own
(classify, filter, redact): for dedup the repeats are duplicates, which changes its work.

    python bench/scale_repeated.py [--stage classify] [--times 3]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import scale  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stage", default="classify", choices=["classify", "filter", "redact"])
    ap.add_argument("--times", type=int, default=3)
    args = ap.parse_args(argv)
    info = scale.build(1_000_000)
    n = info["documents"] * args.times
    folder = scale.WORK / f"input-{n}-repeated"
    if not folder.exists():
        folder.mkdir(parents=True)
        for k in range(args.times):
            for f in sorted(scale.DOCS.glob("*.parquet")):
                (folder / f"r{k}-{f.name}").symlink_to(f)
    run = scale.figures(scale.run_stage(args.stage, n, folder), info["text_bytes"] / info["documents"])
    print(json.dumps(run, indent=2))
    return run


if __name__ == "__main__":
    main()
