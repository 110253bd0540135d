"""``Engine`` and ``AsyncEngine``: the I/O around the shared flows in ``_flow``.

The sync engine sends with httpx (``_send_httpx``), the async engine with aiohttp
(``_send_aiohttp``); the decisions (retries, waits, redirects, redaction) are the flows'.
"""

from __future__ import annotations

import asyncio
import contextvars
import math
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any
from urllib.parse import unquote, urlsplit

import aiohttp
import httpx

from ._batch import OriginLimit, PollGroup, next_start, pause_until
from ._exceptions import SpecError, TriggerFailed, TrigRunError
from ._flow import (
    EngineState,
    Event,
    Flow,
    JobFlows,
    Outcome,
    PollRun,
    Resolve,
    Send,
    Sleep,
    delay_left,
    idempotency_key,
    logger,
    prepare,
)
from ._http import Proxies, TlsContexts
from ._models import JobSpec
from ._origins import normalize_allowed
from ._results import JobRun, RunResult, RunState, TriggerResult
from ._retry import parse_retry_after
from ._schedule import parse_iso_time
from ._secrets import AnyResolver, SecretsArg, normalize_resolvers, resolve_async, resolve_sync
from ._send_aiohttp import AiohttpSender
from ._send_httpx import HttpxSender
from ._targets import RunStatus
from ._upstream import Upstream

# For the engine's own timers (wake-ups), whose callbacks read no context variable: asyncio
# would copy the caller's context for each one, and thousands stay scheduled at once.
NO_CONTEXT = contextvars.Context()


# How long a resolved secret may serve the status polls of other waits on the same engine
# (a fire, and the first poll after this long, ask the resolvers again).
SHARED_SECRETS_SECONDS = 10.0


