"""High availability on a live Airflow 3: two triggerers, one killed mid-wait; the scheduler
killed and restarted mid-flight.

Both tests run on the session's live server (``tests/fixtures/airflow_server.py``) and add
the DAGs of ``live_dags/trigrun_reliability.py`` to it. Their ``TrigRunOperator`` tasks start
runs of ``trigrun_parked_target``, which is paused: its runs stay queued until the test ends
each one through the REST API (half success, half failed), so every wait is in progress when a
process is killed, and the state each task must end in is known. The ground truth is counted
at the target: the API server's access log (every ``POST .../trigrun_parked_target/dagRuns``
is a trigger request; ``GET .../dagRuns?state=queued&state=running...`` is a batched listing,
``GET .../dagRuns/<run id>`` a run read on its own) and the target DAG's runs themselves.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fixtures.airflow_server import AirflowServer
from tests.helpers.faults import FaultServer, RunTarget
from tests.helpers.httpserver import Recorded, Reply

from ._report import Report, seconds_bound
from ._secrets import Evidence, hits

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1200)]

DAG_FILE = Path(__file__).parent / "live_dags" / "trigrun_reliability.py"
TARGET = "trigrun_parked_target"
HA_DAG = "trigrun_rel_ha"
HA_TASKS = 20
INTERVAL = 2.0  # the tasks' poll_interval
# A killed triggerer's triggers go to a live one once its heartbeat is this old (default 30).
THRESHOLD = "8"
HA_BOUND = 900.0

_ACCESS = re.compile(r"method=(\w+) path=(\S+) query=(\S*) status_code=(\d+)")


@contextlib.contextmanager
def access_log(server: AirflowServer) -> Iterator[list[tuple[str, str, str, int]]]:
    """The API server's requests while the block runs: (method, path, query, status)."""
    path = server.home / "api-server.log"
    offset = path.stat().st_size
    seen: list[tuple[str, str, str, int]] = []
    try:
        yield seen
    finally:
        with open(path, "rb") as f:
            f.seek(offset)
            text = f.read().decode(errors="replace")
        seen += [(m, p, q, int(s)) for m, p, q, s in _ACCESS.findall(text)]


def trigger_posts(log: list[tuple[str, str, str, int]]) -> Counter[int]:
    """The trigger requests the target DAG got, by the status it answered: 200 started a run;
    a retry after a reply that was lost (the API server waited a minute for SQLite's lock, the
    client gave up sooner) carries the same key and gets 409; a 5xx started nothing."""
    return Counter(s for m, p, _, s in log
                   if m == "POST" and p == f"/api/v2/dags/{TARGET}/dagRuns")


def listings(log: list[tuple[str, str, str, int]]) -> int:
    """trigrun's batched reads: the target DAG's active runs (the test never filters by
    state, so these are the triggerers')."""
    return sum(1 for m, p, q, _ in log if m == "GET" and p == f"/api/v2/dags/{TARGET}/dagRuns"
               and "state=queued" in q)


def ended_reads(log: list[tuple[str, str, str, int]]) -> int:
    """Listings of the target DAG's runs that are not active ones (how the batch path reads
    the end of runs a listing stopped showing)."""
    return sum(1 for m, p, q, _ in log if m == "GET" and p == f"/api/v2/dags/{TARGET}/dagRuns"
               and "state=" in q and "state=queued" not in q)


def run_reads(log: list[tuple[str, str, str, int]]) -> list[str]:
    prefix = f"/api/v2/dags/{TARGET}/dagRuns/"
    return [p[len(prefix):] for m, p, _, _ in log
            if m == "GET" and p.startswith(prefix) and "/" not in p[len(prefix):]]


def wait_parsed(server: AirflowServer, dag_id: str, timeout: float = 120) -> None:
    """Parsed, and left paused or not as it is (``wait_for_dag`` unpauses)."""
    deadline = time.monotonic() + timeout
    while server.api("GET", f"/dags/{dag_id}").status_code != 200:
        assert time.monotonic() < deadline, f"DAG {dag_id} not parsed"
        time.sleep(1)


def until(what: str, check: Any, timeout: float, every: float = 1.0) -> Any:
    """``check()`` once it is true. A REST call that times out is asked again: on two cores
    with twenty task runs the API server may wait that long for SQLite's lock."""
    deadline = time.monotonic() + timeout
    last = ""
    while True:
        try:
            got = check()
        except httpx.HTTPError as exc:
            got, last = None, f"{type(exc).__name__}: {exc}"
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not after {timeout:g}s {last}")
        time.sleep(every)


