"""Waiting on a run, for every preset: states, errors, deadlines. Unit tests (pytest-httpx)
with an injected clock, plus real-socket waits against the local fakes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from pytest_httpx import HTTPXMock

import trigrun
from tests.helpers.clock import FakeClock
from tests.helpers.drive import Driver
from tests.helpers.fakes import FakeAirflow, FakeDagster, FakeDbtCloud
from tests.helpers.httpserver import LocalServer, Reply
from trigrun import RunState


@dataclass(frozen=True)
class Target:
    """How one preset's status and cancel calls look on the wire."""

    name: str
    spec: dict[str, Any]
    run_id: str
    status: tuple[str, str]  # method, url
    cancel: tuple[str, str]
    body: Callable[[Any], Any]  # raw status value -> status response JSON
    values: dict[RunState | str, Any]  # RunState (or "unknown") -> raw status value

    def job(self, **over: Any) -> trigrun.JobSpec:
        data = {"name": f"{self.name} job", **self.spec}
        for k, v in over.items():
            data[k] = {**data.get(k, {}), **v} if isinstance(v, dict) else v
        return trigrun.JobSpec.model_validate(data)

    def is_cancel(self, req: httpx.Request) -> bool:
        if self.name == "dagster":
            return b"terminateRun" in req.content
        return (req.method, str(req.url)) == self.cancel

    def is_status(self, req: httpx.Request) -> bool:
        if self.name == "dagster":
            return b"runOrError" in req.content
        return (req.method, str(req.url)) == self.status


TARGETS = [
    Target("airflow",
           {"target": {"type": "airflow", "base_url": "http://airflow.test", "dag_id": "etl",
                       "api_version": "v2"}},
           "manual__1",
           ("GET", "http://airflow.test/api/v2/dags/etl/dagRuns/manual__1"),
           ("PATCH", "http://airflow.test/api/v2/dags/etl/dagRuns/manual__1"),
           lambda v: {"dag_run_id": "manual__1", "state": v},
           # Airflow has no cancelled state: a cancelled run is marked failed.
           {RunState.QUEUED: "queued", RunState.RUNNING: "running",
            RunState.SUCCESS: "success", RunState.FAILED: "failed", "unknown": "exploded"}),
    Target("dbt_cloud",
           {"target": {"type": "dbt_cloud", "base_url": "http://dbt.test", "account_id": 7,
                       "job_id": 9}},
           "1234",
           ("GET", "http://dbt.test/api/v2/accounts/7/runs/1234/"),
           ("POST", "http://dbt.test/api/v2/accounts/7/runs/1234/cancel/"),
           lambda v: {"data": {"id": 1234, "status": v}},
           {RunState.QUEUED: 1, RunState.RUNNING: 3, RunState.SUCCESS: 10,
            RunState.FAILED: 20, RunState.CANCELLED: 30, "unknown": 99}),
    Target("prefect",
           {"target": {"type": "prefect", "base_url": "http://prefect.test/api",
                       "deployment_id": "d-1"}},
           "fr-1",
           ("GET", "http://prefect.test/api/flow_runs/fr-1"),
           ("POST", "http://prefect.test/api/flow_runs/fr-1/set_state"),
           lambda v: {"id": "fr-1", "state": {"type": v, "name": str(v).title()}},
           {RunState.QUEUED: "PENDING", RunState.RUNNING: "RUNNING",
            RunState.SUCCESS: "COMPLETED", RunState.FAILED: "FAILED",
            RunState.CANCELLED: "CANCELLED", "unknown": "EXPLODED"}),
    Target("dagster",
           {"target": {"type": "dagster", "base_url": "http://dagster.test", "job_name": "etl",
                      "repository_location_name": "loc"}},
           "r-1",
           ("POST", "http://dagster.test/graphql"),
           ("POST", "http://dagster.test/graphql"),
           lambda v: {"data": {"runOrError": {"__typename": "Run", "runId": "r-1", "status": v}}},
           {RunState.QUEUED: "QUEUED", RunState.RUNNING: "STARTED",
            RunState.SUCCESS: "SUCCESS", RunState.FAILED: "FAILURE",
            RunState.CANCELLED: "CANCELED", "unknown": "EXPLODED"}),
    Target("webhook",
           {"request": {"url": "http://hook.test/trigger"},
            "wait": {"status_url": "http://hook.test/runs/{run_id}", "run_id_path": "id",
                     "status_path": "state", "cancel_url": "http://hook.test/runs/{run_id}/cancel"}},
           "w-1",
           ("GET", "http://hook.test/runs/w-1"),
           ("POST", "http://hook.test/runs/w-1/cancel"),
           lambda v: {"id": "w-1", "state": v},
           {RunState.QUEUED: "queued", RunState.RUNNING: "running", RunState.SUCCESS: "done",
            RunState.FAILED: "failed", RunState.CANCELLED: "aborted", "unknown": "exploded"}),
]

