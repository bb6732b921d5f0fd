"""Building the Spark session the same way for `forge`, `spark-submit jobs/*.py` and the tests."""

from __future__ import annotations

import logging
import os
import shutil
import sys

from corpus.config import SparkSection
from corpus.io.files import BASE_DIR_ENV

log = logging.getLogger("corpus")


class EnvironmentProblem(RuntimeError):
    """Something outside the project (Java, the Python interpreter) stops Spark from starting."""


def under_spark_submit() -> bool:
    """spark-submit starts the JVM first and hands Python its gateway port."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def build_session(cfg: SparkSection, master: str | None = None, app_name: str = "forge"):
    """Get or create the session.

    Spark's Python workers must run this interpreter (the venv's), or they fail with "No module named
    pyarrow": PYSPARK_PYTHON is set to ``sys.executable`` unless the user set it.
    """
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    if not under_spark_submit() and not shutil.which("java") and not os.environ.get("JAVA_HOME"):
        raise EnvironmentProblem("Spark needs Java 17: no `java` on PATH and JAVA_HOME is unset")

    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName(app_name)
    chosen = master or (None if under_spark_submit() else cfg.master)
    if chosen:
        builder = builder.master(chosen)
        if chosen.startswith("local") or chosen.startswith(("spark://127.0.0.1:", "spark://localhost:")):
            os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # a cluster on this machine: stay on loopback
        if chosen.startswith("local"):
            if cfg.local_java_options and "spark.driver.extraJavaOptions" not in cfg.conf:
                builder = builder.config("spark.driver.extraJavaOptions", cfg.local_java_options)
    if not under_spark_submit():
        builder = builder.config("spark.driver.memory", cfg.driver_memory)
    builder = (
        builder.config("spark.sql.execution.arrow.maxRecordsPerBatch", str(cfg.arrow_batch_rows))
        .config("spark.ui.showConsoleProgress", "true" if cfg.progress else "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.executorEnv.PYTHONHASHSEED", "0")
        # relative input paths mean the driver's folder, also on executors whose working folder is elsewhere
        .config(f"spark.executorEnv.{BASE_DIR_ENV}", os.environ.get(BASE_DIR_ENV) or os.getcwd())
    )
    for key, value in cfg.conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(cfg.log_level)
    shuffle = cfg.shuffle_partitions or 4 * spark.sparkContext.defaultParallelism
    spark.conf.set("spark.sql.shuffle.partitions", str(shuffle))
    log.info("spark %s on %s, %d cores, %d shuffle partitions", spark.version, spark.sparkContext.master,
             spark.sparkContext.defaultParallelism, shuffle)
    return spark
