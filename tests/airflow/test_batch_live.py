"""Batched status polls against the live Airflow 3 server (``airflow_server``): 30 concurrent
waits on runs of one DAG share one ``GET .../dagRuns?state=queued&state=running`` request per
interval, and the runs' ends are read from the ended-runs listing (``end_date_gte``) or on
their own, never more than one request per run's end; counted at a forward proxy.

The DAG is ``trigrun_parked_target``, paused: its runs stay queued until the test sets each
one's end through the REST API (half success, half failed), so the waits' outcomes are known
and the live server's SQLite database is not loaded with thirty task runs (which made the
scheduler die of "database is locked" for the rest of the session)."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest

import trigrun
from tests.fixtures.airflow_server import AirflowServer
from tests.helpers.proxy import ForwardProxy

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

N = 30
INTERVAL = 1.0
DAG = "trigrun_parked_target"


def test_30_waits_on_one_dag_share_one_batched_request_per_interval(
        airflow_server: AirflowServer) -> None:
    with ForwardProxy() as proxy:
        spec = trigrun.JobSpec.model_validate({
            "name": f"batched live {uuid.uuid4().hex[:8]}",
            "target": {"type": "airflow", "base_url": airflow_server.base_url, "dag_id": DAG,
                       "proxy": proxy.url, "conf": {"source": "batch"}},
            "auth": {"type": "airflow_password", "username": airflow_server.username,
                     "password": airflow_server.password},
            "wait": {"poll_interval_seconds": INTERVAL, "timeout_seconds": 500}})
        start = datetime.now(timezone.utc).replace(microsecond=0)
        deadline = time.monotonic() + 120
        while airflow_server.api("GET", f"/dags/{DAG}").status_code != 200:
            assert time.monotonic() < deadline, f"DAG {DAG} not parsed"
            time.sleep(1)

        async def main() -> tuple[list[trigrun.RunResult], float]:
            async with trigrun.AsyncEngine() as engine:
                # One fire at a time: each is a write to the live server's SQLite database,
                # and the fires are not what this test is about.
                sem = asyncio.Semaphore(1)

                async def fire(i: int) -> trigrun.TriggerResult:
                    async with sem:
                        return await engine.fire(spec, scheduled_time=start + timedelta(seconds=i))

                fired = await asyncio.gather(*(fire(i) for i in range(N)))
                assert all(f.ok for f in fired), [f.error for f in fired if not f.ok]
                proxy.clear()
                t0 = time.monotonic()
                waits = asyncio.gather(*(engine.wait(f) for f in fired))
                await asyncio.sleep(3 * INTERVAL)  # three batched checks see them queued
                for i, f in enumerate(fired):
                    end = await asyncio.to_thread(
                        airflow_server.api, "PATCH", f"/dags/{DAG}/dagRuns/{f.run_id}",
                        json={"state": "success" if i % 2 == 0 else "failed"})
                    assert end.status_code == 200, end.text[:300]
                results = await waits
                return list(results), time.monotonic() - t0

        results, elapsed = asyncio.run(main())
        gets = [e for e in proxy.entries("GET") if f"/dags/{DAG}/dagRuns" in e.target]
    ended = [e for e in gets if "end_date_gte=" in e.target]
    batches = [e.target for e in gets if "offset=" in e.target and e not in ended]
    singles = [e.target for e in gets if "offset=" not in e.target]
    assert len({r.run_id for r in results}) == N
    # Each wait ended in the state its own run reached (results are in fire order).
    assert [r.state for r in results] == [
        trigrun.RunState.SUCCESS if i % 2 == 0 else trigrun.RunState.FAILED for i in range(N)], \
        [r.message for r in results]
    intervals = elapsed / INTERVAL
    assert len(batches) <= intervals + 2, (len(batches), elapsed)
    # The active listing does not show a run that ended: the runs that left it are read from
    # the listing of runs that ended since (Airflow's end_date_gte filter, accepted by the
    # real server), or on their own: never more requests than one per run's end.
    assert ended, "the ended-runs listing was never read"
    assert len(ended) + len(singles) <= N, (len(ended), singles[:5])
    # (had the server refused the filter, every end would have been read on its own)
    assert len(singles) < N / 2, (len(ended), len(singles))
    print(f"airflow: {N} waits, {elapsed:.1f}s, {len(batches)} active listings, {len(ended)} "
          f"ended listings, {len(singles)} single status requests "
          f"({len(batches) / intervals:.2f} listings per interval)")
