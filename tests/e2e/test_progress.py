"""Progress lines of a running stage, read from Spark's status store (corpus.spark.progress)."""

import logging
import time

from corpus.spark.progress import StageProgress


def test_a_running_stage_prints_labelled_progress(spark, caplog):
    sc = spark.sparkContext

    def slow(rows):
        for row in rows:
            time.sleep(0.0005)
            yield row

    sc.setJobGroup("dedup", "forge dedup")
    sc.setJobDescription("forge dedup: a slow step")
    try:
        with caplog.at_level(logging.INFO, logger="corpus"), StageProgress(sc, "dedup", interval=0.3):
            sc.parallelize(range(8_000), 8).mapPartitions(slow).count()
    finally:
        sc.setJobGroup("", "")
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("dedup: a slow step: ")]
    assert lines, [r.getMessage() for r in caplog.records]
    assert all("/8 tasks" in ln and "elapsed" in ln for ln in lines), lines
