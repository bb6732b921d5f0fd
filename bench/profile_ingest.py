"""Where ingest-web's per-page time goes: cProfile of the stage's own reading (`read_pieces`) and page work
(`PageExtractor`) over the first pages of one WARC file, in one plain process (issue #29).

    python bench/profile_ingest.py [WARC] [--pages 4000] [--engine resiliparse|trafilatura]

Default WARC: the scale bench's first file (bench/scale.py --stages ingest-resiliparse builds it).
"""

from __future__ import annotations

import argparse
import cProfile
import itertools
import os
import pstats
import sys
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def main(argv: list[str] | None = None) -> None:
    from corpus.config import parse_config
    from corpus.spark.envelope import Emitter
    from corpus.web.ingest import PageExtractor, read_pieces

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("warc", nargs="?", default=str(HERE / "work" / "scale" / "warc" / "scale-0000.warc.gz"))
    ap.add_argument("--pages", type=int, default=4000)
    ap.add_argument("--engine", default="resiliparse")
    args = ap.parse_args(argv)
    cfg = parse_config({"ingest-web": {"extract": {"engine": args.engine, "output_format": "txt"}}}).ingest_web
    size = os.path.getsize(args.warc)
    pieces = [{"path": args.warc, "size": size, "source": "bench", "part": "text", "start": 0, "end": size}]
    extractor = PageExtractor(cfg)

    def run() -> None:
        out, counts = Emitter("ingest-web"), Counter()
        for row in itertools.islice(read_pieces(pieces, cfg, counts), args.pages):
            extractor(row, out)
            if len(out) >= 64:
                out.batch()
        out.batch()

    t0 = time.perf_counter()
    run()
    print(f"{args.pages / (time.perf_counter() - t0):.1f} pages/s unprofiled")
    profile = cProfile.Profile()
    profile.runcall(run)
    pstats.Stats(profile).sort_stats("tottime").print_stats(15)


if __name__ == "__main__":
    main()
