"""``AsyncEngine.run_many`` (fire, then wait, per job) and the queues of ``fire_many`` /
``run_many``, counted at a real local server: how many jobs are in flight at once."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

import trigrun
from tests.helpers.httpserver import LocalServer, Recorded, Reply
from trigrun import JobRun, Upstream

pytestmark = pytest.mark.integration

MEET_CAP = 30.0  # the longest a trigger waits for the others it is to meet (see Jobs.meet)


class Jobs:
    """A webhook target whose runs end on their second status check. It counts the jobs in
    flight: a job enters with its trigger request and leaves when a status check answers its
    end state (a job that does not wait leaves when its trigger is answered).

    ``meet``: every trigger is held until that many jobs of its queue have been in flight at
    once (that happens once; the wait is capped at ``MEET_CAP`` seconds), then ``hold`` more.
    A queue then reaches its limit however slow the machine is to send the next request, and
    a job the limit should have held back would still be in flight alongside them."""

    def __init__(self, srv: LocalServer, *, hold: float = 0.01, fail: frozenset[str] = frozenset(),
                 meet: int = 0):
        self.meet = meet
        self.met = threading.Event()
        self.lock = threading.Lock()
        self.flying: dict[str | None, set[str]] = {}
        self.most: dict[str | None, int] = {}
        self.polls: dict[str, int] = {}
        self.hold = hold
        self.fail = fail
        self.queue_of: dict[str, str | None] = {}
        self.waits: dict[str, bool] = {}
        srv.on("POST", "/jobs/{job}/run", self.trigger)
        srv.on("GET", "/runs/{run}", self.status)

    def _enter(self, job: str) -> None:
        with self.lock:
            for group in {None, self.queue_of.get(job)}:
                s = self.flying.setdefault(group, set())
                s.add(job)
                self.most[group] = max(self.most.get(group, 0), len(s))
            if self.meet and len(self.flying[self.queue_of.get(job)]) >= self.meet:
                self.met.set()

    def _leave(self, job: str) -> None:
        with self.lock:
            for s in self.flying.values():
                s.discard(job)

    def trigger(self, req: Recorded) -> Reply:
        job = req.params["job"]
        self._enter(job)
        if self.meet and not self.met.wait(MEET_CAP):
            self.met.set()  # they never met: the test's check fails, without more waiting
        time.sleep(self.hold)
        if not self.waits.get(job, True):
            self._leave(job)
        return Reply(200, json={"id": job})

    def status(self, req: Recorded) -> Reply:
        run = req.params["run"]
        time.sleep(self.hold)
        with self.lock:
            n = self.polls[run] = self.polls.get(run, 0) + 1
        if n < 2:
            return Reply(json={"state": "running"})
        self._leave(run)
        return Reply(json={"state": "failed" if run in self.fail else "success"})

    def spec(self, srv: LocalServer, n: int, *, queue: dict[str, Any] | None = None,
             waits: bool = True) -> trigrun.JobSpec:
        name = f"job-{n:03d}"
        self.queue_of[name] = queue["name"] if queue else None
        self.waits[name] = waits
        data: dict[str, Any] = {
            "name": name, "request": {"url": f"{srv.url}/jobs/{name}/run",
                                       "timeout_seconds": MEET_CAP + 30 if self.meet else 10},
            "wait": {"enabled": waits, "status_url": srv.url + "/runs/{run_id}",
                     "run_id_path": "id", "status_path": "state",
                     "poll_interval_seconds": 0.05}}
        if queue:
            data["queue"] = queue
        return trigrun.JobSpec.model_validate(data)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_run_many_200_jobs_at_concurrency_20(server: LocalServer) -> None:
    jobs = Jobs(server)
    specs = [jobs.spec(server, n) for n in range(200)]
    phases: list[tuple[int, str]] = []

    async def go() -> list[JobRun]:
        async with trigrun.AsyncEngine() as engine:
            return await engine.run_many(specs, concurrency=20,
                                         on_progress=lambda i, _r, p: phases.append((i, p)))

    t0 = time.monotonic()
    got = run(go())
    took = time.monotonic() - t0
    assert [r.trigger.job for r in got] == [s.name for s in specs]  # in the order given
    assert all(r.ok for r in got)
    assert [r.run.run_id if r.run else None for r in got] == [s.name for s in specs]
    assert all(r.run is not None and r.run.state is trigrun.RunState.SUCCESS for r in got)
    # Never more than 20 jobs between their fire and their run's end (and close to 20 at
    # once: 20 unless the machine is slow to start them).
    assert 15 <= jobs.most[None] <= 20
    assert all(jobs.polls[s.name] == 2 for s in specs)
    assert len(phases) == 600
    assert {p for _, p in phases} == {"firing", "waiting", "done"}
    assert took < 30


def test_a_queue_limit_holds_across_the_engine(server: LocalServer) -> None:
    jobs = Jobs(server, hold=0.02)
    wh = {"name": "warehouse", "concurrency_limit": 3}
    # The last 20 go through fire_many, which does not wait: they leave with their trigger.
    specs = [jobs.spec(server, n, queue=wh if n % 3 == 0 else None, waits=n < 40)
             for n in range(60)]

    async def go() -> tuple[list[JobRun], list[trigrun.TriggerResult]]:
        async with trigrun.AsyncEngine() as engine:
            # Two calls at once on one engine share the queue's limit.
            return await asyncio.gather(engine.run_many(specs[:40], concurrency=20),
                                        engine.fire_many(specs[40:], concurrency=20))

    runs, fires = run(go())
    assert all(r.ok for r in runs)
    assert all(f.ok for f in fires)
    # A queue job may hold its queue slot while it waits for one of the call's slots, so
    # the queue is not always full; it never holds more than 3.
    assert 2 <= jobs.most["warehouse"] <= 3
    assert jobs.most[None] > 3  # the other jobs were not held behind the queue


def test_fire_many_honours_the_queue(server: LocalServer) -> None:
    jobs = Jobs(server, hold=0.05, meet=2)
    q = {"name": "slow", "concurrency_limit": 2}
    specs = [jobs.spec(server, n, queue=q, waits=False) for n in range(10)]

    async def go() -> list[trigrun.TriggerResult]:
        async with trigrun.AsyncEngine() as engine:
            return await engine.fire_many(specs, concurrency=10)

    got = run(go())
    assert [r.job for r in got] == [s.name for s in specs]
    assert jobs.most["slow"] == 2


def test_run_many_results_say_what_failed(server: LocalServer) -> None:
    jobs = Jobs(server, fail=frozenset({"job-001"}))
    specs = [jobs.spec(server, 0), jobs.spec(server, 1), jobs.spec(server, 2, waits=False),
             trigrun.JobSpec.model_validate({"name": "broken", "request": {
                 "url": server.url + "/nowhere"}, "retry_policy": {"max_attempts": 1}})]

    async def go() -> list[JobRun]:
        async with trigrun.AsyncEngine() as engine:
            return await engine.run_many(specs, concurrency=4)

    ok, failed, no_wait, broken = run(go())
    assert ok.ok
    assert ok.run is not None
    assert not failed.ok
    assert failed.trigger.ok
    assert failed.run is not None
    assert failed.run.state is trigrun.RunState.FAILED
    assert no_wait.ok
    assert no_wait.run is None
    assert no_wait.trigger.run_id == "job-002"
    assert not broken.ok
    assert broken.run is None
    assert broken.trigger.status_code == 404
    assert broken.to_log()["run"] is None


def test_run_many_passes_the_upstream(server: LocalServer) -> None:
    server.on("POST", "/api/v2/dags/etl/dagRuns",
              lambda r: Reply(200, json={"dag_run_id": r.json()["dag_run_id"], "state": "queued"}))
    spec = trigrun.JobSpec.model_validate({
        "name": "etl", "wait": {"enabled": False},
        "target": {"type": "airflow", "base_url": server.url, "dag_id": "etl"}})
    cli = Upstream(kind="cli", name="trigrun CLI on build-7", url=None)

    async def go() -> list[JobRun]:
        async with trigrun.AsyncEngine() as engine:
            return await engine.run_many([spec], upstream=cli)

    (got,) = run(go())
    assert got.ok
    assert got.run is None
    (sent,) = server.requests_to("/api/v2/dags/etl/dagRuns")
    assert sent.json()["note"] == "Triggered by trigrun CLI on build-7"
    assert sent.json()["conf"]["trigrun"] == {"upstream": cli.name, "upstream_url": None,
                                              "kind": "cli"}


def test_a_delayed_job_holds_no_slot_while_it_waits(server: LocalServer) -> None:
    jobs = Jobs(server, hold=0.0)
    specs = [jobs.spec(server, n, waits=False).model_copy(update={"delay_seconds": 0.3})
             for n in range(4)]

    async def go(method: str) -> float:
        async with trigrun.AsyncEngine() as engine:
            t0 = time.monotonic()
            got = await getattr(engine, method)(specs, concurrency=1)
            assert all(r.ok for r in got)
            return t0

    for method in ("run_many", "fire_many"):
        server.requests.clear()
        t0 = run(go(method))
        arrivals = [r.at - t0 for r in server.requests_to(method=None)]
        assert len(arrivals) == 4
        # All four delays ran at once (one slot): every fire 0.3 s after the call, and not
        # one delay after another (which would put the last at 1.2 s).
        assert min(arrivals) >= 0.3
        assert max(arrivals) < 0.9


def test_concurrency_must_be_at_least_one() -> None:
    async def go() -> None:
        async with trigrun.AsyncEngine() as engine:
            with pytest.raises(ValueError, match="concurrency"):
                await engine.run_many([], concurrency=0)

    run(go())
