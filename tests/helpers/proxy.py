"""A small threaded forward proxy on 127.0.0.1, for tests only.

It forwards absolute-form HTTP requests (``GET http://host:port/path HTTP/1.1``) and tunnels
``CONNECT host:port``, and logs every request it handles, so a test can assert that traffic
really went through it:

    with ForwardProxy(credentials=("user", "s3cret")) as proxy:
        ... HTTPS_PROXY=proxy.url ...
        assert [(e.method, e.auth) for e in proxy.log] == [("CONNECT", "right")]

``ProxyEntry.auth`` is ``"none"`` (no Proxy-Authorization header), ``"right"`` or ``"wrong"``.
With ``credentials`` set, a request without the right ones is answered 407 (with
``Proxy-Authenticate: Basic``) and the connection closed. ``mode`` makes it misbehave, and can
be changed while it runs:

- ``"ok"``: forward and tunnel;
- ``"refuse"``: answer every request ``refuse_status`` (default 403) without connecting;
- ``"drop"``: close the client's connection without answering;
- ``"cut"``: relay only ``cut_after`` bytes of the upstream's reply, then close both sides
  (a tunnel or a forwarded reply cut mid-body).

Forwarded requests go upstream on a fresh connection with ``Connection: close``; the client's
connection to the proxy stays open for its next request when the reply is framed by
``Content-Length`` or chunked encoding.
"""

from __future__ import annotations

import base64
import select
import socket
import socketserver
import threading
from contextlib import suppress
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

__all__ = ["ForwardProxy", "ProxyEntry"]

_HOP = {"proxy-authorization", "proxy-connection", "connection", "keep-alive", "te",
        "trailer", "upgrade"}


@dataclass
class ProxyEntry:
    """One request the proxy handled."""

    method: str
    target: str  # "host:port" for CONNECT, the absolute URL otherwise
    auth: str  # "none" | "right" | "wrong"
    status: int | None = None  # what the proxy answered (200 for an open tunnel); None: dropped
    proxy_authorization: str | None = None  # the header as received (tests search secrets in it)


