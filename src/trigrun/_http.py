"""Connection policy shared by both engines: TLS contexts, proxies, the request target, and
what a failed exchange means.

No HTTP is written or parsed here: the sync engine sends with httpx, the async engine with
aiohttp. This module only decides what to hand them (an SSL context, a proxy, the target as
written) and how to word what went wrong, so both engines behave alike.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import urllib.request
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import httpcore
import httpx

logger = logging.getLogger("trigrun")

# RFC 9110's idempotent methods: the ones a library may send again on a fresh connection when
# a kept-alive one turns out to have been closed by the server. Never a POST or a PATCH.
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})

# What RFC 3986 allows in a URL, sent as written: "%" included, so escapes the spec wrote stay
# as they are (no re-quoting). Anything else (a space, '"', '<', '|', non-ASCII) cannot stand
# in a request line and is percent-encoded, as httpx and yarl would.
WIRE_SAFE = "-._~:/?#[]@!$&'()*+,;=%"


def wire_quote(text: str) -> str:
    """``text`` as it goes on the wire inside a URL (see ``WIRE_SAFE``)."""
    return quote(text, safe=WIRE_SAFE)


def wire_target(url: str) -> str:
    """The request target (path and query) as written in ``url``: no dot segment removed, no
    escape decoded or re-encoded; only characters a URL cannot hold are percent-encoded."""
    rest = url.split("://", 1)[-1]
    slash = rest.find("/")
    query = rest.find("?")
    start = min(i for i in (slash, query, len(rest)) if i >= 0)
    target = rest[start:].split("#", 1)[0]
    if not target.startswith("/"):
        target = "/" + target
    return wire_quote(target)


def httpx_proxied(client: httpx.Client | httpx.AsyncClient, url: httpx.URL) -> bool:
    """``client`` sends ``url`` through an HTTP(S) proxy (its own mounts, as httpx picks)."""
    pool = getattr(client._transport_for_url(url), "_pool", None)
    return isinstance(pool, (httpcore.HTTPProxy, httpcore.AsyncHTTPProxy))


def set_target(req: httpx.Request, url: str, proxied: bool) -> None:
    """Send ``url``'s target as written (httpcore's ``target`` extension).

    Through a proxy, httpcore copies the request's extensions onto the request it sends the
    proxy: a forwarded http:// request then needs the absolute form, and a CONNECT tunnel no
    ``target`` at all (it would replace the CONNECT's ``host:port``), so an https:// target
    through a proxy goes as httpx writes it.
    """
    target = wire_target(url).encode("ascii")
    if not proxied:
        req.extensions["target"] = target
    elif req.url.scheme == "http":
        req.extensions["target"] = b"http://" + req.url.netloc + target


class TlsContexts:
    """One SSL context per (verify, cert, trust_env) for an engine.

    ``verify``: True (``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` when ``trust_env``, else certifi's
    bundle, as httpx does), False, ``"system"`` (the operating system's trust store: the
    ``truststore`` package when installed, else OpenSSL's default paths), or a CA bundle path
    (a file, or a directory of hashed certificates). ``cert``: a PEM holding certificate and
    key, or a ``(cert, key)`` pair. The environment is read once, when the engine starts.
    """

    def __init__(self) -> None:
        self._env = (os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))
        self._made: dict[tuple[Any, ...], ssl.SSLContext] = {}

    def get(self, verify: bool | str, cert: str | tuple[str, str] | None,
            trust_env: bool) -> ssl.SSLContext:
        key = (verify, cert, trust_env)
        ctx = self._made.get(key)
        if ctx is None:
            ctx = self._made[key] = self._make(verify, cert, trust_env)
        return ctx

    def _make(self, verify: bool | str, cert: str | tuple[str, str] | None,
              trust_env: bool) -> ssl.SSLContext:
        if verify is False:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        elif verify == "system":
            ctx = _system_context()
        elif isinstance(verify, str):
            ctx = (ssl.create_default_context(capath=verify) if os.path.isdir(verify)
                   else ssl.create_default_context(cafile=verify))
        elif trust_env and self._env[0]:
            ctx = ssl.create_default_context(cafile=self._env[0])
        elif trust_env and self._env[1]:
            ctx = ssl.create_default_context(capath=self._env[1])
        else:
            import certifi

            ctx = ssl.create_default_context(cafile=certifi.where())
        if cert is not None:
            if isinstance(cert, str):
                ctx.load_cert_chain(cert)
            else:
                ctx.load_cert_chain(cert[0], cert[1])
        return ctx


def _system_context() -> ssl.SSLContext:
    try:
        import truststore
    except ImportError:
        return ssl.create_default_context()
    ctx: ssl.SSLContext = truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    return ctx


# The standard library's NO_PROXY matching, as aiohttp and requests use it (not in typeshed).
_bypass: Callable[[str, dict[str, str]], bool] = \
    urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]


class Proxies:
    """The environment's proxies (``HTTP_PROXY``, ``HTTPS_PROXY``, ``ALL_PROXY``, ``NO_PROXY``,
    either case, lower case first as curl does), read once when the engine starts.

    Only http:// and https:// proxies are used; another scheme (socks5://) is logged once and
    ignored, as aiohttp and httpx without extras do.
    """

    def __init__(self, on_secret: Callable[[str], None] | None = None) -> None:
        env = urllib.request.getproxies_environment()
        self._env = env
        self._chosen: dict[tuple[str, str], str | None] = {}
        self._ignored: set[str] = set()
        self._any = any(name != "no" for name in env)
        for name, value in env.items():
            if name == "no":
                continue
            password = urlsplit(value if "://" in value else f"http://{value}").password
            if password and on_secret is not None:
                on_secret(unquote(password))

    def for_url(self, url: str) -> str | None:
        """The proxy to send ``url`` through, or None for a direct connection."""
        if not self._any:
            return None
        parts = urlsplit(url)
        key = (parts.scheme, parts.netloc)
        if key in self._chosen:
            return self._chosen[key]
        chosen = self._choose(parts.scheme, parts.hostname or "", parts.port)
        if len(self._chosen) > 4096:
            self._chosen.clear()
        self._chosen[key] = chosen
        return chosen

    def _choose(self, scheme: str, host: str, port: int | None) -> str | None:
        env = self._env
        proxy = env.get(scheme) or env.get("all")
        if not proxy:
            return None
        hostport = f"{host}:{port}" if port else host
        if "no" in env and _bypass(hostport, env):
            return None
        if "://" not in proxy:
            proxy = f"http://{proxy}"
        if not proxy.startswith(("http://", "https://")):
            if proxy not in self._ignored:
                self._ignored.add(proxy)
                logger.warning("ignoring the %s proxy from the environment: only http:// and "
                               "https:// proxies are supported", proxy.split("://", 1)[0])
            return None
        return proxy


def rejected_certificate(exc: BaseException | None) -> bool:
    """The server's TLS certificate failed verification (here or under a library's wrappers)."""
    for _ in range(8):  # the chain of causes, bounded
        if exc is None:
            return False
        if isinstance(exc, ssl.SSLCertVerificationError):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


CERT_HINT = ("a certificate that fails verification fails every retry: set request.verify to "
             "the CA bundle that signs it, or fix the server's certificate")
CLIENT_CERT_HINT = ("the server requires a client certificate (mutual TLS): set request.cert "
                    "(or the target's cert) to a PEM with certificate and key, or a "
                    "[cert, key] pair")
PROXY_AUTH_HINT = ("the proxy asks for credentials, or refused the ones given: put the right "
                   "ones in the proxy URL, e.g. http://user:secret://proxy-password@proxy:3128")
PROXY_REFUSED_HINT = ("the proxy refused the tunnel, and would refuse every retry the same way: "
                      "check the proxy URL and what the proxy allows (NO_PROXY, "
                      "request.trust_env: false or request.proxy to go another way)")


def proxy_refusal(status: int | None, text: str) -> tuple[str, bool, str | None]:
    """(what failed, permanent, hint) for a proxy that answered CONNECT with ``status``.

    A 4xx (407 above all) fails every retry the same way, like any other 4xx; a 5xx (the proxy
    could not reach the target) may pass later.
    """
    if status == 407:
        return "proxy error: 407 Proxy Authentication Required", True, PROXY_AUTH_HINT
    if status is not None and 400 <= status < 500:
        return f"proxy error: {text}", True, PROXY_REFUSED_HINT
    return f"proxy error: {text}", False, None


def proxy_address(proxy: str) -> str:
    """``host:port`` of a proxy URL: never its credentials."""
    parts = urlsplit(proxy)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.hostname}:{port}"


def proxy_unreachable(address: str, exc: BaseException | None) -> str:
    """A proxy that could not be connected to, named (only a proxy is connected to when one
    is set: the proxy reaches the target), with the socket's own error."""
    return f"proxy error: could not connect to the proxy {address}: {exc}"


def socket_error(exc: BaseException | None) -> OSError | None:
    """The socket-level error under a library's wrappers (not a TLS one), if any."""
    for _ in range(8):
        if exc is None:
            return None
        if isinstance(exc, OSError) and not isinstance(exc, ssl.SSLError):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def _chain_text(exc: BaseException | None) -> str:
    parts = []
    for _ in range(8):
        if exc is None:
            break
        parts.append(f"{type(exc).__name__} {exc}")
        exc = exc.__cause__ or exc.__context__
    return " | ".join(parts)


def wants_client_cert(exc: BaseException) -> bool:
    """The TLS handshake failed because the server wanted a client certificate."""
    text = _chain_text(exc).upper()
    return "CERTIFICATE_REQUIRED" in text or "CERTIFICATE REQUIRED" in text


# TLS alerts a client receives when the server refused its handshake or its certificate (the
# client's own verification failures are ``SSLCertVerificationError``): the same handshake
# is refused the same way on every retry.
_REFUSED_ALERTS = ("ALERT_HANDSHAKE_FAILURE", "ALERT_BAD_CERTIFICATE", "ALERT_UNKNOWN_CA",
                   "ALERT_CERTIFICATE_UNKNOWN", "ALERT_ACCESS_DENIED")
HANDSHAKE_HINT = ("the server refused the TLS handshake: when it requires a client certificate "
                  "(mutual TLS), set request.cert (or the target's cert) to one it accepts, a "
                  "PEM with certificate and key or a [cert, key] pair; otherwise it shares no "
                  "TLS version or cipher with this client")


def refused_handshake(exc: BaseException) -> bool:
    """The server answered the TLS handshake with an alert refusing it (TLS 1.2 servers that
    require a client certificate say ``handshake_failure``)."""
    text = _chain_text(exc).upper()
    return any(alert in text for alert in _REFUSED_ALERTS)


def is_timeout(exc: BaseException) -> bool:
    return isinstance(exc, (asyncio.TimeoutError, TimeoutError))


def what_failed(kind: str, exc: BaseException, timeout: float) -> str:
    """A failed attempt in words. ``kind``: timeout, connect, proxy, protocol or other.

    Never a header value (it may be a secret); the flows redact what is left.
    """
    if kind == "timeout":
        return f"timed out after {timeout:g}s"
    detail = str(exc) or type(exc).__name__
    if kind == "connect":
        return f"connection failed: {detail}"
    if kind == "proxy":
        return f"proxy error: {detail}"
    if kind == "protocol":
        return f"RemoteProtocolError: {detail}"
    return f"{type(exc).__name__}: {detail[:300]}"


def classify_tls(exc: BaseException, timeout: float) -> tuple[str, bool, str | None] | None:
    """A TLS failure that the same request would meet again (so not retried), with the fix;
    None for anything else. Shared by both engines: the libraries wrap the ``ssl`` error."""
    for test, hint in ((wants_client_cert, CLIENT_CERT_HINT), (rejected_certificate, CERT_HINT),
                       (refused_handshake, HANDSHAKE_HINT)):
        if test(exc):
            return what_failed("connect", exc, timeout), True, hint
    return None


def httpx_unsent(exc: BaseException) -> bool:
    """The request cannot have reached the server: it failed while connecting (DNS, refused,
    the TLS handshake, the proxy's tunnel), waiting for a pooled connection, or before any
    byte was written."""
    return isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout,
                            httpx.ProxyError, httpx.UnsupportedProtocol, httpx.InvalidURL,
                            ValueError, OverflowError, UnicodeError))


def classify_httpx(exc: Exception, timeout: float) -> tuple[str, bool, str | None]:
    """(what failed, permanent, hint) for an exception of httpx or the socket layer."""
    tls = classify_tls(exc, timeout)
    if tls is not None:
        return tls
    if isinstance(exc, httpx.TimeoutException):
        return what_failed("timeout", exc, timeout), False, None
    if isinstance(exc, httpx.ProxyError):
        # httpcore's words for a CONNECT answered with another status: "<status> <reason>".
        head = str(exc).split(" ", 1)[0]
        return proxy_refusal(int(head) if head.isdigit() else None,
                             str(exc) or type(exc).__name__)
    if isinstance(exc, (httpx.ConnectError, httpx.ReadError, httpx.WriteError, OSError)):
        return what_failed("connect", exc, timeout), False, None
    if isinstance(exc, httpx.RemoteProtocolError):
        return what_failed("protocol", exc, timeout), False, None
    # A URL httpx cannot send (a host label over 63 characters, a port over 65535, a scheme
    # it has no transport for): a failed attempt, as any other, not an exception.
    return f"invalid URL ({type(exc).__name__}: {str(exc)[:200]})", False, None
