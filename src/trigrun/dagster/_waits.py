"""In-op waits of one process share one ``AsyncEngine`` on a background event loop.

An op waits in its own thread, blocking, as before; the polling runs on a loop thread that
every wait of the process shares, so concurrent waits on one target (the threads of an op
that fires several jobs) join one poll group and are checked with batched status requests
(docs/batching.md), under one per-origin limiter. The engine's events for a wait are handed
back to the waiting thread and logged there, to its op's ``context.log``.

One engine per distinct resource setting, made on first use and closed at exit. A forked
child (Dagster's multiprocess executor) starts a loop of its own.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import os
import queue
import threading
from collections.abc import Callable, Hashable
from contextvars import ContextVar
from typing import Any

from .._engine import AsyncEngine
from .._flow import Event
from .._results import RunResult, TriggerResult

# The waiting thread's inbox for the events of the wait running in this task.
_inbox: ContextVar[queue.SimpleQueue[Event] | None] = ContextVar("trigrun_dagster_inbox",
                                                                default=None)
_DRAIN_SECONDS = 0.2  # how often a waiting thread logs what its wait reported


def _route(event: Event) -> None:
    inbox = _inbox.get()
    if inbox is not None:
        inbox.put(event)


class _Loop:
    """The process's wait loop: a daemon thread running an event loop, and its engines."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()
        self.engines: dict[Hashable, AsyncEngine] = {}  # touched on the loop thread only
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True,
                                       name="trigrun-dagster-waits")
        self.thread.start()
        atexit.register(self.close)

    def engine(self, key: Hashable, settings: Callable[[], dict[str, Any]]) -> AsyncEngine:
        engine = self.engines.get(key)
        if engine is None:
            engine = self.engines[key] = AsyncEngine(on_event=_route, log_events=False,
                                                     **settings())
        return engine

    def close(self) -> None:
        if os.getpid() != self.pid or not self.loop.is_running():
            return

        async def shut() -> None:
            for engine in self.engines.values():
                await engine.aclose()

        # At exit: an engine that will not close is left to the OS.
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(shut(), self.loop).result(timeout=5)
        self.loop.call_soon_threadsafe(self.loop.stop)


_lock = threading.Lock()
_current: _Loop | None = None


def _shared() -> _Loop:
    global _current
    with _lock:
        if _current is None or _current.pid != os.getpid():
            _current = _Loop()
        return _current


def wait_shared(key: Hashable, settings: Callable[[], dict[str, Any]], result: TriggerResult,
                *, poll_interval: float | None, timeout: float | None,
                on_event: Callable[[Event], None]) -> RunResult:
    """``AsyncEngine.wait`` on the process's shared engine for ``key``, from a blocking caller.

    ``on_event`` gets the wait's events in the calling thread. An exception raised in the
    calling thread meanwhile (Dagster's interrupt on run termination) cancels the wait and
    goes on."""
    shared = _shared()
    inbox: queue.SimpleQueue[Event] = queue.SimpleQueue()

    async def run() -> RunResult:
        _inbox.set(inbox)
        engine = shared.engine(key, settings)
        return await engine.wait(result, poll_interval=poll_interval, timeout=timeout)

    def drain() -> None:
        while True:
            try:
                event = inbox.get_nowait()
            except queue.Empty:
                return
            on_event(event)

    future = asyncio.run_coroutine_threadsafe(run(), shared.loop)
    try:
        while True:
            try:
                value = future.result(timeout=_DRAIN_SECONDS)
            except concurrent.futures.TimeoutError:
                if future.done():  # the wait itself raised TimeoutError
                    raise
                drain()
                continue
            drain()
            return value
    except BaseException:
        future.cancel()
        drain()
        raise
