"""The ``trigrun`` command: ``validate``, ``next``, ``fire``, ``schema``.

Exit codes (also in ``trigrun --help``)::

    0    ok
    1    invalid jobs file or job spec (every problem is listed), or another error before
         anything was sent
    2    usage error: bad option or argument, unknown job name
    3    the trigger failed: the request did not succeed after its retries, or a
         secret:// reference was not found (then nothing was sent)
    4    the downstream run failed, was cancelled, or its state is unknown (--wait)
    5    the wait timed out while the run was still going (--wait)
    130  interrupted (Ctrl-C)

Errors are one line each on stderr, never a traceback and never a secret value (set
``TRIGRUN_DEBUG=1`` to see the traceback of an unexpected error).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import shutil
import socket
import sys
import textwrap
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

from . import __version__
from ._engine import AsyncEngine, Engine
from ._exceptions import RunFailed, RunTimeout, SecretNotFound, SpecError, TriggerFailed
from ._flow import Event, idempotency_key
from ._loader import load_jobs
from ._models import AirflowPasswordAuth, BasicAuth, BearerAuth, HeaderAuth, JobSpec
from ._results import JobRun, RunResult, RunState, TriggerResult
from ._schedule import RULES, Tick, localize, next_ticks
from ._schema import jobs_file_schema_json
from ._secrets import EnvSecrets, find_references
from ._targets import HttpCall, preset_for
from ._templates import render_spec, template_context
from ._upstream import Upstream

OK, INVALID, USAGE, TRIGGER_FAILED, RUN_FAILED, WAIT_TIMEOUT, INTERRUPTED = 0, 1, 2, 3, 4, 5, 130

EXIT_CODES = """\
exit codes:
  0    ok
  1    invalid jobs file or job spec (every problem is listed), or another error
       before anything was sent
  2    usage error: bad option or argument, unknown job name
  3    the trigger failed: the request did not succeed after its retries, or a
       secret:// reference was not found (then nothing was sent)
  4    the downstream run failed, was cancelled, or its state is unknown (--wait)
  5    the wait timed out while the run was still going (--wait)
  130  interrupted (Ctrl-C)

Secrets: secret://NAME reads the environment variable TRIGRUN_SECRET_NAME (upper case,
non-alphanumerics as _). Errors never show a secret value."""

RULES_HELP = """\
which orchestrator's DST rules to apply (default: airflow). They differ only around DST
changes: airflow = Airflow's CronTriggerTimetable (a daily 02:30 skipped by spring forward
fires at 03:30), dagster = Dagster's scheduler (fires at 03:00); both fire a repeated time
once, at its 2nd occurrence. croniter = croniter alone, for contrast (fires a repeated daily
time twice). Pick the orchestrator the job runs in."""

# Header names whose literal (non secret://) values are credentials: masked in --dry-run.
_CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "x-api-key",
                                 "api-key", "x-auth-token"})
_SHOWN_RESPONSE_CHARS = 4000


class UsageError(Exception):
    """A bad argument the parser could not catch (e.g. an unknown job name): exit 2."""


def _err(message: str) -> None:
    for line in str(message).splitlines() or [""]:
        print(f"trigrun: error: {line}", file=sys.stderr)


# --- argument types -------------------------------------------------------------------------


def _iso_time(text: str) -> datetime:
    if text.strip().lower() == "now":
        return datetime.now(timezone.utc).replace(microsecond=0)
    try:
        return datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO 8601 time, e.g. 2026-03-08T02:30 or "
            "2026-03-08T07:30:00+00:00") from None


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds above 0")
    return value


# --- shared helpers -------------------------------------------------------------------------


def cli_upstream() -> Upstream:
    """The CLI as the upstream of the runs it starts (docs/upstream.md)."""
    return Upstream(kind="cli", name=f"trigrun CLI on {socket.gethostname()}", url=None)


def _job_tz(spec: JobSpec) -> str:
    return spec.schedule.timezone if spec.schedule is not None else "UTC"


def _in_job_tz(t: datetime, spec: JobSpec) -> datetime:
    """An aware time as given; a naive one read in the job's time zone."""
    return localize(t, _job_tz(spec))


