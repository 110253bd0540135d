"""When a job fires: upcoming fire times of a cron (or ``kind: once``) job, per orchestrator.

A cron expression names wall-clock times; a DST change makes some of them not exist (spring
forward) or exist twice (fall back). The orchestrators settle that differently, and a preview
must agree with the one the job runs in, so there are three rule sets:

``airflow``
    Airflow's ``CronTriggerTimetable`` (``airflow/timetables/_cron.py``): a time the clocks skip
    is moved forward by the size of the jump (daily 02:30 fires at 03:30 on the spring-forward
    day in America/New_York); a time that happens twice fires once, at the second (post-
    transition) occurrence. Crons whose hour field is ``*`` step in real elapsed time instead,
    so an hourly job fires every real hour, twice in the repeated hour and not in the skipped one.
``dagster``
    Dagster's scheduler (``dagster/_utils/schedules.py``): a skipped time moves to the end of the
    jump (daily 02:30 fires at 03:00); a time that happens twice fires once, at the second
    occurrence. Crons whose hour field is ``*`` skip the missing times and fire at both
    occurrences of repeated ones.
``croniter``
    croniter alone, iterating aware datetimes, as hand-written schedulers do: for contrast. It
    fires a daily 01:30 twice on the fall-back day.

The first fire time is the first at or after ``start``: both orchestrators count a start that
falls on a tick, except that Airflow does not when the tick after it was moved by DST (its
``_align_to_next``), and that is reproduced too. The module is pure (no I/O, imports neither
Airflow nor Dagster) and cheap enough for DAG parse time (``next_fire_times``; ``next_ticks``
adds DST notes for display and costs more).

``tests/cli/test_schedule.py`` checks it against Airflow 3's and Dagster 1.13's own tick
computation (New York, Berlin, UTC, Sydney, Havana). Known gaps: zones whose DST jump is not a
whole hour or not on the hour (Australia/Lord_Howe, Pacific/Chatham), where Dagster's own
fast and generic paths disagree with each other.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone
from functools import lru_cache
from typing import Literal, get_args
from zoneinfo import ZoneInfo

from croniter import croniter

from ._exceptions import SpecError
from ._models import JobSpec

Rules = Literal["airflow", "dagster", "croniter"]
RULES: tuple[str, ...] = get_args(Rules)
UTC = timezone.utc
# No zone moves its clocks by more than this at once; used to bound look-ahead.
_MAX_JUMP = timedelta(hours=3)


@dataclass(frozen=True)
class Tick:
    """One upcoming fire: ``time`` is aware, in the job's time zone; ``note`` explains how a DST
    change affects it (None when it does not)."""

    time: datetime
    note: str | None = None

    @property
    def dst_affected(self) -> bool:
        return self.note is not None


# --- small helpers --------------------------------------------------------------------------


@lru_cache(maxsize=256)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


@lru_cache(maxsize=1024)
def _hour_is_star(cron: str) -> bool:
    """Both orchestrators treat crons that fire in every hour (hour field ``*``) specially."""
    return bool(croniter(cron).expanded[1] == ["*"])


def _wall(t: datetime, zone: ZoneInfo) -> datetime:
    """Local wall-clock reading of an instant, naive, fold cleared (as croniter wants it)."""
    return t.astimezone(zone).replace(tzinfo=None, fold=0)


def _exists(naive: datetime, zone: ZoneInfo) -> bool:
    local = naive.replace(tzinfo=zone)
    return local.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == naive.replace(fold=0)


def _ambiguous(naive: datetime, zone: ZoneInfo) -> bool:
    return zone.utcoffset(naive.replace(fold=0)) != zone.utcoffset(naive.replace(fold=1)) \
        and _exists(naive, zone)


def _as_utc(naive: datetime, zone: ZoneInfo, fold: int = 0) -> datetime:
    return naive.replace(tzinfo=zone, fold=fold).astimezone(UTC)


def _check_rules(rules: str) -> None:
    if rules not in RULES:
        raise ValueError(f"unknown rules {rules!r}; use one of {', '.join(RULES)}")


def _aware_start(start: datetime) -> datetime:
    if start.tzinfo is None or start.utcoffset() is None:
        raise ValueError(f"start {start.isoformat()} has no time zone; pass an aware datetime")
    return start.astimezone(UTC)


# --- Airflow: CronTriggerTimetable ----------------------------------------------------------


def _airflow_localize(naive: datetime, zone: ZoneInfo) -> datetime:
    """Airflow's ``make_aware``: fold=1, then pendulum's ``convert`` (a skipped time moves
    forward by the size of the jump; a repeated time takes its second occurrence)."""
    dt = naive.replace(fold=1)
    before = zone.utcoffset(dt.replace(fold=0)) or timedelta(0)
    after = zone.utcoffset(dt) or timedelta(0)
    if after > before:
        dt = dt + (after - before)
    return dt.replace(tzinfo=zone).astimezone(UTC)


def _airflow_step(current: datetime, cron: str, zone: ZoneInfo, forward: bool) -> datetime:
    """``CronMixin._get_next`` / ``_get_prev`` on a UTC instant."""
    naive = _wall(current, zone)
    it = croniter(cron, naive)
    scheduled: datetime = it.get_next(datetime) if forward else it.get_prev(datetime)
    if not _hour_is_star(cron):
        return _airflow_localize(scheduled, zone)
    # Every-hour crons step by elapsed time, so the repeated hour fires twice.
    return current + (scheduled - naive)


def _airflow_iter(cron: str, zone: ZoneInfo, start: datetime) -> Iterator[datetime]:
    nxt = _airflow_step(start, cron, zone, True)
    # ``_align_to_next``: a start that is itself a tick is the first run.
    current = start if _airflow_step(nxt, cron, zone, False) == start else nxt
    while True:
        yield current
        current = _airflow_step(current, cron, zone, True)


# --- Dagster: cron_string_iterator ----------------------------------------------------------


def _dagster_post_transition(naive: datetime, zone: ZoneInfo) -> datetime:
    """Dagster's ``apply_post_transition`` for a time the clocks skip: the end of the jump."""
    if naive.hour not in (1, 2, 3):
        # Dagster leaves other hours alone; such a time resolves like a fold=0 reading.
        return _as_utc(naive, zone)
    local = naive.replace(tzinfo=zone)
    jump = zone.dst(local + timedelta(hours=1)) or timedelta(0)
    return _as_utc(naive.replace(minute=0, second=0, microsecond=0) + jump, zone)


