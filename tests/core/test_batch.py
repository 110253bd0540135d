"""Batched status polls and the per-origin limiter of ``AsyncEngine``, on real local servers.

The fakes count what really went over the wire: every test asserts on the requests the
server received (how many batched reads, how far apart, how many runs read on their own).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from itertools import pairwise
from typing import Any

import pytest

import trigrun
from tests.helpers.fakes import DEP_1, FakeAirflow, FakeDagster, FakeDbtCloud, FakePrefect
from tests.helpers.httpserver import LocalServer, Recorded, Reply
from trigrun import _engine
from trigrun._batch import GRID_OFFSET, flush_at, next_start, pause_until

SCHEDULED = datetime(2026, 3, 1, 6, 0, tzinfo=timezone.utc)
INTERVAL = 0.5
N = 30


# -- pure decisions ------------------------------------------------------------------------
def test_flush_on_a_fixed_grid() -> None:
    # Grid points: multiples of the window plus 25 ms (sleeping waits wake on the multiples).
    assert flush_at(10.1, 0.25, -1.0) == pytest.approx(10.275)
    # Woken at a multiple, a few ms late from the loop's lag: still the flush just after it.
    assert flush_at(10.256, 0.25, 10.025) == pytest.approx(10.275)
    # ... but not when that flush already ran: the next one.
    assert flush_at(10.256, 0.25, 10.275) == pytest.approx(10.525)
    # Phase kept: asking one interval (a multiple of the window) later hits the same phase.
    assert flush_at(10.1 + 5.0, 0.25, 10.275) == pytest.approx(15.275)


def test_limiter_decisions() -> None:
    # No ceiling, no pause: no wait, nothing spaced.
    assert next_start(5.0, 0.0, 0.0, 0.0) == (5.0, 0.0)
    # Behind a pause: starts when it ends; the next queued send one release gap later.
    assert next_start(5.0, 8.0, 0.0, 0.0, 0.02) == (8.0, pytest.approx(8.02))
    assert next_start(5.0, 8.0, 8.02, 0.0, 0.02) == (pytest.approx(8.02), pytest.approx(8.04))
    # A ceiling of 4/s spaces every send.
    assert next_start(5.0, 0.0, 5.1, 0.25) == (5.1, pytest.approx(5.35))
    # 429/503 with Retry-After pause once; the same answer again extends, never adds up.
    assert pause_until(429, 3.0, 10.0, 0.0, 300.0) == 13.0
    assert pause_until(503, 3.0, 10.1, 13.0, 300.0) == pytest.approx(13.1)
    assert pause_until(500, 3.0, 10.0, 0.0, 300.0) == 0.0
    assert pause_until(429, None, 10.0, 0.0, 300.0) == 0.0
    assert pause_until(429, 9999.0, 10.0, 0.0, 60.0) == 70.0


# -- harness -------------------------------------------------------------------------------
def _spec(target: dict[str, Any], **wait: Any) -> trigrun.JobSpec:
    return trigrun.JobSpec.model_validate({
        "name": "batched", "target": target,
        "wait": {"poll_interval_seconds": INTERVAL, "timeout_seconds": 60, **wait}})


async def _fire_all(engine: trigrun.AsyncEngine, spec: trigrun.JobSpec, n: int,
                    first: int = 0) -> list[str]:
    fired = await asyncio.gather(*(engine.fire(spec, scheduled_time=SCHEDULED + timedelta(minutes=i))
                                   for i in range(first, first + n)))
    assert all(f.ok for f in fired), [f.error for f in fired if not f.ok]
    return [str(f.run_id) for f in fired]


def _final(i: int) -> str:
    return "failed" if i % 3 == 0 else "success"


Classify = Callable[[Recorded], str | None]  # "batch", "single" or None (not a status read)


def _status_reads(server: LocalServer, classify: Classify, since: float) -> tuple[list[float], int]:
    batches, singles = [], 0
    for r in server.requests_to():
        if r.at < since:
            continue
        kind = classify(r)
        if kind == "batch":
            batches.append(r.at)
        elif kind == "single":
            singles += 1
    return sorted(batches), singles


def _assert_polled_every(times: list[float], interval: float) -> None:
    """Polls at a fixed rate of ``interval``, as measured at the server. A poll the loaded
    loop sent late is followed by a shorter gap, never shorter than half an interval; and
    since each check is counted from when the last was asked for, not when it went out,
    late sends do not shift the whole span (n polls: n - 1 intervals, give or take how late
    the first and the last went out). Polling at half or twice the interval fails the span."""
    gaps = [b - a for a, b in pairwise(times)]
    assert all(g >= 0.5 * interval - 0.05 for g in gaps), (interval, gaps)
    span = times[-1] - times[0]
    want = (len(times) - 1) * interval
    assert want - 0.1 <= span <= want + 0.5, (interval, span, gaps)


async def _just_past_a_flush_slot() -> None:
    """Sleep to just after a grid point of the poll groups' flushes (of the 0.25 s window
    and of a listing's 0.5 s one alike), so that waits started now all ask their first check
    within one window: it is in one flush, and a count of batches holds on a loaded machine.
    A wake-up too late for that (a stall) waits for the next grid point."""
    loop = asyncio.get_running_loop()
    window = 0.5  # a multiple of both windows: its grid points are on both grids
    while True:
        phase = (loop.time() - GRID_OFFSET) % window
        if phase < 0.05:
            return
        await asyncio.sleep(window - phase + 0.005)


def _assert_one_batch_per_interval(batches: list[float]) -> None:
    assert batches, "no batched status request was sent"
    _assert_polled_every(batches, INTERVAL)


STALL = 0.25  # seconds the event loop ran late: the machine stalled under the test


async def _longest_lag(done: asyncio.Event) -> float:
    """The longest the event loop woke late for a 20 ms tick until ``done``."""
    loop, worst = asyncio.get_running_loop(), 0.0
    while not done.is_set():
        due = loop.time() + 0.02
        await asyncio.sleep(0.02)
        worst = max(worst, loop.time() - due)
    return worst


async def _run_case(server: LocalServer, spec: trigrun.JobSpec, set_final: Callable[[int, str], None],
                    classify: Classify, *, expect_singles: int) -> None:
    """30 waits; every attempt must end each in its run's state at one batch per interval.
    The request counts hold while the event loop runs on time: when the machine stalled
    (the loop woke ``STALL`` late) and they are off, the case runs once more."""
    for attempt in range(2):
        done = asyncio.Event()
        lag = asyncio.create_task(_longest_lag(done))
        async with trigrun.AsyncEngine() as engine:
            run_ids = await _fire_all(engine, spec, N, first=attempt * N)
            for i, rid in enumerate(run_ids):
                set_final(i, rid)
            start = server.requests_to()[-1].at
            await _just_past_a_flush_slot()
            results = await asyncio.gather(*(engine.wait(spec, rid) for rid in run_ids))
        done.set()
        worst = await lag
        want = {rid: (trigrun.RunState.FAILED if _final(i) == "failed"
                      else trigrun.RunState.SUCCESS) for i, rid in enumerate(run_ids)}
        assert {r.run_id: r.state for r in results} == want, [r.message for r in results][:3]
        batches, singles = _status_reads(server, classify, start)
        _assert_one_batch_per_interval(batches)
        # queued -> running -> end: three reads of every run, in three batched requests
        counts = (len(batches), singles)
        if counts == (3, expect_singles) or worst < STALL:
            break
    assert counts == (3, expect_singles), (counts, batches, f"loop lag {worst:.2f}s")


# -- the four targets, 30 concurrent waits each ----------------------------------------------
@pytest.mark.integration
def test_dagster_30_waits_share_one_batched_request_per_interval(server: LocalServer) -> None:
    fake = FakeDagster(server, statuses=["QUEUED"])
    spec = _spec({"type": "dagster", "base_url": fake.base_url, "job_name": "etl",
                  "repository_name": "__repository__", "repository_location_name": "loc"})

    def set_final(i: int, rid: str) -> None:
        run = fake._find(rid)
        assert run is not None
        run["script"] = ["QUEUED", "STARTED", "FAILURE" if _final(i) == "failed" else "SUCCESS"]

    def classify(r: Recorded) -> str | None:
        q = (r.json() or {}).get("query", "")
        return "batch" if "TrigrunBatchStatus" in q else "single" if "TrigrunStatus" in q else None

    asyncio.run(_run_case(server, spec, set_final, classify, expect_singles=0))
    assert fake.batch_reads == 3


@pytest.mark.integration
def test_prefect_30_waits_share_one_batched_request_per_interval(server: LocalServer) -> None:
    fake = FakePrefect(server)
    spec = _spec({"type": "prefect", "base_url": fake.api_url, "deployment_id": DEP_1})

    def set_final(i: int, rid: str) -> None:
        fake._scripts[rid] = ["PENDING", "RUNNING", "FAILED" if _final(i) == "failed" else "COMPLETED"]

    def classify(r: Recorded) -> str | None:
        if r.path == "/api/flow_runs/filter" and "any_" in json.dumps((r.json() or {}).get("flow_runs", {}).get("id", {})):
            return "batch"
        return "single" if r.method == "GET" and r.path.startswith("/api/flow_runs/") else None

    asyncio.run(_run_case(server, spec, set_final, classify, expect_singles=0))


@pytest.mark.integration
@pytest.mark.parametrize("version", ["v2", "v1"])
def test_airflow_30_waits_share_one_batched_request_per_interval(server: LocalServer,
                                                                 version: str) -> None:
    # REST v1 (Airflow 2) has the same list filters and paging as v2: it batches the same way.
    fake = FakeAirflow(server, states=["queued"], api_version=version)
    spec = _spec({"type": "airflow", "base_url": fake.base_url, "dag_id": "etl",
                  "api_version": version})

    def set_final(i: int, rid: str) -> None:
        fake.runs[("etl", rid)].states = ["queued", "running", _final(i)]

    def classify(r: Recorded) -> str | None:
        if r.method != "GET" or not r.path.startswith(f"/api/{version}/dags/etl/dagRuns"):
            return None
        if "end_date_gte" in r.query:
            return None  # counted below
        return "batch" if "offset" in r.query else "single"

    # The active listing shows queued and running runs; the runs that left it are read from
    # the listing of runs that ended since the last one, in one request, not one by one.
    asyncio.run(_run_case(server, spec, set_final, classify, expect_singles=0))
    assert fake.ended_reads == 1


@pytest.mark.integration
def test_airflow_runs_a_listing_cannot_show_are_read_on_their_own(server: LocalServer) -> None:
    # An Airflow whose list endpoint ignores end_date_gte (here: answers with active runs
    # only): every run's end is still read, on its own, once.
    fake = FakeAirflow(server, states=["queued"])
    spec = _spec({"type": "airflow", "base_url": fake.base_url, "dag_id": "etl"})
    listing = fake._list

    def no_ended(req: Recorded) -> Reply:
        if "end_date_gte" in req.query:
            return Reply(200, json={"dag_runs": [], "total_entries": 0})
        return listing(req)

    server.on("GET", "/api/v2/dags/{dag_id}/dagRuns", no_ended)

    def set_final(i: int, rid: str) -> None:
        fake.runs[("etl", rid)].states = ["queued", "running", _final(i)]

    def classify(r: Recorded) -> str | None:
        if r.method != "GET" or not r.path.startswith("/api/v2/dags/etl/dagRuns"):
            return None
        if "end_date_gte" in r.query:
            return None
        return "batch" if "offset" in r.query else "single"

    asyncio.run(_run_case(server, spec, set_final, classify, expect_singles=N))


def _dbt_classify(r: Recorded) -> str | None:
    if r.method != "GET" or "/runs/" not in r.path:
        return None
    if "pk__in" in r.query:
        return None  # the runs that left the active listing, read by id: counted apart
    return "batch" if "offset" in r.query else "single"


@pytest.mark.integration
def test_dbt_cloud_30_waits_share_one_batched_request_per_interval(server: LocalServer) -> None:
    fake = FakeDbtCloud(server, statuses=[1])
    spec = _spec({"type": "dbt_cloud", "base_url": fake.base_url, "account_id": 1, "job_id": 42})

    def set_final(i: int, rid: str) -> None:
        fake._scripts[int(rid)] = [1, 3, 20 if _final(i) == "failed" else 10]

    # The runs that left the active listing are read by id (pk__in) in one request, not one
    # by one.
    asyncio.run(_run_case(server, spec, set_final, _dbt_classify, expect_singles=0))
    by_id = [r for r in server.requests_to() if "pk__in" in r.query]
    assert 1 <= fake.id_reads == len(by_id) <= 2  # one per run of the case (it may run twice)
    assert all(len(json.loads(r.query["pk__in"][0])) == N for r in by_id)


# -- fallback, malformed reply, opt-outs -----------------------------------------------------
@pytest.mark.integration
@pytest.mark.parametrize("target", ["prefect", "dbt_cloud"])
def test_a_404_from_the_batch_endpoint_falls_back_to_per_run_polls_for_good(
        server: LocalServer, target: str, caplog: pytest.LogCaptureFixture) -> None:
    if target == "prefect":
        fake: Any = FakePrefect(server, states=["PENDING", "RUNNING", "COMPLETED"])
        spec = _spec({"type": "prefect", "base_url": fake.api_url, "deployment_id": DEP_1})
        batch_path, method = "/api/flow_runs/filter", "POST"
    else:
        fake = FakeDbtCloud(server, statuses=[1, 3, 10])
        spec = _spec({"type": "dbt_cloud", "base_url": fake.base_url, "account_id": 1, "job_id": 42})
        batch_path, method = "/api/v2/accounts/1/runs/", "GET"

    async def main() -> list[trigrun.RunResult]:
        async with trigrun.AsyncEngine() as engine:
            run_ids = await _fire_all(engine, spec, 10)
            server.on(method, batch_path, Reply(404, json={"detail": "Not Found"}))
            return list(await asyncio.gather(*(engine.wait(spec, rid) for rid in run_ids)))

    with caplog.at_level(logging.WARNING, logger="trigrun"):
        results = asyncio.run(main())
    assert all(r.state is trigrun.RunState.SUCCESS for r in results), [r.message for r in results]
    asked = [r for r in server.requests_to(batch_path) if r.method == method
             and ("offset" in r.query if target == "dbt_cloud" else "any_" in r.text)]
    assert len(asked) == 1  # asked once, never again
    warnings = [r for r in caplog.records if "polled one by one" in r.getMessage()]
    assert len(warnings) == 1
    assert fake.batch_reads == 0


@pytest.mark.integration
def test_a_malformed_batch_reply_is_a_failed_check_for_each_wait(server: LocalServer) -> None:
    fake = FakeDagster(server, statuses=["QUEUED", "STARTED", "SUCCESS"])
    spec = _spec({"type": "dagster", "base_url": fake.base_url, "job_name": "etl",
                  "repository_name": "__repository__", "repository_location_name": "loc"})
    events: list[trigrun.Event] = []

    async def main() -> list[trigrun.RunResult]:
        async with trigrun.AsyncEngine(on_event=events.append) as engine:
            run_ids = await _fire_all(engine, spec, 10)
            # A proxy's error page once, then the real endpoint again.
            server.on("POST", "/graphql", Reply(200, body="<html>502 Bad Gateway</html>"),
                      fake._graphql)
            return list(await asyncio.gather(*(engine.wait(spec, rid) for rid in run_ids)))

    results = asyncio.run(main())
    assert all(r.state is trigrun.RunState.SUCCESS for r in results), [r.message for r in results]
    errors = [e for e in events if e.kind == "poll_error"]
    assert len(errors) == 10  # one failed check per wait, counted and backed off as a poll's
    assert all("batched status reply could not be read" in e.message for e in errors)


@pytest.mark.integration
@pytest.mark.parametrize("how", ["engine", "job"])
def test_batching_can_be_turned_off(server: LocalServer, how: str) -> None:
    fake = FakeDagster(server, statuses=["QUEUED", "SUCCESS"])
    spec = _spec({"type": "dagster", "base_url": fake.base_url, "job_name": "etl",
                  "repository_name": "__repository__", "repository_location_name": "loc"}, **({"batch": False} if how == "job" else {}))

    async def main() -> None:
        async with trigrun.AsyncEngine(batch_polls=how != "engine") as engine:
            run_ids = await _fire_all(engine, spec, 5)
            results = await asyncio.gather(*(engine.wait(spec, rid) for rid in run_ids))
            assert all(r.state is trigrun.RunState.SUCCESS for r in results)

    asyncio.run(main())
    assert fake.batch_reads == 0


@pytest.mark.integration
def test_waits_with_different_intervals_share_a_group_and_none_polls_faster(
        server: LocalServer) -> None:
    fake = FakeDagster(server, statuses=["QUEUED"] * 7 + ["SUCCESS"])
    spec = _spec({"type": "dagster", "base_url": fake.base_url, "job_name": "etl",
                  "repository_name": "__repository__", "repository_location_name": "loc"})

    async def main() -> tuple[list[str], list[trigrun.RunResult]]:
        async with trigrun.AsyncEngine() as engine:
            run_ids = await _fire_all(engine, spec, 6)
            waits = [engine.wait(spec, rid, poll_interval=0.5 if i % 2 else 1.0)
                     for i, rid in enumerate(run_ids)]
            await _just_past_a_flush_slot()  # every wait's checks in the flushes of the others
            return run_ids, list(await asyncio.gather(*waits))

    run_ids, results = asyncio.run(main())
    assert all(r.state is trigrun.RunState.SUCCESS for r in results)
    seen: dict[str, list[float]] = {rid: [] for rid in run_ids}
    for r in server.requests_to("/graphql"):
        body = r.json() or {}
        if "TrigrunBatchStatus" in body.get("query", ""):
            for rid in body["variables"]["filter"]["runIds"]:
                seen[rid].append(r.at)
    for i, rid in enumerate(run_ids):
        asked = 0.5 if i % 2 else 1.0
        assert len(seen[rid]) == 8
        # Never sooner than half its interval after the last; over the 7 gaps, its own
        # interval: a 0.5 s wait polled at 1 s (or the reverse) fails.
        _assert_polled_every(seen[rid], asked)


# -- the limiter -----------------------------------------------------------------------------
@pytest.mark.integration
@pytest.mark.timeout(60)
def test_a_429_with_retry_after_pauses_the_group_once_with_no_burst_after(
        server: LocalServer, caplog: pytest.LogCaptureFixture) -> None:
    fake = FakePrefect(server, states=["PENDING"] + ["RUNNING"] * 6 + ["COMPLETED"])
    spec = _spec({"type": "prefect", "base_url": fake.api_url, "deployment_id": DEP_1})
    n = 100

    async def main() -> list[trigrun.RunResult]:
        async with trigrun.AsyncEngine() as engine:
            run_ids = await _fire_all(engine, spec, n)
            ok = fake._filter
            server.on("POST", "/api/flow_runs/filter", ok, ok,
                      Reply(429, headers={"Retry-After": "3"}, json={"detail": "slow down"}), ok)
            await _just_past_a_flush_slot()
            return list(await asyncio.gather(*(engine.wait(spec, rid) for rid in run_ids)))

    with caplog.at_level(logging.INFO, logger="trigrun"):
        results = asyncio.run(main())
    assert all(r.state is trigrun.RunState.SUCCESS for r in results), [r.message for r in results][:3]
    reads = [r for r in server.requests_to("/api/flow_runs/filter") if "any_" in r.text]
    statuses = [r for r in server.requests_to() if r.path.startswith("/api/flow_runs/")
                and r.method == "GET"]
    assert not statuses  # nobody fell back to reading its run on its own
    times = [r.at for r in reads]
    gaps = [b - a for a, b in pairwise(times)]
    # reads 1, 2 ok, 3 answered 429: the next read comes one pause (3 s) later, not sooner
    assert 2.9 <= gaps[2] <= 4.0, gaps
    # and never a burst: one read per interval before and after the pause (a fixed 0.5 s
    # bucketing would split grid jitter of a few ms; the gaps are the exact measure)
    _assert_polled_every(times[:3], INTERVAL)
    _assert_polled_every(times[3:], INTERVAL)
    pauses = [r for r in caplog.records if "answered HTTP 429 with Retry-After" in r.getMessage()]
    assert len(pauses) == 1


def _status_spec(server: LocalServer) -> trigrun.JobSpec:
    """A webhook job whose status URL answers "done" at once (no batch API: per-run reads)."""
    server.on("GET", "/status/{run_id}", lambda req: Reply(json={"status": "done"}))
    return trigrun.JobSpec.model_validate({
        "name": "hook",
        "request": {"url": server.url + "/hook", "method": "POST"},
        "wait": {"status_url": server.url + "/status/{run_id}", "status_path": "status",
                 "run_id_path": "id", "poll_interval_seconds": 0.5}})


class _Turns:
    """The start times the per-origin limiter hands out: its own decisions (``next_start``,
    as the engines call it), which a stalled process cannot bunch up."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.starts: list[float] = []
        real = _engine.next_start

        def spy(now: float, paused_until: float, next_free: float, gap: float,
                *args: Any) -> tuple[float, float]:
            start, free = real(now, paused_until, next_free, gap, *args)
            self.starts.append(start)
            return start, free

        monkeypatch.setattr(_engine, "next_start", spy)