def _select(specs: list[JobSpec], name: str | None, path: str) -> list[JobSpec]:
    if name is None:
        return specs
    # Exact name first, then any case, then the slug (as used for DAG ids and job names).
    found = ([s for s in specs if s.name == name]
             or [s for s in specs if s.name.lower() == name.lower()]
             or [s for s in specs if s.slug == name])
    if found:
        return found[:1]
    names = ", ".join(repr(s.name) for s in specs)
    raise UsageError(f"{path}: no job named {name!r}; the jobs are: {names}")


def _fmt_time(t: datetime) -> str:
    off = t.strftime("%z")
    off = f"{off[:3]}:{off[3:]}" if off else "+00:00"
    seconds = ":%S" if t.second else ""
    return f"{t.strftime('%Y-%m-%d %a %H:%M')}{t.strftime(seconds)} {t.tzname()} (UTC{off})"


# --- validate -------------------------------------------------------------------------------


def _cmd_validate(args: argparse.Namespace) -> int:
    invalid = 0
    for path in args.files:
        try:
            specs = load_jobs(path)
        except SpecError as exc:
            invalid += 1
            for problem in exc.problems:
                print(problem)
            n = len(exc.problems)
            print(f"{path}: INVALID, {n} problem{'s' if n != 1 else ''}")
            continue
        n = len(specs)
        print(f"{path}: {n} job{'s' if n != 1 else ''} OK")
    if len(args.files) > 1:
        total = len(args.files)
        print(f"{total - invalid} of {total} files valid")
    return INVALID if invalid else OK


# --- next -----------------------------------------------------------------------------------


def _describe_schedule(spec: JobSpec, rules: str) -> str:
    kind = spec.effective_kind
    sched = spec.schedule
    if kind == "cron" and sched is not None:
        return f"cron {sched.cron!r} in {sched.timezone}, {rules} rules"
    if kind == "once" and sched is not None:
        return f"once, in {sched.timezone}"
    return "manual: no schedule, fired on demand only"


def _cmd_next(args: argparse.Namespace) -> int:
    specs = _select(load_jobs(args.file), args.job, args.file)
    now = datetime.now(timezone.utc)
    report: list[dict[str, Any]] = []
    for i, spec in enumerate(specs):
        start = _in_job_tz(args.start, spec) if args.start is not None else now
        ticks = next_ticks(spec, start=start, count=args.count, rules=args.rules)
        if args.json:
            report.append({
                "job": spec.name, "kind": spec.effective_kind, "enabled": spec.enabled,
                "timezone": _job_tz(spec), "rules": args.rules,
                "cron": spec.schedule.cron if spec.schedule else None,
                "fire_times": [{"time": t.time.isoformat(), "utc": t.time.astimezone(
                    timezone.utc).isoformat(), "tz": t.time.tzname(), "dst_note": t.note}
                    for t in ticks]})
            continue
        if i:
            print()
        print(spec.name + ("  [disabled]" if not spec.enabled else ""))
        print(f"  {_describe_schedule(spec, args.rules)}")
        _print_ticks(spec, ticks, start)
    if args.json:
        print(json.dumps(report, indent=2))
    return OK


def _print_ticks(spec: JobSpec, ticks: list[Tick], start: datetime) -> None:
    if not ticks and spec.effective_kind == "once":
        print(f"  none: schedule.at is before {_fmt_time(localize(start, _job_tz(spec)))}")
    for tick in ticks:
        line = f"  {_fmt_time(tick.time)}"
        if tick.note:
            line += f"  ({tick.note})"
        print(line)


# --- fire: dry run --------------------------------------------------------------------------


def _show_value(name: str, value: str) -> str:
    if "secret://" in value or name.lower() not in _CREDENTIAL_HEADERS:
        return value
    return "*** (a literal in the spec; use a secret:// reference)"


