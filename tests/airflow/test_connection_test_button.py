"""The connection's Test button (issue 19): it refuses what every task using the connection
would meet, and says whether the credentials themselves were checked."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.helpers.fakes import FakeAirflow
from tests.helpers.httpserver import LocalServer, Reply

PASSWORD = "button-password-41ce"


def _conn(monkeypatch: pytest.MonkeyPatch, host: str, **fields: object) -> None:
    extra = fields.pop("extra", {})
    monkeypatch.setenv("AIRFLOW_CONN_BUTTON", json.dumps(
        {"conn_type": "trigrun", "host": host, "extra": json.dumps(extra), **fields}))


def _test() -> tuple[bool, str]:
    from trigrun.airflow import TrigRunHook

    return TrigRunHook("button").test_connection()  # type: ignore[no-any-return]


@pytest.fixture
def server() -> Iterator[LocalServer]:
    with LocalServer() as srv:
        srv.on("GET", "/", Reply(200, json={}))
        yield srv


@pytest.mark.parametrize(("fields", "why"), [
    ({"password": PASSWORD, "extra": {"auth_type": "kerberos"}}, "unknown auth_type 'kerberos'"),
    ({"password": PASSWORD, "extra": {"auth_type": "basic"}}, "needs a Username"),
])
def test_what_apply_would_refuse_is_refused(server: LocalServer, monkeypatch: pytest.MonkeyPatch,
                                            fields: dict[str, object], why: str) -> None:
    _conn(monkeypatch, server.url, **fields)
    ok, message = _test()
    assert not ok
    assert why in message
    assert server.requests == []  # refused before anything was sent
    assert PASSWORD not in message


def test_airflow_credentials_are_checked_at_auth_token(
        server: LocalServer, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeAirflow(server, username="robot", password=PASSWORD)
    _conn(monkeypatch, server.url, login="robot", password=PASSWORD)
    ok, message = _test()
    assert ok, message
    assert "the credentials were checked: Airflow's /auth/token accepted them" in message
    assert fake.token_requests == 1

    _conn(monkeypatch, server.url, login="robot", password="wrong-password")
    ok, message = _test()
    assert not ok
    assert "checked and refused" in message
    assert "HTTP 401" in message


def test_a_target_without_a_known_read_says_the_credentials_were_not_checked(
        server: LocalServer, monkeypatch: pytest.MonkeyPatch) -> None:
    _conn(monkeypatch, server.url, password=PASSWORD)  # a bearer token; no Airflow, no dbt
    ok, message = _test()
    assert ok, message
    assert "the credentials were NOT checked" in message
    assert {r.path for r in server.requests} == {"/", "/api/v2/dags", "/api/v2/accounts/"}
    # The reachability probe carried no credential; the reads carried the token.
    (probe,) = [r for r in server.requests if r.path == "/"]
    assert "authorization" not in probe.headers
