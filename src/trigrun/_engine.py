"""``Engine`` and ``AsyncEngine``: the I/O around the shared flows in ``_flow``."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import math
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
from ._sync_transport import SyncSender
from ._sync_transport import available as sync_transport_available
from ._targets import HttpReply, RunStatus
from ._transport import NO_CONTEXT, LeanSender, rejected_certificate
from ._transport import available as transport_available


def _describe(exc: httpx.HTTPError, timeout: float) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out after {timeout:g}s ({type(exc).__name__})"
    if isinstance(exc, httpx.ConnectError):
        return f"connection failed: {exc or type(exc).__name__}"
    return f"{type(exc).__name__}: {exc}"


# What httpx.Client sends by default, for requests sent straight to the transport.
try:
    from httpx._client import ACCEPT_ENCODING as _ACCEPT_ENCODING
    from httpx._client import USER_AGENT as _USER_AGENT
except ImportError:  # pragma: no cover - moved in another httpx
    _ACCEPT_ENCODING, _USER_AGENT = "gzip, deflate", f"python-httpx/{httpx.__version__}"
_DEFAULT_HEADERS = {"Accept": "*/*", "Accept-Encoding": _ACCEPT_ENCODING,
                    "Connection": "keep-alive", "User-Agent": _USER_AGENT}
_HTTPX_LOG = logging.getLogger("httpx")
_TIMEOUTS: dict[float, httpx.Timeout] = {}


def _timeout(seconds: float) -> httpx.Timeout:
    t = _TIMEOUTS.get(seconds)
    if t is None:
        t = _TIMEOUTS[seconds] = httpx.Timeout(seconds)
    return t


def _invalid_url(exc: Exception) -> str:
    # The flow redacts the message; the offending URL part may still be long: cut it.
    return f"invalid URL ({type(exc).__name__}: {str(exc)[:200]})"


def _reply(resp: httpx.Response, body: bytes, truncated: bool) -> HttpReply:
    return HttpReply(resp.status_code, {k.lower(): v for k, v in resp.headers.items()}, body,
                     truncated)


class _Deadlines:
    """Cuts sync responses off at their deadline; one daemon thread for every sync engine.

    httpx's read timeout applies to each read, so a body that trickles in (or stalls after
    late headers) could take several times ``timeout_seconds``. At the deadline this shuts the
    socket down, which wakes the blocked read at once. (The async engine bounds the whole
    exchange itself.) A timer thread per request would cost more than the request: here
    arming is a heap push under a lock, and the thread only wakes when a live deadline passes.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int]] = []
        self._live: dict[int, socket.socket] = {}
        self._fired: set[int] = set()
        self._ids = itertools.count()
        self._next = math.inf  # the deadline the thread sleeps until
        self._thread: threading.Thread | None = None

    def arm(self, resp: httpx.Response, deadline: float) -> int | None:
        stream = resp.extensions.get("network_stream")
        sock: socket.socket | None = (
            stream.get_extra_info("socket") if stream is not None else None)
        if sock is None:
            return None
        handle = next(self._ids)
        with self._cond:
            self._live[handle] = sock
            heapq.heappush(self._heap, (deadline, handle))
            if len(self._heap) > 1024 and len(self._heap) > 4 * len(self._live):
                # Finished requests leave entries behind; drop them now and then.
                self._heap = [e for e in self._heap if e[1] in self._live]
                heapq.heapify(self._heap)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="trigrun-deadlines",
                                                daemon=True)
                self._thread.start()
            elif deadline < self._next:
                self._cond.notify()
        return handle

    def disarm(self, handle: int | None) -> bool:
        """Forget the deadline; True when it had already fired (the read saw a cut socket)."""
        if handle is None:
            return False
        with self._cond:
            if self._live.pop(handle, None) is not None:
                return False
            if handle in self._fired:
                self._fired.discard(handle)
                return True
        return False

    def _loop(self) -> None:
        heap, live = self._heap, self._live
        with self._cond:
            while True:
                heap = self._heap
                now = time.monotonic()
                while heap and (heap[0][0] <= now or heap[0][1] not in live):
                    _, handle = heapq.heappop(heap)
                    sock = live.pop(handle, None)
                    if sock is not None:  # overdue and still reading: cut it
                        self._fired.add(handle)
                        with contextlib.suppress(OSError):
                            sock.shutdown(socket.SHUT_RDWR)
                self._next = heap[0][0] if heap else math.inf
                self._cond.wait(None if not heap else max(0.0, self._next - now))