def _auth_header(spec: JobSpec, token_base: str | None) -> tuple[str, str] | None:
    """The header the job's ``auth`` adds at send time, secrets as their references."""
    auth = spec.auth

    def ref(v: str) -> str:
        return v if "secret://" in v else "***"

    if isinstance(auth, BearerAuth):
        return "Authorization", f"Bearer {ref(auth.token)}"
    if isinstance(auth, BasicAuth):
        return "Authorization", f"Basic base64({auth.username}:{ref(auth.password)})"
    if isinstance(auth, HeaderAuth):
        return auth.name, ref(auth.value)
    if isinstance(auth, AirflowPasswordAuth):
        url = auth.token_url or f"{token_base or ''}/auth/token"
        return "Authorization", f"Bearer <JWT from POST {url}, as {auth.username} with " \
            f"password {ref(auth.password)}>"
    return None


def _call_dict(call: HttpCall, auth: tuple[str, str] | None) -> dict[str, Any]:
    headers = {k: _show_value(k, v) for k, v in call.headers.items()}
    if call.json is not None and not any(k.lower() == "content-type" for k in headers):
        headers["Content-Type"] = "application/json"
    if auth is not None:
        headers[auth[0]] = auth[1]
    body: Any = call.json if call.json is not None else call.content
    return {"method": call.method, "url": call.url, "headers": headers, "body": body}


def _dry_run(spec: JobSpec, scheduled: datetime, as_json: bool) -> int:
    rendered = render_spec(spec, template_context(spec, scheduled, None))
    key = idempotency_key(rendered, scheduled) if rendered.idempotency.enabled else None
    preset = preset_for(rendered)
    iso = scheduled.astimezone(timezone.utc).isoformat()
    upstream = cli_upstream() if rendered.link_upstream else None
    call = preset.trigger_call(key, iso, upstream=upstream)
    request = _call_dict(call, _auth_header(rendered, preset.auth_base_url()))
    # The size as the dry run knows it: secret:// references not substituted.
    size = len(json.dumps(call.json, separators=(",", ":")).encode()) if call.json is not None \
        else len(call.content.encode()) if call.content is not None else 0
    too_big = size > rendered.max_request_bytes
    env = EnvSecrets()
    refs = find_references(rendered.model_dump(mode="json",
                                               include={"request", "target", "auth", "wait"}))
    secrets = [{"reference": f"secret://{n}", "env": env.env_name(n),
                "set": env(n) is not None} for n in refs]
    steps: list[str] = []
    if rendered.overlap != "allow" and (active := preset.active_call()) is not None:
        steps.append(f"list active runs (overlap={rendered.overlap}): {active.method} {active.url}")
    if key is not None and (lookup := preset.lookup_call(key)) is not None:
        steps.append(f"look for a run this fire already started: {lookup.method} {lookup.url}")
    refused = (f"the body is {size} bytes, over max_request_bytes="
               f"{rendered.max_request_bytes}: a real fire refuses it and sends nothing"
               if too_big else None)
    if as_json:
        print(json.dumps({"dry_run": True, "job": spec.name, "target": preset.name,
                          "scheduled_time": iso, "idempotency_key": key,
                          "before_sending": steps, "request": request, "secrets": secrets,
                          "refused": refused},
                         indent=2, default=str))
        return OK
    print(f"dry run: nothing is sent. Job {spec.name!r}, target {preset.name}, "
          f"scheduled time {iso}")
    if key:
        print(f"idempotency key: {key}")
    for step in steps:
        print(f"first: {step}")
    print(f"{request['method']} {request['url']}")
    for k, v in request["headers"].items():
        print(f"{k}: {v}")
    body = request["body"]
    if body is not None:
        print()
        print(body if isinstance(body, str) else json.dumps(body, indent=2, default=str))
    for s in secrets:
        state = "set" if s["set"] else "NOT SET: a real fire stops here with exit code 3"
        print(f"secret {s['reference']} <- ${s['env']} ({state})")
    if refused:
        print(f"REFUSED: {refused}")
    return OK


# --- fire: progress -------------------------------------------------------------------------


