"""The async engine's I/O: ``Send`` actions through one shared ``aiohttp.ClientSession``.

aiohttp does the HTTP; this adds the engine's policy. One session per engine and event loop,
one connector of at most ``pool_size`` connections shared by every wait, fire and cancel (the
SSL context and the proxy are given per request, so jobs with different settings share it).
The attempt's timeout is aiohttp's ``total`` timeout: connecting, sending and reading the body
included. The size cap applies to the decoded body, and a reply cut at the cap ends its
connection. The target goes on the wire as written (``yarl.URL(..., encoded=True)``). aiohttp
sends an idempotent request once more when its kept-alive connection turns out to be closed,
and never a POST. The environment's proxies are read once per engine, not on every request
(aiohttp's own ``trust_env`` would read them in a thread for each one).

A caller's ``httpx.AsyncClient`` is also accepted, and then used as given: that is how
pytest-httpx and respx reach the async engine in unit tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any
from urllib.parse import unquote, urlsplit

import aiohttp
import httpx
from yarl import URL

from ._flow import Outcome, Send
from ._http import (
    CERT_HINT,
    Proxies,
    TlsContexts,
    classify_httpx,
    classify_tls,
    httpx_proxied,
    httpx_unsent,
    is_timeout,
    proxy_refusal,
    proxy_unreachable,
    set_target,
    what_failed,
    wire_target,
)
from ._targets import HttpReply

logger = logging.getLogger("trigrun")
# The request line, as httpx logs it for the sync engine, at DEBUG: a triggerer polls
# thousands of runs.
REQUEST_LOG = logging.getLogger("trigrun.http")
# Replies with large headers (a long Set-Cookie, a proxy's diagnostics) must still be read.
MAX_HEADER_BYTES = 65536

_TIMEOUTS: dict[float, aiohttp.ClientTimeout] = {}


def _timeout(seconds: float) -> aiohttp.ClientTimeout:
    t = _TIMEOUTS.get(seconds)
    if t is None:
        t = _TIMEOUTS[seconds] = aiohttp.ClientTimeout(total=seconds)
    return t


def _classify(exc: BaseException, timeout: float) -> tuple[str, bool, str | None]:
    """(what failed, permanent, hint) for an exception of aiohttp or the socket layer."""
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return what_failed("connect", exc, timeout), True, CERT_HINT
    tls = classify_tls(exc, timeout)
    if tls is not None:
        return tls
    if is_timeout(exc):
        return what_failed("timeout", exc, timeout), False, None
    if isinstance(exc, aiohttp.ClientHttpProxyError):
        return proxy_refusal(exc.status, f"{exc.status} {exc.message}")
    if isinstance(exc, aiohttp.ClientProxyConnectionError):
        # aiohttp's own text names the SSL context object (an address, different every run).
        return proxy_unreachable(f"{exc.host}:{exc.port}", exc.os_error), False, None
    if isinstance(exc, (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError,
                        aiohttp.ClientResponseError)):
        return what_failed("protocol", exc, timeout), False, None
    if isinstance(exc, aiohttp.InvalidURL):
        return f"invalid URL ({type(exc).__name__}: {str(exc)[:200]})", False, None
    if isinstance(exc, aiohttp.ClientConnectorError):
        # The socket's own error, as httpx reports it ("[Errno 111] ..."), not aiohttp's
        # wrapper text.
        return f"connection failed: {exc.os_error}", False, None
    if isinstance(exc, (aiohttp.ClientConnectionError, OSError)):
        return what_failed("connect", exc, timeout), False, None
    if isinstance(exc, (ValueError, OverflowError, UnicodeError)):
        return f"invalid URL or header ({type(exc).__name__}: {str(exc)[:200]})", False, None
    raise exc


def _unsent(exc: BaseException) -> bool:
    """The request cannot have reached the server: the connection, the TLS handshake or the
    proxy's tunnel failed (aiohttp's connector errors), or the URL or a header was refused
    before sending. A timeout is not: aiohttp's total timeout does not say in which phase."""
    return isinstance(exc, (aiohttp.ClientConnectorError, aiohttp.ClientProxyConnectionError,
                            aiohttp.ClientHttpProxyError, aiohttp.InvalidURL, ValueError,
                            OverflowError, UnicodeError))


