"""``secret://`` references: finding them, resolving them through a chain, redacting values."""

from __future__ import annotations

import inspect
import os
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Union

SECRET_RE = re.compile(r"secret://([A-Za-z0-9][A-Za-z0-9_.\-/]*)")
REDACTED = "***"
# Shorter values are not redacted: replacing every "a" in a log would destroy it and such a
# value is no secret anyway. Documented in docs/secrets.md.
MIN_REDACT_LEN = 3

SyncResolver = Union[Mapping[str, str], Callable[[str], str | None]]
AnyResolver = Union[SyncResolver, Callable[[str], Awaitable[str | None]]]
SecretsArg = Union[AnyResolver, Iterable[AnyResolver], None]


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


class Redactor:
    """Knows every secret value seen so far and removes them from text and objects."""

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._pattern: re.Pattern[str] | None = None

    def add(self, value: str) -> None:
        if len(value) >= MIN_REDACT_LEN and value not in self._values:
            self._values.add(value)
            # Longest first, so a secret that contains another is removed whole.
            alts = sorted(self._values, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(v) for v in alts))

    def __contains__(self, value: str) -> bool:
        return value in self._values

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


SecretLookup = Callable[[str], str | None | Awaitable[str | None]]
