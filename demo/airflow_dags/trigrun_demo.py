"""The demo's Airflow side (served by the Airflow that `make demo` starts).

- ``warehouse_load``: the downstream DAG the Dagster side triggers over REST v2.
- ``refresh_dashboards_via_dagster``: a deferrable ``TrigRunOperator`` that launches the
  Dagster job ``refresh_dashboards`` over GraphQL and waits for it in the triggerer.
"""

from __future__ import annotations

import os
import time
from datetime import datetime, timezone

from airflow.sdk import DAG, task

from trigrun.airflow import TrigRunOperator

DAGSTER_URL = os.environ.get("TRIGRUN_DEMO_DAGSTER_URL", "http://127.0.0.1:3000")
COMMON = {"schedule": None, "start_date": datetime(2026, 1, 1, tzinfo=timezone.utc),
          "catchup": False, "is_paused_upon_creation": False, "tags": ["trigrun-demo"]}

with DAG(dag_id="warehouse_load", **COMMON):

    @task
    def load(**context: object) -> str:
        time.sleep(3)  # stands in for the real load
        conf = getattr(context.get("dag_run"), "conf", None) or {}
        return f"loaded day {conf.get('day', '?')}"

    load()

with DAG(dag_id="refresh_dashboards_via_dagster", **COMMON):
    TrigRunOperator(
        task_id="refresh_dashboards",
        spec={
            "name": "Refresh dashboards (Dagster)",
            "target": {"type": "dagster", "base_url": DAGSTER_URL,
                       "job_name": "refresh_dashboards",
                       "repository_location_name": "trigrun_demo",
                       "run_config": {"ops": {"refresh": {"config": {"day": "{{ ds }}"}}}}},
        },
        wait_for_completion=True,
        deferrable=True,
        poll_interval=2,
        timeout=600,
        retries=0,
    )
