"""``trigrun._schedule`` against the orchestrators' own tick computation, across DST.

Airflow: ``CronTriggerTimetable.next_dagrun_info`` iterated the way the scheduler does (each
run's data interval fed back as ``last_automated_data_interval``). Dagster:
``schedule_execution_time_iterator``, the function the scheduler daemon iterates (through
``RemoteSchedule.execution_time_iterator``) for a ``ScheduleDefinition``'s cron schedule and
execution time zone. Neither is imported by ``trigrun._schedule`` itself.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import dagster as dg
import pendulum
import pytest
from airflow.timetables.base import DataInterval, TimeRestriction
from airflow.timetables.trigger import CronTriggerTimetable
from croniter import croniter
from dagster._utils.schedules import schedule_execution_time_iterator

from trigrun import JobSpec
from trigrun._schedule import (
    annotate,
    fire_times,
    localize,
    next_fire_times,
    next_ticks,
)

UTC = timezone.utc
NY, BERLIN = "America/New_York", "Europe/Berlin"
# 2026's DST changes: (zone, local date of the change).
TRANSITIONS = [
    (NY, datetime(2026, 3, 8)),  # 02:00 EST -> 03:00 EDT
    (NY, datetime(2026, 11, 1)),  # 02:00 EDT -> 01:00 EST
    (BERLIN, datetime(2026, 3, 29)),  # 02:00 CET -> 03:00 CEST
    (BERLIN, datetime(2026, 10, 25)),  # 03:00 CEST -> 02:00 CET
    ("UTC", datetime(2026, 3, 8)),
    ("UTC", datetime(2026, 11, 1)),
]
# (cron, how long before the change day to start, how many ticks reach past that day)
CRONS = [
    ("0 * * * *", timedelta(hours=2), 30),  # hourly
    ("*/30 * * * *", timedelta(hours=1), 56),
    ("30 1 * * *", timedelta(days=2), 4),  # daily 01:30
    ("30 2 * * *", timedelta(days=2), 4),  # daily 02:30
    ("30 2 * * 0", timedelta(days=8), 3),  # weekly, Sunday 02:30: each change is on a Sunday
]


def airflow_ticks(cron: str, tz: str, start: datetime, count: int) -> list[datetime]:
    timetable = CronTriggerTimetable(cron, timezone=tz)
    restriction = TimeRestriction(earliest=pendulum.instance(start), latest=None, catchup=True)
    last: DataInterval | None = None
    out: list[datetime] = []
    for _ in range(count):
        info = timetable.next_dagrun_info(last_automated_data_interval=last,
                                          restriction=restriction)
        assert info is not None
        out.append(datetime.fromtimestamp(info.run_after.timestamp(), UTC))
        last = info.data_interval
    return out


def dagster_ticks(cron: str, tz: str, start: datetime, count: int) -> list[datetime]:
    schedule = dg.ScheduleDefinition(name="probe", cron_schedule=cron, execution_timezone=tz,
                                     job_name="probe_job")
    assert isinstance(schedule.cron_schedule, str)
    it = schedule_execution_time_iterator(start.timestamp(), schedule.cron_schedule,
                                          schedule.execution_timezone)
    return [datetime.fromtimestamp(next(it).timestamp(), UTC) for _ in range(count)]


ORCHESTRATORS: dict[str, Any] = {"airflow": airflow_ticks, "dagster": dagster_ticks}


def ours(cron: str, tz: str, start: datetime, count: int, rules: str) -> list[datetime]:
    got = fire_times(cron, tz, start=start, count=count, rules=rules)
    assert all(t.tzinfo == ZoneInfo(tz) for t in got), "fire times are in the job's zone"
    return [t.astimezone(UTC) for t in got]


def local(tz: str, *args: int, fold: int = 0) -> datetime:
    return datetime(*args, tzinfo=ZoneInfo(tz), fold=fold)  # type: ignore[misc]


def on_day(times: list[datetime], tz: str, day: datetime) -> list[str]:
    """The fire times that fall on a local calendar day, as 'HH:MM ABBR'."""
    zone = ZoneInfo(tz)
    return [t.astimezone(zone).strftime("%H:%M %Z") for t in times
            if t.astimezone(zone).date() == day.date()]


# --- the documented facts, checked against both orchestrators -----------------------------


def test_spring_forward_daily_0230_new_york_differs_between_orchestrators() -> None:
    start = local(NY, 2026, 3, 7)
    day = datetime(2026, 3, 8)
    assert on_day(airflow_ticks("30 2 * * *", NY, start, 3), NY, day) == ["03:30 EDT"]
    assert on_day(dagster_ticks("30 2 * * *", NY, start, 3), NY, day) == ["03:00 EDT"]
    assert on_day(ours("30 2 * * *", NY, start, 3, "airflow"), NY, day) == ["03:30 EDT"]
    assert on_day(ours("30 2 * * *", NY, start, 3, "dagster"), NY, day) == ["03:00 EDT"]


def test_fall_back_daily_0130_fires_once_in_both_and_twice_with_croniter() -> None:
    start = local(NY, 2026, 10, 31)
    day = datetime(2026, 11, 1)
    for rules, orchestrator in ORCHESTRATORS.items():
        assert on_day(orchestrator("30 1 * * *", NY, start, 4), NY, day) == ["01:30 EST"]
        assert on_day(ours("30 1 * * *", NY, start, 4, rules), NY, day) == ["01:30 EST"]
    # croniter alone, iterating aware datetimes, fires the repeated 01:30 twice.
    it = croniter("30 1 * * *", start)
    raw = [it.get_next(datetime) for _ in range(4)]
    assert on_day(raw, NY, day) == ["01:30 EDT", "01:30 EST"]
    assert on_day(ours("30 1 * * *", NY, start, 4, "croniter"), NY, day) == \
        ["01:30 EDT", "01:30 EST"]


def test_airflow_skips_a_start_on_a_tick_when_the_next_tick_is_moved() -> None:
    """Airflow's ``_align_to_next`` asks whether the tick before the next one is the start;
    when the next tick was moved by DST the answer is no, and the start is not a run. Dagster
    counts it. The preview has to follow each."""
    start = local(NY, 2026, 3, 7, 2, 30)
    assert on_day(airflow_ticks("30 2 * * *", NY, start, 1), NY, start) == []
    assert on_day(ours("30 2 * * *", NY, start, 1, "airflow"), NY, start) == []
    assert on_day(dagster_ticks("30 2 * * *", NY, start, 1), NY, start) == ["02:30 EST"]
    assert on_day(ours("30 2 * * *", NY, start, 1, "dagster"), NY, start) == ["02:30 EST"]


# --- the grid: several crons, both 2026 changes, New York, Berlin, UTC ---------------------


@pytest.mark.parametrize("rules", ["airflow", "dagster"])
@pytest.mark.parametrize(("tz", "day"), TRANSITIONS, ids=lambda v: str(v)[:10])
@pytest.mark.parametrize(("cron", "lead", "count"), CRONS, ids=[c[0] for c in CRONS])
def test_matches_orchestrator_across_dst(cron: str, lead: timedelta, count: int, tz: str,
                                         day: datetime, rules: str) -> None:
    start = (day.replace(tzinfo=ZoneInfo(tz)) - lead).astimezone(UTC)
    want = ORCHESTRATORS[rules](cron, tz, start, count)
    # The ticks must reach past the change day, or the test would prove nothing.
    assert want[-1].astimezone(ZoneInfo(tz)).date() > day.date()
    assert ours(cron, tz, start, count, rules) == want


@pytest.mark.parametrize("rules", ["airflow", "dagster"])
@pytest.mark.parametrize(("tz", "day"), TRANSITIONS[:4], ids=lambda v: str(v)[:10])
@pytest.mark.parametrize("cron", ["0 * * * *", "30 1 * * *", "0 2 * * *", "30 2 * * *",
                                  "0 3 * * *"])
def test_any_start_near_the_change(cron: str, tz: str, day: datetime, rules: str) -> None:
    """A start inside or at the edge of the skipped/repeated hour, including starts that are
    themselves (moved) ticks: the orchestrators count a start that is a tick."""
    orchestrator = ORCHESTRATORS[rules]
    base = day.replace(tzinfo=ZoneInfo(tz)).astimezone(UTC)
    for minutes in range(0, 5 * 60, 15):
        start = base + timedelta(minutes=minutes)
        assert ours(cron, tz, start, 3, rules) == orchestrator(cron, tz, start, 3), start


@pytest.mark.parametrize("rules", ["airflow", "dagster"])
@pytest.mark.parametrize(("tz", "day"), [
    ("Australia/Sydney", datetime(2026, 4, 5)),  # southern hemisphere, back at 03:00
    ("Australia/Sydney", datetime(2026, 10, 4)),
    ("America/Havana", datetime(2026, 11, 1)),  # falls back at 01:00 to midnight
    ("America/Havana", datetime(2026, 3, 8)),  # springs forward at midnight
], ids=lambda v: str(v)[:10])
@pytest.mark.parametrize("cron", ["0 0 * * *", "30 2 * * *", "0 * * * *", "15 */2 * * *"])
def test_other_zones(cron: str, tz: str, day: datetime, rules: str) -> None:
    orchestrator = ORCHESTRATORS[rules]
    base = (day.replace(tzinfo=ZoneInfo(tz)) - timedelta(hours=3)).astimezone(UTC)
    for minutes in range(0, 8 * 60, 40):
        start = base + timedelta(minutes=minutes)
        assert ours(cron, tz, start, 4, rules) == orchestrator(cron, tz, start, 4), start


# --- what the module promises on its own -----------------------------------------------------


def test_fire_times_are_aware_in_the_job_zone_with_the_right_abbreviation() -> None:
    got = fire_times("0 * * * *", NY, start=local(NY, 2026, 11, 1, 0, 30), count=4)
    assert [t.strftime("%H:%M %Z") for t in got] == ["01:00 EDT", "01:00 EST", "02:00 EST",
                                                     "03:00 EST"]


def test_start_must_be_aware_and_rules_known() -> None:
    with pytest.raises(ValueError, match="no time zone"):
        fire_times("0 1 * * *", NY, start=datetime(2026, 1, 1), count=1)
    with pytest.raises(ValueError, match="unknown rules 'cron'"):
        fire_times("0 1 * * *", NY, start=local(NY, 2026, 1, 1), count=1, rules="cron")


def _spec(schedule: dict[str, Any], **extra: Any) -> JobSpec:
    return JobSpec.model_validate({"name": "j", "schedule": schedule,
                                   "request": {"url": "https://example.com/hook"}, **extra})


def test_next_fire_times_of_cron_once_and_manual_jobs() -> None:
    start = local(NY, 2026, 3, 7)
    cron = _spec({"cron": "30 2 * * *", "timezone": NY})
    got = next_fire_times(cron, start=local(NY, 2026, 3, 7, 3), count=2, rules="dagster")
    assert [t.isoformat() for t in got] == ["2026-03-08T03:00:00-04:00",
                                            "2026-03-09T02:30:00-04:00"]
    once = _spec({"at": "2026-03-08T02:30:00", "timezone": NY})
    [tick] = next_ticks(once, start=start, count=5)
    assert tick.time.isoformat() == "2026-03-08T03:30:00-04:00"
    assert tick.note == "DST: shifted from 02:30, which the clocks skip"
    assert next_fire_times(once, start=local(NY, 2026, 3, 9), count=5) == []
    aware = _spec({"at": "2026-06-01T12:00:00+00:00", "timezone": BERLIN})
    assert [t.isoformat() for t in next_fire_times(aware, start=start, count=1)] == \
        ["2026-06-01T14:00:00+02:00"]
    manual = JobSpec.model_validate({"name": "m", "request": {"url": "https://example.com/x"}})
    assert next_fire_times(manual, start=start, count=3) == []


def test_localize_reads_naive_times_like_cron_times() -> None:
    assert localize(datetime(2026, 3, 8, 2, 30), NY).isoformat() == "2026-03-08T03:30:00-04:00"
    assert localize(datetime(2026, 11, 1, 1, 30), NY).strftime("%H:%M %Z") == "01:30 EST"
    assert localize(datetime(2026, 7, 1, 9, 0), BERLIN).isoformat() == "2026-07-01T09:00:00+02:00"


@pytest.mark.parametrize(("cron", "start", "rules", "want"), [
    ("30 2 * * *", (2026, 3, 7, 2), "airflow",
     ["", "DST: shifted from 02:30, which the clocks skip", ""]),
    ("30 2 * * *", (2026, 3, 7, 2), "dagster",
     ["", "DST: shifted from 02:30, which the clocks skip", ""]),
    ("30 1 * * *", (2026, 10, 31, 1, 30), "airflow",
     ["", "DST: 01:30 happens twice; fires once, at the 2nd, in EST", ""]),
    ("30 1 * * *", (2026, 10, 31, 1, 30), "croniter",
     ["", "DST: 01:30 happens twice; this is the 1st, in EDT",
      "DST: 01:30 happens twice; this is the 2nd, in EST"]),
    ("0 * * * *", (2026, 3, 8, 1), "airflow",
     ["", "DST: 02:00 skipped, the clocks jump forward", ""]),
    ("*/15 * * * *", (2026, 3, 8, 1, 45), "dagster",
     ["", "DST: 02:00-02:45 skipped (4 times), the clocks jump forward", ""]),
    ("0 12 * * *", (2026, 3, 7, 13), "airflow", ["DST change: EST -> EDT", "", ""]),
])
def test_dst_notes(cron: str, start: tuple[int, ...], rules: str, want: list[str]) -> None:
    begin = local(NY, *start)
    times = fire_times(cron, NY, start=begin, count=3, rules=rules)
    assert [t.note or "" for t in annotate(cron, NY, times, start=begin)] == want


def test_no_notes_in_utc() -> None:
    begin = datetime(2026, 3, 7, tzinfo=UTC)
    times = fire_times("*/30 * * * *", "UTC", start=begin, count=200)
    assert all(t.note is None for t in annotate("*/30 * * * *", "UTC", times, start=begin))


def test_schedule_module_imports_neither_orchestrator() -> None:
    code = ("import sys, trigrun._schedule, trigrun._cli; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('airflow', 'dagster')); "
            "print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
