"""Executable trigrun assets: Materialize fires the job (and waits), the run URL, state and
duration lead the materialization's metadata, a failed downstream run fails it, schedules run
the asset's job, and the downstream run is told which Dagster run started it.

Real Dagster (``materialize``, ``execute_in_process``, the live webserver's ``launchRun``);
the target is a local server speaking Dagster's GraphQL API, or the live webserver itself.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import dagster as dg
import pytest

from tests.dagster.helpers import failure_metadata, values
from tests.fixtures.dagster_server import DagsterServer
from tests.helpers.fakes import FakeDagster
from tests.helpers.httpserver import LocalServer, Reply
from trigrun import JobSpec, SpecError
from trigrun.dagster import (
    TrigRunResource,
    asset_key_for,
    build_trigrun_asset,
    build_trigrun_definitions,
    op_name_for,
)

UI = "https://dagster.example.com/"


@pytest.fixture
def fake() -> Iterator[FakeDagster]:
    with LocalServer() as server:
        yield FakeDagster(server, statuses=["STARTED", "SUCCESS"])


def spec(fake: FakeDagster, name: str = "Load warehouse", **extra: Any) -> dict[str, Any]:
    return {"name": name,
            "target": {"type": "dagster", "base_url": fake.base_url, "job_name": "warehouse",
                       "repository_location_name": "etl"},
            "wait": {"poll_interval_seconds": 0.05}, **extra}


def resource() -> TrigRunResource:
    return TrigRunResource(dagster_url=UI)


def materializations(result: dg.ExecuteInProcessResult) -> list[dg.AssetMaterialization]:
    return [e.event_specific_data.materialization  # type: ignore[union-attr]
            for e in result.all_events if e.event_type_value == "ASSET_MATERIALIZATION"]


def test_materialize_fires_waits_and_leads_with_run_url_state_duration(
        fake: FakeDagster) -> None:
    job = spec(fake)
    result = dg.materialize([build_trigrun_asset(job)], resources={"trigrun": resource()})
    assert result.success
    (mat,) = materializations(result)
    assert mat.asset_key == dg.AssetKey(["trigrun", "load_warehouse"])
    md = values(mat.metadata)
    assert list(md)[:3] == ["run_url", "state", "duration_seconds"]
    assert md["run_url"] == f"{fake.base_url}/runs/run-1"
    assert md["state"] == "success"
    assert md["duration_seconds"] > 0
    (run,) = fake.runs
    assert run["jobName"] == "warehouse"
    # The downstream run names the Dagster run that started it, with its page in our UI.
    assert run["tags"]["trigrun/upstream"] == (f"Dagster run {result.run_id} of "
                                              f"{result.job_def.name}")
    assert run["tags"]["trigrun/upstream_url"] == f"{UI.rstrip('/')}/runs/{result.run_id}"


def test_a_failed_downstream_run_fails_the_materialization(fake: FakeDagster) -> None:
    fake.statuses = ["STARTED", "FAILURE"]
    with dg.instance_for_test() as instance:
        result = dg.materialize([build_trigrun_asset(spec(fake))], instance=instance,
                                resources={"trigrun": resource()}, raise_on_error=False)
        assert not result.success
        assert materializations(result) == []
        description, md = failure_metadata(result)
        assert list(values(md))[:3] == ["run_url", "state", "duration_seconds"]
        assert values(md)["state"] == "failed"
        assert values(md)["run_url"] == f"{fake.base_url}/runs/run-1"
        assert "run-1" in description
        failed = instance.get_latest_materialization_event(
            dg.AssetKey(["trigrun", "load_warehouse"]))
        assert failed is None


def test_definitions_give_each_job_an_executable_asset_its_job_and_schedule(
        fake: FakeDagster) -> None:
    jobs = [spec(fake, "Extract", schedule={"cron": "0 1 * * *"}),
            spec(fake, "Transform"), spec(fake, "Load")]
    defs = build_trigrun_definitions(jobs, resource=resource(),
                                     deps={"Transform": ["Extract"], "load": ["transform"]})
    graph = defs.resolve_asset_graph()
    keys = {k: graph.get(k) for k in graph.get_all_asset_keys()}
    assert set(keys) == {dg.AssetKey(["trigrun", s]) for s in ("extract", "transform", "load")}
    assert all(node.is_executable and node.is_materializable for node in keys.values())
    # Extract -> Transform -> Load shows as lineage.
    assert graph.get(dg.AssetKey(["trigrun", "load"])).parent_keys == {
        dg.AssetKey(["trigrun", "transform"])}
    assert graph.get(dg.AssetKey(["trigrun", "transform"])).parent_keys == {
        dg.AssetKey(["trigrun", "extract"])}
    # The schedule's run is a run of the asset's job, with run config where it always was.
    schedule = defs.resolve_schedule_def("extract_schedule")
    data = schedule.evaluate_tick(dg.build_schedule_context(
        scheduled_execution_time=datetime.now(timezone.utc)))
    (request,) = data.run_requests or []
    job = defs.resolve_job_def("extract")
    assert job.asset_layer.selected_asset_keys == {dg.AssetKey(["trigrun", "extract"])}
    with dg.instance_for_test() as instance:
        ran = job.execute_in_process(run_config=request.run_config, tags=request.tags,
                                     instance=instance)
        assert ran.success
        (mat,) = materializations(ran)
        assert mat.asset_key == asset_key_for(JobSpec.model_validate(jobs[0]))
    assert request.run_config["ops"][op_name_for("extract")]["config"]["scheduled_time"]


def test_external_asset_form_is_an_opt_in_and_bad_deps_are_named(fake: FakeDagster) -> None:
    defs = build_trigrun_definitions([spec(fake)], assets="external")
    (node,) = [defs.resolve_asset_graph().get(k)
               for k in defs.resolve_asset_graph().get_all_asset_keys()]
    assert not node.is_materializable
    assert defs.resolve_job_def("load_warehouse").asset_layer.selected_asset_keys == set()
    with pytest.raises(SpecError, match=r"deps\.Load warehouse: job 'Nope' is not in"):
        build_trigrun_definitions([spec(fake)], deps={"Load warehouse": ["Nope"]})
    with pytest.raises(SpecError, match="deps: job 'Other' is not in"):
        build_trigrun_definitions([spec(fake)], deps={"Other": ["Load warehouse"]})


def test_resource_dagster_url_defaults_to_the_webserver_variable(
        fake: FakeDagster, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAGSTER_WEBSERVER_URL", "http://dagster.internal:8080")
    result = dg.materialize([build_trigrun_asset(spec(fake))],
                            resources={"trigrun": TrigRunResource()})
    assert result.success
    assert fake.runs[0]["tags"]["trigrun/upstream_url"] == (
        f"http://dagster.internal:8080/runs/{result.run_id}")


MATERIALIZATIONS = """query Mats($runId: ID!) {
  runOrError(runId: $runId) {
    __typename
    ... on Run { assetMaterializations { assetKey { path }
      metadataEntries { label ... on UrlMetadataEntry { url } ... on TextMetadataEntry { text } } } }
  }
}"""


@pytest.mark.integration
def test_live_launch_run_of_the_asset_job_fires_the_job(dagster_server: DagsterServer) -> None:
    before = {r["runId"] for r in dagster_server.runs("trigrun_target_job")}
    run_id = dagster_server.launch("fire_target", {"ops": {op_name_for("fire_target"): {
        "config": {"scheduled_time": "2026-06-01T06:00:00+00:00"}}}})
    assert dagster_server.wait_for_status(run_id, timeout=120) == "SUCCESS"
    (downstream,) = [r for r in dagster_server.runs("trigrun_target_job")
                     if r["runId"] not in before]
    assert downstream["status"] == "SUCCESS"
    assert downstream["tags"]["trigrun/upstream"] == f"Dagster run {run_id} of fire_target"
    assert downstream["tags"]["trigrun/upstream_url"] == (
        f"{dagster_server.base_url}/runs/{run_id}")
    node = dagster_server.graphql(MATERIALIZATIONS, {"runId": run_id})["runOrError"]
    (mat,) = node["assetMaterializations"]
    assert mat["assetKey"]["path"] == ["trigrun", "fire_target"]
    entries = {e["label"]: e.get("url") or e.get("text") for e in mat["metadataEntries"]}
    assert [e["label"] for e in mat["metadataEntries"]][:3] == [
        "run_url", "state", "duration_seconds"]
    assert entries["run_url"] == f"{dagster_server.base_url}/runs/{downstream['runId']}"
    assert entries["state"] == "success"


def test_a_job_that_does_not_wait_materializes_on_the_fire_and_sensor_jobs_do_not(
        fake: FakeDagster) -> None:
    with LocalServer() as hook:
        hook.on("POST", "/hook", Reply(200, json={"ok": True}))
        webhook = {"name": "Notify", "request": {"url": f"{hook.url}/hook"},
                   "wait": {"enabled": False}}
        result = dg.materialize([build_trigrun_asset(webhook)],
                                resources={"trigrun": resource()})
        (mat,) = materializations(result)
        assert list(values(mat.metadata))[:2] == ["state", "duration_seconds"]
        assert values(mat.metadata)["state"] == "fired"
    # The completion sensor records the end of a run fired with wait_in="sensor".
    result = dg.materialize([build_trigrun_asset(spec(fake), wait_in="sensor")],
                            resources={"trigrun": resource()})
    assert result.success
    assert materializations(result) == []
    assert len(fake.runs) == 1


def test_component_jobs_are_executable_assets_with_lineage(fake: FakeDagster) -> None:
    from tests.dagster.test_dagster_definitions import _component_defs

    defs = _component_defs({"jobs": [spec(fake, "Extract"), spec(fake, "Transform")],
                            "deps": {"Transform": ["Extract"]}, "dagster_url": UI,
                            "max_requests_per_second": 5})
    graph = defs.resolve_asset_graph()
    transform = graph.get(dg.AssetKey(["trigrun", "transform"]))
    assert transform.is_materializable
    assert transform.parent_keys == {dg.AssetKey(["trigrun", "extract"])}
    resource = defs.resources["trigrun"]  # type: ignore[index]
    assert (resource.dagster_url, resource.max_requests_per_second) == (UI, 5)
    with dg.instance_for_test() as instance:
        ran = defs.resolve_job_def("transform").execute_in_process(instance=instance)
    assert ran.success
    assert fake.runs[0]["tags"]["trigrun/upstream"] == f"Dagster run {ran.run_id} of transform"


def test_secrets_stay_out_of_the_materialization_and_the_instance(
        monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]) -> None:
    from tests.dagster.test_dagster_secrets import CANARY, ENV, _echo, _spec, _stored_bytes

    monkeypatch.setenv(ENV, CANARY)
    with LocalServer() as server, dg.instance_for_test() as instance:
        server.on("POST", "/trigger", _echo(200))
        server.on("GET", "/status/run-1", _echo(200, "success"))
        result = dg.materialize(
            [build_trigrun_asset(_spec(server, "Canary asset"))], instance=instance,
            resources={"trigrun": TrigRunResource(secrets={"canary": dg.EnvVar(ENV)},
                                                  env_secrets_prefix="", dagster_url=UI)})
        assert result.success
        assert server.requests_to("/trigger")[0].headers["authorization"] == f"Bearer {CANARY}"
        (mat,) = materializations(result)
        assert values(mat.metadata)["response"]["you_sent"] == "Bearer ***"
        assert CANARY.encode() not in _stored_bytes(instance)
    out, err = capfd.readouterr()
    assert CANARY not in out + err


def test_delay_seconds_holds_the_fire_after_the_scheduled_time(fake: FakeDagster) -> None:
    wall, mono = time.time(), time.monotonic()
    with dg.instance_for_test() as instance:
        result = dg.materialize([build_trigrun_asset(spec(fake, delay_seconds=2.5))],
                                instance=instance, resources={"trigrun": resource()})
        assert result.success
        record = instance.get_run_record_by_id(result.run_id)
        assert record is not None
        created = record.create_timestamp.timestamp()
    (launch,) = [r for r in fake.server.requests_to("/graphql")
                 if "launchRun" in (r.json() or {}).get("query", "")]
    # A manual run's scheduled time is its creation, to the second (op retries reuse it).
    fired_at = wall + (launch.at - mono)
    assert fired_at - int(created) >= 2.5 - 0.05


def test_a_run_url_that_is_not_http_is_text_not_a_link() -> None:
    # A target's reply is untrusted: a javascript: URL must not become a clickable link in
    # Dagster's UI; it is kept as plain text.
    bad = "javascript:alert(1)"
    with LocalServer() as hook:
        hook.on("POST", "/hook", Reply(200, json={"run": {"id": "r1"}, "url": bad}))
        hook.on("GET", "/runs/r1", Reply(200, json={"state": "success", "url": bad}))
        job = {"name": "Notify", "request": {"url": f"{hook.url}/hook"},
               "wait": {"status_url": f"{hook.url}/runs/{{run_id}}", "run_id_path": "run.id",
                        "status_path": "state", "run_url_path": "url",
                        "poll_interval_seconds": 0.02}}
        result = dg.materialize([build_trigrun_asset(job)], resources={"trigrun": resource()})
    assert result.success
    (mat,) = materializations(result)
    assert isinstance(mat.metadata["run_url"], dg.TextMetadataValue)
    assert values(mat.metadata)["run_url"] == bad
    assert not any(isinstance(v, dg.UrlMetadataValue) for v in mat.metadata.values())
