"""The DAG of tests/airflow/test_versions.py (the compatibility matrix's end-to-end run): a
deferrable task whose trigger request carries a header from a ``secret://`` reference, against
the REST fake of tests/helpers/fakes.py (connection ``trigrun_matrix``, set by the test)."""

from __future__ import annotations

from datetime import datetime, timezone

from airflow.sdk import DAG

from trigrun.airflow import TrigRunOperator

with DAG(dag_id="trigrun_matrix_deferrable", schedule=None, catchup=False,
         start_date=datetime(2024, 1, 1, tzinfo=timezone.utc), tags=["trigrun-matrix"]):
    # The header goes on the trigger request (worker) and on every status read (triggerer):
    # the reference is resolved in both.
    TrigRunOperator(task_id="trigger", deferrable=True, trigrun_conn_id="trigrun_matrix",
                    target={"type": "airflow", "dag_id": "target",
                            "conf": {"source": "{{ dag_run.run_id }}"}},
                    auth={"type": "header", "name": "X-Api-Key",
                          "value": "secret://var/trigrun_matrix_key"},
                    poll_interval=1, timeout=120)