class _Base:
    def __init__(self, *, secrets: SecretsArg = None, verify: bool | str = True,
                 cert: str | tuple[str, str] | None = None, proxy: str | None = None,
                 trust_env: bool = True,
                 on_event: Callable[[Event], None] | None = None,
                 on_secret: Callable[[str], None] | None = None,
                 log_events: bool = True,
                 clock: Callable[[], float] | None = None,
                 wall_clock: Callable[[], float] | None = None,
                 random: Callable[[], float] | None = None,
                 max_requests_per_second: float | Mapping[str, float] | None = None,
                 max_pause_seconds: float = 300.0,
                 allowed_origins: Iterable[str] = ()) -> None:
        self._resolvers: list[AnyResolver] = normalize_resolvers(secrets)
        self._rps = max_requests_per_second
        self._max_pause = max_pause_seconds
        self._limits: dict[str, OriginLimit] = {}
        # Engine-wide connection defaults (an Airflow connection's, a Dagster resource's): a
        # job's own request / target settings win.
        self._verify, self._cert, self._proxy, self._trust_env = verify, cert, proxy, trust_env
        self._custom = verify is not True or cert is not None or proxy is not None \
            or not trust_env
        # name -> (value, when resolved): a triggerer's engine runs thousands of waits on the
        # same few secrets, and one lookup (an Airflow connection, a vault) per wait adds up.
        self._recent: dict[str, tuple[str, float]] = {}
        self.state = EngineState(on_event=on_event, on_secret=on_secret, log_events=log_events,
                                 allowed_origins=frozenset(normalize_allowed(o)
                                                           for o in allowed_origins))
        if clock is not None:
            self.state.monotonic = clock
        if wall_clock is not None:
            self.state.wall = wall_clock
        if random is not None:
            self.state.random = random
        # Read once per engine: the trust store paths and the proxy variables.
        self._tls = TlsContexts()
        self._proxies = Proxies(on_secret=self._proxy_secret)
        password = urlsplit(proxy).password if proxy else None
        if password:
            self._proxy_secret(unquote(password))

    def _proxy_secret(self, value: str) -> None:
        """A password in a proxy variable is a secret like any other: redacted everywhere."""
        self.state.redactor.add(value)
        if self.state.on_secret is not None:
            self.state.on_secret(value)

    def _limit_of(self, origin: str) -> OriginLimit:
        limit = self._limits.get(origin)
        if limit is None:
            limit = self._limits[origin] = self._new_limit(origin)
        return limit

    def _new_limit(self, origin: str) -> OriginLimit:
        rps = self._rps
        if isinstance(rps, Mapping):
            rps = rps.get(origin) or rps.get(origin.lower())
        return OriginLimit(gap=1.0 / rps if rps else 0.0)

    def _reserve(self, origin: str, a: Send) -> float:
        """The origin's turn for this send: how long it must wait first (0: go now)."""
        limit = self._limit_of(origin)
        now = self.state.monotonic()
        if not (limit.gap or limit.paused_until > now or limit.next_free > now):
            return 0.0
        # A job that ignores Retry-After is not held by a pause (the ceiling still holds).
        paused = limit.paused_until if a.retry_after_cap > 0 else 0.0
        start, next_free = next_start(now, paused, limit.next_free, limit.gap)
        if start > now or limit.gap:
            limit.next_free = next_free
        return start - now

    def _observe(self, origin: str, a: Send, outcome: Outcome) -> None:
        """A 429 / 503 with Retry-After pauses the origin for every send of the engine."""
        reply = outcome.reply
        if reply is None or reply.status_code not in (429, 503) or a.retry_after_cap <= 0:
            return
        header = reply.headers.get("retry-after")
        if header is None:
            return
        limit = self._limit_of(origin)
        now = self.state.monotonic()
        before = limit.paused_until
        limit.paused_until = pause_until(reply.status_code,
                                         parse_retry_after(header, self.state.now()), now,
                                         before, min(self._max_pause, a.retry_after_cap))
        if limit.paused_until > now and before <= now:
            host = origin.rsplit("@", 1)[-1].split("//")[-1]  # no userinfo in the log
            logger.info("%s answered HTTP %d with Retry-After: every request to it waits "
                        "%.1fs", self.state.redactor.text(host), reply.status_code,
                        limit.paused_until - now)

    def _with_defaults(self, a: Send) -> Send:
        if not self._custom:
            return a
        changes: dict[str, Any] = {}
        if a.verify is True and self._verify is not True:
            changes["verify"] = self._verify
        if a.cert is None and self._cert is not None:
            changes["cert"] = self._cert
        if a.proxy is None and self._proxy is not None:
            changes["proxy"] = self._proxy
        if not self._trust_env:
            changes["trust_env"] = False
        return replace(a, **changes) if changes else a

    def _flows(self, spec: JobSpec, key: str | None = None) -> JobFlows:
        return JobFlows(spec, self.state, key=key)

    def _start_fire(self, spec: JobSpec, context: Mapping[str, Any] | None,
                    scheduled_time: datetime | None, render: bool) -> tuple[JobFlows, datetime, TriggerResult | None]:
        ctx = dict(context or {})
        scheduled = scheduled_time or ctx.pop("scheduled_time", None)
        if isinstance(scheduled, str):
            scheduled = parse_iso_time(scheduled, f"job {spec.name!r}: scheduled_time")
        rendered, scheduled, skip = prepare(spec, self.state, scheduled=scheduled, context=ctx,
                                            render=render)
        flows = self._flows(rendered, idempotency_key(rendered, scheduled))
        if skip is not None:
            self.state.emit("skip", spec.name, f"skipped: {skip}")
            return flows, scheduled, TriggerResult(
                job=spec.name, ok=True, status_code=None, duration_ms=0.0, attempts=(),
                response=None, run_id=None, run_url=None, idempotency_key=flows.key,
                scheduled_time=scheduled.isoformat(), target=flows.preset.name, skipped=True,
                reason=skip, spec=rendered)
        return flows, scheduled, None

    def _delay_of(self, flows: JobFlows, scheduled: datetime) -> float:
        """Seconds to wait before the fire (``delay_seconds`` after the scheduled time)."""
        left = delay_left(flows.spec, scheduled, self.state.wall())
        if left > 0:
            self.state.emit("delay", flows.spec.name, f"delay_seconds="
                            f"{flows.spec.delay_seconds:g}: firing in {left:.1f}s",
                            delay_seconds=left)
        return left

    def _recent_values(self, action: Resolve) -> tuple[dict[str, str | None], list[str]]:
        """Values resolved lately that this action may use, and the names still to resolve."""
        if action.fresh:
            return {}, list(action.names)
        now = self.state.monotonic()
        found: dict[str, str | None] = {}
        todo = []
        for name in action.names:
            hit = self._recent.get(name)
            if hit is not None and now - hit[1] < SHARED_SECRETS_SECONDS:
                found[name] = hit[0]
            else:
                todo.append(name)
        return found, todo

    def _remember(self, values: Mapping[str, str | None]) -> None:
        now = self.state.monotonic()
        for name, value in values.items():
            if value is not None:
                self._recent[name] = (value, now)

    @staticmethod
    def _spec_of(target: TriggerResult | JobSpec) -> JobSpec:
        spec = target.spec if isinstance(target, TriggerResult) else target
        if spec is None:
            raise TrigRunError("this TriggerResult carries no spec; pass the JobSpec and "
                               "run_id to wait on, poll or cancel a run")
        return spec

    @staticmethod
    def _run_of(target: TriggerResult | JobSpec, run_id: str | None) -> tuple[str, str | None]:
        if isinstance(target, TriggerResult):
            if not target.ok:
                # The fire's own error is the cause; "no run id" would hide it.
                raise TriggerFailed(
                    f"job {target.job!r}: cannot wait on, poll or cancel the run: the trigger "
                    f"failed: {target.error or 'no error recorded'}", result=target)
            rid = run_id or target.run_id
            if rid is None:
                raise TrigRunError(f"job {target.job!r}: the trigger result has no run id to "
                                   "wait on, poll or cancel ("
                                   f"{target.reason or target.error or 'the target returned none'})")
            return rid, target.run_url
        if run_id is None:
            raise TrigRunError("run_id is required when waiting on, polling or cancelling a "
                               "run of a JobSpec")
        return run_id, None


