"""``Engine`` and ``AsyncEngine``: the I/O around the shared flows in ``_flow``."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

import httpx

from ._flow import (
    EngineState,
    Event,
    Flow,
    JobFlows,
    Outcome,
    Resolve,
    Send,
    Sleep,
    idempotency_key,
    prepare,
)
from ._models import JobSpec
from ._results import RunResult, RunState, TriggerResult
from ._secrets import AnyResolver, SecretsArg, normalize_resolvers, resolve_async, resolve_sync
from ._targets import HttpReply, RunStatus


def _describe(exc: httpx.HTTPError, timeout: float) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out after {timeout:g}s ({type(exc).__name__})"
    if isinstance(exc, httpx.ConnectError):
        return f"connection failed: {exc or type(exc).__name__}"
    return f"{type(exc).__name__}: {exc}"


def _reply(resp: httpx.Response, body: bytes, truncated: bool) -> HttpReply:
    return HttpReply(resp.status_code, {k.lower(): v for k, v in resp.headers.items()}, body,
                     truncated)


class _Watchdog:
    """Cuts a sync response off at its deadline.

    httpx's read timeout applies to each read, so a body that trickles in (or stalls after
    late headers) could take several times ``timeout_seconds``. At the deadline this shuts the
    socket down, which wakes the blocked read at once. (The async engine uses ``wait_for``.)
    """

    def __init__(self, resp: httpx.Response, deadline: float) -> None:
        self.fired = False
        self._done = False
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        stream = resp.extensions.get("network_stream")
        self._sock: socket.socket | None = (
            stream.get_extra_info("socket") if stream is not None else None)
        if self._sock is not None:
            self._timer = threading.Timer(max(0.0, deadline - time.monotonic()), self._cut)
            self._timer.daemon = True
            self._timer.start()

    def _cut(self) -> None:
        with self._lock:
            if self._done:  # the body was read in time; the socket may be back in the pool
                return
            self.fired = True
            if self._sock is not None:
                with contextlib.suppress(OSError):
                    self._sock.shutdown(socket.SHUT_RDWR)

    def cancel(self) -> None:
        with self._lock:
            self._done = True
        if self._timer is not None:
            self._timer.cancel()


class _Base:
    def __init__(self, *, secrets: SecretsArg = None, verify: bool | str = True,
                 on_event: Callable[[Event], None] | None = None,
                 on_secret: Callable[[str], None] | None = None,
                 clock: Callable[[], float] | None = None,
                 wall_clock: Callable[[], float] | None = None,
                 random: Callable[[], float] | None = None) -> None:
        self._resolvers: list[AnyResolver] = normalize_resolvers(secrets)
        self._verify = verify
        self.state = EngineState(on_event=on_event, on_secret=on_secret)
        if clock is not None:
            self.state.monotonic = clock
        if wall_clock is not None:
            self.state.wall = wall_clock
        if random is not None:
            self.state.random = random

    def _flows(self, spec: JobSpec, key: str | None = None) -> JobFlows:
        return JobFlows(spec, self.state, key=key)

    def _start_fire(self, spec: JobSpec, context: Mapping[str, Any] | None,
                    scheduled_time: datetime | None, render: bool) -> tuple[JobFlows, datetime, TriggerResult | None]:
        ctx = dict(context or {})
        scheduled = scheduled_time or ctx.pop("scheduled_time", None)
        if isinstance(scheduled, str):
            scheduled = datetime.fromisoformat(scheduled)
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

    @staticmethod
    def _spec_of(target: TriggerResult | JobSpec) -> JobSpec:
        spec = target.spec if isinstance(target, TriggerResult) else target
        if spec is None:
            raise ValueError("this TriggerResult carries no spec; pass the JobSpec and run_id")
        return spec

    @staticmethod
    def _run_of(target: TriggerResult | JobSpec, run_id: str | None) -> tuple[str, str | None]:
        if isinstance(target, TriggerResult):
            rid = run_id or target.run_id
            if rid is None:
                raise ValueError(f"job {target.job!r}: the trigger result has no run id to wait "
                                 f"on ({target.reason or target.error or 'the target returned none'})")
            return rid, target.run_url
        if run_id is None:
            raise ValueError("run_id is required when waiting on a JobSpec")
        return run_id, None


class Engine(_Base):
    """Sync engine: ``fire``, ``wait``, ``poll``, ``cancel``. Use as a context manager."""

    def __init__(self, *, secrets: SecretsArg = None, client: httpx.Client | None = None,
                 sleep: Callable[[float], None] = time.sleep, **kwargs: Any) -> None:
        super().__init__(secrets=secrets, **kwargs)
        self._sleep = sleep
        self._own_client = client is None
        self._clients: dict[bool | str, httpx.Client] = {}
        if client is not None:
            self._clients[self._verify] = client

    def _client(self, verify: bool | str) -> httpx.Client:
        if verify is True:
            verify = self._verify
        if verify not in self._clients:
            self._clients[verify] = httpx.Client(verify=verify, follow_redirects=False,
                                                 trust_env=False)
        return self._clients[verify]

    def close(self) -> None:
        if self._own_client:
            for c in self._clients.values():
                c.close()
        self._clients.clear()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(self, a: Send) -> Outcome:
        client = self._client(a.verify)
        t0 = time.monotonic()
        deadline = t0 + a.timeout
        watchdog: _Watchdog | None = None
        try:
            req = client.build_request(a.method, a.url, headers=dict(a.headers), content=a.content,
                                       timeout=httpx.Timeout(a.timeout))
            resp = client.send(req, stream=True)
            watchdog = _Watchdog(resp, deadline)
            try:
                chunks: list[bytes] = []
                size = 0
                truncated = False
                for chunk in resp.iter_bytes():
                    chunks.append(chunk)
                    size += len(chunk)
                    if size > a.max_bytes:
                        truncated = True
                        break
                    if time.monotonic() > deadline:
                        raise httpx.ReadTimeout("body too slow", request=req)
            finally:
                watchdog.cancel()
                resp.close()
            body = b"".join(chunks)[: a.max_bytes]
            return Outcome(_reply(resp, body, truncated), None, (time.monotonic() - t0) * 1000)
        except httpx.HTTPError as exc:
            err: httpx.HTTPError = exc
            if watchdog is not None and watchdog.fired:  # the cut shows up as a broken read
                err = httpx.ReadTimeout("the response took longer than the timeout")
            return Outcome(None, _describe(err, a.timeout), (time.monotonic() - t0) * 1000)

    def _run(self, flow: Flow) -> Any:
        value: Any = None
        while True:
            try:
                action = flow.send(value)
            except StopIteration as stop:
                return stop.value
            if isinstance(action, Send):
                value = self._send(action)
            elif isinstance(action, Sleep):
                self._sleep(action.seconds)
                value = None
            elif isinstance(action, Resolve):
                value = {n: resolve_sync(self._resolvers, n) for n in action.names}
            else:  # pragma: no cover
                raise TypeError(action)

    def fire(self, spec: JobSpec, context: Mapping[str, Any] | None = None, *,
             scheduled_time: datetime | None = None, render: bool = True) -> TriggerResult:
        """Send the job's trigger request, with retries. Failures are recorded, not raised."""
        flows, scheduled, skipped = self._start_fire(spec, context, scheduled_time, render)
        if skipped is not None:
            return skipped
        result: TriggerResult = self._run(flows.fire(scheduled, self.state.monotonic()))
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

    def poll(self, spec: JobSpec, run_id: str) -> RunStatus:
        """One status check. A failed check is ``RunState.UNKNOWN`` with the reason."""
        got = self._run(self._flows(spec).poll(run_id))
        return _as_status(got)

    def cancel(self, target: TriggerResult | JobSpec, run_id: str | None = None) -> bool:
        """Best effort: ask the target to cancel the run. True when the target accepted."""
        rid, _ = self._run_of(target, run_id)
        ok: bool = self._run(self._flows(self._spec_of(target)).cancel(rid))
        return ok


