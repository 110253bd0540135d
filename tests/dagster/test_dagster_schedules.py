"""trigrun schedules evaluated by Dagster itself: run config from ``scheduled_execution_time``,
``run_key``, time zone and DST, TTL and overlap skips."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import dagster as dg
import pytest
from dagster._core.test_utils import create_run_for_test
from dagster._utils.schedules import cron_string_iterator

from tests.dagster.helpers import output_metadata, values
from tests.helpers.httpserver import LocalServer, Reply
from trigrun import JobSpec, SpecError
from trigrun.dagster import (
    TrigRunResource,
    build_trigrun_job,
    build_trigrun_schedule,
    op_name_for,
)

NY = ZoneInfo("America/New_York")


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    with LocalServer() as srv:
        yield srv


def spec(cron: str, tz: str = "America/New_York", url: str = "http://127.0.0.1:9/hook",
         **extra: object) -> JobSpec:
    return JobSpec.model_validate({
        "name": "Nightly load", "schedule": {"cron": cron, "timezone": tz},
        "request": {"url": url, "body": {"date": "{{ ds }}", "at": "{{ scheduled_time }}"}},
        **extra})


def dagster_ticks(cron: str, tz: str, start: datetime, n: int) -> list[datetime]:
    """Dagster's own tick computation (the one its scheduler daemon uses)."""
    it = cron_string_iterator(start.timestamp(), cron, tz)
    return [next(it) for _ in range(n)]


def evaluate(schedule: dg.ScheduleDefinition, at: datetime | None,
             instance: dg.DagsterInstance | None = None) -> dg.RunRequest | dg.SkipReason:
    ctx = dg.build_schedule_context(instance=instance, scheduled_execution_time=at)
    data = schedule.evaluate_tick(ctx)
    if data.skip_message:
        return dg.SkipReason(data.skip_message)
    (request,) = data.run_requests or []
    return request


@pytest.mark.integration
def test_schedule_tick_renders_its_date_into_the_request(server: LocalServer) -> None:
    server.on("POST", "/hook", Reply(200, json={"ok": True}))
    s = spec("0 6 * * *", url=f"{server.url}/hook", wait={"enabled": False})
    job = build_trigrun_job(s)
    schedule = build_trigrun_schedule(s, job=job)
    tick = datetime(2026, 7, 14, 6, 0, tzinfo=NY)

    request = evaluate(schedule, tick)

    assert isinstance(request, dg.RunRequest)
    stamp = "2026-07-14T06:00:00-04:00"
    assert request.run_key == stamp
    assert request.run_config == {"ops": {op_name_for(job.name): {"config": {
        "scheduled_time": stamp}}}}
    # Run the job with what the schedule asked for: the request carries the tick's date.
    result = job.execute_in_process(run_config=request.run_config,
                                    resources={"trigrun": TrigRunResource()})
    assert result.success
    (sent,) = server.requests_to("/hook")
    assert sent.json() == {"date": "2026-07-14", "at": stamp}
    md = values(output_metadata(result))
    assert md["scheduled_time"] == "2026-07-14T10:00:00+00:00"
    assert md["idempotency_key"].startswith("trigrun__2026-07-14T10:00:00+00:00__")


def test_schedule_uses_the_spec_cron_and_time_zone() -> None:
    schedule = build_trigrun_schedule(spec("30 1 * * *"))
    assert schedule.cron_schedule == "30 1 * * *"
    assert schedule.execution_timezone == "America/New_York"
    assert schedule.job_name == "nightly_load"
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED


