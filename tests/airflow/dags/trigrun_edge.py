"""DAGs for the paths users take outside the happy one (issue 13): mapped tasks, run conf that
names a secret, clearing after a failed downstream run, runs without a logical date,
templated scalar arguments, a missing secret.

They target a fake Airflow REST API on a local port through connection ``trigrun_local``,
which the tests define (``AIRFLOW_CONN_TRIGRUN_LOCAL``): parsing needs no server. The
orchestrating Airflow is real (``dag.test()``).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from airflow.sdk import DAG, task

from trigrun.airflow import TrigRunOperator, TrigRunSensor

START = datetime(2024, 1, 1, tzinfo=timezone.utc)
CONN = "trigrun_local"
COMMON: dict[str, Any] = {"schedule": None, "start_date": START, "catchup": False,
                          "tags": ["trigrun-edge"]}
RUNS = "/api/v2/dags/{dag}/dagRuns"


def _conf(i: int) -> dict[str, Any]:
    return {"i": i, "source": "{{ dag_run.run_id }}", "when": "{{ scheduled_time }}",
            "job": "{{ job.name }}"}


# -- dynamic task mapping: one fire per mapped instance, whatever is mapped -------------------
with DAG(dag_id="edge_mapped_target", **COMMON):
    TrigRunOperator.partial(task_id="m", trigrun_conn_id=CONN, wait_for_completion=False).expand(
        target=[{"type": "airflow", "dag_id": "target", "conf": _conf(i)} for i in range(3)])

with DAG(dag_id="edge_mapped_plain", **COMMON):
    # No trigrun names in the templates: only the keys can keep the fires apart.
    TrigRunOperator.partial(task_id="m", trigrun_conn_id=CONN, wait_for_completion=False).expand(
        target=[{"type": "airflow", "dag_id": "target",
                 "conf": {"i": i, "source": "{{ dag_run.run_id }}"}} for i in range(3)])

with DAG(dag_id="edge_mapped_body", **COMMON):
    TrigRunOperator.partial(task_id="m", trigrun_conn_id=CONN, wait_for_completion=False,
                            url=RUNS.format(dag="target"), method="POST",
                            target="airflow").expand(body=[{"conf": _conf(i)} for i in range(3)])

with DAG(dag_id="edge_mapped_url", **COMMON):
    # Three DAGs of one deployment; every instance names the same (templated) job.
    TrigRunOperator.partial(task_id="m", trigrun_conn_id=CONN, wait_for_completion=False,
                            method="POST", target="airflow", job_name="one job",
                            body={"conf": _conf(-1)}).expand(
        url=[RUNS.format(dag=f"target{i}") for i in range(3)])

with DAG(dag_id="edge_mapped_spec", **COMMON):
    # Three specs with one name: the map index still keeps the fires apart.
    TrigRunOperator.partial(task_id="m", trigrun_conn_id=CONN, wait_for_completion=False).expand(
        spec=[{"name": "same name", "target": {"type": "airflow", "dag_id": "target",
                                               "conf": _conf(i)}} for i in range(3)])

with DAG(dag_id="edge_mapped_kwargs", **COMMON):
    TrigRunOperator.partial(task_id="m", trigrun_conn_id=CONN,
                            wait_for_completion=False).expand_kwargs(
        [{"target": {"type": "airflow", "dag_id": "target", "conf": _conf(i)}}
         for i in range(3)])

with DAG(dag_id="edge_mapped_xcom_secret", **COMMON):
    @task
    def bodies(**context: Any) -> list[dict[str, Any]]:
        # Run conf (typed by whoever triggers the DAG) becomes the mapped values.
        return [{"conf": {"note": context["dag_run"].conf.get("c", "plain")}}]

    TrigRunOperator.partial(task_id="m", trigrun_conn_id=CONN, wait_for_completion=False,
                            url=RUNS.format(dag="target"), method="POST",
                            target="airflow").expand(body=bodies())


# -- run conf, params, XCom, macros that name a secret ----------------------------------------
def _raw(note: str, **kwargs: Any) -> TrigRunOperator:
    return TrigRunOperator(
        task_id="trigger", trigrun_conn_id=CONN, wait_for_completion=False,
        url=RUNS.format(dag="target"), method="POST", target="airflow",
        # A reference written in the DAG file is the author's: it must keep working.
        headers={"X-Literal": "secret://var/trigrun_edge_literal"},
        body={"conf": {"note": note, "source": "{{ dag_run.run_id }}"}}, **kwargs)


with DAG(dag_id="edge_conf_secret", **COMMON):
    _raw("{{ dag_run.conf.get('c') }}")

with DAG(dag_id="edge_params_secret", params={"c": "plain"}, **COMMON):
    _raw("{{ params.c }}")  # run conf overrides params

with DAG(dag_id="edge_macro_secret", **COMMON):
    _raw("{{ 'secret:' ~ '//var/' ~ dag_run.conf.get('name', 'none') }}")

with DAG(dag_id="edge_xcom_secret", **COMMON):
    @task
    def upstream(**context: Any) -> str:
        return str(context["dag_run"].conf.get("c", "plain"))

    upstream() >> _raw("{{ ti.xcom_pull(task_ids='upstream') }}")


with DAG(dag_id="edge_sensor_conf_secret", **COMMON):
    TrigRunSensor(task_id="watch", trigrun_conn_id=CONN, run_id="r1", poke_interval=0.2,
                  timeout=30, deferrable=False, target={"type": "airflow", "dag_id": "target"},
                  auth={"type": "bearer", "token": "{{ dag_run.conf.get('c') }}"})


# -- clearing after the downstream run failed --------------------------------------------------
with DAG(dag_id="edge_clear", **COMMON):
    TrigRunOperator(task_id="trigger", trigrun_conn_id=CONN, deferrable=False,
                    poll_interval=0.2, timeout=60, retries=1, retry_delay=timedelta(seconds=0),
                    target={"type": "airflow", "dag_id": "target",
                            "conf": {"source": "{{ dag_run.run_id }}"}})


# -- a run without a logical date; templated scalar arguments ----------------------------------
with DAG(dag_id="edge_no_logical_date", **COMMON):
    TrigRunOperator(task_id="trigger", trigrun_conn_id=CONN, wait_for_completion=False,
                    target={"type": "airflow", "dag_id": "target",
                            "conf": {"logical": "{{ logical_date }}", "ts": "{{ ts }}",
                                     "ds": "{{ ds }}", "at": "{{ scheduled_time }}",
                                     "year": "{{ logical_date.strftime('%Y') }}"}})

# -- a secret that does not exist --------------------------------------------------------------
with DAG(dag_id="edge_missing_secret", **COMMON):
    TrigRunOperator(task_id="trigger", trigrun_conn_id=CONN, wait_for_completion=False,
                    url=RUNS.format(dag="target"), method="POST", target="airflow",
                    headers={"X-Key": "secret://var/trigrun_edge_missing",
                             "X-Token": "secret://conn/trigrun_edge_missing_conn/password"},
                    body={"conf": {}})

# -- the task log of a deferrable fire: one line per attempt -----------------------------------
with DAG(dag_id="edge_deferred_log", **COMMON):
    TrigRunOperator(task_id="trigger", trigrun_conn_id=CONN, deferrable=True, poll_interval=0.2,
                    timeout=60, trigger_retry_policy={"max_attempts": 2, "jitter": 0,
                                                      "initial_backoff_seconds": 0.01},
                    target={"type": "airflow", "dag_id": "target", "api_version": "v2",
                            "conf": {"source": "{{ dag_run.run_id }}"}})
