"""The Airflow operator and trigger behind a proxy (issue 11), under ``dag.test()``.

The downstream Airflow is the REST fake of ``tests/helpers/fakes.py``; between the task and
it stands the test forward proxy of ``tests/helpers/proxy.py``, which logs every request.
The proxy comes from the environment (``HTTP_PROXY``, as in a corporate deployment) or from
the ``trigrun`` connection's **Proxy** field, with a password the proxy demands. That password
must reach the proxy and appear nowhere else: not in the task logs, XCom, rendered fields,
trigger kwargs or anywhere in Airflow's database.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import AIRFLOW_TEST_DAGS, AIRFLOW_TEST_HOME
from tests.helpers.fakes import FakeAirflow
from tests.helpers.httpserver import LocalServer
from tests.helpers.proxy import ForwardProxy

PROXY_USER = "svc-airflow"
PROXY_PASSWORD = "af-pr0xy-Pa55-93be1c"  # the canary

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


@cache
def _bag() -> Any:
    from tests.helpers.airflow_versions import DagBag

    bag = DagBag(dag_folder=str(AIRFLOW_TEST_DAGS / "trigrun_proxy.py"))
    assert not bag.import_errors, bag.import_errors
    return bag


@pytest.fixture
def downstream(airflow_db: Any) -> Iterator[tuple[LocalServer, FakeAirflow]]:
    with LocalServer() as srv:
        yield srv, FakeAirflow(srv, states=["running", "success"])


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


def _connection(monkeypatch: pytest.MonkeyPatch, host: str, **extra: Any) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_TRIGRUN_PROXY",
                       json.dumps({"conn_type": "trigrun", "host": host, "extra": extra}))


def _everything_airflow_kept() -> str:
    """Airflow's database and log files, as text: where a leaked value would stay."""
    texts = []
    for path in Path(AIRFLOW_TEST_HOME).rglob("*"):
        if path.is_file():
            texts.append(path.read_bytes().decode("utf-8", errors="replace"))
    return "\n".join(texts)


@pytest.mark.parametrize("mode", ["sync", "deferrable"])
def test_the_operator_goes_through_the_environment_proxy(
        mode: str, downstream: tuple[LocalServer, FakeAirflow],
        monkeypatch: pytest.MonkeyPatch) -> None:
    srv, fake = downstream
    with ForwardProxy() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        _connection(monkeypatch, srv.url)
        dr = _bag().dags[f"trigrun_proxy_{mode}"].test()
        assert dr.state == "success"
        seen = proxy.entries()
    assert len(fake.runs) == 1
    assert [e.method for e in seen][:1] == ["POST"]  # the fire, from the worker
    assert any(e.method == "GET" for e in seen)  # the polls (from the triggerer if deferred)
    assert all(e.target.startswith(srv.url) for e in seen)
    assert len(seen) == len(srv.requests)  # nothing went around the proxy


def test_no_proxy_bypasses_it(downstream: tuple[LocalServer, FakeAirflow],
                              monkeypatch: pytest.MonkeyPatch) -> None:
    srv, fake = downstream
    with ForwardProxy() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        _connection(monkeypatch, srv.url)
        dr = _bag().dags["trigrun_proxy_sync"].test()
        assert dr.state == "success"
        assert proxy.entries() == []
    assert len(fake.runs) == 1


@pytest.mark.parametrize("mode", ["sync", "deferrable"])
def test_the_connections_proxy_with_credentials_leaks_nowhere(
        mode: str, downstream: tuple[LocalServer, FakeAirflow],
        monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture) -> None:
    srv, fake = downstream
    with ForwardProxy(credentials=(PROXY_USER, PROXY_PASSWORD)) as proxy:
        _connection(monkeypatch, srv.url, proxy=proxy.url_with(PROXY_USER, PROXY_PASSWORD))
        dr = _bag().dags[f"trigrun_proxy_{mode}"].test()
        seen = proxy.entries()
    assert dr.state == "success"
    assert seen
    assert {e.auth for e in seen} == {"right"}
    assert len(fake.runs) == 1
    out = capfd.readouterr()
    shown = "\n".join([out.out, out.err, caplog.text, _everything_airflow_kept()])
    assert "trigrun_proxy" in shown  # the run's logs and records were searched
    assert PROXY_PASSWORD not in shown


def test_the_connection_test_button_goes_through_the_proxy(
        downstream: tuple[LocalServer, FakeAirflow], monkeypatch: pytest.MonkeyPatch) -> None:
    from trigrun.airflow import TrigRunHook

    srv, _ = downstream
    with ForwardProxy(credentials=(PROXY_USER, PROXY_PASSWORD)) as proxy:
        _connection(monkeypatch, srv.url, proxy=proxy.url_with(PROXY_USER, PROXY_PASSWORD))
        ok, message = TrigRunHook("trigrun_proxy").test_connection()
        seen = proxy.entries()
    assert ok, message
    assert [(e.method, e.auth) for e in seen] == [("GET", "right")]
    assert PROXY_PASSWORD not in message
