"""The async engine's HTTP/1.1 client: asyncio protocols, one bounded keep-alive pool.

Why not httpx's own async transport: its pool (httpcore over anyio) costs 0.5-4 ms of CPU per
request once a few hundred are in flight, more than the rest of a poll put together, and a
triggerer polling thousands of runs pays it on every poll. aiohttp's client costs ~0.15 ms;
this one, which does only what the engine needs, about a third of that (numbers in
``benchmarks/README.md``).

What it does: HTTP/1.1 over TCP or TLS (httpx's SSL context, so the same CA bundle and
``verify`` as the sync engine); one request at a time per connection; at most ``pool_size``
connections, kept alive for ``KEEPALIVE`` seconds; ``Content-Length``, chunked and
read-until-close bodies; gzip and deflate; 1xx replies skipped; the whole exchange, connecting
included, bounded by the request's timeout; the body read at most ``max_bytes`` (decoded), then
the connection is dropped. An idempotent request that finds its kept-alive connection closed by
the server is sent once more on a new one; anything else is reported, never silently re-sent.
Redirects, retries and cookies are not its business (the flows handle the first two; every
request carries its own credentials).

httpx stays the engine's public face: pass ``client=httpx.AsyncClient(...)`` to send through it
(proxies, HTTP/2, custom transports), and while a mocking library has patched httpx or httpcore
(pytest-httpx, respx) the engine sends through httpx so the mocks see every request.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import re
import ssl
import zlib
from collections import deque
from typing import Any
from urllib.parse import urlsplit

import httpx

from ._flow import Outcome, Send
from ._targets import HttpReply

KEEPALIVE = 15.0  # seconds an idle connection is kept
# For the engine's own timers (deadlines, wake-ups), whose callbacks read no context variable:
# asyncio would copy the caller's context for each one, and thousands stay scheduled at once.
NO_CONTEXT = contextvars.Context()
MAX_HEAD = 64 * 1024  # a reply's status line and headers, at most
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})

# The request line httpx logs at INFO, written the same way, so logs do not depend on the
# transport (it goes through the same redacting filter; Airflow sets this logger to WARNING).
_HTTPX_LOG = logging.getLogger("httpx")
_HTTPX_TRANSPORT = "httpx._transports.default"
_HTTPCORE_POOL = "httpcore._async.connection_pool"
# What the engine sent when its requests went through httpx: a server that filters on the
# user agent sees no change.
_USER_AGENT = f"python-httpx/{httpx.__version__}"
# A URL of these characters only is sent as written; anything else (spaces, quotes, non-ASCII,
# percent escapes, IPv6 hosts) goes through httpx's parser, so the server sees the same bytes
# whichever engine sent them.
_PLAIN_URL = re.compile(r"https?://[A-Za-z0-9\-._~:@]+(?:[/?][A-Za-z0-9\-._~:/?@!$&'()*+,;=]*)?")
_BAD_HEADER = re.compile(r"[\r\n\x00]")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def available() -> bool:
    """No mocking library has patched httpx or httpcore (else requests must go through them)."""
    send = httpx.AsyncHTTPTransport.handle_async_request
    if getattr(send, "__module__", None) != _HTTPX_TRANSPORT:
        return False  # pytest-httpx
    try:
        import httpcore
    except ImportError:  # pragma: no cover - httpx depends on it
        return True
    pool = httpcore.AsyncConnectionPool.handle_async_request
    return getattr(pool, "__module__", None) == _HTTPCORE_POOL  # respx patches this one


class ProtocolError(Exception):
    """The server's reply broke HTTP/1.1, or the request could not be written."""


class _UseHttpx(Exception):
    """A request this client leaves to httpx (credentials in the URL become basic auth)."""


class _Stale(Exception):
    """A kept-alive connection was closed before any byte of the reply came back."""


Origin = tuple[str, str, int]  # scheme, host, port


def _split(url: str) -> tuple[Origin, str, str]:
    """(origin, Host header, request target) of an absolute http(s) URL."""
    if not _PLAIN_URL.fullmatch(url):
        u = httpx.URL(url)
        if u.userinfo:
            raise _UseHttpx
        scheme = u.scheme
        host = u.raw_host.decode("ascii")
        port = u.port or (443 if scheme == "https" else 80)
        target = u.raw_path.decode("ascii")
        name = f"[{host}]" if ":" in host else host
        header = name if u.port is None else f"{name}:{u.port}"
        return (scheme, host, port), header, target
    p = urlsplit(url)
    scheme = p.scheme
    netloc = p.netloc
    if "@" in netloc:
        raise _UseHttpx
    host, _, port_text = netloc.partition(":")
    default = 443 if scheme == "https" else 80
    port = int(port_text) if port_text else default
    if not 0 < port < 65536:
        raise ProtocolError(f"invalid URL: port {port} is out of range")
    target = (p.path or "/") + (f"?{p.query}" if p.query else "")
    host = host.lower()
    header = host if port == default else f"{host}:{port}"
    return (scheme, host, port), header, target