@pytest.mark.integration
def test_autumn_dst_day_fires_once_at_the_second_0130_with_that_run_key(
        server: LocalServer) -> None:
    server.on("POST", "/dst", Reply(200, json={"ok": True}))
    s = spec("30 1 * * *", url=f"{server.url}/dst", wait={"enabled": False})
    job = build_trigrun_job(s)
    schedule = build_trigrun_schedule(s, job=job)
    ticks = dagster_ticks("30 1 * * *", "America/New_York",
                          datetime(2026, 10, 31, 12, tzinfo=NY), 2)
    # 2026-11-01 01:30 happens twice in New York; Dagster fires once, after the change.
    assert [t.isoformat() for t in ticks] == ["2026-11-01T01:30:00-05:00",
                                              "2026-11-02T01:30:00-05:00"]
    request = evaluate(schedule, ticks[0])
    assert isinstance(request, dg.RunRequest)
    assert request.run_key == "2026-11-01T01:30:00-05:00"
    config = request.run_config["ops"][op_name_for("nightly_load")]["config"]
    assert config["scheduled_time"] == "2026-11-01T01:30:00-05:00"
    # The fire for that tick carries the local date and time of the tick.
    result = job.execute_in_process(run_config=request.run_config,
                                    resources={"trigrun": TrigRunResource()})
    assert result.success
    (sent,) = server.requests_to("/dst")
    assert sent.json() == {"date": "2026-11-01", "at": "2026-11-01T01:30:00-05:00"}
    assert values(output_metadata(result))["scheduled_time"] == "2026-11-01T06:30:00+00:00"


def test_spring_dst_day_fires_at_0300_for_a_0230_schedule() -> None:
    s = spec("30 2 * * *")
    schedule = build_trigrun_schedule(s)
    ticks = dagster_ticks("30 2 * * *", "America/New_York",
                          datetime(2026, 3, 7, 12, tzinfo=NY), 2)
    assert [t.isoformat() for t in ticks] == ["2026-03-08T03:00:00-04:00",
                                              "2026-03-09T02:30:00-04:00"]
    keys = []
    for tick in ticks:
        request = evaluate(schedule, tick)
        assert isinstance(request, dg.RunRequest)
        keys.append(request.run_key)
    assert keys == ["2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00"]


def test_a_utc_tick_is_shown_in_the_schedule_time_zone() -> None:
    schedule = build_trigrun_schedule(spec("0 1 * * *", tz="Europe/Berlin"))
    request = evaluate(schedule, datetime(2026, 1, 15, 0, 0, tzinfo=timezone.utc))
    assert isinstance(request, dg.RunRequest)
    assert request.run_key == "2026-01-15T01:00:00+01:00"


def test_ttl_passed_gives_a_skip_reason() -> None:
    schedule = build_trigrun_schedule(spec("0 * * * *", tz="UTC", ttl_seconds=600))
    now = datetime.now(timezone.utc).replace(second=0, microsecond=0)

    late = evaluate(schedule, now - timedelta(hours=2))
    on_time = evaluate(schedule, now - timedelta(minutes=1))

    assert isinstance(late, dg.SkipReason)
    assert "ttl_seconds=600" in (late.skip_message or "")
    assert isinstance(on_time, dg.RunRequest)


def test_overlap_skip_gives_a_skip_reason_while_a_run_is_in_progress(
        instance: dg.DagsterInstance) -> None:
    s = spec("0 * * * *", tz="UTC", overlap="skip",
             url="http://127.0.0.1:9/api/v2/dags/nightly/dagRuns")
    schedule = build_trigrun_schedule(s)
    tick = datetime(2026, 2, 1, 5, tzinfo=timezone.utc)

    assert isinstance(evaluate(schedule, tick, instance), dg.RunRequest)
    run = create_run_for_test(instance, job_name="nightly_load",
                              status=dg.DagsterRunStatus.STARTED)
    skipped = evaluate(schedule, tick, instance)
    assert isinstance(skipped, dg.SkipReason)
    assert run.run_id in (skipped.skip_message or "")


def test_disabled_spec_schedule_starts_stopped_and_non_cron_spec_has_none() -> None:
    off = spec("0 1 * * *", enabled=False)
    sched = build_trigrun_schedule(off, default_status=dg.DefaultScheduleStatus.RUNNING)
    assert sched.default_status == dg.DefaultScheduleStatus.STOPPED
    manual = JobSpec.model_validate({"name": "Ad hoc", "request": {"url": "http://x.test/h"}})
    with pytest.raises(SpecError, match="kind 'cron'"):
        build_trigrun_schedule(manual)
