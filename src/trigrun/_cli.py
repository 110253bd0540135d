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
import json
import math
import os
import shutil
import sys
import textwrap
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

from . import __version__
from ._engine import Engine
from ._exceptions import RunFailed, RunTimeout, SecretNotFound, SpecError, TriggerFailed
from ._flow import Event, idempotency_key
from ._loader import load_jobs
from ._models import AirflowPasswordAuth, BasicAuth, BearerAuth, HeaderAuth, JobSpec
from ._results import RunResult, RunState, TriggerResult
from ._schedule import RULES, Tick, localize, next_ticks
from ._schema import jobs_file_schema_json
from ._secrets import EnvSecrets, find_references
from ._targets import HttpCall, preset_for
from ._templates import render_spec, template_context

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
    request = _call_dict(preset.trigger_call(key, iso),
                         _auth_header(rendered, preset.auth_base_url()))
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
    if as_json:
        print(json.dumps({"dry_run": True, "job": spec.name, "target": preset.name,
                          "scheduled_time": iso, "idempotency_key": key,
                          "before_sending": steps, "request": request, "secrets": secrets},
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
    if args.job is None and len(specs) > 1:
        names = ", ".join(repr(s.name) for s in specs)
        raise UsageError(f"{args.file} holds {len(specs)} jobs; name one with --job "
                         f"({names})")
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
    result = engine.fire(spec, scheduled_time=scheduled)
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
