"""The progress line (corpus.spark.progress): what a person reads while a long stage runs."""

from corpus.spark.progress import Snapshot, duration, line


def test_the_line_names_the_stage_and_step_with_rate_and_eta():
    snap = Snapshot("forge filter: documents and rejects", tasks=400, done=100, running=2, records=51_200)
    assert line("filter", snap, elapsed=100, job_elapsed=50) == (
        "filter: documents and rejects: 100/400 tasks (25%), 2 running, 51,200 records (1,024/s), "
        "1 min 40 s elapsed, ETA 2 min 30 s"
    )
    # a job without a description is labelled with the stage; nothing done yet: no ETA
    assert line("dedup", Snapshot("dedup", 8, 0, 2, 0), 5, 5) == "dedup: 0/8 tasks (0%), 2 running, 5 s elapsed"
    assert line("mix", Snapshot("choose stage1", 0, 0, 0, 0), 3, 3) == "mix: choose stage1: starting, 3 s elapsed"
    assert duration(59.6) == "1 min 00 s" and duration(3 * 3600 + 125) == "3 h 02 min"
