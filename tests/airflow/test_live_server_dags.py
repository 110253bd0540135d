"""trigrun DAGs running inside a live Airflow 3 (scheduler, LocalExecutor, real triggerer).

``trigrun_self_deferred`` goes the whole production path: the worker fires, the real
triggerer polls (resolving the connection's password asynchronously through the supervisor),
and a new worker process resumes the task with the trigger's event.

Killing a TrigRun task cancels the downstream run. The DAGs ``trigrun_kill_sync`` and
``trigrun_kill_deferred`` (``tests/fixtures/target_dags``) start ``trigrun_slow_target`` on
the same server. The test marks the trigrun task failed through the REST API, as a user does
in the UI:

- sync: the task supervisor sees the state change and SIGTERMs the task, whose ``on_kill``
  cancels the downstream run;
- deferred: the triggerer cancels the trigger with a user-action reason and awaits
  ``TrigRunTrigger.on_kill`` (Airflow 3.3), which cancels the downstream run.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

import pytest

from tests.fixtures.airflow_server import AirflowServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(400)]


def _downstream(server: AirflowServer, source: str, timeout: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = [r for r in server.dag_runs("trigrun_slow_target")
                if (r.get("conf") or {}).get("source") == source]
        if runs and runs[0]["state"] == "running":
            assert len(runs) == 1
            return runs[0]
        time.sleep(1)
    raise TimeoutError(f"no running trigrun_slow_target run from {source} after {timeout}s")


@pytest.mark.parametrize(("mode", "task_state"), [("sync", "running"), ("deferred", "deferred")])
def test_killing_the_task_cancels_the_downstream_run(airflow_server: AirflowServer, mode: str,
                                                     task_state: str) -> None:
    server = airflow_server
    dag_id = f"trigrun_kill_{mode}"
    for d in (dag_id, "trigrun_slow_target"):
        server.wait_for_dag(d)
    run_id = server.trigger(dag_id)["dag_run_id"]
    downstream = _downstream(server, run_id)
    server.wait_for_task_state(dag_id, run_id, "trigger", (task_state,), timeout=60)
    # The run id and URL were pushed before the wait: the link works while the task waits.
    xcom = server.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/trigger/"
                             "xcomEntries/run_id")
    xcom.raise_for_status()
    assert downstream["dag_run_id"] in str(xcom.json()["value"])

    server.set_task_state(dag_id, run_id, "trigger", "failed")

    ended = server.wait_for_run("trigrun_slow_target", downstream["dag_run_id"],
                                ("failed", "success"), timeout=45)
    assert ended["state"] == "failed"  # cancelled long before its 60 s of work were done
    # The killed task's logs hold no secret (the server's password is the trigrun_self one).
    logs = "\n".join(p.read_text(errors="replace")
                     for p in (server.home / "logs").rglob("*") if p.is_file())
    assert f"dag_id={dag_id}" in "\n".join(str(p) for p in (server.home / "logs").rglob("*"))
    assert server.password not in logs


def test_deferrable_task_completes_through_the_real_triggerer(
        airflow_server: AirflowServer) -> None:
    server = airflow_server
    for d in ("trigrun_self_deferred", "trigrun_target"):
        server.wait_for_dag(d)
    run_id = server.trigger("trigrun_self_deferred")["dag_run_id"]
    done = server.wait_for_run("trigrun_self_deferred", run_id, timeout=120)
    assert done["state"] == "success"
    downstream = [r for r in server.dag_runs("trigrun_target")
                  if (r.get("conf") or {}).get("source") == run_id]
    assert len(downstream) == 1
    assert downstream[0]["state"] == "success"
    r = server.api("GET", f"/dags/trigrun_self_deferred/dagRuns/{run_id}/taskInstances/"
                          "trigger/xcomEntries/return_value")
    r.raise_for_status()
    value = r.json()["value"]
    log = json.loads(value) if isinstance(value, str) else value
    assert log["run_id"] == downstream[0]["dag_run_id"]
    assert log["wait"]["status"] == "success"
    assert log["wait"]["waited_in"] == "triggerer"  # it deferred (not sampled: it may be short)
    assert log["attempts"][0]["status_code"] == 200  # next_kwargs carried the fire's log
    # The task's own log (worker and triggerer parts): each attempt line once, not also
    # repeated by the `trigrun` logger.
    folder = next(p for p in (server.home / "logs").rglob("task_id=trigger")
                  if "dag_id=trigrun_self_deferred" in str(p) and run_id in str(p))
    text = "\n".join(p.read_text(errors="replace") for p in folder.rglob("*") if p.is_file())
    assert len(re.findall(r"attempt 1: HTTP 200 \(\d+ ms\)", text)) == 1, text
