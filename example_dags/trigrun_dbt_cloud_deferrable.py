"""Trigger a dbt Cloud job and wait for it without holding a worker slot.

``TrigRunOperator`` sends the trigger request from the worker, pushes the run id and URL to
XCom (the task's "Downstream run" button links to the dbt Cloud run), then defers to
``TrigRunTrigger``, which polls in the triggerer. Compared with the dbt Cloud provider's
deferrable operator:

- transient 5xx while polling are retried with backoff instead of failing the task;
- the wait has its own deadline (``timeout``), enforced while deferred, and cancels the dbt run
  when it passes (``wait.cancel_on_timeout``);
- marking the deferred task failed in the UI cancels the dbt run (trigger ``on_kill``);
- a retry of the task does not start a second dbt run for the same day: the run's ``cause``
  carries an idempotency key that trigrun looks up before triggering.

The second DAG splits trigger and wait: fire without waiting, then watch the run with a
deferrable ``TrigRunSensor`` - e.g. to do other work in between.

Connection ``dbt_cloud`` (type ``trigrun``): Base URL ``https://cloud.getdbt.com``, no username,
the API token as password.
"""

from __future__ import annotations

from datetime import datetime, timezone

from airflow.sdk import DAG

from trigrun.airflow import TrigRunOperator, TrigRunSensor

DBT_JOB = {"type": "dbt_cloud", "account_id": 12345, "job_id": 67890,
           "cause": "Airflow {{ dag.dag_id }} {{ ds }}"}

with DAG(
    dag_id="trigrun_dbt_cloud_deferrable",
    schedule="0 6 * * *",
    start_date=datetime(2024, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    tags=["trigrun", "example", "dbt"],
    doc_md=__doc__,
):
    TrigRunOperator(
        task_id="dbt_build",
        trigrun_conn_id="dbt_cloud",
        target=DBT_JOB,
        wait={"max_consecutive_poll_errors": 10, "cancel_on_timeout": True},
        deferrable=True,
        poll_interval=30,
        timeout=3 * 3600,
        retries=2,
    )

with DAG(
    dag_id="trigrun_dbt_cloud_fire_then_sense",
    schedule=None,
    start_date=datetime(2024, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    tags=["trigrun", "example", "dbt"],
):
    fire = TrigRunOperator(task_id="fire", trigrun_conn_id="dbt_cloud", target=DBT_JOB,
                           wait_for_completion=False)
    watch = TrigRunSensor(
        task_id="watch",
        trigrun_conn_id="dbt_cloud",
        target=DBT_JOB,
        run_id="{{ ti.xcom_pull(task_ids='fire', key='run_id') }}",
        deferrable=True,
        poke_interval=30,
        timeout=3 * 3600,
    )
    fire >> watch
