"""Every preset's trigger request names the upstream, in the target's own terms, as the target
received it over a socket; ``link_upstream: false`` sends none of it; the idempotency key does
not depend on the upstream."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import trigrun
from tests.helpers.clock import FakeClock
from tests.helpers.drive import Driver
from tests.helpers.httpserver import LocalServer, Recorded, Reply
from trigrun import Upstream

pytestmark = pytest.mark.integration

SCHEDULED = FakeClock().now()
AIRFLOW_UP = Upstream(kind="airflow", name="Airflow task etl.trigger (run scheduled__2026-03-16)",
                      url="http://airflow.example.com/dags/etl/runs/scheduled__2026-03-16/tasks/trigger",
                      run_id="scheduled__2026-03-16")
DAGSTER_UP = Upstream(kind="dagster", name="Dagster run 1a2b3c4d of job nightly",
                      url="http://dagster.example.com/runs/1a2b3c4d-0000", run_id="1a2b3c4d-0000")


def spec(data: dict[str, Any]) -> trigrun.JobSpec:
    return trigrun.JobSpec.model_validate({"name": "Nightly ETL", **data})


def airflow_spec(srv: LocalServer, **over: Any) -> trigrun.JobSpec:
    target = {"type": "airflow", "base_url": srv.url, "dag_id": "etl", "conf": {"day": "mon"},
              **over.pop("target", {})}
    return spec({"target": target, **over})


def dagster_spec(srv: LocalServer, **over: Any) -> trigrun.JobSpec:
    target = {"type": "dagster", "base_url": srv.url, "job_name": "nightly",
              "repository_location_name": "proj", "tags": {"team": "data"},
              **over.pop("target", {})}
    return spec({"target": target, **over})


def prefect_spec(srv: LocalServer, **over: Any) -> trigrun.JobSpec:
    return spec({"target": {"type": "prefect", "base_url": srv.url + "/api",
                            "deployment_id": "dep-1"}, **over})


def dbt_spec(srv: LocalServer, **over: Any) -> trigrun.JobSpec:
    target = {"type": "dbt_cloud", "base_url": srv.url, "account_id": 1, "job_id": 2,
              **over.pop("target", {})}
    return spec({"target": target, **over})


def serve_airflow(srv: LocalServer) -> None:
    srv.on("POST", "/api/v2/dags/etl/dagRuns",
           lambda r: Reply(200, json={"dag_run_id": r.json()["dag_run_id"], "state": "queued"}))


def _dagster(r: Recorded) -> Reply:
    if "launchRun" in r.json()["query"]:
        return Reply(json={"data": {"launchRun": {"__typename": "LaunchRunSuccess",
                                                  "run": {"runId": "r-1", "status": "QUEUED"}}}})
    return Reply(json={"data": {"runsOrError": {"__typename": "Runs", "results": []}}})


def serve_dagster(srv: LocalServer) -> None:
    srv.on("POST", "/graphql", _dagster)


def serve_prefect(srv: LocalServer) -> None:
    srv.on("POST", "/api/deployments/dep-1/create_flow_run",
           Reply(201, json={"id": "fr-1", "state": {"type": "SCHEDULED"}}))


def serve_dbt(srv: LocalServer) -> None:
    srv.on("GET", "/api/v2/accounts/1/runs/", Reply(json={"data": []}))
    srv.on("POST", "/api/v2/accounts/1/jobs/2/run/", Reply(json={"data": {"id": 7, "status": 1}}))


def trigger_body(srv: LocalServer, path: str) -> Any:
    sent = [r for r in srv.requests_to(path, "POST")
            if path != "/graphql" or "launchRun" in r.json()["query"]]
    assert len(sent) == 1
    return sent[0].json()


def dagster_tags(body: Any) -> dict[str, str]:
    tags = body["variables"]["executionParams"]["executionMetadata"]["tags"]
    return {t["key"]: t["value"] for t in tags}


# --- each preset ------------------------------------------------------------------------------


def test_airflow_note_and_conf_name_the_upstream(server: LocalServer,
                                                 make_driver: Callable[..., Driver]) -> None:
    serve_airflow(server)
    result = make_driver().fire(airflow_spec(server), scheduled_time=SCHEDULED,
                                upstream=DAGSTER_UP)
    assert result.ok, result.error
    body = trigger_body(server, "/api/v2/dags/etl/dagRuns")
    assert body["note"] == ("Triggered by Dagster run 1a2b3c4d of job nightly: "
                            "http://dagster.example.com/runs/1a2b3c4d-0000")
    assert body["conf"] == {"day": "mon", "trigrun": {
        "upstream": "Dagster run 1a2b3c4d of job nightly",
        "upstream_url": "http://dagster.example.com/runs/1a2b3c4d-0000", "kind": "dagster"}}


def test_airflow_keeps_the_jobs_own_note_and_trigrun_conf(
        server: LocalServer, make_driver: Callable[..., Driver]) -> None:
    serve_airflow(server)
    own = airflow_spec(server, target={"note": "the nightly load",
                                       "conf": {"trigrun": "mine", "day": "mon"}})
    assert make_driver().fire(own, scheduled_time=SCHEDULED, upstream=DAGSTER_UP).ok
    body = trigger_body(server, "/api/v2/dags/etl/dagRuns")
    assert body["note"] == "the nightly load"
    assert body["conf"] == {"trigrun": "mine", "day": "mon"}


def test_airflow_raw_request_gets_the_conf_key_beside_its_own(
        server: LocalServer, make_driver: Callable[..., Driver]) -> None:
    serve_airflow(server)
    raw = spec({"request": {"url": server.url + "/api/v2/dags/etl/dagRuns",
                            "body": {"conf": {"x": 1}}}})
    assert make_driver().fire(raw, scheduled_time=SCHEDULED, upstream=DAGSTER_UP).ok
    body = trigger_body(server, "/api/v2/dags/etl/dagRuns")
    assert body["conf"]["x"] == 1
    assert body["conf"]["trigrun"]["upstream"] == DAGSTER_UP.name
    assert body["note"].startswith("Triggered by Dagster run 1a2b3c4d")


def test_dagster_run_tags_name_the_upstream(server: LocalServer,
                                            make_driver: Callable[..., Driver]) -> None:
    serve_dagster(server)
    result = make_driver().fire(dagster_spec(server), scheduled_time=SCHEDULED,
                                upstream=AIRFLOW_UP)
    assert result.ok, result.error
    tags = dagster_tags(trigger_body(server, "/graphql"))
    # `user` is what the Runs list shows as "Launched by" (docs/upstream.md).
    assert tags == {"team": "data", "trigrun/idempotency_key": result.idempotency_key,
                    "trigrun/upstream": AIRFLOW_UP.name, "trigrun/upstream_url": AIRFLOW_UP.url,
                    "user": AIRFLOW_UP.name}


def test_dagster_raw_launch_body_keeps_its_own_upstream_tag(
        server: LocalServer, make_driver: Callable[..., Driver]) -> None:
    serve_dagster(server)
    query = "mutation L($executionParams: ExecutionParams!) { launchRun(executionParams: " \
            "$executionParams) { __typename ... on LaunchRunSuccess { run { runId status } } } }"
    raw = spec({"target": "dagster", "request": {"url": server.url + "/graphql", "body": {
        "query": query, "variables": {"executionParams": {
            "selector": {"jobName": "nightly", "repositoryName": "__repository__",
                         "repositoryLocationName": "proj"},
            "executionMetadata": {"tags": [{"key": "trigrun/upstream", "value": "set by me"}]},
        }}}}})
    result = make_driver().fire(raw, scheduled_time=SCHEDULED, upstream=AIRFLOW_UP)
    assert result.ok, result.error
    tags = dagster_tags(trigger_body(server, "/graphql"))
    assert tags["trigrun/upstream"] == "set by me"
    assert tags["trigrun/upstream_url"] == AIRFLOW_UP.url
    assert tags["trigrun/idempotency_key"] == result.idempotency_key


def test_prefect_flow_run_name_and_tags(server: LocalServer,
                                        make_driver: Callable[..., Driver]) -> None:
    serve_prefect(server)
    assert make_driver().fire(prefect_spec(server), scheduled_time=SCHEDULED,
                              upstream=AIRFLOW_UP).ok
    body = trigger_body(server, "/api/deployments/dep-1/create_flow_run")
    assert body["name"] == f"from {AIRFLOW_UP.name}"
    assert body["tags"] == ["trigrun", "trigrun/upstream:airflow",
                            f"trigrun/upstream_url:{AIRFLOW_UP.url}"]
    assert body["idempotency_key"].startswith("dep-1:trigrun__")


def test_dbt_cloud_cause_names_the_upstream_and_keeps_the_key(
        server: LocalServer, make_driver: Callable[..., Driver]) -> None:
    serve_dbt(server)
    result = make_driver().fire(dbt_spec(server), scheduled_time=SCHEDULED, upstream=AIRFLOW_UP)
    assert result.ok, result.error
    cause = trigger_body(server, "/api/v2/accounts/1/jobs/2/run/")["cause"]
    assert cause == f"{AIRFLOW_UP.line} [{result.idempotency_key}]"
    # A long upstream is cut before the key, which later fires look for, never the key.
    long = Upstream(kind="airflow", name="x" * 400, url=None)
    server.reset()
    serve_dbt(server)
    result = make_driver().fire(dbt_spec(server, name="other"), scheduled_time=SCHEDULED,
                                upstream=long)
    cause = trigger_body(server, "/api/v2/accounts/1/jobs/2/run/")["cause"]
    assert len(cause) == 255
    assert cause.endswith(f" [{result.idempotency_key}]")


def test_dbt_cloud_own_cause_comes_first(server: LocalServer,
                                         make_driver: Callable[..., Driver]) -> None:
    serve_dbt(server)
    result = make_driver().fire(dbt_spec(server, target={"cause": "Nightly load"}),
                                scheduled_time=SCHEDULED, upstream=DAGSTER_UP)
    cause = trigger_body(server, "/api/v2/accounts/1/jobs/2/run/")["cause"]
    assert cause == f"Nightly load ({DAGSTER_UP.line}) [{result.idempotency_key}]"


def test_webhook_body_and_headers_are_sent_as_written(
        server: LocalServer, make_driver: Callable[..., Driver]) -> None:
    server.on("POST", "/hook", Reply(200, json={}))
    hook = spec({"request": {"url": server.url + "/hook", "body": {"a": 1}}})
    assert make_driver().fire(hook, scheduled_time=SCHEDULED, upstream=AIRFLOW_UP).ok
    (sent,) = server.requests_to("/hook")
    assert sent.json() == {"a": 1}
    assert "Airflow" not in sent.text + str(sent.headers)


# --- link_upstream: false, no upstream, the key ----------------------------------------------

CASES = [
    (airflow_spec, serve_airflow, "/api/v2/dags/etl/dagRuns"),
    (dagster_spec, serve_dagster, "/graphql"),
    (prefect_spec, serve_prefect, "/api/deployments/dep-1/create_flow_run"),
    (dbt_spec, serve_dbt, "/api/v2/accounts/1/jobs/2/run/"),
]
IDS = ["airflow", "dagster", "prefect", "dbt_cloud"]


@pytest.mark.parametrize(("make_spec", "serve", "path"), CASES, ids=IDS)
def test_link_upstream_false_sends_none_of_it(
        server: LocalServer, make_driver: Callable[..., Driver], make_spec: Any, serve: Any,
        path: str) -> None:
    serve(server)
    driver = make_driver()
    assert driver.fire(make_spec(server, link_upstream=False), scheduled_time=SCHEDULED,
                       upstream=AIRFLOW_UP).ok
    off = trigger_body(server, path)
    server.reset()
    serve(server)
    assert driver.fire(make_spec(server), scheduled_time=SCHEDULED).ok
    plain = trigger_body(server, path)
    # Off is the same request as a fire that names no upstream, and names none of it.
    assert off == plain
    for text in (AIRFLOW_UP.name, AIRFLOW_UP.url, "trigrun/upstream", '"note"'):
        assert text not in str(off).replace("'", '"')


@pytest.mark.parametrize(("make_spec", "serve", "path"), CASES, ids=IDS)
def test_the_idempotency_key_does_not_depend_on_the_upstream(
        server: LocalServer, make_driver: Callable[..., Driver], make_spec: Any, serve: Any,
        path: str) -> None:
    keys = set()
    for upstream in (AIRFLOW_UP, DAGSTER_UP, None):
        server.reset()
        serve(server)
        result = make_driver().fire(make_spec(server), scheduled_time=SCHEDULED,
                                    upstream=upstream)
        assert result.ok, result.error
        keys.add(result.idempotency_key)
    assert len(keys) == 1
    assert None not in keys
    assert keys == {trigrun.idempotency_key(make_spec(server), SCHEDULED)}


def test_upstream_text_goes_through_the_redactor(server: LocalServer,
                                                 make_driver: Callable[..., Driver]) -> None:
    serve_dagster(server)
    secret = "hunter2-very-secret"
    leaky = Upstream(kind="python", name=f"script with {secret}",
                     url=f"http://host/page?token={secret}")
    s = dagster_spec(server, auth={"type": "bearer", "token": "secret://tok"})
    assert make_driver(secrets={"tok": secret}).fire(s, scheduled_time=SCHEDULED,
                                                     upstream=leaky).ok
    (launch,) = [r for r in server.requests_to("/graphql") if "launchRun" in r.text]
    assert secret not in launch.text
    tags = dagster_tags(launch.json())
    assert tags["trigrun/upstream"].startswith("script with ")
    assert tags["trigrun/upstream_url"].startswith("http://host/page?token=")


def test_upstream_checks_its_kind_and_name() -> None:
    with pytest.raises(ValueError, match="kind"):
        Upstream(kind="cron", name="x", url=None)
    with pytest.raises(ValueError, match="name"):
        Upstream(kind="cli", name="", url=None)
