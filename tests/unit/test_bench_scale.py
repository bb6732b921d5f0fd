"""The scale bench's reading of Spark's event log (bench/scale.py), which splits a stage's time by job."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import scale  # noqa: E402


def _event(kind: str, **fields) -> str:
    return json.dumps({"Event": kind, **fields})


def test_jobs_are_summed_by_description_and_overlaps_counted_once(tmp_path):
    app = tmp_path / "eventlog_v2_local-1"
    app.mkdir()
    lines = [
        _event("SparkListenerApplicationStart", Timestamp=0),
        _event("SparkListenerJobStart", **{"Job ID": 0, "Submission Time": 1000}, Properties={}),
        _event("SparkListenerJobEnd", **{"Job ID": 0, "Completion Time": 2000}),
        *(
            _event(
                "SparkListenerJobStart",
                **{"Job ID": j, "Submission Time": a},
                Properties={"spark.job.description": "forge x: write documents"},
            )
            for j, a in ((1, 3000), (2, 4000))
        ),
        _event("SparkListenerJobEnd", **{"Job ID": 1, "Completion Time": 13000}),
        _event("SparkListenerJobEnd", **{"Job ID": 2, "Completion Time": 5000}),
        _event("SparkListenerJobStart", **{"Job ID": 3, "Submission Time": 14000}, Properties={}),  # never ended
        _event("SparkListenerApplicationEnd", Timestamp=15000),
    ]
    (app / "events_1_local-1").write_text("\n".join(lines) + "\n")
    (app / "appstatus_local-1").write_text("")
    jobs = scale.spark_jobs(tmp_path)
    assert jobs["count"] == 3
    assert jobs["longest"] == {"description": "forge x: write documents", "seconds": 10.0}
    assert jobs["by_description"] == {"(no description)": 1.0, "forge x: write documents": 11.0}
    assert jobs["in_jobs_seconds"] == 11.0  # 1-2 s and 3-13 s; job 2 (4-5 s) lies inside job 1
    assert jobs["app_seconds"] == 15.0


def test_no_event_log_gives_no_jobs(tmp_path):
    assert scale.spark_jobs(tmp_path) == {}
