"""Cancelling never changes a run that already ended, for every preset; Prefect's idempotency.

Real sockets: the fakes in ``tests/helpers/fakes.py`` answer as the targets do (Prefect's
orchestration rules answer ``ABORT`` for an ended run; Airflow's PATCH overwrites any state).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import trigrun
from tests.helpers.clock import FakeClock
from tests.helpers.drive import Driver
from tests.helpers.fakes import (
    DEP_1,
    DEP_A,
    DEP_B,
    FLOW_1,
    FakeAirflow,
    FakeDagster,
    FakeDbtCloud,
    FakePrefect,
)
from tests.helpers.httpserver import LocalServer, Reply
from trigrun._targets import HttpReply, preset_for

SCHEDULED = FakeClock().now()

def prefect_spec(api_url: str, deployment: str = DEP_1, **over: Any) -> trigrun.JobSpec:
    return trigrun.JobSpec.model_validate({
        "name": "prefect job",
        "target": {"type": "prefect", "base_url": api_url, "deployment_id": deployment},
        **over})


def reply(status: int, data: Any) -> HttpReply:
    return HttpReply(status, {"content-type": "application/json"}, json.dumps(data).encode())


# -- Prefect ---------------------------------------------------------------------------------


def test_prefect_cancel_of_a_completed_run_leaves_it_completed(
        server: LocalServer, make_driver: Callable[..., Driver]) -> None:
    prefect = FakePrefect(server)
    driver = make_driver()
    spec = prefect_spec(prefect.api_url)
    fired = driver.fire(spec, scheduled_time=SCHEDULED)
    assert fired.ok
    assert fired.run_id
    prefect.set_run_state(fired.run_id, "COMPLETED")  # it ended a moment before the cancel

    driver.cancel(spec, fired.run_id)

    assert prefect.state_of(fired.run_id) == "COMPLETED"
    (body,) = prefect.set_state_bodies
    assert "force" not in body
    assert body["state"]["type"] == "CANCELLING"


def test_prefect_cancel_counts_only_an_accept(server: LocalServer,
                                              make_driver: Callable[..., Driver]) -> None:
    prefect = FakePrefect(server)
    driver = make_driver()
    spec = prefect_spec(prefect.api_url)
    ended = driver.fire(spec, scheduled_time=SCHEDULED)
    assert ended.run_id
    prefect.set_run_state(ended.run_id, "COMPLETED")
    assert driver.cancel(spec, ended.run_id) is False  # Prefect answered ABORT

    going = driver.fire(spec, scheduled_time=SCHEDULED.replace(hour=SCHEDULED.hour - 1))
    assert going.run_id
    assert going.run_id != ended.run_id
    prefect.set_run_state(going.run_id, "RUNNING", infrastructure_pid="worker:1")
    assert driver.cancel(spec, going.run_id) is True
    assert prefect.state_of(going.run_id) == "CANCELLING"
    # Cancelled again while CANCELLING: Prefect answers REJECT with the run still CANCELLING,
    # the cancel already under way.
    assert driver.cancel(spec, going.run_id) is True


def test_prefect_cancel_of_a_scheduled_run_no_worker_holds_is_a_success(
        server: LocalServer, make_driver: Callable[..., Driver]) -> None:
    # Prefect cancels a run no worker picked up straight to CANCELLED and answers REJECT.
    prefect = FakePrefect(server)
    driver = make_driver()
    spec = prefect_spec(prefect.api_url)
    fired = driver.fire(spec, scheduled_time=SCHEDULED)
    assert fired.run_id
    assert prefect.state_of(fired.run_id) == "SCHEDULED"
    assert driver.cancel(spec, fired.run_id) is True
    assert prefect.state_of(fired.run_id) == "CANCELLED"


def test_prefect_cancel_accepted_reads_the_orchestration_status() -> None:
    preset = preset_for(prefect_spec("http://prefect.test/api"))
    assert preset.cancel_accepted(reply(201, {"status": "ACCEPT", "state": {}}))
    for kind in ("CANCELLED", "CANCELLING"):
        assert preset.cancel_accepted(reply(200, {"status": "REJECT", "state": {"type": kind}}))
    # Refusals: ABORT (an ended run), WAIT, a REJECT that leaves the run in another state.
    for status in ("REJECT", "ABORT", "WAIT"):
        assert not preset.cancel_accepted(reply(200, {"status": status, "state": None}))
    assert not preset.cancel_accepted(reply(200, {"status": "REJECT",
                                                  "state": {"type": "COMPLETED"}}))
    assert not preset.cancel_accepted(reply(200, {"status": "ABORT",
                                                  "state": {"type": "CANCELLED"}}))
    assert not preset.cancel_accepted(reply(200, {}))


def test_prefect_repeat_is_adopted(server: LocalServer,
                                   make_driver: Callable[..., Driver]) -> None:
    prefect = FakePrefect(server)
    driver = make_driver()
    spec = prefect_spec(prefect.api_url)
    first = driver.fire(spec, scheduled_time=SCHEDULED)
    again = driver.fire(spec, scheduled_time=SCHEDULED)  # e.g. an orchestrator task retry
    assert first.ok
    assert not first.adopted
    assert again.ok
    assert again.adopted
    assert again.run_id == first.run_id
    assert len(prefect.runs) == 1


def test_prefect_key_is_per_deployment(server: LocalServer,
                                       make_driver: Callable[..., Driver]) -> None:
    # Two deployments of one flow: Prefect keeps idempotency keys unique per flow.
    prefect = FakePrefect(server, deployments={DEP_A: FLOW_1, DEP_B: FLOW_1})
    driver = make_driver()
    key = {"idempotency": {"key": "nightly-{{ ds }}"}}
    a = driver.fire(prefect_spec(prefect.api_url, DEP_A, **key), scheduled_time=SCHEDULED)
    b = driver.fire(prefect_spec(prefect.api_url, DEP_B, **key), scheduled_time=SCHEDULED)
    assert a.ok
    assert b.ok
    assert not b.adopted
    assert a.run_id != b.run_id
    assert {r["deployment_id"] for r in prefect.runs.values()} == {DEP_A, DEP_B}
    sent = [r.json()["idempotency_key"] for r in server.requests
            if r.path.endswith("/create_flow_run")]
    assert sent[0].startswith(f"{DEP_A}:")
    assert sent[1].startswith(f"{DEP_B}:")


# -- the other presets ----------------------------------------------------------------------


def test_airflow_cancel_of_a_succeeded_run_leaves_it_succeeded(
        server: LocalServer, make_driver: Callable[..., Driver]) -> None:
    airflow = FakeAirflow(server)
    airflow.add_run("etl", "manual__1", "success")
    spec = trigrun.JobSpec.model_validate({"name": "af", "target": {
        "type": "airflow", "base_url": airflow.base_url, "dag_id": "etl", "api_version": "v2"}})
    assert make_driver().cancel(spec, "manual__1") is False
    assert airflow.runs[("etl", "manual__1")].state == "success"
    assert not [r for r in server.requests if r.method == "PATCH"]


def test_airflow_cancel_of_a_running_run_marks_it_failed(
        server: LocalServer, make_driver: Callable[..., Driver]) -> None:
    airflow = FakeAirflow(server)
    airflow.add_run("etl", "manual__1", "running")
    spec = trigrun.JobSpec.model_validate({"name": "af", "target": {
        "type": "airflow", "base_url": airflow.base_url, "dag_id": "etl", "api_version": "v2"}})
    assert make_driver().cancel(spec, "manual__1") is True
    assert airflow.runs[("etl", "manual__1")].state == "failed"


def test_dbt_cloud_cancel_of_a_finished_run_is_not_sent(
        server: LocalServer, make_driver: Callable[..., Driver]) -> None:
    dbt = FakeDbtCloud(server, statuses=[10])
    spec = trigrun.JobSpec.model_validate({"name": "dbt", "target": {
        "type": "dbt_cloud", "base_url": dbt.base_url, "account_id": 1, "job_id": 42}})
    driver = make_driver()
    fired = driver.fire(spec, scheduled_time=SCHEDULED)
    assert fired.run_id
    assert driver.cancel(spec, fired.run_id) is False
    assert dbt.runs[0]["status"] == 10
    assert not server.requests_to(f"/api/v2/accounts/1/runs/{fired.run_id}/cancel/")


def test_webhook_cancel_of_an_ended_run_is_not_sent(
        server: LocalServer, make_driver: Callable[..., Driver]) -> None:
    server.on("GET", "/runs/w-1", Reply(200, json={"id": "w-1", "state": "done"}))
    server.on("POST", "/runs/w-1/cancel", Reply(200, json={}))
    spec = trigrun.JobSpec.model_validate({
        "name": "hook", "request": {"url": server.url + "/trigger"},
        "wait": {"status_url": server.url + "/runs/{run_id}", "run_id_path": "id",
                 "status_path": "state", "cancel_url": server.url + "/runs/{run_id}/cancel"}})
    assert make_driver().cancel(spec, "w-1") is False
    assert not server.requests_to("/runs/w-1/cancel")


def test_every_preset_declares_how_it_spares_an_ended_run() -> None:
    """A preset whose cancel call would overwrite an ended run reads the state first; the
    others recognise the target's refusal."""
    def spec(target: dict[str, Any], **over: Any) -> trigrun.JobSpec:
        return trigrun.JobSpec.model_validate({"name": "j", "target": target, **over})

    airflow = preset_for(spec({"type": "airflow", "base_url": "http://a", "dag_id": "d"}))
    assert airflow.cancel_checks_status
    assert airflow.cancel_accepted(reply(200, {"dag_run_id": "r", "state": "failed"}))
    assert not airflow.cancel_accepted(reply(200, {"dag_run_id": "r", "state": "success"}))

    dbt = preset_for(spec({"type": "dbt_cloud", "account_id": 1, "job_id": 2}))
    assert dbt.cancel_checks_status
    assert dbt.cancel_accepted(reply(200, {"data": {"id": 5, "status": 30}}))
    assert not dbt.cancel_accepted(reply(200, {"data": {"id": 5, "status": 10}}))

    dagster = preset_for(spec({"type": "dagster", "base_url": "http://d", "job_name": "j",
                               "repository_location_name": "l"}))
    assert not dagster.cancel_checks_status  # terminateRun refuses an ended run itself
    assert dagster.cancel_accepted(reply(200, {"data": {"terminateRun": {
        "__typename": "TerminateRunSuccess", "run": {"runId": "r"}}}}))
    assert not dagster.cancel_accepted(reply(200, {"data": {"terminateRun": {
        "__typename": "TerminateRunFailure",
        "message": "Run r could not be terminated due to having status SUCCESS."}}}))

    prefect = preset_for(spec({"type": "prefect", "base_url": "http://p/api",
                               "deployment_id": "d"}))
    assert not prefect.cancel_checks_status  # unforced set_state refuses an ended run
    call = prefect.cancel_call("fr-1")
    assert call is not None
    assert "force" not in call.json


