"""Batched status polls against the live Dagster webserver (``dagster_server``): 30 concurrent
waits on runs of one job share one ``runsOrError(filter: {runIds})`` request per interval,
counted at a forward proxy in front of the server."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta, timezone

import pytest

import trigrun
from tests.dagster.test_dagster_live import target_spec
from tests.fixtures.dagster_server import DagsterServer
from tests.helpers.proxy import ForwardProxy

pytestmark = [pytest.mark.integration, pytest.mark.timeout(400)]

N = 30
INTERVAL = 1.0


def test_30_waits_on_one_job_share_one_batched_request_per_interval(
        dagster_server: DagsterServer) -> None:
    with ForwardProxy() as proxy:
        base = target_spec(dagster_server)
        data = base.model_dump(mode="json", exclude_none=True)
        data["target"]["proxy"] = proxy.url
        data["wait"] = {"poll_interval_seconds": INTERVAL, "timeout_seconds": 300}
        spec = trigrun.JobSpec.model_validate(data)
        start = datetime(2026, 3, 8, tzinfo=timezone.utc)

        async def main() -> tuple[list[trigrun.RunResult], float]:
            async with trigrun.AsyncEngine() as engine:
                # A few launches at a time: 30 at once time out on a 2-core box's webserver
                # (retried and adopted, but the launches are not what this test is about).
                sem = asyncio.Semaphore(3)

                async def fire(i: int) -> trigrun.TriggerResult:
                    async with sem:
                        return await engine.fire(spec, scheduled_time=start + timedelta(minutes=i))

                fired = await asyncio.gather(*(fire(i) for i in range(N)))
                assert all(f.ok for f in fired), [f.error for f in fired if not f.ok]
                proxy.clear()
                t0 = time.monotonic()
                results = await asyncio.gather(*(engine.wait(f) for f in fired))
                return list(results), time.monotonic() - t0

        results, elapsed = asyncio.run(main())
        reads = [e for e in proxy.entries("POST") if e.target.endswith("/graphql")]
    states = {r.run_id: r.state for r in results}
    assert len(states) == N
    # Each wait ends in the state its run reached (on a loaded box a run worker may fail).
    reached = {run_id: dagster_server.run_status(run_id) for run_id in states}
    assert states == {run_id: {"SUCCESS": trigrun.RunState.SUCCESS,
                               "FAILURE": trigrun.RunState.FAILED,
                               "CANCELED": trigrun.RunState.CANCELLED}[status]
                      for run_id, status in reached.items()}, reached
    assert list(reached.values()).count("SUCCESS") >= N // 2, reached
    # One request per interval for all 30 waits (per-run polling: 30 per interval).
    intervals = elapsed / INTERVAL
    assert len(reads) <= intervals + 2, (len(reads), elapsed)
    print(f"dagster: {N} waits, {elapsed:.1f}s, {len(reads)} status requests "
          f"({len(reads) / intervals:.2f} per interval)")
