from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers.httpserver import LocalServer


@pytest.fixture(scope="session")
def _cli_server() -> Iterator[LocalServer]:
    with LocalServer() as srv:
        yield srv


@pytest.fixture
def server(_cli_server: LocalServer) -> LocalServer:
    """A real HTTP server on 127.0.0.1, shared by the session, routes and log cleared."""
    _cli_server.reset()
    return _cli_server


@pytest.fixture
def jobs_file(tmp_path: Path) -> Callable[..., str]:
    """``jobs_file(data, name="jobs.yaml")`` writes a jobs file and returns its path."""

    def write(data: Any, name: str = "jobs.yaml") -> str:
        path = tmp_path / name
        path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False),
                        encoding="utf-8")
        return str(path)

    return write
