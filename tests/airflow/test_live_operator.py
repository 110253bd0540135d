"""TrigRunOperator and TrigRunSensor against a live Airflow 3 server (REST v2, JWT), run
in-process with ``dag.test()``. Nothing of Airflow is mocked."""

from __future__ import annotations

import json
from datetime import datetime
from urllib.parse import quote

import pytest

from tests.airflow._live import Live, run_dag, task_instance, task_logs, xcoms
from tests.conftest import AIRFLOW_TEST_HOME

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]


def _run_url(live: Live, dag_id: str, run_id: str) -> str:
    return f"{live.server.base_url}/dags/{dag_id}/runs/{quote(run_id, safe='')}"


def test_deferrable_operator_triggers_once_and_waits_in_the_triggerer(live: Live) -> None:
    dr = run_dag("trigrun_it_deferrable")
    assert dr.state == "success"
    got = xcoms(dr)
    runs = live.target_runs(dr.run_id)
    assert len(runs) == 1, runs  # exactly one downstream run
    assert runs[0]["state"] == "success"
    assert got["run_id"] == runs[0]["dag_run_id"]
    assert got["run_url"] == _run_url(live, "trigrun_target", got["run_id"])
    # Airflow's Jinja rendered the spec with the task context, trigrun's names and params.
    conf = runs[0]["conf"]
    assert conf["ds"] == dr.logical_date.strftime("%Y-%m-%d")
    assert conf["when"] == dr.logical_date.isoformat()
    assert conf["job"] == "trigrun_it_deferrable.trigger"  # the default job name
    assert conf["region"] == "eu"
    # The target run id is the idempotency key of (job name, logical date): never the try.
    from trigrun import JobSpec, idempotency_key
    from trigrun._targets.airflow import dag_run_id

    job = JobSpec(name="trigrun_it_deferrable.trigger", request={"url": "https://x/y"})
    assert got["run_id"] == dag_run_id(idempotency_key(job, dr.logical_date))
    log = got["return_value"]
    assert log["ok"] is True
    assert log["status"] == 200
    assert log["run_id"] == got["run_id"]
    assert log["wait"]["status"] == "success"
    assert log["wait"]["waited_in"] == "triggerer"
    # The link's URL was stored by the task runner from the XCom pushed before deferring.
    assert got["_link_TrigRunLink"] == got["run_url"]


def test_sync_operator_waits_in_the_worker(live: Live) -> None:
    from tests.airflow._live import _bag

    # A run without a logical date (Airflow 3): the scheduled time is its run_after.
    dr = _bag().dags["trigrun_it_sync"].test(logical_date=None)
    assert dr.state == "success"
    assert dr.logical_date is None
    got = xcoms(dr)
    runs = live.target_runs(dr.run_id)
    assert [r["dag_run_id"] for r in runs] == [got["run_id"]]
    assert got["return_value"]["wait"]["waited_in"] == "worker"
    assert got["return_value"]["wait"]["state"] == "success"
    assert datetime.fromisoformat(got["return_value"]["scheduled_time"]) == dr.run_after


def test_no_secret_reaches_xcom_rendered_fields_or_logs(
        live: Live, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    """A raw request relative to the connection's URL, a header from an Airflow variable."""
    from airflow.models.renderedtifields import RenderedTaskInstanceFields

    dr = run_dag("trigrun_it_raw")
    assert dr.state == "success"
    got = xcoms(dr)
    assert len(live.target_runs(dr.run_id)) == 1
    ti = task_instance(dr)
    rendered = RenderedTaskInstanceFields.get_templated_fields(ti)
    assert rendered["spec"]["request"]["headers"]["X-Trigrun-Canary"] == \
        "secret://var/trigrun_canary"
    out, err = capfd.readouterr()
    places = {"xcom": json.dumps(got, default=str), "rendered fields": json.dumps(rendered),
              "stdout": out, "stderr": err, "log records": caplog.text,
              "log files": task_logs(AIRFLOW_TEST_HOME)}
    assert "attempt 1: HTTP 200" in out + err + caplog.text  # the logs were captured
    for secret in live.secrets:
        for where, text in places.items():
            assert secret not in text, f"a secret value leaked into {where}"


def test_failed_downstream_run_fails_the_task_without_retrying(live: Live) -> None:
    dr = run_dag("trigrun_it_failing")
    assert dr.state == "failed"
    ti = task_instance(dr)
    assert ti.state == "failed"
    assert ti.try_number == 1  # retries=2, but a retry would adopt the same failed run
    runs = live.target_runs(dr.run_id, "trigrun_failing_target")
    assert len(runs) == 1
    assert runs[0]["state"] == "failed"


@pytest.mark.parametrize("mode", ["poke", "deferrable"])
def test_sensor_waits_for_an_existing_run(live: Live, mode: str) -> None:
    started = live.server.trigger("trigrun_target", conf={"source": f"sensor-{mode}"})
    from airflow.dag_processing.dagbag import DagBag

    from tests.airflow._live import IT_DAGS

    dag = DagBag(dag_folder=str(IT_DAGS)).dags[f"trigrun_it_sensor_{mode}"]
    dr = dag.test(run_conf={"target_run_id": started["dag_run_id"]})
    assert dr.state == "success"
    assert live.server.dag_run("trigrun_target", started["dag_run_id"])["state"] == "success"
    got = xcoms(dr, "watch")
    assert got["run_url"] == _run_url(live, "trigrun_target", started["dag_run_id"])
    if mode == "deferrable":
        assert got["return_value"]["status"] == "success"
        assert got["return_value"]["run_id"] == started["dag_run_id"]