class _Conn:
    """A socket with a read buffer (the bytes after a head stay for the body / the tunnel)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def read_head(self, limit: int = 131072) -> bytes | None:
        while b"\r\n\r\n" not in self.buf:
            if len(self.buf) > limit:
                return None
            data = self.sock.recv(65536)
            if not data:
                return None
            self.buf += data
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        return head

    def read_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("closed before the body ended")
            self.buf += data
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_chunked(self) -> bytes:
        """A chunked body, re-framed as sent (size lines, data, trailers)."""
        out = b""
        while True:
            while b"\r\n" not in self.buf:
                data = self.sock.recv(65536)
                if not data:
                    raise ConnectionError("closed inside a chunked body")
                self.buf += data
            line, self.buf = self.buf.split(b"\r\n", 1)
            out += line + b"\r\n"
            size = int(line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                head = self.read_head()  # trailers, up to the blank line
                return out + (head + b"\r\n\r\n" if head else b"\r\n")
            out += self.read_exact(size + 2)


def _parse_head(head: bytes) -> tuple[str, list[tuple[str, str]]]:
    lines = head.decode("latin-1").split("\r\n")
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.append((name.strip(), value.strip()))
    return lines[0], headers


def _get(headers: list[tuple[str, str]], name: str) -> str | None:
    for k, v in headers:
        if k.lower() == name:
            return v
    return None


class ForwardProxy:
    """The proxy. Use as a context manager; ``url`` is ``http://127.0.0.1:PORT``."""

    def __init__(self, credentials: tuple[str, str] | None = None, *, mode: str = "ok",
                 refuse_status: int = 403, cut_after: int = 0) -> None:
        self.credentials = credentials
        self.mode = mode
        self.refuse_status = refuse_status
        self.cut_after = cut_after
        self.log: list[ProxyEntry] = []
        self.connections = 0  # client connections accepted
        self._lock = threading.Lock()
        proxy = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                with proxy._lock:
                    proxy.connections += 1
                with suppress(OSError, ConnectionError, ValueError):
                    proxy._serve(_Conn(self.request))

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass

        self._server = Server(("127.0.0.1", 0), Handler)
        self.port: int = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)

    def url_with(self, user: str, password: str) -> str:
        return f"http://{user}:{password}@127.0.0.1:{self.port}"

    # -- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> ForwardProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def entries(self, method: str | None = None) -> list[ProxyEntry]:
        with self._lock:
            return [e for e in self.log if method is None or e.method == method]

    def clear(self) -> None:
        with self._lock:
            self.log.clear()
            self.connections = 0

    # -- serving ---------------------------------------------------------------------------
    def _auth(self, headers: list[tuple[str, str]]) -> tuple[str, str | None]:
        given = _get(headers, "proxy-authorization")
        if given is None:
            return "none", None
        if self.credentials is not None:
            user, password = self.credentials
            want = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
            return ("right" if given == want else "wrong"), given
        return "wrong", given

    def _record(self, entry: ProxyEntry) -> None:
        with self._lock:
            self.log.append(entry)

    @staticmethod
    def _answer(conn: _Conn, status: int, reason: str, extra: str = "") -> None:
        conn.sock.sendall(f"HTTP/1.1 {status} {reason}\r\n{extra}Content-Length: 0\r\n"
                          "Connection: close\r\n\r\n".encode())

    def _serve(self, conn: _Conn) -> None:
        while True:
            head = conn.read_head()
            if head is None:
                return
            request_line, headers = _parse_head(head)
            method, target, _version = request_line.split(" ", 2)
            auth, given = self._auth(headers)
            entry = ProxyEntry(method, target, auth, proxy_authorization=given)
            self._record(entry)
            if self.mode == "drop":
                return
            if self.mode == "refuse":
                entry.status = self.refuse_status
                self._answer(conn, self.refuse_status, "Refused by the test proxy")
                return
            if self.credentials is not None and auth != "right":
                entry.status = 407
                self._answer(conn, 407, "Proxy Authentication Required",
                             'Proxy-Authenticate: Basic realm="trigrun-test"\r\n')
                return
            if method == "CONNECT":
                self._tunnel(conn, target, entry)
                return
            if not self._forward(conn, method, target, headers, entry):
                return

    def _tunnel(self, conn: _Conn, target: str, entry: ProxyEntry) -> None:
        host, _, port = target.rpartition(":")
        try:
            upstream = socket.create_connection((host.strip("[]"), int(port)), timeout=10)
        except OSError:
            entry.status = 502
            self._answer(conn, 502, "Bad Gateway")
            return
        entry.status = 200
        conn.sock.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        with upstream:
            if conn.buf:
                upstream.sendall(conn.buf)
                conn.buf = b""
            self._relay(conn.sock, upstream)

    def _relay(self, client: socket.socket, upstream: socket.socket) -> None:
        """Bytes both ways until one side closes; in ``cut`` mode, only ``cut_after`` bytes
        of the upstream's side reach the client."""
        sent_down = 0
        socks = [client, upstream]
        while True:
            readable, _, _ = select.select(socks, [], [], 30)
            if not readable:
                return
            for s in readable:
                data = s.recv(65536)
                if not data:
                    return
                if s is upstream:
                    if self.mode == "cut":
                        data = data[: max(0, self.cut_after - sent_down)]
                        if data:
                            client.sendall(data)
                        sent_down += len(data)
                        if sent_down >= self.cut_after:
                            with suppress(OSError):
                                client.shutdown(socket.SHUT_RDWR)
                            return
                        continue
                    client.sendall(data)
                else:
                    upstream.sendall(data)

    def _forward(self, conn: _Conn, method: str, target: str, headers: list[tuple[str, str]],
                 entry: ProxyEntry) -> bool:
        """Forward one absolute-form request; True when the client's connection stays open."""
        parts = urlsplit(target)
        if parts.scheme != "http" or not parts.hostname:
            entry.status = 400
            self._answer(conn, 400, "Absolute-form http:// target expected")
            return False
        length = _get(headers, "content-length")
        if _get(headers, "transfer-encoding"):
            body = conn.read_chunked()
        else:
            body = conn.read_exact(int(length)) if length else b""
        path = target[len(f"{parts.scheme}://{parts.netloc}"):] or "/"
        out = [f"{method} {path} HTTP/1.1"]
        out += [f"{k}: {v}" for k, v in headers if k.lower() not in _HOP]
        out.append("Connection: close")
        try:
            upstream = socket.create_connection((parts.hostname, parts.port or 80), timeout=30)
        except OSError:
            entry.status = 502
            self._answer(conn, 502, "Bad Gateway")
            return False
        with upstream:
            upstream.sendall(("\r\n".join(out) + "\r\n\r\n").encode("latin-1") + body)
            up = _Conn(upstream)
            rhead = up.read_head()
            if rhead is None:
                entry.status = 502
                self._answer(conn, 502, "Bad Gateway")
                return False
            status_line, rheaders = _parse_head(rhead)
            entry.status = int(status_line.split(" ", 2)[1])
            framed = (_get(rheaders, "content-length") is not None
                      or (_get(rheaders, "transfer-encoding") or "").lower() == "chunked")
            kept = [f"{k}: {v}" for k, v in rheaders if k.lower() not in _HOP]
            if not framed:
                kept.append("Connection: close")
            data = ("\r\n".join([status_line, *kept]) + "\r\n\r\n").encode("latin-1")
            if self.mode == "cut":  # the head, then only ``cut_after`` bytes of the body
                body_in = up.buf
                while len(body_in) < self.cut_after:
                    chunk = upstream.recv(65536)
                    if not chunk:
                        break
                    body_in += chunk
                conn.sock.sendall(data + body_in[: self.cut_after])
                with suppress(OSError):
                    conn.sock.shutdown(socket.SHUT_RDWR)
                return False
            # Connection: close upstream: the reply ends when the upstream closes.
            conn.sock.sendall(data + up.buf)
            while True:
                chunk = upstream.recv(65536)
                if not chunk:
                    break
                conn.sock.sendall(chunk)
        return framed
