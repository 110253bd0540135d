"""``secret://`` references: finding them, resolving them through a chain, redacting values."""

from __future__ import annotations

import contextlib
import inspect
import json
import logging
import os
import re
import weakref
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any
from urllib.parse import quote, quote_plus

import httpx

from ._http import wire_quote

SECRET_RE = re.compile(r"secret://([A-Za-z0-9][A-Za-z0-9_.\-/]*)")
REDACTED = "***"
# Shorter values are not redacted: replacing every "a" in a log would destroy it and such a
# value is no secret anyway. Documented in docs/secrets.md.
MIN_REDACT_LEN = 3

SyncResolver = Mapping[str, str] | Callable[[str], str | None]
AnyResolver = SyncResolver | Callable[[str], Awaitable[str | None]]
SecretsArg = AnyResolver | Iterable[AnyResolver] | None


class EnvSecrets:
    """Resolve ``secret://airflow-api-key`` from ``TRIGRUN_SECRET_AIRFLOW_API_KEY``."""

    def __init__(self, prefix: str = "TRIGRUN_SECRET_", environ: Mapping[str, str] | None = None):
        self.prefix = prefix
        self._environ = environ

    def env_name(self, name: str) -> str:
        return self.prefix + re.sub(r"[^A-Za-z0-9]", "_", name).upper()

    def __call__(self, name: str) -> str | None:
        env = self._environ if self._environ is not None else os.environ
        return env.get(self.env_name(name))

    def __repr__(self) -> str:
        return f"EnvSecrets(prefix={self.prefix!r})"


def normalize_resolvers(secrets: SecretsArg) -> list[AnyResolver]:
    if secrets is None:
        return [EnvSecrets()]
    if isinstance(secrets, Mapping) or callable(secrets):
        return [secrets]
    return list(secrets)


def find_references(obj: Any) -> list[str]:
    """Every secret name referenced anywhere in a JSON-like object, in order, unique."""
    try:
        # One pass over the JSON text finds the same names as the walk below, in the same
        # order (keys before values): JSON escaping never creates or splits a reference.
        text = json.dumps(obj)
    except (TypeError, ValueError):
        pass
    else:
        return list(dict.fromkeys(m.group(1) for m in SECRET_RE.finditer(text)))
    seen: dict[str, None] = {}

    def walk(o: Any) -> None:
        if isinstance(o, str):
            for m in SECRET_RE.finditer(o):
                seen.setdefault(m.group(1), None)
        elif isinstance(o, Mapping):
            for k, v in o.items():
                walk(k)
                walk(v)
        elif isinstance(o, (list, tuple)):
            for v in o:
                walk(v)

    walk(obj)
    return list(seen)


def substitute(obj: Any, values: Mapping[str, str]) -> Any:
    """Replace every ``secret://name`` in strings of a JSON-like object by its value."""
    if isinstance(obj, str):
        if "secret://" not in obj:
            return obj
        return SECRET_RE.sub(lambda m: values[m.group(1)], obj)
    if isinstance(obj, Mapping):
        return {substitute(k, values): substitute(v, values) for k, v in obj.items()}
    if isinstance(obj, list):
        return [substitute(v, values) for v in obj]
    if isinstance(obj, tuple):
        return tuple(substitute(v, values) for v in obj)
    return obj


def _lookup(resolver: AnyResolver, name: str) -> Any:
    if isinstance(resolver, Mapping):
        return resolver.get(name)
    return resolver(name)


def resolve_sync(resolvers: list[AnyResolver], name: str) -> str | None:
    for resolver in resolvers:
        value = _lookup(resolver, name)
        if inspect.isawaitable(value):
            # An async resolver in a sync engine: close it so no "never awaited" warning.
            getattr(value, "close", lambda: None)()
            raise TypeError(
                "an async secrets resolver was given to the sync Engine; use AsyncEngine"
            )
        if value is not None:
            return str(value)
    return None


async def resolve_async(resolvers: list[AnyResolver], name: str) -> str | None:
    for resolver in resolvers:
        value = _lookup(resolver, name)
        if inspect.isawaitable(value):
            value = await value
        if value is not None:
            return str(value)
    return None


def _variants(value: str) -> set[str]:
    """The forms a value takes on the wire and in logs: as is, URL-encoded (in a URL as the
    engines send it, and fully),
    JSON-escaped, and as Python shows bytes. A server echoing the request uses any of them."""
    out = {value, quote(value, safe=""), quote_plus(value, safe=""), wire_quote(value),
           json.dumps(value)[1:-1], repr(value.encode())[2:-1]}
    with contextlib.suppress(Exception):  # not every value fits in a URL
        out.add(httpx.URL("http://h/?" + value).query.decode("ascii"))
        out.add(httpx.URL("http://h/" + value).raw_path.decode("ascii")[1:])
    return {v for v in out if len(v) >= MIN_REDACT_LEN}


class Redactor:
    """Knows every secret value seen so far and removes them from text and objects."""

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._forms: set[str] = set()
        self.generation = 0  # bumped whenever the pattern changes (callers cache redactions)
        self._pattern: re.Pattern[str] | None = None
        _LIVE.add(self)
        _install_log_filter()

    def add(self, value: str) -> None:
        if len(value) >= MIN_REDACT_LEN and value not in self._values:
            self._values.add(value)
            self._forms |= _variants(value)
            # Longest first, so a secret that contains another is removed whole.
            alts = sorted(self._forms, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(v) for v in alts))
            self.generation += 1

    def __contains__(self, value: str) -> bool:
        return value in self._values

    def is_clean(self, s: str) -> bool:
        """True when no known secret, in any of its forms, appears in ``s``."""
        return self._pattern is None or self._pattern.search(s) is None

    def text(self, s: str) -> str:
        if self._pattern is None or not s:
            return s
        return self._pattern.sub(REDACTED, s)

    def obj(self, o: Any) -> Any:
        if self._pattern is None:
            return o
        if isinstance(o, str):
            return self.text(o)
        if isinstance(o, Mapping):
            return {self.obj(k): self.obj(v) for k, v in o.items()}
        if isinstance(o, (list, tuple)):
            return [self.obj(v) for v in o]
        return o


# Every live redactor, so the log filter knows every secret any engine resolved.
_LIVE: weakref.WeakSet[Redactor] = weakref.WeakSet()
# httpx logs each request's full URL (a query may hold a secret) at INFO; httpcore logs response
# headers (a server may echo one) at DEBUG. Filters on a logger do not see records of its
# children, so each logger that emits is named.
LOGGERS = ("httpx", "httpcore.connection", "httpcore.http11", "httpcore.http2", "aiohttp.client",
           "aiohttp.internal", "trigrun.http",
           "httpcore.proxy", "httpcore.socks", "trigrun")


# Set on records whose message the emitting engine has already redacted (see
# ``EngineState.emit``): the filter need not read them again.
REDACTED_RECORD = {"trigrun_redacted": True}


class _RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "trigrun_redacted", False):
            return True
        redactors = list(_LIVE)
        if not redactors:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is logging's problem, not ours
            return True
        clean = message
        for redactor in redactors:
            clean = redactor.text(clean)
        if clean != message:
            record.msg, record.args = clean, None
        return True


_FILTER = _RedactingFilter()


def _install_log_filter() -> None:
    for name in LOGGERS:
        log = logging.getLogger(name)
        if _FILTER not in log.filters:
            log.addFilter(_FILTER)


SecretLookup = Callable[[str], str | Awaitable[str | None] | None]
