"""A real HTTP/1.1 server on 127.0.0.1 for tests that must cross a socket.

Threaded (one thread per connection), scripted per method and path, and it records every
request it receives with its arrival time, so tests can assert on what really went over the
wire (headers, query, body, the gap between two attempts).

    with LocalServer() as srv:
        srv.on("POST", "/hook", Reply(503), Reply(503), Reply(200, json={"ok": True}))
        srv.on("GET", "/runs/{run_id}", lambda req: Reply(json={"id": req.params["run_id"]}))
        ... srv.url + "/hook" ...
        assert len(srv.requests_to("/hook")) == 3

Scripted replies are served in order; the last one repeats. A handler is any callable taking
the ``Recorded`` request and returning a ``Reply``; it runs in the server's thread.
"""

from __future__ import annotations

import gzip
import json
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

__all__ = ["LocalServer", "Recorded", "Reply", "closed_port"]


@dataclass
class Reply:
    """What the server sends back.

    ``delay`` holds the status line and headers back that long. ``chunks`` sends the body in
    pieces with ``chunk_delay`` between them (a trickling body); ``Content-Length`` is the
    full length so the client keeps waiting. ``drop`` closes the connection without a reply.
    """

    status: int = 200
    json: Any = None
    body: bytes | str = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    chunks: list[bytes] | None = None
    chunk_delay: float = 0.0
    gzip: bool = False
    drop: bool = False

    def payload(self) -> bytes:
        if self.chunks is not None:
            return b"".join(self.chunks)
        if self.json is not None:
            return json.dumps(self.json).encode()
        return self.body.encode() if isinstance(self.body, str) else self.body


@dataclass
class Recorded:
    """One request as the server saw it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-cased names
    body: bytes
    at: float  # time.monotonic() on arrival
    params: dict[str, str] = field(default_factory=dict)  # from ``{name}`` in the route
    target: str = ""  # the request line's target as sent (path and query, still encoded)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    def raw(self) -> str:
        """Everything the client sent, as one string (for searching a secret in it)."""
        q = "&".join(f"{k}={v}" for k, vs in self.query.items() for v in vs)
        hs = "\n".join(f"{k}: {v}" for k, v in self.headers.items())
        return f"{self.method} {self.target}\n{self.path}?{q}\n{hs}\n\n{self.text}"


Handler = Callable[[Recorded], Reply]


class _Route:
    def __init__(self, method: str, path: str, replies: tuple[Reply | Handler, ...]) -> None:
        self.method = method.upper()
        self.pattern = re.compile(
            "^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(path)) + "$")
        self.replies = list(replies)
        self.served = 0

    def next(self) -> Reply | Handler:
        item = self.replies[min(self.served, len(self.replies) - 1)]
        self.served += 1
        return item


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that time out and hang up are the point of many tests: no tracebacks.
        pass


class LocalServer:
    """A scripted HTTP server on 127.0.0.1 and a free port. Use as a context manager."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._routes: list[_Route] = []
        self.requests: list[Recorded] = []
        self._httpd = _QuietServer(("127.0.0.1", 0), self._handler_class())
        self.port: int = self._httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> LocalServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self) -> None:
        """Forget routes and recorded requests (between tests sharing one server)."""
        with self._lock:
            self._routes.clear()
            self.requests.clear()

    # -- scripting -------------------------------------------------------------------------
    def on(self, method: str, path: str, *replies: Reply | Handler) -> None:
        """Answer ``method path`` with ``replies`` in order (the last repeats).

        ``path`` is matched without the query string; ``{name}`` matches one path segment
        and lands in ``Recorded.params``. Later routes win over earlier ones.
        """
        if not replies:
            raise ValueError("give at least one Reply or handler")
        with self._lock:
            self._routes.insert(0, _Route(method, path, replies))

    def requests_to(self, path: str | None = None, method: str | None = None) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests
                    if (path is None or r.path == path)
                    and (method is None or r.method == method.upper())]

    def wait_for_requests(self, n: int, timeout: float = 5.0) -> list[Recorded]:
        """Block until ``n`` requests arrived (a handler may still be sleeping)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.requests) >= n:
                    return list(self.requests)
            time.sleep(0.01)
        raise AssertionError(f"expected {n} requests, got {len(self.requests)}")

    # -- serving ---------------------------------------------------------------------------
    def _dispatch(self, rec: Recorded) -> Reply:
        with self._lock:
            self.requests.append(rec)
            for route in self._routes:
                m = route.pattern.match(rec.path)
                if route.method == rec.method and m:
                    rec.params = {k: unquote(v) for k, v in m.groupdict().items()}
                    item = route.next()
                    break
            else:
                return Reply(404, json={"detail": f"no route for {rec.method} {rec.path}"})
        if isinstance(item, Reply):
            return item
        try:
            return item(rec)
        except Exception as exc:  # a broken fake should fail the test loudly, not hang it
            return Reply(500, body=f"test handler failed: {type(exc).__name__}: {exc}")

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def setup(self) -> None:
                # Headers and body are separate writes: without TCP_NODELAY the body waits
                # for the client's delayed ACK, about 40 ms per request on Linux.
                with suppress(OSError):
                    self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                super().setup()

            def _any(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                rec = Recorded(self.command, parts.path, parse_qs(parts.query),
                               {k.lower(): v for k, v in self.headers.items()}, body,
                               time.monotonic(), target=self.path)
                reply = server._dispatch(rec)
                try:
                    self._write(reply)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

            def _write(self, reply: Reply) -> None:
                if reply.delay:
                    time.sleep(reply.delay)
                if reply.drop:
                    self.close_connection = True
                    with suppress(OSError):
                        self.connection.shutdown(socket.SHUT_RDWR)
                    return
                payload = reply.payload()
                headers = {"Content-Type": "application/json" if reply.json is not None
                           else "text/plain; charset=utf-8", **reply.headers}
                if reply.gzip:
                    payload = gzip.compress(payload)
                    headers["Content-Encoding"] = "gzip"
                self.send_response(reply.status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if reply.chunks is None or reply.gzip:
                    self.wfile.write(payload)
                    return
                for chunk in reply.chunks:
                    self.wfile.write(chunk)
                    self.wfile.flush()
                    time.sleep(reply.chunk_delay)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _any

        return H


def closed_port() -> int:
    """A port on 127.0.0.1 with nothing listening (connecting to it is refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_server() -> Iterator[LocalServer]:
    with LocalServer() as srv:
        yield srv
