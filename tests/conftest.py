"""Test-session setup shared by every test folder.

The in-process Airflow of the tests (``dag.test()``, ``DagBag``, provider discovery) gets its
own home, SQLite database and DAGs folder (``tests/airflow/dags``) under ``.tmp/``. The
environment is set here, at import, because pytest imports this file before any test module,
and Airflow reads its configuration once, on first import. The live Airflow server of
``tests/fixtures/airflow_server.py`` never inherits these variables: it has a home of its own.

Fixtures re-exported for every folder: ``airflow_server`` (a live Airflow 3 on loopback) and,
when its module exists, ``dagster_server``.

Parallel runs (pytest-xdist, ``scripts/test.sh``: ``-n N --dist loadgroup``): every test file
is one group, so a file's tests run in order on one worker and its module fixtures are built
once; every file with a test that uses a live server (``LIVE_SERVER_FIXTURES``) joins that
server's group, so each server starts once, on one worker, and those groups are handed out
first (they are the longest). The reliability report is merged from the workers here.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import tempfile
from pathlib import Path
from typing import Any

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

# Session fixtures that start a live server, in the order their groups are handed out (the
# longest first): the test files using one share one xdist worker, so it starts once. A file
# using both goes with the first.
LIVE_SERVER_FIXTURES = ("airflow_server", "dagster_server", "prefect_server")


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """The in-process Airflow's metadata database, migrated once per session."""
    from airflow.utils import db

    db.initdb()
    return AIRFLOW_TEST_HOME


# The groups are xdist's scopes, chosen by our own scheduler (pytest_xdist_make_scheduler):
# xdist's loadgroup appends the group to each node id on the worker, which pytest 9.2 no
# longer lets it do (the grouping is then silently lost). Workers know each test's fixtures;
# they write {test file: group} to this file (named by the controller, before it starts them),
# and the controller's scheduler reads it once every worker has collected.
_GROUPS_FILE_ENV = "TRIGRUN_XDIST_GROUPS_FILE"


def pytest_configure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput") and config.pluginmanager.hasplugin("xdist"):
        fd, path = tempfile.mkstemp(prefix="xdist-groups-", suffix=".json", dir=_tmp_root)
        os.close(fd)
        os.environ[_GROUPS_FILE_ENV] = path


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not hasattr(config, "workerinput"):  # not an xdist worker: nothing to group
        return
    rank: dict[str, int] = {}  # test file -> the first live server its tests use
    for item in items:
        file, used = _test_file(item.nodeid), set(getattr(item, "fixturenames", ()))
        for i, name in enumerate(LIVE_SERVER_FIXTURES):
            if name in used:
                rank[file] = min(i, rank.get(file, i))
    groups = {_test_file(item.nodeid): _test_file(item.nodeid) for item in items}
    groups.update({file: f"live-{LIVE_SERVER_FIXTURES[i]}" for file, i in rank.items()})
    # The live groups first: the scheduler hands the groups out in collection order.
    items.sort(key=lambda item: rank.get(_test_file(item.nodeid), len(LIVE_SERVER_FIXTURES)))
    path = os.environ.get(_GROUPS_FILE_ENV)
    if path:  # every worker collects the same tests: any one's file will do
        part = f"{path}.{config.workerinput['workerid']}"
        Path(part).write_text(json.dumps(groups))
        os.replace(part, path)


def _test_file(nodeid: str) -> str:
    # On a pytest where xdist's loadgroup still renames node ids, they end in "@group".
    return nodeid.split("::", 1)[0].split("@", 1)[0]


@pytest.hookimpl(optionalhook=True)  # an xdist hook: absent when xdist is not installed
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadgroup``: each test file a scope, every file using a live server one."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class FileAndLiveServerScheduling(LoadScopeScheduling):  # type: ignore[misc]
        _groups: dict[str, str] | None = None

        def _split_scope(self, nodeid: str) -> str:
            if self._groups is None:
                path = os.environ.get(_GROUPS_FILE_ENV)
                text = Path(path).read_text() if path and Path(path).exists() else ""
                self._groups = json.loads(text) if text else {}
            file = _test_file(nodeid)
            return self._groups.get(file, file)

    return FileAndLiveServerScheduling(config, log)


_worker_reports: list[dict[str, Any]] = []


@pytest.hookimpl(optionalhook=True)  # an xdist hook: absent when xdist is not installed
def pytest_testnodedown(node: Any, error: Any) -> None:
    """xdist controller: keep what a finished worker's reliability tests reported."""
    from tests.reliability._report import WORKER_OUTPUT_KEY

    dumped = getattr(node, "workeroutput", {}).get(WORKER_OUTPUT_KEY)
    if dumped is not None:
        _worker_reports.append(dumped)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(AIRFLOW_TEST_HOME, ignore_errors=True)
    if not hasattr(session.config, "workerinput") and os.environ.get(_GROUPS_FILE_ENV):
        Path(os.environ.pop(_GROUPS_FILE_ENV)).unlink(missing_ok=True)
    if _worker_reports:  # the controller of a parallel run: one page from every worker's rows
        from tests.reliability import _report
        from tests.reliability._paths import PATHS
        from tests.reliability._scenarios import SCENARIOS

        where = _report.Report.merged(_worker_reports, len(SCENARIOS) * len(PATHS)).write()
        print(f"\nreliability tables written to {where}")


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
