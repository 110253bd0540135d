"""The link back on a Dagster run trigrun launched: the target deployment's run-status sensor
writes "Triggered by <upstream>: <url>" into the run's event log (where the run page makes
URLs clickable), with the URL as link metadata; a run trigrun did not start is left alone,
and a tag that is not an http(s) URL is never made a link. Real runs on a real (temporary)
instance; the sensor is evaluated as the daemon would, with the run's STARTED event."""

from __future__ import annotations

import dagster as dg

from trigrun.dagster import build_upstream_link_sensor

UPSTREAM = "Airflow task etl.fire (run manual__2026-03-16T01:00:00+00:00)"
URL = "http://airflow.example.com/dags/etl/runs/manual__2026/tasks/fire"


@dg.op
def work() -> None:
    pass


@dg.job
def target_job() -> None:
    work()


def _evaluate(instance: dg.DagsterInstance, tags: dict[str, str]) -> list[dg.EventLogEntry]:
    result = target_job.execute_in_process(instance=instance, tags=tags)
    run = instance.get_run_by_id(result.run_id)
    assert run is not None
    started = next(e for e in instance.all_logs(run.run_id)
                   if e.dagster_event is not None
                   and e.dagster_event.event_type_value == "PIPELINE_START")
    sensor = build_upstream_link_sensor()
    assert started.dagster_event is not None
    sensor(dg.build_run_status_sensor_context(  # type: ignore[call-arg]
        sensor_name=sensor.name, dagster_event=started.dagster_event,
        dagster_instance=instance, dagster_run=run))
    return [e for e in instance.all_logs(run.run_id)
            if e.dagster_event is not None and e.dagster_event.event_type_value == "ENGINE_EVENT"
            and "Triggered by" in (e.message or "")]


def test_the_sensor_writes_the_clickable_upstream_into_the_runs_event_log() -> None:
    with dg.instance_for_test() as instance:
        (entry,) = _evaluate(instance, {"trigrun/upstream": UPSTREAM,
                                        "trigrun/upstream_url": URL, "user": UPSTREAM})
        assert entry.message == f"Triggered by {UPSTREAM}: {URL}"
        assert entry.dagster_event is not None
        md = entry.dagster_event.engine_event_data.metadata
        assert md["upstream_url"] == dg.MetadataValue.url(URL)
        assert md["upstream"] == dg.MetadataValue.text(UPSTREAM)


def test_runs_not_started_by_trigrun_and_non_http_urls_get_no_link() -> None:
    with dg.instance_for_test() as instance:
        assert _evaluate(instance, {}) == []
        (entry,) = _evaluate(instance, {"trigrun/upstream": "the CLI",
                                        "trigrun/upstream_url": "javascript:alert(1)"})
        assert entry.message == "Triggered by the CLI"
        assert entry.dagster_event is not None
        assert "upstream_url" not in entry.dagster_event.engine_event_data.metadata


def test_the_sensor_watches_every_code_location_and_runs_by_default() -> None:
    sensor = build_upstream_link_sensor()
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    defs = dg.Definitions(jobs=[target_job], sensors=[sensor])
    assert defs.resolve_sensor_def("trigrun_upstream_links") is not None