def downstream(server: AirflowServer, run_id: str) -> dict[str, list[dict[str, Any]]]:
    """The target's runs per task of ``run_id`` (``conf.source`` is ``<run id>/<task id>``)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for r in server.dag_runs(TARGET):
        source = str((r.get("conf") or {}).get("source") or "")
        if source.startswith(f"{run_id}/"):
            out.setdefault(source.split("/", 1)[1], []).append(r)
    return out


def stored(server: AirflowServer) -> list[Evidence]:
    """The live deployment's SQLite database and every log file, as bytes."""
    out: list[Evidence] = [(p.name, p.read_bytes()) for p in server.home.glob("airflow.db*")]
    out += [(str(p.relative_to(server.home)), p.read_bytes())
            for p in sorted(server.home.rglob("*.log")) if p.is_file()]
    return out


def end_downstream(server: AirflowServer, runs: dict[str, str]) -> dict[str, str]:
    """End each target run: even tasks' success, odd tasks' failed. {task: state}."""
    ends = {}
    for i, (task, target_id) in enumerate(sorted(runs.items())):
        state = "success" if i % 2 == 0 else "failed"
        r = server.api("PATCH", f"/dags/{TARGET}/dagRuns/{target_id}", json={"state": state})
        assert r.status_code == 200, r.text[:300]
        ends[task] = state
    return ends


def test_two_triggerers_one_killed_mid_wait(airflow_server: AirflowServer, report: Report,
                                            request: pytest.FixtureRequest) -> None:
    server = airflow_server
    server.add_dag_file(DAG_FILE)
    wait_parsed(server, TARGET)
    server.wait_for_dag(HA_DAG, timeout=180)
    t0 = time.monotonic()
    figures: dict[str, Any] = {}
    try:
        with access_log(server) as log:
            # Triggerer A takes ten triggers at most, so B (started once A is full) gets the
            # other ten: both hold waits when A is killed.
            server.restart_component("triggerer", extra_env={
                "AIRFLOW__TRIGGERER__CAPACITY": "10",
                "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": THRESHOLD})
            # The killed triggerer's job still looks alive for a while: A is the newest.
            a_job = max(server.alive_triggerers(), key=lambda j: j["start_date"])
            run_id = server.trigger(HA_DAG)["dag_run_id"]

            def tis() -> list[dict[str, Any]]:
                return server.task_instances(HA_DAG, run_id)

            def holders() -> dict[str, Any]:
                return {ti["task_id"]: (ti.get("trigger") or {}).get("triggerer_id")
                        for ti in tis()}

            def a_full() -> bool:
                now = tis()
                held = [(ti.get("trigger") or {}).get("triggerer_id") for ti in now]
                return (len(now) == HA_TASKS and held.count(a_job["id"]) == 10
                        and all(ti["state"] == "deferred" for ti in now))

            # Twenty task runs, a few at a time: minutes on a busy two-core machine.
            until("20 tasks deferred, 10 held by triggerer A", a_full, 480, 2.0)
            started = time.time()
            server.start_component("triggerer.2", extra_env={
                "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": THRESHOLD})
            server.wait_for_start("triggerer.2", started)
            b_job = max(server.alive_triggerers(), key=lambda j: j["start_date"])
            assert b_job["id"] != a_job["id"]
            split = until("both triggerers hold ten", lambda: (
                lambda h: h if sorted(h.values()) == sorted([a_job["id"]] * 10 + [b_job["id"]] * 10)
                else None)(holders()), 60)
            on_a = sorted(t for t, j in split.items() if j == a_job["id"])
            tries = {ti["task_id"]: ti["try_number"] for ti in tis()}
            targets = {task: runs[0]["dag_run_id"]
                       for task, runs in downstream(server, run_id).items()}
            assert len(targets) == HA_TASKS
            # Mid-wait for certain: both triggerers polled (two listings per interval).
            time.sleep(2 * INTERVAL + 1)
            server.kill_component("triggerer")
            killed_at = time.monotonic()
            until("triggerer B took over every trigger", lambda: set(holders().values()) == {
                b_job["id"]}, 90)
            figures["takeover"] = time.monotonic() - killed_at
            with access_log(server) as steady:
                window = time.monotonic()
                time.sleep(5 * INTERVAL)
                window = time.monotonic() - window
            ends = end_downstream(server, targets)
            final = until("the DAG run ended", lambda: (lambda r: r if r["state"] in (
                "success", "failed") else None)(server.dag_run(HA_DAG, run_id)), 480, 2.0)
        seconds = time.monotonic() - t0
    finally:
        # Back to the fixture's one triggerer with its defaults, for the tests after this one.
        server.kill_component("triggerer")
        server.kill_component("triggerer.2")
        started = time.time()
        server.start_component("triggerer")
        with contextlib.suppress(TimeoutError):
            server.wait_for_start("triggerer", started)

    states = {ti["task_id"]: ti for ti in server.task_instances(HA_DAG, run_id)}
    runs = downstream(server, run_id)
    wrong = {t: (states[t]["state"], ends[t]) for t in ends if states[t]["state"] != ends[t]}
    # Resumed, not retried, after the kill (a try before it may have been retried: see the DAG).
    retried = [t for t, ti in states.items() if ti["try_number"] != tries[t]]
    duplicated = {t: len(r) for t, r in runs.items() if len(r) != 1}
    posts = trigger_posts(log)
    reads = run_reads(log)
    leaks = hits(stored(server), [server.password])
    print(f"two triggerers: {seconds:.1f}s; B took A's {len(on_a)} triggers "
          f"{figures['takeover']:.1f}s after the kill; trigger requests {dict(posts)}; steady "
          f"{listings(steady)} listings / {len(run_reads(steady))} run reads in "
          f"{5 * INTERVAL:g}s; {listings(log)} listings, {ended_reads(log)} reads of ended "
          f"runs and {len(reads)} single-run reads in all")
    report.add(request.node.nodeid, "scale", (10,), [
        f"Two triggerers, {HA_TASKS} deferred TrigRunOperator tasks on one DAG through "
        "batched polls; the triggerer holding ten of them SIGKILLed mid-wait",
        str(sum(len(r) for r in runs.values())), str(HA_TASKS),
        str(HA_TASKS - len(runs)), str(sum(n - 1 for n in duplicated.values())),
        f"{posts[200]} trigger requests started a run (a retry, if any, carried its key); the "
        f"survivor took the killed one's {len(on_a)} waits; {len(wrong)} task(s) in a state "
        f"other than its run's; the survivor alone: one batched listing per "
        f"{INTERVAL:g} s interval, {len(run_reads(steady))} per-run reads; "
        f"{len(leaks)} credential hits",
        seconds_bound(0, HA_BOUND)],
        figures=(sum(len(r) for r in runs.values()), HA_TASKS, HA_TASKS - len(runs),
                 sum(n - 1 for n in duplicated.values())))

    assert final["state"] == "failed"  # half its tasks' runs failed
    assert wrong == {}
    assert retried == []  # every task resumed in the try that deferred
    assert sorted(runs) == sorted(targets)
    assert duplicated == {}
    assert {t: r[0]["dag_run_id"] for t, r in runs.items()} == targets
    # One trigger request per task started a run; any other was a retry with its key.
    assert posts[200] == HA_TASKS, posts
    assert set(posts) <= {200, 409, 500, 502, 503, 504}, posts
    # The survivor alone: one listing of the DAG's active runs per interval, no run read on
    # its own while none ended (per-run polls would be ten reads a second).
    # (At least two: a triggerer stalled on SQLite's lock may skip a beat, never the whole window.)
    assert 2 <= listings(steady) <= window / INTERVAL + 2, (listings(steady), window)
    assert run_reads(steady) == []
    assert leaks == []
    assert seconds < HA_BOUND