class Engine(_Base):
    """Sync engine: ``fire``, ``wait``, ``poll``, ``cancel``. Use as a context manager.

    Requests go through ``httpx.Client``: one per connection setting (TLS, proxy), each with a
    keep-alive pool of ``pool_size`` connections. ``client=httpx.Client(...)`` sends every
    request through that client, as given (its own proxies, certificates, transports, event
    hooks); pytest-httpx and respx see every request either way.
    """

    def __init__(self, *, secrets: SecretsArg = None, client: httpx.Client | None = None,
                 sleep: Callable[[float], None] = time.sleep, pool_size: int = 100,
                 **kwargs: Any) -> None:
        super().__init__(secrets=secrets, **kwargs)
        self._sleep = sleep
        self._limit_lock = threading.Lock()
        self._sender = HttpxSender(client=client, pool_size=pool_size, tls=self._tls,
                                   proxies=self._proxies)

    def close(self) -> None:
        self._sender.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(self, a: Send) -> Outcome:
        # The same per-origin limiter as the async engine's, shared by the engine's threads.
        origin = origin_of(a.url)
        with self._limit_lock:
            wait = self._reserve(origin, a)
        if wait > 0:
            self._sleep(wait)
        outcome = self._sender.send(self._with_defaults(a))
        if outcome.reply is not None and outcome.reply.status_code in (429, 503):
            with self._limit_lock:
                self._observe(origin, a, outcome)
        return outcome

    def _run(self, flow: Flow) -> Any:
        value: Any = None
        while True:
            try:
                action = flow.send(value)
            except StopIteration as stop:
                return stop.value
            value = None  # a finished reply must not stay alive while the flow sleeps
            if isinstance(action, Send):
                value = self._send(action)
            elif isinstance(action, PollRun):
                if action.after > 0:
                    self._sleep(action.after)
                action.started = self.state.monotonic()
                value = self._run(action.flows.poll(action.run_id))
            elif isinstance(action, Sleep):
                self._sleep(action.seconds)
            elif isinstance(action, Resolve):
                value, todo = self._recent_values(action)
                got = {n: resolve_sync(self._resolvers, n) for n in todo}
                self._remember(got)
                value.update(got)
            else:  # pragma: no cover
                raise TypeError(action)

    def fire(self, spec: JobSpec, context: Mapping[str, Any] | None = None, *,
             scheduled_time: datetime | None = None, render: bool = True,
             upstream: Upstream | None = None, delay: bool = True) -> TriggerResult:
        """Send the job's trigger request, with retries. Failures are recorded, not raised.

        ``upstream``: who starts the run, written into the request as the target names it
        (docs/upstream.md). ``delay=False``: do not wait out the job's ``delay_seconds``
        (the caller already did, e.g. a deferred Airflow task)."""
        flows, scheduled, skipped = self._start_fire(spec, context, scheduled_time, render)
        if skipped is not None:
            return skipped
        if delay and (left := self._delay_of(flows, scheduled)) > 0:
            self._sleep(left)
        result: TriggerResult = self._run(flows.fire(scheduled, self.state.monotonic(),
                                                     upstream=upstream))
        return result

    def wait(self, target: TriggerResult | JobSpec, run_id: str | None = None, *,
             poll_interval: float | None = None, timeout: float | None = None,
             end_time: float | None = None) -> RunResult:
        """Poll the downstream run until it ends or the wait's deadline passes."""
        rid, url = self._run_of(target, run_id)
        flows = self._flows(self._spec_of(target))
        result: RunResult = self._run(flows.wait(rid, url, poll_interval=poll_interval,
                                                 timeout=timeout, end_time=end_time))
        return result

    def poll(self, target: TriggerResult | JobSpec, run_id: str | None = None) -> RunStatus:
        """One status check. A failed check is ``RunState.UNKNOWN`` with the reason."""
        rid, _ = self._run_of(target, run_id)
        got = self._run(self._flows(self._spec_of(target)).poll(rid))
        return _as_status(got)

    def cancel(self, target: TriggerResult | JobSpec, run_id: str | None = None) -> bool:
        """Best effort: ask the target to cancel the run. True when the target accepted."""
        rid, _ = self._run_of(target, run_id)
        ok: bool = self._run(self._flows(self._spec_of(target)).cancel(rid))
        return ok


