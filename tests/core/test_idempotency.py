"""Exactly once: the same scheduled fire, sent twice, starts one downstream run.

Each "fire twice" uses two separate engines, as two Airflow task tries or a restarted worker
would. The targets are real local servers that honour idempotency the way the real APIs do.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest

import trigrun
from tests.helpers.clock import FakeClock
from tests.helpers.drive import Driver
from tests.helpers.fakes import DedupWebhook, FakeAirflow, FakeDagster, FakeDbtCloud
from tests.helpers.httpserver import LocalServer
from trigrun._targets.dagster import KEY_TAG, LAUNCH

pytestmark = pytest.mark.integration

SCHEDULED = FakeClock().now()


def spec(data: dict[str, Any]) -> trigrun.JobSpec:
    return trigrun.JobSpec.model_validate({"name": "Nightly ETL", **data})


def airflow_short(server: LocalServer) -> trigrun.JobSpec:
    return spec({"target": {"type": "airflow", "base_url": server.url, "dag_id": "etl",
                            "api_version": "v2", "conf": {"source": "production"}}})


def airflow_raw(server: LocalServer, timeout: float = 5) -> trigrun.JobSpec:
    return spec({"request": {"url": f"{server.url}/api/v2/dags/etl/dagRuns",
                             "body": {"conf": {"source": "production"}},
                             "timeout_seconds": timeout}})


def dbt_raw(server: LocalServer, timeout: float = 5) -> trigrun.JobSpec:
    return spec({"request": {"url": f"{server.url}/api/v2/accounts/1/jobs/42/run/",
                             "body": {"cause": "nightly"}, "timeout_seconds": timeout}})


def dagster_raw(server: LocalServer, timeout: float = 5) -> trigrun.JobSpec:
    params = {"selector": {"repositoryName": "__repository__", "jobName": "etl",
                           "repositoryLocationName": "loc"},
              "runConfigData": {}, "executionMetadata": {"tags": []}}
    return spec({"request": {"url": f"{server.url}/graphql", "timeout_seconds": timeout,
                             "body": {"query": LAUNCH,
                                      "variables": {"executionParams": params}}}})


def fire_twice(make_driver: Callable[..., Driver], job: trigrun.JobSpec,
               scheduled: Any = SCHEDULED) -> tuple[trigrun.TriggerResult, trigrun.TriggerResult]:
    first = make_driver().fire(job, scheduled_time=scheduled)
    second = make_driver().fire(job, scheduled_time=scheduled)
    return first, second


@pytest.mark.parametrize("form", ["short", "raw"])
def test_airflow_second_fire_adopts_via_409(server: LocalServer, form: str,
                                            make_driver: Callable[..., Driver]) -> None:
    fake = FakeAirflow(server)
    job = airflow_short(server) if form == "short" else airflow_raw(server)
    first, second = fire_twice(make_driver, job)
    assert len(fake.runs) == 1
    ((dag, run_id),) = fake.runs
    assert first.ok
    assert not first.adopted
    assert first.run_id == run_id
    assert second.ok
    assert second.adopted
    assert second.run_id == run_id
    assert second.status_code == 409
    assert second.reason is not None
    assert "idempotency" in second.reason
    assert first.idempotency_key == second.idempotency_key
    # The dag_run_id is the key, in Airflow's allowed characters.
    assert run_id.startswith("trigrun__2026-03-16T01:00:00")
    posts = server.requests_to(f"/api/v2/dags/{dag}/dagRuns", "POST")
    assert [p.json()["dag_run_id"] for p in posts] == [run_id, run_id]
    assert posts[0].json()["logical_date"] is None  # required but nullable in Airflow 3
    assert posts[0].json()["conf"] == {"source": "production"}


def test_airflow_raw_body_with_its_own_run_id_adopts_that_run(
        server: LocalServer, make_driver: Callable[..., Driver]) -> None:
    fake = FakeAirflow(server)
    job = spec({"request": {"url": f"{server.url}/api/v2/dags/etl/dagRuns",
                            "body": {"dag_run_id": "nightly_{{ ds }}", "conf": {}}}})
    _first, second = fire_twice(make_driver, job)
    assert list(fake.runs) == [("etl", "nightly_2026-03-16")]
    assert second.ok
    assert second.adopted
    assert second.run_id == "nightly_2026-03-16"


@pytest.mark.parametrize("mode", ["409", "409-run", "replay"])
def test_webhook_dedup_on_idempotency_key(server: LocalServer, mode: str,
                                          make_driver: Callable[..., Driver]) -> None:
    hook = DedupWebhook(server, mode=mode)
    job = spec({"request": {"url": hook.url, "body": {"model": "v3"}},
                "wait": {"run_id_path": "run_id"}})
    first, second = fire_twice(make_driver, job)
    assert hook.started == 1
    assert first.ok
    assert not first.adopted
    assert first.run_id == "hook-run-1"
    assert second.ok
    assert second.run_id == "hook-run-1"
    if mode == "409":
        # The first request completed: the draft's server answers a repeat with the first
        # response again (no marker), which names the run.
        assert [a.status_code for a in second.attempts] == [200]
    else:
        assert second.adopted
        assert second.reason is not None
        assert "idempotency" in second.reason
    keys = [r.headers["idempotency-key"] for r in server.requests]
    assert keys == [first.idempotency_key] * 2


def test_different_scheduled_times_start_different_runs(
        server: LocalServer, make_driver: Callable[..., Driver]) -> None:
    fake = FakeAirflow(server)
    hook = DedupWebhook(server)
    for job in (airflow_short(server), spec({"request": {"url": hook.url}})):
        a = make_driver().fire(job, scheduled_time=SCHEDULED)
        b = make_driver().fire(job, scheduled_time=SCHEDULED + timedelta(days=1))
        assert a.ok
        assert b.ok
        assert not a.adopted
        assert not b.adopted
        assert a.idempotency_key != b.idempotency_key
    assert len(fake.runs) == 2
    assert hook.started == 2


def test_key_is_stable_for_one_instant_and_distinct_otherwise() -> None:
    job = spec({"request": {"url": "https://x.example/hook"}})
    other = spec({"name": "Other", "request": {"url": "https://x.example/hook"}})
    ny = SCHEDULED.astimezone(ZoneInfo("America/New_York"))
    key = trigrun.idempotency_key(job, SCHEDULED)
    assert trigrun.idempotency_key(job, ny) == key  # same instant, another zone
    assert trigrun.idempotency_key(job, SCHEDULED.astimezone(timezone.utc)) == key
    assert trigrun.idempotency_key(job, SCHEDULED + timedelta(seconds=1)) != key
    assert trigrun.idempotency_key(other, SCHEDULED) != key


def test_idempotency_can_be_turned_off(server: LocalServer,
                                       make_driver: Callable[..., Driver]) -> None:
    hook = DedupWebhook(server)
    job = spec({"request": {"url": hook.url}, "idempotency": {"enabled": False}})
    first, _second = fire_twice(make_driver, job)
    assert hook.started == 2
    assert first.idempotency_key is None
    assert "idempotency-key" not in server.requests[0].headers


# -- a timeout on attempt 1 after the server did the work ------------------------------------

TIMEOUT = 0.4
LATE = 1.2  # the server answers this late, after creating the run


def test_timeout_then_lookup_adopts_dbt_run(server: LocalServer, clock: FakeClock,
                                            make_driver: Callable[..., Driver]) -> None:
    fake = FakeDbtCloud(server, trigger_delay=LATE)
    result = make_driver().fire(dbt_raw(server, TIMEOUT), scheduled_time=SCHEDULED)
    assert len(fake.runs) == 1, "the retry must not start a second dbt Cloud run"
    assert result.ok
    assert result.adopted
    assert result.run_id == "1000"
    assert len(result.attempts) == 1
    assert result.attempts[0].error is not None
    assert clock.sleeps == [1.0]  # backed off before looking the run up
    assert f"[{result.idempotency_key}]" in fake.runs[0]["trigger"]["cause"]
    methods = [(r.method, r.path.rsplit("/", 2)[-2]) for r in server.requests]
    assert methods == [("GET", "runs"), ("POST", "run"), ("GET", "runs")]
    # The lookups ask for the runs' trigger (where the cause is): dbt Cloud lists it only then.
    lookups = [r for r in server.requests if r.method == "GET"]
    assert all(r.query["include_related"] == ['["trigger"]'] for r in lookups)


def test_dbt_second_fire_adopts_by_lookup(server: LocalServer,
                                          make_driver: Callable[..., Driver]) -> None:
    fake = FakeDbtCloud(server)
    first, second = fire_twice(make_driver, dbt_raw(server))
    assert len(fake.runs) == 1
    assert first.ok
    assert not first.adopted
    assert second.ok
    assert second.adopted
    assert second.run_id == first.run_id


def test_timeout_then_lookup_adopts_dagster_run(server: LocalServer,
                                                make_driver: Callable[..., Driver]) -> None:
    fake = FakeDagster(server, trigger_delay=LATE)
    result = make_driver().fire(dagster_raw(server, TIMEOUT), scheduled_time=SCHEDULED)
    assert len(fake.runs) == 1, "the retry must not launch a second Dagster run"
    assert result.ok
    assert result.adopted
    assert result.run_id == "run-1"
    assert fake.runs[0]["tags"][KEY_TAG] == result.idempotency_key


def test_dagster_second_fire_adopts_by_tag(server: LocalServer,
                                           make_driver: Callable[..., Driver]) -> None:
    fake = FakeDagster(server)
    job = spec({"target": {"type": "dagster", "base_url": server.url, "job_name": "etl",
                      "repository_location_name": "loc"}})
    first, second = fire_twice(make_driver, job)
    assert len(fake.runs) == 1
    assert second.ok
    assert second.adopted
    assert second.run_id == first.run_id == "run-1"


def test_timeout_then_409_adopts_airflow_run(server: LocalServer,
                                             make_driver: Callable[..., Driver]) -> None:
    fake = FakeAirflow(server, trigger_delay=LATE)
    result = make_driver().fire(airflow_raw(server, TIMEOUT), scheduled_time=SCHEDULED)
    assert len(fake.runs) == 1
    assert result.ok
    assert result.adopted
    assert [a.status_code for a in result.attempts] == [None, 409]
    assert result.run_id == next(iter(fake.runs))[1]


def test_timeout_then_409_is_retried_until_the_webhook_names_its_run(
        server: LocalServer, make_driver: Callable[..., Driver]) -> None:
    # The draft's 409 means "a request with this key is still being processed: retry". It
    # is retried under the retry policy (here honouring Retry-After: 1) and the reply that
    # names the run, once the first request completed, is adopted and waited on.
    hook = DedupWebhook(server, trigger_delay=LATE, retry_after=1)
    job = spec({"request": {"url": hook.url, "timeout_seconds": TIMEOUT},
                "retry_policy": {"max_attempts": 5, "initial_backoff_seconds": 0.05,
                                 "jitter": 0},
                "wait": {"run_id_path": "run_id", "status_url": hook.url + "/runs/{run_id}",
                         "status_path": "status", "poll_interval_seconds": 0.1}})
    driver = make_driver(clock=None)  # real time: the server's answer comes LATE
    result = driver.fire(job, scheduled_time=SCHEDULED)
    assert hook.started == 1
    assert hook.conflicts == 1
    assert result.ok, result.error
    assert result.adopted
    assert result.run_id == "hook-run-1"
    assert [a.status_code for a in result.attempts] == [None, 409, 200]
    assert result.attempts[2].delay_before_ms >= 1000  # the 409's Retry-After
    run = driver.wait(job, result.run_id)
    assert run.state is trigrun.RunState.SUCCESS


def test_a_409_that_names_no_run_on_every_attempt_fails_a_job_that_tracks_runs(
        server: LocalServer, clock: FakeClock, make_driver: Callable[..., Driver]) -> None:
    hook = DedupWebhook(server, trigger_delay=3)
    job = spec({"request": {"url": hook.url, "timeout_seconds": TIMEOUT},
                "wait": {"run_id_path": "run_id", "status_url": hook.url + "/runs/{run_id}",
                         "status_path": "status"}})
    result = make_driver().fire(job, scheduled_time=SCHEDULED)
    assert hook.started == 1
    assert not result.ok
    assert [a.status_code for a in result.attempts] == [None, 409, 409]
    assert result.error is not None
    assert "still being processed" in result.error
    assert "gave up after 3 attempt(s)" in result.error


def test_a_409_that_names_no_run_on_every_attempt_is_received_for_a_job_without_runs(
        server: LocalServer, clock: FakeClock, make_driver: Callable[..., Driver]) -> None:
    hook = DedupWebhook(server, trigger_delay=3)
    job = spec({"request": {"url": hook.url, "timeout_seconds": TIMEOUT}})
    result = make_driver().fire(job, scheduled_time=SCHEDULED)
    assert hook.started == 1
    assert result.ok
    assert result.adopted
    assert result.run_id is None
    assert [a.status_code for a in result.attempts] == [None, 409, 409]
