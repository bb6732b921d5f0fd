"""The ``doctest`` extractor: documented examples of Python APIs, run, as instruction-response pairs.

A docstring's doctest (``>>> code`` and the output its author saw) is the most grounded example a library has.
For each ``tool_doc`` record read from Python source (``corpus.apis.pysource``), each doctest block becomes
one pair: the request from the prose just before the block (or the function's summary), the answer the session
with its **real** output and what the function does.

**Running.** Blocks run with :mod:`doctest` in a sandboxed worker process (``corpus.trajectories.python``'s
guard: no network, no processes, no writes outside a scratch folder; memory and CPU limits; a CPU-time limit per
block, and a wall-clock one for blocks that wait), with ``random`` and numpy's generators seeded before each block
(an unseeded ``default_rng()`` too), so the same block gives the same output and verdict in every run, in the
namespace of the record's module, imported there and never in the Spark worker itself. A
block is ``verified`` when every example's output matches the documented one (``ELLIPSIS``,
``NORMALIZE_WHITESPACE``); one whose real output differs still makes a pair, with the real output (the library
changed since its docs were written); one that raises where the docs show none, times out or cannot import its
module is rejected (``doctest_failed``, with what happened). With ``doctest_run`` off, blocks are not run and
pairs carry the documented output, marked so.
"""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import sys
import tempfile

from corpus.extract import rules

# a block's limit is CPU time (the same in every run, however busy the machine), with a wall-clock limit only for
# blocks that wait rather than compute; the first block of a module imports it (sympy, pandas: a few seconds)
BLOCK_CPU_SECONDS = 15
BLOCK_SECONDS = 90.0
WORKER_CPU_SECONDS = 600
# address space, not memory in use: numpy, polars and pyspark reserve large arenas when imported
WORKER_MEMORY_BYTES = 4 << 30
# names that projects' own doctest setups provide (numpy's and pandas' conftest put `np` and `pd` in every
# doctest's namespace); imported only when a block uses them and the package is installed
CONVENTIONAL = {
    "np": "numpy",
    "pd": "pandas",
    "pl": "polars",
    "nx": "networkx",
    "plt": "matplotlib.pyplot",
    "mpl": "matplotlib",
    "sp": "scipy",
    "pa": "pyarrow",
    "pq": "pyarrow.parquet",
}
MAX_BLOCKS = 3  # per record: the first blocks are the documented, simplest uses

RUNNER = (
    f"CONVENTIONAL = {CONVENTIONAL!r}\nBLOCK_CPU_SECONDS = {BLOCK_CPU_SECONDS!r}\n"
    + r"""
import doctest, re, traceback, random, signal

class CpuLimit(KeyboardInterrupt):
    # a KeyboardInterrupt: doctest's runner lets it through, so the block stops at once
    pass

def _over_budget(signum, frame):
    raise CpuLimit(f"over {BLOCK_CPU_SECONDS} s of CPU")

signal.signal(signal.SIGPROF, _over_budget)

def reseed():
    # the same draws in every run: random's, numpy's global generator, and numpy's default_rng() without a seed
    random.seed(0)
    np = sys.modules.get("numpy")
    if np is None:
        return
    np.random.seed(0)
    if not getattr(np.random.default_rng, "forge_seeded", False):
        original = np.random.default_rng
        def default_rng(seed=None, *args, **kwargs):
            return original(0 if seed is None else seed, *args, **kwargs)
        default_rng.forge_seeded = True
        np.random.default_rng = default_rng
# libraries load their native code through ctypes at import (the guard's hook reads DENY at each event)
DENY = tuple(d for d in DENY if d != "ctypes.")

class Recorder(doctest.DocTestRunner):
    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.seen = {}
    def _index(self, test, example):
        return next(i for i, e in enumerate(test.examples) if e is example)
    def report_start(self, out, test, example):
        pass
    def report_success(self, out, test, example, got):
        self.seen[self._index(test, example)] = {"status": "same", "got": got}
    def report_failure(self, out, test, example, got):
        self.seen[self._index(test, example)] = {"status": "differs", "got": got}
    def report_unexpected_exception(self, out, test, example, exc_info):
        self.seen[self._index(test, example)] = {"status": "raised", "got": "".join(
            traceback.format_exception_only(exc_info[0], exc_info[1]))[-400:]}

FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
out = sys.stdout  # the protocol's channel: what imports print goes to a buffer, emptied per request
for line in sys.stdin:
    req = json.loads(line)
    sys.stdout = __import__("io").StringIO()
    signal.setitimer(signal.ITIMER_PROF, BLOCK_CPU_SECONDS)  # CPU time of this process, imports included
    try:
        globs = dict(vars(importlib.import_module(req["module"])))
        for alias, name in CONVENTIONAL.items():
            if alias not in globs and re.search(r"(?<![\w.])" + alias + r"\.", req["doctest"]):
                try:
                    globs[alias] = importlib.import_module(name)
                except ImportError:
                    pass
        examples = doctest.DocTestParser().get_examples(req["doctest"])
        reseed()
        runner = Recorder(optionflags=FLAGS, verbose=False)
        runner.run(doctest.DocTest(examples, globs, req["name"], None, 0, None), out=lambda s: None,
                   clear_globs=True)
        answer = {"ok": True, "examples": [runner.seen.get(i) for i in range(len(examples))]}
    except BaseException as err:
        answer = {"ok": False, "code": type(err).__name__, "message": str(err)[:400]}
    signal.setitimer(signal.ITIMER_PROF, 0)
    out.write(json.dumps(answer) + "\n")
    out.flush()
"""
)