_DEADLINES = _Deadlines()


# How long a resolved secret may serve the status polls of other waits on the same engine
# (a fire, and the first poll after this long, ask the resolvers again).
SHARED_SECRETS_SECONDS = 10.0


class _Base:
    def __init__(self, *, secrets: SecretsArg = None, verify: bool | str = True,
                 on_event: Callable[[Event], None] | None = None,
                 on_secret: Callable[[str], None] | None = None,
                 clock: Callable[[], float] | None = None,
                 wall_clock: Callable[[], float] | None = None,
                 random: Callable[[], float] | None = None) -> None:
        self._resolvers: list[AnyResolver] = normalize_resolvers(secrets)
        self._verify = verify
        # name -> (value, when resolved): a triggerer's engine runs thousands of waits on the
        # same few secrets, and one lookup (an Airflow connection, a vault) per wait adds up.
        self._recent: dict[str, tuple[str, float]] = {}
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
    """Sync engine: ``fire``, ``wait``, ``poll``, ``cancel``. Use as a context manager.

    With no ``client`` given, requests go through trigrun's own HTTP/1.1 client
    (``trigrun._sync_transport``: one thread-safe keep-alive pool, the whole exchange bounded
    by the request's timeout), which costs a fraction of ``httpx.Client``; the request line
    httpx would log is logged the same way. Pass ``client=httpx.Client(...)`` to send through
    a client of your own (proxies, HTTP/2, event hooks, mounts). While a mocking library
    (pytest-httpx, respx) has patched httpx, requests go to an ``httpx.HTTPTransport``, so the
    mocks see every request.
    """

    def __init__(self, *, secrets: SecretsArg = None, client: httpx.Client | None = None,
                 sleep: Callable[[float], None] = time.sleep, **kwargs: Any) -> None:
        super().__init__(secrets=secrets, **kwargs)
        self._sleep = sleep
        self._own_client = client is None
        self._clients: dict[bool | str, httpx.Client] = {}
        self._transports: dict[bool | str, httpx.HTTPTransport] = {}
        self._senders: dict[bool | str, SyncSender] = {}
        if client is not None:
            self._clients[self._verify] = client

    def _client(self, verify: bool | str) -> httpx.Client:
        if verify is True:
            verify = self._verify
        if verify not in self._clients:
            self._clients[verify] = httpx.Client(verify=verify, follow_redirects=False,
                                                 trust_env=False)
        return self._clients[verify]

    def _transport(self, verify: bool | str) -> httpx.HTTPTransport:
        if verify is True:
            verify = self._verify
        t = self._transports.get(verify)
        if t is None:
            t = self._transports[verify] = httpx.HTTPTransport(verify=verify, trust_env=False)
        return t

    def _sender(self, verify: bool | str) -> SyncSender | None:
        """The own HTTP/1.1 client for this TLS setting, or None: send through httpx."""
        if not self._own_client or not sync_transport_available():
            return None
        if verify is True:
            verify = self._verify
        sender = self._senders.get(verify)
        if sender is None:
            sender = self._senders[verify] = SyncSender(pool_size=100, verify=verify)
        return sender

    def close(self) -> None:
        if self._own_client:
            for c in self._clients.values():
                c.close()
        self._clients.clear()
        for t in self._transports.values():
            t.close()
        self._transports.clear()
        for sender in self._senders.values():
            sender.close()
        self._senders.clear()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _open(self, a: Send) -> httpx.Response:
        """Send the request; the response's body is still to be read."""
        if self._own_client:
            given = {k.lower() for k in a.headers}
            headers = {k: v for k, v in _DEFAULT_HEADERS.items() if k.lower() not in given}
            headers.update(a.headers)
            req = httpx.Request(a.method, a.url, headers=headers, content=a.content,
                                extensions={"timeout": _timeout(a.timeout).as_dict()})
            if not req.url.userinfo:  # credentials in the URL: the client turns them into auth
                resp = self._transport(a.verify).handle_request(req)
                resp.request = req
                return resp
        client = self._client(a.verify)
        req = client.build_request(a.method, a.url, headers=a.headers, content=a.content,
                                   timeout=_timeout(a.timeout))
        return client.send(req, stream=True)

    def _send(self, a: Send) -> Outcome:
        sender = self._sender(a.verify)
        if sender is not None:
            got = sender.send(a)
            if got is not None:
                return got
        t0 = time.monotonic()
        deadline = t0 + a.timeout
        cut: int | None = None
        fired = False
        try:
            resp = self._open(a)
            cut = _DEADLINES.arm(resp, deadline)
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
                        raise httpx.ReadTimeout("body too slow", request=resp.request)
            finally:
                fired = _DEADLINES.disarm(cut)
                cut = None
                resp.close()
            if self._own_client and _HTTPX_LOG.isEnabledFor(logging.INFO) \
                    and not resp.request.url.userinfo:
                _HTTPX_LOG.info('HTTP Request: %s %s "%s %d %s"', a.method, a.url,
                                resp.http_version, resp.status_code, resp.reason_phrase)
            body = b"".join(chunks)[: a.max_bytes]
            return Outcome(_reply(resp, body, truncated), None, (time.monotonic() - t0) * 1000)
        except httpx.HTTPError as exc:
            err: httpx.HTTPError = exc
            if fired:  # the cut shows up as a broken read
                err = httpx.ReadTimeout("the response took longer than the timeout")
            return Outcome(None, _describe(err, a.timeout), (time.monotonic() - t0) * 1000,
                           permanent=rejected_certificate(err))
        except (httpx.InvalidURL, ValueError, OverflowError) as exc:
            # A URL httpx cannot send (a control character, a host label over 63 characters,
            # a port over 65535): a failed attempt, as any other, not an exception.
            return Outcome(None, _invalid_url(exc), (time.monotonic() - t0) * 1000)

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


