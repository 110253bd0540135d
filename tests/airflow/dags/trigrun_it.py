"""DAGs the Airflow integration tests run in-process with ``dag.test()``.

They target the live Airflow server of the test session through the ``trigrun_live``
connection, which the tests define (``AIRFLOW_CONN_TRIGRUN_LIVE``): parsing them needs no
server and makes no network call. The in-process run id goes into the target run's ``conf``
(``source``), so a test can count exactly the target runs its own DAG run started.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from airflow.sdk import DAG

from trigrun import TriggerResult
from trigrun.airflow import TrigRunOperator, TrigRunSensor

START = datetime(2024, 1, 1, tzinfo=timezone.utc)
CONN = "trigrun_live"
TARGET = {"type": "airflow", "dag_id": "trigrun_target",
          "conf": {"source": "{{ dag_run.run_id }}", "ds": "{{ ds }}"}}
COMMON: dict[str, Any] = {"schedule": None, "start_date": START, "catchup": False,
                          "tags": ["trigrun-it"]}


class CrashAfterSend(TrigRunOperator):
    """Dies right after the trigger request, before anything is recorded (try 1 only)."""

    def send_trigger(self, context: Any, spec: Any, when: Any) -> TriggerResult:
        result = super().send_trigger(context, spec, when)
        if context["ti"].try_number == 1:
            raise RuntimeError(f"simulated worker crash after starting run {result.run_id}")
        return result


class CrashAfterWait(TrigRunOperator):
    """Fails after the downstream run succeeded, when resumed from the trigger (try 1 only)."""

    def execute_complete(self, context: Any, event: Any, fire_log: Any = None) -> dict[str, Any]:
        if context["ti"].try_number == 1:
            raise RuntimeError("simulated failure after the wait")
        return super().execute_complete(context, event, fire_log)


# trigrun's own template names (scheduled_time, job) and the spec's params render in Airflow.
TEMPLATED = {**TARGET, "conf": {**TARGET["conf"], "when": "{{ scheduled_time }}",
                                "job": "{{ job.name }}", "region": "{{ params.region }}"}}

with DAG(dag_id="trigrun_it_deferrable", **COMMON):
    TrigRunOperator(task_id="trigger", target=TEMPLATED, job_params={"region": "eu"},
                    trigrun_conn_id=CONN, deferrable=True, poll_interval=1, timeout=180)

with DAG(dag_id="trigrun_it_sync", **COMMON):
    TrigRunOperator(task_id="trigger", target=TARGET, trigrun_conn_id=CONN, deferrable=False,
                    poll_interval=1, timeout=180)

# A raw request relative to the connection's base URL, with a header from an Airflow variable.
with DAG(dag_id="trigrun_it_raw", **COMMON):
    TrigRunOperator(
        task_id="trigger",
        spec={"name": "raw request with a canary header", "target": "airflow",
              "request": {"url": "/api/v2/dags/trigrun_target/dagRuns", "method": "POST",
                          "headers": {"X-Trigrun-Canary": "secret://var/trigrun_canary"},
                          "body": {"conf": {"source": "{{ dag_run.run_id }}"}}},
              "wait": {"poll_interval_seconds": 1, "timeout_seconds": 180}},
        trigrun_conn_id=CONN, deferrable=True)

with DAG(dag_id="trigrun_it_retry_gap", **COMMON):
    CrashAfterSend(task_id="trigger", target=TARGET, trigrun_conn_id=CONN, deferrable=True,
                   poll_interval=1, timeout=180, retries=1, retry_delay=timedelta(seconds=1))

with DAG(dag_id="trigrun_it_retry_store", **COMMON):
    CrashAfterWait(task_id="trigger", target=TARGET, trigrun_conn_id=CONN, deferrable=True,
                   poll_interval=1, timeout=180, retries=1, retry_delay=timedelta(seconds=1))

with DAG(dag_id="trigrun_it_failing", **COMMON):
    TrigRunOperator(task_id="trigger", trigrun_conn_id=CONN, deferrable=True, poll_interval=1,
                    timeout=180, retries=2, retry_delay=timedelta(seconds=1),
                    target={"type": "airflow", "dag_id": "trigrun_failing_target",
                            "conf": {"source": "{{ dag_run.run_id }}"}})

# Sensors watch a run started elsewhere; the test passes its id in the run's conf.
WATCH = {"type": "airflow", "dag_id": "trigrun_target"}
for mode, deferrable in (("poke", False), ("deferrable", True)):
    with DAG(dag_id=f"trigrun_it_sensor_{mode}", **COMMON):
        TrigRunSensor(task_id="watch", target=WATCH, trigrun_conn_id=CONN,
                      run_id="{{ dag_run.conf['target_run_id'] }}", deferrable=deferrable,
                      poke_interval=1, timeout=180)