class DoctestBox:
    """One sandboxed worker for a batch's doctests; restarted when a block kills or hangs it."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen | None = None
        self._dir: tempfile.TemporaryDirectory | None = None

    def __enter__(self) -> DoctestBox:
        self._dir = tempfile.TemporaryDirectory(prefix="forge-doctest-")
        return self

    def __exit__(self, *exc) -> None:
        self._stop()
        if self._dir is not None:
            self._dir.cleanup()

    def _start(self) -> None:
        from corpus.trajectories.python import GUARD, _limits

        env = {
            "PATH": "/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "PYTHONHASHSEED": "0",
            "HOME": self._dir.name,
            "MPLBACKEND": "Agg",
            "OPENBLAS_NUM_THREADS": "1",
            "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
            "NUMBA_DISABLE_JIT": "1",
            "COLUMNS": "80",
        }
        self._proc = subprocess.Popen(
            [sys.executable, "-I", "-c", GUARD + RUNNER],
            cwd=self._dir.name,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            preexec_fn=(lambda: _limits(WORKER_CPU_SECONDS, WORKER_MEMORY_BYTES)) if os.name == "posix" else None,
        )

    def _stop(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            self._proc = None

    def run(self, module: str, name: str, doctest_text: str) -> dict:
        """{ok, examples: [{status: same | differs | raised, got} or None when skipped]} or {ok: False, code,
        message}. The examples run in order in one namespace, as doctest runs a docstring."""
        if self._proc is None or self._proc.poll() is not None:
            self._start()
        try:
            self._proc.stdin.write(json.dumps({"module": module, "name": name, "doctest": doctest_text}) + "\n")
            self._proc.stdin.flush()
        except (BrokenPipeError, OSError):
            self._stop()
            return {"ok": False, "code": "SandboxDied", "message": "the worker exited"}
        ready, _, _ = select.select([self._proc.stdout], [], [], BLOCK_SECONDS)
        if not ready:
            self._stop()
            return {"ok": False, "code": "Timeout", "message": f"no result in {BLOCK_SECONDS:.0f} s (wall clock)"}
        line = self._proc.stdout.readline()
        if not line:
            self._stop()
            return {"ok": False, "code": "SandboxDied", "message": "the worker exited (memory or CPU limit)"}
        try:
            return json.loads(line)
        except ValueError:  # something wrote to the protocol channel behind the worker's back
            self._stop()
            return {"ok": False, "code": "SandboxDied", "message": "the worker's reply was unreadable"}


_SHARED: DoctestBox | None = None


def shared_box() -> DoctestBox:
    """This Python worker's doctest runner, started once and reused by every task the worker runs (Spark
    reuses its Python workers), so each library is imported once per worker, not once per task."""
    global _SHARED
    if _SHARED is None:
        import atexit

        _SHARED = DoctestBox().__enter__()
        atexit.register(_SHARED.__exit__, None, None, None)
    return _SHARED


def _shown_output(got: str) -> str:
    """A real output as a doctest shows it: tracebacks cut to their header and last line (no machine paths),
    other paths made package-relative."""
    from corpus.text.paths import scrub_paths

    if got.startswith("Traceback (most recent call last):"):
        last = [line for line in got.rstrip("\n").split("\n") if line and not line.startswith(" ")][-1]
        got = f"Traceback (most recent call last):\n  ...\n{last}\n"
    return scrub_paths(got)


def _session(block: dict, outputs: list[dict | None] | None) -> str:
    """The block as a console session, each example followed by its output (the real one when run; the
    documented one for an example that did not run or whose output matched)."""
    import doctest

    lines = []
    examples = doctest.DocTestParser().get_examples(block["doctest"])
    for k, ex in enumerate(examples):
        src = ex.source.rstrip("\n").split("\n")
        lines += [f">>> {src[0]}"] + [f"... {s}" for s in src[1:]]
        seen = outputs[k] if outputs is not None and k < len(outputs) else None
        got = _shown_output(seen["got"]) if seen and seen["status"] == "differs" else ex.want
        if got.strip():
            lines += got.rstrip("\n").split("\n")
    return "\n".join(lines)


_PARAM_LINE = re.compile(r"^\*{0,2}\w+\s*:\s*\S")  # NumPy style "name : type" / Google style "name: text"


def summary_of(tool: dict) -> str:
    """The first sentence of the description's first paragraph (its summary line)."""
    return rules._first_sentence((tool.get("description") or "").split("\n\n")[0])


