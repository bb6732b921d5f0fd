"""An executable AWS environment: botocore calls run against moto's in-process service mocks (real request
validation, real response shapes, real error codes and messages), and the task plans (APIGen-MT blueprints,
Prabhakar et al. 2025, arXiv 2504.03601) that run in it.

**Dependency graph.** For one service, a *root* operation makes a resource (``CreateQueue``, ``RunInstances``,
``CreateTable``). Its *identity* is what later calls name the resource by: the root's required string
arguments (``QueueName``, chosen by the user) and the identifier-like fields of its real output (``QueueUrl``,
``Instances[0].InstanceId``, ``KeyMetadata.Arn``). Another operation *follows* the root when every required
argument it has is either part of that identity (same member name; ``InstanceIds`` takes ``[InstanceId]``;
``ResourceArn`` takes an ``…Arn``) or a value a user could choose (not an id, ARN or URL), and at least one comes
from the identity. Listing operations of the resource (``ListQueues``) follow it too.

**A task** is the root, then 1–4 followers (changes before reads), sometimes a deletion, with later arguments
taken from earlier real results. Its expected final state is a *probe*: a read-only follower run after the task,
which must find the resource (or, after a deletion, must not).

**Execution.** Each task runs in a fresh mock (moto's state reset), with moto's random ids seeded from the task
(its own generator, the stdlib's, and ``uuid4`` through ``os.urandom`` during a call) and the clock frozen at a
seeded instant that ticks per call, so the same task gives the same results in every run. The mock is started
and stopped around each API group, never left patched in the worker.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import os
import random
import re
import sys
import warnings

from corpus.trajectories.plans import Outcome, Plan, Ref, Run, Step, jsonable, resolve  # noqa: F401 (re-exported)
from corpus.trajectories.values import REGION, Values, number, pick, words

CREATE = ("Create", "Register", "Run", "Allocate", "Import", "Put")
READ = ("Describe", "Get", "List", "Head")
DELETE = ("Delete", "Remove", "Terminate", "Deregister", "Release")
ID_END = ("id", "ids", "arn", "arns", "url", "urls", "identifier", "identifiers")


def verb(op: str) -> str:
    m = re.match(r"[A-Z][a-z]+", op)
    return m.group(0) if m else op


def noun(op: str) -> str:
    """``CreateDBInstance`` → ``DBInstance``; ``ListQueues`` → ``Queue``."""
    rest = op[len(verb(op)) :] or op
    return (
        re.sub(r"(?<=[a-z])(ies)$", "y", re.sub(r"(?<=[a-z])s$", "", rest))
        if op.startswith(("List", "Describe"))
        else rest
    )


def is_id(member: str) -> bool:
    w = words(member)
    return bool(w) and (w[-1] in ID_END or member.endswith(("ARN", "Arn", "Id", "Url")))


class Service:
    """One botocore service's model, read from the installed botocore, with its dependency graph."""

    def __init__(self, client_name: str) -> None:
        self.client_name = client_name
        self.model = session().get_service_model(client_name)
        self.ops = {name: self.model.operation_model(name) for name in self.model.operation_names}
        self._followers: dict[str, dict] = {}
        try:
            loaded = session().get_component("data_loader").load_service_model(client_name, "examples-1")
        except Exception:  # no examples for this service
            loaded = {}
        self.examples: dict[str, list] = {}
        self.example_inputs: dict[str, list[dict]] = {}
        for op, cases in (loaded.get("examples") or {}).items():
            for case in cases if isinstance(cases, list) else []:
                if not isinstance(case, dict) or "example-" in json.dumps(case.get("input")):
                    continue  # placeholder-like values ("example-creator-request-id-0001") are not kept
                if isinstance(case.get("input"), dict) and case["input"]:
                    self.example_inputs.setdefault(op, []).append(case["input"])
                for k, v in (case.get("input") or {}).items():
                    if isinstance(v, (str, int)) and not isinstance(v, bool) and v not in self.examples.get(k, []):
                        self.examples.setdefault(k, []).append(v)

    def required(self, op: str) -> dict:
        shape = self.ops[op].input_shape
        return {m: shape.members[m] for m in (shape.required_members if shape else [])}

    def output_ids(self, op: str) -> list[tuple[str, tuple]]:
        """(member name, path) of identifier-like strings in an operation's output, up to three levels deep."""
        found: list[tuple[str, tuple]] = []

        def walk(shape, path: tuple, depth: int) -> None:
            if shape is None or depth > 3:
                return
            if shape.type_name == "structure":
                for m, s in shape.members.items():
                    if s.type_name == "string" and is_id(m) or (m.endswith("Name") and s.type_name == "string"):
                        found.append((m, path + (m,)))
                    elif s.type_name in ("structure", "list"):
                        walk(s, path + (m,), depth + 1)
            elif shape.type_name == "list":
                walk(shape.member, path + (0,), depth + 1)

        walk(self.ops[op].output_shape, (), 0)
        return found

    def own_names(self, op: str) -> set[str]:
        """Required members that name the resource ``op`` creates (``CreateTable``: ``TableName``)."""
        last = (words(noun(op)) or [""])[-1]
        return {m for m in self.required(op) if last in words(m)}

    def roots(self) -> list[str]:
        """Operations that make a resource from values a user chooses. ``PutObject`` (needs a ``Bucket``) and
        ``CreateBackup`` (needs a ``TableName``) are not roots: they name a resource another operation creates."""
        made = {m: op for op in self.ops if verb(op) == "Create" for m in self.own_names(op)}
        return [
            op
            for op in sorted(self.ops)
            if verb(op) in CREATE
            and (self.required(op) or verb(op) == "Create" and self.output_ids(op))
            and not any(is_id(m) for m in self.required(op))
            and not any(made.get(m, op) != op for m in self.required(op))
        ]

    def link(self, root: str, op: str) -> dict | None:
        """How ``op`` takes its required arguments after ``root``: member → ("input", name) | ("output", member,
        path, as_list) | ("make",); None when it does not follow the root."""
        if op == root:
            return None
        inputs = {m for m, s in self.required(root).items() if s.type_name == "string"}
        outputs = self.output_ids(root)
        how: dict = {}
        linked = False
        for m, shape in self.required(op).items():
            as_list = shape.type_name == "list"
            single = m[:-1] if as_list and m.endswith("s") else m
            out = next((o for o in outputs if o[0] == single), None)
            if out is None and single in ("ResourceArn", "ResourceARN", "Arn", "ResourceName"):
                out = next((o for o in outputs if o[0].endswith(("Arn", "ARN"))), None)
            if out is None and single.endswith("Id") and (words(noun(root)) or ["?"])[-1] in words(single):
                # AWS takes the ARN (or name) where a resource's own ...Id is asked: SecretId, KeyId
                out = next((o for o in outputs if o[0] in ("ARN", "Arn", "Name")), None)
            if single in inputs and not is_id(single):
                how[m] = ("input", single)
                linked = True
            elif out is not None:
                how[m] = ("output", out[0], out[1], as_list)
                linked = True
            elif single in inputs:
                how[m] = ("input", single)
                linked = True
            elif is_id(m):
                return None
            else:
                how[m] = ("make",)
        if not linked:
            own = noun(root)
            if self.required(op) or verb(op) not in ("List", "Describe") or noun(op) != own:
                return None
        return how

    def checkable(self, root: str) -> bool:
        """Some read-only follower can find what ``root`` makes by its identity alone (the state check)."""
        return any(
            verb(op) in READ and all(h[0] != "make" for h in how.values()) for op, how in self.followers(root).items()
        )

    def followers(self, root: str) -> dict[str, dict]:
        if root not in self._followers:
            self._followers[root] = {op: how for op in sorted(self.ops) if (how := self.link(root, op)) is not None}
        return self._followers[root]