def _check(flows: JobFlows, run_id: str) -> Flow:
    got = yield PollRun(flows, run_id)
    return got


def _as_status(got: Any) -> RunStatus:
    if isinstance(got, RunStatus):
        return got
    assert isinstance(got, Outcome)
    what = got.error or f"HTTP {got.reply.status_code if got.reply else '?'}"
    return RunStatus(RunState.UNKNOWN, None, f"status check failed: {what}")


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


async def coalesced_sleep(seconds: float) -> None:
    """``asyncio.sleep``, with the wake-up moved onto a grid (50 ms steps for sleeps of 2.5 s
    and more, 10 ms from 0.5 s; shorter sleeps are left alone).

    Thousands of waits polling every few seconds would otherwise each wake the event loop on
    its own; on the grid, the waits that fall due within one step wake in one loop iteration
    and their requests and replies share the loop's turns. The wake-up moves to the next grid
    point, or to the previous one when that is less than a fifth of a step back (the loop's
    own lag after the last wake-up must not push every later poll a whole step late).
    """
    # Fixed steps, so that waits sleeping slightly different times share one grid.
    if seconds >= 2.5:
        step = 0.05
    elif seconds >= 0.5:
        step = 0.01
    else:
        await asyncio.sleep(seconds)
        return
    loop = asyncio.get_running_loop()
    when = math.ceil((loop.time() + seconds - step / 5) / step) * step
    fut: asyncio.Future[None] = loop.create_future()
    handle = loop.call_at(when, _wake, fut, context=NO_CONTEXT)
    try:
        await fut
    finally:
        handle.cancel()


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of a URL, by slicing (on every send: no parse, one string)."""
    i = url.find("://")
    j = url.find("/", i + 3) if i >= 0 else -1
    return url if j < 0 else url[:j]


class AsyncEngine(_Base):
    """Async engine: the same methods, awaited, plus ``fire_many``. One shared connection pool.

    Requests go through one ``aiohttp.ClientSession`` per engine (and event loop), with at
    most ``pool_size`` connections, kept alive between polls. ``client=`` takes an
    ``aiohttp.ClientSession`` or an ``httpx.AsyncClient`` (for pytest-httpx and respx), used
    as given.

    Waits on one target share a poll group (``batch_polls``, on by default): the status
    checks they ask for within ``batch_window`` seconds go out as one batched request where
    the target's preset has a batch API (docs/batching.md). Batching needs the engine's own
    clock: an injected ``sleep`` polls per run. Every send to one origin goes through that
    origin's limiter: a 429 / 503 with Retry-After pauses the origin for every wait, fire and
    cancel at once, and ``max_requests_per_second`` (a number for every origin, or a mapping
    ``{"https://host": n}``) caps the rate per origin.
    """

    def __init__(self, *, secrets: SecretsArg = None,
                 client: aiohttp.ClientSession | httpx.AsyncClient | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 pool_size: int = 100, batch_polls: bool = True, batch_window: float = 0.25,
                 **kwargs: Any) -> None:
        super().__init__(secrets=secrets, **kwargs)
        if batch_window <= 0:
            raise ValueError("batch_window must be > 0 seconds")
        self._sleep = sleep
        self._sender = AiohttpSender(client=client, pool_size=pool_size, tls=self._tls,
                                     proxies=self._proxies)
        self._pending: dict[str, asyncio.Future[str | None]] = {}
        self._batch = batch_polls and sleep is asyncio.sleep
        self._window = batch_window
        self._groups: dict[Any, PollGroup] = {}
        self._groups_loop: asyncio.AbstractEventLoop | None = None
        self._queues: dict[str, asyncio.Semaphore] = {}
        self._queues_loop: asyncio.AbstractEventLoop | None = None

    async def aclose(self) -> None:
        await self._sender.aclose()

    async def __aenter__(self) -> AsyncEngine:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _send(self, a: Send) -> Outcome:
        origin = origin_of(a.url)
        wait = self._reserve(origin, a)
        if wait > 0:
            await self._sleep(wait)
        outcome = await self._sender.send(self._with_defaults(a))
        self._observe(origin, a, outcome)
        return outcome

    def _group(self, scope: Any, lists: bool, interval: float) -> PollGroup:
        loop = asyncio.get_running_loop()
        if self._groups_loop is not loop:  # groups hold futures and timers of one loop
            self._groups, self._groups_loop = {}, loop
        # A listing costs the same for one wait as for all: it is read once per interval, so
        # waits of one interval share it (waits with another interval read their own).
        window = max(self._window, interval) if lists else self._window
        key = (scope, window) if lists else scope
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = PollGroup(self._run, window, NO_CONTEXT, lists=lists,
                                                  clock=self.state.monotonic,
                                                  wall=self.state.wall)
        return group

    def _poll_run(self, action: PollRun) -> Awaitable[Any]:
        # Not a coroutine: a batched check is awaited for a whole interval, so a coroutine
        # here (and in PollGroup.poll) would be two more objects per wait per interval that
        # live long enough to reach the collector's oldest generation.
        scope = action.flows.batch_scope() if self._batch else None
        if scope is None:
            return self._poll_alone(action)
        return self._group(scope, action.flows.preset.batch_lists,
                           action.interval).poll(action)

    async def _poll_alone(self, action: PollRun) -> Any:
        if action.after > 0:
            await self._pause(action.after)
        action.started = self.state.monotonic()
        return await self._run(action.flows.poll(action.run_id))

    async def poll_many(self, items: Iterable[tuple[JobSpec, str]]) -> list[RunStatus | Exception]:
        """One status check of each (job, run id), at once: the checks of runs on one target go
        out as batched requests (a completion sensor's tick). In the order given; a check
        that could not run is its exception."""
        async def one(spec: JobSpec, run_id: str) -> RunStatus:
            flows = self._flows(spec)
            return _as_status(await self._run(_check(flows, run_id)))

        got = await asyncio.gather(*(one(s, r) for s, r in items), return_exceptions=True)
        out: list[RunStatus | Exception] = []
        for g in got:
            if isinstance(g, BaseException) and not isinstance(g, Exception):
                raise g
            out.append(g)
        return out

    async def _run(self, flow: Flow) -> Any:
        value: Any = None
        while True:
            try:
                action = flow.send(value)
            except StopIteration as stop:
                return stop.value
            value = None  # a finished reply must not stay alive while the flow sleeps
            if isinstance(action, Send):
                value = await self._send(action)
            elif isinstance(action, PollRun):
                value = await self._poll_run(action)
            elif isinstance(action, Sleep):
                await self._pause(action.seconds)
            elif isinstance(action, Resolve):
                value, todo = self._recent_values(action)
                got = {n: await self._lookup(n, shared=not action.fresh) for n in todo}
                self._remember(got)
                value.update(got)
            else:  # pragma: no cover
                raise TypeError(action)

    async def _pause(self, seconds: float) -> None:
        if self._sleep is asyncio.sleep:
            await coalesced_sleep(seconds)
        else:
            await self._sleep(seconds)

    async def _lookup(self, name: str, *, shared: bool) -> str | None:
        """Resolve one secret. Polls share a lookup already under way: a triggerer starting a
        thousand waits on one spec asks the resolvers (an Airflow connection, a vault) once,
        not a thousand times before the first answer is remembered."""
        if not shared:
            return await resolve_async(self._resolvers, name)
        pending = self._pending.get(name)
        if pending is None:
            pending = self._pending[name] = asyncio.ensure_future(
                resolve_async(self._resolvers, name))
            pending.add_done_callback(lambda _: self._pending.pop(name, None))
        return await asyncio.shield(pending)

    async def fire(self, spec: JobSpec, context: Mapping[str, Any] | None = None, *,
                   scheduled_time: datetime | None = None, render: bool = True,
                   upstream: Upstream | None = None, delay: bool = True) -> TriggerResult:
        """As ``Engine.fire``: ``upstream`` names who starts the run, ``delay=False`` skips
        the wait for the job's ``delay_seconds``."""
        flows, scheduled, skipped = self._start_fire(spec, context, scheduled_time, render)
        if skipped is not None:
            return skipped
        if delay and (left := self._delay_of(flows, scheduled)) > 0:
            await self._sleep(left)
        result: TriggerResult = await self._run(flows.fire(scheduled, self.state.monotonic(),
                                                           upstream=upstream))
        return result

    def _queue_of(self, spec: JobSpec) -> asyncio.Semaphore | None:
        """The engine-wide semaphore of the job's queue (None: no queue, or no limit). The
        first limit seen for a queue name is the one it keeps."""
        queue = spec.queue
        if queue is None or queue.concurrency_limit is None:
            return None
        loop = asyncio.get_running_loop()
        if self._queues_loop is not loop:  # a semaphore's waiters belong to one loop
            self._queues, self._queues_loop = {}, loop
        sem = self._queues.get(queue.name)
        if sem is None:
            sem = self._queues[queue.name] = asyncio.Semaphore(queue.concurrency_limit)
        return sem

    async def _slots(self, spec: JobSpec, sem: asyncio.Semaphore,
                     work: Callable[[], Awaitable[Any]]) -> Any:
        # The queue's slot first, then one of the call's: a job waiting for its queue holds
        # none of the `concurrency` slots that jobs of other queues could use meanwhile.
        queue = self._queue_of(spec)
        if queue is None:
            async with sem:
                return await work()
        async with queue, sem:
            return await work()

    async def _delay_outside(self, spec: JobSpec, context: Mapping[str, Any] | None,
                             ) -> tuple[Mapping[str, Any] | None, bool]:
        """Wait out a job's ``delay_seconds`` before it takes any slot (a delayed job is not
        in flight yet): the context to fire with, its scheduled time pinned to the one the
        delay counted from, and whether the delay is done."""
        if not spec.delay_seconds:
            return context, False
        ctx = dict(context or {})
        scheduled = ctx.get("scheduled_time")
        if isinstance(scheduled, str):
            try:
                scheduled = parse_iso_time(scheduled, f"job {spec.name!r}: scheduled_time")
            except SpecError:
                return context, False  # the fire reports it
        if scheduled is None:
            scheduled = ctx["scheduled_time"] = self.state.now()
        if not isinstance(scheduled, datetime) or scheduled.tzinfo is None:
            return context, False
        left = delay_left(spec, scheduled, self.state.wall())
        if left > 0:
            self.state.emit("delay", spec.name, f"delay_seconds={spec.delay_seconds:g}: "
                            f"firing in {left:.1f}s", delay_seconds=left)
            await self._sleep(left)
        return ctx, True

    async def fire_many(self, specs: Iterable[JobSpec], concurrency: int = 10,
                        context: Mapping[str, Any] | None = None, *,
                        upstream: Upstream | None = None) -> list[TriggerResult]:
        """Fire many jobs, at most ``concurrency`` at once, and at most a queue's
        ``concurrency_limit`` of each queue's jobs (engine-wide); results in the order given."""
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        sem = asyncio.Semaphore(concurrency)

        async def one(spec: JobSpec) -> TriggerResult:
            ctx, delayed = await self._delay_outside(spec, context)
            result: TriggerResult = await self._slots(
                spec, sem, lambda: self.fire(spec, ctx, upstream=upstream, delay=not delayed))
            return result

        return list(await asyncio.gather(*(one(s) for s in specs)))

    async def run_many(self, specs: Iterable[JobSpec], *, concurrency: int = 10,
                       context: Mapping[str, Any] | None = None,
                       upstream: Upstream | None = None,
                       on_progress: Callable[[int, JobRun | None, str], None] | None = None,
                       ) -> list[JobRun]:
        """Fire each job and, when it waits (``wait.enabled``, or its target's default),
        wait for its run: the seed's ``batchTriggerAndWait``. At most ``concurrency`` jobs
        in flight (a job is in flight from its fire to the end of its wait; a job's
        ``delay_seconds`` runs before, holding no slot), and at most a queue's
        ``concurrency_limit`` of each queue's jobs. Results in the order given.

        ``on_progress(index, job_run, phase)`` is called as each job moves on: phase
        ``"firing"`` (``job_run`` None), ``"waiting"`` (the trigger known, the run not
        yet), ``"done"``."""
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        sem = asyncio.Semaphore(concurrency)

        def tell(i: int, got: JobRun | None, phase: str) -> None:
            if on_progress is not None:
                on_progress(i, got, phase)

        async def work(i: int, spec: JobSpec, ctx: Mapping[str, Any] | None,
                       delayed: bool) -> JobRun:
            tell(i, None, "firing")
            trigger = await self.fire(spec, ctx, upstream=upstream, delay=not delayed)
            run = None
            if trigger.ok and not trigger.skipped and trigger.run_id and spec.waits:
                tell(i, JobRun(trigger), "waiting")
                run = await self.wait(trigger)
            got = JobRun(trigger, run)
            tell(i, got, "done")
            return got

        async def one(i: int, spec: JobSpec) -> JobRun:
            ctx, delayed = await self._delay_outside(spec, context)
            got: JobRun = await self._slots(spec, sem, lambda: work(i, spec, ctx, delayed))
            return got

        return list(await asyncio.gather(*(one(i, s) for i, s in enumerate(specs))))

    async def wait(self, target: TriggerResult | JobSpec, run_id: str | None = None, *,
                   poll_interval: float | None = None, timeout: float | None = None,
                   end_time: float | None = None) -> RunResult:
        rid, url = self._run_of(target, run_id)
        flows = self._flows(self._spec_of(target))
        result: RunResult = await self._run(flows.wait(rid, url, poll_interval=poll_interval,
                                                       timeout=timeout, end_time=end_time))
        return result

    async def poll(self, target: TriggerResult | JobSpec, run_id: str | None = None) -> RunStatus:
        rid, _ = self._run_of(target, run_id)
        return _as_status(await self._run(self._flows(self._spec_of(target)).poll(rid)))

    async def cancel(self, target: TriggerResult | JobSpec, run_id: str | None = None) -> bool:
        rid, _ = self._run_of(target, run_id)
        ok: bool = await self._run(self._flows(self._spec_of(target)).cancel(rid))
        return ok


SecretsMap = Mapping[str, str]
