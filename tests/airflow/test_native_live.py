"""trigrun feels native in a live Airflow 3 (``airflow_server``: scheduler, LocalExecutor,
real triggerer), with the DAGs of ``tests/fixtures/target_dags/trigrun_native.py``:

- a deferrable task with ``delay_seconds: 20`` is ``deferred`` on a timer (holding no pool
  slot), fires at least 20 s after its scheduled time, defers again to wait for the run, tells
  the downstream DAG run who started it (note and conf: the task instance's name and URL),
  names its link "Airflow run", and logs the run's URL after the fire and in its last line;
- five tasks of one job queue run in the Airflow pool of that name: a pool of 2 slots keeps at
  most 2 in flight, measured at the target and from the task instances' start and end dates;
- a task with ``emit_asset`` emits its job's asset, which triggers a DAG scheduled on it.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime
from typing import Any
from urllib.parse import quote

import pytest

from tests.fixtures.airflow_server import AirflowServer
from tests.helpers.httpserver import LocalServer, Recorded, Reply

pytestmark = [pytest.mark.integration, pytest.mark.timeout(400)]

DELAY_DAG = "trigrun_native_delay"
POOL_DAG = "trigrun_native_pool"
CONSUMER_DAG = "trigrun_native_asset_consumer"
POOL = "trigrun_native_q"
# A task of this 2-core LocalExecutor starts 4 s or more after its scheduled time, and a
# remainder under 6 s is slept in the worker, so the DAG's delay is 20 s: about 16 s deferred.
DELAY = 20.0
ASSET_JOB = "trigrun native pool q0"


def _when(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _task_log(server: AirflowServer, dag_id: str) -> str:
    return "\n".join(p.read_text(errors="replace") for p in (server.home / "logs").rglob("*")
                     if p.is_file() and f"dag_id={dag_id}" in str(p))


def test_delay_defers_on_a_timer_then_fires_and_links_both_ways(
        airflow_server: AirflowServer) -> None:
    server = airflow_server
    for dag in (DELAY_DAG, "trigrun_target"):
        server.wait_for_dag(dag)
    _pool(server, DELAY_DAG, 1)
    started = server.trigger(DELAY_DAG)
    run_id = started["dag_run_id"]
    scheduled = _when(started["run_after"])  # no logical date: the scheduled time is run_after

    states: list[str] = []
    pool_while_deferred: dict[str, Any] = {}
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        tis = {t["task_id"]: t for t in server.task_instances(DELAY_DAG, run_id)}
        state = (tis.get("trigger") or {}).get("state")
        if state and (not states or states[-1] != state):
            states.append(state)
        if state == "deferred" and not pool_while_deferred:
            pool_while_deferred = server.api("GET", f"/pools/{DELAY_DAG}").json()
        if state in ("success", "failed", "upstream_failed"):
            break
        time.sleep(0.3)
    assert states[-1] == "success", states
    assert "deferred" in states, states
    # Deferred on the timer: the task held no slot of its pool (a pool of its own) meanwhile.
    assert pool_while_deferred["running_slots"] == 0, pool_while_deferred
    assert pool_while_deferred["deferred_slots"] == 1, pool_while_deferred

    downstream = [r for r in server.dag_runs("trigrun_target")
                  if (r.get("conf") or {}).get("source") == run_id]
    assert len(downstream) == 1, downstream
    target_run = downstream[0]
    fired = _when(target_run["run_after"])
    assert (fired - scheduled).total_seconds() >= DELAY, (scheduled, fired)

    # The downstream run names the task instance that started it, with its page's URL.
    ti_url = f"{server.base_url}/dags/{DELAY_DAG}/runs/{quote(run_id)}/tasks/trigger"
    note = target_run.get("note") or ""
    assert f"Airflow task {DELAY_DAG}.trigger (run {run_id})" in note, note
    assert ti_url in note, note
    assert ti_url in str(target_run["conf"].get("trigrun")), target_run["conf"]

    # The link is named for the target and points at the downstream run.
    run_url = f"{server.base_url}/dags/trigrun_target/runs/{quote(target_run['dag_run_id'], safe='')}"
    links = server.api("GET", f"/dags/{DELAY_DAG}/dagRuns/{run_id}/taskInstances/trigger/links")
    links.raise_for_status()
    assert links.json()["extra_links"] == {"Airflow run": run_url}
    # The run's URL is in the log right after the fire, and in the final line.
    log = _task_log(server, DELAY_DAG)
    # Deferred on the delay's timer, then (after the fire) on the wait for the run. Counted in
    # the task's log: sampling the state every 0.3 s can miss a short second deferral.
    timer = log.find("deferring until")
    wait = log.find("deferring: waiting for run")
    assert 0 <= timer < wait, log
    assert "in the worker before" not in log, log
    assert f"started run {target_run['dag_run_id']}: {run_url}" in log
    assert f"run {target_run['dag_run_id']}: success" in log
    final = [line for line in log.splitlines() if f"run {target_run['dag_run_id']}: success" in line]
    assert run_url in final[-1]
    assert server.dag_run("trigrun_target", target_run["dag_run_id"])["state"] == "success"


def _pool(server: AirflowServer, name: str, slots: int) -> None:
    r = server.api("POST", "/pools", json={"name": name, "slots": slots,
                                           "description": "trigrun job queue"})
    if r.status_code == 409:
        r = server.api("PATCH", f"/pools/{name}", json={"slots": slots})
    r.raise_for_status()


def _overlap(spans: list[tuple[float, float]]) -> int:
    """The most spans open at one moment."""
    edges = sorted([(a, 1) for a, _ in spans] + [(b, -1) for _, b in spans],
                   key=lambda e: (e[0], e[1]))
    most = now = 0
    for _, step in edges:
        now += step
        most = max(most, now)
    return most


def test_a_pool_of_two_keeps_five_tasks_of_one_queue_at_two_in_flight_and_emits_the_asset(
        airflow_server: AirflowServer) -> None:
    server = airflow_server
    for dag in (POOL_DAG, CONSUMER_DAG):
        server.wait_for_dag(dag)
    # Pools cannot be created while a DAG file is parsed: the deployment creates them.
    _pool(server, POOL, 2)
    consumed_before = len(server.dag_runs(CONSUMER_DAG))

    lock = threading.Lock()
    in_flight = [0, 0]  # now, most

    def hold(req: Recorded) -> Reply:
        with lock:
            in_flight[0] += 1
            in_flight[1] = max(in_flight[1], in_flight[0])
        time.sleep(4)
        with lock:
            in_flight[0] -= 1
        return Reply(200, json={"ok": True})

    with LocalServer() as hook:
        hook.on("POST", "/hook", hold)
        run_id = server.trigger(POOL_DAG, conf={"hook": hook.url + "/hook"})["dag_run_id"]
        done = server.wait_for_run(POOL_DAG, run_id, timeout=180)
        got = hook.requests_to("/hook")
    assert done["state"] == "success"
    assert sorted(req.json()["task"] for req in got) == [f"q{i}" for i in range(5)]
    assert in_flight[1] == 2, in_flight  # never more than the pool's 2, and 2 did run at once

    tis = server.task_instances(POOL_DAG, run_id)
    assert {(t["pool"], t["pool_slots"]) for t in tis} == {(POOL, 1)}
    spans = [(_when(t["start_date"]).timestamp(), _when(t["end_date"]).timestamp())
             for t in tis]
    assert _overlap(spans) <= 2, spans

    # q0's asset event triggered the DAG scheduled on its job's asset.
    deadline = time.monotonic() + 90
    runs: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        runs = server.dag_runs(CONSUMER_DAG)
        if len(runs) > consumed_before and runs[-1]["state"] in ("success", "failed"):
            break
        time.sleep(1)
    assert len(runs) > consumed_before, "the asset event triggered no run"
    assert runs[-1]["state"] == "success"
    xcom = server.api("GET", f"/dags/{CONSUMER_DAG}/dagRuns/{runs[-1]['dag_run_id']}/"
                             "taskInstances/consume/xcomEntries/return_value",
                      params={"deserialize": True})
    xcom.raise_for_status()
    extras = xcom.json()["value"]
    assert any(e.get("job") == ASSET_JOB and e.get("skipped") is False for e in extras), extras