# What each target answers when it takes a cancel (a refusal may be a 200 too).
CANCEL_ACCEPTED: dict[str, Any] = {
    "airflow": {"dag_run_id": "manual__1", "state": "failed"},
    "dbt_cloud": {"data": {"id": 1234, "status": 30}},
    "prefect": {"status": "ACCEPT", "state": {"type": "CANCELLING"}},
    "dagster": {"data": {"terminateRun": {"__typename": "TerminateRunSuccess",
                                          "run": {"runId": "r-1"}}}},
    "webhook": {},
}

def status_read_before_cancel(job: trigrun.JobSpec) -> int:
    """1 where a cancel first reads the run's state (its cancel would overwrite an ended run)."""
    from trigrun._targets import preset_for

    return int(preset_for(job).cancel_checks_status)


# One item of a status script: a raw status value, a whole httpx.Response, or an exception.
Item = Any


def http(code: int, **headers: str) -> httpx.Response:
    return httpx.Response(code, json={"detail": f"HTTP {code}"}, headers=headers)


class FakeApi:
    """Answers status checks from a script (the last item repeats) and cancels with 200."""

    def __init__(self, mock: HTTPXMock, target: Target, script: list[Item]) -> None:
        self.target = target
        self.script = list(script)
        self.status_calls = 0
        self.cancel_calls = 0
        mock.add_callback(self._handle, is_reusable=True, is_optional=True)

    def _handle(self, request: httpx.Request) -> httpx.Response:
        if self.target.is_cancel(request):
            self.cancel_calls += 1
            return httpx.Response(200, json=CANCEL_ACCEPTED[self.target.name])
        assert self.target.is_status(request), (request.method, str(request.url))
        item = self.script[min(self.status_calls, len(self.script) - 1)]
        self.status_calls += 1
        if isinstance(item, Exception):
            raise item
        if isinstance(item, httpx.Response):
            return item
        return httpx.Response(200, json=self.target.body(item))


@pytest.fixture(params=TARGETS, ids=[t.name for t in TARGETS])
def target(request: pytest.FixtureRequest) -> Target:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def driver(engine_kind: str, clock: FakeClock) -> Any:
    with Driver(engine_kind, clock) as d:
        yield d


INTERVAL = 10.0


def states(target: Target, *wanted: RunState | str) -> list[Item]:
    return [target.values[w] for w in wanted]


def test_queued_running_success(httpx_mock: HTTPXMock, target: Target, driver: Driver,
                                clock: FakeClock) -> None:
    api = FakeApi(httpx_mock, target, states(target, RunState.QUEUED, RunState.RUNNING,
                                             RunState.SUCCESS))
    run = driver.wait(target.job(), target.run_id, poll_interval=INTERVAL, timeout=3600)
    assert run.state is RunState.SUCCESS
    assert run.ok
    assert run.polls == 3
    assert api.status_calls == 3
    assert clock.sleeps == [INTERVAL, INTERVAL]
    assert run.raw_status == target.values[RunState.SUCCESS]
    assert run.run_id == target.run_id
    assert run.target == target.name
    assert run.raise_for_failure() is run
    if target.name != "webhook":
        assert run.run_url is not None
        assert target.run_id in run.run_url
    assert api.cancel_calls == 0


