"""From Dagster to a live Airflow 3 API server: REST ``/api/v2`` with a JWT from
``/auth/token``, the gap dagster-airlift leaves (it speaks only Airflow 2's ``/api/v1``). The
DAG run's note names the Dagster run that started it, with its URL."""

from __future__ import annotations

import json
import uuid
from urllib.parse import quote

import dagster as dg
import pytest

from tests.dagster.helpers import output_metadata, run_logs, values
from tests.fixtures.airflow_server import AirflowServer
from trigrun import JobSpec
from trigrun.dagster import TrigRunResource, asset_key_for, build_trigrun_job, op_name_for

pytestmark = pytest.mark.integration
PASSWORD_ENV = "TRIGRUN_TEST_AIRFLOW_PASSWORD"


def test_dagster_job_triggers_an_airflow_3_dag_waits_and_adopts_on_repeat(
        airflow_server: AirflowServer, instance: dg.DagsterInstance,
        monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]) -> None:
    airflow_server.wait_for_dag("trigrun_target")
    monkeypatch.setenv(PASSWORD_ENV, airflow_server.password)
    spec = {
        "name": f"Dagster to Airflow {uuid.uuid4().hex[:8]}",
        "target": {"type": "airflow", "base_url": airflow_server.base_url,
                   "dag_id": "trigrun_target", "conf": {"date": "{{ ds }}"}},
        "auth": {"type": "airflow_password", "username": airflow_server.username,
                 "password": "secret://airflow-password"},
        "wait": {"poll_interval_seconds": 1, "timeout_seconds": 240},
    }
    job = build_trigrun_job(spec)
    resource = TrigRunResource(secrets={"airflow-password": dg.EnvVar(PASSWORD_ENV)},
                               dagster_url="http://dagster.example.com:3000")
    run_config = {"ops": {op_name_for(job.name): {"config": {
        "scheduled_time": "2026-06-01T01:00:00+00:00"}}}}

    result = job.execute_in_process(run_config=run_config, instance=instance,
                                    resources={"trigrun": resource})

    assert result.success
    raw_md = output_metadata(result)
    md = values(raw_md)
    assert md["state"] == "success"
    assert md["status_code"] == 200
    assert md["target"] == "airflow"
    dag_run_id = md["run_id"]
    assert md["run_url"] == (f"{airflow_server.base_url}/dags/trigrun_target/runs/"
                             f"{quote(dag_run_id, safe='')}")
    assert isinstance(raw_md["run_url"], dg.UrlMetadataValue)
    # Airflow itself says the run succeeded, with the rendered conf.
    run = airflow_server.dag_run("trigrun_target", dag_run_id)
    assert run["state"] == "success"
    # The DAG run's note names the Dagster run that started it and links to its page; the
    # same is in conf for the DAG's own code.
    link = f"http://dagster.example.com:3000/runs/{result.run_id}"
    name = f"Dagster run {result.run_id} of {job.name}"
    assert run["note"] == f"Triggered by {name}: {link}"
    assert run["conf"] == {"date": "2026-06-01", "trigrun": {
        "upstream": name, "upstream_url": link, "kind": "dagster"}}
    mats = result.asset_materializations_for_node(op_name_for(job.name))
    assert [m.asset_key for m in mats] == [asset_key_for(JobSpec.model_validate(spec))]

    # The same scheduled fire again: Airflow answers 409 and trigrun adopts the run.
    again = job.execute_in_process(run_config=run_config, instance=instance,
                                   resources={"trigrun": resource})
    assert again.success
    md2 = values(output_metadata(again))
    assert (md2["run_id"], md2["adopted"], md2["status_code"]) == (dag_run_id, True, 409)
    assert [r["dag_run_id"] for r in airflow_server.dag_runs("trigrun_target")].count(
        dag_run_id) == 1

    # The Airflow password, given through EnvVar, is in no log and no metadata.
    out, err = capfd.readouterr()
    password = airflow_server.password
    assert password not in out + err
    for r in (result, again):
        assert password not in run_logs(instance, r.run_id)
        assert password not in json.dumps(values(output_metadata(r)), default=str)
