"""The sync engine's HTTP/1.1 client: blocking sockets, one bounded keep-alive pool.

The same HTTP as the async client (``_http11``), over plain sockets: a fire or a poll from a
worker costs about a third of what ``httpx.Client`` (httpcore and h11) spends on the
request itself. The whole exchange is bounded by the request's timeout: every socket operation
waits at most for what is left of it, so a body that trickles in is cut at the deadline with
no watchdog thread. A connection idle longer than ``KEEPALIVE``, or one the server has closed
or written to while idle, is not reused; an idempotent request that still finds its kept-alive
connection closed is sent once more on a new one.

Thread-safe: the pool is shared by every thread using the engine. ``client=httpx.Client(...)``
and mocking libraries (pytest-httpx, respx) make the engine send through httpx instead.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time

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
from ._transport import failure, outcome_of

_READ = 65536


def available() -> bool:
    """The own client may send (no mocking library has patched httpx's sync transport)."""
    return not httpx_patched(sync=True)


class _Deadline(TimeoutError):
    pass


class _SyncConn:
    def __init__(self, sock: socket.socket, origin: Origin) -> None:
        self.sock = sock
        self.origin = origin
        self.parser = ReplyParser()
        self.used = False
        self.idle_since = 0.0

    def reusable_now(self, now: float) -> bool:
        """Not idle too long, and the server has neither closed it nor written to it."""
        return now - self.idle_since < KEEPALIVE and not readable(self.sock)

    def exchange(self, data: bytes, method: str, limit: int, deadline: float) -> Reply:
        parser = self.parser
        parser.start(method, limit)
        sock = self.sock
        try:
            _settimeout(sock, deadline)
            sock.sendall(data)
            while True:
                _settimeout(sock, deadline)
                chunk = sock.recv(_READ)
                if not chunk:
                    if parser.eof():
                        break
                    if self.used and not parser.got_bytes:
                        raise Stale
                    raise ProtocolError("the server closed the connection without a full reply")
                if parser.feed(chunk):
                    break
        except TimeoutError:  # socket.timeout, and our own deadline
            raise _Deadline from None
        except (ConnectionError, ssl.SSLEOFError) as exc:
            if self.used and not parser.got_bytes:
                raise Stale from exc
            raise
        self.used = True
        return parser.reply

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


def _settimeout(sock: socket.socket, deadline: float) -> None:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise _Deadline
    sock.settimeout(remaining)


class SyncSender:
    """Sends the sync engine's ``Send`` actions over at most ``pool_size`` connections."""

    def __init__(self, *, pool_size: int, verify: bool | str) -> None:
        self._pool_size = max(1, pool_size)
        self._verify = verify
        self._ssl: ssl.SSLContext | None = None
        self._cond = threading.Condition()
        self._idle: dict[Origin, list[_SyncConn]] = {}
        self._count = 0  # connections open or being opened
        self._closed = False

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = httpx.create_ssl_context(verify=self._verify)
        return self._ssl

    def _acquire(self, origin: Origin, deadline: float) -> _SyncConn:
        with self._cond:
            while True:
                idle = self._idle.get(origin)
                now = time.monotonic()
                while idle:
                    conn = idle.pop()  # the most recently used: the least likely to be stale
                    if conn.reusable_now(now):
                        return conn
                    conn.close()
                    self._count -= 1
                if self._count >= self._pool_size:
                    for other in self._idle.values():  # make room: an idle one elsewhere
                        if other:
                            other.pop(0).close()
                            self._count -= 1
                            break
                if self._count < self._pool_size:
                    self._count += 1
                    break
                remaining = deadline - now
                if remaining <= 0:
                    raise _Deadline
                self._cond.wait(remaining)
        try:
            return self._connect(origin, deadline)
        except BaseException:
            with self._cond:
                self._count -= 1
                self._cond.notify()
            raise

    def _connect(self, origin: Origin, deadline: float) -> _SyncConn:
        scheme, host, port = origin
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _Deadline
        try:
            sock = socket.create_connection((host, port), timeout=remaining)
        except TimeoutError:
            raise _Deadline from None
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if scheme == "https":
                _settimeout(sock, deadline)
                sock = self._ssl_context().wrap_socket(sock, server_hostname=host)
        except TimeoutError:
            sock.close()
            raise _Deadline from None
        except BaseException:
            sock.close()
            raise
        return _SyncConn(sock, origin)

    def _release(self, conn: _SyncConn, reusable: bool) -> None:
        with self._cond:
            if reusable and conn.parser.idle_clean and not self._closed:
                conn.idle_since = time.monotonic()
                self._idle.setdefault(conn.origin, []).append(conn)
            else:
                conn.close()
                self._count -= 1
            self._cond.notify()

    def _discard(self, conn: _SyncConn) -> None:
        conn.close()
        with self._cond:
            self._count -= 1
            self._cond.notify()

    def _exchange(self, a: Send, origin: Origin, data: bytes, deadline: float) -> Reply:
        for attempt in (1, 2):
            conn = self._acquire(origin, deadline)
            try:
                reply = conn.exchange(data, a.method, a.max_bytes, deadline)
            except Stale:
                self._discard(conn)
                if attempt == 1 and a.method in IDEMPOTENT:
                    continue
                raise ProtocolError("the server closed the kept-alive connection") from None
            except BaseException:
                self._discard(conn)
                raise
            self._release(conn, reply.reusable)
            return reply
        raise AssertionError("unreachable")  # pragma: no cover

    def send(self, a: Send) -> Outcome | None:
        """The outcome, or None for a request to send through httpx instead."""
        t0 = time.monotonic()
        try:
            if not a.url.startswith(("http://", "https://")):
                raise ProtocolError("only http:// and https:// URLs can be sent")
            origin, host_header, target = split_url(a.url)
            data = request_bytes(a, host_header, target)
            reply = self._exchange(a, origin, data, t0 + a.timeout)
        except UseHttpx:
            return None
        except Exception as exc:
            return failure(exc, a.timeout, (time.monotonic() - t0) * 1000)
        return outcome_of(a, reply, (time.monotonic() - t0) * 1000)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            for idle in self._idle.values():
                for conn in idle:
                    conn.close()
                    self._count -= 1
            self._idle.clear()
            self._cond.notify_all()
