"""Fixtures of the Dagster integration tests (real Dagster, nothing of it mocked).

The live servers (``dagster_server``, ``airflow_server``) come from ``tests/conftest.py``.
"""

from __future__ import annotations

from collections.abc import Iterator

import dagster as dg
import pytest


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    """A persistent (temporary, SQLite) Dagster instance: schedules and sensors need one."""
    with dg.instance_for_test() as inst:
        yield inst
