"""A class-data sharing (CDS) archive of the classes Spark's driver JVM loads, built once at setup.

A new JVM spends its first seconds loading and verifying Spark's classes: on this project's 2-core machine a
local session took 4.6 s to start and its first job 2.1 s more. With the classes mapped from an archive made by
the JVM itself (``-XX:ArchiveClassesAtExit``, JDK 13+; read back with ``-XX:SharedArchiveFile``) the same took
2.6 s and 0.9 s, and the first Parquet and Arrow work 0.7 s instead of 1.2 s. Every ``forge`` command and test
session starts such a JVM, so ``make setup`` builds the archive (``.venv/forge-spark.jsa``) by running a small
workload that touches what the stages use, and ``corpus.spark.session`` passes it to local JVMs it starts
(``spark.class_archive``).

Safety: the JVM checks an archive against its own build and class path and ignores, with a warning, one that
does not match (a JDK or pyspark upgrade: ``make setup`` builds it again). A truncated file, however, crashes
it, so the archive is written under a temporary name, checked by a second JVM that must start from it, and only
then renamed into place. A JVM without CDS support, or any failure here, leaves no archive and a warning:
Spark then starts as it would without one.

Usage: ``python -m corpus.spark.jvm_archive OUT.jsa`` (``make setup`` runs it).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

from corpus.spark.session import build_session, default_archive


def _session():
    from corpus.config import parse_config

    return build_session(
        parse_config({"spark": {"progress": False, "warm_up": False, "class_archive": ""}}).spark, "local[2]"
    )


def check() -> None:
    """A session and one job: what the JVM started from a new archive must manage."""
    spark = _session()
    spark.range(0, 10, 1, 2).selectExpr("sum(id)").collect()
    spark.stop()


def workload() -> None:
    """Spark work that loads the classes the stages use: Arrow relations and batch functions, Parquet with
    zstd, joins, aggregations, windows, sorts, hashing, URL parsing, observations."""
    import pyarrow as pa
    from pyspark.sql import Observation
    from pyspark.sql import functions as F
    from pyspark.sql.window import Window

    spark = _session()
    with tempfile.TemporaryDirectory(prefix="forge-cds-") as tmp:
        local = spark.createDataFrame(
            pa.table(
                {
                    "k": pa.array(range(50), pa.int64()),
                    "url": [f"https://h{i % 5}.example.org/p/{i}" for i in range(50)],
                }
            )
        )
        df = spark.range(0, 2000, 1, 2).withColumn("text", F.concat(F.lit("word "), F.col("id").cast("string")))
        df = (
            df.join(F.broadcast(local), df.id % 50 == local.k)
            .withColumn("host", F.lower(F.expr("try_parse_url(url, 'HOST')")))
            .withColumn("h", F.xxhash64("text"))
            .withColumn("s", F.sha2("text", 256))
        )
        seen = Observation("cds")
        out = os.path.join(tmp, "p")
        df.observe(seen, F.count(F.lit(1)).alias("n")).write.option("compression", "zstd").parquet(out)
        back = spark.read.parquet(out)
        back.groupBy("host").agg(F.count("*"), F.max("h"), F.avg("id")).orderBy("host").collect()
        back.withColumn("r", F.row_number().over(Window.partitionBy("host").orderBy("id"))).where("r < 3").collect()
        back.repartition(4, "host").sortWithinPartitions("h", "id").select(
            F.explode(F.sequence(F.lit(1), F.lit(2))).alias("c"), "text"
        ).mapInArrow(lambda it: (b for b in it), "c int, text string").count()
        back.join(back.select("id", F.col("h").alias("h2")), "id", "left_anti").count()
    spark.stop()


def _run(mode: str, options: str) -> subprocess.CompletedProcess:
    # a JVM that crashes on a bad archive writes its report to the temporary folder, not the working one
    crash = os.path.join(tempfile.gettempdir(), "forge-jvm-archive-hs_err_%p.log")
    env = {**os.environ, "FORGE_JVM_OPTIONS": f"{options} -XX:ErrorFile={crash}"}
    return subprocess.run(
        [sys.executable, "-m", "corpus.spark.jvm_archive", mode], env=env, capture_output=True, text=True, timeout=600
    )


def build(out: str) -> bool:
    """Build the archive at ``out``; True when it is in place and a JVM starts from it."""
    t0 = time.perf_counter()
    tmp = f"{out}.tmp-{os.getpid()}"
    try:
        made = _run("--workload", f"-XX:ArchiveClassesAtExit={tmp}")
        if made.returncode != 0 or not os.path.exists(tmp):
            print(
                f"warning: no JVM class archive (Spark starts without it): {made.stderr.strip()[-800:]}",
                file=sys.stderr,
            )
            return False
        checked = _run("--check", f"-XX:SharedArchiveFile={tmp} -Xshare:on")  # must start from it, or fail
        if checked.returncode != 0:
            print(
                f"warning: the JVM class archive did not load; not kept: {checked.stderr.strip()[-800:]}",
                file=sys.stderr,
            )
            return False
        os.replace(tmp, out)
        print(
            f"JVM class archive {out} ({os.path.getsize(out) / 1e6:.0f} MB) built in {time.perf_counter() - t0:.0f} s"
        )
        return True
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv in (["--workload"], ["--check"]):
        workload() if argv[0] == "--workload" else check()
        return 0
    if len(argv) > 1:
        print("usage: python -m corpus.spark.jvm_archive [OUT.jsa]", file=sys.stderr)
        return 2
    build(argv[0] if argv else default_archive())
    return 0  # a missing archive only makes Spark start slower: never a failed setup


if __name__ == "__main__":
    sys.exit(main())
