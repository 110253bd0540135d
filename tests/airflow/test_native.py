"""What makes trigrun native in Airflow, checked offline with Airflow's own serializer, DagBag
and ``dag.test()``: links named for the target, job queues as pools, job assets, the
connection's requests-per-second ceiling, the upstream passed to the downstream run."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.airflow_versions import needs_airflow
from tests.helpers.httpserver import LocalServer, Reply
from trigrun import SpecError

START = datetime(2024, 1, 1, tzinfo=timezone.utc)
DAGSTER = {"type": "dagster", "base_url": "http://dagster.example.com", "job_name": "j",
           "repository_location_name": "loc"}
AIRFLOW = {"type": "airflow", "base_url": "http://airflow.example.com", "dag_id": "t"}
DBT = {"type": "dbt_cloud", "base_url": "https://cloud.getdbt.com", "account_id": 1,
       "job_id": 2}
PREFECT = {"type": "prefect", "base_url": "http://prefect.example.com/api",
           "deployment_id": "d"}


def _serialized_links(dag: Any) -> dict[str, Any]:
    from tests.helpers.airflow_versions import DagSerialization

    tasks = DagSerialization.to_dict(dag)["dag"]["tasks"]
    return {t["__var"]["task_id"]: t["__var"].get("_operator_extra_links") for t in tasks}


def test_the_link_is_named_for_the_target_in_the_serialized_dag() -> None:
    from airflow.sdk import DAG

    from trigrun.airflow import TrigRunOperator, TrigRunSensor

    with DAG("links", schedule=None, start_date=START) as dag:
        TrigRunOperator(task_id="dagster", target=DAGSTER)
        TrigRunOperator(task_id="airflow", target=AIRFLOW)
        TrigRunOperator(task_id="dbt", target=DBT)
        TrigRunOperator(task_id="prefect", target=PREFECT)
        TrigRunOperator(task_id="raw_airflow", method="POST", body={"conf": {}},
                        url="http://a.example.com/api/v2/dags/t/dagRuns")
        TrigRunOperator(task_id="webhook", url="https://hooks.example.com/x")
        TrigRunOperator.partial(task_id="mapped", target=AIRFLOW).expand(
            job_params=[{"a": 1}, {"a": 2}])
        # The target is only known at run time: the generic name, on the same XCom key.
        TrigRunOperator.partial(task_id="mapped_target").expand(target=[AIRFLOW, DAGSTER])
        TrigRunSensor(task_id="sensor", run_id="1", target=DAGSTER)
    key = "_link_TrigRunLink"
    assert _serialized_links(dag) == {
        "dagster": {"Dagster run": key}, "airflow": {"Airflow run": key},
        "dbt": {"dbt Cloud run": key}, "prefect": {"Prefect run": key},
        "raw_airflow": {"Airflow run": key}, "webhook": {"Downstream run": key},
        "mapped": {"Airflow run": key}, "mapped_target": {"Downstream run": key},
        "sensor": {"Dagster run": key}}


def test_every_link_class_is_registered_by_the_provider() -> None:
    from airflow.providers_manager import ProvidersManager

    names = ProvidersManager().extra_links_class_names
    for cls in ("TrigRunLink", "AirflowRunLink", "DagsterRunLink", "DbtCloudRunLink",
                "PrefectRunLink"):
        assert f"trigrun.airflow.links.{cls}" in names


def test_a_job_queue_is_the_tasks_pool_and_an_explicit_pool_wins() -> None:
    from airflow.sdk import DAG

    from trigrun.airflow import TrigRunOperator

    queue = {"name": "dbt_cloud", "concurrency_limit": 2}
    with DAG("pools", schedule=None, start_date=START):
        by_arg = TrigRunOperator(task_id="a", target=DBT, job_queue=queue)
        by_spec = TrigRunOperator(task_id="b", spec={"target": DBT, "queue": queue})
        own = TrigRunOperator(task_id="c", target=DBT, job_queue=queue, pool="mine",
                              pool_slots=3)
        plain = TrigRunOperator(task_id="d", target=DBT)
    assert (by_arg.pool, by_arg.pool_slots) == ("dbt_cloud", 1)
    assert (by_spec.pool, by_spec.pool_slots) == ("dbt_cloud", 1)
    assert (own.pool, own.pool_slots) == ("mine", 3)
    assert plain.pool == "default_pool"
    with pytest.raises(SpecError, match="job_queue="):
        TrigRunOperator(task_id="e", target=DBT, queue={"name": "x"})


def test_a_mapped_task_gets_its_pool_and_asset_where_the_scheduler_reads_them() -> None:
    from airflow.sdk import DAG, TaskGroup

    from trigrun.airflow import TrigRunOperator, job_asset

    queue = {"name": "dbt_cloud", "concurrency_limit": 2}
    with DAG("mapped_native", schedule=None, start_date=START) as dag:
        named = TrigRunOperator.partial(task_id="a", target=DBT, job_queue=queue,
                                        job_name="many", emit_asset=True).expand(
            job_params=[{"x": 1}, {"x": 2}])
        with TaskGroup("g"):
            default = TrigRunOperator.partial(task_id="b", spec={"target": DBT, "queue": queue},
                                              emit_asset=True).expand(job_params=[{"x": 1}])
        expanded = TrigRunOperator.partial(task_id="c", job_queue=queue).expand(
            target=[DBT])
    assert (named.partial_kwargs["pool"], named.partial_kwargs["pool_slots"]) == ("dbt_cloud", 1)
    assert named.partial_kwargs["outlets"] == [job_asset("many")]
    assert default.partial_kwargs["pool"] == "dbt_cloud"
    assert default.partial_kwargs["outlets"] == [job_asset("mapped_native.g.b")]
    assert expanded.partial_kwargs["pool"] == "dbt_cloud"
    from tests.helpers.airflow_versions import DagSerialization

    tasks = {t["__var"]["task_id"]: t["__var"]
             for t in DagSerialization.to_dict(dag)["dag"]["tasks"]}
    assert tasks["a"]["partial_kwargs"]["pool"] == "dbt_cloud"


def test_emit_asset_adds_the_jobs_asset_to_the_outlets() -> None:
    from airflow.sdk import DAG, Asset

    from trigrun.airflow import TrigRunOperator, job_asset

    mine = Asset("s3://bucket/report")
    with DAG("assets", schedule=None, start_date=START):
        named = TrigRunOperator(task_id="a", target=DBT, job_name="Nightly dbt build",
                                emit_asset=True, outlets=[mine])
        default = TrigRunOperator(task_id="b", target=DBT, emit_asset=True)
        off = TrigRunOperator(task_id="c", target=DBT)
    asset = job_asset("Nightly dbt build")
    assert (asset.name, asset.uri, asset.group) == (
        "trigrun/nightly_dbt_build", "trigrun://job/nightly_dbt_build", "trigrun")
    assert named.outlets == [mine, asset]
    assert default.outlets == [job_asset("assets.b")]
    assert off.outlets == []
    with pytest.raises(SpecError, match="emit_asset=True needs a job name"):
        TrigRunOperator(task_id="d", target=DBT, job_name="{{ params.x }}", emit_asset=True)


def test_dags_from_specs_gives_each_job_its_asset_pool_and_delay(tmp_path: Path) -> None:
    from trigrun.airflow import dags_from_specs, job_asset

    jobs = [{"name": "Extract", "target": DBT, "queue": {"name": "dbt", "concurrency_limit": 2},
             "delay_seconds": 5},
            {"name": "Load", "target": PREFECT}]
    path = tmp_path / "jobs.json"
    path.write_text(json.dumps({"jobs": jobs}))
    dags = dags_from_specs(path)
    extract = dags["trigrun_extract"].get_task("trigger")
    load = dags["trigrun_load"].get_task("trigger")
    assert extract.outlets == [job_asset("Extract")]
    assert (extract.pool, extract.pool_slots) == ("dbt", 1)
    assert extract.spec["delay_seconds"] == 5
    assert load.outlets == [job_asset("Load")]
    assert load.pool == "default_pool"
    off = dags_from_specs(path, dag_id_prefix="quiet_", emit_assets=False)
    assert off["quiet_extract"].get_task("trigger").outlets == []


def test_queue_pools_lists_the_pools_a_jobs_file_needs(tmp_path: Path) -> None:
    from trigrun.airflow import queue_pools

    jobs = [{"name": "a", "target": DBT, "queue": {"name": "dbt", "concurrency_limit": 2}},
            {"name": "b", "target": DBT, "queue": {"name": "dbt", "concurrency_limit": 2}},
            {"name": "c", "target": PREFECT, "queue": {"name": "free"}},
            {"name": "d", "target": PREFECT}]
    path = tmp_path / "jobs.json"
    path.write_text(json.dumps({"jobs": jobs}))
    assert queue_pools(path) == {"dbt": 2, "free": -1}


# -- the connection's requests-per-second ceiling -----------------------------------------------

@pytest.fixture
def rate_conn(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalServer]:
    with LocalServer() as srv:
        srv.on("POST", "/hook", Reply(200, json={"ok": True}))
        monkeypatch.setenv("AIRFLOW_CONN_TRIGRUN_RATED", json.dumps({
            "conn_type": "trigrun", "host": srv.url,
            "extra": {"max_requests_per_second": 4}}))
        yield srv


def test_the_connections_max_requests_per_second_paces_the_hooks_engine(
        rate_conn: LocalServer) -> None:
    from trigrun.airflow import TrigRunHook

    hook = TrigRunHook(trigrun_conn_id="trigrun_rated")
    info = hook.connection_info()
    assert info is not None
    assert info.rates() == {rate_conn.url: 4.0}
    spec = hook.apply({"name": "rated", "request": {"url": "/hook", "method": "POST"},
                       "idempotency": {"enabled": False}})
    with hook.engine() as engine:
        for _ in range(5):
            assert engine.fire(spec).ok
    times = [r.at for r in rate_conn.requests_to("/hook")]
    assert len(times) == 5
    # 4 per second: 0.75 s from the second to the fifth; unpaced, they take ~0.05 s. The
    # first is a warm-up: its arrival also carries the client's and the connection's set-up.
    paced = times[1:]
    assert paced[-1] - paced[0] >= 0.6, [b - a for a, b in itertools.pairwise(times)]


def test_a_bad_max_requests_per_second_names_the_connection_and_field(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from trigrun.airflow import TrigRunHook

    monkeypatch.setenv("AIRFLOW_CONN_TRIGRUN_BADRATE", json.dumps({
        "conn_type": "trigrun", "host": "http://x.example.com",
        "extra": {"max_requests_per_second": "fast"}}))
    with pytest.raises(SpecError, match=r"'trigrun_badrate'.*max_requests_per_second='fast'"):
        TrigRunHook(trigrun_conn_id="trigrun_badrate").connection_info()


@needs_airflow(3, 2, "the declarative connection form (conn-fields)")
def test_the_connection_form_shows_max_requests_per_second() -> None:
    from airflow.providers_manager import ProvidersManager

    widgets = ProvidersManager().connection_form_widgets
    assert "extra__trigrun__max_requests_per_second" in widgets


def test_triggers_share_the_ceiling_on_the_loops_engine() -> None:
    from trigrun.airflow.triggers import TrigRunTrigger, _apply_rates, _Lease

    trigger = TrigRunTrigger(spec={"name": "x", "url": "http://h:1/x"}, run_id="1",
                             end_time=time.time() + 10, poll_interval=1,
                             rates={"http://h:1": 2.0})
    _, kwargs = trigger.serialize()
    assert kwargs["rates"] == {"http://h:1": 2.0}
    assert TrigRunTrigger(**kwargs).rates == {"http://h:1": 2.0}

    async def main() -> tuple[float, float]:
        async with _Lease() as engine, _Lease() as same:
            assert engine is same
            _apply_rates(engine, kwargs["rates"])
            _apply_rates(same, {"http://h:1": 10.0})  # the lowest ceiling wins
            return engine._limit_of("http://h:1").gap, engine._limit_of("http://other").gap

    assert asyncio.run(main()) == (0.5, 0.0)


def test_openlineage_facets_need_the_openlineage_provider() -> None:
    pytest.importorskip(
        "airflow.providers.openlineage",
        reason="apache-airflow-providers-openlineage is not installed: trigrun's OpenLineage "
               "facets are only built when it is")
    from airflow.sdk import DAG

    from trigrun.airflow import TrigRunOperator

    with DAG("ol", schedule=None, start_date=START):
        op = TrigRunOperator(task_id="a", target=DAGSTER)
    os.environ.setdefault("OPENLINEAGE_DISABLED", "false")
    facets = op.get_openlineage_facets_on_complete(None)
    assert facets.outputs
    assert facets.outputs[0].namespace.startswith("http://dagster")


# -- delay and upstream, through dag.test() against the REST fake ------------------------------

@pytest.fixture
def fake_airflow(airflow_db: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from tests.helpers.fakes import FakeAirflow

    with LocalServer() as srv:
        monkeypatch.setenv("AIRFLOW_CONN_TRIGRUN_NATIVE_FAKE",
                           json.dumps({"conn_type": "trigrun", "host": srv.url}))
        yield FakeAirflow(srv, states=["success"])


@pytest.mark.parametrize("mode", ["worker", "deferred"])
def test_the_fire_waits_for_delay_seconds_after_the_scheduled_time_and_names_the_task(
        fake_airflow: Any, mode: str) -> None:
    from tests.airflow._live import task_instance
    from tests.conftest import AIRFLOW_TEST_DAGS
    from tests.helpers.airflow_versions import DagBag

    bag = DagBag(dag_folder=str(AIRFLOW_TEST_DAGS / "trigrun_native.py"))
    assert not bag.import_errors, bag.import_errors
    dag_id = f"trigrun_native_delay_{mode}"
    dr = bag.dags[dag_id].test(logical_date=None)
    assert dr.state == "success"
    posts = [r for r in fake_airflow.server.requests if r.method == "POST"]
    assert len(posts) == 1
    sent = datetime.now(timezone.utc).timestamp() - (time.monotonic() - posts[0].at)
    # A 2 s delay is slept in the worker by a deferrable task too (under 6 s left); the live
    # test (test_native_live.py) shows a longer one deferred on a timer.
    assert sent - dr.run_after.timestamp() >= 2.0
    # The downstream run is told who started it: the note and conf name the task instance.
    body = posts[0].json()
    ti = task_instance(dr)
    assert f"Airflow task {dag_id}.trigger (run {dr.run_id})" in body["note"]
    assert ti.log_url in body["note"]
    assert ti.log_url in json.dumps(body["conf"]["trigrun"])
