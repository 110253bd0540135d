"""trigrun jobs run by real Dagster against a live Dagster webserver (``dagster_server``).

The target is a real ``dagster-webserver`` on loopback: trigrun launches its jobs with
GraphQL ``launchRun``, polls ``runOrError`` and cancels with ``terminateRun``.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import dagster as dg
import pytest

from tests.dagster.helpers import failure_metadata, output_metadata, run_logs, values
from tests.fixtures.dagster_server import CANARY, TARGET_LOCATION, DagsterServer
from trigrun import JobSpec
from trigrun._targets.dagster import KEY_TAG
from trigrun.dagster import (
    TrigRunResource,
    asset_key_for,
    build_trigrun_job,
    build_trigrun_sensor,
    op_name_for,
)

pytestmark = pytest.mark.integration


def target_spec(server: DagsterServer, job_name: str = "trigrun_target_job",
                **extra: Any) -> JobSpec:
    """A job that fires ``job_name`` on the live server; a fresh name per test, so each test's
    idempotency keys are its own."""
    run_config = ({"ops": {"target_op": {"config": {"ds": "{{ ds }}"}}}}
                  if job_name == "trigrun_target_job" else {})
    return JobSpec.model_validate({
        "name": f"fire {job_name} {uuid.uuid4().hex[:8]}",
        "target": {"type": "dagster", "base_url": server.base_url, "job_name": job_name,
                   "repository_location_name": TARGET_LOCATION, "run_config": run_config},
        "wait": {"poll_interval_seconds": 0.5, "timeout_seconds": 120},
        **extra,
    })


def config_for(job: dg.JobDefinition, scheduled_time: str | None = None) -> dict[str, Any]:
    cfg = {"scheduled_time": scheduled_time} if scheduled_time else {}
    return {"ops": {op_name_for(job.name): {"config": cfg}}}


def runs_with_key(server: DagsterServer, job_name: str, key: str) -> list[dict[str, Any]]:
    return [r for r in server.runs(job_name) if r["tags"].get(KEY_TAG) == key]


def test_job_fires_a_dagster_job_over_graphql_waits_and_records_metadata(
        dagster_server: DagsterServer, instance: dg.DagsterInstance) -> None:
    spec = target_spec(dagster_server)
    job = build_trigrun_job(spec)
    run_config = config_for(job, "2026-03-08T06:00:00-05:00")

    result = job.execute_in_process(run_config=run_config, instance=instance,
                                    resources={"trigrun": TrigRunResource()})

    assert result.success
    raw_md = output_metadata(result)
    md = values(raw_md)
    run_id = md["run_id"]
    # The downstream run really ran, with the scheduled date rendered into its run config.
    assert dagster_server.run_status(run_id) == "SUCCESS"
    target = dagster_server.run(run_id)
    assert target is not None
    assert "ds: '2026-03-08'" in target["runConfigYaml"] or "ds: 2026-03-08" in target["runConfigYaml"]
    assert target["tags"][KEY_TAG] == md["idempotency_key"]
    # Status code, duration, attempts, run id and URL (as a URL), final state.
    assert md["state"] == "success"
    assert md["status_code"] == 200
    assert md["attempts"] == 1
    assert md["duration_ms"] > 0
    assert md["polls"] >= 1
    assert isinstance(raw_md["run_url"], dg.UrlMetadataValue)
    assert md["run_url"] == f"{dagster_server.base_url}/runs/{run_id}"
    assert md["scheduled_time"] == "2026-03-08T11:00:00+00:00"
    # The asset of the job records the end; attempts and polls went to context.log.
    mats = result.asset_materializations_for_node(op_name_for(job.name))
    assert [m.asset_key for m in mats] == [asset_key_for(spec)]
    assert values(mats[0].metadata)["state"] == "success"
    logs = run_logs(instance, result.run_id)
    assert "attempt 1: HTTP 200" in logs
    assert f"run {run_id}: success (SUCCESS)" in logs
    assert dagster_server.run(result.run_id) is None  # in-process: not a run of the target

    # The same scheduled fire again (a retried schedule tick): no second downstream run.
    again = job.execute_in_process(run_config=run_config, instance=instance,
                                   resources={"trigrun": TrigRunResource()})
    assert again.success
    md2 = values(output_metadata(again))
    assert md2["run_id"] == run_id
    assert md2["adopted"] is True
    assert len(runs_with_key(dagster_server, "trigrun_target_job", md["idempotency_key"])) == 1


def test_op_retries_of_a_manual_run_reuse_one_downstream_run_and_fail_with_metadata(
        dagster_server: DagsterServer, instance: dg.DagsterInstance) -> None:
    spec = target_spec(dagster_server, "failing_target_job")
    job = build_trigrun_job(spec, retry_policy=dg.RetryPolicy(max_retries=1))

    result = job.execute_in_process(run_config=config_for(job), instance=instance,
                                    resources={"trigrun": TrigRunResource()},
                                    raise_on_error=False)

    assert not result.success
    # Two tries of the op (the retry), one downstream run: the manual run's key comes from the
    # run's creation time, the same on every try.
    restarts = [e for e in result.all_events if e.event_type_value == "STEP_RESTARTED"]
    assert len(restarts) == 1
    description, raw_md = failure_metadata(result)
    md = values(raw_md)
    downstream = runs_with_key(dagster_server, "failing_target_job", md["idempotency_key"])
    assert [r["runId"] for r in downstream] == [md["run_id"]]
    assert downstream[0]["status"] == "FAILURE"
    assert md["adopted"] is True  # the retry found the first try's run
    assert md["state"] == "failed"
    assert md["run_url"] == f"{dagster_server.base_url}/runs/{md['run_id']}"
    assert isinstance(raw_md["run_url"], dg.UrlMetadataValue)
    assert "FAILURE" in description


def test_terminating_the_trigrun_run_cancels_the_downstream_run(
        dagster_server: DagsterServer) -> None:
    # `call_slow_target` is served by the live Dagster itself (target_dagster/definitions.py):
    # launched over GraphQL, run by a real run worker, terminated with terminateRun.
    trigrun_run = dagster_server.launch("call_slow_target", {"ops": {
        op_name_for("call_slow_target"): {"config": {
            "scheduled_time": "2026-01-01T00:00:00+00:00"}}}},
        tags={"test": "terminate"})
    slow_run = _wait_for_tag(dagster_server, trigrun_run, "trigrun/run_id", timeout=90)
    assert dagster_server.wait_for_status(slow_run, ("STARTED", "SUCCESS", "FAILURE",
                                                     "CANCELED"), timeout=60) == "STARTED"

    dagster_server.terminate(trigrun_run)

    assert dagster_server.wait_for_status(trigrun_run, timeout=60) == "CANCELED"
    assert dagster_server.wait_for_status(slow_run, timeout=60) == "CANCELED"
    messages = "\n".join(dagster_server.log_messages(trigrun_run))
    assert f"cancelling downstream run {slow_run}" in messages
    assert f"cancel of downstream run {slow_run}: requested" in messages
    # The canary secret the job sent as a header is nowhere in what the server stored: run
    # storage, event logs, compute logs, the webserver's own log.
    assert CANARY.encode() not in dagster_server.files_text()
    assert CANARY not in messages


def _wait_for_tag(server: DagsterServer, run_id: str, tag: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    run: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        run = server.run(run_id)
        if run is not None and tag in run["tags"]:
            return str(run["tags"][tag])
        if run is not None and run["status"] in ("SUCCESS", "FAILURE", "CANCELED"):
            break
        time.sleep(0.5)
    logs = server.log_messages(run_id) if run is not None else []
    raise AssertionError(f"run {run_id} never got tag {tag!r}: {run}; logs: {logs[-20:]}")


def test_completion_sensor_waits_for_a_fired_run_without_a_run_worker(
        dagster_server: DagsterServer, instance: dg.DagsterInstance) -> None:
    spec = target_spec(dagster_server)
    job = build_trigrun_job(spec, wait_in="sensor")
    sensor = build_trigrun_sensor([spec], minimum_interval_seconds=5)
    resources = {"trigrun": TrigRunResource()}

    fired = job.execute_in_process(run_config=config_for(job, "2026-04-01T06:00:00+00:00"),
                                   instance=instance, resources=resources)

    # The trigrun run only fired: it is over while the downstream run may still go on.
    assert fired.success
    md = values(output_metadata(fired))
    assert "state" not in md
    assert md["status_code"] == 200
    run_id = md["run_id"]
    obs = fired.asset_observations_for_node(op_name_for(job.name))
    assert values(obs[0].metadata)["trigrun_track"] == "sensor"

    cursor: str | None = None
    events: list[Any] = []
    deadline = time.monotonic() + 60
    ticks = 0
    while not events and time.monotonic() < deadline:
        ctx = dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources)
        data = sensor.evaluate_tick(ctx)
        ticks += 1
        cursor = data.cursor
        events = list(data.asset_events)
        pending = json.loads(cursor or "{}").get("pending", [])
        if not events:
            # Until the run ends, the cursor holds it as pending.
            assert [p["run_id"] for p in pending] == [run_id]
            time.sleep(0.5)

    assert events, "the sensor never reported the end of the downstream run"
    (event,) = events
    assert isinstance(event, dg.AssetMaterialization)
    assert event.asset_key == asset_key_for(spec)
    ended = values(event.metadata)
    assert ended["state"] == "success"
    assert ended["run_id"] == run_id
    assert ended["run_url"] == f"{dagster_server.base_url}/runs/{run_id}"
    assert ended["fired_by_dagster_run"] == fired.run_id
    assert dagster_server.run_status(run_id) == "SUCCESS"
    assert json.loads(cursor or "{}")["pending"] == []
    # Once reported, the run is not reported again.
    again = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=cursor,
                                                         resources=resources))
    assert list(again.asset_events) == []


def test_completion_sensor_enforces_the_wait_deadline_and_cancels(
        dagster_server: DagsterServer, instance: dg.DagsterInstance) -> None:
    spec = target_spec(dagster_server, "slow_target_job",
                       wait={"poll_interval_seconds": 0.5, "timeout_seconds": 2})
    job = build_trigrun_job(spec, wait_in="sensor")
    sensor = build_trigrun_sensor([spec])
    resources = {"trigrun": TrigRunResource()}
    fired = job.execute_in_process(run_config=config_for(job), instance=instance,
                                   resources=resources)
    run_id = values(output_metadata(fired))["run_id"]

    cursor: str | None = None
    events: list[Any] = []
    deadline = time.monotonic() + 30
    while not events and time.monotonic() < deadline:
        data = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=cursor,
                                                            resources=resources))
        cursor, events = data.cursor, list(data.asset_events)
        if not events:
            time.sleep(0.5)

    (event,) = events
    assert isinstance(event, dg.AssetObservation)
    ended = values(event.metadata)
    assert ended["state"] == "timeout"
    assert "cancel requested" in ended["message"]
    assert dagster_server.wait_for_status(run_id, timeout=60) == "CANCELED"


RESOURCE_DETAILS = """query R($selector: ResourceSelector!) {
  topLevelResourceDetailsOrError(resourceSelector: $selector) {
    __typename
    ... on ResourceDetails { name configuredValues { key value type } }
    ... on Error { message }
  }
}"""


@pytest.mark.parametrize(("location", "resource_key", "env_names"), [
    (TARGET_LOCATION, "trigrun", ["TRIGRUN_TEST_CANARY"]),
    # The component's resource: secrets given in defs.yaml by environment variable name.
    ("example_dagster", "trigrun_nightly",
     ["TRIGRUN_EXAMPLE_AIRFLOW_PASSWORD", "TRIGRUN_EXAMPLE_SLACK_TOKEN"]),
])
def test_webserver_shows_secret_variable_names_never_values(
        dagster_server: DagsterServer, location: str, resource_key: str,
        env_names: list[str]) -> None:
    # The server's environment holds the canary in each of these variables.
    node = dagster_server.graphql(RESOURCE_DETAILS, {"selector": {
        "repositoryLocationName": location, "repositoryName": "__repository__",
        "resourceName": resource_key}})["topLevelResourceDetailsOrError"]
    assert node["__typename"] == "ResourceDetails", node
    shown = json.dumps(node)
    assert CANARY not in shown
    secrets = {v["key"]: v for v in node["configuredValues"]}["secrets"]
    assert secrets["type"] == "VALUE"  # a mapping: each value is an env var reference
    assert sorted(v["env"] for v in json.loads(secrets["value"]).values()) == env_names
