"""``trigrun next FILE``: upcoming fire times, DST changes marked."""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timezone
from typing import Any

from .._loader import load_jobs
from .._models import JobSpec
from .._schedule import Tick, localize, next_ticks
from ._common import OK, in_job_tz, job_tz, select

RULES_HELP = """\
which orchestrator's DST rules to apply (default: airflow). They differ only around DST
changes: airflow = Airflow's CronTriggerTimetable (a daily 02:30 skipped by spring forward
fires at 03:30), dagster = Dagster's scheduler (fires at 03:00); both fire a repeated time
once, at its 2nd occurrence. croniter = croniter alone, for contrast (fires a repeated daily
time twice). Pick the orchestrator the job runs in."""


def fmt_time(t: datetime) -> str:
    off = t.strftime("%z")
    off = f"{off[:3]}:{off[3:]}" if off else "+00:00"
    seconds = ":%S" if t.second else ""
    return f"{t.strftime('%Y-%m-%d %a %H:%M')}{t.strftime(seconds)} {t.tzname()} (UTC{off})"


def _describe_schedule(spec: JobSpec, rules: str) -> str:
    kind = spec.effective_kind
    sched = spec.schedule
    if kind == "cron" and sched is not None:
        return f"cron {sched.cron!r} in {sched.timezone}, {rules} rules"
    if kind == "once" and sched is not None:
        return f"once, in {sched.timezone}"
    return "manual: no schedule, fired on demand only"


def cmd_next(args: argparse.Namespace) -> int:
    specs = select(load_jobs(args.file), args.job, args.file)
    now = datetime.now(timezone.utc)
    report: list[dict[str, Any]] = []
    for i, spec in enumerate(specs):
        start = in_job_tz(args.start, spec) if args.start is not None else now
        ticks = next_ticks(spec, start=start, count=args.count, rules=args.rules)
        if args.json:
            report.append({
                "job": spec.name, "kind": spec.effective_kind, "enabled": spec.enabled,
                "timezone": job_tz(spec), "rules": args.rules,
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
        print(f"  none: schedule.at is before {fmt_time(localize(start, job_tz(spec)))}")
    for tick in ticks:
        line = f"  {fmt_time(tick.time)}"
        if tick.note:
            line += f"  ({tick.note})"
        print(line)
