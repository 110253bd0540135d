"""A DAG whose scalar arguments are templates (issue 13): rendered ``"0.2"``, ``"true"``,
``"30s"`` and a templated connection id and job name must work. Kept in a file of its own:
before templated scalars were supported, this DAG failed to parse.
"""

from __future__ import annotations

from datetime import datetime, timezone

from airflow.sdk import DAG

from trigrun.airflow import TrigRunOperator

START = datetime(2024, 1, 1, tzinfo=timezone.utc)
CONN = "trigrun_local"
COMMON = {"schedule": None, "start_date": START, "catchup": False, "tags": ["trigrun-edge"]}

with DAG(dag_id="edge_templated_args",
         params={"conn": CONN, "interval": "0.2", "wait": "true", "deadline": "30s",
                 "name": "templated job"}, **COMMON):
    TrigRunOperator(task_id="trigger", trigrun_conn_id="{{ params.conn }}",
                    poll_interval="{{ params.interval }}", timeout="{{ params.deadline }}",
                    wait_for_completion="{{ params.wait }}", job_name="{{ params.name }}",
                    deferrable=False,
                    target={"type": "airflow", "dag_id": "target",
                            "conf": {"job": "{{ job.name }}"}})