def plan(service: Service, root: str, seed: str, values: Values, exclude: frozenset = frozenset()) -> Plan | None:
    """A seeded task about the resource ``root`` makes, or None when no probe can check its final state.
    ``exclude``: operations not to use (found not to run here)."""
    follow = {op: how for op, how in service.followers(root).items() if op not in exclude}
    probes = [op for op, how in follow.items() if verb(op) in READ and all(h[0] != "make" for h in how.values())]
    if not probes:
        return None
    changes = [op for op in follow if verb(op) not in READ and verb(op) not in DELETE and verb(op) not in CREATE[:4]]
    reads = [op for op in follow if verb(op) in READ]
    deletes = [op for op in follow if verb(op) in DELETE and op[len(verb(op)) :] == root[len(verb(root)) :]]
    n_changes = min(len(changes), number(f"{seed}:nc", 0, 2))
    n_reads = min(len(reads), number(f"{seed}:nr", 1, 2))
    chosen = _sample(changes, n_changes, f"{seed}:c") + _sample(reads, n_reads, f"{seed}:r")
    delete = deletes and number(f"{seed}:del", 0, 2) == 0
    if delete:
        chosen.append(pick(f"{seed}:d", deletes))
    root_args = {
        m: values.value(s, m, noun(root), key=f"root.{m}", real=False) for m, s in service.required(root).items()
    }
    documented = service.example_inputs.get(root)
    if documented:
        # a documented example's arguments (their structure is valid for the service), named for this task
        example = pick(f"{seed}:docx", documented)
        root_args = {
            **json.loads(json.dumps(example)),
            **{
                m: v
                for m, v in root_args.items()
                if isinstance(v, str) and not is_id(m) and m in example and _names_resource(m)
            },
        }
    for m, s in service.ops[root].input_shape.members.items():
        if m not in root_args and m in ("Tags", "tags") and number(f"{seed}:tags", 0, 2) == 0:
            root_args[m] = values.value(s, m, noun(root), key=f"root.{m}")
    steps = [Step(root, dict(root_args), stated=dict(root_args))]
    for i, op in enumerate(chosen, 1):
        args, stated = {}, {}
        documented = service.example_inputs.get(op)
        if documented:  # a documented example's other arguments (valid structures), the resource's own identity
            base = pick(f"{seed}:{i}:docx", documented)
            args = {k: v for k, v in json.loads(json.dumps(base)).items() if k not in follow[op]}
            stated = dict(args)
        for m, how in follow[op].items():
            if how[0] == "input":
                args[m] = root_args[how[1]]
            elif how[0] == "output":
                args[m] = Ref(0, how[2], how[3])
            elif documented and m in documented[0]:
                args[m] = stated[m] = json.loads(
                    json.dumps(pick(f"{seed}:{i}:docx", documented).get(m, documented[0][m]))
                )
            else:
                shape = service.required(op)[m]
                args[m] = stated[m] = values.value(shape, m, noun(op), key=f"{i}.{m}")
        _everything(service, op, args)
        steps.append(Step(op, args, stated))
    probe_op = pick(f"{seed}:probe", probes)
    probe_args = {m: (root_args[h[1]] if h[0] == "input" else Ref(0, h[2], h[3])) for m, h in follow[probe_op].items()}
    recovery = False
    gets = [
        op
        for op in probes
        if verb(op) in ("Describe", "Get", "Head") and all(h[0] == "input" for h in follow[op].values()) and follow[op]
    ]
    if gets and not delete and number(f"{seed}:rec", 0, 5) == 0:
        check = pick(f"{seed}:rg", gets)
        steps.insert(0, Step(check, {m: root_args[h[1]] for m, h in follow[check].items()}))
        for s in steps[1:]:  # the root moved one place down
            s.arguments = {
                m: Ref(v.call + 1, v.path, v.as_list) if isinstance(v, Ref) else v for m, v in s.arguments.items()
            }
        probe_args = {m: Ref(v.call + 1, v.path, v.as_list) if isinstance(v, Ref) else v for m, v in probe_args.items()}
        recovery = True
    return Plan(root, steps, Step(probe_op, probe_args), "absent" if delete else "present", recovery)


