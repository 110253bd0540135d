"""``trigrun fire FILE [--job NAME]``: fire one job, optionally wait, and print what happened.

stderr is the execution log as it happens (attempts, retries, the run and its URL, each new
state of the run); stdout is one summary at the end (status, duration, attempts, new or
adopted run, run id and URL, the run's end). ``--verbose`` adds every attempt, the request's
key and the response; ``--json`` prints everything as JSON instead.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any, TextIO

from .._engine import Engine
from .._exceptions import SecretNotFound, SpecError
from .._flow import Event
from .._loader import load_jobs
from .._models import JobSpec
from .._results import RunResult, RunState, TriggerResult
from ._common import (
    INTERRUPTED,
    INVALID,
    OK,
    RUN_FAILED,
    TRIGGER_FAILED,
    WAIT_TIMEOUT,
    UsageError,
    clean,
    cli_upstream,
    err,
    hyperlinks,
    in_job_tz,
    select,
    show_url,
)
from ._dry_run import dry_run

_SHOWN_RESPONSE_CHARS = 4000


def state_message(event: Event) -> str:
    """A poll's message without its echo: ``run r1: running (running)`` reads ``run r1:
    running``; a raw value that differs from the state stays (``running (queued)``)."""
    state = event.data.get("state")
    if state is not None and event.message.endswith(f"{state} ({state})"):
        return event.message[: -len(f" ({state})")]
    return event.message


class Progress:
    """Engine events on stderr: one line rewritten in place on a terminal, plain lines
    otherwise, where a poll is written only when what it says changed (a CI log of an hour's
    wait keeps its state changes, not 720 identical lines). Also the engine's ``sleep``, so a
    terminal shows a countdown between polls."""

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
        self._said: str | None = None
        self._dirty = False

    def _draw(self, suffix: str = "") -> None:
        # One column short of the width, so the line never wraps (a wrapped line cannot be
        # rewritten in place). Only messages are cut here: URLs are written with ``say``.
        width = (self._width or shutil.get_terminal_size((100, 20)).columns) - 1
        line = f"[{self._clock() - self._t0:6.1f}s] {self.job}: {self._message}{suffix}"
        self.stream.write("\r\x1b[K" + line[:width])
        self.stream.flush()
        self._dirty = True

    def event(self, event: Event) -> None:
        self._message = clean(state_message(event) if event.kind == "poll" else event.message)
        if self.tty:
            self._draw()
        elif event.kind != "poll" or self._message != self._said:
            self._said = self._message if event.kind == "poll" else self._said
            self.stream.write(f"trigrun: {event.job}: {self._message}\n")
            self.stream.flush()

    def say(self, text: str) -> None:
        """A line of its own, never cut (a run's URL): above the live line on a terminal."""
        self.close()
        self.stream.write(text + "\n")
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


# --- the summary ----------------------------------------------------------------------------


def _response_text(response: Any) -> str:
    text = response if isinstance(response, str) else json.dumps(response, indent=2, default=str)
    if len(text) > _SHOWN_RESPONSE_CHARS:
        more = len(text) - _SHOWN_RESPONSE_CHARS
        text = text[:_SHOWN_RESPONSE_CHARS] + f"\n... ({more} more characters; --json shows all)"
    return text


def trigger_status(result: TriggerResult) -> str:
    if result.skipped:
        return "SKIPPED"
    if not result.ok:
        return "FAILED"
    if result.adopted:
        return "OK, adopted an existing run"
    return "OK, new run" if result.run_id else "OK"


def _print_trigger(result: TriggerResult, verbose: bool, link: bool) -> None:
    n = len(result.attempts)
    http = f"HTTP {result.status_code}, " if result.status_code is not None else ""
    print(f"job:        {result.job}")
    print(f"trigger:    {trigger_status(result)}  ({http}{n} attempt{'s' if n != 1 else ''}, "
          f"{result.duration_ms:.0f} ms)")
    if verbose:
        for a in result.attempts:
            what = f"HTTP {a.status_code}" if a.status_code is not None else (a.error or "?")
            wait = f" after {a.delay_before_ms / 1000:.1f} s" if a.delay_before_ms else ""
            print(f"  attempt {a.number}{wait}: {what} ({a.duration_ms:.0f} ms)")
    if result.reason:
        print(f"reason:     {clean(result.reason)}")
    if result.error:
        print(f"error:      {clean(result.error)}")
    if verbose:
        print(f"target:     {result.target}")
        print(f"scheduled:  {result.scheduled_time}")
        if result.idempotency_key:
            print(f"idempotency key: {result.idempotency_key}")
    if result.run_id:
        print(f"run id:     {clean(result.run_id)}")
    if result.run_url:
        print(f"run url:    {show_url(result.run_url, link)}")
    if verbose and result.response is not None and result.response != "":
        cut = " (truncated)" if result.truncated else ""
        print(f"response{cut}:")
        for line in _response_text(result.response).splitlines():
            print(f"  {clean(line)}")


def _print_run(run: RunResult, shown_url: str | None, link: bool) -> None:
    print(f"run:        {run.state.value.upper()}  ({run.polls} status "
          f"check{'s' if run.polls != 1 else ''}, {run.duration_ms / 1000:.1f} s)")
    if run.run_url and run.run_url != shown_url:  # a URL the status told, not the trigger
        print(f"  run url:  {show_url(run.run_url, link)}")
    print(f"  message:  {clean(run.message)}")


def emit(result: TriggerResult, run: RunResult | None, args: argparse.Namespace) -> None:
    if args.json:
        print(json.dumps({"trigger": result.to_log(),
                          "run": run.to_log() if run is not None else None},
                         indent=2, default=str))
        return
    link = hyperlinks(sys.stdout)
    _print_trigger(result, args.verbose, link)
    if run is not None:
        _print_run(run, result.run_url, link)


def run_exit(run: RunResult) -> int:
    if run.state is RunState.SUCCESS:
        return OK
    return WAIT_TIMEOUT if run.state is RunState.TIMEOUT else RUN_FAILED


# --- the command ----------------------------------------------------------------------------


def cmd_fire(args: argparse.Namespace) -> int:
    specs = load_jobs(args.file)
    if args.all:
        if args.job is not None:
            raise UsageError("give --job NAME or --all, not both")
        from ._fire_all import fire_all

        return fire_all(specs, args)
    if args.concurrency is not None:
        raise UsageError("--concurrency goes with --all")
    if args.job is None and len(specs) > 1:
        names = ", ".join(repr(s.name) for s in specs)
        raise UsageError(f"{args.file} holds {len(specs)} jobs; name one with --job "
                         f"({names}), or fire them all with --all")
    spec = select(specs, args.job, args.file)[0]
    scheduled = (in_job_tz(args.scheduled_time, spec) if args.scheduled_time is not None
                 else datetime.now(timezone.utc).replace(microsecond=0))
    if args.dry_run:
        return dry_run(spec, scheduled, args.json)
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
        err(engine.state.redactor.text(f"unexpected error: {type(exc).__name__}: {exc}"))
        return INVALID
    finally:
        progress.close()


def _fire(engine: Engine, progress: Progress, spec: JobSpec, scheduled: datetime,
          args: argparse.Namespace) -> int:
    result = engine.fire(spec, scheduled_time=scheduled, upstream=cli_upstream())
    progress.close()
    if not result.ok:
        emit(result, None, args)
        err(result.error or f"job {spec.name!r}: the trigger failed")
        return TRIGGER_FAILED
    if not args.wait or result.skipped:
        emit(result, None, args)
        if args.wait:
            print(f"trigrun: not waiting: the fire was skipped ({clean(result.reason)})", file=sys.stderr)
        return OK
    if result.run_id is None:
        emit(result, None, args)
        err(f"job {spec.name!r}: cannot wait: the trigger response named no run id "
            "(for a webhook set wait.run_id_path and wait.status_url)")
        return RUN_FAILED
    # Where to look while waiting: the URL whole, on its own line.
    how = "adopted run" if result.adopted else "run"
    progress.say(f"trigrun: {spec.name}: waiting for {how} {result.run_id}")
    if result.run_url:
        progress.say(f"  {show_url(result.run_url, hyperlinks(sys.stderr))}")
    try:
        run = engine.wait(result, poll_interval=args.poll_interval, timeout=args.timeout)
    except KeyboardInterrupt:
        progress.close()
        emit(result, None, args)
        return interrupted([result], engine.cancel if args.cancel_on_interrupt else None)
    progress.close()
    emit(result, run, args)
    if run.state is not RunState.SUCCESS:
        err(run.message)
    return run_exit(run)


def interrupted(going: list[TriggerResult],
                cancel: Callable[[TriggerResult], bool] | None) -> int:
    """Ctrl-C while waiting: name every run that keeps going (id and URL, whole), or cancel
    each of them once (``--cancel-on-interrupt``). Exit 130."""
    link = hyperlinks(sys.stderr)
    if not going:
        err("interrupted")
        return INTERRUPTED
    if cancel is None:
        n = len(going)
        err(f"interrupted: stopped waiting; {n} run{'s' if n != 1 else ''} keep{'s' if n == 1 else ''}"
            " going (--cancel-on-interrupt cancels them):")
    else:
        err("interrupted: stopped waiting; cancelling each run:")
    for result in going:
        outcome = ""
        if cancel is not None:
            try:
                outcome = " (cancel requested)" if cancel(result) else " (the target refused " \
                    "the cancel: it keeps going)"
            except Exception as exc:  # one failed cancel must not hide the other runs
                outcome = f" (cancel failed: {type(exc).__name__}: it keeps going)"
        print(f"  {result.job}: run {clean(result.run_id)}{outcome}", file=sys.stderr)
        if result.run_url:
            print(f"    {show_url(result.run_url, link)}", file=sys.stderr)
    sys.stderr.flush()
    return INTERRUPTED
