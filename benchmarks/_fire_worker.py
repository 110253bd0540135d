"""Trigger overhead in a fresh process: ``Engine.fire`` / ``AsyncEngine.fire`` against raw httpx.

``python -m benchmarks._fire_worker sync|async --port P --requests M`` prints one JSON line with
every request's latency (ms) and the CPU seconds per contender.

Both sides send the same request to the same endpoint, one at a time, over a kept-alive
connection: ``POST /api/v2/dags/bench/dagRuns`` with a bearer token and a JSON body of the
shape trigrun's Airflow preset sends (``conf``, ``dag_run_id``, ``logical_date``), and read and
parse the JSON reply. The raw side is what a hand-written operator does with one
``httpx.Client``. Blocks of the two contenders alternate, so drift in the machine's load hits
both alike.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from ._common import ResultOut, cpu_seconds, quiet_logging

TOKEN = "bench-token-value-0123456789"
START = datetime(2026, 1, 1, tzinfo=timezone.utc)


def _spec(base: str) -> Any:
    import trigrun

    return trigrun.JobSpec.model_validate({
        "name": "bench fire", "kind": "manual",
        "target": {"type": "airflow", "base_url": base, "dag_id": "bench",
                   "conf": {"source": "benchmark"}},
        "auth": {"type": "bearer", "token": "secret://bench-token"},
        "retry_policy": {"max_attempts": 3},
    })


def _raw_parts(base: str) -> tuple[str, dict[str, str]]:
    url = f"{base}/api/v2/dags/bench/dagRuns"
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json",
               "Accept": "application/json"}
    return url, headers


def _raw_body(i: int) -> dict[str, Any]:
    return {"conf": {"source": "benchmark"}, "dag_run_id": f"manual__{i}", "logical_date": None}


def _blocks(total: int, block: int) -> list[int]:
    return [min(block, total - k) for k in range(0, total, block)]


def run_sync(base: str, requests: int, block: int) -> dict[str, Any]:
    import httpx

    import trigrun

    spec = _spec(base)
    url, headers = _raw_parts(base)
    engine = trigrun.Engine(secrets={"bench-token": TOKEN})
    client = httpx.Client(trust_env=False)
    counter = [0]

    def fire() -> None:
        counter[0] += 1
        result = engine.fire(spec, scheduled_time=START + timedelta(seconds=counter[0]))
        if not result.ok:
            raise RuntimeError(result.error)

    def raw() -> None:
        counter[0] += 1
        resp = client.post(url, json=_raw_body(counter[0]), headers=headers, timeout=30.0)
        resp.raise_for_status()
        resp.json()

    contenders: dict[str, Callable[[], None]] = {"engine_fire": fire, "httpx_raw": raw}
    lat: dict[str, list[float]] = {k: [] for k in contenders}
    cpu: dict[str, float] = dict.fromkeys(contenders, 0.0)
    for fn in contenders.values():  # warm-up: imports, connections, first-call caches
        for _ in range(50):
            fn()
    for size in _blocks(requests, block):
        for name, fn in contenders.items():
            c0 = cpu_seconds()
            for _ in range(size):
                t0 = time.perf_counter()
                fn()
                lat[name].append((time.perf_counter() - t0) * 1000)
            cpu[name] += cpu_seconds() - c0
    engine.close()
    client.close()
    return {"latency_ms": lat, "cpu_s": cpu}


async def run_async(base: str, requests: int, block: int, concurrency: int) -> dict[str, Any]:
    import httpx

    import trigrun

    spec = _spec(base)
    url, headers = _raw_parts(base)
    engine = trigrun.AsyncEngine(secrets={"bench-token": TOKEN})
    client = httpx.AsyncClient(trust_env=False)
    counter = [0]

    async def fire() -> None:
        counter[0] += 1
        result = await engine.fire(spec, scheduled_time=START + timedelta(seconds=counter[0]))
        if not result.ok:
            raise RuntimeError(result.error)

    async def raw() -> None:
        counter[0] += 1
        resp = await client.post(url, json=_raw_body(counter[0]), headers=headers, timeout=30.0)
        resp.raise_for_status()
        resp.json()

    contenders: dict[str, Callable[[], Awaitable[None]]] = {"async_engine_fire": fire,
                                                             "httpx_async_raw": raw}
    lat: dict[str, list[float]] = {k: [] for k in contenders}
    cpu: dict[str, float] = dict.fromkeys(contenders, 0.0)
    for fn in contenders.values():
        for _ in range(50):
            await fn()
    for size in _blocks(requests, block):
        for name, fn in contenders.items():
            c0 = cpu_seconds()
            for _ in range(size):
                t0 = time.perf_counter()
                await fn()
                lat[name].append((time.perf_counter() - t0) * 1000)
            cpu[name] += cpu_seconds() - c0

    # Under concurrency: CPU per request with `concurrency` requests in flight.
    conc_cpu: dict[str, float] = {}
    sem = asyncio.Semaphore(concurrency)

    async def limited(fn: Callable[[], Awaitable[None]]) -> None:
        async with sem:
            await fn()

    for name, fn in contenders.items():
        c0 = cpu_seconds()
        await asyncio.gather(*(limited(fn) for _ in range(requests)))
        conc_cpu[name] = cpu_seconds() - c0
    await engine.aclose()
    await client.aclose()
    return {"latency_ms": lat, "cpu_s": cpu, "concurrent_cpu_s": conc_cpu,
            "concurrency": concurrency}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["sync", "async"])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--block", type=int, default=100)
    p.add_argument("--concurrency", type=int, default=50)
    args = p.parse_args()
    base = f"http://127.0.0.1:{args.port}"
    out = ResultOut()
    with quiet_logging():
        if args.mode == "sync":
            result = run_sync(base, args.requests, args.block)
        else:
            result = asyncio.run(run_async(base, args.requests, args.block, args.concurrency))
    result["mode"] = args.mode
    result["requests"] = args.requests
    out.write(json.dumps(result))


if __name__ == "__main__":
    main()
