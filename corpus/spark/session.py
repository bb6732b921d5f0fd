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


ARCHIVE_NAME = "forge-spark.jsa"


def default_archive() -> str:
    """Where ``make setup`` puts the JVM class archive (:mod:`corpus.spark.jvm_archive` builds it): beside the
    virtual environment's interpreter tree."""
    return os.path.join(sys.prefix, ARCHIVE_NAME)


def class_archive(cfg: SparkSection) -> str | None:
    """The JVM class archive to start from (see corpus.spark.jvm_archive), or None."""
    if not cfg.class_archive:
        return None
    if cfg.class_archive == "auto":
        path = default_archive()
        return path if os.path.isfile(path) else None
    if not os.path.isfile(cfg.class_archive):
        raise EnvironmentProblem(
            f"spark.class_archive: {cfg.class_archive} does not exist (build one with "
            f'`python -m corpus.spark.jvm_archive {cfg.class_archive}`, or set it to "auto")'
        )
    return cfg.class_archive


def driver_java_options(cfg: SparkSection, master: str | None) -> str:
    """JVM options for a driver JVM this process starts: the local-mode options, the class archive, and
    FORGE_JVM_OPTIONS (set by the archive's builder)."""
    options = []
    if master and master.startswith("local") and cfg.local_java_options:
        options.append(cfg.local_java_options)
    archive = class_archive(cfg)
    if archive:
        options.append(f"-XX:SharedArchiveFile={archive}")
    if os.environ.get("FORGE_JVM_OPTIONS"):
        options.append(os.environ["FORGE_JVM_OPTIONS"])
    return " ".join(options)


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
    if not under_spark_submit():
        builder = builder.config("spark.driver.memory", cfg.driver_memory)
        java_options = driver_java_options(cfg, chosen)
        if java_options and "spark.driver.extraJavaOptions" not in cfg.conf:
            builder = builder.config("spark.driver.extraJavaOptions", java_options)
    builder = (
        builder.config("spark.sql.execution.arrow.maxRecordsPerBatch", str(cfg.arrow_batch_rows))
        .config("spark.ui.showConsoleProgress", "false")  # forge prints its own, labelled (corpus.spark.progress)
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
    log.info(
        "spark %s on %s, %d cores, %d shuffle partitions",
        spark.version,
        spark.sparkContext.master,
        spark.sparkContext.defaultParallelism,
        shuffle,
    )
    if cfg.warm_up:
        warm_up(spark)
    return spark


WARM_MODULES = ("numpy", "pyarrow.parquet", "pyarrow.compute", "corpus.schema", "corpus.spark.datasets")


def _import_modules(batches):
    import importlib

    for name in WARM_MODULES:
        importlib.import_module(name)
    yield from batches


def warm_up(spark):
    """Start one Python worker per core in a background job (a thread; nothing waits for it): the first Python
    worker of a session costs ~1.2 s to start and ~0.3 s to import pyarrow and the project, and Spark reuses
    the started workers for the tasks that follow. Done at once, it overlaps the driver's planning of the
    first stage (listing files, reading footers, the cold JVM's first plans) instead of following it. A
    failure here is only logged: the stage's own job reports the real problem."""
    import threading

    def run() -> None:
        try:
            spark.sparkContext.setJobDescription("forge: start the Python workers")
            cores = spark.sparkContext.defaultParallelism
            spark.range(0, cores, 1, cores).mapInArrow(_import_modules, "id long").collect()  # a row per core
        except Exception as err:  # e.g. the session stopped first
            log.debug("warming up the Python workers failed: %s", err)

    thread = threading.Thread(target=run, name="forge-warm-up", daemon=True)
    thread.start()
    return thread
