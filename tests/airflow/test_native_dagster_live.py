"""An Airflow task fires a job on the live Dagster webserver (``dagster_server``), and the
Dagster run names the task instance that started it: tags ``trigrun/upstream`` (its name) and
``trigrun/upstream_url`` (its page in the Airflow UI, Airflow's own ``ti.log_url``).

The Airflow side is real and in-process (``dag.test()`` of
``tests/airflow/dags/trigrun_native.py``, the test session's metadata database); the Dagster
side is the session's live webserver, launching a real run."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.airflow._live import task_instance, xcoms
from tests.conftest import AIRFLOW_TEST_DAGS
from tests.fixtures.dagster_server import DagsterServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
DAG_ID = "trigrun_native_to_dagster"


def test_an_airflow_task_fires_a_dagster_job_whose_run_names_the_task_instance(
        airflow_db: Any, dagster_server: DagsterServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("AIRFLOW_CONN_TRIGRUN_NATIVE_DAGSTER", json.dumps({
        "conn_type": "trigrun", "host": dagster_server.base_url}))
    bag = DagBag(dag_folder=str(AIRFLOW_TEST_DAGS / "trigrun_native.py"))
    assert not bag.import_errors, bag.import_errors
    dr = bag.dags[DAG_ID].test()
    assert dr.state == "success"
    got = xcoms(dr, "fire")
    ti = task_instance(dr, "fire")
    run = dagster_server.run(got["run_id"])
    assert run is not None
    assert run["status"] == "SUCCESS"
    assert run["tags"]["trigrun/upstream"] == f"Airflow task {DAG_ID}.fire (run {dr.run_id})"
    assert run["tags"]["trigrun/upstream_url"] == ti.log_url
    # What the Runs list shows as "Launched by" (docs/upstream.md).
    assert run["tags"]["user"] == run["tags"]["trigrun/upstream"]
    assert f"/dags/{DAG_ID}/runs/" in ti.log_url
    # The link is the Dagster run's page, stored under trigrun's one link key.
    assert got["_link_TrigRunLink"] == got["run_url"]
    assert got["run_url"].startswith(f"{dagster_server.base_url}/runs/")
