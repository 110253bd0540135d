"""``dags_from_specs`` with a connection that supplies the targets' base URL
(tests/airflow/test_dag_factory.py runs it with ``dag.test()``)."""

from pathlib import Path

from trigrun.airflow import dags_from_specs

globals().update(dags_from_specs(Path(__file__).with_name("trigrun_factory_conn.yaml"),
                                 trigrun_conn_id="trigrun_factory_host",
                                 dag_id_prefix="factory_conn_"))