class AiohttpSender:
    """Sends the engine's ``Send`` actions; belongs to one engine."""

    def __init__(self, *, client: aiohttp.ClientSession | httpx.AsyncClient | None,
                 pool_size: int, tls: TlsContexts, proxies: Proxies) -> None:
        self._given = client
        self._pool_size = max(1, pool_size)
        self._tls = tls
        self._proxies = proxies
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._proxy_parts: dict[str, tuple[URL, dict[str, str] | None]] = {}
        self._urls: dict[str, URL] = {}
        self._warned = False

    def session(self) -> aiohttp.ClientSession:
        """The engine's session on the running loop (a new one after ``asyncio.run`` ends)."""
        if isinstance(self._given, aiohttp.ClientSession):
            return self._given
        loop = asyncio.get_running_loop()
        if self._session is None or self._loop is not loop or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._pool_size, limit_per_host=0)
            self._session = aiohttp.ClientSession(
                connector=connector, trust_env=False, cookie_jar=aiohttp.DummyCookieJar(),
                max_line_size=MAX_HEADER_BYTES, max_field_size=MAX_HEADER_BYTES,
                timeout=aiohttp.ClientTimeout(total=None))
            self._loop = loop
        return self._session

    def _proxy(self, a: Send) -> tuple[URL | None, dict[str, str] | None]:
        proxy = a.proxy if a.proxy is not None else (
            self._proxies.for_url(a.url) if a.trust_env else None)
        if proxy is None:
            return None, None
        hit = self._proxy_parts.get(proxy)
        if hit is None:
            # Credentials go in a Proxy-Authorization header, never in the URL aiohttp
            # may put into an error message.
            parts = urlsplit(proxy)
            headers = None
            if parts.username is not None:
                auth = aiohttp.BasicAuth(unquote(parts.username), unquote(parts.password or ""))
                headers = {"Proxy-Authorization": auth.encode()}
            netloc = parts.netloc.rsplit("@", 1)[-1]
            hit = (URL(f"{parts.scheme}://{netloc}"), headers)
            if len(self._proxy_parts) > 256:
                self._proxy_parts.clear()
            self._proxy_parts[proxy] = hit
        return hit

    async def send(self, a: Send) -> Outcome:
        if isinstance(self._given, httpx.AsyncClient):
            return await self._send_httpx(self._given, a)
        t0 = time.monotonic()
        try:
            reply = await self._exchange(a)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            error, permanent, hint = _classify(exc, a.timeout)
            return Outcome(None, error, (time.monotonic() - t0) * 1000, permanent=permanent,
                           hint=hint, unsent=_unsent(exc))
        return Outcome(reply, None, (time.monotonic() - t0) * 1000)

    async def _exchange(self, a: Send) -> HttpReply:
        session = self.session()
        given = self._given is not None
        proxy, proxy_headers = self._proxy(a) if not given or a.proxy else (None, None)
        ssl: Any = True
        if a.url.startswith("https:") and (not given or a.verify is not True or a.cert):
            ssl = self._tls.get(a.verify, a.cert, a.trust_env)
        url = self._url(a.url)
        headers = a.headers
        if proxy_headers and url.scheme == "http":
            # A forwarded http:// request carries the proxy's credentials itself: aiohttp
            # sends ``proxy_headers`` only with a CONNECT.
            headers = {**a.headers, **proxy_headers}
        async with session.request(
                a.method, url, headers=headers, data=a.content, proxy=proxy,
                proxy_headers=proxy_headers, ssl=ssl, timeout=_timeout(a.timeout),
                allow_redirects=False) as resp:
            body = bytearray()
            truncated = False
            async for chunk in resp.content.iter_any():  # decoded, as it arrives
                room = a.max_bytes - len(body)
                if len(chunk) > room:
                    body += chunk[:room]
                    truncated = True
                    resp.close()  # the rest is never read: the connection cannot be reused
                    break
                body += chunk
            if REQUEST_LOG.isEnabledFor(logging.DEBUG):
                REQUEST_LOG.debug('HTTP Request: %s %s "HTTP/%s.%s %d %s"', a.method, a.url,
                                  resp.version.major if resp.version else 1,
                                  resp.version.minor if resp.version else 1, resp.status,
                                  resp.reason)
            return HttpReply(resp.status, {k.lower(): v for k, v in resp.headers.items()},
                             bytes(body), truncated)

    def _url(self, text: str) -> URL:
        """The URL to send, target as written; kept, since a wait polls one URL many times."""
        url = self._urls.get(text)
        if url is None:
            parts = urlsplit(text)
            url = URL(f"{parts.scheme.lower()}://{parts.netloc}{wire_target(text)}",
                      encoded=True)
            if len(self._urls) >= 8192:
                self._urls.clear()
            self._urls[text] = url
        return url

    async def _send_httpx(self, client: httpx.AsyncClient, a: Send) -> Outcome:
        if not self._warned and (a.verify is not True or a.cert or a.proxy):
            self._warned = True
            logger.warning("the engine sends through the httpx client it was given: the "
                           "job's verify / cert / proxy settings are left to that client")
        t0 = time.monotonic()
        try:
            reply = await asyncio.wait_for(self._httpx_exchange(client, a), a.timeout)
        except asyncio.CancelledError:
            raise
        except (httpx.HTTPError, httpx.InvalidURL, ValueError, OverflowError, OSError,
                asyncio.TimeoutError) as exc:
            error, permanent, hint = (classify_httpx(exc, a.timeout)
                                      if isinstance(exc, httpx.HTTPError)
                                      else _classify(exc, a.timeout))
            return Outcome(None, error, (time.monotonic() - t0) * 1000, permanent=permanent,
                           hint=hint, unsent=httpx_unsent(exc))
        return Outcome(reply, None, (time.monotonic() - t0) * 1000)

    @staticmethod
    async def _httpx_exchange(client: httpx.AsyncClient, a: Send) -> HttpReply:
        req = client.build_request(a.method, a.url, headers=a.headers, content=a.content)
        set_target(req, a.url, httpx_proxied(client, req.url))
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
        body = b"".join(chunks)
        return HttpReply(resp.status_code, {k.lower(): v for k, v in resp.headers.items()},
                         body[: a.max_bytes] if truncated else body, truncated)

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None and not session.closed:
            with contextlib.suppress(RuntimeError):  # its loop is gone, sockets and all
                await session.close()

