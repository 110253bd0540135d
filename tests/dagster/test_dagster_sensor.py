"""The completion sensor as Dagster users meet it: called directly with a built context
(Dagster's way to test a sensor), and a failed downstream run made a failed Dagster run.

Real Dagster throughout; the downstream runs are real runs on the live ``dagster_server``.
"""

from __future__ import annotations

import time
from typing import Any

import dagster as dg
import pytest

from tests.dagster.helpers import failure_metadata, output_metadata, values
from tests.dagster.test_dagster_live import config_for, target_spec
from tests.fixtures.dagster_server import DagsterServer
from trigrun.dagster import TrigRunResource, build_trigrun_job, build_trigrun_sensor


def _tick_until_ended(sensor: dg.SensorDefinition, instance: dg.DagsterInstance,
                      resources: dict[str, Any]) -> dg.SensorResult:
    cursor: str | None = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        # Called directly, as Dagster's testing guide does: resources go to the context.
        result = sensor(dg.build_sensor_context(instance=instance, cursor=cursor,
                                                resources=resources))
        assert isinstance(result, dg.SensorResult)
        if result.asset_events:
            return result
        cursor = result.cursor
        time.sleep(0.5)
    raise AssertionError("the sensor never reported the end of the downstream run")


def test_sensor_called_directly_with_a_built_context(instance: dg.DagsterInstance) -> None:
    sensor = build_trigrun_sensor([{
        "name": "direct", "target": {"type": "dagster", "base_url": "http://127.0.0.1:9",
                                     "job_name": "j", "repository_location_name": "l"}}])
    result = sensor(dg.build_sensor_context(instance=instance,
                                            resources={"trigrun": TrigRunResource()}))
    assert isinstance(result, dg.SensorResult)
    assert result.skip_reason is not None
    assert result.skip_reason.skip_message == "no downstream runs pending"


@pytest.mark.integration
def test_failed_downstream_run_becomes_a_failed_dagster_run(
        dagster_server: DagsterServer, instance: dg.DagsterInstance) -> None:
    spec = target_spec(dagster_server, "failing_target_job")
    job = build_trigrun_job(spec, wait_in="sensor")
    sensor = build_trigrun_sensor([spec])
    resources = {"trigrun": TrigRunResource()}
    # The report job comes with the sensor: it loads beside the user's own trigrun job.
    defs = dg.Definitions(jobs=[job], sensors=[sensor], resources=resources)
    report_job = defs.resolve_job_def("trigrun_completion_sensor__downstream_failed")

    fired = job.execute_in_process(run_config=config_for(job), instance=instance,
                                   resources=resources)
    assert fired.success  # it only fired: the failure is downstream
    run_id = values(output_metadata(fired))["run_id"]

    result = _tick_until_ended(sensor, instance, resources)
    (event,) = result.asset_events
    assert values(event.metadata)["state"] == "failed"
    (request,) = result.run_requests
    assert request.job_name == report_job.name
    assert request.run_key == f"{spec.slug}:{run_id}"
    assert request.tags["trigrun/run_id"] == run_id
    assert request.tags["trigrun/state"] == "failed"

    # The requested run fails, carrying the downstream run's end: what alerts react to.
    report = report_job.execute_in_process(run_config=request.run_config, tags=request.tags,
                                           instance=instance, raise_on_error=False)
    assert not report.success
    assert instance.get_run_by_id(report.run_id).status is dg.DagsterRunStatus.FAILURE
    description, md = failure_metadata(report)
    assert run_id in description
    assert "ended failed" in description
    got = values(md)
    assert got["state"] == "failed"
    assert got["run_id"] == run_id
    assert got["run_url"] == f"{dagster_server.base_url}/runs/{run_id}"
    assert got["fired_by_dagster_run"] == fired.run_id


@pytest.mark.integration
def test_successful_downstream_run_requests_no_report(
        dagster_server: DagsterServer, instance: dg.DagsterInstance) -> None:
    spec = target_spec(dagster_server)
    job = build_trigrun_job(spec, wait_in="sensor")
    sensor = build_trigrun_sensor([spec])
    resources = {"trigrun": TrigRunResource()}
    job.execute_in_process(run_config=config_for(job, "2026-04-02T06:00:00+00:00"),
                           instance=instance, resources=resources)
    result = _tick_until_ended(sensor, instance, resources)
    (event,) = result.asset_events
    assert isinstance(event, dg.AssetMaterialization)
    assert list(result.run_requests or []) == []