class AsyncEngine(_Base):
    """Async engine: the same methods, awaited, plus ``fire_many``. One shared connection pool.

    Requests go through trigrun's own HTTP/1.1 client (``trigrun._transport``): at most
    ``pool_size`` connections, kept alive between polls. Pass ``client=httpx.AsyncClient(...)`` to send through httpx
    instead; the engine also uses httpx while a mocking library (pytest-httpx, respx) has
    patched it, so the mocks see every request.
    """

    def __init__(self, *, secrets: SecretsArg = None, client: httpx.AsyncClient | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 pool_size: int = 100, **kwargs: Any) -> None:
        super().__init__(secrets=secrets, **kwargs)
        self._sleep = sleep
        self._own_client = client is None
        self._pool_size = pool_size
        self._clients: dict[bool | str, httpx.AsyncClient] = {}
        self._senders: dict[bool | str, LeanSender] = {}
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

    def _sender(self, verify: bool | str) -> LeanSender | None:
        """The lean sender for this TLS setting, or None: send through httpx."""
        if not self._own_client or not transport_available():
            return None
        if verify is True:
            verify = self._verify
        sender = self._senders.get(verify)
        if sender is None:
            sender = self._senders[verify] = LeanSender(pool_size=self._pool_size,
                                                           verify=verify)
        return sender

    async def aclose(self) -> None:
        if self._own_client:
            for c in self._clients.values():
                await c.aclose()
        self._clients.clear()
        for sender in self._senders.values():
            await sender.aclose()
        self._senders.clear()

    async def __aenter__(self) -> AsyncEngine:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _exchange(self, client: httpx.AsyncClient, a: Send) -> Outcome:
        req = client.build_request(a.method, a.url, headers=a.headers, content=a.content,
                                   timeout=_timeout(a.timeout))
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
        sender = self._sender(a.verify)
        if sender is not None:
            got = await sender.send(a)
            if got is not None:
                return got
        t0 = time.monotonic()
        try:
            got = await asyncio.wait_for(self._exchange(self._client(a.verify), a), a.timeout)
            return Outcome(got.reply, None, (time.monotonic() - t0) * 1000)
        except asyncio.TimeoutError:
            return Outcome(None, f"timed out after {a.timeout:g}s", (time.monotonic() - t0) * 1000)
        except httpx.HTTPError as exc:
            return Outcome(None, _describe(exc, a.timeout), (time.monotonic() - t0) * 1000,
                           permanent=rejected_certificate(exc))
        except (httpx.InvalidURL, ValueError, OverflowError) as exc:
            return Outcome(None, _invalid_url(exc), (time.monotonic() - t0) * 1000)

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
            elif isinstance(action, Sleep):
                if self._sleep is asyncio.sleep:
                    await coalesced_sleep(action.seconds)
                else:
                    await self._sleep(action.seconds)
            elif isinstance(action, Resolve):
                value, todo = self._recent_values(action)
                got = {n: await resolve_async(self._resolvers, n) for n in todo}
                self._remember(got)
                value.update(got)
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