class Progress:
    """Engine events on stderr: one line rewritten in place on a terminal, plain lines
    otherwise. Also the engine's ``sleep``, so a terminal shows a countdown between polls."""

    def __init__(self, stream: TextIO, job: str, *, tty: bool | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic, width: int | None = None) -> None:
        self.stream = stream
        self.job = job
        self.tty = stream.isatty() if tty is None else tty
        self._width = width
        self._sleep = sleep
        self._clock = clock
        self._t0 = clock()
        self._message = ""
        self._dirty = False

    def _draw(self, suffix: str = "") -> None:
        # One column short of the width, so the line never wraps (a wrapped line cannot be
        # rewritten in place).
        width = (self._width or shutil.get_terminal_size((100, 20)).columns) - 1
        line = f"[{self._clock() - self._t0:6.1f}s] {self.job}: {self._message}{suffix}"
        self.stream.write("\r\x1b[K" + line[:width])
        self.stream.flush()
        self._dirty = True

    def event(self, event: Event) -> None:
        self._message = event.message
        if self.tty:
            self._draw()
        else:
            self.stream.write(f"trigrun: {event.job}: {event.message}\n")
            self.stream.flush()

    def sleep(self, seconds: float) -> None:
        if not self.tty:
            self._sleep(seconds)
            return
        end = self._clock() + seconds
        while (left := end - self._clock()) > 0:
            self._draw(f" (next in {math.ceil(left)}s)")
            self._sleep(min(1.0, left))

    def close(self) -> None:
        if self.tty and self._dirty:
            self.stream.write("\n")
            self.stream.flush()
            self._dirty = False


# --- fire: output ---------------------------------------------------------------------------


def _response_text(response: Any) -> str:
    text = response if isinstance(response, str) else json.dumps(response, indent=2, default=str)
    if len(text) > _SHOWN_RESPONSE_CHARS:
        more = len(text) - _SHOWN_RESPONSE_CHARS
        text = text[:_SHOWN_RESPONSE_CHARS] + f"\n... ({more} more characters; --json shows all)"
    return text


def _print_trigger(result: TriggerResult) -> None:
    n = len(result.attempts)
    if result.skipped:
        status = "SKIPPED"
    elif result.ok:
        status = "OK" + (" (adopted an existing run)" if result.adopted else "")
    else:
        status = "FAILED"
    http = f"HTTP {result.status_code}, " if result.status_code is not None else ""
    print(f"job:        {result.job}")
    print(f"trigger:    {status}  ({http}{n} attempt{'s' if n != 1 else ''}, "
          f"{result.duration_ms:.0f} ms)")
    for a in result.attempts:
        what = f"HTTP {a.status_code}" if a.status_code is not None else (a.error or "?")
        wait = f" after {a.delay_before_ms / 1000:.1f} s" if a.delay_before_ms else ""
        print(f"  attempt {a.number}{wait}: {what} ({a.duration_ms:.0f} ms)")
    if result.reason:
        print(f"reason:     {result.reason}")
    if result.error:
        print(f"error:      {result.error}")
    print(f"target:     {result.target}")
    print(f"scheduled:  {result.scheduled_time}")
    if result.idempotency_key:
        print(f"idempotency key: {result.idempotency_key}")
    if result.run_id:
        print(f"run id:     {result.run_id}")
    if result.run_url:
        print(f"run url:    {result.run_url}")
    if result.response is not None and result.response != "":
        cut = " (truncated)" if result.truncated else ""
        print(f"response{cut}:")
        for line in _response_text(result.response).splitlines():
            print(f"  {line}")


def _print_run(run: RunResult) -> None:
    print(f"run:        {run.state.value.upper()}  ({run.polls} status "
          f"check{'s' if run.polls != 1 else ''}, {run.duration_ms / 1000:.1f} s)")
    print(f"  run id:   {run.run_id}")
    if run.run_url:
        print(f"  run url:  {run.run_url}")
    print(f"  message:  {run.message}")


def _emit(result: TriggerResult, run: RunResult | None, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"trigger": result.to_log(),
                          "run": run.to_log() if run is not None else None},
                         indent=2, default=str))
        return
    _print_trigger(result)
    if run is not None:
        _print_run(run)


def _run_exit(run: RunResult) -> int:
    if run.state is RunState.SUCCESS:
        return OK
    return WAIT_TIMEOUT if run.state is RunState.TIMEOUT else RUN_FAILED


# --- fire -----------------------------------------------------------------------------------


