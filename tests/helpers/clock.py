"""A fake clock for engines: ``sleep`` advances time instead of sleeping, and is recorded."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from typing import Any

# 2026-03-16T01:00:00Z, the seed's example fire.
EPOCH = datetime(2026, 3, 16, 1, 0, tzinfo=timezone.utc).timestamp()


class FakeClock:
    """Pass ``**clock.engine_kwargs()`` (sync) or ``**clock.async_engine_kwargs()`` to an engine.

    ``sleeps`` records every delay the engine asked for; time moves only when it sleeps
    (or when a test calls ``advance``). ``random`` returns the values given, then repeats
    the last.
    """

    def __init__(self, start: float = EPOCH, randoms: Iterable[float] = (0.0,)) -> None:
        self.wall = start
        self.mono = 1000.0
        self.sleeps: list[float] = []
        self._randoms: Iterator[float] = iter(list(randoms))
        self._last_random = 0.0

    def advance(self, seconds: float) -> None:
        self.wall += seconds
        self.mono += seconds

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.wall, tz=timezone.utc)

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.advance(seconds)

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)

    def random(self) -> float:
        self._last_random = next(self._randoms, self._last_random)
        return self._last_random

    def monotonic(self) -> float:
        return self.mono

    def time(self) -> float:
        return self.wall

    def engine_kwargs(self) -> dict[str, Any]:
        return {"sleep": self.sleep, "clock": self.monotonic, "wall_clock": self.time,
                "random": self.random}

    def async_engine_kwargs(self) -> dict[str, Any]:
        return {**self.engine_kwargs(), "sleep": self.asleep}
