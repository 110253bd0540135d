"""The async engine's HTTP/1.1 client: asyncio protocols, one bounded keep-alive pool.

Why not httpx's own async transport: its pool (httpcore over anyio) costs 0.5-4 ms of CPU per
request once a few hundred are in flight, more than the rest of a poll put together, and a
triggerer polling thousands of runs pays it on every poll. aiohttp's client costs ~0.15 ms;
this one, which does only what the engine needs, about a third of that (numbers in
``benchmarks/README.md``). The HTTP itself (request bytes, reply parsing) is ``_http11``.

What it adds: TCP or TLS connections (httpx's SSL context, so the same CA bundle and
``verify`` as the sync engine); one request at a time per connection; at most ``pool_size``
connections, kept alive for ``KEEPALIVE`` seconds; the whole exchange, connecting included,
bounded by the request's timeout; a reply over ``max_bytes`` (decoded) ends its connection.
An idempotent request that finds its kept-alive connection closed by the server is sent once
more on a new one; anything else is reported, never silently re-sent. Redirects, retries and
cookies are not its business (the flows handle the first two; every request carries its own
credentials).

httpx stays the engine's public face: pass ``client=httpx.AsyncClient(...)`` to send through it
(proxies, HTTP/2, custom transports), and while a mocking library has patched httpx or httpcore
(pytest-httpx, respx) the engine sends through httpx so the mocks see every request.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import ssl
from collections import deque

import httpx

from ._flow import Outcome, Send
from ._http11 import (
    IDEMPOTENT,
    KEEPALIVE,
    Origin,
    ProtocolError,
    Reply,
    ReplyParser,
    Stale,
    UseHttpx,
    httpx_patched,
    readable,
    request_bytes,
    split_url,
)
from ._targets import HttpReply

# For the engine's own timers (deadlines, wake-ups), whose callbacks read no context variable:
# asyncio would copy the caller's context for each one, and thousands stay scheduled at once.
NO_CONTEXT = contextvars.Context()
# The request line httpx logs at INFO, written the same way, so logs do not depend on the
# transport (it goes through the same redacting filter; Airflow sets this logger to WARNING).
HTTPX_LOG = logging.getLogger("httpx")


def available() -> bool:
    """The own client may send (no mocking library has patched httpx's async transport)."""
    return not httpx_patched(sync=False)


def log_request(a: Send, reply: Reply) -> None:
    if HTTPX_LOG.isEnabledFor(logging.INFO):
        HTTPX_LOG.info('HTTP Request: %s %s "HTTP/1.1 %d %s"', a.method, a.url, reply.status,
                       reply.reason)


def outcome_of(a: Send, reply: Reply, ms: float) -> Outcome:
    body = reply.body[0] if len(reply.body) == 1 else b"".join(reply.body)
    log_request(a, reply)
    return Outcome(HttpReply(reply.status, reply.headers, body[: a.max_bytes], reply.truncated),
                   None, ms)


class _Timeout(Exception):
    pass


class _Conn(asyncio.Protocol):
    """One connection: a request is written whole, its reply parsed as the bytes arrive."""

    def __init__(self, pool: LeanSender, origin: Origin) -> None:
        self.pool = pool
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        self.alive = True  # counted in the pool's connections
        self.idle_since = 0.0
        self.used = False  # a reply was read on it before (so it may have gone stale)
        self.parser = ReplyParser()
        self._waiter: asyncio.Future[Reply] | None = None

    # -- asyncio.Protocol ----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self._waiter is None:  # nothing asked: a server talking out of turn; drop it
            self.close()
            return
        try:
            done = self.parser.feed(data)
        except ProtocolError as exc:
            self._fail(exc)
            return
        if done:
            self._complete()

    def eof_received(self) -> bool:
        if self._waiter is not None and self.parser.eof():
            self._complete()
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.pool._drop(self)
        if self._waiter is None:
            return
        if exc is None and self.parser.eof():  # the close is the end of the body
            self._complete()
        elif not self.parser.got_bytes and self.used:
            self._fail(Stale())
        else:
            self._fail(ProtocolError("the server closed the connection without a full reply"))

    # -- one exchange --------------------------------------------------------------------------
    def start(self, data: bytes, method: str, limit: int) -> asyncio.Future[Reply]:
        assert self.transport is not None
        self._waiter = self.pool.loop.create_future()
        self.parser.start(method, limit)
        self.transport.write(data)
        return self._waiter

    def expire(self) -> None:
        if self._waiter is not None:  # else the reply is in: its task just has not run yet
            self._fail(_Timeout())

    def close(self) -> None:
        self.close_transport()
        self.pool._drop(self)

    def close_transport(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()
        self.pool._drop(self)

    def _fail(self, exc: BaseException) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        self.abort()

    def _complete(self) -> None:
        waiter, self._waiter = self._waiter, None
        self.used = True
        if waiter is not None and not waiter.done():
            waiter.set_result(self.parser.reply)


class LeanSender:
    """Sends the engine's ``Send`` actions over a pool of at most ``pool_size`` connections.

    A pool belongs to the event loop it was first used on; on another loop (a second
    ``asyncio.run``) the old connections are dropped and a new pool starts.
    """

    def __init__(self, *, pool_size: int, verify: bool | str) -> None:
        self._pool_size = max(1, pool_size)
        self._verify = verify
        self._ssl: ssl.SSLContext | None = None
        self.loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]
        self._idle: dict[Origin, list[_Conn]] = {}
        self._conns: set[_Conn] = set()
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def connections(self) -> int:
        return len(self._conns)

    # -- the pool ------------------------------------------------------------------------------
    def _bind(self) -> None:
        loop = asyncio.get_running_loop()
        if self.loop is not loop:
            self._reset()
            self.loop = loop

    def _reset(self) -> None:
        for conn in list(self._conns):
            if conn.transport is not None and not conn.transport.is_closing():
                with contextlib.suppress(RuntimeError):  # its loop is closed, socket and all
                    conn.transport.abort()
        self._conns.clear()
        self._idle.clear()
        self._waiters.clear()

    def _drop(self, conn: _Conn) -> None:
        if not conn.alive:
            return
        conn.alive = False
        self._conns.discard(conn)
        idle = self._idle.get(conn.origin)
        if idle is not None and conn in idle:
            idle.remove(conn)
        self._wake()

    def _wake(self) -> None:
        while self._waiters:
            w = self._waiters.popleft()
            if not w.done():
                w.set_result(None)
                return

    def _release(self, conn: _Conn, reusable: bool) -> None:
        if reusable and conn.alive and conn.parser.idle_clean and conn.transport is not None \
                and not conn.transport.is_closing():
            conn.idle_since = self.loop.time()
            self._idle.setdefault(conn.origin, []).append(conn)
            self._wake()
        else:
            conn.close()

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            # httpx's context: the same CA bundle (certifi, or the named file) as the sync engine.
            self._ssl = httpx.create_ssl_context(verify=self._verify)
        return self._ssl

    async def _acquire(self, origin: Origin, deadline: float) -> _Conn:
        loop = self.loop
        while True:
            idle = self._idle.get(origin)
            now = loop.time()
            while idle:
                conn = idle.pop()  # the most recently used: the least likely to be stale
                if conn.alive and now - conn.idle_since < KEEPALIVE \
                        and conn.transport is not None and not conn.transport.is_closing() \
                        and not readable(conn.transport.get_extra_info("socket")):
                    return conn
                conn.close()
            if len(self._conns) >= self._pool_size:
                # Make room by closing an idle connection to another origin, else wait.
                for other in self._idle.values():
                    if other:
                        other.pop(0).close()
                        break
            if len(self._conns) < self._pool_size:
                break
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append(waiter)
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise asyncio.TimeoutError
            try:
                await asyncio.wait_for(waiter, remaining)
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    self._wake()  # pass on a wake-up this request will not use
                raise
        conn = _Conn(self, origin)
        self._conns.add(conn)
        scheme, host, port = origin
        try:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise asyncio.TimeoutError
            await asyncio.wait_for(loop.create_connection(
                lambda: conn, host, port,
                ssl=self._ssl_context() if scheme == "https" else None,
                server_hostname=host if scheme == "https" else None), remaining)
        except BaseException:
            self._drop(conn)
            raise
        return conn

    async def _exchange(self, a: Send, origin: Origin, data: bytes, deadline: float) -> Reply:
        loop = self.loop
        for attempt in (1, 2):
            conn = await self._acquire(origin, deadline)
            timer = loop.call_at(deadline, conn.expire, context=NO_CONTEXT)
            try:
                reply = await conn.start(data, a.method, a.max_bytes)
            except Stale:
                if attempt == 1 and a.method in IDEMPOTENT:
                    continue
                raise ProtocolError("the server closed the kept-alive connection") from None
            except BaseException:  # timed out, cancelled, broken: the connection is done for
                conn.abort()
                raise
            finally:
                timer.cancel()
            self._release(conn, reply.reusable)
            return reply
        raise AssertionError("unreachable")  # pragma: no cover

    # -- sending -------------------------------------------------------------------------------
    async def send(self, a: Send) -> Outcome | None:
        """The outcome, or None for a request to send through httpx instead."""
        self._bind()
        loop = self.loop
        t0 = loop.time()
        try:
            if not a.url.startswith(("http://", "https://")):
                raise ProtocolError("only http:// and https:// URLs can be sent")
            origin, host_header, target = split_url(a.url)
            data = request_bytes(a, host_header, target)
            reply = await self._exchange(a, origin, data, t0 + a.timeout)
        except UseHttpx:
            return None
        except Exception as exc:
            return failure(exc, a.timeout, (loop.time() - t0) * 1000)
        return outcome_of(a, reply, (loop.time() - t0) * 1000)

    async def aclose(self) -> None:
        for conn in list(self._conns):
            conn.close_transport()
        self._conns.clear()
        self._idle.clear()
        for w in self._waiters:
            if not w.done():
                w.cancel()
        self._waiters.clear()


def rejected_certificate(exc: BaseException | None) -> bool:
    """The server's TLS certificate failed verification (here or under httpx's wrappers)."""
    for _ in range(8):  # the chain of causes, bounded
        if exc is None:
            return False
        if isinstance(exc, ssl.SSLCertVerificationError):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def failure(exc: Exception, timeout: float, ms: float) -> Outcome:
    """A request that got no reply, as an attempt's outcome."""
    return Outcome(None, describe(exc, timeout), ms, permanent=rejected_certificate(exc))


def describe(exc: Exception, timeout: float) -> str:
    """What went wrong, for a failed attempt. Never a header value: it may be a secret."""
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError, _Timeout)):
        return f"timed out after {timeout:g}s"
    if isinstance(exc, (OSError, ssl.SSLError)):  # refused, unreachable, DNS, TLS
        return f"connection failed: {exc}"
    if isinstance(exc, UnicodeEncodeError):
        return "LocalProtocolError: a header holds characters that cannot be sent (only latin-1)"
    if isinstance(exc, ProtocolError):
        return f"RemoteProtocolError: {exc}"
    if isinstance(exc, OverflowError):  # a port the socket layer refuses
        return f"invalid URL ({exc})"
    if isinstance(exc, (httpx.InvalidURL, ValueError)):
        return f"{type(exc).__name__}: {str(exc)[:200]}"
    raise exc