# -- Dagster's SUSPENDED ----------------------------------------------------------------------


def test_dagster_suspended_run_is_still_going(server: LocalServer, clock: FakeClock,
                                              make_driver: Callable[..., Driver]) -> None:
    # Dagster 1.13: a run waiting on external work with no run worker. Not ended, not unknown.
    dagster = FakeDagster(server, statuses=["STARTED", "SUSPENDED", "SUSPENDED", "SUCCESS"])
    spec = trigrun.JobSpec.model_validate({"name": "dg", "target": {
        "type": "dagster", "base_url": dagster.base_url, "job_name": "etl",
        "repository_location_name": "loc"}, "wait": {"poll_interval_seconds": 1}})
    driver = make_driver()
    fired = driver.fire(spec, scheduled_time=SCHEDULED)
    assert fired.run_id
    run = driver.wait(fired)
    assert run.state is trigrun.RunState.SUCCESS
    assert run.polls == 4  # STARTED, SUSPENDED, SUSPENDED, SUCCESS


def test_a_wait_whose_deadline_finds_the_run_ended_reports_that_end(
        server: LocalServer, make_driver: Callable[..., Driver]) -> None:
    # The run ends between the last poll and the deadline's cancel: the cancel's read sees it,
    # the run is left as it is, and the wait reports how it ended rather than a timeout.
    airflow = FakeAirflow(server)
    airflow.add_run("etl", "manual__1", "running")
    airflow.runs[("etl", "manual__1")].states = ["running", "running", "running", "success"]
    spec = trigrun.JobSpec.model_validate({"name": "af", "target": {
        "type": "airflow", "base_url": airflow.base_url, "dag_id": "etl", "api_version": "v2"}})
    run = make_driver().wait(spec, "manual__1", poll_interval=10, timeout=15)
    assert run.state is trigrun.RunState.SUCCESS, run.message
    assert "ended success" in run.message
    assert airflow.runs[("etl", "manual__1")].state == "success"
    assert not [r for r in server.requests if r.method == "PATCH"]
