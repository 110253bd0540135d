"""Airflow 3 JWT auth and redirects, against real local servers."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

import trigrun
from tests.helpers.clock import FakeClock
from tests.helpers.drive import Driver
from tests.helpers.fakes import FakeAirflow
from tests.helpers.httpserver import LocalServer, Reply

pytestmark = pytest.mark.integration

PASSWORD = "af-pa55-canary"
SECRETS = {"af-pass": PASSWORD, "api-key": "key-canary-77", "bearer": "bearer-canary-99"}


def af_job(server: LocalServer, **over: Any) -> trigrun.JobSpec:
    return trigrun.JobSpec.model_validate({
        "name": "af3", "target": {"type": "airflow", "base_url": server.url, "dag_id": "etl"},
        "auth": {"type": "airflow_password", "username": "admin", "password": "secret://af-pass"},
        **over})


def posts(server: LocalServer) -> list[Any]:
    return server.requests_to("/api/v2/dags/etl/dagRuns", "POST")


def test_token_fetched_once_and_cached(server: LocalServer, clock: FakeClock,
                                       make_driver: Callable[..., Driver],
                                       caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    fake = FakeAirflow(server, username="admin", password=PASSWORD, clock=clock.time,
                       states=["running", "success"])
    d = make_driver(secrets=SECRETS)
    job = af_job(server, wait={"poll_interval_seconds": 1})
    first = d.fire(job, scheduled_time=clock.now())
    second = d.fire(job, scheduled_time=clock.now() + timedelta(days=1))
    run = d.wait(first)
    assert first.ok
    assert second.ok
    assert run.state is trigrun.RunState.SUCCESS
    assert fake.token_requests == 1
    assert fake.unauthorized == 0
    (token,) = fake.valid_tokens
    used = {r.headers["authorization"] for r in server.requests if r.path != "/auth/token"}
    assert used == {f"Bearer {token}"}
    assert server.requests[0].json() == {"username": "admin", "password": PASSWORD}
    assert [p.path for p in posts(server)] == [posts(server)[0].path] * 2  # the v2 API
    # The JWT is a credential: nowhere in results or logs.
    for text in (repr(first), json.dumps(first.to_log()), json.dumps(run.to_log()),
                 caplog.text, repr(d.engine.state)):
        assert token not in text
        assert PASSWORD not in text


def test_401_refreshes_once_and_resends(server: LocalServer, clock: FakeClock,
                                        make_driver: Callable[..., Driver]) -> None:
    fake = FakeAirflow(server, username="admin", password=PASSWORD, clock=clock.time)
    d = make_driver(secrets=SECRETS)
    job = af_job(server)
    assert d.fire(job, scheduled_time=clock.now()).ok
    fake.revoke_tokens()  # e.g. the API server restarted with a new JWT secret
    result = d.fire(job, scheduled_time=clock.now() + timedelta(days=1))
    assert result.ok
    assert not result.adopted
    assert fake.token_requests == 2
    assert fake.unauthorized == 1
    assert len(posts(server)) == 3
    assert len(fake.runs) == 2
    assert len(result.attempts) == 1  # the resend is part of the attempt, not a retry


def test_persistent_401_refreshes_only_once(server: LocalServer, clock: FakeClock,
                                            make_driver: Callable[..., Driver]) -> None:
    fake = FakeAirflow(server, username="admin", password=PASSWORD, clock=clock.time)
    server.on("POST", "/api/v2/dags/{dag_id}/dagRuns",
              Reply(401, json={"detail": "Not authenticated"}))
    result = make_driver(secrets=SECRETS).fire(af_job(server), scheduled_time=clock.now())
    assert not result.ok
    assert result.status_code == 401
    assert fake.token_requests == 2
    assert len(posts(server)) == 2
    assert result.error is not None
    assert "HTTP 401" in result.error


def test_expired_token_is_fetched_again(server: LocalServer, clock: FakeClock,
                                        make_driver: Callable[..., Driver]) -> None:
    fake = FakeAirflow(server, username="admin", password=PASSWORD, clock=clock.time,
                       token_ttl=600)
    d = make_driver(secrets=SECRETS)
    job = af_job(server)
    d.fire(job, scheduled_time=clock.now())
    clock.advance(580)  # within 30 s of expiry: renewed before use, not after a 401
    d.fire(job, scheduled_time=clock.now())
    assert fake.token_requests == 2
    assert fake.unauthorized == 0


def test_bad_password_is_a_clear_failure(server: LocalServer, clock: FakeClock,
                                         make_driver: Callable[..., Driver]) -> None:
    FakeAirflow(server, username="admin", password="something-else", clock=clock.time)
    result = make_driver(secrets=SECRETS).fire(af_job(server), scheduled_time=clock.now())
    assert not result.ok
    assert posts(server) == []
    assert result.error is not None
    assert f"{server.url}/auth/token" in result.error
    assert "HTTP 401" in result.error
    assert "auth.username / auth.password" in result.error
    assert PASSWORD not in result.error


def test_token_url_can_be_given(server: LocalServer, other_server: LocalServer,
                                clock: FakeClock, make_driver: Callable[..., Driver]) -> None:
    token_host = FakeAirflow(other_server, username="admin", password=PASSWORD, clock=clock.time)
    server.on("POST", "/hook", Reply(200))
    job = trigrun.JobSpec.model_validate({
        "name": "hook", "request": {"url": server.url + "/hook"},
        "auth": {"type": "airflow_password", "username": "admin",
                 "password": "secret://af-pass", "token_url": other_server.url + "/auth/token"}})
    assert make_driver(secrets=SECRETS).fire(job, scheduled_time=clock.now()).ok
    (token,) = token_host.valid_tokens
    assert server.requests[0].headers["authorization"] == f"Bearer {token}"


# -- redirects -------------------------------------------------------------------------------


def redirect_job(url: str, follow: bool | None = None, body: Any = None) -> trigrun.JobSpec:
    request: dict[str, Any] = {
        "url": url,
        "headers": {"X-Api-Key": "secret://api-key", "X-Plain": "visible",
                    "Cookie": "session=abc"},
        "body": body if body is not None else {"model": "v3"}}
    if follow is not None:
        request["follow_redirects"] = follow
    return trigrun.JobSpec.model_validate({
        "name": "redir", "request": request,
        "auth": {"type": "bearer", "token": "secret://bearer"}})


def test_redirect_not_followed_by_default(server: LocalServer, other_server: LocalServer,
                                          clock: FakeClock,
                                          make_driver: Callable[..., Driver]) -> None:
    server.on("POST", "/old", Reply(307, headers={"Location": other_server.url + "/new"}))
    other_server.on("POST", "/new", Reply(200))
    result = make_driver(secrets=SECRETS).fire(redirect_job(server.url + "/old"),
                                               scheduled_time=clock.now())
    assert not result.ok
    assert result.status_code == 307
    assert len(result.attempts) == 1
    assert other_server.requests == []
    assert result.error is not None
    assert "follow_redirects" in result.error
    assert other_server.url + "/new" in result.error


def test_same_origin_redirect_keeps_credentials(server: LocalServer, clock: FakeClock,
                                                make_driver: Callable[..., Driver]) -> None:
    server.on("POST", "/old", Reply(308, headers={"Location": "/new"}))
    server.on("POST", "/new", Reply(200, json={"ok": True}))
    result = make_driver(secrets=SECRETS).fire(redirect_job(server.url + "/old", follow=True),
                                               scheduled_time=clock.now())
    assert result.ok
    assert result.response == {"ok": True}
    new = server.requests_to("/new")[0]
    assert new.headers["authorization"] == "Bearer bearer-canary-99"
    assert new.headers["x-api-key"] == "key-canary-77"
    assert new.json() == {"model": "v3"}


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
def test_cross_origin_redirect_drops_credentials(server: LocalServer, other_server: LocalServer,
                                                 clock: FakeClock, code: int,
                                                 make_driver: Callable[..., Driver]) -> None:
    server.on("POST", "/old", Reply(code, headers={"Location": other_server.url + "/new"}))
    other_server.on("POST", "/new", Reply(200))
    other_server.on("GET", "/new", Reply(200))
    result = make_driver(secrets=SECRETS).fire(redirect_job(server.url + "/old", follow=True),
                                               scheduled_time=clock.now())
    assert result.ok, result.error
    (req,) = other_server.requests
    # 301, 302 and 303 turn a POST into a GET (as httpx and browsers do); 307 and 308 keep it.
    assert req.method == ("GET" if code in (301, 302, 303) else "POST")
    assert (req.body == b"") == (code in (301, 302, 303))
    assert "authorization" not in req.headers
    assert "x-api-key" not in req.headers
    assert "cookie" not in req.headers
    assert req.headers["x-plain"] == "visible"
    for value in SECRETS.values():
        assert value not in req.raw()


def test_cross_origin_redirect_with_secret_body_not_followed(
        server: LocalServer, other_server: LocalServer, clock: FakeClock,
        make_driver: Callable[..., Driver]) -> None:
    server.on("POST", "/old", Reply(307, headers={"Location": other_server.url + "/new"}))
    other_server.on("POST", "/new", Reply(200))
    job = redirect_job(server.url + "/old", follow=True, body={"key": "secret://api-key"})
    result = make_driver(secrets=SECRETS).fire(job, scheduled_time=clock.now())
    assert not result.ok
    assert other_server.requests == []
    assert result.error is not None
    assert "request body holds secrets" in result.error


def test_redirect_loop_ends(server: LocalServer, clock: FakeClock,
                            make_driver: Callable[..., Driver]) -> None:
    server.on("POST", "/loop", Reply(307, headers={"Location": "/loop"}))
    result = make_driver(secrets=SECRETS).fire(redirect_job(server.url + "/loop", follow=True),
                                               scheduled_time=clock.now())
    assert not result.ok
    assert result.error is not None
    assert "too many redirects" in result.error
    assert len(server.requests) == 10


def test_basic_auth_header(server: LocalServer, clock: FakeClock,
                           make_driver: Callable[..., Driver]) -> None:
    server.on("POST", "/x", Reply(200))
    job = trigrun.JobSpec.model_validate({
        "name": "basic", "request": {"url": server.url + "/x"},
        "auth": {"type": "basic", "username": "svc", "password": "secret://af-pass"}})
    assert make_driver(secrets=SECRETS).fire(job, scheduled_time=clock.now()).ok
    expected = base64.b64encode(f"svc:{PASSWORD}".encode()).decode()
    assert server.requests[0].headers["authorization"] == f"Basic {expected}"


def test_a_token_request_that_fails_on_the_server_is_retried(
        server: LocalServer, clock: FakeClock, make_driver: Callable[..., Driver]) -> None:
    fake = FakeAirflow(server, username="admin", password=PASSWORD, clock=clock.time,
                       states=["success"])
    # The API server is busy for a moment: one 503, one dropped-looking 502, then the token.
    server.on("POST", "/auth/token", Reply(503, json={"detail": "busy"}),
              Reply(502, body="bad gateway"), fake._token)
    d = make_driver(secrets=SECRETS)
    result = d.fire(af_job(server, retry_policy={"max_attempts": 3}),
                    scheduled_time=clock.now())
    assert result.ok, result.error
    assert len(server.requests_to("/auth/token", "POST")) == 3
    assert len(posts(server)) == 1


def test_a_refused_token_is_not_retried_and_names_the_credentials(
        server: LocalServer, clock: FakeClock, make_driver: Callable[..., Driver]) -> None:
    FakeAirflow(server, username="admin", password="another-password", clock=clock.time)
    d = make_driver(secrets=SECRETS)
    result = d.fire(af_job(server, retry_policy={"max_attempts": 3}),
                    scheduled_time=clock.now())
    assert not result.ok
    assert len(server.requests_to("/auth/token", "POST")) == 1
    assert posts(server) == []
    assert "auth.username / auth.password" in (result.error or "")
    assert PASSWORD not in (result.error or "")
