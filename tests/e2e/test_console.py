"""What the console shows while a stage runs (progress lines from Spark's status store) and when a task fails."""

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


def test_a_forge_error_inside_a_task_reaches_the_console_as_one_line(spark):
    """A forge error raised in a Python worker comes back as Spark's PythonException; the CLI prints its message
    (`forge: error: ...`, exit 2) instead of a JVM and Python traceback."""
    import pytest
    from pyspark.errors import PythonException

    from corpus.cli import task_error

    def fails(rows):
        from corpus.classify.stage import ClassifyError

        raise ClassifyError("classify: the training split has 3 positives and 0 negatives; it needs both")
        yield from rows

    with pytest.raises(PythonException) as err:
        spark.sparkContext.parallelize(range(4), 2).mapPartitions(fails).count()
    assert task_error(err.value) == "classify: the training split has 3 positives and 0 negatives; it needs both"
    assert task_error(ValueError("x")) is None
