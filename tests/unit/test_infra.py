"""infra/: the Airflow DAG loads in a real Airflow and renders a chain of daily runs that the forge accepts; the
EMR step validates against botocore's own EMR model, the Dataproc job against Google's Dataproc discovery document,
the Kubernetes manifest has what the Spark operator requires; the container image and the manifests agree on paths
and versions."""

from __future__ import annotations

import json
import os
import posixpath
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from corpus.cli import _parser
from corpus.config import load_config, parse_sets
from corpus.dedup.stage import INDEX
from corpus.stages import stage_output

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
AIRFLOW_PYTHON = Path(os.environ.get("FORGE_AIRFLOW_PYTHON", ROOT / ".venv" / "airflow" / "bin" / "python"))

# Run by Airflow's own interpreter: load the DAG folder as the scheduler does (DagBag), report import errors and
# the DAG's settings, and render the task's templates for the given days.
_LOAD_DAG = r"""
import json, sys
from airflow.dag_processing.dagbag import DagBag
from airflow.sdk.execution_time import macros

bag = DagBag(dag_folder=sys.argv[1])
out = {"import_errors": {k: str(v) for k, v in bag.import_errors.items()}, "dags": sorted(bag.dags)}
dag = bag.dags.get("forge_daily")
if dag is not None:
    task = dag.get_task("forge_run")
    params = {k: dag.params[k] for k in dag.params}
    out.update(schedule=dag.timetable.expression, catchup=dag.catchup, max_active_runs=dag.max_active_runs,
               tasks=[t.task_id for t in dag.tasks], depends_on_past=task.depends_on_past, retries=task.retries,
               operator=type(task).__name__, params=params, rendered={})
    for ds in sys.argv[2:]:
        copy = task.prepare_for_execution()
        copy.render_template_fields({"ds": ds, "ds_nodash": ds.replace("-", ""), "params": params,
                                     "macros": macros}, jinja_env=dag.get_template_env())
        out["rendered"][ds] = {"application": copy.application, "name": copy.name, "args": copy.application_args}
print("RESULT " + json.dumps(out))
"""


