"""The DAG the README's first job triggers (``nightly_etl``), for tests/docs/test_readme_live.py:
it records the conf it was started with and succeeds."""

from __future__ import annotations

from datetime import datetime, timezone

from airflow.sdk import DAG, task

with DAG(dag_id="nightly_etl", schedule=None, start_date=datetime(2024, 1, 1, tzinfo=timezone.utc),
         catchup=False, is_paused_upon_creation=False, tags=["trigrun-test"]):

    @task(retries=0)
    def load(**context: object) -> dict:
        return dict(getattr(context["dag_run"], "conf", None) or {})

    load()