@lru_cache(maxsize=1024)
def _dagster_fast_path(cron: str) -> bool:
    """Whether Dagster special-cases this cron (hourly, daily, weekly, monthly shapes).

    Its fast paths take the second reading of a repeated time only in hours 1-3; its generic
    path takes it in any hour. That matters in zones that fall back at midnight (Havana)."""
    it = croniter(cron)
    parts = it.expanded
    if getattr(it, "nth_weekday_of_month", None):
        return False
    numeric = [len(p) == 1 and isinstance(p[0], int) for p in parts]
    star = [len(p) == 1 and p[0] == "*" for p in parts]
    numeric_dows = all(isinstance(d, int) for d in parts[4])
    if all(numeric[0:3]) and all(star[3:]) and parts[2][0] <= 28:
        return True  # monthly
    if all(numeric[0:2]) and numeric[4] and all(star[2:4]):
        return True  # weekly
    if all(numeric[0:2]) and all(star[2:4]) and (star[4] or numeric_dows):
        return True  # daily
    return all(m != "*" for m in parts[0]) and all(star[1:])  # hourly


def _dagster_candidates(naive: datetime, zone: ZoneInfo, it: croniter, every_hour: bool,
                        fold_any_hour: bool) -> list[datetime]:
    """What Dagster's ``_timezone_aware_cron_iter`` makes of one croniter time, in order."""
    if not _exists(naive, zone):
        return [] if every_hour else [_dagster_post_transition(naive, zone)]
    if not _ambiguous(naive, zone):
        return [_as_utc(naive, zone)]
    post = _as_utc(naive, zone, fold=1)
    if not every_hour:
        second = fold_any_hour or naive.hour in (1, 2, 3)
        return [post if second else _as_utc(naive, zone)]
    # Every-hour crons fire at both readings of every repeated time: gather the whole
    # repeated range (it consumes the croniter stream, as Dagster's does), then sort.
    found = [post, _as_utc(naive, zone)]
    pre = found[1]
    while pre < post:
        nxt: datetime = it.get_next(datetime)
        pre = _as_utc(nxt, zone)
        found += [pre, _as_utc(nxt, zone, fold=1)]
    return sorted(found)


