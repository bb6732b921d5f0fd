"""Where dedup's worker memory peaks at 100k and 1M documents, with the signature index written and without
(`dedup.minhash.write_index`): the scale bench's inputs (run `make bench-scale` first), each run in its own
process, the JVM's and the largest Python worker's RSS sampled every 0.25 s. Usage: bench/dedup_memory.py"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import dedup  # noqa: E402
import scale  # noqa: E402


def main() -> dict:
    results = {}
    for n in (100_000, 1_000_000):
        for write_index in (True, False):
            cfg = scale.WORK / f"memory-{write_index}.yaml"
            spark = {"master": f"local[{scale.CORES}]", "progress": False, "driver_memory": "6g"}
            cfg.write_text(json.dumps({"spark": spark, "dedup": {"minhash": {"write_index": write_index}}}))
            kept: dict = {}

            class Sampler(dedup.PeakRSS):
                def stop(self):
                    kept["series"] = self.series
                    return super().stop()

            plain, dedup.PeakRSS = dedup.PeakRSS, Sampler
            try:
                out = scale.WORK / "out" / f"memory-{n}-{write_index}"
                stats, peaks, wall, _ = dedup.run_forge_stage("dedup", scale.subset(n), out, cfg)
            finally:
                dedup.PeakRSS = plain
            series = kept["series"]
            top = max(series, key=lambda r: r[2])
            results[f"{n} write_index={write_index}"] = {
                "stage_seconds": stats["seconds"],
                "wall_seconds": round(wall, 1),
                "peak_rss_mb": peaks,
                "worker_peak_at_seconds": top[0],
                "last_sample_seconds": series[-1][0],
            }
            print(n, write_index, results[f"{n} write_index={write_index}"], flush=True)
    (scale.WORK / "dedup-memory.json").write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
