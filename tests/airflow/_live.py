"""Helpers for tests that run trigrun DAGs in-process against the live Airflow server."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import AIRFLOW_TEST_DAGS
from tests.fixtures.airflow_server import AirflowServer

IT_DAGS = AIRFLOW_TEST_DAGS / "trigrun_it.py"
CANARY_VAR = "trigrun_canary"


@dataclass
class Live:
    server: AirflowServer
    canary: str  # an Airflow variable's value that must never show up anywhere

    @property
    def secrets(self) -> tuple[str, str]:
        return self.server.password, self.canary

    def target_runs(self, source: str, dag_id: str = "trigrun_target") -> list[dict[str, Any]]:
        """The target runs whose conf says they were started by in-process run ``source``."""
        return [r for r in self.server.dag_runs(dag_id) if (r.get("conf") or {}).get("source")
                == source]


@pytest.fixture(scope="session")
def live(airflow_server: AirflowServer, airflow_db: Path) -> Iterator[Live]:
    """The live server as connection ``trigrun_live`` of the in-process Airflow."""
    canary = "canary-" + os.urandom(12).hex()
    env = {
        "AIRFLOW_CONN_TRIGRUN_LIVE": json.dumps({
            "conn_type": "trigrun", "host": airflow_server.base_url,
            "login": airflow_server.username, "password": airflow_server.password}),
        f"AIRFLOW_VAR_{CANARY_VAR.upper()}": canary,
    }
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    for dag_id in ("trigrun_target", "trigrun_slow_target", "trigrun_failing_target"):
        airflow_server.wait_for_dag(dag_id)
    try:
        yield Live(airflow_server, canary)
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@cache
def _bag() -> Any:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(IT_DAGS))
    assert not bag.import_errors, bag.import_errors
    return bag


def run_dag(dag_id: str) -> Any:
    """``dag.test()`` of one DAG of ``tests/airflow/dags/trigrun_it.py``; the DagRun."""
    return _bag().dags[dag_id].test()


def xcoms(dag_run: Any, task_id: str = "trigger") -> dict[str, Any]:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.query(XComModel).filter_by(dag_id=dag_run.dag_id, run_id=dag_run.run_id,
                                                  task_id=task_id)
        return {row.key: row.value for row in rows}


def task_instance(dag_run: Any, task_id: str = "trigger") -> Any:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        ti = session.query(TaskInstance).filter_by(dag_id=dag_run.dag_id, run_id=dag_run.run_id,
                                                   task_id=task_id).one()
        session.expunge(ti)
        return ti


def task_logs(home: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in sorted((home / "logs").rglob("*"))
                     if p.is_file())
