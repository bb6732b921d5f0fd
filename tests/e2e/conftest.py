"""The default pipeline run on the sample data, shared by the end-to-end modules (pipeline, S3, cluster, resume)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from corpus.config import parse_config

STAGES = [
    "ingest-web",
    "ingest-text",
    "ingest-apis",
    "ingest-trajectories",
    "synthesize",
    "filter",
    "dedup",
    "classify",
    "extract",
    "decontaminate",
    "redact",
    "mix",
    "write",
    "export",
]
# Outputs are made of whole documents, so a ratio can miss by up to half a document's tokens: the small test
# data lets the few instruction pairs repeat (40 epochs) so that outputs are large enough for ±1%.
EPOCHS = {"instruction": 40, "trajectory": 4, "tool_doc": 4, "code": 4, "text": 4}
MIX = {
    "outputs": {
        "stage1": {
            "ratios": {"tool_doc": 0.3, "trajectory": 0.1, "instruction": 0.1, "code": 0.25, "text": 0.25},
            "max_epochs": EPOCHS,
        },
        "stage2": {"ratios": {"tool_doc": 0.4, "trajectory": 0.3, "instruction": 0.3}, "max_epochs": EPOCHS},
    }
}
EXPORT = {"enabled": True, "formats": ["megatron", "packed"], "sequence_length": 256}
SMALL_CLASSIFIER = {"fasttext": {"dim": 16, "bucket": 10_000, "epoch": 10}}


def _config(sample_dir: Path, out: Path, **extra):
    data = {
        "run": {"name": "test", "output": str(out)},
        "inputs": {
            "web": [{"path": str(sample_dir / "web"), "source": "pydoc", "part": "tool_doc"}],
            "text": [
                {"path": str(sample_dir / "text" / "package-readmes.jsonl"), "source": "readmes"},
                {"path": str(sample_dir / "text" / "general-text.jsonl"), "source": "general"},
                {"path": str(sample_dir / "text" / "stdlib-code.jsonl"), "source": "stdlib", "part": "code"},
            ],
            "apis": [{"path": "pkg:botocore/data/sqs", "source": "botocore"}],
            "trajectories": [
                {"path": str(sample_dir / "trajectories" / "bfcl-parallel_multiple.jsonl"), "source": "bfcl"}
            ],
        },
        "write": {"target_shard_tokens": 10_000, "row_group_bytes": "8KiB"},
        "classify": dict(SMALL_CLASSIFIER),
        "mix": MIX,
        "export": dict(EXPORT),
    }
    for k, v in extra.items():
        data.setdefault(k, {}).update(v)
    return parse_config(data)


@pytest.fixture(scope="session")
def run_out(spark, sample_dir, tmp_path_factory):
    """(output folder, stats by stage) of one local[2] run. Some tests rerun stages in it: compare against
    ``baseline_digests`` (taken when the run finished), not the folder's current shards."""
    from corpus.pipeline import run_pipeline

    out = tmp_path_factory.mktemp("run") / "out"
    results = run_pipeline(spark, _config(sample_dir, out))
    (out.parent / "digests.json").write_text(json.dumps(shard_digests(out)))
    return out, results


def shard_digests(out: Path) -> dict[str, dict[str, str]]:
    """Output -> shard file -> SHA-256, from the manifests."""
    return {o: {s["path"]: s["sha256"] for s in m["shards"]} for o, m in _manifests(out).items()}


def baseline_digests(run_out) -> dict[str, dict[str, str]]:
    return json.loads((run_out[0].parent / "digests.json").read_text())


def config_yaml(cfg, path: Path, **spark) -> Path:
    """Write a parsed config back as YAML (for `forge run --config` in a subprocess), with Spark settings."""
    import yaml

    data = cfg.to_dict()
    data["spark"].update({"progress": False, "log_level": "ERROR", **spark})
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _manifests(out: Path) -> dict[str, dict]:
    return {o: json.loads((out / "write" / o / "manifest.json").read_text()) for o in ("stage1", "stage2")}
