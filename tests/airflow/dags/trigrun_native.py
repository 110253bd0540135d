"""DAGs the "native in Airflow" tests run in-process with ``dag.test()``.

``trigrun_native_to_dagster`` fires ``trigrun_target_job`` on the live Dagster webserver of the
test session, whose URL the test puts in connection ``trigrun_native_dagster``
(``AIRFLOW_CONN_TRIGRUN_NATIVE_DAGSTER``): parsing needs no server.
"""

from __future__ import annotations

from datetime import datetime, timezone

from airflow.sdk import DAG

from trigrun.airflow import TrigRunOperator

COMMON = {"schedule": None, "start_date": datetime(2024, 1, 1, tzinfo=timezone.utc),
          "catchup": False, "tags": ["trigrun-it"]}

with DAG(dag_id="trigrun_native_to_dagster", **COMMON):
    TrigRunOperator(task_id="fire", trigrun_conn_id="trigrun_native_dagster", deferrable=False,
                    poll_interval=0.5, timeout=120,
                    target={"type": "dagster", "job_name": "trigrun_target_job",
                            "repository_location_name": "trigrun_target",
                            "run_config": {"ops": {"target_op": {"config": {
                                "ds": "{{ ds }}"}}}}})

# Against the REST fake of tests/helpers/fakes.py (connection `trigrun_native_fake`, set by the
# test): a 2 s delay, slept in the worker, by a deferrable task too (less than 6 s are left).
FAKE = {"type": "airflow", "dag_id": "target", "conf": {"source": "{{ dag_run.run_id }}"}}
for mode, deferrable in (("worker", False), ("deferred", True)):
    with DAG(dag_id=f"trigrun_native_delay_{mode}", **COMMON):
        TrigRunOperator(task_id="trigger", trigrun_conn_id="trigrun_native_fake",
                        deferrable=deferrable, delay_seconds="2s", wait_for_completion=False,
                        target=FAKE)