def _cmd_fire(args: argparse.Namespace) -> int:
    specs = load_jobs(args.file)
    if args.all:
        if args.job is not None:
            raise UsageError("give --job NAME or --all, not both")
        return _fire_all(specs, args)
    if args.concurrency is not None:
        raise UsageError("--concurrency goes with --all")
    if args.job is None and len(specs) > 1:
        names = ", ".join(repr(s.name) for s in specs)
        raise UsageError(f"{args.file} holds {len(specs)} jobs; name one with --job "
                         f"({names}), or fire them all with --all")
    spec = _select(specs, args.job, args.file)[0]
    scheduled = (_in_job_tz(args.scheduled_time, spec) if args.scheduled_time is not None
                 else datetime.now(timezone.utc).replace(microsecond=0))
    if args.dry_run:
        return _dry_run(spec, scheduled, args.json)
    progress = Progress(sys.stderr, spec.name)
    engine = Engine(on_event=progress.event, sleep=progress.sleep)
    try:
        with engine:
            return _fire(engine, progress, spec, scheduled, args)
    except (SpecError, SecretNotFound):
        raise
    except Exception as exc:
        progress.close()
        if os.environ.get("TRIGRUN_DEBUG"):
            raise
        # The engine knows every secret it resolved: keep them out of this message too.
        _err(engine.state.redactor.text(f"unexpected error: {type(exc).__name__}: {exc}"))
        return INVALID
    finally:
        progress.close()


def _fire(engine: Engine, progress: Progress, spec: JobSpec, scheduled: datetime,
          args: argparse.Namespace) -> int:
    result = engine.fire(spec, scheduled_time=scheduled, upstream=cli_upstream())
    progress.close()
    if not result.ok:
        _emit(result, None, args.json)
        _err(result.error or f"job {spec.name!r}: the trigger failed")
        return TRIGGER_FAILED
    if not args.wait or result.skipped:
        _emit(result, None, args.json)
        if args.wait:
            print(f"trigrun: not waiting: the fire was skipped ({result.reason})", file=sys.stderr)
        return OK
    if result.run_id is None:
        _emit(result, None, args.json)
        _err(f"job {spec.name!r}: cannot wait: the trigger response named no run id "
             "(for a webhook set wait.run_id_path and wait.status_url)")
        return RUN_FAILED
    try:
        run = engine.wait(result, poll_interval=args.poll_interval, timeout=args.timeout)
    except KeyboardInterrupt:
        progress.close()
        _emit(result, None, args.json)
        where = f" ({result.run_url})" if result.run_url else ""
        _err(f"interrupted: stopped waiting; run {result.run_id}{where} keeps going")
        return INTERRUPTED
    progress.close()
    _emit(result, run, args.json)
    if run.state is not RunState.SUCCESS:
        _err(run.message)
    return _run_exit(run)


# --- fire --all -----------------------------------------------------------------------------


_END_LABELS = {RunState.SUCCESS: "SUCCESS", RunState.FAILED: "FAILED",
               RunState.CANCELLED: "CANCELLED", RunState.TIMEOUT: "TIMEOUT",
               RunState.UNKNOWN: "UNKNOWN"}