@pytest.fixture(scope="module")
def dag(tmp_path_factory):
    if not AIRFLOW_PYTHON.exists():
        pytest.skip(f"no Airflow venv at {AIRFLOW_PYTHON} (`make test` installs it)")
    home = tmp_path_factory.mktemp("airflow-home")
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "FORGE_OUTPUT_ROOT": "s3://corpus/daily",
        "FORGE_FIRST_DAY": "2026-12-01",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    }
    proc = subprocess.run(
        [str(AIRFLOW_PYTHON), "-c", _LOAD_DAG, str(INFRA / "airflow"), "2026-12-01", "2026-12-02", "2027-01-01"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT ") :])


def test_airflow_dag_imports_cleanly(dag):
    assert dag["import_errors"] == {}
    assert dag["dags"] == ["forge_daily"]
    assert dag["tasks"] == ["forge_run"] and dag["operator"] == "SparkSubmitOperator"
    assert dag["schedule"] in ("@daily", "0 0 * * *")
    # each day reads the previous day's index: days run in order, one at a time, after the day before succeeded
    assert dag["catchup"] is True and dag["max_active_runs"] == 1 and dag["depends_on_past"] is True
    assert dag["retries"] >= 1


def _day_config(rendered: dict):
    """The config `spark-submit jobs/run.py ARGS` builds from the DAG's rendered arguments (the image's config path
    is this checkout's configs/)."""
    args = _parser().parse_args(["run", *rendered["args"]])
    assert args.config == "/opt/forge/configs/examples/common-crawl-warc.yaml"
    overrides = parse_sets(args.set)
    overrides.setdefault("run", {})["output"] = args.output
    return load_config(ROOT / "configs" / "examples" / "common-crawl-warc.yaml", overrides)


def test_airflow_dag_renders_a_chain_of_daily_runs(dag):
    rendered = dag["rendered"]
    assert {r["application"] for r in rendered.values()} == {"/opt/forge/jobs/run.py"}
    assert (ROOT / "jobs" / "run.py").exists()
    configs = {ds: _day_config(r) for ds, r in rendered.items()}
    for ds, cfg in configs.items():
        assert cfg.run.output == f"s3://corpus/daily/{ds}"  # a date partition per day
        assert cfg.run.name == f"forge-{ds.replace('-', '')}" == rendered[ds]["name"]
    # the first day has no previous index; every later day reads the index the day before wrote
    assert configs["2026-12-01"].dedup.minhash.previous_index is None
    assert configs["2026-12-02"].dedup.minhash.previous_index == posixpath.join(
        stage_output(configs["2026-12-01"], "dedup"), INDEX
    )
    assert configs["2027-01-01"].dedup.minhash.previous_index == "s3://corpus/daily/2026-12-31/dedup/index"
    assert all(c.dedup.minhash.write_index for c in configs.values())


def test_set_overrides_are_validated():
    from corpus.config import ConfigError

    assert parse_sets(["dedup.minhash.threshold=0.7", "run.seed=7", "classify.rounds=1"]) == {
        "dedup": {"minhash": {"threshold": 0.7}},
        "run": {"seed": 7},
        "classify": {"rounds": 1},
    }
    assert parse_sets(["dedup.minhash.previous_index=null"]) == {"dedup": {"minhash": {"previous_index": None}}}
    with pytest.raises(ConfigError, match="expected SECTION.KEY=VALUE"):
        parse_sets(["dedup.minhash.threshold"])
    with pytest.raises(ConfigError, match="expected SECTION.KEY=VALUE"):
        parse_sets(["dedup..threshold=1"])
    with pytest.raises(ConfigError, match="unknown key 'dedup.minhash.thresold'"):
        load_config(None, parse_sets(["dedup.minhash.thresold=0.7"]))
    with pytest.raises(ConfigError, match="run.seed"):
        load_config(None, parse_sets(["run.seed=often"]))


# ----------------------------------------------------------------------------------------- EMR, Dataproc, k8s


def test_emr_step_validates_against_botocore_emr_model():
    """`aws emr add-steps --cli-input-json file://infra/emr/add-steps.json`: botocore's own parameter validation
    of the AddJobFlowSteps input (required members, types, enums) passes; the step runs spark-submit."""
    import botocore.session
    from botocore.validate import ParamValidator

    request = json.loads((INFRA / "emr" / "add-steps.json").read_text())
    model = botocore.session.get_session().get_service_model("emr")
    report = ParamValidator().validate(request, model.operation_model("AddJobFlowSteps").input_shape)
    assert not report.has_errors(), report.generate_report()
    # botocore leaves enums to the service: check them against the model here
    step_shape = model.operation_model("AddJobFlowSteps").input_shape.members["Steps"].member
    assert request["Steps"][0]["ActionOnFailure"] in step_shape.members["ActionOnFailure"].enum
    # and the validator does catch a broken step (so the check above can fail)
    broken = json.loads(json.dumps(request))
    del broken["Steps"][0]["HadoopJarStep"]["Jar"]
    broken["Steps"][0]["HadoopJarStep"]["Args"] = "spark-submit run.py"
    text = ParamValidator().validate(broken, model.operation_model("AddJobFlowSteps").input_shape).generate_report()
    assert 'Missing required parameter in Steps[0].HadoopJarStep: "Jar"' in text and "Args" in text
    args = request["Steps"][0]["HadoopJarStep"]["Args"]
    assert request["Steps"][0]["HadoopJarStep"]["Jar"] == "command-runner.jar" and args[0] == "spark-submit"
    _check_forge_args(args[args.index("s3://corpus/forge/dist/run.py") + 1 :])


def _discovery_problems(value, schema: dict, schemas: dict, where: str) -> list[str]:
    """What a request body does wrong against a Google discovery schema: unknown fields, fields the API sets
    itself (``Output only.``), missing ``Required.`` fields, wrong JSON types."""
    if "$ref" in schema:
        schema = schemas[schema["$ref"]]
    kind = schema.get("type")
    if kind == "object" and "properties" in schema:
        if not isinstance(value, dict):
            return [f"{where}: expected an object"]
        problems = []
        props = schema["properties"]
        for name, sub in props.items():
            if sub.get("description", "").startswith("Required.") and name not in value:
                problems.append(f"{where}.{name}: required")
        for name, v in value.items():
            if name not in props:
                problems.append(f"{where}.{name}: unknown field")
            elif props[name].get("description", "").startswith("Output only."):
                problems.append(f"{where}.{name}: output only")
            else:
                problems += _discovery_problems(v, props[name], schemas, f"{where}.{name}")
        return problems
    if kind == "object":  # a map (additionalProperties)
        return [] if isinstance(value, dict) else [f"{where}: expected an object"]
    if kind == "array":
        if not isinstance(value, list):
            return [f"{where}: expected an array"]
        return [
            p for i, v in enumerate(value) for p in _discovery_problems(v, schema["items"], schemas, f"{where}[{i}]")
        ]
    python = {"string": str, "integer": int, "boolean": bool, "number": (int, float)}.get(kind)
    return [] if python is None or isinstance(value, python) else [f"{where}: expected {kind}"]


def test_dataproc_job_validates_against_the_dataproc_discovery_document():
    """The body of Dataproc's jobs.submit (REST ``projects/*/regions/*/jobs:submit``) against the v1 discovery
    document shipped in google-api-python-client."""
    import googleapiclient

    doc = json.loads(
        (Path(googleapiclient.__file__).parent / "discovery_cache" / "documents" / "dataproc.v1.json").read_text()
    )
    schemas = doc["schemas"]
    method = doc["resources"]["projects"]["resources"]["regions"]["resources"]["jobs"]["methods"]["submit"]
    request = json.loads((INFRA / "dataproc" / "submit-job.json").read_text())
    assert _discovery_problems(request, method["request"], schemas, "request") == []
    broken = json.loads(json.dumps(request))
    del broken["job"]["pysparkJob"]["mainPythonFileUri"]
    broken["job"]["placement"]["clusterUuid"] = "set by the service"
    broken["job"]["pysparkJob"]["argz"] = []
    assert sorted(_discovery_problems(broken, method["request"], schemas, "request")) == [
        "request.job.placement.clusterUuid: output only",
        "request.job.pysparkJob.argz: unknown field",
        "request.job.pysparkJob.mainPythonFileUri: required",
    ]
    _check_forge_args(request["job"]["pysparkJob"]["args"])


def _check_forge_args(args: list[str]) -> None:
    """The arguments a manifest passes to jobs/run.py parse as `forge run` arguments."""
    parsed = _parser().parse_args(["run", *args])
    assert parsed.config and parsed.output


def _dockerfile() -> str:
    return (INFRA / "Dockerfile").read_text()


def test_kubernetes_spark_application_has_what_the_operator_requires():
    """The fields sparkoperator.k8s.io/v1beta2 requires (type, sparkVersion, driver, executor; mainApplicationFile
    for Python), the image's paths and Spark version."""
    app = yaml.safe_load((INFRA / "kubernetes" / "spark-application.yaml").read_text())
    assert app["apiVersion"] == "sparkoperator.k8s.io/v1beta2" and app["kind"] == "SparkApplication"
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", app["metadata"]["name"])
    spec = app["spec"]
    assert spec["type"] == "Python" and spec["mode"] in ("cluster", "client")
    assert {"type", "sparkVersion", "driver", "executor", "mainApplicationFile", "image"} <= set(spec)
    for role in ("driver", "executor"):
        assert isinstance(spec[role]["cores"], int) and re.fullmatch(r"\d+[kmgt]", spec[role]["memory"])
    assert spec["executor"]["instances"] >= 1
    assert all(isinstance(v, str) for v in spec["sparkConf"].values())  # a map of strings in the CRD
    assert all(isinstance(a, str) for a in spec["arguments"])
    _check_forge_args(spec["arguments"])
    # the image built by infra/Dockerfile holds the entry point and config where the manifest says
    assert spec["mainApplicationFile"] == "local:///opt/forge/jobs/run.py"
    assert (
        spec["arguments"][spec["arguments"].index("--config") + 1]
        == "/opt/forge/configs/examples/common-crawl-warc.yaml"
    )
    assert f"ARG SPARK_VERSION={spec['sparkVersion']}" in _dockerfile()


def test_container_image_definition():
    """The Dockerfile copies what exists, installs with the Makefile's own setup, pins pyspark to the Spark image
    whose entrypoint it uses, and points Spark's Python at the image's venv."""
    text = _dockerfile()
    froms = re.findall(r"^FROM (\S+)", text, re.M)
    assert froms == ["apache/spark:${SPARK_VERSION}", "python:3.11-slim-bookworm"]
    for src in re.findall(r"^COPY (?!--from)(.+) \S+$", text, re.M):
        for name in src.split():
            assert (ROOT / name).exists(), f"Dockerfile copies {name}, which is not in the repository"
    assert "make setup INSTALL=." in text and "pyspark==${SPARK_VERSION}" in text
    assert "PYSPARK_PYTHON=/opt/forge/.venv/bin/python" in text and "default-jre-headless" in text
    assert re.search(r"^ENTRYPOINT \[\"/opt/entrypoint.sh\"\]$", text, re.M)
    # the Makefile honours INSTALL (the image must not get the test extras)
    assert re.search(r"^INSTALL \?= ", (ROOT / "Makefile").read_text(), re.M)
    assert "$(INSTALL)" in (ROOT / "Makefile").read_text()


def test_every_registered_stage_has_its_spark_submit_job_and_cli_command():
    """The registry (corpus.stages.STAGES) is the stage list: each stage has `jobs/<stage>.py` calling its own
    command, `forge <stage>` with the registry's help, and nothing else is in jobs/ but `run.py`."""
    import re

    from corpus.cli import _parser
    from corpus.stages import STAGES

    jobs = {p.stem: p.read_text("utf-8") for p in (ROOT / "jobs").glob("*.py")}
    assert set(jobs) == set(STAGES) | {"run"}
    for name in STAGES:
        assert re.search(rf'main\(\["{re.escape(name)}", \*sys\.argv\[1:\]\]\)', jobs[name]), name
    commands = _parser()._subparsers._group_actions[0].choices
    for name, stage in STAGES.items():
        assert commands[name].description == stage.help