def _dagster_iter(cron: str, zone: ZoneInfo, start: datetime) -> Iterator[datetime]:
    every_hour = _hour_is_star(cron)
    fold_any_hour = every_hour or not _dagster_fast_path(cron)
    # Start early enough that a time moved forward by a DST jump onto `start` is seen.
    it = croniter(cron, _wall(start, zone) - _MAX_JUMP)
    last: datetime | None = None
    if cron == "0 0 * * *" and _wall(start, zone).time() == time(0):
        # Dagster's shortcut: a start on local midnight is a tick, whichever reading it is.
        last = start
        yield start
    while True:
        naive: datetime = it.get_next(datetime)
        for t in _dagster_candidates(naive, zone, it, every_hour, fold_any_hour):
            # Dagster keeps only times later than the last one it gave, in stream order.
            if t >= start and (last is None or t > last):
                last = t
                yield t


# --- croniter alone -------------------------------------------------------------------------


def _croniter_iter(cron: str, zone: ZoneInfo, start: datetime) -> Iterator[datetime]:
    it = croniter(cron, (start - timedelta(seconds=1)).astimezone(zone))
    last: datetime | None = None
    while True:
        got: datetime = it.get_next(datetime)
        t = got.astimezone(UTC)
        if t >= start and (last is None or t > last):
            last = t
            yield t


_ITERS = {"airflow": _airflow_iter, "dagster": _dagster_iter, "croniter": _croniter_iter}


# --- public functions ---------------------------------------------------------------------


def iter_fire_times(cron: str, tz: str, *, start: datetime, rules: str = "airflow") -> Iterator[datetime]:
    """Fire times of ``cron`` read in time zone ``tz``, at or after ``start``, endless.

    Each is an aware datetime in ``tz`` (``fold`` set, so ``%Z`` names EDT or EST right)."""
    _check_rules(rules)
    zone = _zone(tz)
    for t in _ITERS[rules](cron, zone, _aware_start(start)):
        yield t.astimezone(zone)


def fire_times(cron: str, tz: str, *, start: datetime, count: int,
               rules: str = "airflow") -> list[datetime]:
    """The first ``count`` fire times of ``cron`` in ``tz`` at or after ``start``."""
    it = iter_fire_times(cron, tz, start=start, rules=rules)
    return [next(it) for _ in range(max(count, 0))]


def localize(naive: datetime, tz: str) -> datetime:
    """Read a naive wall-clock time in ``tz`` the way cron times are read: a time the clocks
    skip moves forward by the jump, a time that happens twice is its second occurrence."""
    zone = _zone(tz)
    if naive.tzinfo is not None:
        return naive.astimezone(zone)
    return _airflow_localize(naive, zone).astimezone(zone)


def once_time(spec: JobSpec) -> datetime | None:
    """The fire time of a ``kind: once`` job, aware, in its time zone. A naive ``at`` is read
    in the job's time zone like a cron time (a skipped time moves forward, a repeated time is
    its second occurrence)."""
    sched = spec.schedule
    if sched is None or sched.at is None:
        return None
    return localize(sched.at, sched.timezone)


def next_fire_times(spec: JobSpec, *, start: datetime, count: int,
                    rules: str = "airflow") -> list[datetime]:
    """Upcoming fire times of a job at or after ``start``: cron jobs by ``rules``, a
    ``kind: once`` job its ``schedule.at`` (when not past), a manual job none."""
    _check_rules(rules)
    start_utc = _aware_start(start)
    kind = spec.effective_kind
    if kind == "once":
        at = once_time(spec)
        return [at] if at is not None and at >= start_utc and count > 0 else []
    if kind != "cron" or spec.schedule is None or spec.schedule.cron is None:
        return []
    return fire_times(spec.schedule.cron, spec.schedule.timezone, start=start_utc, count=count,
                      rules=rules)


def next_ticks(spec: JobSpec, *, start: datetime, count: int, rules: str = "airflow") -> list[Tick]:
    """Like ``next_fire_times``, each with a note when a DST change affects it (for display;
    slower than ``next_fire_times``)."""
    times = next_fire_times(spec, start=start, count=count, rules=rules)
    sched = spec.schedule
    if spec.effective_kind == "once":
        return [Tick(t, _once_note(spec, t)) for t in times]
    if sched is None or sched.cron is None:
        return []
    return annotate(sched.cron, sched.timezone, times, start=start)


