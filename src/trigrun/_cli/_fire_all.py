"""``trigrun fire FILE --all``: every enabled job through ``AsyncEngine.run_many``, a live
table on stderr, one summary on stdout, and on Ctrl-C the runs that keep going."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from datetime import datetime, timezone
from typing import Any

from .._engine import AsyncEngine, Engine
from .._exceptions import SecretNotFound, SpecError
from .._models import JobSpec
from .._results import JobRun, RunState
from .._schedule import localize
from ._common import (
    INVALID,
    OK,
    RUN_FAILED,
    TRIGGER_FAILED,
    WAIT_TIMEOUT,
    UsageError,
    cli_upstream,
    err,
    hyperlinks,
    job_tz,
    show_url,
)
from ._dry_run import dry_run
from ._fire import interrupted
from ._table import STATE_WIDTH, Board, end_label


def all_exit(runs: list[JobRun]) -> int:
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
    zones = {job_tz(s) for s in specs}
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


def fire_all(specs: list[JobSpec], args: argparse.Namespace) -> int:
    skipped = [s for s in specs if not s.enabled]
    specs = [s for s in specs if s.enabled]
    for s in skipped:
        print(f"trigrun: job {s.name!r} is disabled (enabled: false): not fired",
              file=sys.stderr)
    if not specs:
        err(f"{args.file}: every job is disabled; nothing to fire")
        return OK
    scheduled = _all_time(specs, args.scheduled_time)
    if args.dry_run:
        for i, spec in enumerate(specs):
            if i and not args.json:
                print()
            dry_run(spec, scheduled, args.json)
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
    except KeyboardInterrupt:
        board.draw()
        for name in board.firing():
            err(f"job {name!r} was being fired: its run may have started (firing again with "
                "the same --scheduled-time adopts it)")
        if not args.cancel_on_interrupt:
            return interrupted(board.going(), None)
        # The loop is gone with the interrupt: a sync engine sends each cancel, once.
        with Engine() as canceller:
            return interrupted(board.going(), canceller.cancel)
    except (SpecError, SecretNotFound):
        raise
    except Exception as exc:
        if os.environ.get("TRIGRUN_DEBUG"):
            raise
        err(engine.state.redactor.text(f"unexpected error: {type(exc).__name__}: {exc}"))
        return INVALID
    board.draw()
    _summary(runs, args.json)
    return all_exit(runs)


async def _tick(board: Board) -> None:
    """Redraw the terminal table twice a second, so elapsed times move between changes."""
    if not board.tty:
        return
    while True:
        await asyncio.sleep(0.5)
        board.draw()


def _summary(runs: list[JobRun], as_json: bool) -> None:
    """One line per job (end state, duration, name: the name last, so a long one cannot push
    the columns), its run's URL or id whole on the next line; errors on stderr."""
    if as_json:
        print(json.dumps([r.to_log() for r in runs], indent=2, default=str))
        return
    link = hyperlinks(sys.stdout)
    for r in runs:
        t = r.trigger
        where = (r.run.run_url if r.run is not None and r.run.run_url else None) \
            or t.run_url or t.run_id or ""
        seconds = (t.duration_ms + (r.run.duration_ms if r.run is not None else 0.0)) / 1000
        print(f"{end_label(r):<{STATE_WIDTH}} {seconds:7.1f}s  {r.job}")
        if where:
            print(f"    {show_url(where, link)}")
    bad = [r for r in runs if not r.ok]
    for r in bad:
        why = r.trigger.error if not r.trigger.ok else (r.run.message if r.run else "")
        if why:
            err(why)
    print(f"{len(runs) - len(bad)} of {len(runs)} jobs ok")
