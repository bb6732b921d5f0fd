"""An executable Python environment: documented functions of the standard library run in a sandboxed
subprocess, and their real return values (or real exceptions) become tool results.

**The sandbox.** One worker process per API group (a module), started with ``python -I`` in a throwaway
directory, with resource limits (address space, CPU seconds, file size) and an audit hook (PEP 578) installed
before any call that refuses network access, new processes, ``ctypes`` and any write outside that directory.
Each call has a wall-clock limit; a worker that overruns it is killed and replaced. Only modules on an allow-list
of side-effect-free modules (text, numbers, encodings, dates, parsing) are imported at all.

**Tasks.** A single call of a module-level function, with values made from its parameters' names, defaults and
types; or a chain of two, where the second function takes the first one's real result. A task is kept when every
call returned, and running the same calls again gives the same results (the output check: a pure function's
outcome is its result; nondeterministic functions are refused by it).
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import tempfile
from typing import Any

from corpus.trajectories.plans import Outcome, Plan, Ref, Run, Step
from corpus.trajectories.values import number, pick

# modules whose functions compute from their arguments only (no files, processes, network, clocks or randomness)
SAFE_MODULES = frozenset(
    {
        "base64",
        "binascii",
        "bisect",
        "calendar",
        "cmath",
        "colorsys",
        "difflib",
        "email.utils",
        "fnmatch",
        "fractions",
        "heapq",
        "html",
        "ipaddress",
        "json",
        "keyword",
        "math",
        "operator",
        "posixpath",
        "quopri",
        "shlex",
        "statistics",
        "string",
        "textwrap",
        "unicodedata",
        "urllib.parse",
        "xml.sax.saxutils",
        "zlib",
        "email.quoprimime",
        "email.base64mime",
        "curses.ascii",
        "decimal",
        "datetime",
        "copy",
        "reprlib",
        "pprint",
        "codecs",
        "encodings.idna",
        "encodings.punycode",
        "stringprep",
        "ast",
        "tomllib",
        "plistlib",
        "struct",
    }
)
CALL_SECONDS = 5.0
MEMORY_BYTES = 1 << 30

# the sandbox's guard, run first in every worker (the doctest runner of `extract` uses it too)
GUARD = r"""
import importlib, json, os, sys
ROOT = os.path.realpath(os.getcwd())
DENY = ("socket.", "subprocess.", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty",
        "os.kill", "ctypes.", "webbrowser.", "urllib.Request", "http.client.", "ftplib.", "smtplib.", "pty.")
PATHS = ("os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.chmod", "os.chown", "os.truncate", "os.link",
         "os.symlink", "shutil.rmtree", "shutil.move", "os.utime")

def inside(path):
    try:
        return os.path.realpath(os.fsdecode(path)).startswith(ROOT + os.sep)
    except Exception:
        return False

def hook(event, args):
    if event.startswith(DENY):
        raise PermissionError("sandbox: " + event + " refused")
    if event in PATHS and not all(inside(a) for a in args if isinstance(a, (str, bytes))):
        raise PermissionError("sandbox: " + event + " outside the scratch directory refused")
    if event == "open" and args and isinstance(args[0], (str, bytes)):
        mode, flags = (args[1] or "r"), (args[2] or 0)
        writes = any(c in str(mode) for c in "wax+") or flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)
        if writes and not inside(args[0]):
            raise PermissionError("sandbox: writing outside the scratch directory refused")

sys.addaudithook(hook)
"""

WORKER = (
    GUARD
    + r"""
import time
NOW = 1769932800.0  # 2026-02-01 08:00 UTC: a function that reads the clock (email.utils.formatdate) gives the
time.time = lambda: NOW  # same answer in every run, as the AWS environment's frozen clock does
time.time_ns = lambda: int(NOW) * 10**9

