"""Run the same test through ``Engine`` and ``AsyncEngine``.

``Driver("sync", ...)`` and ``Driver("async", ...)`` expose the engine's methods as plain
calls; the async one keeps one event loop and one ``AsyncEngine`` for its whole life, so a
token cache or connection pool survives between calls as it would in real use.

The async engine sends with aiohttp, which pytest-httpx cannot see: while pytest-httpx is
active, the async driver hands the engine an ``httpx.AsyncClient`` (used as given), so the
same mocked test runs through both engines' flows. Tests against real local servers reach
aiohttp itself.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

import trigrun

from .clock import FakeClock

__all__ = ["ENGINE_KINDS", "Driver"]

ENGINE_KINDS = ("sync", "async")


class Driver:
    def __init__(self, kind: str, clock: FakeClock | None = None, **engine_kwargs: Any) -> None:
        self.kind = kind
        if clock is not None:
            extra = clock.engine_kwargs() if kind == "sync" else clock.async_engine_kwargs()
            engine_kwargs = {**extra, **engine_kwargs}
        self.engine: trigrun.Engine | trigrun.AsyncEngine
        self._client: httpx.AsyncClient | None = None
        if kind == "sync":
            self.engine = trigrun.Engine(**engine_kwargs)
            self._loop: asyncio.AbstractEventLoop | None = None
        else:
            self._loop = asyncio.new_event_loop()
            if httpx_mocked() and "client" not in engine_kwargs:
                engine_kwargs["client"] = self._client = httpx.AsyncClient()
            self.engine = trigrun.AsyncEngine(**engine_kwargs)

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        result = getattr(self.engine, name)(*args, **kwargs)
        if self._loop is not None:
            return self._loop.run_until_complete(result)
        return result

    def fire(self, *args: Any, **kwargs: Any) -> trigrun.TriggerResult:
        result: trigrun.TriggerResult = self._call("fire", *args, **kwargs)
        return result

    def wait(self, *args: Any, **kwargs: Any) -> trigrun.RunResult:
        result: trigrun.RunResult = self._call("wait", *args, **kwargs)
        return result

    def poll(self, *args: Any, **kwargs: Any) -> trigrun.RunStatus:
        result: trigrun.RunStatus = self._call("poll", *args, **kwargs)
        return result

    def cancel(self, *args: Any, **kwargs: Any) -> bool:
        return bool(self._call("cancel", *args, **kwargs))

    def close(self) -> None:
        if isinstance(self.engine, trigrun.AsyncEngine):
            assert self._loop is not None
            self._loop.run_until_complete(self.engine.aclose())
            if self._client is not None:
                self._loop.run_until_complete(self._client.aclose())
            self._loop.close()
        else:
            self.engine.close()

    def __enter__(self) -> Driver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def httpx_mocked() -> bool:
    """pytest-httpx (or respx) has patched httpx's async transport in this test."""
    handler = httpx.AsyncHTTPTransport.handle_async_request
    return not getattr(handler, "__module__", "").startswith("httpx")
