"""A progress line a person can read: while a stage runs, every ``spark.progress_seconds`` forge prints which
stage and step is running, how many of its tasks are done, the records read so far, the rate and an ETA.

Spark's own console bar names Spark's stage numbers, never forge's stages, and gives no ETA; so when this is on
the bar is off (:mod:`corpus.spark.session`). The step is the running job's description, which every stage sets
as ``forge <stage>: <step>`` (Spark's UI shows the same labels). It reads Spark's status store from a daemon
thread; a failure to read it stops the line, never the stage.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

log = logging.getLogger("corpus")


@dataclass
class Snapshot:
    """The running jobs of one stage's job group, summed."""

    step: str
    tasks: int
    done: int
    running: int
    records: int


def duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def line(stage: str, snap: Snapshot, elapsed: float, job_elapsed: float) -> str:
    """``filter: documents and rejects: 120/400 tasks (30%), 2 running, 51,200 records (1,024/s), 1 min 40 s
    elapsed, ETA 3 min 53 s`` (the log prefixes ``forge:``). The ETA assumes the remaining tasks take as long as
    the finished ones."""
    parts = [f"{snap.done:,}/{snap.tasks:,} tasks ({snap.done / snap.tasks:.0%})" if snap.tasks else "starting"]
    if snap.running:
        parts.append(f"{snap.running} running")
    if snap.records:
        parts.append(f"{snap.records:,} records ({snap.records / max(job_elapsed, 1e-9):,.0f}/s)")
    parts.append(f"{duration(elapsed)} elapsed")
    if snap.done and snap.tasks > snap.done:
        parts.append(f"ETA {duration(job_elapsed / snap.done * (snap.tasks - snap.done))}")
    step = snap.step.removeprefix("forge ")
    if not step.startswith(f"{stage}:") and step != stage:
        step = f"{stage}: {step}"
    return f"{step}: " + ", ".join(parts)


class StageProgress:
    """Prints :func:`line` for the stage's job group every ``interval`` seconds while it has a running job."""

    def __init__(self, sc, stage: str, interval: float) -> None:
        self.sc, self.stage, self.interval = sc, stage, interval
        self._stop = threading.Event()
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._run, name=f"progress-{stage}", daemon=True)

    def __enter__(self) -> "StageProgress":
        if self.interval > 0:
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def snapshot(self) -> tuple[Snapshot, float] | None:
        """The running jobs of the group (None when none runs), and how long the oldest has run."""
        tracker = self.sc.statusTracker()
        store = self.sc._jsc.sc().statusStore()
        steps, tasks, done, running, records, started = [], 0, 0, 0, 0, []
        for job_id in tracker.getJobIdsForGroup(self.stage):
            info = tracker.getJobInfo(job_id)
            if info is None or info.status != "RUNNING":
                continue
            job = store.job(job_id)
            description = job.description()
            steps.append(description.get() if description.isDefined() else self.stage)
            tasks += job.numTasks()
            done += job.numCompletedTasks()
            running += job.numActiveTasks()
            for stage_id in info.stageIds:
                try:
                    records += store.lastStageAttempt(stage_id).inputRecords()
                except Exception:  # noqa: BLE001 - a stage not submitted yet has no data
                    pass
            submitted = job.submissionTime()
            started.append(submitted.get().getTime() / 1000 if submitted.isDefined() else time.time())
        if not steps:
            return None
        return Snapshot(" + ".join(sorted(set(steps))), tasks, done, running, records), time.time() - min(started)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                got = self.snapshot()
            except Exception as err:  # noqa: BLE001 - progress is a courtesy: never fail the stage for it
                log.debug("progress of %s stopped: %s", self.stage, err)
                return
            if got is not None:
                snap, job_elapsed = got
                log.info("%s", line(self.stage, snap, time.monotonic() - self._started, job_elapsed))