def plain(v, depth=0):
    if v is None or isinstance(v, (bool, int, str)):
        return v if not isinstance(v, str) else v[:2000]
    if isinstance(v, float):
        return v if v == v and v not in (float("inf"), float("-inf")) else repr(v)
    if isinstance(v, (list, tuple)) and depth < 4:
        return [plain(x, depth + 1) for x in list(v)[:50]]
    if isinstance(v, dict) and depth < 4:
        return {str(k): plain(x, depth + 1) for k, x in list(v.items())[:50]}
    return {"repr": repr(v)[:400], "type": type(v).__name__}

out = sys.stdout  # the protocol's channel: what the called code prints goes to a buffer, emptied per call
for line in sys.stdin:
    req = json.loads(line)
    sys.stdout = __import__("io").StringIO()
    try:
        obj = importlib.import_module(req["module"])
        for part in req["name"].split("."):
            obj = getattr(obj, part)
        try:
            value = obj(**req["args"])
        except TypeError as err:
            if "takes no keyword" not in str(err) and "positional-only" not in str(err):
                raise
            value = obj(*req["args"].values())  # a C function's positional-only parameters
        answer = {"ok": True, "result": plain(value)}
    except BaseException as err:
        answer = {"ok": False, "code": type(err).__name__, "message": str(err)[:400]}
    out.write(json.dumps(answer) + "\n")
    out.flush()
