"""Restart: a live Airflow triggerer is killed mid-wait and started again.

``trigrun_self_deferred`` (``tests/fixtures/target_dags``) is a deferrable ``TrigRunOperator``
that starts ``trigrun_target`` on the same live Airflow and waits for it in the triggerer. The
target DAG is paused first, so its run stays queued: the wait is guaranteed to be in progress
when the triggerer's whole process group gets SIGKILL (a crash: no clean shutdown, no
``on_kill``). A new triggerer is started; only then is the target unpaused. The new triggerer
must adopt the orphaned trigger, rebuild it from its stored kwargs, poll the same run to its
end and resume the task - and the trigger request must have been sent exactly once, which the
API server's access log shows.
"""

from __future__ import annotations

import re
import time

import pytest

from tests.fixtures.airflow_server import AirflowServer

from ._report import Report, seconds_bound
from ._secrets import Evidence, hits

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]

DAG_ID = "trigrun_self_deferred"
TARGET = "trigrun_target"
BOUND = 240.0
POST_TARGET = re.compile(rf"method=POST path=/api/v2/dags/{TARGET}/dagRuns\b")


def _downstream(server: AirflowServer, source: str) -> list[dict]:
    return [r for r in server.dag_runs(TARGET) if (r.get("conf") or {}).get("source") == source]


def _trigger_logs(server: AirflowServer, run_id: str) -> dict[int, str]:
    """The trigger's log per triggerer job: ``<task log>.trigger.<job id>.log``."""
    folder = server.home / "logs" / f"dag_id={DAG_ID}" / f"run_id={run_id}" / "task_id=trigger"
    return {int(p.name.rsplit(".", 2)[-2]): p.read_text(errors="replace")
            for p in folder.glob("attempt=1.log.trigger.*.log")}


def _wait_for_poll(server: AirflowServer, run_id: str, target_id: str,
                   timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(f"run {target_id}: queued" in text
               for text in _trigger_logs(server, run_id).values()):
            return
        time.sleep(0.2)
    raise AssertionError(f"the triggerer never polled run {target_id}")


def _log_since(path: object, offset: int) -> str:
    with open(path, "rb") as f:  # type: ignore[call-overload]
        f.seek(offset)
        return f.read().decode(errors="replace")


def test_triggerer_killed_mid_wait_resumes_the_same_run(
        airflow_server: AirflowServer, report: Report, request: pytest.FixtureRequest) -> None:
    server = airflow_server
    server.wait_for_dag(DAG_ID)
    server.wait_for_dag(TARGET)
    access_log = server.home / "api-server.log"
    offset = access_log.stat().st_size
    t0 = time.monotonic()
    cells = ["Triggerer SIGKILLed while a deferred TrigRunOperator waits, then restarted"]
    server.api("PATCH", f"/dags/{TARGET}", json={"is_paused": True}).raise_for_status()
    try:
        run_id = server.trigger(DAG_ID)["dag_run_id"]
        server.wait_for_task_state(DAG_ID, run_id, "trigger", ("deferred",), timeout=120)
        (target,) = _downstream(server, run_id)
        target_id = target["dag_run_id"]
        assert server.dag_run(TARGET, target_id)["state"] == "queued"
        # Mid-wait for certain: the triggerer has polled the run at least once.
        _wait_for_poll(server, run_id, target_id)

        server.kill_component("triggerer")
        killed_at = time.monotonic()
        # The crash changes nothing for the task or the run: both keep waiting.
        time.sleep(2)
        assert server.task_instances(DAG_ID, run_id)[0]["state"] == "deferred"
        assert server.dag_run(TARGET, target_id)["state"] == "queued"

        # The new triggerer adopts triggers whose triggerer missed heartbeats for this long
        # (default 30 s; shorter here so the test is quick).
        server.restart_component(
            "triggerer", extra_env={"AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "5"})
        restarted_after = time.monotonic() - killed_at
    finally:
        server.api("PATCH", f"/dags/{TARGET}", json={"is_paused": False}).raise_for_status()

    final = server.wait_for_run(DAG_ID, run_id, timeout=180)
    seconds = time.monotonic() - t0
    (ti,) = server.task_instances(DAG_ID, run_id)
    downstream = _downstream(server, run_id)
    posts = len(POST_TARGET.findall(_log_since(access_log, offset)))
    by_job = _trigger_logs(server, run_id)
    print(f"restart: {seconds:.1f}s in all, triggerer back {restarted_after:.1f}s after the "
          f"kill; {posts} trigger request(s); downstream {[r['state'] for r in downstream]}")
    outcome = (f"task {final['state']} (try {ti['try_number']}), downstream run "
               f"{downstream[0]['state'] if downstream else 'missing'}")
    # The credential the trigger used (the trigrun_self connection's password) is nowhere in
    # the live deployment's database or in any task or trigger log.
    stored: list[Evidence] = [(p.name, p.read_bytes()) for p in server.home.glob("airflow.db*")]
    stored += [(str(p.relative_to(server.home)), p.read_bytes())
               for p in sorted((server.home / "logs").rglob("*")) if p.is_file()]
    leaks = hits(stored, [server.password])
    report.add(request.node.nodeid, "restart", (0,), [
        *cells, outcome, str(posts), str(len(downstream)), str(len(leaks)),
        seconds_bound(0, BOUND)],
        figures=(len(downstream), 1, 1 - min(1, len(downstream)), max(0, len(downstream) - 1)))

    assert final["state"] == "success"
    assert ti["try_number"] == 1  # resumed, not retried
    assert [r["dag_run_id"] for r in downstream] == [target_id]
    assert downstream[0]["state"] == "success"
    assert posts == 1, "the trigger request was sent more than once"
    # Two triggerer jobs ran the trigger: the killed one was polling the run (still queued);
    # the new one rebuilt it, polled the same run id to its end (the downstream run's state,
    # above) and fired the event.
    assert len(by_job) == 2, sorted(by_job)
    old, new = (by_job[job] for job in sorted(by_job))
    assert f"run {target_id}: queued" in old
    assert "Trigger fired event" not in old
    assert f"waiting for run {target_id}" in new
    # (Its polls are not all in the log: the end state is DEBUG, the resumed task logs it.)
    assert "Trigger fired event" in new
    assert leaks == []
    assert any(f"run {target_id}" in text.decode(errors="replace") for _, text in stored
               if isinstance(text, bytes)), "control: the logs searched hold this run"
    assert seconds < BOUND
