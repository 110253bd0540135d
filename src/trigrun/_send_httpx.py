"""The sync engine's I/O: ``Send`` actions through ``httpx.Client``.

httpx does the HTTP; this adds the engine's policy. Per connection setting (TLS context,
proxy) up to ``pool_size`` clients of one kept-alive connection each, lent to one thread at a
time (see ``_Lane``), or the caller's own client used as given. The
attempt's timeout bounds the whole exchange: each phase (waiting for the connection,
connect, send, the reply's headers, its body) may take only what is left of it, read by
httpcore from the request's ``timeout`` extension as the phase starts (``_Deadline``), and a
body still trickling in at the deadline is cut. The size cap applies to the
decoded body. The target goes on the wire as written (httpcore's ``target`` extension), and an
idempotent request that finds its kept-alive connection closed by the server is sent once more.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx

from ._flow import Outcome, Send
from ._http import (
    IDEMPOTENT,
    Proxies,
    TlsContexts,
    classify_httpx,
    httpx_proxied,
    httpx_unsent,
    proxy_address,
    proxy_unreachable,
    set_target,
    socket_error,
)
from ._targets import HttpReply

logger = logging.getLogger("trigrun")


class _Deadline(dict[str, float]):
    """The request's ``timeout`` extension, live: each lookup is the time left to the deadline.

    httpcore reads a phase's timeout from this mapping (``.get("pool")``, ``"connect"``,
    ``"write"``, ``"read"``) when the phase starts, so every phase waits at most what is left
    of the attempt. The same bound a ``trace`` callback gives by rewriting the timeouts before
    each phase, without the callback httpcore would call twice per phase with a fresh dict.
    The stored values (the whole timeout) are what a plain read of the mapping sees.
    """

    __slots__ = ("deadline",)

    def __init__(self, deadline: float, seconds: float) -> None:
        super().__init__(pool=seconds, connect=seconds, write=seconds, read=seconds)
        self.deadline = deadline

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        if key in self:
            return max(0.001, self.deadline - time.monotonic())
        return default


_URLS_MAX = 1024


class _NoCookies(httpx.Cookies):
    """Cookies that are never stored or sent."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None

    def set_cookie_header(self, request: httpx.Request) -> None:
        return None


_NO_COOKIES = _NoCookies()


class _Client(httpx.Client):
    """The engine's own clients keep no cookies, as the async engine's (aiohttp's
    ``DummyCookieJar``): jobs that share a connection setting share a client, and a cookie one
    job's target set must not ride along with another job's requests. It also spares httpx's
    cookie jar its work on every reply."""

    @property
    def cookies(self) -> httpx.Cookies:
        return _NO_COOKIES

    @cookies.setter
    def cookies(self, cookies: Any) -> None:
        return None


class _Lane:
    """Up to ``size`` clients of one connection setting, each holding one kept-alive
    connection and lent to one thread at a time.

    httpcore's sync pool can close a connection another thread has just started a request on
    (encode/httpcore#1110: its clean-up pass reads the connection's state and socket outside
    that connection's own lock), which fails the request with EBADF and opens a connection
    past the limit. A client used by one thread at a time never races itself.
    """

    def __init__(self, make: Callable[[], httpx.Client], size: int) -> None:
        self._make = make
        self._size = size
        self._free: queue.LifoQueue[httpx.Client] = queue.LifoQueue()
        self.made: list[httpx.Client] = []
        self._lock = threading.Lock()

    def take(self, timeout: float) -> httpx.Client:
        """A client for this thread alone, until it is handed back with ``give``."""
        try:
            return self._free.get_nowait()
        except queue.Empty:
            with self._lock:
                fresh = len(self.made) < self._size
                if fresh:
                    client = self._make()
                    self.made.append(client)
            if not fresh:
                try:
                    client = self._free.get(timeout=timeout)
                except queue.Empty:
                    raise httpx.PoolTimeout(
                        f"all {self._size} connections were busy for {timeout:g} s") from None
        return client

    def give(self, client: httpx.Client) -> None:
        self._free.put(client)