def _everything(service: Service, op: str, args: dict) -> None:
    """Ask for all attributes where an operation takes a list of names with an ``All`` choice (SQS
    ``GetQueueAttributes``): without it the real answer is empty."""
    shape = service.ops[op].input_shape
    for m, s in shape.members.items() if shape else ():
        if m not in args and s.type_name == "list" and "All" in (getattr(s.member, "enum", None) or ()):
            args[m] = ["All"]


def _names_resource(member: str) -> bool:
    w = words(member)
    return bool(w) and w[-1] in ("name", "bucket", "identifier", "alias", "path")


def _sample(options: list[str], k: int, seed: str) -> list[str]:
    import hashlib

    return sorted(options, key=lambda o: hashlib.sha256(f"{seed}:{o}".encode()).hexdigest())[:k]


@functools.lru_cache(maxsize=1)
def session():
    """One botocore session per worker process: it caches the models and endpoint data it loads."""
    import botocore.session

    return botocore.session.get_session()


@functools.lru_cache(maxsize=None)
def supported(client_name: str, version: str = "") -> bool:
    """Whether moto mocks this botocore service (its endpoint URL is one moto intercepts), for the installed
    botocore's version of it. Nothing else is ever called: no request can leave the process."""
    from moto.backends import get_service_from_url

    session_ = session()
    if client_name not in session_.get_available_services():
        return False
    if version and version != session_.get_service_model(client_name).api_version:
        return False
    client = session_.create_client(client_name, region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    return get_service_from_url(client.meta.endpoint_url) is not None


class LeftProcess(RuntimeError):
    """A request no mock answered: it would have gone to the network."""


def _mocked_or_refused(stubber, request, event_name: str = "before-send", **kwargs):
    """moto's answer to a request; a request it does not answer is stopped here, never sent."""
    answer = stubber(event_name, request, **kwargs)
    if answer is None:
        raise LeftProcess(f"no mock answered {request.method} {request.url}; not sent")
    return answer


class Environment:
    """moto's in-process mocks for one service; use as a context manager around a group of tasks."""

    def __init__(self, client_name: str) -> None:
        self.client_name = client_name
        self._mock = None
        self._client = None
        self._clock = None
        self._ids: SeededIds | None = None
        self._random_state = None

    def __enter__(self) -> Environment:
        if not supported(self.client_name):
            raise ValueError(f"moto does not mock {self.client_name}: calls would leave the process")
        from botocore.config import Config
        from moto import mock_aws
        from moto.core.models import botocore_stubber

        self._random_state = random.getstate()  # moto also draws from the stdlib's generator: seeded per task
        self._mock = mock_aws()
        self._mock.start()
        self._mock.reset()
        self._client = session().create_client(
            self.client_name,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=Config(retries={"max_attempts": 0}, connect_timeout=2, read_timeout=10),
        )
        # moto answers in before-send; a session made before moto was imported lacks its handler, one made after
        # has it. Either way only this wrapper stays: it asks moto, and stops any request moto does not answer.
        events = self._client.meta.events
        events.unregister("before-send", botocore_stubber)
        events.register_first("before-send", functools.partial(_mocked_or_refused, botocore_stubber))
        return self

    def __exit__(self, *exc) -> None:
        self.stop_clock()
        if self._mock is not None:
            self._mock.stop()
        self._mock = self._client = None
        if self._random_state is not None:
            random.setstate(self._random_state)
            self._random_state = None

    def reset(self, seed: str) -> None:
        """Before a task: moto's random ids seeded, the clock moved to a seeded instant (ticking a second per
        reading, so the order of events is kept). The account's state stays (resetting some services' mocks
        costs more than the task): tasks of one group share an account, as a user's calls do, and find their
        resources by the names and ids their own calls gave; the state is fresh for each group."""
        from freezegun import freeze_time
        from moto.moto_api._internal import mock_random

        mock_random.seed(number(seed, 0, 2**31))
        random.seed(number(seed + ":random", 0, 2**31))
        self._ids = SeededIds(seed)
        start = dt.datetime(2026, 2, 1, 8, tzinfo=dt.timezone.utc) + dt.timedelta(
            minutes=number(seed + ":t", 0, 300 * 24 * 60)
        )
        if self._clock is None:  # started once per group: starting freezegun scans every loaded module
            self._clock = freeze_time(start, auto_tick_seconds=1)
            self._factory = self._clock.start()
        self._factory.move_to(start)

    def stop_clock(self) -> None:
        if self._clock is not None:
            self._clock.stop()
            self._clock = None

    def call(self, operation: str, arguments: dict) -> Outcome:
        """Run one call; the real result (without transport metadata) or the real error."""
        from botocore import xform_name
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            method = getattr(self._client, xform_name(operation))
            with warnings.catch_warnings(), _seeded_urandom(self._ids):
                warnings.simplefilter("ignore")  # moto's notes on its own error shapes are not the user's concern
                result = method(**arguments)
        except ClientError as err:
            e = err.response.get("Error") or {}
            return Outcome(
                False, error_code=str(e.get("Code") or "ClientError"), error_message=str(e.get("Message") or err)[:500]
            )
        except (BotoCoreError, ValueError, TypeError) as err:  # refused before sending: botocore's validation
            return Outcome(False, error_code=type(err).__name__, error_message=str(err)[:500])
        except NotImplementedError as err:
            return Outcome(False, error_code="NotImplemented", error_message=str(err)[:300])
        except LeftProcess as err:
            return Outcome(False, error_code="NotMocked", error_message=str(err)[:300])
        except Exception as err:  # a fault inside the mock is not an API error: the operation cannot run here
            return Outcome(False, error_code="MockFailure", error_message=f"{type(err).__name__}: {err}"[:300])
        result.pop("ResponseMetadata", None)
        for k, v in list(result.items()):
            if hasattr(v, "read"):  # a streaming body (S3 GetObject): read once, a bounded amount
                result[k] = v.read(4000)
        shown = jsonable(result)
        return Outcome(True, shown, full=json.dumps(jsonable(result, cap=None), ensure_ascii=False, default=str))


class SeededIds:
    """Bytes for ``os.urandom`` during a mocked call, from the task's seed, one stream per call site: moto's
    backends make some ids with ``uuid.uuid4()`` (which reads ``os.urandom``) rather than with its seeded
    generator, and botocore fills idempotency tokens (an ``OperationId`` the mock echoes) the same way; both
    reach the trajectory. A stream per site, because how many ``uuid4`` calls other sites make first
    (botocore's invocation ids, moto importing a module or building a backend the first time in this process)
    depends on the process's history, not on the task."""

    def __init__(self, seed: str) -> None:
        self.seed = seed
        self.streams: dict[tuple[str, int], random.Random] = {}

    def urandom(self, real):
        def urandom(n: int) -> bytes:
            f = sys._getframe(1)
            if f.f_code.co_name == "uuid4" and f.f_back is not None:
                f = f.f_back
            site = (f.f_globals.get("__name__", ""), f.f_lineno)
            if site not in self.streams:
                self.streams[site] = random.Random(number(f"{self.seed}:{site[0]}:{site[1]}", 0, 2**62))
            return self.streams[site].randbytes(n)

        return urandom


@contextlib.contextmanager
def _seeded_urandom(ids: SeededIds | None):
    """``os.urandom`` seeded for moto's service code for the length of one call (in this thread, in a mock)."""
    if ids is None:
        yield
        return
    real = os.urandom
    os.urandom = ids.urandom(real)
    try:
        yield
    finally:
        os.urandom = real


def contains(outcome: Outcome, needle: str) -> bool:
    return needle in outcome.full


def execute(env: Environment, plan_: Plan, seed: str) -> Run:
    env.reset(seed)
    calls: list[tuple[str, dict]] = []
    outcomes: list[Outcome] = []
    output = "pass"
    for i, step in enumerate(plan_.steps):
        try:
            args = {m: resolve(v, outcomes) for m, v in step.arguments.items()}
        except (KeyError, IndexError, TypeError) as err:
            output = f"missing_output: {step.operation} needs {err} from an earlier result"
            break
        got = env.call(step.operation, args)
        calls.append((step.operation, args))
        outcomes.append(got)
        if not got.ok and not (plan_.recovery and i == 0):
            output = f"call_failed: {step.operation}: {got.error_code}: {got.error_message[:200]}"
            break
        if plan_.recovery and i == 0 and got.ok:
            output = f"recovery_not_needed: {step.operation} found the resource before it was made"
            break
    if output != "pass":
        return Run(calls, outcomes, "skipped", output)
    state = check_state(env, plan_, outcomes)
    return Run(calls, outcomes, state, output)


def check_state(env: Environment, plan_: Plan, outcomes: list[Outcome]) -> str:
    """The expected final state: the probe finds the resource by its identity (or, after a deletion, does not)."""
    try:
        args = {m: resolve(v, outcomes) for m, v in plan_.probe.arguments.items()}
    except (KeyError, IndexError, TypeError) as err:
        return f"state_mismatch: probe {plan_.probe.operation} lacks {err}"
    root_call = 1 if plan_.recovery else 0
    identity = [v for v in plan_.steps[root_call].stated.values() if isinstance(v, str) and len(v) >= 4]
    got = env.call(plan_.probe.operation, args)
    found = got.ok and (not identity or any(contains(got, v) for v in identity) or bool(args))
    if plan_.expect == "present" and not found:
        return f"state_mismatch: {plan_.probe.operation} did not find the resource ({got.error_code or 'not listed'})"
    if plan_.expect == "absent":
        listed = got.ok and any(contains(got, v) for v in identity) and not args
        going = got.ok and re.search(r"(?i)delet|terminat", got.text()) is not None  # e.g. EC2's "terminated"
        if (got.ok and args and not going) or listed:
            return f"state_mismatch: {plan_.probe.operation} still finds the deleted resource"
    return "pass"


# errors that say the mock cannot run an operation (not that the call was wrong)
UNAVAILABLE = ("NotImplemented", "MockFailure", "NotMocked")
ATTEMPTS = 6


def unavailable(outcome: Outcome) -> bool:
    return (
        outcome.error_code in UNAVAILABLE
        or outcome.error_code in ("404", "500")
        and re.search(r"(?i)not (yet )?(implemented|found)", outcome.error_message) is not None
    )


def run_task(
    service: Service, env: Environment, root: str, seed: str, learned: dict
) -> tuple[Plan | None, Run | None, str]:
    """Plan and execute one task about ``root``, learning from real failures: an operation the mock cannot run
    is not used again in this service (``learned["unavailable"]``), one that fails after this root with the values
    given is not used after it again (``learned[root]``); up to ``ATTEMPTS`` plans. Returns (plan, run, "pass") or
    (last plan, last run, reason) when no attempt ran through."""
    reason = "no_state_check: no read-only operation can check what this operation makes"
    last: tuple = (None, None)
    gone = learned.setdefault("unavailable", set())
    why = learned.setdefault("why", {})
    for attempt in range(ATTEMPTS):
        if root in gone:
            return (*last, why.get(root, reason))
        tseed = f"{seed}:{attempt}"
        p = plan(
            service,
            root,
            tseed,
            Values(tseed, service.client_name, service.examples),
            frozenset(gone | learned.setdefault(root, set())),
        )
        if p is None:
            return (*last, reason)
        run = execute(env, p, tseed)
        last = (p, run)
        if run.output == "pass" and run.state == "pass":
            return p, run, "pass"
        reason = run.output if run.output != "pass" else run.state
        if run.output == "pass":  # the state check failed: try another probe
            learned[root].add(p.probe.operation)
            continue
        if run.output.startswith("missing_output"):  # the next step needed what its root did not return
            learned[root].add(p.steps[len(run.outcomes)].operation)
            continue
        failed_at = len(run.outcomes) - 1
        op = p.steps[failed_at].operation
        if unavailable(run.outcomes[-1]):
            gone.add(op)
            why[op] = reason
        elif op == root and attempt == ATTEMPTS - 1:
            gone.add(root)  # twice refused: not a root this mock can make with the values made here
            why[root] = reason
        else:
            learned[root].add(op)
    return (*last, reason)
