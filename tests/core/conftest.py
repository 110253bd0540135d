from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.helpers.clock import FakeClock
from tests.helpers.drive import ENGINE_KINDS, Driver
from tests.helpers.httpserver import LocalServer


@pytest.fixture(scope="session")
def _server() -> Iterator[LocalServer]:
    with LocalServer() as srv:
        yield srv


@pytest.fixture(scope="session")
def _other_server() -> Iterator[LocalServer]:
    with LocalServer() as srv:
        yield srv


@pytest.fixture
def server(_server: LocalServer) -> LocalServer:
    """The shared local server, with no routes and no recorded requests."""
    _server.reset()
    return _server


@pytest.fixture
def other_server(_other_server: LocalServer) -> LocalServer:
    """A second server: another origin (same host, another port)."""
    _other_server.reset()
    return _other_server


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=ENGINE_KINDS)
def engine_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_driver(engine_kind: str, clock: FakeClock) -> Iterator[Callable[..., Driver]]:
    """``make_driver(secrets=...)``: an Engine or AsyncEngine on the fake clock; closed after."""
    made: list[Driver] = []

    def make(**kwargs: Any) -> Driver:
        kwargs.setdefault("clock", clock)
        d = Driver(engine_kind, **kwargs)
        made.append(d)
        return d

    yield make
    for d in made:
        d.close()