def _assert_spaced_at_20_per_second(times: list[float], starts: list[float]) -> None:
    # 20/s: the limiter gives the sends turns 50 ms apart, whichever task or thread sends.
    starts = sorted(starts)
    assert len(starts) == 10
    turns = [b - a for a, b in pairwise(starts)]
    assert all(t >= 0.05 - 1e-9 for t in turns), turns
    # On the wire, every send waited for its turn: the k-th arrival is not before the k-th
    # turn. Arrivals jitter with the load (a stalled process sends the turns it slept through
    # at once), so: ten sends take at least 0.35 s, and no 100 ms holds more than six of them
    # (without the ceiling: all ten at once).
    gaps = [b - a for a, b in pairwise(times)]
    assert len(times) == 10
    assert all(t >= s - 0.001 for t, s in zip(times, starts, strict=True)), (times, starts)
    assert times[-1] - times[0] >= 0.35, gaps
    assert max(sum(1 for t in times if a <= t < a + 0.1) for a in times) <= 6, gaps


@pytest.mark.integration
def test_per_origin_ceiling_spaces_every_send(server: LocalServer,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    spec = _status_spec(server)
    turns = _Turns(monkeypatch)

    async def main() -> None:
        async with trigrun.AsyncEngine(max_requests_per_second=20) as engine:
            results = await asyncio.gather(*(engine.wait(spec, f"r{i}") for i in range(10)))
            assert all(r.state is trigrun.RunState.SUCCESS for r in results)

    asyncio.run(main())
    _assert_spaced_at_20_per_second(sorted(r.at for r in server.requests_to()), turns.starts)


@pytest.mark.integration
def test_the_sync_engine_shares_the_per_origin_ceiling_across_threads(
        server: LocalServer, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = _status_spec(server)
    turns = _Turns(monkeypatch)
    with trigrun.Engine(max_requests_per_second=20) as engine, ThreadPoolExecutor(5) as pool:
        # Warm up: each thread's first send also builds its client, which delays its arrival
        # at the server by a varying few ms and would bunch arrivals the limiter spaced.
        list(pool.map(lambda i: engine.poll(spec, f"warm{i}"), range(10)))
        since = time.monotonic()
        turns.starts.clear()
        states = list(pool.map(lambda i: engine.poll(spec, f"r{i}").state, range(10)))
    assert states == [trigrun.RunState.SUCCESS] * 10
    _assert_spaced_at_20_per_second(sorted(r.at for r in server.requests_to() if r.at >= since),
                                    turns.starts)


@pytest.mark.integration
def test_a_retry_after_seen_by_one_sync_thread_holds_the_others(server: LocalServer) -> None:
    calls: list[float] = []

    def status(req: Recorded) -> Reply:
        calls.append(time.monotonic())
        if len(calls) == 1:
            return Reply(503, headers={"Retry-After": "1"}, json={"detail": "busy"})
        return Reply(json={"status": "done"})

    server.on("GET", "/status/{run_id}", status)
    spec = trigrun.JobSpec.model_validate({
        "name": "hook",
        "request": {"url": server.url + "/hook", "method": "POST"},
        "wait": {"status_url": server.url + "/status/{run_id}", "status_path": "status",
                 "run_id_path": "id"}})
    with trigrun.Engine() as engine:
        first = engine.poll(spec, "r0")
        t0 = time.monotonic()
        second = engine.poll(spec, "r1")  # another run, same origin: waits out the pause
    assert first.state is trigrun.RunState.UNKNOWN
    assert second.state is trigrun.RunState.SUCCESS
    assert time.monotonic() - t0 >= 0.9
    assert calls[1] - calls[0] >= 0.9


# -- webhook: a batch status URL of the receiver's own ----------------------------------------
def _webhook_spec(server: LocalServer, **wait: Any) -> trigrun.JobSpec:
    return trigrun.JobSpec.model_validate({
        "name": "hook batch",
        "request": {"url": server.url + "/hook", "method": "POST"},
        "wait": {"status_url": server.url + "/runs/{run_id}", "status_path": "state",
                 "run_id_path": "id", "run_url_path": "url",
                 "batch_status_url": server.url + "/runs?ids={run_ids}",
                 "batch_runs_path": "data.runs", "poll_interval_seconds": INTERVAL,
                 "timeout_seconds": 60, **wait}})


@pytest.mark.integration
def test_webhook_batch_status_url_reads_many_runs_per_request(server: LocalServer) -> None:
    reads: dict[str, int] = {}
    final = {f"r/{i}": ("failed" if i % 3 == 0 else "done") for i in range(N)}

    def state(rid: str) -> str:
        reads[rid] = reads.get(rid, 0) + 1
        return ["queued", "running"][reads[rid] - 1] if reads[rid] <= 2 else final[rid]

    def batch(req: Recorded) -> Reply:
        ids = req.query["ids"][0].split(",")
        # the run ids arrive percent-encoded one by one: "r/0" as "r%2F0"
        assert "%2F" in req.target
        return Reply(json={"data": {"runs": [
            {"id": rid, "state": state(rid), "url": f"https://svc/{rid}"} for rid in ids
            if rid != "r/7"]}})  # one run the receiver's list leaves out

    server.on("GET", "/runs", batch)
    server.on("GET", "/runs/{run_id}", lambda req: Reply(json={"state": "done"}))
    spec = _webhook_spec(server, batch_size=20)

    async def main() -> list[trigrun.RunResult]:
        async with trigrun.AsyncEngine() as engine:
            await _just_past_a_flush_slot()  # the 30 first checks in one flush
            return list(await asyncio.gather(*(engine.wait(spec, rid) for rid in final)))

    results = asyncio.run(main())
    want = {rid: trigrun.RunState.FAILED if v == "failed" else trigrun.RunState.SUCCESS
            for rid, v in final.items()}
    assert {r.run_id: r.state for r in results} == want
    assert {r.run_url for r in results if r.run_id != "r/7"} == \
        {f"https://svc/{rid}" for rid in final if rid != "r/7"}
    batches = sorted(r.at for r in server.requests_to("/runs"))
    singles = [r for r in server.requests_to() if r.path.startswith("/runs/")]
    assert len(batches) == 3 * 2  # three checks, 30 ids in pages of 20
    assert {r.path for r in singles} == {"/runs/r%2F7"}  # only the run the list left out


def test_webhook_batch_status_url_needs_the_run_ids_placeholder(server: LocalServer) -> None:
    with pytest.raises(trigrun.SpecValidationError) as err:
        _webhook_spec(server, batch_status_url=server.url + "/runs")
    assert "wait.batch_status_url" in str(err.value)
    assert "{run_ids}" in str(err.value)


@pytest.mark.integration
def test_a_listing_claiming_a_huge_total_is_not_paged_through(server: LocalServer) -> None:
    # The reply's total_entries is untrusted: a target claiming 10**13 runs must not make
    # trigrun build (or ask for) a page per claimed run; the waits end on page one's answer.
    fake = FakeAirflow(server, states=["queued"])
    spec = _spec({"type": "airflow", "base_url": fake.base_url, "dag_id": "etl"},
                 timeout_seconds=20)
    listing = fake._list

    def huge(req: Recorded) -> Reply:
        reply = listing(req)
        if "offset" in req.query and "end_date_gte" not in req.query:
            return Reply(200, json={**(reply.json or {}), "total_entries": 10**13})
        return reply

    server.on("GET", "/api/v2/dags/{dag_id}/dagRuns", huge)

    async def case() -> list[trigrun.RunResult]:
        async with trigrun.AsyncEngine() as engine:
            run_ids = await _fire_all(engine, spec, 3)
            for rid in run_ids:
                fake.runs[("etl", rid)].states = ["queued", "running", "success"]
            return list(await asyncio.gather(*(engine.wait(spec, rid) for rid in run_ids)))

    results = asyncio.run(case())
    assert [r.state for r in results] == [trigrun.RunState.SUCCESS] * 3, [r.message for r in results]
    pages = [r for r in server.requests_to() if "offset" in r.query
             and "end_date_gte" not in r.query and r.query["offset"] != ["0"]]
    assert len(pages) <= 3


def test_dbt_cloud_reads_by_id_only_ascii_digit_ids_as_numbers() -> None:
    # str.isdigit() takes Unicode digits ("١٢", "²"): int() of them would read another run
    # (or raise). Only ASCII decimal ids are sent as numbers; the rest stay strings.
    from urllib.parse import parse_qs, urlsplit

    from trigrun._targets import preset_for

    spec = trigrun.JobSpec.model_validate({"name": "j", "target": {
        "type": "dbt_cloud", "account_id": 1, "job_id": 2}})
    (call,) = preset_for(spec).batch_ended_calls(["12", "\u0661\u0662", "\u00b2"]) or []
    (ids,) = parse_qs(urlsplit(call.url).query)["pk__in"]
    assert json.loads(ids) == [12, "\u0661\u0662", "\u00b2"]
