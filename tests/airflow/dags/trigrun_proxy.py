"""DAGs for the proxy tests (``tests/airflow/test_proxy.py``): a sync and a deferrable
``TrigRunOperator`` against the downstream Airflow of the ``trigrun_proxy`` connection, which
the tests define (``AIRFLOW_CONN_TRIGRUN_PROXY``, its extra naming the proxy or not)."""

from __future__ import annotations

from datetime import datetime, timezone

from airflow.sdk import DAG

from trigrun.airflow import TrigRunOperator

TARGET = {"type": "airflow", "dag_id": "downstream", "conf": {"via": "proxy"}}

for deferrable in (False, True):
    with DAG(dag_id=f"trigrun_proxy_{'deferrable' if deferrable else 'sync'}", schedule=None,
             start_date=datetime(2024, 1, 1, tzinfo=timezone.utc), catchup=False,
             tags=["trigrun-it"]):
        TrigRunOperator(task_id="trigger", trigrun_conn_id="trigrun_proxy", target=TARGET,
                        deferrable=deferrable, wait_for_completion=True, poll_interval=0.2,
                        timeout=60)