def _request_bytes(a: Send, host_header: str, target: str) -> bytes:
    given = {k.lower() for k in a.headers}
    lines = [f"{a.method} {target} HTTP/1.1"]
    if "host" not in given:
        lines.append(f"Host: {host_header}")
    for name, value in (("Accept", "*/*"), ("Accept-Encoding", "gzip, deflate"),
                        ("Connection", "keep-alive"), ("User-Agent", _USER_AGENT)):
        if name.lower() not in given:
            lines.append(f"{name}: {value}")
    for name, value in a.headers.items():
        if not _TOKEN.fullmatch(name) or _BAD_HEADER.search(value):
            # Never the value in the message: it may be a secret.
            raise ProtocolError(f"illegal header {name[:100]!r}")
        if name.lower() not in ("content-length", "transfer-encoding"):
            lines.append(f"{name}: {value}")
    if a.content is not None:
        lines.append(f"Content-Length: {len(a.content)}")
    elif a.method in ("POST", "PUT", "PATCH"):
        lines.append("Content-Length: 0")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", errors="strict")
    return head + a.content if a.content else head


class _Decoder:
    """gzip/deflate, decoded at most ``limit`` bytes (a small bomb must not fill memory)."""

    def __init__(self, codings: list[str]) -> None:
        self._chain: list[Any] = []  # zlib decompressors and _Deflate: the same two members
        for coding in reversed(codings):  # the last applied is undone first
            if coding in ("gzip", "x-gzip"):
                self._chain.append(zlib.decompressobj(zlib.MAX_WBITS | 16))
            elif coding == "deflate":
                self._chain.append(_Deflate())
            # identity and unknown codings pass as they are (as httpx does)

    def feed(self, data: bytes, limit: int) -> tuple[bytes, bool]:
        """Decoded bytes, and whether more than ``limit`` were due."""
        over = False
        for d in self._chain:
            data = d.decompress(data, limit + 1)
            if d.unconsumed_tail or len(data) > limit:
                over = True
        return data, over


class _Deflate:
    """'deflate' is zlib-wrapped by the spec, raw by some servers: try the first, then raw."""

    def __init__(self) -> None:
        self._d = zlib.decompressobj()
        self._first = True

    @property
    def unconsumed_tail(self) -> bytes:
        return self._d.unconsumed_tail

    def decompress(self, data: bytes, max_length: int) -> bytes:
        if self._first:
            self._first = False
            try:
                return self._d.decompress(data, max_length)
            except zlib.error:
                self._d = zlib.decompressobj(-zlib.MAX_WBITS)
        return self._d.decompress(data, max_length)


class _Reply:
    __slots__ = ("body", "headers", "reason", "reusable", "status", "truncated")

    def __init__(self) -> None:
        self.status = 0
        self.reason = ""
        self.headers: dict[str, str] = {}
        self.body: list[bytes] = []
        self.truncated = False
        self.reusable = True