class Board:
    """The live table of ``fire --all``: one line per job (name, state, run id or URL,
    elapsed). On a terminal the table is redrawn in place; otherwise each change is one
    appended line, so a CI log reads top to bottom."""

    def __init__(self, stream: TextIO, names: list[str], *, tty: bool | None = None,
                 clock: Callable[[], float] = time.monotonic, width: int | None = None) -> None:
        self.stream = stream
        self.tty = stream.isatty() if tty is None else tty
        self.names = names
        self.states = ["pending"] * len(names)
        self.runs: list[str] = [""] * len(names)
        self.started: list[float | None] = [None] * len(names)
        self.ended: list[float | None] = [None] * len(names)
        self._rows = {n: i for i, n in enumerate(names)}
        self._clock = clock
        self._width = width
        self._drawn = 0
        self._name_w = min(40, max((len(n) for n in names), default=4))

    def _elapsed(self, i: int) -> str:
        t0 = self.started[i]
        if t0 is None:
            return ""
        end = self.ended[i]
        return f"{(end if end is not None else self._clock()) - t0:6.1f}s"

    def line(self, i: int) -> str:
        name = self.names[i]
        if len(name) > self._name_w:
            name = name[:self._name_w - 1] + "…"
        return f"{name:<{self._name_w}}  {self.states[i]:<14} {self._elapsed(i):>8}  " \
               f"{self.runs[i]}".rstrip()

    def _say(self, i: int) -> None:
        if self.tty:
            self.draw()
        else:
            self.stream.write(f"trigrun: {self.line(i)}\n")
            self.stream.flush()

    def draw(self) -> None:
        if not self.tty:
            return
        width = (self._width or shutil.get_terminal_size((100, 20)).columns) - 1
        out = [f"\x1b[{self._drawn}A"] if self._drawn else []
        out += ["\r\x1b[K" + self.line(i)[:width] + "\n" for i in range(len(self.names))]
        self.stream.write("".join(out))
        self.stream.flush()
        self._drawn = len(self.names)

    def progress(self, i: int, got: JobRun | None, phase: str) -> None:
        now = self._clock()
        if phase == "firing":
            self.started[i] = now
            self.states[i] = "firing"
        elif got is not None:
            t = got.trigger
            self.runs[i] = t.run_url or t.run_id or ""
            if phase == "waiting":
                self.states[i] = "waiting"
            else:
                self.ended[i] = now
                self.states[i] = _end_label(got)
                if got.run is not None and got.run.run_url:
                    self.runs[i] = got.run.run_url
                elif not t.ok:
                    self.runs[i] = (t.error or "")[:200]
        self._say(i)

    def event(self, event: Event) -> None:
        """A poll's state while a job waits (``queued``, ``running``), or its delay."""
        i = self._rows.get(event.job)
        if i is None or self.ended[i] is not None:
            return
        if event.kind == "delay":  # delay_seconds: the fire waits
            self.states[i] = "delayed"
            self._say(i)
            return
        state = event.data.get("state")
        if event.kind == "poll" and self.states[i] not in ("pending", "firing") \
                and state in ("queued", "running") and state != self.states[i]:
            self.states[i] = str(state)
            self._say(i)


def _end_label(got: JobRun) -> str:
    t = got.trigger
    if not t.ok:
        return "TRIGGER FAILED"
    if t.skipped:
        return "SKIPPED"
    if got.run is not None:
        return _END_LABELS.get(got.run.state, got.run.state.value.upper())
    return "ADOPTED" if t.adopted else "FIRED"


def _all_exit(runs: list[JobRun]) -> int:
    """The worst outcome's exit code: a failed trigger, then a failed run, then a timeout."""
    if any(not r.trigger.ok for r in runs):
        return TRIGGER_FAILED
    states = {r.run.state for r in runs if r.run is not None}
    if states - {RunState.SUCCESS, RunState.TIMEOUT}:
        return RUN_FAILED
    return WAIT_TIMEOUT if RunState.TIMEOUT in states else OK


def _all_time(specs: list[JobSpec], given: datetime | None) -> datetime:
    if given is None:
        return datetime.now(timezone.utc).replace(microsecond=0)
    if given.tzinfo is not None:
        return given
    zones = {_job_tz(s) for s in specs}
    if len(zones) > 1:
        raise UsageError(f"--scheduled-time {given.isoformat()} has no UTC offset and the jobs "
                         f"are in {len(zones)} time zones ({', '.join(sorted(zones))}); give "
                         "an offset, e.g. 2026-03-08T07:30:00+00:00")
    return localize(given, zones.pop())


def _with_wait_options(spec: JobSpec, args: argparse.Namespace) -> JobSpec:
    changes: dict[str, Any] = {}
    if args.poll_interval is not None:
        changes["poll_interval_seconds"] = args.poll_interval
    if args.timeout is not None:
        changes["timeout_seconds"] = args.timeout
    if not args.wait:
        changes["enabled"] = False
    if not changes:
        return spec
    return spec.model_copy(update={"wait": spec.wait.model_copy(update=changes)})