def _request(tool: dict, block: dict) -> str:
    name = tool.get("sdk_name") or tool.get("operation_id") or ""
    where = f"`{name}` ({tool.get('provider')} {tool.get('version')})".replace(" )", ")")
    prose = _prose(block)
    first = prose.split(" ", 1)[0] if prose else ""
    if prose and len(prose.split()) >= 3 and first.isalpha() and rules.verb_base(first) == first.lower():
        return f"{prose.rstrip(':.').rstrip()} with {where}, and show the output."
    summary = rules.imperative(summary_of(tool))
    task = f"Use {where} to {summary[0].lower()}{summary[1:]}" if summary else f"Show how to call {where}"
    return f"{task.rstrip('.')}, and show the output." + (f"\n\n{prose}" if prose else "")


def doctest_pairs(tool: dict, box: DoctestBox | None, limit: int = MAX_BLOCKS) -> list[dict]:
    """The pair of a Python tool record's first doctest blocks (a list of one, or none): {instruction, response,
    status, detail, verified, executed, blocks}. The blocks run together, in order, as doctest runs a docstring
    (a later block uses an earlier one's names), and the pair holds them all, each after its prose, so no
    block refers to names the reader never saw. A block that fails ends the pair before it; when the first
    fails, ``status`` is ``failed`` (the caller rejects it). ``box`` None: not run, documented outputs."""
    import doctest

    if tool.get("spec_format") != "python":
        return []
    blocks = []
    for raw in (tool.get("examples") or [])[:limit]:
        try:
            block = json.loads(raw) if isinstance(raw, str) else raw
        except ValueError:
            continue
        if isinstance(block, dict) and block.get("doctest"):
            blocks.append(block)
    if not blocks:
        return []
    sizes = [len(doctest.DocTestParser().get_examples(b["doctest"])) for b in blocks]
    ran = None
    if box is not None:
        ran = box.run(tool.get("api") or "", tool.get("operation_id") or "", "\n\n".join(b["doctest"] for b in blocks))
        if not ran.get("ok"):
            return [_failed(tool, blocks[0], f"{ran.get('code')}: {ran.get('message')}")]
    parts, verified, start = [], True, 0
    for k, (block, size) in enumerate(zip(blocks, sizes)):
        outputs = ran["examples"][start : start + size] if ran is not None else None
        start += size
        if outputs is not None:
            seen = [e for e in outputs if e]
            raised = [e for e in seen if e["status"] == "raised"]
            if raised or not seen:
                if k == 0:
                    return [_failed(tool, block, raised[0]["got"].strip() if raised else "every example is skipped")]
                break
            verified = verified and all(e["status"] == "same" for e in seen)
        prose = _prose(block) if k else ""  # the first block's prose is in the request
        parts.append((f"{prose}\n\n" if prose else "") + f"```pycon\n{_session(block, outputs)}\n```")
    summary = summary_of(tool)
    response = "\n\n".join(parts) + (f"\n\n{summary}" if summary else "")
    return [
        {
            "instruction": _request(tool, blocks[0]),
            "response": response,
            "status": "ok",
            "detail": None,
            "verified": ran is not None and verified,
            "executed": ran is not None,
            "blocks": len(parts),
        }
    ]


def _prose(block: dict) -> str:
    prose = (block.get("prose") or "").strip()
    return "" if prose.startswith((":", "@", "..")) or _PARAM_LINE.match(prose) else prose


def _failed(tool: dict, block: dict, detail: str) -> dict:
    return {
        "instruction": _request(tool, block),
        "response": "",
        "status": "failed",
        "detail": detail,
        "verified": False,
        "executed": False,
        "blocks": 0,
    }