class _Conn(asyncio.Protocol):
    """One connection: a request is written whole, its reply parsed as the bytes arrive."""

    def __init__(self, pool: LeanSender, origin: Origin) -> None:
        self.pool = pool
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        self.alive = True  # counted in the pool's connections
        self.idle_since = 0.0
        self.used = False  # a reply was read on it before (so it may have gone stale)
        self._buf = bytearray()
        self._waiter: asyncio.Future[_Reply] | None = None
        self._reply = _Reply()
        self._got_bytes = False
        self._head_method = False
        self._mode = ""  # head, length, chunked, chunk-data, trailers, close
        self._left = 0
        self._limit = 0
        self._size = 0
        self._decoder: _Decoder | None = None

    # -- asyncio.Protocol ----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self._waiter is None:  # nothing asked: a server talking out of turn; drop it
            self.close()
            return
        self._got_bytes = True
        self._buf += data
        try:
            self._parse()
        except ProtocolError as exc:
            self._fail(exc)

    def eof_received(self) -> bool:
        if self._waiter is not None and self._mode == "close":
            self._finish(reusable=False)
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.pool._drop(self)
        if self._waiter is None:
            return
        if self._mode == "close" and exc is None:  # the close is the end of the body
            self._finish(reusable=False)
        elif not self._got_bytes and self.used:
            self._fail(_Stale())
        else:
            self._fail(ProtocolError("the server closed the connection without a full reply"))

    # -- one exchange --------------------------------------------------------------------------
    def start(self, data: bytes, method: str, limit: int) -> asyncio.Future[_Reply]:
        assert self.transport is not None
        loop = self.pool.loop
        self._waiter = loop.create_future()
        self._reply = _Reply()
        self._got_bytes = False
        self._head_method = method == "HEAD"
        self._mode = "head"
        self._limit = limit
        self._size = 0
        self._decoder = None
        self.transport.write(data)
        return self._waiter

    def close(self) -> None:
        self._close_transport()
        self.pool._drop(self)

    def _close_transport(self) -> None:
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

    def _finish(self, *, reusable: bool) -> None:
        waiter, self._waiter = self._waiter, None
        reply = self._reply
        reply.reusable = reusable and reply.reusable and not self._buf
        self.used = True
        if waiter is not None and not waiter.done():
            waiter.set_result(reply)

    def _body(self, data: bytes | bytearray | memoryview) -> bool:
        """Keep a piece of the body; True when the cap is reached (stop reading)."""
        piece = bytes(data)
        if self._decoder is not None:
            piece, over = self._decoder.feed(piece, self._limit - self._size)
            if over:
                self._reply.truncated = True
        self._reply.body.append(piece)
        self._size += len(piece)
        if self._size > self._limit:
            self._reply.truncated = True
        return self._reply.truncated

    def _parse(self) -> None:
        buf = self._buf
        while self._waiter is not None:
            mode = self._mode
            if mode == "head":
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    if len(buf) > MAX_HEAD:
                        raise ProtocolError("the reply's headers are too large")
                    return
                head = bytes(buf[:end])
                del buf[:end + 4]
                if not self._head(head):
                    continue  # a 1xx reply: the real one follows
            elif mode == "length":
                if not buf:
                    return
                take = min(self._left, len(buf))
                capped = self._body(memoryview(buf)[:take])
                del buf[:take]
                self._left -= take
                if capped:
                    self._finish(reusable=False)
                elif self._left == 0:
                    self._finish(reusable=True)
                else:
                    return
            elif mode == "chunked":
                end = buf.find(b"\r\n")
                if end < 0:
                    if len(buf) > 4096:
                        raise ProtocolError("a chunk size line is too long")
                    return
                size_text = bytes(buf[:end]).split(b";", 1)[0].strip()
                del buf[:end + 2]
                try:
                    size = int(size_text, 16)
                except ValueError:
                    raise ProtocolError("a chunk size is not a hex number") from None
                if size < 0:
                    raise ProtocolError("a chunk size is negative")
                if size == 0:
                    self._mode = "trailers"
                else:
                    self._mode, self._left = "chunk-data", size
            elif mode == "chunk-data":
                if len(buf) < self._left + 2:
                    if self._left and len(buf) > 0:
                        take = min(self._left, len(buf))
                        capped = self._body(memoryview(buf)[:take])
                        del buf[:take]
                        self._left -= take
                        if capped:
                            self._finish(reusable=False)
                    return
                capped = self._body(memoryview(buf)[:self._left]) if self._left else False
                if bytes(buf[self._left:self._left + 2]) != b"\r\n":
                    raise ProtocolError("a chunk does not end with CRLF")
                del buf[:self._left + 2]
                if capped:
                    self._finish(reusable=False)
                else:
                    self._mode = "chunked"
            elif mode == "trailers":
                end = buf.find(b"\r\n")
                if end < 0:
                    if len(buf) > MAX_HEAD:
                        raise ProtocolError("the reply's trailers are too large")
                    return
                del buf[:end + 2]
                if end == 0:
                    self._finish(reusable=True)
            elif mode == "close":
                if buf:
                    capped = self._body(buf)
                    del buf[:]
                    if capped:
                        self._finish(reusable=False)
                return
            else:  # pragma: no cover
                raise AssertionError(mode)

    def _head(self, head: bytes) -> bool:
        """Read the status line and headers; False for a 1xx reply (skipped)."""
        try:
            text = head.decode("latin-1")
        except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes anything
            raise ProtocolError("undecodable reply headers") from None
        lines = text.split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise ProtocolError(f"not an HTTP/1.1 status line: {lines[0][:80]!r}")
        status = int(parts[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep or not name or name != name.strip() or line[0] in " \t":
                raise ProtocolError("a malformed reply header line")
            key = name.lower()
            value = value.strip()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        if 100 <= status < 200:
            if status == 101:
                raise ProtocolError("the server switched protocols")
            return False
        reply = self._reply
        reply.status = status
        reply.reason = parts[2] if len(parts) > 2 else ""
        reply.headers = headers
        conn = headers.get("connection", "").lower()
        if "close" in conn or (parts[0] == "HTTP/1.0" and "keep-alive" not in conn):
            reply.reusable = False
        codings = [c.strip().lower() for c in headers.get("content-encoding", "").split(",")
                   if c.strip()]
        if codings:
            self._decoder = _Decoder(codings)
        if self._head_method or status in (204, 304):
            self._finish(reusable=True)
            return True
        te = headers.get("transfer-encoding")
        if te is not None:
            if te.lower().rsplit(",", 1)[-1].strip() == "chunked":
                self._mode = "chunked"
                if "content-length" in headers:
                    reply.reusable = False  # framing was ambiguous: do not trust what follows
            else:
                self._mode = "close"
                reply.reusable = False
            return True
        length = headers.get("content-length")
        if length is not None:
            values = {v.strip() for v in length.split(",")}
            if len(values) != 1 or not next(iter(values)).isdigit():
                raise ProtocolError("a malformed Content-Length")
            self._left = int(values.pop())
            if self._left == 0:
                self._finish(reusable=True)
            else:
                self._mode = "length"
            return True
        self._mode = "close"
        reply.reusable = False
        return True


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
        if reusable and conn.alive and conn.transport is not None \
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
                        and conn.transport is not None and not conn.transport.is_closing():
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

    # -- sending -------------------------------------------------------------------------------
    async def _exchange(self, a: Send, origin: Origin, data: bytes, deadline: float) -> _Reply:
        loop = self.loop
        for attempt in (1, 2):
            conn = await self._acquire(origin, deadline)
            timer = loop.call_at(deadline, _expire, conn, context=NO_CONTEXT)
            try:
                reply = await conn.start(data, a.method, a.max_bytes)
            except _Stale:
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

    async def send(self, a: Send) -> Outcome | None:
        """The outcome, or None for a request to send through httpx instead."""
        self._bind()
        loop = self.loop
        t0 = loop.time()
        deadline = t0 + a.timeout
        try:
            if not a.url.startswith(("http://", "https://")):
                raise ProtocolError("only http:// and https:// URLs can be sent")
            origin, host_header, target = _split(a.url)
            data = _request_bytes(a, host_header, target)
            reply = await self._exchange(a, origin, data, deadline)
        except _UseHttpx:
            return None
        except (asyncio.TimeoutError, _Timeout):
            return Outcome(None, f"timed out after {a.timeout:g}s", (loop.time() - t0) * 1000)
        except (OSError, ssl.SSLError) as exc:  # refused, unreachable, DNS, TLS
            return Outcome(None, f"connection failed: {exc}", (loop.time() - t0) * 1000)
        except OverflowError as exc:  # a port the socket layer refuses
            return Outcome(None, f"invalid URL ({exc})", (loop.time() - t0) * 1000)
        except UnicodeEncodeError:
            # Never the offending character: it may belong to a secret.
            return Outcome(None, "LocalProtocolError: a header holds characters that cannot be "
                           "sent (only latin-1)", (loop.time() - t0) * 1000)
        except (ProtocolError, httpx.InvalidURL, ValueError) as exc:
            what = f"{type(exc).__name__}: {exc}" if not isinstance(exc, ProtocolError) \
                else f"RemoteProtocolError: {exc}"
            return Outcome(None, what, (loop.time() - t0) * 1000)
        body = reply.body[0] if len(reply.body) == 1 else b"".join(reply.body)
        if _HTTPX_LOG.isEnabledFor(logging.INFO):
            _HTTPX_LOG.info('HTTP Request: %s %s "HTTP/1.1 %d %s"', a.method, a.url,
                            reply.status, reply.reason)
        return Outcome(HttpReply(reply.status, reply.headers, body[: a.max_bytes],
                                 reply.truncated), None, (loop.time() - t0) * 1000)

    async def aclose(self) -> None:
        for conn in list(self._conns):
            conn._close_transport()
        self._conns.clear()
        self._idle.clear()
        for w in self._waiters:
            if not w.done():
                w.cancel()
        self._waiters.clear()


class _Timeout(Exception):
    pass


def _expire(conn: _Conn) -> None:
    if conn._waiter is not None:  # else the reply is in: its task just has not run yet
        conn._fail(_Timeout())