def _fire_all(specs: list[JobSpec], args: argparse.Namespace) -> int:
    skipped = [s for s in specs if not s.enabled]
    specs = [s for s in specs if s.enabled]
    for s in skipped:
        print(f"trigrun: job {s.name!r} is disabled (enabled: false): not fired",
              file=sys.stderr)
    if not specs:
        _err(f"{args.file}: every job is disabled; nothing to fire")
        return OK
    scheduled = _all_time(specs, args.scheduled_time)
    if args.dry_run:
        for i, spec in enumerate(specs):
            if i and not args.json:
                print()
            _dry_run(spec, scheduled, args.json)
        return OK
    specs = [_with_wait_options(s, args) for s in specs]
    board = Board(sys.stderr, [s.name for s in specs])
    engine = AsyncEngine(on_event=board.event)

    async def go() -> list[JobRun]:
        async with engine:
            ticker = asyncio.ensure_future(_tick(board))
            try:
                return await engine.run_many(
                    specs, concurrency=args.concurrency or 10, upstream=cli_upstream(),
                    context={"scheduled_time": scheduled}, on_progress=board.progress)
            finally:
                ticker.cancel()

    try:
        runs = asyncio.run(go())
    except (SpecError, SecretNotFound, KeyboardInterrupt):
        raise
    except Exception as exc:
        if os.environ.get("TRIGRUN_DEBUG"):
            raise
        _err(engine.state.redactor.text(f"unexpected error: {type(exc).__name__}: {exc}"))
        return INVALID
    board.draw()
    _summary(runs, args.json)
    return _all_exit(runs)


async def _tick(board: Board) -> None:
    """Redraw the terminal table twice a second, so elapsed times move between changes."""
    if not board.tty:
        return
    while True:
        await asyncio.sleep(0.5)
        board.draw()


def _summary(runs: list[JobRun], as_json: bool) -> None:
    if as_json:
        print(json.dumps([r.to_log() for r in runs], indent=2, default=str))
        return
    width = min(40, max(len(r.job) for r in runs))
    for r in runs:
        t = r.trigger
        where = (r.run.run_url if r.run is not None and r.run.run_url else None) \
            or t.run_url or t.run_id or ""
        seconds = (t.duration_ms + (r.run.duration_ms if r.run is not None else 0.0)) / 1000
        print(f"{r.job:<{width}}  {_end_label(r):<14} {seconds:7.1f}s  {where}".rstrip())
    bad = [r for r in runs if not r.ok]
    for r in bad:
        why = r.trigger.error if not r.trigger.ok else (r.run.message if r.run else "")
        if why:
            _err(why)
    print(f"{len(runs) - len(bad)} of {len(runs)} jobs ok")


# --- schema ---------------------------------------------------------------------------------


def _cmd_schema(args: argparse.Namespace) -> int:
    text = jobs_file_schema_json()
    if args.output in (None, "-"):
        sys.stdout.write(text)
        return OK
    try:
        Path(args.output).write_text(text, encoding="utf-8")
    except OSError as exc:
        _err(f"cannot write {args.output}: {exc.strerror}")
        return INVALID
    print(f"wrote {args.output}; point editors at it with the first line\n"
          f"# yaml-language-server: $schema={args.output}")
    return OK


# --- parser ---------------------------------------------------------------------------------


