"""Partitioned trigrun assets: which partitions a job has, and what one partition's run fires.

A time-window partition stands for one scheduled fire: the window's start (or end) is the
scheduled time that templates and the idempotency key see, so the partition fires one
downstream run however often it is materialized, retried or backfilled. A static partition's
key is ``{{ partition_key }}`` in templates and is part of its idempotency key.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

import dagster as dg

from .._exceptions import SpecError
from .._flow import idempotency_key
from .._models import JobSpec, PartitionsSpec

PartitionTime = Literal["start", "end"]
PartitionsArg = dg.PartitionsDefinition | Mapping[str, dg.PartitionsDefinition] | None
# Set by Dagster on runs a schedule launched (dagster._core.storage.tags).
DAGSTER_SCHEDULED_TAG = ".dagster/scheduled_execution_time"
_KEY_CHARS = re.compile(r"[^A-Za-z0-9_.-]+")
# A cron with a fixed minute and hour fires at most once a day: its windows are named by date.
_FIXED = re.compile(r"^\d+$")


def partitions_from_spec(spec: JobSpec) -> dg.PartitionsDefinition | None:
    """The partitions the jobs file asks for (``partitions:``), or None."""
    p: PartitionsSpec | None = spec.partitions
    if p is None:
        return None
    if p.keys is not None:
        return dg.StaticPartitionsDefinition(list(p.keys))
    cron = spec.schedule.cron if spec.schedule is not None else None
    if cron is None or spec.schedule is None:
        raise SpecError(f"job {spec.name!r}, field partitions.start: time-window partitions "
                        "follow the job's schedule.cron; add one (e.g. '0 1 * * *'), or give "
                        "static partitions as partitions.keys")
    tz = spec.schedule.tzinfo
    minute, hour = cron.split()[:2]
    fmt = "%Y-%m-%d" if _FIXED.match(minute) and _FIXED.match(hour) else "%Y-%m-%d-%H:%M"

    def aware(when: datetime) -> datetime:
        return when if when.tzinfo is not None else when.replace(tzinfo=tz)

    assert p.start is not None  # the model checks start xor keys
    return dg.TimeWindowPartitionsDefinition(
        start=aware(p.start), end=aware(p.end) if p.end is not None else None, fmt=fmt,
        cron_schedule=cron, timezone=spec.schedule.timezone)


def check_partitions(spec: JobSpec, partitions_def: dg.PartitionsDefinition | None) -> None:
    if isinstance(partitions_def, dg.MultiPartitionsDefinition):
        raise SpecError(f"job {spec.name!r}: multi-dimensional partitions are not supported "
                        "(two keys of one date would be one fire); build one asset per static "
                        "key with time-window partitions, or use a static key per combination")


def partitions_for(spec: JobSpec, given: PartitionsArg) -> dg.PartitionsDefinition | None:
    """``partitions_def`` given to a builder (one for every job, or job name/slug -> one),
    else the jobs file's ``partitions:``."""
    found = given.get(spec.name, given.get(spec.slug)) if isinstance(given, Mapping) else given
    out = found if found is not None else partitions_from_spec(spec)
    check_partitions(spec, out)
    return out


def partition_time_of(spec: JobSpec, given: PartitionTime | None) -> PartitionTime:
    if given is not None:
        if given not in ("start", "end"):
            raise ValueError(f"partition_time must be 'start' or 'end', not {given!r}")
        return given
    return spec.partitions.time if spec.partitions is not None else "start"


@dataclass(frozen=True)
class PartitionFire:
    """What one partition's run fires: the scheduled time (None: the run's usual one), the
    template names it adds, and the spec to fire (its key pinned for a static partition)."""

    scheduled: datetime | None
    names: dict[str, Any]
    spec: JobSpec


def _window(context: dg.OpExecutionContext) -> dg.TimeWindow | None:
    try:
        return context.partition_time_window
    except Exception:  # Dagster raises a check error for partitions without time windows
        return None


def partition_fire(context: dg.OpExecutionContext, spec: JobSpec, edge: PartitionTime,
                   scheduled_default: datetime) -> PartitionFire | None:
    """None when the run has no partition. ``scheduled_default``: the run's time without a
    partition (schedule tick, or the root run's creation), used for a static partition."""
    if context.has_partition_key:
        key = context.partition_key
    elif context.has_partition_key_range:
        # A backfill run of one partition may name it as the range [key, key].
        span = context.partition_key_range
        if span.start != span.end:
            raise dg.Failure(description=f"job {spec.name!r}: a trigrun asset materializes "
                             "one partition per run (one downstream run each); this run asked "
                             f"for {span.start}...{span.end}")
        key = span.start
    else:
        return None
    names: dict[str, Any] = {"partition_key": key}
    from_schedule = DAGSTER_SCHEDULED_TAG in context.dagster_run.tags
    # A backfill of last year's partitions is asked for on purpose: the TTL (meant for late
    # ticks) applies only to a run a schedule launched.
    fire_spec = spec if from_schedule else spec.model_copy(update={"ttl_seconds": None})
    window = _window(context)
    if window is not None:
        # In the partitions' own time zone, so {{ ds }} is the date the partition key names.
        start, end = window.start, window.end
        if start.tzinfo is None:
            start, end = start.replace(tzinfo=timezone.utc), end.replace(tzinfo=timezone.utc)
        names.update(data_interval_start=start.isoformat(), data_interval_end=end.isoformat())
        return PartitionFire(start if edge == "start" else end, names, fire_spec)
    if spec.idempotency.key is None:
        # One scheduled time, several keys: each key is its own fire.
        base = idempotency_key(spec, scheduled_default)
        digest = hashlib.sha256(f"{base}\n{key}".encode()).hexdigest()[:12]
        slug = _KEY_CHARS.sub("_", key)[:40]
        pinned = f"{base.rsplit('__', 1)[0]}__{slug}__{digest}"
        fire_spec = fire_spec.model_copy(update={
            "idempotency": spec.idempotency.model_copy(update={"key": pinned})})
    return PartitionFire(None, names, fire_spec)


def partitioned_schedule(spec: JobSpec, job: Any, partitions_def: dg.PartitionsDefinition,
                         status: dg.DefaultScheduleStatus, name: str | None = None
                         ) -> dg.ScheduleDefinition | Any:
    """The schedule of a partitioned job: for time windows Dagster's own
    ``build_schedule_from_partitioned_job`` (each tick runs the window that just closed); for
    static keys one run per key at each tick of the job's cron."""
    sname = name or f"{job.name}_schedule"
    desc = f"trigrun job {spec.name!r}: one run per partition"
    if isinstance(partitions_def, dg.TimeWindowPartitionsDefinition):
        return dg.build_schedule_from_partitioned_job(job, name=sname, default_status=status,
                                                      description=desc)
    if spec.schedule is None or spec.schedule.cron is None:
        raise SpecError(f"job {spec.name!r}: a schedule needs schedule.cron")

    @dg.schedule(name=sname, cron_schedule=spec.schedule.cron, job=job,
                 execution_timezone=spec.schedule.timezone, default_status=status,
                 description=desc)
    def _each_key(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest]:
        tick = context.scheduled_execution_time or datetime.now(timezone.utc)
        stamp = tick.isoformat()
        return [dg.RunRequest(run_key=f"{stamp}|{k}", partition_key=k)
                for k in partitions_def.get_partition_keys(dynamic_partitions_store=context.instance)]

    return _each_key
