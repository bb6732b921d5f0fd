"""The daily forge run, as an Apache Airflow DAG (Airflow 3, or 2.10+, with apache-airflow-providers-apache-spark).

Every day's run writes its own date partition, ``{output_root}/{ds}/`` (stage datasets, shards, manifests,
report), and deduplicates against the previous day's signature index (``{output_root}/{yesterday}/dedup/index``,
the ``dedup.minhash.previous_index`` setting of issue #3), so a document the corpus already holds is not admitted
again. Each day's index holds that day's kept documents plus the previous index, so the chain covers every earlier
day. ``depends_on_past`` makes a day wait for the day before (whose index it reads); ``catchup`` backfills missed
days in order, one at a time. The first day (``params.first_day``) has no previous index.

The job is ``spark-submit jobs/run.py`` on the Spark connection ``FORGE_SPARK_CONN`` (default ``spark_default``:
set its host to your master, e.g. ``spark://master:7077``, ``yarn`` or ``k8s://…``). Settings are DAG params,
overridable when triggering a run; their defaults come from the Airflow deployment's environment:

=========================  ====================================================  ==================================
variable                   meaning                                               default
=========================  ====================================================  ==================================
FORGE_OUTPUT_ROOT          where the date partitions go                          ``s3://corpus/forge``
FORGE_CONFIG               the run's config (a path the driver can read)         ``/opt/forge/configs/examples/common-crawl-warc.yaml``
FORGE_APP                  the pipeline's entry point                            ``/opt/forge/jobs/run.py``
FORGE_PY_FILES             the packaged project for executors (``--py-files``)   none (the image has it installed)
FORGE_FIRST_DAY            the first day: no previous index                      ``2026-12-01``
FORGE_SPARK_CONN           the Airflow connection to the Spark master            ``spark_default``
=========================  ====================================================  ==================================

A rerun of a day (clear the task) resumes from the stages that day already committed. Trigger a manual run with a
logical date (``airflow dags trigger forge_daily --logical-date 2026-12-05``): the date names the partition.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

try:  # Airflow 3: the task SDK
    from airflow.sdk import DAG, Param
except ImportError:  # Airflow 2.10+
    from airflow import DAG
    from airflow.models.param import Param

DAG_ID = "forge_daily"
FIRST_DAY = os.environ.get("FORGE_FIRST_DAY", "2026-12-01")

# the previous day's index, except on the first day (YAML null: no previous index)
PREVIOUS_INDEX = ("{% if ds > params.first_day %}{{ params.output_root }}/{{ macros.ds_add(ds, -1) }}/dedup/index"
                  "{% else %}null{% endif %}")

with DAG(
    dag_id=DAG_ID,
    description="Forge the agent pretraining corpus: one date-partitioned run a day, deduplicated against the "
                "previous day's index",
    schedule="@daily",
    start_date=datetime.fromisoformat(FIRST_DAY),
    catchup=True,
    max_active_runs=1,
    default_args={"depends_on_past": True, "retries": 2, "retry_delay": timedelta(minutes=10)},
    params={
        "output_root": Param(os.environ.get("FORGE_OUTPUT_ROOT", "s3://corpus/forge"), type="string",
                             description="where each day's output folder goes"),
        "config": Param(os.environ.get("FORGE_CONFIG", "/opt/forge/configs/examples/common-crawl-warc.yaml"), type="string",
                        description="the run's YAML config, as the driver sees it"),
        "first_day": Param(FIRST_DAY, type="string", description="the first day, which has no previous index"),
    },
    tags=["corpus", "spark"],
    doc_md=__doc__,
) as dag:
    SparkSubmitOperator(
        task_id="forge_run",
        conn_id=os.environ.get("FORGE_SPARK_CONN", "spark_default"),
        application=os.environ.get("FORGE_APP", "/opt/forge/jobs/run.py"),
        py_files=os.environ.get("FORGE_PY_FILES") or None,
        name="forge-{{ ds_nodash }}",
        application_args=[
            "--config", "{{ params.config }}",
            "--output", "{{ params.output_root }}/{{ ds }}",
            "--set", "run.name=forge-{{ ds_nodash }}",
            "--set", f"dedup.minhash.previous_index={PREVIOUS_INDEX}",
        ],
        # the AWS credential chain reaches executors through their environment, never through the job's arguments
        conf={"spark.executorEnv.AWS_REGION": os.environ.get("AWS_REGION", "us-east-1")},
        execution_timeout=timedelta(hours=12),
    )