def _wrap(text: str) -> str:
    """Descriptions keep their paragraphs and indented lines (raw formatter), wrapped here."""
    return "\n\n".join(p if p.startswith("  ") else textwrap.fill(p, 88)
                       for p in text.split("\n\n"))


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="trigrun", formatter_class=fmt, epilog=EXIT_CODES,
        description=_wrap("Validate, preview and fire TrigRun jobs (HTTP-triggered pipeline "
                          "runs)."))
    parser.add_argument("--version", action="version", version=f"trigrun {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("validate", formatter_class=fmt, epilog=EXIT_CODES,
                       help="check jobs files; list every problem",
                       description=_wrap("Check jobs files (YAML or JSON: one job, a list, or "
                       "{\"jobs\": [...]}). Prints every problem of every file and one summary "
                       "line per file. Exit 0 when all are valid, 1 otherwise."))
    p.add_argument("files", nargs="+", metavar="FILE")
    p.set_defaults(func=_cmd_validate)

    p = sub.add_parser("next", formatter_class=fmt, epilog=EXIT_CODES,
                       help="show upcoming fire times, DST changes marked",
                       description=_wrap("Show each job's upcoming fire times in its time zone, "
                       "with UTC offset and abbreviation. Times a DST change moves, repeats or "
                       "skips are marked (DST: ...)."))
    p.add_argument("file", metavar="FILE")
    p.add_argument("--count", "-n", type=_positive_int, default=5, metavar="N",
                   help="fire times per job (default: 5)")
    p.add_argument("--rules", choices=RULES, default="airflow", help=RULES_HELP)
    p.add_argument("--job", metavar="NAME", help="only this job (its name or slug)")
    p.add_argument("--from", dest="start", type=_iso_time, metavar="ISO",
                   help="start here instead of now; a time without offset is read in each "
                   "job's time zone")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_next)

    p = sub.add_parser("fire", formatter_class=fmt, epilog=EXIT_CODES,
                       help="fire one job now and print its execution log",
                       description=_wrap("Send a job's trigger request now (with its retries "
                       "and idempotency key) and print the execution log: status, duration, "
                       "attempts, response, run id and URL. Secrets come from TRIGRUN_SECRET_* "
                       "environment variables. --dry-run sends nothing."))
    p.add_argument("file", metavar="FILE")
    p.add_argument("--job", metavar="NAME", help="the job to fire (optional when FILE holds one)")
    p.add_argument("--all", action="store_true",
                   help="fire every enabled job of FILE, at most --concurrency at once (and "
                   "each queue's concurrency_limit); a live table on stderr, one line per job")
    p.add_argument("--concurrency", type=_positive_int, metavar="N",
                   help="with --all: jobs in flight at once, from fire to the run's end "
                   "(default: 10)")
    p.add_argument("--wait", action="store_true",
                   help="then wait for the run to end, progress on stderr")
    p.add_argument("--dry-run", action="store_true",
                   help="print the request instead of sending it (secrets as secret:// refs)")
    p.add_argument("--json", action="store_true",
                   help="print {\"trigger\": <execution log>, \"run\": <run result or null>}")
    p.add_argument("--scheduled-time", type=_iso_time, metavar="ISO",
                   help="the fire's scheduled time (templates, idempotency key); default now. "
                   "Without offset it is read in the job's time zone")
    p.add_argument("--timeout", type=_positive_float, metavar="SECONDS",
                   help="with --wait: give up after this long (default: wait.timeout_seconds)")
    p.add_argument("--poll-interval", type=_positive_float, metavar="SECONDS",
                   help="with --wait: seconds between status checks "
                   "(default: wait.poll_interval_seconds)")
    p.set_defaults(func=_cmd_fire)

    p = sub.add_parser("schema", formatter_class=fmt, epilog=EXIT_CODES,
                       help="write the JSON Schema of a jobs file",
                       description=_wrap("Write the JSON Schema of a jobs file (one job, a "
                       "list, or {\"jobs\": [...]}), generated from trigrun's models, for "
                       "editors. With the YAML language server, start a jobs file with:\n\n"
                       "  # yaml-language-server: $schema=./trigrun.schema.json"))
    p.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    p.set_defaults(func=_cmd_schema)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (the console script exits with it)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error already printed
        return exc.code if isinstance(exc.code, int) else USAGE
    if getattr(args, "func", None) is None:
        parser.print_help(sys.stderr)
        return USAGE
    try:
        code: int = args.func(args)
        return code
    except UsageError as exc:
        _err(str(exc))
        return USAGE
    except SpecError as exc:
        for problem in exc.problems:
            _err(problem)
        return INVALID
    except SecretNotFound as exc:
        _err(str(exc))
        return TRIGGER_FAILED
    except RunTimeout as exc:
        _err(str(exc))
        return WAIT_TIMEOUT
    except RunFailed as exc:
        _err(str(exc))
        return RUN_FAILED
    except TriggerFailed as exc:
        _err(str(exc))
        return TRIGGER_FAILED
    except KeyboardInterrupt:
        print(file=sys.stderr)
        _err("interrupted")
        return INTERRUPTED
    except BrokenPipeError:
        # stdout closed early (e.g. `| head`): not an error worth a message. Point stdout at
        # devnull so the interpreter's final flush does not complain either.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return OK
    except Exception as exc:
        if os.environ.get("TRIGRUN_DEBUG"):
            raise
        _err(f"unexpected error: {type(exc).__name__}: {exc}")
        return INVALID
