"""One poll-benchmark contender in a fresh process: N concurrent waits in one event loop.

``python -m benchmarks._poll_worker CONTENDER --port P --control C --n N --interval S``
prints one JSON line: CPU seconds, RSS before/peak, how many waits ended in success, wall time.
The server counts requests, connections and the gaps between polls.

The waits start spread evenly over one interval (as waits pile up in a real triggerer), and
each run goes queued -> running -> running -> success (4 polls, 3 intervals).

Contenders:

- ``trigrun_wait``: ``trigrun.AsyncEngine.wait`` (one engine, one pool, for all waits);
- ``trigrun_trigger``: ``trigrun.airflow.TrigRunTrigger.run()`` (shares one engine per loop);
- ``http_sensor``: the Airflow HTTP provider's ``HttpSensorTrigger`` (a new aiohttp session,
  so a new TCP connection, per poll; only 404 means "not yet");
- ``dbt_loop``: a ``DbtCloudRunJobTrigger``-style loop: a new ``aiohttp.ClientSession`` per
  poll, JSON status, sleep, repeat.

References (not peers): ``aiohttp_shared``, a hand-written loop on one shared aiohttp session;
and two ablations of trigrun's own changes, through its public API: ``trigrun_wait_nogrid``
(exact sleeps: no wake-up coalescing) and ``trigrun_wait_httpx`` (exact sleeps and httpx's
``AsyncClient`` as the transport, i.e. the engine's transport before this work).
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ._common import PeakRss, ResultOut, cpu_seconds, quiet_logging

TOKEN = "bench-token-value-0123456789"
Waiter = Callable[[int, str, float], Awaitable[bool]]


def _control(port: int, path: str) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path)
        conn.getresponse().read()
    finally:
        conn.close()


def _trigrun_spec(base: str) -> Any:
    import trigrun

    return trigrun.JobSpec.model_validate({
        "name": "bench poll", "kind": "manual",
        "target": {"type": "airflow", "base_url": base, "dag_id": "bench"},
        "auth": {"type": "bearer", "token": "secret://bench-token"},
        # Per-run polls: this section measures the cost of one status poll; the batched
        # polls have a section of their own (``_batch_worker``).
        "wait": {"poll_interval_seconds": 5, "timeout_seconds": 600, "batch": False},
    })


async def setup_trigrun_wait(base: str, interval: float) -> tuple[Waiter, Callable[[], Awaitable[None]]]:
    import trigrun

    spec = _trigrun_spec(base)
    engine = trigrun.AsyncEngine(secrets={"bench-token": TOKEN})

    async def wait(i: int, run_id: str, poll: float) -> bool:
        result = await engine.wait(spec, run_id, poll_interval=poll, timeout=600)
        return result.state is trigrun.RunState.SUCCESS

    return wait, engine.aclose


async def _plain_sleep(seconds: float) -> None:
    # Not ``asyncio.sleep`` itself: the engine then sleeps exactly, without wake coalescing.
    await asyncio.sleep(seconds)


async def setup_trigrun_wait_nogrid(base: str, interval: float) -> tuple[Waiter, Callable[[], Awaitable[None]]]:
    import trigrun

    spec = _trigrun_spec(base)
    engine = trigrun.AsyncEngine(secrets={"bench-token": TOKEN}, sleep=_plain_sleep)

    async def wait(i: int, run_id: str, poll: float) -> bool:
        result = await engine.wait(spec, run_id, poll_interval=poll, timeout=600)
        return result.state is trigrun.RunState.SUCCESS

    return wait, engine.aclose


async def setup_trigrun_wait_httpx(base: str, interval: float) -> tuple[Waiter, Callable[[], Awaitable[None]]]:
    import httpx

    import trigrun

    spec = _trigrun_spec(base)
    # The engine's transport before this work: httpx's own pool (httpcore over anyio).
    client = httpx.AsyncClient(trust_env=False, limits=httpx.Limits(
        max_connections=100, max_keepalive_connections=100))
    engine = trigrun.AsyncEngine(secrets={"bench-token": TOKEN}, client=client,
                                 sleep=_plain_sleep)

    async def wait(i: int, run_id: str, poll: float) -> bool:
        result = await engine.wait(spec, run_id, poll_interval=poll, timeout=600)
        return result.state is trigrun.RunState.SUCCESS

    async def close() -> None:
        await engine.aclose()
        await client.aclose()

    return wait, close


async def setup_trigrun_trigger(base: str, interval: float) -> tuple[Waiter, Callable[[], Awaitable[None]]]:
    # The triggerer resolves secret:// through Airflow first, then TRIGRUN_SECRET_* variables.
    os.environ["TRIGRUN_SECRET_BENCH_TOKEN"] = TOKEN
    from trigrun.airflow import TrigRunTrigger

    spec = _trigrun_spec(base).model_dump(mode="json", exclude_none=True)

    async def wait(i: int, run_id: str, poll: float) -> bool:
        trigger = TrigRunTrigger(spec=spec, run_id=run_id, end_time=time.time() + 600,
                                 poll_interval=poll)
        async for event in trigger.run():
            return bool(event.payload.get("status") == "success")
        return False

    async def close() -> None:
        return None

    return wait, close


async def setup_http_sensor(base: str, interval: float) -> tuple[Waiter, Callable[[], Awaitable[None]]]:
    os.environ["AIRFLOW_CONN_BENCH_HTTP"] = json.dumps({
        "conn_type": "http", "host": base.split("://", 1)[1].split(":")[0],
        "port": int(base.rsplit(":", 1)[1]), "schema": "http"})
    from airflow.providers.http.triggers.http import HttpSensorTrigger

    headers = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/json"}

    async def wait(i: int, run_id: str, poll: float) -> bool:
        trigger = HttpSensorTrigger(endpoint=f"sensor/{run_id}", http_conn_id="bench_http",
                                    method="GET", headers=headers, poke_interval=poll)
        async for event in trigger.run():
            return bool(event.payload is True)
        return False

    async def close() -> None:
        return None

    return wait, close


async def setup_dbt_loop(base: str, interval: float) -> tuple[Waiter, Callable[[], Awaitable[None]]]:
    import aiohttp

    # dbt Cloud run statuses: 1 queued, 2 starting, 3 running, 10 success, 20 error, 30 cancelled.
    terminal = {10: True, 20: False, 30: False}
    headers = {"Authorization": f"Token {TOKEN}", "Content-Type": "application/json",
               "Accept": "application/json"}

    async def status(run_id: str) -> int:
        # As DbtCloudHook.get_job_details does: a new ClientSession for every call.
        url = f"{base}/api/v2/accounts/1/runs/{run_id}/"
        async with aiohttp.ClientSession(headers=headers) as session, \
                session.get(url, params={"include_related": "[]"}) as response:
            response.raise_for_status()
            data = await response.json()
        return int(data["data"]["status"])

    async def wait(i: int, run_id: str, poll: float) -> bool:
        deadline = time.time() + 600
        while True:
            code = await status(run_id)
            if code in terminal:
                return terminal[code]
            if time.time() > deadline:
                return False
            await asyncio.sleep(poll)

    async def close() -> None:
        return None

    return wait, close


async def setup_aiohttp_shared(base: str, interval: float) -> tuple[Waiter, Callable[[], Awaitable[None]]]:
    """A reference, not a peer: the best a hand-written loop can do, one shared session."""
    import aiohttp

    session = aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"})

    async def wait(i: int, run_id: str, poll: float) -> bool:
        url = f"{base}/api/v2/dags/bench/dagRuns/{run_id}"
        while True:
            async with session.get(url) as response:
                data = await response.json()
            if data["state"] == "success":
                return True
            await asyncio.sleep(poll)

    return wait, session.close




SETUPS = {
    "trigrun_wait": setup_trigrun_wait,
    "trigrun_wait_nogrid": setup_trigrun_wait_nogrid,
    "trigrun_wait_httpx": setup_trigrun_wait_httpx,
    "trigrun_trigger": setup_trigrun_trigger,
    "http_sensor": setup_http_sensor,
    "dbt_loop": setup_dbt_loop,
    "aiohttp_shared": setup_aiohttp_shared,
}


def _run_id(contender: str, i: int, phase: str) -> str:
    # dbt run ids are numbers; the others are Airflow-style strings.
    if contender == "dbt_loop":
        return str((1 if phase == "warm" else 2) * 10_000_000 + i)
    return f"{phase}__{i:06d}"


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    base = f"http://127.0.0.1:{args.port}"
    setup = SETUPS[args.contender]

    # Warm-up: imports, first-call caches. Its client (and pool) is closed before measuring, so
    # every connection of the measured phase is counted.
    warm, warm_close = await setup(base, args.interval)
    _control(args.control, f"/reset?polls={args.polls}")
    ok = await asyncio.gather(*(warm(i, _run_id(args.contender, i, "warm"), 0.01)
                                for i in range(5)))
    await warm_close()
    if not all(ok):
        raise SystemExit(f"warm-up failed: {ok}")
    wait, close = await setup(base, args.interval)
    _control(args.control, f"/reset?polls={args.polls}")

    rss = PeakRss()

    n, interval = args.n, args.interval

    async def one(i: int) -> bool:
        await asyncio.sleep(i * interval / n)
        try:
            return await wait(i, _run_id(args.contender, i, "run"), interval)
        except Exception as exc:  # counted, not fatal: the report shows failures
            print(f"wait {i}: {type(exc).__name__}: {exc}", file=sys.stderr)
            return False

    rss.start()
    cpu0 = cpu_seconds()
    t0 = time.monotonic()
    results = await asyncio.gather(*(one(i) for i in range(n)))
    wall = time.monotonic() - t0
    cpu = cpu_seconds() - cpu0
    await rss.stop()
    await close()
    return {"contender": args.contender, "n": n, "interval": interval, "cpu_s": cpu,
            "wall_s": wall, "ok": sum(results), "rss_base": rss.base, "rss_peak": rss.peak}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("contender", choices=sorted(SETUPS))
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--control", type=int, required=True)
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--interval", type=float, default=5.0)
    p.add_argument("--polls", type=int, default=4)
    args = p.parse_args()
    out = ResultOut()
    with quiet_logging():
        result = asyncio.run(main_async(args))
    out.write(json.dumps(result))


if __name__ == "__main__":
    main()
