"""The Airflow side of the triggerer benchmark, run in a child process with its AIRFLOW_HOME.

``python -m benchmarks._triggerer_db defer --n N --port P --interval S`` creates N DAG runs
of the benchmark DAG (one deferrable ``TrigRunOperator`` task each, ``create_dagrun`` of the
serialized DAG) and defers each run's task as a worker's deferral does: the task instance set
``running`` (where the scheduler and a worker would have brought it), then what the execution API's deferral route
(``PATCH /task-instances/{id}/state``, ``TIDeferredStatePayload``) writes for the payload
``task_runner._defer_task`` builds: a ``Trigger`` row (the model) with the kwargs of
``TrigRunTrigger.serialize()`` through serde, stored as that route stores them (JSON; Airflow
3.3's worker does not encrypt them), and the task instance ``deferred`` with ``trigger_id``,
``next_method``/``next_kwargs`` and ``trigger_timeout``. The route itself, called in process
through the Task SDK client, costs ~45 ms per task instance here (minutes for thousands), so
its statements are run directly. The N deferrals are committed together, so the runner times
the triggerer's pick-up from one moment.

Prints one JSON line: counts and how long the insertion took.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import timedelta
from typing import Any

DAG_ID = "trigrun_triggerer_bench"
TASK_ID = "wait"
# What the benchmark DAG file holds (written into the temporary DAGs folder by the runner).
DAG_FILE = f'''"""The triggerer benchmark's DAG: one deferrable trigrun task (never run by a worker:
the benchmark defers its task instances as the execution API's deferral route does)."""
from datetime import datetime

from airflow.sdk import DAG
from trigrun.airflow import TrigRunOperator

with DAG("{DAG_ID}", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    TrigRunOperator(task_id="{TASK_ID}", deferrable=True, poll_interval=5,
                    target={{"type": "airflow", "base_url": "http://127.0.0.1:1",
                             "dag_id": "bench0"}})
'''


def defer(n: int, port: int, interval: float) -> dict[str, Any]:
    from airflow._shared.timezones import timezone
    from airflow.models.dagbag import DBDagBag
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.trigger import Trigger
    from airflow.sdk.serde import serialize as serde_serialize
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState, TaskInstanceState
    from airflow.utils.types import DagRunTriggeredByType, DagRunType
    from sqlalchemy import select, update

    from trigrun.airflow import TrigRunTrigger

    from ._batch_worker import _specs

    spec = _specs(f"http://127.0.0.1:{port}", 1)[0].model_dump(mode="json", exclude_none=True)
    t0 = time.monotonic()
    ids = []
    with create_session() as session:
        dag = DBDagBag().get_latest_version_of_dag(DAG_ID, session=session)
        if dag is None:
            raise SystemExit(f"DAG {DAG_ID} is not serialized: run `airflow dags reserialize`")
        for i in range(n):
            run = dag.create_dagrun(
                run_id=f"bench__{i:06d}", run_after=timezone.utcnow(), logical_date=None,
                run_type=DagRunType.MANUAL, triggered_by=DagRunTriggeredByType.TEST,
                state=DagRunState.RUNNING, start_date=timezone.utcnow(), session=session)
            # The scheduler's and the worker's steps: queued, then running.
            for ti in run.get_task_instances(session=session):
                ti.state = TaskInstanceState.RUNNING
                ti.start_date = timezone.utcnow()
                ids.append(ti.id)
        session.commit()
    created = time.monotonic() - t0

    t1 = time.monotonic()
    with create_session() as session:
        for i, ti_id in enumerate(ids):
            # What TrigRunOperator.execute defers with (no run_url, connection or rate
            # ceiling here), and what task_runner._defer_task sends: the kwargs through serde, stored as the execution API's deferral route
            # stores them (JSON, not encrypted: the worker may send them encrypted, Airflow
            # 3.3's does not).
            trigger = TrigRunTrigger(spec=spec, run_id=f"run__{i:06d}",
                                     end_time=time.time() + 3600, poll_interval=interval,
                                     not_before=time.time() + 10.0)
            classpath, kwargs = trigger.serialize()
            row = Trigger(classpath=classpath, kwargs={}, queue=None, team_name=None)
            row.encrypted_kwargs = json.dumps(serde_serialize(kwargs))
            session.add(row)
            session.flush()
            session.execute(update(TaskInstance).where(TaskInstance.id == ti_id).values(
                state=TaskInstanceState.DEFERRED, trigger_id=row.id,
                next_method="execute_complete",
                next_kwargs=serde_serialize({"fire_log": {}}),
                trigger_timeout=timezone.utcnow() + timedelta(seconds=3600 + 300)))
        session.commit()
    committed_at = time.time()
    deferred_s = time.monotonic() - t1
    with create_session() as session:
        states = session.scalars(select(TaskInstance.state).where(
            TaskInstance.dag_id == DAG_ID)).all()
    return {"n": n, "create_s": created, "committed_at": committed_at, "defer_s": deferred_s,
            "deferred": sum(1 for s in states if s == TaskInstanceState.DEFERRED)}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("command", choices=["defer"])
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--interval", type=float, default=5.0)
    args = p.parse_args()
    out = os.dup(1)
    os.dup2(2, 1)  # Airflow's logging to stderr; the result alone on the real stdout
    result = defer(args.n, args.port, args.interval)
    sys.stdout.flush()
    os.write(out, (json.dumps(result) + "\n").encode())


if __name__ == "__main__":
    main()