def _as_status(got: Any) -> RunStatus:
    if isinstance(got, RunStatus):
        return got
    assert isinstance(got, Outcome)
    what = got.error or f"HTTP {got.reply.status_code if got.reply else '?'}"
    return RunStatus(RunState.UNKNOWN, None, f"status check failed: {what}")


class AsyncEngine(_Base):
    """Async engine: the same methods, awaited, plus ``fire_many``. One shared connection pool."""

    def __init__(self, *, secrets: SecretsArg = None, client: httpx.AsyncClient | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 pool_size: int = 100, **kwargs: Any) -> None:
        super().__init__(secrets=secrets, **kwargs)
        self._sleep = sleep
        self._own_client = client is None
        self._pool_size = pool_size
        self._clients: dict[bool | str, httpx.AsyncClient] = {}
        if client is not None:
            self._clients[self._verify] = client

    def _client(self, verify: bool | str) -> httpx.AsyncClient:
        if verify is True:
            verify = self._verify
        if verify not in self._clients:
            limits = httpx.Limits(max_connections=self._pool_size,
                                  max_keepalive_connections=self._pool_size)
            self._clients[verify] = httpx.AsyncClient(verify=verify, follow_redirects=False,
                                                      trust_env=False, limits=limits)
        return self._clients[verify]

    async def aclose(self) -> None:
        if self._own_client:
            for c in self._clients.values():
                await c.aclose()
        self._clients.clear()

    async def __aenter__(self) -> AsyncEngine:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _exchange(self, client: httpx.AsyncClient, a: Send) -> Outcome:
        req = client.build_request(a.method, a.url, headers=dict(a.headers), content=a.content,
                                   timeout=httpx.Timeout(a.timeout))
        resp = await client.send(req, stream=True)
        try:
            chunks: list[bytes] = []
            size = 0
            truncated = False
            async for chunk in resp.aiter_bytes():
                chunks.append(chunk)
                size += len(chunk)
                if size > a.max_bytes:
                    truncated = True
                    break
        finally:
            await resp.aclose()
        return Outcome(_reply(resp, b"".join(chunks)[: a.max_bytes], truncated), None, 0.0)

    async def _send(self, a: Send) -> Outcome:
        t0 = time.monotonic()
        try:
            got = await asyncio.wait_for(self._exchange(self._client(a.verify), a), a.timeout)
            return Outcome(got.reply, None, (time.monotonic() - t0) * 1000)
        except asyncio.TimeoutError:
            return Outcome(None, f"timed out after {a.timeout:g}s", (time.monotonic() - t0) * 1000)
        except httpx.HTTPError as exc:
            return Outcome(None, _describe(exc, a.timeout), (time.monotonic() - t0) * 1000)

    async def _run(self, flow: Flow) -> Any:
        value: Any = None
        while True:
            try:
                action = flow.send(value)
            except StopIteration as stop:
                return stop.value
            if isinstance(action, Send):
                value = await self._send(action)
            elif isinstance(action, Sleep):
                await self._sleep(action.seconds)
                value = None
            elif isinstance(action, Resolve):
                value = {n: await resolve_async(self._resolvers, n) for n in action.names}
            else:  # pragma: no cover
                raise TypeError(action)

    async def fire(self, spec: JobSpec, context: Mapping[str, Any] | None = None, *,
                   scheduled_time: datetime | None = None, render: bool = True) -> TriggerResult:
        flows, scheduled, skipped = self._start_fire(spec, context, scheduled_time, render)
        if skipped is not None:
            return skipped
        result: TriggerResult = await self._run(flows.fire(scheduled, self.state.monotonic()))
        return result

    async def fire_many(self, specs: Iterable[JobSpec], concurrency: int = 10,
                        context: Mapping[str, Any] | None = None) -> list[TriggerResult]:
        """Fire many jobs, at most ``concurrency`` at once; results in the order given."""
        sem = asyncio.Semaphore(concurrency)

        async def one(spec: JobSpec) -> TriggerResult:
            async with sem:
                return await self.fire(spec, context)

        return list(await asyncio.gather(*(one(s) for s in specs)))

    async def wait(self, target: TriggerResult | JobSpec, run_id: str | None = None, *,
                   poll_interval: float | None = None, timeout: float | None = None,
                   end_time: float | None = None) -> RunResult:
        rid, url = self._run_of(target, run_id)
        flows = self._flows(self._spec_of(target))
        result: RunResult = await self._run(flows.wait(rid, url, poll_interval=poll_interval,
                                                       timeout=timeout, end_time=end_time))
        return result

    async def poll(self, spec: JobSpec, run_id: str) -> RunStatus:
        return _as_status(await self._run(self._flows(spec).poll(run_id)))

    async def cancel(self, target: TriggerResult | JobSpec, run_id: str | None = None) -> bool:
        rid, _ = self._run_of(target, run_id)
        ok: bool = await self._run(self._flows(self._spec_of(target)).cancel(rid))
        return ok


SecretsMap = Mapping[str, str]