@pytest.mark.parametrize("end", [RunState.FAILED, RunState.CANCELLED])
def test_failed_and_cancelled(httpx_mock: HTTPXMock, target: Target, driver: Driver,
                              clock: FakeClock, end: RunState) -> None:
    if end not in target.values:
        pytest.skip(f"{target.name} has no {end.value} state")
    api = FakeApi(httpx_mock, target, states(target, RunState.RUNNING, end))
    run = driver.wait(target.job(), target.run_id, poll_interval=INTERVAL)
    assert run.state is end
    assert not run.ok
    assert run.polls == 2
    assert api.status_calls == 2
    assert clock.sleeps == [INTERVAL]
    assert f"'{target.name} job'" in run.message
    assert target.run_id in run.message
    assert end.value in run.message
    with pytest.raises(trigrun.RunFailed) as err:
        run.raise_for_failure()
    assert not isinstance(err.value, trigrun.RunTimeout)
    assert err.value.run is run
    assert err.value.metadata["state"] == end.value


def test_unknown_status_stops_after_one_poll(httpx_mock: HTTPXMock, target: Target,
                                             driver: Driver, clock: FakeClock) -> None:
    api = FakeApi(httpx_mock, target, states(target, "unknown"))
    run = driver.wait(target.job(), target.run_id, poll_interval=INTERVAL)
    assert run.state is RunState.UNKNOWN
    assert api.status_calls == 1
    assert run.polls == 1
    assert clock.sleeps == []
    assert str(target.values["unknown"]) in run.message
    assert "unknown" in run.message
    assert f"'{target.name} job'" in run.message
    with pytest.raises(trigrun.RunFailed):
        run.raise_for_failure()


def test_transient_errors_are_retried_with_backoff(httpx_mock: HTTPXMock, target: Target,
                                                   driver: Driver, clock: FakeClock) -> None:
    script = [http(500), httpx.ConnectError("connection refused"),
              http(429, **{"Retry-After": "45"}), httpx.ReadTimeout("slow"),
              *states(target, RunState.RUNNING, RunState.SUCCESS)]
    api = FakeApi(httpx_mock, target, script)
    run = driver.wait(target.job(), target.run_id, poll_interval=INTERVAL)
    assert run.state is RunState.SUCCESS
    assert run.polls == 6
    assert api.status_calls == 6
    # 10, then doubling per error in a row; a Retry-After is honoured; back to the interval.
    assert clock.sleeps == [INTERVAL, 2 * INTERVAL, 45.0, 8 * INTERVAL, INTERVAL]
    assert all(s > 0 for s in clock.sleeps)


def test_consecutive_errors_give_up(httpx_mock: HTTPXMock, target: Target, driver: Driver,
                                    clock: FakeClock) -> None:
    api = FakeApi(httpx_mock, target, [http(503)])
    job = target.job(wait={"max_consecutive_poll_errors": 3})
    run = driver.wait(job, target.run_id, poll_interval=INTERVAL)
    assert run.state is RunState.UNKNOWN
    assert api.status_calls == 3
    assert run.polls == 3
    assert clock.sleeps == [INTERVAL, 2 * INTERVAL]
    assert "failed 3 times in a row" in run.message
    assert "503" in run.message


def test_errors_between_successes_do_not_add_up(httpx_mock: HTTPXMock, target: Target,
                                                driver: Driver, clock: FakeClock) -> None:
    running = target.values[RunState.RUNNING]
    script = [http(502), running, http(502), running, http(502), running,
              target.values[RunState.SUCCESS]]
    FakeApi(httpx_mock, target, script)
    job = target.job(wait={"max_consecutive_poll_errors": 2})
    assert driver.wait(job, target.run_id, poll_interval=INTERVAL).state is RunState.SUCCESS


def test_deadline_times_out_and_cancels(httpx_mock: HTTPXMock, target: Target, driver: Driver,
                                        clock: FakeClock) -> None:
    api = FakeApi(httpx_mock, target, states(target, RunState.RUNNING))
    run = driver.wait(target.job(), target.run_id, poll_interval=INTERVAL, timeout=35)
    assert run.state is RunState.TIMEOUT
    assert clock.sleeps == [INTERVAL, INTERVAL, INTERVAL, 5.0]  # never past the deadline
    assert api.status_calls == 5 + status_read_before_cancel(target.job())
    assert api.cancel_calls == 1
    assert "deadline" in run.message
    assert "cancel requested" in run.message
    with pytest.raises(trigrun.RunTimeout):
        run.raise_for_failure()


