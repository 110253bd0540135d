"""Batched status polls in a fresh process: N waits on T DAGs of one status server.

``python -m benchmarks._batch_worker CONTENDER --port P --control C --n N --targets T``
prints one JSON line. The waits start evenly over one poll interval, each on its own run of
DAG ``bench{i % T}``; the server's runs follow the clock (queued, running, success after
``polls - 1`` intervals), so a batched read and a per-run read see the same states.

- ``trigrun_wait``: ``AsyncEngine.wait`` with batched polls (the default): one poll group per
  DAG, each sending the DAG's active-run list per window, plus a read of its own for a run
  the list no longer shows (the read that reports its end).
- ``trigrun_trigger``: the same through ``TrigRunTrigger.run()`` (the triggerer's path: the
  loop's shared engine).

Poll lateness is taken from the waits' own poll events (the time each wait got a status),
since a batched read serves many runs at once; for ``trigrun_trigger`` from the events of the
triggers' shared engine. With ``--capacity`` (the capacity section) the server triggers every
run on a schedule (listed from its trigger time), and the worker also reports each wait's
first-status delay (the start phase), lateness and CPU in the steady window after it, and the
garbage collector's time and longest pause (``gc.callbacks``; the GC settings are left alone).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import json
import math
import os
import sys
import time
from collections import defaultdict
from typing import Any

from ._common import PeakRss, ResultOut, cpu_seconds, quiet_logging
from ._poll_worker import TOKEN, _control


def _specs(base: str, targets: int) -> list[Any]:
    import trigrun

    return [trigrun.JobSpec.model_validate({
        "name": f"bench batch {t}", "kind": "manual",
        "target": {"type": "airflow", "base_url": base, "dag_id": f"bench{t}"},
        "auth": {"type": "bearer", "token": "secret://bench-token"},
        "wait": {"poll_interval_seconds": 5, "timeout_seconds": 600},
    }) for t in range(targets)]


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    import trigrun

    base = f"http://127.0.0.1:{args.port}"
    specs = _specs(base, args.targets)
    seen: dict[str, list[float]] = defaultdict(list)

    def on_event(event: trigrun.Event) -> None:
        if event.kind == "poll":  # "run <id>: <state> (...)"
            seen[event.message[4:].split(":", 1)[0]].append(time.monotonic())

    # (when, wall seconds, generation, CPU seconds): the pause is wall time; the collector's
    # share of the CPU is its CPU time (on a loaded machine a pause also waits for a core).
    gc_events: list[tuple[float, float, int, float]] = []
    gc_started = [0.0, 0.0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            gc_started[0], gc_started[1] = time.perf_counter(), time.process_time()
        else:
            gc_events.append((time.monotonic(), time.perf_counter() - gc_started[0],
                              info["generation"], time.process_time() - gc_started[1]))

    n, interval = args.n, args.interval
    if args.contender == "trigrun_wait":
        engine = trigrun.AsyncEngine(secrets={"bench-token": TOKEN}, on_event=on_event)

        async def wait(i: int, run_id: str, poll: float) -> bool:
            result = await engine.wait(specs[i % len(specs)], run_id, poll_interval=poll,
                                       timeout=600)
            return result.state is trigrun.RunState.SUCCESS

        async def close() -> None:
            await engine.aclose()
    else:
        os.environ["TRIGRUN_SECRET_BENCH_TOKEN"] = TOKEN
        from trigrun.airflow import TrigRunTrigger, triggers

        own = triggers._on_event  # the shared engine's listener, looked up when it is made

        def with_lateness(event: trigrun.Event) -> None:
            on_event(event)
            own(event)

        triggers._on_event = with_lateness  # type: ignore[assignment]
        # Each trigger gets its own copy of the spec kwargs, as a triggerer builds every
        # trigger from the kwargs it reads back from the database.
        dumped = [json.dumps(s.model_dump(mode="json", exclude_none=True)) for s in specs]

        async def wait(i: int, run_id: str, poll: float) -> bool:
            trigger = TrigRunTrigger(spec=json.loads(dumped[i % len(dumped)]), run_id=run_id,
                                     end_time=time.time() + 600, poll_interval=poll)
            async for event in trigger.run():
                return bool(event.payload.get("status") == "success")
            return False

        async def close() -> None:
            return None

    # Warm-up: imports and first-call caches, on runs of their own.
    _control(args.control, "/reset?polls=2&interval=0.05")
    ok = await asyncio.gather(*(wait(i, f"warm__{i}", 0.05) for i in range(5)))
    if not all(ok):
        raise SystemExit(f"warm-up failed: {ok}")
    seen.clear()
    extra = f"&n={n}&targets={args.targets}&spread={interval}" if args.capacity else ""
    _control(args.control, f"/reset?polls={args.polls}&interval={interval}{extra}")

    rss = PeakRss()

    async def one(i: int) -> bool:
        await asyncio.sleep(i * interval / n)
        try:
            return await wait(i, f"run__{i:06d}", interval)
        except Exception as exc:  # counted, not fatal: the report shows failures
            print(f"wait {i}: {type(exc).__name__}: {exc}", file=sys.stderr)
            return False

    steady: list[float] = []

    async def steady_cpu() -> None:
        # CPU during the steady part (every wait past its first check, no run ended yet),
        # the window the runner counts requests in.
        await asyncio.sleep(2 * interval)
        steady.append(cpu_seconds())
        # The capacity section's window: capacity_window (the batch section's ends one
        # interval before the last status).
        if args.capacity:
            lo, hi = capacity_window(args.polls)
            await asyncio.sleep((hi - lo) * interval)
        else:
            await asyncio.sleep((args.polls - 3) * interval)
        steady.append(cpu_seconds())

    rss.start()
    window = asyncio.ensure_future(steady_cpu()) if args.polls > 3 else None
    gc.callbacks.append(on_gc)
    gc_counts0 = [g["collections"] for g in gc.get_stats()]
    cpu0 = cpu_seconds()
    t0 = time.monotonic()
    results = await asyncio.gather(*(one(i) for i in range(n)))
    wall = time.monotonic() - t0
    cpu = cpu_seconds() - cpu0
    gc.callbacks.remove(on_gc)
    await rss.stop()
    if window is not None:
        await window
    await close()
    late = [(b - a - interval) * 1000 for times in seen.values()
            for a, b in itertools.pairwise(times)]
    out = {"contender": args.contender, "n": n, "targets": args.targets, "interval": interval,
           "cpu_s": cpu, "wall_s": wall, "ok": sum(results), "rss_base": rss.base,
           "steady_cpu_s": steady[1] - steady[0] if len(steady) == 2 else None,
           "rss_peak": rss.peak, "late_ms": late}
    if args.capacity:
        out.update(_capacity(args, seen, gc_events, t0, gc_counts0))
    return out


def capacity_window(polls: int) -> tuple[float, float]:
    """The capacity section's steady window, in intervals after the first wait started: from
    the end of the 2-interval start phase, a whole number of intervals (so requests per interval
    count whole listings), ending before the first run ends (``polls - 1.5`` intervals)."""
    return 2.0, 2.0 + math.floor(polls - 1.5 - 2.0)


def _capacity(args: argparse.Namespace, seen: dict[str, list[float]],
              gc_events: list[tuple[float, float, int, float]], t0: float,
              gc_counts0: list[int]) -> dict[str, Any]:
    """Start phase (each wait's first status, counted from when it started) and the steady
    window (from two intervals after the first wait started to the first run's end)."""
    n, interval = args.n, args.interval
    lo, hi = capacity_window(args.polls)
    begin, end = t0 + lo * interval, t0 + hi * interval
    first_ms = []
    for run_id, times in seen.items():
        i = int(run_id.rsplit("__", 1)[1])
        first_ms.append((times[0] - (t0 + i * interval / n)) * 1000)
    steady_late = [(b - a - interval) * 1000 for times in seen.values()
                   for a, b in itertools.pairwise(times) if a >= begin and b < end]
    in_steady = [e for e in gc_events if begin <= e[0] < end]
    counts = [g["collections"] - c for g, c in zip(gc.get_stats(), gc_counts0, strict=True)]
    return {"first_ms": first_ms, "steady_late_ms": steady_late,
            "steady_s": max(0.0, end - begin),
            "gc_s": sum(e[3] for e in gc_events),
            "gc_max_pause_ms": max((e[1] for e in gc_events), default=0.0) * 1000,
            "gc_steady_s": sum(e[3] for e in in_steady),
            "gc_steady_max_pause_ms": max((e[1] for e in in_steady), default=0.0) * 1000,
            "gc_collections": counts, "gc_threshold0": gc.get_threshold()[0],
            "gc_steady_gen0": len(in_steady)}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("contender", choices=["trigrun_wait", "trigrun_trigger"])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--control", type=int, required=True)
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--targets", type=int, default=1)
    p.add_argument("--interval", type=float, default=5.0)
    p.add_argument("--polls", type=int, default=4)
    p.add_argument("--capacity", action="store_true",
                   help="runs triggered on the server's schedule; start/steady/GC figures")
    args = p.parse_args()
    out = ResultOut()
    with quiet_logging():
        result = asyncio.run(main_async(args))
    out.write(json.dumps(result))


if __name__ == "__main__":
    main()
