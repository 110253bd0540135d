"""trigrun against a real Prefect 3 server and process worker (tests/fixtures/prefect_server.py).

What the contract-validated fake stands for is checked here on the real thing: fire and wait
(success, failure), cancel of a running run, of a scheduled run no worker holds and of a
completed one, the same tick fired three times, a lost reply retried through a local proxy,
and 30 waits sharing batched polls. Skipped, saying how to create it, without the Prefect venv.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

import trigrun
from tests.fixtures.prefect_server import PrefectServer
from tests.helpers.proxy import ForwardProxy

pytestmark = pytest.mark.integration

TICK = datetime(2026, 3, 16, 1, 0, tzinfo=timezone.utc)


def job(server: PrefectServer, deployment: str, **extra: Any) -> trigrun.JobSpec:
    return trigrun.JobSpec.model_validate({
        "name": f"prefect {deployment}",
        "target": {"type": "prefect", "base_url": server.api_url,
                   "deployment_id": server.deployments[deployment],
                   **extra.pop("target", {})},
        "wait": {"poll_interval_seconds": 1, "timeout_seconds": 150},
        **extra})


def test_fire_and_wait_success_and_failure(prefect_server: PrefectServer) -> None:
    with trigrun.Engine() as engine:
        ok = engine.fire(job(prefect_server, "quick"), scheduled_time=TICK)
        bad = engine.fire(job(prefect_server, "broken"), scheduled_time=TICK)
        assert ok.run_id, ok.error
        assert bad.run_id, bad.error
        good_end = engine.wait(job(prefect_server, "quick"), ok.run_id)
        bad_end = engine.wait(job(prefect_server, "broken"), bad.run_id)
    assert good_end.state is trigrun.RunState.SUCCESS, good_end.message
    assert bad_end.state is trigrun.RunState.FAILED, bad_end.message
    assert prefect_server.state_of(ok.run_id) == "COMPLETED"
    assert prefect_server.state_of(bad.run_id) == "FAILED"


def test_cancel_a_scheduled_run_no_worker_holds(prefect_server: PrefectServer) -> None:
    # Prefect cancels it at once (REJECT with the new state CANCELLED): a success.
    spec = job(prefect_server, "idle")
    with trigrun.Engine() as engine:
        fired = engine.fire(spec, scheduled_time=TICK)
        assert fired.run_id, fired.error
        assert prefect_server.state_of(fired.run_id) == "SCHEDULED"
        assert engine.cancel(spec, fired.run_id) is True
    assert prefect_server.state_of(fired.run_id) == "CANCELLED"


def test_cancel_a_completed_run_is_refused_and_leaves_it_completed(
        prefect_server: PrefectServer) -> None:
    # Completed through the API, as a worker reports it (a worker-run flow takes half a
    # minute to start here); the cancel then meets Prefect's own rules for an ended run.
    spec = job(prefect_server, "idle")
    with trigrun.Engine() as engine:
        fired = engine.fire(spec, scheduled_time=TICK + timedelta(hours=1))
        assert fired.run_id, fired.error
        _end_all(prefect_server, [fired.run_id], kinds=("COMPLETED",))
        assert engine.wait(spec, fired.run_id).state is trigrun.RunState.SUCCESS
        assert engine.cancel(spec, fired.run_id) is False
    assert prefect_server.state_of(fired.run_id) == "COMPLETED"


def test_cancel_a_running_run(prefect_server: PrefectServer) -> None:
    spec = job(prefect_server, "slow")
    with trigrun.Engine() as engine:
        fired = engine.fire(spec, scheduled_time=TICK)
        assert fired.run_id, fired.error
        assert prefect_server.wait_for(fired.run_id, ("RUNNING",)) == "RUNNING"
        assert engine.cancel(spec, fired.run_id) is True
        # The worker tears the process down: CANCELLING, then CANCELLED.
        assert prefect_server.wait_for(fired.run_id, ("CANCELLED",)) == "CANCELLED"
        assert engine.wait(spec, fired.run_id).state is trigrun.RunState.CANCELLED


def test_the_same_tick_fired_three_times_starts_one_run(prefect_server: PrefectServer) -> None:
    spec = job(prefect_server, "idle")
    tick = TICK + timedelta(days=3)
    results = []
    for _ in range(3):
        with trigrun.Engine() as engine:  # three separate engines, as three task tries
            results.append(engine.fire(spec, scheduled_time=tick))
    assert all(r.ok for r in results), [r.error for r in results]
    assert len({r.run_id for r in results}) == 1
    assert [r.adopted for r in results] == [False, True, True]
    keyed = [r for r in prefect_server.runs_of(prefect_server.deployments["idle"])
             if str(r.get("idempotency_key", "")).endswith(str(results[0].idempotency_key))]
    assert len(keyed) == 1


def test_a_lost_reply_is_retried_and_the_run_adopted(prefect_server: PrefectServer) -> None:
    # The proxy cuts the first trigger's reply after Prefect created the run; the retry sends
    # the same idempotency key and Prefect answers 200 with that run.
    tick = TICK + timedelta(days=5)
    with _CutOnce(mode="cut", cut_after=1) as proxy:
        spec = job(prefect_server, "idle", target={"proxy": proxy.url, "trust_env": False},
                   retry_policy={"initial_backoff_seconds": 1, "jitter": 0})
        with trigrun.Engine() as engine:
            result = engine.fire(spec, scheduled_time=tick)
        posts = proxy.entries("POST")
    assert result.ok, result.error
    assert result.adopted
    assert [a.status_code for a in result.attempts][-1] == 200
    assert result.attempts[0].status_code is None or result.attempts[0].error
    assert len(posts) == 2
    keyed = [r for r in prefect_server.runs_of(prefect_server.deployments["idle"])
             if str(r.get("idempotency_key", "")).endswith(str(result.idempotency_key))]
    assert [str(r["id"]) for r in keyed] == [result.run_id]


def test_30_waits_share_batched_polls(prefect_server: PrefectServer) -> None:
    # 30 runs on the pool without a worker; the test ends them through Prefect's API (as a
    # worker would) while trigrun waits, reading their states in batched flow_runs/filter
    # requests that the proxy counts.
    n = 30
    with ForwardProxy() as proxy:
        spec = trigrun.JobSpec.model_validate({
            "name": "prefect batch",
            "target": {"type": "prefect", "base_url": prefect_server.api_url,
                       "deployment_id": prefect_server.deployments["idle"],
                       "proxy": proxy.url, "trust_env": False},
            "wait": {"poll_interval_seconds": 1, "timeout_seconds": 120}})

        async def main() -> list[trigrun.RunResult]:
            async with trigrun.AsyncEngine() as engine:
                # One after another: the SQLite-backed server answers a burst of creates 503.
                fired = [await engine.fire(spec, scheduled_time=TICK + timedelta(days=10,
                                                                                minutes=i))
                         for i in range(n)]
                ids = [str(f.run_id) for f in fired]
                assert all(f.ok for f in fired), [f.error for f in fired if not f.ok]
                proxy.clear()
                waits = asyncio.gather(*(engine.wait(spec, rid) for rid in ids))
                await asyncio.sleep(2.5)
                await asyncio.to_thread(_end_all, prefect_server, ids)
                return list(await waits)

        results = asyncio.run(main())
        entries = proxy.entries("POST")
    want = {r.run_id: (trigrun.RunState.FAILED if i % 3 == 0 else trigrun.RunState.SUCCESS)
            for i, r in enumerate(results)}
    assert {r.run_id: r.state for r in results} == want, [r.message for r in results][:3]
    filters = [e for e in entries if e.target.endswith("/flow_runs/filter")]
    singles = [e for e in proxy.entries("GET") if "/flow_runs/" in e.target]
    # One batched read per poll interval for all 30 waits (a few intervals), not 30 each.
    assert 2 <= len(filters) <= 12, len(filters)
    assert len(singles) <= 2, len(singles)


class _CutOnce(ForwardProxy):
    """Cuts the first forwarded reply after one byte of its body, then forwards as usual."""

    def _forward(self, *args: Any, **kwargs: Any) -> bool:
        try:
            return super()._forward(*args, **kwargs)
        finally:
            self.mode = "ok"


def _end_all(server: PrefectServer, ids: list[str],
             kinds: tuple[str, ...] = ("FAILED", "COMPLETED", "COMPLETED")) -> None:
    """End runs through Prefect's API, as a worker would (``kinds`` in turn)."""
    with httpx.Client(timeout=30) as client:
        for i, rid in enumerate(ids):
            kind = kinds[i % len(kinds)]
            reply = client.post(f"{server.api_url}/flow_runs/{rid}/set_state", json={
                "state": {"type": kind, "name": kind.title()}, "force": True})
            reply.raise_for_status()
