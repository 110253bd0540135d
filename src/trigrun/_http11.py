"""HTTP/1.1 for the engines' own clients, without I/O: request bytes and a reply parser.

Both senders (``_transport`` for the async engine, ``_sync_transport`` for the sync one) write
what ``request_bytes`` builds and feed what they read to a ``ReplyParser``, which says when the
reply is complete and whether the connection can carry another request.

The parser reads: a status line and headers (at most ``MAX_HEAD`` bytes; 1xx replies skipped,
101 refused); a body framed by ``Content-Length``, chunked transfer coding (extensions and
trailers ignored) or the end of the connection; gzip and deflate content codings, decoded up
to the caller's limit (a small bomb cannot fill memory). Anything it cannot read is a
``ProtocolError``; a reply whose framing is in any doubt leaves its connection unusable.
"""

from __future__ import annotations

import re
import select
import zlib
from typing import Any
from urllib.parse import urlsplit

import httpx

from ._flow import Send

KEEPALIVE = 15.0  # seconds an idle connection is kept
MAX_HEAD = 64 * 1024  # a reply's status line and headers, at most
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
ACCEPT_ENCODING = "gzip, deflate"  # what the parser decodes
# What the engine sent when its requests went through httpx: a server that filters on the
# user agent sees no change.
USER_AGENT = f"python-httpx/{httpx.__version__}"
# A URL of these characters only is sent as written; anything else (spaces, quotes, non-ASCII,
# percent escapes, IPv6 hosts) goes through httpx's parser, so the server sees the same bytes
# whichever engine sent them.
_PLAIN_URL = re.compile(r"https?://[A-Za-z0-9\-._~:@]+(?:[/?][A-Za-z0-9\-._~:/?@!$&'()*+,;=]*)?")
_BAD_HEADER = re.compile(r"[\r\n\x00]")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_HTTPX_MODULE = "httpx._transports.default"


def httpx_patched(*, sync: bool) -> bool:
    """A mocking library (pytest-httpx, respx) has patched httpx or httpcore: requests must go
    through them, so the mocks see every request."""
    transport = httpx.HTTPTransport.handle_request if sync \
        else httpx.AsyncHTTPTransport.handle_async_request
    if getattr(transport, "__module__", None) != _HTTPX_MODULE:
        return True  # pytest-httpx
    try:
        import httpcore
    except ImportError:  # pragma: no cover - httpx depends on it
        return False
    pool = httpcore.ConnectionPool.handle_request if sync \
        else httpcore.AsyncConnectionPool.handle_async_request
    expected = "httpcore._sync.connection_pool" if sync else "httpcore._async.connection_pool"
    return getattr(pool, "__module__", None) != expected  # respx patches the pool


def readable(sock: Any) -> bool:
    """The socket has something to read (or was closed) without being asked: an idle
    keep-alive connection in that state must not carry a request. One ``select`` call."""
    if sock is None:
        return True
    try:
        ready, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(ready)


class ProtocolError(Exception):
    """The server's reply broke HTTP/1.1, or the request could not be written."""


class UseHttpx(Exception):
    """A request the own clients leave to httpx (credentials in the URL become basic auth)."""


class Stale(Exception):
    """A kept-alive connection was closed before any byte of the reply came back."""


Origin = tuple[str, str, int]  # scheme, host, port


def split_url(url: str) -> tuple[Origin, str, str]:
    """(origin, Host header, request target) of an absolute http(s) URL."""
    if not _PLAIN_URL.fullmatch(url):
        u = httpx.URL(url)
        if u.userinfo:
            raise UseHttpx
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
        raise UseHttpx
    host, _, port_text = netloc.partition(":")
    default = 443 if scheme == "https" else 80
    port = int(port_text) if port_text else default
    if not 0 < port < 65536:
        raise ProtocolError(f"invalid URL: port {port} is out of range")
    target = (p.path or "/") + (f"?{p.query}" if p.query else "")
    host = host.lower()
    header = host if port == default else f"{host}:{port}"
    return (scheme, host, port), header, target


def request_bytes(a: Send, host_header: str, target: str) -> bytes:
    given = {k.lower() for k in a.headers}
    lines = [f"{a.method} {target} HTTP/1.1"]
    if "host" not in given:
        lines.append(f"Host: {host_header}")
    for name, value in (("Accept", "*/*"), ("Accept-Encoding", ACCEPT_ENCODING),
                        ("Connection", "keep-alive"), ("User-Agent", USER_AGENT)):
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


class Reply:
    __slots__ = ("body", "headers", "reason", "reusable", "status", "truncated")

    def __init__(self) -> None:
        self.status = 0
        self.reason = ""
        self.headers: dict[str, str] = {}
        self.body: list[bytes] = []
        self.truncated = False
        self.reusable = True


class ReplyParser:
    """Feed it the bytes of one reply at a time (``start`` before each request)."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self.reply = Reply()
        self.done = True
        self.got_bytes = False  # any byte of the reply came (else a dropped kept-alive line)
        self._head_method = False
        self._mode = ""  # head, length, chunked, chunk-data, trailers, close
        self._left = 0
        self._limit = 0
        self._size = 0
        self._decoder: _Decoder | None = None

    def start(self, method: str, limit: int) -> None:
        self.reply = Reply()
        self.done = False
        self.got_bytes = False
        self._head_method = method == "HEAD"
        self._mode = "head"
        self._limit = limit
        self._size = 0
        self._decoder = None

    def feed(self, data: bytes) -> bool:
        """Take bytes of the reply; True once it is complete."""
        self.got_bytes = True
        self._buf += data
        self._parse()
        return self.done

    def eof(self) -> bool:
        """The server closed the connection: True when that completes the reply."""
        if not self.done and self._mode == "close":
            self._finish(reusable=False)
            return True
        return False

    @property
    def idle_clean(self) -> bool:
        """No reply under way and nothing unread: the connection may carry another request."""
        return self.done and not self._buf

    def _finish(self, *, reusable: bool) -> None:
        self.done = True
        self.reply.reusable = reusable and self.reply.reusable and not self._buf

    def _body(self, data: bytes | bytearray | memoryview) -> bool:
        """Keep a piece of the body; True when the cap is reached (stop reading)."""
        piece = bytes(data)
        if self._decoder is not None:
            piece, over = self._decoder.feed(piece, self._limit - self._size)
            if over:
                self.reply.truncated = True
        self.reply.body.append(piece)
        self._size += len(piece)
        if self._size > self._limit:
            self.reply.truncated = True
        return self.reply.truncated

    def _parse(self) -> None:
        buf = self._buf
        while not self.done:
            mode = self._mode
            if mode == "head":
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    if len(buf) > MAX_HEAD:
                        raise ProtocolError("the reply's headers are too large")
                    return
                head = bytes(buf[:end])
                del buf[:end + 4]
                self._head(head)
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

    def _head(self, head: bytes) -> None:
        """Read the status line and headers, and how the body is framed (1xx: skipped)."""
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
            return  # an interim reply: the real one follows
        reply = self.reply
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
            return
        te = headers.get("transfer-encoding")
        if te is not None:
            if te.lower().rsplit(",", 1)[-1].strip() == "chunked":
                self._mode = "chunked"
                if "content-length" in headers:
                    reply.reusable = False  # framing was ambiguous: do not trust what follows
            else:
                self._mode = "close"
                reply.reusable = False
            return
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
            return
        self._mode = "close"
        reply.reusable = False
