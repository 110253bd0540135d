"""Test-session setup shared by every test folder.

The in-process Airflow of the tests (``dag.test()``, ``DagBag``, provider discovery) gets its
own home, SQLite database and DAGs folder (``tests/airflow/dags``) under ``.tmp/``. The
environment is set here, at import, because pytest imports this file before any test module,
and Airflow reads its configuration once, on first import. The live Airflow server of
``tests/fixtures/airflow_server.py`` never inherits these variables: it has a home of its own.

Fixtures re-exported for every folder: ``airflow_server`` (a live Airflow 3 on loopback) and,
when its module exists, ``dagster_server``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
AIRFLOW_TEST_DAGS = ROOT / "tests" / "airflow" / "dags"

_tmp_root = ROOT / ".tmp"
_tmp_root.mkdir(exist_ok=True)
AIRFLOW_TEST_HOME = Path(tempfile.mkdtemp(prefix="pytest-airflow-home-", dir=_tmp_root))

_AIRFLOW_ENV = {
    "AIRFLOW_HOME": str(AIRFLOW_TEST_HOME),
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__CORE__DAGS_FOLDER": str(AIRFLOW_TEST_DAGS),
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{AIRFLOW_TEST_HOME / 'airflow.db'}",
    "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(AIRFLOW_TEST_HOME / "logs"),
    "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
    "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
}
for _key, _value in _AIRFLOW_ENV.items():
    os.environ[_key] = _value

from tests.fixtures.airflow_server import airflow_server  # noqa: E402

with contextlib.suppress(ImportError):  # written by the Dagster integration
    from tests.fixtures.dagster_server import dagster_server  # noqa: F401

__all__ = ["airflow_db", "airflow_server"]


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """The in-process Airflow's metadata database, migrated once per session."""
    from airflow.utils import db

    db.initdb()
    return AIRFLOW_TEST_HOME


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(AIRFLOW_TEST_HOME, ignore_errors=True)


@pytest.fixture(autouse=True)
def _target_contracts() -> object:
    """Fails a test in which a fake target saw a request (or made a reply) that breaks the
    target's contract (tests/helpers/contracts.py). Imported late: a test without fakes
    needs no contract library."""
    yield
    import sys

    contracts = sys.modules.get("tests.helpers.contracts")
    found = contracts.drain() if contracts is not None else []
    assert not found, "contract violations:\n" + "\n".join(found)
