"""The README's first job, copied as a reader would (only ``base_url`` pointed at the server),
against a live Airflow 3 (tests/fixtures/airflow_server.py): it starts a run of
``nightly_etl`` with the job's conf, which then succeeds."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

import trigrun
from tests.docs._readme import first_jobs_file, pointed_at
from tests.fixtures.airflow_server import AirflowServer
from trigrun._loader import parse_jobs

pytestmark = [pytest.mark.integration, pytest.mark.timeout(400)]

DAG_FILE = Path(__file__).parent / "readme_dags" / "nightly_etl.py"


def test_the_readmes_first_job_starts_a_run_on_airflow_3(
        airflow_server: AirflowServer, monkeypatch: pytest.MonkeyPatch) -> None:
    server = airflow_server
    server.add_dag_file(DAG_FILE)
    server.wait_for_dag("nightly_etl")
    assert server.username == "admin"  # the README's username
    monkeypatch.setenv("TRIGRUN_SECRET_AIRFLOW_PASSWORD", server.password)
    job = parse_jobs(yaml.safe_load(yaml.safe_dump(pointed_at(first_jobs_file(),
                                                              server.base_url))))[0]
    with trigrun.Engine() as engine:
        result = engine.fire(job).raise_for_failure()
        assert result.run_id is not None
        assert not result.adopted
        started = server.dag_run("nightly_etl", result.run_id)
        assert started["conf"]["source"] == "production"
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", started["conf"]["day"])  # {{ ds }} rendered
        run = engine.wait(result, poll_interval=1, timeout=240).raise_for_failure()
    assert run.state is trigrun.RunState.SUCCESS
    assert run.run_url is not None
    assert run.run_url.startswith(f"{server.base_url}/dags/nightly_etl/runs/")