def test_deadline_without_cancel(httpx_mock: HTTPXMock, target: Target, driver: Driver,
                                 clock: FakeClock) -> None:
    api = FakeApi(httpx_mock, target, states(target, RunState.QUEUED))
    job = target.job(wait={"cancel_on_timeout": False, "timeout_seconds": 25,
                           "poll_interval_seconds": INTERVAL})
    run = driver.wait(job, target.run_id)
    assert run.state is RunState.TIMEOUT
    assert api.cancel_calls == 0
    assert clock.sleeps == [INTERVAL, INTERVAL, 5.0]


def test_end_time_is_an_absolute_deadline(httpx_mock: HTTPXMock, target: Target,
                                          driver: Driver, clock: FakeClock) -> None:
    # A resumed wait (e.g. a restarted Airflow trigger) keeps the original deadline.
    FakeApi(httpx_mock, target, states(target, RunState.RUNNING))
    run = driver.wait(target.job(), target.run_id, poll_interval=INTERVAL,
                      end_time=clock.wall + 15)
    assert run.state is RunState.TIMEOUT
    assert clock.sleeps == [INTERVAL, 5.0]


@pytest.mark.parametrize("code", [404, 403, 401, 400])
def test_client_error_on_status_ends_clearly(httpx_mock: HTTPXMock, target: Target,
                                             driver: Driver, clock: FakeClock, code: int) -> None:
    # The HTTP provider's sensor hot-loops on a 403; here any 4xx ends the wait at once.
    api = FakeApi(httpx_mock, target, [http(code)])
    run = driver.wait(target.job(), target.run_id, poll_interval=INTERVAL)
    assert run.state is RunState.UNKNOWN
    assert api.status_calls == 1
    assert clock.sleeps == []
    assert f"HTTP {code}" in run.message
    assert target.run_id in run.message
    assert f"'{target.name} job'" in run.message
    if code == 404:
        assert "is the run id right?" in run.message


def test_poll_is_one_check(httpx_mock: HTTPXMock, target: Target, driver: Driver) -> None:
    api = FakeApi(httpx_mock, target, [target.values[RunState.RUNNING], http(503)])
    status = driver.poll(target.job(), target.run_id)
    assert status.state is RunState.RUNNING
    assert status.raw == target.values[RunState.RUNNING]
    failed = driver.poll(target.job(), target.run_id)
    assert failed.state is RunState.UNKNOWN
    assert "503" in failed.message
    assert api.status_calls == 2


def test_cancel(httpx_mock: HTTPXMock, target: Target, driver: Driver) -> None:
    api = FakeApi(httpx_mock, target, [target.values[RunState.RUNNING]])
    assert driver.cancel(target.job(), target.run_id) is True
    assert api.cancel_calls == 1
    assert api.status_calls == status_read_before_cancel(target.job())


def test_webhook_without_status_url_cannot_wait(httpx_mock: HTTPXMock, driver: Driver) -> None:
    job = trigrun.JobSpec.model_validate({"name": "hook", "request": {"url": "http://h.test/x"}})
    run = driver.wait(job, "abc")
    assert run.state is RunState.UNKNOWN
    assert "wait.status_url" in run.message
    assert httpx_mock.get_requests() == []


def test_wait_needs_a_run_id(driver: Driver) -> None:
    job = TARGETS[0].job()
    with pytest.raises(trigrun.TrigRunError, match="run_id is required"):
        driver.wait(job)


# -- over a real socket ----------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize("fake", ["airflow", "dbt_cloud", "dagster"])
def test_fire_then_wait_over_a_real_socket(server: LocalServer, fake: str, engine_kind: str,
                                           clock: FakeClock) -> None:
    if fake == "airflow":
        FakeAirflow(server, states=["queued", "running", "success"])
        target: dict[str, Any] = {"type": "airflow", "base_url": server.url, "dag_id": "etl",
                                  "api_version": "v2"}
    elif fake == "dbt_cloud":
        FakeDbtCloud(server, statuses=[1, 3, 10])
        target = {"type": "dbt_cloud", "base_url": server.url, "account_id": 1, "job_id": 42}
    else:
        FakeDagster(server, statuses=["QUEUED", "STARTED", "SUCCESS"])
        target = {"type": "dagster", "base_url": server.url, "job_name": "etl",
                      "repository_location_name": "loc"}
    job = trigrun.JobSpec.model_validate({"name": "real wait", "target": target,
                                          "wait": {"poll_interval_seconds": 5}})
    with Driver(engine_kind, clock) as d:
        result = d.fire(job, scheduled_time=clock.now()).raise_for_failure()
        run = d.wait(result)
    assert run.state is RunState.SUCCESS, run.message
    assert run.polls == 3
    assert clock.sleeps == [5.0, 5.0]
    assert run.run_id == result.run_id
    assert run.run_url == result.run_url