"""
)


def _limits(cpu_seconds: int = 60, memory_bytes: int = MEMORY_BYTES) -> None:  # runs in the child before exec
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds))
    resource.setrlimit(resource.RLIMIT_FSIZE, (16 << 20, 16 << 20))


def module_of(record: dict) -> str | None:
    """The module of a documented module-level function the sandbox may run, else None."""
    api, op = record.get("api") or "", record.get("operation_id") or ""
    name = op[len(api) + 1 :] if op.startswith(api + ".") else ""
    if api in SAFE_MODULES and name.isidentifier() and not name.startswith("_") and record.get("kind") == "function":
        return api
    return None


class Sandbox:
    """A worker process for calls into one module; a context manager."""

    def __init__(self, module: str) -> None:
        if module not in SAFE_MODULES:
            raise ValueError(f"{module} is not on the sandbox's allow-list")
        self.module = module
        self._proc: subprocess.Popen | None = None
        self._dir: tempfile.TemporaryDirectory | None = None

    def __enter__(self) -> Sandbox:
        self._dir = tempfile.TemporaryDirectory(prefix="forge-sandbox-")
        self._start()
        return self

    def _start(self) -> None:
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONHASHSEED": "0", "HOME": self._dir.name}
        self._proc = subprocess.Popen(
            [sys.executable, "-I", "-c", WORKER],
            cwd=self._dir.name,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            preexec_fn=_limits if os.name == "posix" else None,
        )

    def __exit__(self, *exc) -> None:
        self._stop()
        if self._dir is not None:
            self._dir.cleanup()

    def _stop(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            self._proc = None

    def call(self, function: str, arguments: dict) -> Outcome:
        """Run ``module.function(**arguments)``; the real result, or the real exception."""
        name = function[len(self.module) + 1 :] if function.startswith(self.module + ".") else function
        if not name.isidentifier():  # a module-level function only: no path into other modules
            return Outcome(
                False, error_code="NotAllowed", error_message=f"{function} is not a function of {self.module}"
            )
        if self._proc is None or self._proc.poll() is not None:
            self._start()
        try:
            self._proc.stdin.write(json.dumps({"module": self.module, "name": name, "args": arguments}) + "\n")
            self._proc.stdin.flush()
        except (BrokenPipeError, OSError):
            self._stop()
            return Outcome(False, error_code="SandboxDied", error_message="the worker exited")
        ready, _, _ = select.select([self._proc.stdout], [], [], CALL_SECONDS)
        if not ready:
            self._stop()
            return Outcome(False, error_code="Timeout", error_message=f"no result in {CALL_SECONDS:.0f} s")
        line = self._proc.stdout.readline()
        if not line:
            self._stop()
            return Outcome(False, error_code="SandboxDied", error_message="the worker exited (memory or CPU limit)")
        try:
            answer = json.loads(line)
        except ValueError:  # something wrote to the protocol channel behind the worker's back
            self._stop()
            return Outcome(False, error_code="SandboxDied", error_message="the worker's reply was unreadable")
        if not answer["ok"]:
            return Outcome(False, error_code=answer["code"], error_message=answer["message"])
        full = json.dumps(answer["result"], ensure_ascii=False, sort_keys=True)
        return Outcome(True, _shown(answer["result"]), full=full)


def _shown(value: Any) -> Any:
    if isinstance(value, list):
        return [_shown(v) for v in value[:10]]
    if isinstance(value, dict):
        return {k: _shown(v) for k, v in list(value.items())[:10]}
    if isinstance(value, str):
        return value[:400]
    return value


# values by parameter name (seeded choice among real-looking ones)
TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "Invoice #2291 for ACME Corp. is due on 2026-03-01.",
    "Hello, World & <friends>!",
    "café naïve résumé",
    "    indented line\n    second line",
    "To be, or not to be, that is the question.",
    "name=Ada Lovelace; role=analyst; team=engines",
    "https://example.org/search?q=agent tools&lang=en",
]
NUMBERS = [3, 7, 12, 42, 2024, 255, 1000]
FLOATS = [0.5, 2.75, 3.14159, 9.81, 0.25]
SEQUENCES = [[4, 8, 15, 16, 23, 42], [2.5, 3.1, 4.7, 1.9, 3.3], [10, 20, 30], [1, 1, 2, 3, 5, 8, 13]]
WORDS = ["apple", "python", "colour", "analyse", "receive"]
NAMED = {
    "year": [2024, 2025, 1999, 2000, 1900],
    "month": [1, 2, 6, 12],
    "day": [1, 15, 28],
    "width": [20, 30, 40],
    "word": WORDS,
    "possibilities": [["ape", "apple", "peach", "puppy"], ["python", "pylon", "typhoon"]],
    "url": ["https://docs.python.org/3/library/index.html?highlight=json#modules"],
    "path": ["docs/guide/intro.md"],
    "pattern": ["*.txt", "data_??.csv"],
    "name": ["report.txt", "LATIN SMALL LETTER A"],
    "address": ["192.168.10.0/24", "10.0.0.1"],
    "r": [0.2],
    "g": [0.4],
    "b": [0.6],
    "h": [0.5],
    "s": TEXTS,
    "v": [0.8],
    "x": FLOATS,
    "y": FLOATS,
    "a": SEQUENCES,
    "data": SEQUENCES,
    "iterable": SEQUENCES,
    "seq": SEQUENCES,
    "n": [2, 3, 5],
    "k": [2, 3],
    "text": TEXTS,
    "string": TEXTS,
    "source": TEXTS,
    "chars": [" .,"],
    "sep": [", "],
    "char": ["a", "~"],
    "c": ["a", "Z", "7"],
    "value": NUMBERS,
    "number": NUMBERS,
    "num": NUMBERS,
    "i": NUMBERS,
    "ordinal": [65, 233],
    "base": [2, 16],
    "ndigits": [2],
    "prefix": ["> "],
    "filename": ["notes.txt"],
    "encoding": ["utf-8"],
    "errors": ["strict"],
}


def argument_value(param: dict, seed: str) -> Any:
    """A value for a documented parameter: by its name, else its default's type, else its declared type."""
    name = param["name"].lstrip("*")
    if name in NAMED:
        return pick(f"{seed}:{name}", NAMED[name])
    default = param.get("default")
    if default not in (None, ""):
        try:
            d = json.loads(default)
        except (TypeError, ValueError):
            d = None
        if isinstance(d, bool):
            return not d
        if isinstance(d, int):
            return pick(f"{seed}:{name}", [v for v in (2, 3, 5, 10) if v != d] or [d])
        if isinstance(d, float):
            return pick(f"{seed}:{name}", [0.25, 0.5, 0.75])
    typ = (param.get("type") or "").lower()
    if typ in ("integer", "int"):
        return pick(f"{seed}:{name}", NUMBERS)
    if typ in ("number", "float"):
        return pick(f"{seed}:{name}", FLOATS)
    if typ in ("array", "list"):
        return pick(f"{seed}:{name}", SEQUENCES)
    return pick(f"{seed}:{name}", TEXTS)