class HttpxSender:
    """Sends the engine's ``Send`` actions; thread-safe."""

    def __init__(self, *, client: httpx.Client | None, pool_size: int, tls: TlsContexts,
                 proxies: Proxies) -> None:
        self._given = client
        self._pool_size = pool_size
        self._limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        self._tls = tls
        self._proxies = proxies
        self._lanes: dict[tuple[Any, ...], _Lane] = {}
        self._with_proxy: set[int] = set()  # id() of own clients made with a proxy
        self._lock = threading.Lock()
        self._warned = False
        # Parsed URLs by text: a job sends to the same few URLs again and again, and httpx
        # parses a URL given as text on every request. ``httpx.URL`` is immutable.
        self._urls: dict[str, httpx.URL] = {}

    def _given_for(self, a: Send, given: httpx.Client) -> httpx.Client:
        if not self._warned and (a.verify is not True or a.cert or a.proxy):
            self._warned = True
            logger.warning("the engine sends through the httpx client it was given: the "
                           "job's verify / cert / proxy settings are left to that client")
        return given

    def _lane_for(self, a: Send) -> _Lane:
        proxy = self._proxy_of(a)
        key = (a.verify, a.cert, a.trust_env, proxy)
        lane = self._lanes.get(key)
        if lane is None:
            with self._lock:
                lane = self._lanes.get(key)
                if lane is None:
                    lane = self._lanes[key] = _Lane(
                        lambda: self._new_client(*key), self._pool_size)
        return lane

    def _proxy_of(self, a: Send) -> str | None:
        return a.proxy if a.proxy is not None else (
            self._proxies.for_url(a.url) if a.trust_env else None)

    def _new_client(self, verify: Any, cert: Any, trust_env: bool,
                    proxy: str | None) -> httpx.Client:
        client = _Client(
            verify=self._tls.get(verify, cert, trust_env), proxy=proxy,
            trust_env=False, follow_redirects=False, limits=self._limits)
        if proxy is not None:
            self._with_proxy.add(id(client))
        return client

    def send(self, a: Send) -> Outcome:
        t0 = time.monotonic()
        given = self._given
        try:
            if given is not None:
                reply = self._exchange(self._given_for(a, given), a, t0 + a.timeout,
                                       proxied=None)
            else:
                lane = self._lane_for(a)
                client = lane.take(a.timeout)
                try:
                    reply = self._exchange(client, a, t0 + a.timeout,
                                           proxied=id(client) in self._with_proxy)
                finally:
                    lane.give(client)
        except (httpx.HTTPError, httpx.InvalidURL, ValueError, OverflowError, OSError) as exc:
            error, permanent, hint = classify_httpx(exc, a.timeout)
            proxy = self._proxy_of(a) if self._given is None else None
            if proxy is not None and isinstance(exc, httpx.ConnectError) and not permanent:
                # Through a proxy the only connection made here is to the proxy: say so.
                cause = socket_error(exc)
                if cause is not None:
                    error = proxy_unreachable(proxy_address(proxy), cause)
            return Outcome(None, error, (time.monotonic() - t0) * 1000, permanent=permanent,
                           hint=hint, unsent=httpx_unsent(exc))
        return Outcome(reply, None, (time.monotonic() - t0) * 1000)

    def _exchange(self, client: httpx.Client, a: Send, deadline: float, *,
                  proxied: bool | None) -> HttpReply:
        """One request and its reply. ``proxied``: whether ``client`` (one of ours) sends
        through a proxy; None for the caller's client, which is asked per URL."""
        url = self._urls.get(a.url)
        if url is None:
            url = httpx.URL(a.url)
            if len(self._urls) >= _URLS_MAX:
                self._urls.clear()
            self._urls[a.url] = url
        for again in (a.method in IDEMPOTENT, False):
            req = client.build_request(
                a.method, url, headers=a.headers, content=a.content,
                extensions={"timeout": _Deadline(deadline, a.timeout)})
            set_target(req, a.url, httpx_proxied(client, req.url) if proxied is None
                       else proxied)
            try:
                resp = client.send(req, stream=True)
            except httpx.RemoteProtocolError:
                # The server closed a kept-alive connection as the request went out: safe to
                # send again only when sending twice means the same as sending once.
                if again and time.monotonic() < deadline:
                    continue
                raise
            try:
                return self._read(resp, a, deadline)
            finally:
                resp.close()
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _read(resp: httpx.Response, a: Send, deadline: float) -> HttpReply:
        body = bytearray()
        truncated = False
        # Decoded chunks: the cap counts what a gzip body inflates to, and a bomb costs at most
        # one inflated read before it is cut (httpx inflates each 64 KiB read as it comes).
        for chunk in resp.iter_bytes():
            room = a.max_bytes - len(body)
            if len(chunk) > room:
                body += chunk[:room]
                truncated = True
                break
            body += chunk
            if time.monotonic() > deadline:
                raise httpx.ReadTimeout("the body was still arriving at the deadline",
                                        request=resp.request)
        # httpx's items() are keyed by lower-cased names, repeated headers joined with ", ".
        return HttpReply(resp.status_code, dict(resp.headers.items()),
                         bytes(body), truncated)

    def close(self) -> None:
        for lane in self._lanes.values():
            for client in lane.made:
                client.close()
        self._lanes.clear()
        self._with_proxy.clear()