# The webhook preset reads "queued" as running: it has no queued state.
@pytest.mark.parametrize("target", [t for t in TARGETS if t.name != "webhook"],
                         ids=lambda t: t.name)
def test_poll_events_say_when_the_state_is_new(httpx_mock: HTTPXMock, target: Target,
                                               engine_kind: str, clock: FakeClock) -> None:
    from trigrun._flow import is_quiet_poll

    FakeApi(httpx_mock, target, states(target, RunState.QUEUED, RunState.QUEUED,
                                       RunState.RUNNING, RunState.RUNNING, RunState.SUCCESS))
    events: list[trigrun.Event] = []
    with Driver(engine_kind, clock, on_event=events.append) as driver:
        run = driver.wait(target.job(), target.run_id, poll_interval=INTERVAL)
    assert run.polls == 5
    polls = [e for e in events if e.kind == "poll"]
    assert [e.data["state"] for e in polls] == ["queued", "queued", "running", "running",
                                                "success"]
    assert [e.data["new_state"] for e in polls] == [True, False, True, False, True]
    # What the Airflow trigger and the Dagster resource log at INFO: the new states that
    # are not the end (the end is logged with the outcome).
    assert [is_quiet_poll(e) for e in polls] == [False, True, False, True, True]


@pytest.mark.integration
def test_waiting_on_a_fire_without_a_run_id_is_a_trigrun_error(server: LocalServer,
                                                               engine_kind: str) -> None:
    # A 2xx trigger reply the preset cannot read a run id from: the result says so, and
    # waiting on it raises the public error tree's root, never a bare ValueError.
    server.on("POST", "/trigger", Reply(200, json={"accepted": True}))
    job = trigrun.JobSpec.model_validate({
        "name": "no id", "request": {"url": f"{server.url}/trigger"},
        "wait": {"status_url": f"{server.url}/runs/{{run_id}}", "run_id_path": "id",
                 "status_path": "state"}})
    with Driver(engine_kind) as d:
        result = d.fire(job)
        assert result.run_id is None
        with pytest.raises(trigrun.TrigRunError, match="no run id") as err:
            d.wait(result)
    assert not isinstance(err.value, ValueError)


@pytest.mark.integration
@pytest.mark.parametrize("call", ["wait", "poll", "cancel"])
def test_wait_poll_or_cancel_on_a_failed_fire_raises_trigger_failed_with_its_cause(
        server: LocalServer, engine_kind: str, call: str) -> None:
    # The fire failed (HTTP 400, no retry): what the caller needs is the fire's error, as the
    # same TriggerFailed that ``result.raise_for_failure()`` raises, not "no run id".
    server.on("POST", "/trigger", Reply(400, json={"detail": "dag_id nightly not found"}))
    job = trigrun.JobSpec.model_validate({
        "name": "fails", "request": {"url": f"{server.url}/trigger"},
        "wait": {"status_url": f"{server.url}/runs/{{run_id}}", "run_id_path": "id",
                 "status_path": "state"}})
    with Driver(engine_kind) as d:
        result = d.fire(job)
        assert not result.ok
        with pytest.raises(trigrun.TriggerFailed) as err:
            getattr(d, call)(result)
    assert err.value.result is result
    assert "job 'fails'" in str(err.value)
    assert "HTTP 400" in str(err.value)
    assert result.error is not None
    assert result.error in str(err.value)
    # Nothing was sent after the failed trigger: no status check, no cancel.
    assert [r.path for r in server.requests] == ["/trigger"]
