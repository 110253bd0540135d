"""Partitioned trigrun assets: one downstream run per partition, each with its own date, and a
partition materialized again adopts its run (real ``materialize``; the target is a fake
Airflow 3 REST API that answers 409 on a duplicate ``dag_run_id``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import dagster as dg
import pytest

from tests.helpers.fakes import FakeAirflow
from tests.helpers.httpserver import LocalServer
from trigrun import SpecError
from trigrun.dagster import (
    TrigRunResource,
    build_trigrun_asset,
    build_trigrun_definitions,
)

DAYS = ["2026-03-14", "2026-03-15", "2026-03-16"]


@pytest.fixture
def airflow() -> Iterator[FakeAirflow]:
    with LocalServer() as server:
        yield FakeAirflow(server, states=["running", "success"])


def spec(airflow: FakeAirflow, **extra: Any) -> dict[str, Any]:
    return {"name": "Nightly load", "schedule": {"cron": "0 1 * * *", "timezone": "UTC"},
            "target": {"type": "airflow", "base_url": airflow.base_url, "dag_id": "load",
                       "conf": {"date": "{{ ds }}", "until": "{{ data_interval_end }}",
                                "partition": "{{ partition_key }}"}},
            "wait": {"poll_interval_seconds": 0.05}, **extra}


def materialize(asset: dg.AssetsDefinition, key: str,
                instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    return dg.materialize([asset], partition_key=key, instance=instance,
                          resources={"trigrun": TrigRunResource(
                              dagster_url="https://dagster.example.com")})


def confs(airflow: FakeAirflow) -> list[dict[str, Any]]:
    return [dict(r.body["conf"]) for r in airflow.runs.values()]


def test_daily_partitions_fire_one_run_each_with_its_date_and_rematerializing_adopts(
        airflow: FakeAirflow) -> None:
    asset = build_trigrun_asset(spec(airflow),
                                partitions_def=dg.DailyPartitionsDefinition("2026-03-01"))
    with dg.instance_for_test() as instance:
        for day in DAYS:
            assert materialize(asset, day, instance).success
        assert len(airflow.runs) == 3
        got = sorted((c["date"], c["partition"], c["until"]) for c in confs(airflow))
        assert got == [("2026-03-14", "2026-03-14", "2026-03-15T00:00:00+00:00"),
                       ("2026-03-15", "2026-03-15", "2026-03-16T00:00:00+00:00"),
                       ("2026-03-16", "2026-03-16", "2026-03-17T00:00:00+00:00")]
        # Each run's id is its partition's key: the window's start is the scheduled time.
        ids = sorted(rid for _, rid in airflow.runs)
        assert [i.split("__")[1][:10] for i in ids] == DAYS

        again = materialize(asset, DAYS[1], instance)
        assert again.success
        assert len(airflow.runs) == 3  # adopted, not a fourth run
        md = again.asset_materializations_for_node(again.all_node_events[0].node_name)
        assert md[0].partition == DAYS[1]
        fired = [e for e in again.all_events if e.event_type_value == "ASSET_OBSERVATION"]
        adopted = fired[0].event_specific_data.asset_observation  # type: ignore[union-attr]
        assert adopted.partition == DAYS[1]
        run_id = str(md[0].metadata["run_id"].value)
        assert run_id.split("__")[1][:10] == DAYS[1]
        # The Dagster instance knows all three partitions as materialized.
        status = instance.get_materialized_partitions(asset.key)
        assert status == set(DAYS)


def test_jobs_file_partitions_follow_the_cron_and_end_edge_is_the_tick(
        airflow: FakeAirflow) -> None:
    job = spec(airflow, partitions={"start": "2026-03-01", "time": "end"})
    defs = build_trigrun_definitions([job], resource=TrigRunResource())
    asset = defs.resolve_assets_def(dg.AssetKey(["trigrun", "nightly_load"]))
    parts = asset.partitions_def
    assert isinstance(parts, dg.TimeWindowPartitionsDefinition)
    assert parts.cron_schedule == "0 1 * * *"
    # Dagster's own partitioned schedule: each tick runs the window that just closed.
    (schedule,) = defs.schedules or []
    assert schedule.cron_schedule == "0 1 * * *"  # type: ignore[union-attr]
    with dg.instance_for_test() as instance:
        # The asset alone, built from the same spec, as a program would materialize it.
        assert materialize(build_trigrun_asset(job), "2026-03-14", instance).success
    ((_, rid),) = airflow.runs
    (conf,) = confs(airflow)
    # Window [03-14 01:00, 03-15 01:00): with time 'end' the fire stands for the 03-15 tick,
    # the same key the unpartitioned schedule's tick would have.
    assert conf["date"] == "2026-03-15"
    assert "2026-03-15T01:00:00" in rid


def test_static_partition_key_reaches_templates_and_keys_are_separate_fires(
        airflow: FakeAirflow) -> None:
    job = spec(airflow, partitions={"keys": ["eu", "us"]}, schedule=None)
    job["target"]["conf"] = {"region": "{{ partition_key }}"}
    asset = build_trigrun_asset(job)
    with dg.instance_for_test() as instance:
        for key in ("eu", "us"):
            assert materialize(asset, key, instance).success
    assert sorted(c["region"] for c in confs(airflow)) == ["eu", "us"]
    assert all("__eu__" in rid or "__us__" in rid for _, rid in airflow.runs)


def test_bad_partition_requests_are_refused_before_anything_is_sent(
        airflow: FakeAirflow) -> None:
    with pytest.raises(SpecError, match=r"partitions.start.*schedule.cron"):
        build_trigrun_asset(spec(airflow, schedule=None, partitions={"start": "2026-01-01"}))
    multi = dg.MultiPartitionsDefinition({
        "day": dg.DailyPartitionsDefinition("2026-01-01"),
        "region": dg.StaticPartitionsDefinition(["eu", "us"])})
    with pytest.raises(SpecError, match="multi-dimensional"):
        build_trigrun_asset(spec(airflow), partitions_def=multi)
    with pytest.raises(SpecError, match="executable"):
        build_trigrun_definitions([spec(airflow, partitions={"start": "2026-01-01"})],
                                  assets="external")
    assert airflow.runs == {}


def test_component_partitions_a_job_of_its_jobs_file() -> None:
    from tests.dagster.test_dagster_definitions import _component_defs

    defs = _component_defs({
        "jobs_file": "jobs.yaml",
        "partitions": {"Refresh": {"start": "2026-01-01"}},
        "partition_time": "end",
    }, {"jobs.yaml": """
        - name: Refresh
          schedule: {cron: "15 3 * * *", timezone: Europe/Paris}
          request: {url: "https://api.example.com/refresh/{{ ds }}"}
        - name: Other
          request: {url: "https://api.example.com/other"}
    """})
    refresh = defs.resolve_assets_def(dg.AssetKey(["trigrun", "refresh"]))
    parts = refresh.partitions_def
    assert isinstance(parts, dg.TimeWindowPartitionsDefinition)
    assert (parts.cron_schedule, parts.timezone) == ("15 3 * * *", "Europe/Paris")
    assert parts.get_first_partition_key() == "2026-01-01"
    assert defs.resolve_assets_def(dg.AssetKey(["trigrun", "other"])).partitions_def is None
    with pytest.raises(Exception) as err:  # noqa: PT011 - Dagster wraps the SpecError
        _component_defs({"jobs_file": "jobs.yaml", "partitions": {"Nope": {"keys": ["a"]}}},
                        {"jobs.yaml": "- {name: Refresh, request: {url: 'https://x.example'}}"})
    cause: BaseException | None = err.value
    while cause is not None and not isinstance(cause, SpecError):
        cause = cause.__cause__
    assert cause is not None, err.value
    assert "no job named ['Nope']" in str(cause)


def test_the_partitioned_schedule_runs_the_window_that_just_closed(
        airflow: FakeAirflow) -> None:
    from datetime import datetime, timezone

    defs = build_trigrun_definitions([spec(airflow, partitions={"start": "2026-03-01"})],
                                     resource=TrigRunResource())
    schedule = defs.resolve_schedule_def("nightly_load_schedule")
    tick = datetime(2026, 3, 16, 1, 0, tzinfo=timezone.utc)
    with dg.build_schedule_context(scheduled_execution_time=tick) as context:
        result = schedule.evaluate_tick(context)
    (request,) = result.run_requests or []
    assert request.partition_key == "2026-03-15"


def test_a_static_partition_key_is_data_never_a_template_or_a_secret(
        airflow: FakeAirflow) -> None:
    # Keys may be added by whoever manages the partitions (dynamic ones at run time): a key
    # is sent as written, never evaluated, and a secret:// key never resolves a secret.
    job = spec(airflow, partitions={"keys": ["{{ 7 * 7 }}", "secret://x"]}, schedule=None)
    job["target"]["conf"] = {"region": "{{ partition_key }}"}
    asset = build_trigrun_asset(job)
    secret = "partition-secret-value-5e1d"
    resources = {"trigrun": TrigRunResource(dagster_url="https://dagster.example.com",
                                            secrets={"x": secret})}
    with dg.instance_for_test() as instance:
        assert dg.materialize([asset], partition_key="{{ 7 * 7 }}", instance=instance,
                              resources=resources).success
        assert [c["region"] for c in confs(airflow)] == ["{{ 7 * 7 }}"]
        with pytest.raises(Exception, match=r"secret://x") as err:
            dg.materialize([asset], partition_key="secret://x", instance=instance,
                           resources=resources)
    assert secret not in str(err.value)
    assert len(airflow.runs) == 1  # the secret:// key sent nothing
    assert all(secret not in r.raw() for r in airflow.server.requests)
