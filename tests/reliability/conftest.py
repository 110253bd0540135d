"""Fixtures of the reliability suite: canary secrets in the environment, TLS files, a warmed-up
in-process Airflow, and the session's ``Report`` that becomes ``docs/reliability.md``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.faults import TLSFiles, make_tls

from . import _report
from ._paths import PATHS
from ._scenarios import SCENARIOS
from ._secrets import ENV


@pytest.fixture(scope="session", autouse=True)
def canary_env() -> Iterator[None]:
    """The canary values where Airflow (variables) and Dagster (EnvVar) read them."""
    with pytest.MonkeyPatch.context() as mp:
        for name, value in ENV.items():
            mp.setenv(name, value)
        yield


@pytest.fixture(scope="session")
def report(request: pytest.FixtureRequest) -> Iterator[_report.Report]:
    rep = _report.Report(expected_faults=len(SCENARIOS) * len(PATHS))
    yield rep
    workeroutput = getattr(request.config, "workeroutput", None)
    if workeroutput is not None:
        # An xdist worker ran only some of the rows: the controller merges every worker's
        # and writes the page (tests/conftest.py, pytest_testnodedown / pytest_sessionfinish).
        workeroutput[_report.WORKER_OUTPUT_KEY] = rep.dump()
        return
    where = rep.write()
    print(f"\nreliability tables written to {where}")


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    return make_tls(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def airflow_ready(airflow_db: Path) -> Path:
    """The in-process Airflow with its bundles registered and one ``dag.test()`` behind it, so
    no scenario pays for the first run's imports and bundle scan."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.sdk import DAG

    from ._paths import START, register_dag

    DagBundlesManager().sync_bundles_to_db()
    with DAG(dag_id="reliability_warm_up", schedule=None, start_date=START,
             catchup=False) as dag:
        EmptyOperator(task_id="noop")
    register_dag(dag)
    assert dag.test().state == "success"
    return airflow_db


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Iterator[None]:
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "setup" and rep.failed:
        _report.OUTCOMES[item.nodeid] = "FAIL"
    if rep.when != "call":
        return
    if hasattr(rep, "wasxfail"):
        _report.OUTCOMES[item.nodeid] = "bug (xfail)" if rep.skipped else "FAIL"
    else:
        _report.OUTCOMES[item.nodeid] = "pass" if rep.passed else "FAIL"
