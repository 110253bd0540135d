"""DAGs of the live reliability tests (``tests/reliability/test_live_ha.py``), served by the
live Airflow (``AirflowServer.add_dag_file``) only in the sessions that run those tests.

- ``trigrun_rel_ha``: twenty deferrable ``TrigRunOperator`` tasks, each starting one run of
  ``trigrun_parked_target`` (paused: its runs stay queued until the test ends them) with
  ``conf.source`` = ``<run id>/<task id>``, and waiting for it in a triggerer through batched
  polls (every run of one DAG: one listing per interval).
- ``trigrun_rel_scheduler``: three such tasks, and ``hook``, which fires the test's own webhook
  (``dag_run.conf["hook"]``, a local server that holds its reply: the scheduler is killed while
  the task is in the worker between the fire and the defer) and waits for that run.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from airflow.sdk import DAG

from trigrun.airflow import TrigRunOperator

COMMON = {"schedule": None, "start_date": datetime(2024, 1, 1, tzinfo=timezone.utc),
          "catchup": False, "is_paused_upon_creation": False, "tags": ["trigrun-test"],
          # Two task runs at a time (a deferred task does not count: all wait at once). More
          # at once on two cores and SQLite: the live API server's writes (the task's state
          # store, the trigger request) waited a minute for the database's lock, and token
          # requests of the tasks timed out.
          "max_active_tasks": 2}
PARKED = {"type": "airflow", "dag_id": "trigrun_parked_target",
          "conf": {"source": "{{ dag_run.run_id }}/{{ task.task_id }}"}}
HA_TASKS = 20
INTERVAL = 2
# Retries as in production: on a busy two-core machine the live API server sometimes times out
# a task's own calls to it (an XCom push); the retry sends the same idempotency key.
RETRIES = {"retries": 2, "retry_delay": timedelta(seconds=2)}

with DAG(dag_id="trigrun_rel_ha", **COMMON):
    for i in range(HA_TASKS):
        TrigRunOperator(task_id=f"w{i:02d}", target=PARKED, trigrun_conn_id="trigrun_self",
                        deferrable=True, poll_interval=INTERVAL, timeout=600, **RETRIES)

with DAG(dag_id="trigrun_rel_scheduler", **COMMON):
    for i in range(3):
        TrigRunOperator(task_id=f"d{i}", target=PARKED, trigrun_conn_id="trigrun_self",
                        deferrable=True, poll_interval=INTERVAL, timeout=600, **RETRIES)
    # Killed with the scheduler's worker mid-fire: its retry sends the same idempotency key.
    TrigRunOperator(
        task_id="hook", deferrable=True, poll_interval=1, timeout=600, retries=2,
        retry_delay=timedelta(seconds=1),
        spec={"name": "reliability scheduler hook",
              "request": {"url": "{{ dag_run.conf['hook'] }}/trigger", "method": "POST",
                          "body": {"job": "reliability scheduler hook"},
                          "timeout_seconds": 60},
              "wait": {"status_url": "{{ dag_run.conf['hook'] }}/runs/{run_id}",
                       "run_id_path": "run_id", "status_path": "status"}})