SCHED_DAG = "trigrun_rel_scheduler"
HOLD = 150.0  # seconds the hook holds its first reply: the task is between fire and defer
SCHED_BOUND = 600.0


def test_scheduler_killed_while_tasks_wait_and_one_is_mid_fire(
        airflow_server: AirflowServer, report: Report, request: pytest.FixtureRequest) -> None:
    server = airflow_server
    server.add_dag_file(DAG_FILE)
    wait_parsed(server, TARGET)
    server.wait_for_dag(SCHED_DAG, timeout=180)
    hook_state = {"status": "running"}
    arrived: list[float] = []

    with FaultServer() as hook:
        target = RunTarget(hook, echo=False)

        def held(req: Recorded) -> Reply:
            reply = target.trigger(req)  # the run starts; the reply waits
            first = not arrived
            arrived.append(time.monotonic())
            return Reply(reply.status, json=reply.json, delay=HOLD if first else 0.0)

        hook.on("POST", "/trigger", held)
        hook.on("GET", "/runs/{run_id}",
                lambda req: Reply(json={"run_id": req.params["run_id"], **hook_state}))
        t0 = time.monotonic()
        try:
            with access_log(server) as log:
                run_id = server.trigger(SCHED_DAG, conf={"hook": hook.url})["dag_run_id"]

                def states() -> dict[str, str]:
                    return {ti["task_id"]: ti["state"]
                            for ti in server.task_instances(SCHED_DAG, run_id)}

                until("the hook task fired", lambda: arrived, 180, 0.2)
                until("d0-d2 deferred", lambda: all(
                    s == "deferred" for t, s in states().items() if t != "hook"), 240, 0.5)
                before = states()
                tries = {ti["task_id"]: ti["try_number"]
                         for ti in server.task_instances(SCHED_DAG, run_id)}
                in_flight = time.monotonic() - arrived[0]
                assert before["hook"] == "running", before
                assert in_flight < HOLD - 5, in_flight
                # The scheduler's process group holds the LocalExecutor's workers: the hook
                # task dies with it, its trigger request sent and its reply not yet read.
                server.kill_component("scheduler")
                killed_at = time.monotonic()
                targets = {task: runs[0]["dag_run_id"]
                           for task, runs in downstream(server, run_id).items()}
                ends = end_downstream(server, targets)
                hook_state["status"] = "success"
                # Without a scheduler the triggers still end their waits: the tasks are
                # scheduled to resume, and stay so until a scheduler runs again.
                until("the waits ended while the scheduler was down", lambda: all(
                    states()[t] == "scheduled" for t in targets), 60)
                down_for = time.monotonic() - killed_at
                started = time.time()
                # A new scheduler resets the tasks of a scheduler whose heartbeat is this old.
                server.start_component("scheduler", extra_env={
                    "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_THRESHOLD": "10",
                    "AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL": "5"})
                server.wait_for_start("scheduler", started)
                final = until("the DAG run ended", lambda: (lambda r: r if r["state"] in (
                    "success", "failed") else None)(server.dag_run(SCHED_DAG, run_id)), 480, 2.0)
            seconds = time.monotonic() - t0
        finally:
            server.restart_component("scheduler")  # the fixture's own settings again
        keys = {r.headers.get("idempotency-key") for r in hook.requests_to("/trigger", "POST")}
        hook_posts = len(hook.requests_to("/trigger", "POST"))

    tis = {ti["task_id"]: ti for ti in server.task_instances(SCHED_DAG, run_id)}
    runs = downstream(server, run_id)
    wrong = {t: (tis[t]["state"], ends[t]) for t in ends if tis[t]["state"] != ends[t]}
    posts = trigger_posts(log)
    print(f"scheduler restart: {seconds:.1f}s; down {down_for:.1f}s; hook: {hook_posts} "
          f"trigger requests, keys {keys}, {len(target.runs)} run(s), try "
          f"{tis['hook']['try_number']}; trigger requests to {TARGET}: {dict(posts)}")
    report.add(request.node.nodeid, "scale", (20,), [
        "Airflow scheduler SIGKILLed (with its LocalExecutor workers) while three tasks wait "
        "deferred and one is in the worker between its fire and its defer, then restarted",
        str(len(target.runs) + sum(len(r) for r in runs.values())), str(1 + len(targets)),
        str(1 + len(targets) - len(target.runs) - len(runs)),
        str(max(0, len(target.runs) - 1) + sum(len(r) - 1 for r in runs.values())),
        f"mid-fire task: {len(keys)} idempotency key on every trigger request, "
        f"{len(target.runs)} run, task {tis['hook']['state']} (retried: adopted the run); "
        f"deferred tasks: {posts[200]} trigger requests started a run, {len(wrong)} in a "
        f"state other than their run's, resumed (not retried)",
        seconds_bound(0, SCHED_BOUND)],
        figures=(len(target.runs) + sum(len(r) for r in runs.values()), 1 + len(targets),
                 1 + len(targets) - min(1, len(target.runs)) - len(runs),
                 max(0, len(target.runs) - 1) + sum(len(r) - 1 for r in runs.values())))

    assert final["state"] == "failed"  # d1's run failed
    assert wrong == {}
    # The waiting tasks resumed in the try that deferred, not retried.
    assert {t: tis[t]["try_number"] for t in targets} == {t: tries[t] for t in targets}
    assert {t: len(r) for t, r in runs.items()} == {t: 1 for t in targets}
    assert posts[200] == len(targets), posts
    assert set(posts) <= {200, 409, 500, 502, 503, 504}, posts
    # The task killed mid-fire ran again and adopted the run its first try had started.
    assert tis["hook"]["state"] == "success"
    assert tis["hook"]["try_number"] > tries["hook"]
    assert len(target.runs) == 1
    assert hook_posts >= 2
    assert len(keys) == 1
    assert None not in keys
    assert seconds < SCHED_BOUND