# --- DST notes ------------------------------------------------------------------------------


def _hm(t: datetime) -> str:
    return t.strftime("%H:%M") if t.second == 0 else t.strftime("%H:%M:%S")


def _skipped_between(cron: str, zone: ZoneInfo, prev: datetime, t: datetime) -> list[datetime]:
    """Cron times between two fires that the clocks skipped (naive wall times)."""
    out: list[datetime] = []
    it = croniter(cron, _wall(prev, zone))
    end = _wall(t, zone)
    for _ in range(500):  # a bound: a gap holds at most an hour or two of cron times
        naive: datetime = it.get_next(datetime)
        if naive >= end:
            break
        if not _exists(naive, zone):
            out.append(naive)
    return out


def _note(cron: str, zone: ZoneInfo, t: datetime, prev: datetime, start: datetime) -> str | None:
    local = t.astimezone(zone)
    wall = local.replace(tzinfo=None, fold=0)
    notes: list[str] = []
    shifted_from: datetime | None = None
    if not croniter.match(cron, wall):
        cand: datetime = croniter(cron, wall).get_prev(datetime)
        if not _exists(cand, zone):
            shifted_from = cand
            notes.append(f"DST: shifted from {_hm(cand)}, which the clocks skip")
    if _ambiguous(wall, zone):
        if not local.fold:
            notes.append(f"DST: {_hm(wall)} happens twice; this is the 1st, in {local.tzname()}")
        # Compare in UTC: Python never calls a repeated-hour time equal to one in another zone.
        elif _as_utc(wall, zone) == prev.astimezone(UTC) or _as_utc(wall, zone) < start:
            notes.append(f"DST: {_hm(wall)} happens twice; this is the 2nd, in {local.tzname()}")
        else:
            notes.append(f"DST: {_hm(wall)} happens twice; fires once, at the 2nd, "
                         f"in {local.tzname()}")
    before = prev.astimezone(zone).utcoffset() or timedelta(0)
    now = local.utcoffset() or timedelta(0)
    if now > before:  # the clocks jumped forward in between: some cron times may be gone
        skipped = [s for s in _skipped_between(cron, zone, prev, t) if s != shifted_from]
        if skipped:
            span = f"{_hm(skipped[0])} skipped" if len(skipped) == 1 else \
                f"{_hm(skipped[0])}-{_hm(skipped[-1])} skipped ({len(skipped)} times)"
            notes.append(f"DST: {span}, the clocks jump forward")
    if not notes and before != now:
        notes.append(f"DST change: {prev.astimezone(zone).tzname()} -> {local.tzname()}")
    return "; ".join(notes) or None


def _once_note(spec: JobSpec, at: datetime) -> str | None:
    sched = spec.schedule
    if sched is None or sched.at is None or sched.at.tzinfo is not None:
        return None  # an explicit offset leaves nothing to interpret
    zone, wall = _zone(sched.timezone), sched.at
    if not _exists(wall, zone):
        return f"DST: shifted from {_hm(wall)}, which the clocks skip"
    if _ambiguous(wall, zone):
        return f"DST: {_hm(wall)} happens twice; read as the 2nd, in {at.tzname()}"
    return None


def annotate(cron: str, tz: str, times: list[datetime], *, start: datetime) -> list[Tick]:
    """Attach DST notes to fire times: shifted, repeated, skipped, or a changed UTC offset."""
    zone = _zone(tz)
    out: list[Tick] = []
    prev = first = _aware_start(start)
    for t in times:
        out.append(Tick(t, _note(cron, zone, t, prev, first)))
        prev = t
    return out


def parse_iso_time(value: str, where: str) -> datetime:
    """An ISO 8601 time from untrusted text. A trailing ``Z`` is accepted on every Python
    (``datetime.fromisoformat`` takes it only from 3.11); bad text is a ``SpecError`` naming
    ``where`` (the job and field), not a bare ``ValueError``."""
    text = value.strip()
    if text[-1:] in ("Z", "z"):
        text = text[:-1] + "+00:00"
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise SpecError(f"{where}: {value!r} is not an ISO 8601 time, e.g. "
                        "'2026-03-08T07:30:00Z' or '2026-03-08T02:30:00-05:00'") from None
