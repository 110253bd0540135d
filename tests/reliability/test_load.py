"""Load: ``fire_many`` of 2,000 jobs at concurrency 100 against a target behind a flaky proxy.

``ChaosTarget`` answers a deterministic 10% of trigger requests with 503, half of them after
it started the run (the reply was lost on the way back). It counts runs per idempotency key
and logs every answer it gave per key, so each ``TriggerResult`` can be checked against what
really happened: no job lost, none started twice, and every result's attempts, status, run id
and "adopted" flag exactly what the server saw.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone

import pytest

import trigrun
from tests.helpers.faults import ChaosTarget, FaultServer

from ._report import Report, seconds_bound
from ._secrets import SECRETS, TOKEN, hits

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

JOBS = 2000
CONCURRENCY = 100
BOUND = 60.0  # seconds; it takes a few on two cores
# One scheduled fire for every job: the keys, and so the injected faults, are the same each run.
SCHEDULED = datetime(2026, 3, 16, 1, 0, tzinfo=timezone.utc)


def _spec(url: str, i: int) -> trigrun.JobSpec:
    name = f"load job {i:04d}"
    return trigrun.JobSpec.model_validate({
        "name": name,
        "request": {"url": url, "headers": {"Authorization": "Bearer secret://rel_token"},
                    "body": {"job": name}, "timeout_seconds": 10},
        "retry_policy": {"max_attempts": 5, "initial_backoff_seconds": 0.01,
                         "max_backoff_seconds": 0.05, "jitter": 0},
        "wait": {"run_id_path": "run_id"},  # read the run id; no status URL, so no wait
    })


async def test_fire_many_2000_with_injected_503s(report: Report,
                                                 request: pytest.FixtureRequest) -> None:
    with FaultServer() as srv:
        target = ChaosTarget(srv, rate=0.10)
        specs = [_spec(target.url, i) for i in range(JOBS)]
        t0 = time.monotonic()
        async with trigrun.AsyncEngine(secrets=dict(SECRETS), pool_size=CONCURRENCY) as engine:
            results = await engine.fire_many(specs, concurrency=CONCURRENCY,
                                             context={"scheduled_time": SCHEDULED})
        seconds = time.monotonic() - t0
        posts = srv.requests_to("/trigger", "POST")

    by_job = {spec.name: target.runs_for(spec.name) for spec in specs}
    lost = [job for job, runs in by_job.items() if not runs]
    duplicated = [job for job, runs in by_job.items() if len(runs) > 1]
    untruthful = []
    for spec, result in zip(specs, results, strict=True):
        log = target.by_key.get(result.idempotency_key or "")
        runs = by_job[spec.name]
        truth = {
            "ok": True,
            "job": spec.name,
            "run_id": runs[0].run_id if runs else None,
            "statuses": log.statuses if log else None,
            "adopted": bool(log and log.statuses and log.statuses[-1] == 409),
            "status": log.statuses[-1] if log and log.statuses else None,
        }
        seen = {
            "ok": result.ok,
            "job": result.job,
            "run_id": result.run_id,
            "statuses": [a.status_code for a in result.attempts],
            "adopted": result.adopted,
            "status": result.status_code,
        }
        if seen != truth:
            untruthful.append((spec.name, seen, truth))
    keys_per_job = {}
    for req in posts:
        keys_per_job.setdefault(req.json()["job"], set()).add(req.headers["idempotency-key"])
    leaks = hits([("results", repr([r.to_log() for r in results]))], [TOKEN])
    injected = target.injected
    print(f"load: {JOBS} fires in {seconds:.2f}s, {len(posts)} trigger requests, "
          f"injected {injected}")
    report.add(request.node.nodeid, "load", (0,), [
        f"fire_many, concurrency {CONCURRENCY}, 10% injected 503", f"{JOBS:,}",
        f"{injected['before'] + injected['after']} ({injected['before']} / {injected['after']})",
        str(len(lost)), str(len(duplicated)), str(len(untruthful)), f"{len(posts):,}",
        seconds_bound(0, BOUND)],
        figures=(sum(len(r) for r in by_job.values()), JOBS, len(lost),
                 sum(len(r) - 1 for r in by_job.values() if len(r) > 1)))

    assert len(results) == JOBS
    assert lost == []
    assert duplicated == []
    assert untruthful[:3] == []
    # One idempotency key per job across all its attempts.
    assert all(len(keys) == 1 for keys in keys_per_job.values())
    assert len(posts) == sum(len(r.attempts) for r in results)
    # The faults really happened, both kinds, at about the rate asked for.
    assert injected["before"] > 0
    assert injected["after"] > 0
    assert 0.06 * JOBS < injected["before"] + injected["after"] < 0.14 * JOBS
    assert sum(r.adopted for r in results) > 0  # replies lost after the run started
    assert leaks == []
    assert seconds < BOUND