def plan(function: dict, follower: dict | None, seed: str) -> Plan:
    """One call of ``function`` (a tool_doc record), or two when ``follower`` takes its result."""
    args = {p["name"]: argument_value(p, seed) for p in function["parameters"] if p["required"]}
    optional = [p for p in function["parameters"] if not p["required"] and not p["name"].startswith("*")]
    if optional and number(f"{seed}:opt", 0, 2) == 0:
        p = pick(f"{seed}:optp", optional)
        args[p["name"]] = argument_value(p, seed)
    steps = [Step(function["operation_id"], args, stated=dict(args))]
    if follower is not None:
        required = [p for p in follower["parameters"] if p["required"]]
        fargs: dict = {required[0]["name"]: Ref(0, ())}
        fargs.update({p["name"]: argument_value(p, f"{seed}:2") for p in required[1:]})
        steps.append(
            Step(follower["operation_id"], fargs, stated={k: v for k, v in fargs.items() if not isinstance(v, Ref)})
        )
    return Plan(function["operation_id"], steps, None, "reproducible")


def execute(box: Sandbox, plan_: Plan) -> Run:
    """Run the calls; then run them again: the same results, or the task is refused (the output check)."""
    from corpus.trajectories.plans import resolve

    calls, outcomes = [], []
    for step in plan_.steps:
        try:
            args = {m: resolve(v, outcomes) for m, v in step.arguments.items()}
        except (KeyError, IndexError, TypeError) as err:
            return Run(calls, outcomes, "skipped", f"missing_output: {err}")
        got = box.call(step.operation, args)
        calls.append((step.operation, args))
        outcomes.append(got)
        if not got.ok:
            return Run(
                calls,
                outcomes,
                "skipped",
                f"call_failed: {step.operation}: {got.error_code}: {got.error_message[:200]}",
            )
        if got.result is None or " at 0x" in got.full:  # None, or an object shown by its address
            return Run(calls, outcomes, "skipped", f"no_result: {step.operation} returned nothing to report")
    again = [box.call(op, args) for op, args in calls]
    if [o.full for o in again] != [o.full for o in outcomes]:
        return Run(calls, outcomes, "state_mismatch: the same calls gave other results (not reproducible)", "pass")
    return Run(calls, outcomes, "pass", "pass")


def report(op: str, outcome: Outcome) -> str:
    """The assistant's words on one result."""
    value = outcome.result
    if isinstance(value, dict) and set(value) == {"repr", "type"}:
        shown = value["repr"]
    else:
        shown = json.dumps(value, ensure_ascii=False)
    if len(shown) > 300:
        shown = shown[:297] + "…"
    if isinstance(value, list):
        return f"`{op}` returned {len(value)} item{'s' if len(value) != 1 else ''}: {shown}."
    return f"`{op}` returned {shown}."


# first parameters that take "the data" (so an earlier result fits them), unlike ``year`` or ``width``
GENERIC = frozenset(
    {
        "s",
        "text",
        "string",
        "data",
        "obj",
        "iterable",
        "seq",
        "sequence",
        "value",
        "x",
        "a",
        "source",
        "input",
        "lines",
        "items",
        "v",
        "b",
        "st",
        "line",
        "header",
        "addr",
        "address",
        "node_or_string",
        "c",
        "ch",
        "fp",
        "iterables",
        "string_or_bytes",
    }
)


def takes_one(record: dict) -> bool:
    """Whether a function can take an earlier result: one or two required parameters, the first one "the data"."""
    required = [p for p in record["parameters"] if p["required"]]
    return 1 <= len(required) <= 2 and required[0]["name"] in GENERIC
