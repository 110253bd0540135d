"""Secrets: resolved at send time, never seen anywhere else, even when the server echoes them."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import Callable
from typing import Any

import pytest

import trigrun
from tests.helpers.clock import FakeClock
from tests.helpers.drive import Driver
from tests.helpers.httpserver import LocalServer, Recorded, Reply

pytestmark = pytest.mark.integration

CANARY = "c4n4ry-T0KEN-9f8e7d6c"
PASSWORD = "pw-Zq81-canary"
BASIC = base64.b64encode(f"svc:{PASSWORD}".encode()).decode()
SECRETS = {"canary": CANARY, "hook-password": PASSWORD}
SCHEDULED = FakeClock().now()


def leaks(text: str) -> list[str]:
    return [s for s in (CANARY, PASSWORD, BASIC) if s in text]


def echo(status: int) -> Callable[[Recorded], Reply]:
    """Reply with everything the request carried: in the body and in a header."""

    def handler(req: Recorded) -> Reply:
        return Reply(status, json={"you_sent": req.raw(), "detail": f"bad key {CANARY}",
                                   "status": f"weird-{CANARY}", "run": "r-1"},
                     headers={"X-Echo": CANARY})

    return handler


def leaky_spec(server: LocalServer, path: str = "/hook", **over: Any) -> trigrun.JobSpec:
    return trigrun.JobSpec.model_validate({
        "name": "Leaky job",
        "request": {
            "url": f"{server.url}{path}?token=secret://canary&x=1",
            "headers": {"X-Api-Key": "secret://canary"},
            "body": {"key": "secret://canary", "note": "Bearer secret://canary"},
        },
        "auth": {"type": "basic", "username": "svc", "password": "secret://hook-password"},
        "wait": {"status_url": f"{server.url}/status/{{run_id}}?token=secret://canary",
                 "run_id_path": "run", "status_path": "status"},
        "retry_policy": {"max_attempts": 2},
        **over,
    })


@pytest.fixture
def captured(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    for name in ("trigrun", "httpx", "httpcore"):
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


@pytest.mark.parametrize("status", [200, 400, 500])
def test_secret_sent_but_never_seen(server: LocalServer, status: int,
                                    captured: pytest.LogCaptureFixture,
                                    capsys: pytest.CaptureFixture[str],
                                    make_driver: Callable[..., Driver]) -> None:
    server.on("POST", "/hook", echo(status))
    server.on("GET", "/status/{run_id}", echo(200))
    events: list[trigrun.Event] = []
    seen_by_on_secret: list[str] = []
    driver = make_driver(secrets=SECRETS, on_event=events.append,
                         on_secret=seen_by_on_secret.append)
    job = leaky_spec(server)
    result = driver.fire(job, scheduled_time=SCHEDULED)

    # The server got the real values, in the header, the query and the body.
    req = server.requests[0]
    assert req.headers["x-api-key"] == CANARY
    assert req.query["token"] == [CANARY]
    assert req.json() == {"key": CANARY, "note": f"Bearer {CANARY}"}
    assert req.headers["authorization"] == f"Basic {BASIC}"
    assert result.ok is (status == 200)

    texts = [repr(result), str(result), repr(result.spec), repr(job), repr(driver.engine),
             json.dumps(result.to_log()), repr(result.attempts), str(result.error),
             repr(events), repr(driver.engine.state)]
    if status == 200:
        run = driver.wait(result, poll_interval=1, timeout=10)
        # The status value itself is the secret: unknown, reported, still redacted.
        assert run.state is trigrun.RunState.UNKNOWN
        texts += [repr(run), json.dumps(run.to_log()), run.message]
        with pytest.raises(trigrun.RunFailed) as run_err:
            run.raise_for_failure()
        texts += [str(run_err.value), repr(run_err.value), json.dumps(run_err.value.metadata)]
        status_now = driver.poll(job, "weird-x")
        texts += [repr(status_now)]
        assert "***" in json.dumps(run.to_log())
    else:
        with pytest.raises(trigrun.TriggerFailed) as err:
            result.raise_for_failure()
        texts += [str(err.value), repr(err.value), repr(err.value.result)]
        assert "***" in json.dumps(result.to_log()["response"])

    captured_out = capsys.readouterr()
    texts += [captured.text, captured_out.out, captured_out.err]
    texts += [r.getMessage() for r in captured.records]
    for text in texts:
        assert leaks(text) == [], text[:2000]
    # The request log line (httpx, or the async engine's) was kept, only redacted.
    assert any(r.name in ("httpx", "trigrun.http") and "***" in r.getMessage()
               for r in captured.records)
    assert CANARY in seen_by_on_secret
    assert PASSWORD in seen_by_on_secret


def test_truncated_echo_does_not_leak_a_partial_secret(server: LocalServer,
                                                       make_driver: Callable[..., Driver]) -> None:
    # The secret straddles the cut: neither half may remain.
    cap = 1024
    body = "a" * (cap - 8) + CANARY + "b" * 5000
    server.on("POST", "/hook", Reply(200, body=body))
    job = trigrun.JobSpec.model_validate({
        "name": "cut", "max_response_bytes": cap,
        "request": {"url": f"{server.url}/hook", "headers": {"X-Key": "secret://canary"}}})
    result = make_driver(secrets=SECRETS).fire(job, scheduled_time=SCHEDULED)
    assert result.truncated
    assert isinstance(result.response, str)
    assert CANARY[:8] not in result.response


def test_url_encoded_echo_is_redacted(server: LocalServer,
                                      make_driver: Callable[..., Driver]) -> None:
    odd = "p@ss w0rd|x\"<é"
    server.on("POST", "/hook", lambda req: Reply(200, json={"path": req.raw()}))
    job = trigrun.JobSpec.model_validate({
        "name": "enc", "request": {"url": f"{server.url}/hook?k=secret://odd"}})
    result = make_driver(secrets={"odd": odd}).fire(job, scheduled_time=SCHEDULED)
    assert server.requests[0].query["k"] == [odd]
    assert "p@ss%20w0rd" in server.requests[0].target  # how httpx encoded it
    text = json.dumps(result.to_log(), ensure_ascii=False)
    assert "w0rd" not in text, text


@pytest.mark.parametrize("where", ["header", "query", "body", "auth", "status_url"])
def test_missing_secret_raises_before_any_request(server: LocalServer, where: str,
                                                  make_driver: Callable[..., Driver]) -> None:
    server.on("POST", "/hook", Reply(200))
    request: dict[str, Any] = {"url": f"{server.url}/hook", "headers": {}, "body": {"a": 1}}
    extra: dict[str, Any] = {}
    ref = "secret://missing-key"
    if where == "header":
        request["headers"]["Authorization"] = ref
    elif where == "query":
        request["url"] += f"?k={ref}"
    elif where == "body":
        request["body"] = {"token": ref}
    elif where == "auth":
        extra["auth"] = {"type": "bearer", "token": ref}
    else:
        extra["wait"] = {"status_url": f"{server.url}/s/{{run_id}}?k={ref}",
                         "run_id_path": "id", "status_path": "state"}
    job = trigrun.JobSpec.model_validate({"name": "needs a key", "request": request, **extra})
    with pytest.raises(trigrun.SecretNotFound) as err:
        make_driver(secrets={"other": "x"}).fire(job, scheduled_time=SCHEDULED)
    assert server.requests == []
    assert err.value.reference == ref
    msg = str(err.value)
    assert ref in msg
    assert "'needs a key'" in msg
    assert "nothing was sent" in msg
    assert "TRIGRUN_SECRET_MISSING_KEY" in msg
    assert isinstance(err.value, trigrun.TrigRunError)
    assert isinstance(err.value, LookupError)


def test_missing_secret_raises_before_lookups(server: LocalServer,
                                              make_driver: Callable[..., Driver]) -> None:
    # dbt Cloud looks runs up (and overlap lists them) before triggering: not even that.
    job = trigrun.JobSpec.model_validate({
        "name": "dbt", "overlap": "skip",
        "target": {"type": "dbt_cloud", "base_url": server.url, "account_id": 1, "job_id": 2},
        "auth": {"type": "header", "name": "Authorization", "value": "Token secret://dbt"}})
    with pytest.raises(trigrun.SecretNotFound, match="secret://dbt"):
        make_driver(secrets={}).fire(job, scheduled_time=SCHEDULED)
    assert server.requests == []


def test_env_secrets_names() -> None:
    env = trigrun.EnvSecrets()
    assert env.env_name("airflow-api-key") == "TRIGRUN_SECRET_AIRFLOW_API_KEY"
    assert env.env_name("team.dbt/token") == "TRIGRUN_SECRET_TEAM_DBT_TOKEN"
    assert trigrun.EnvSecrets(prefix="X_").env_name("a-b") == "X_A_B"
    assert trigrun.EnvSecrets(environ={"TRIGRUN_SECRET_K": "v"})("k") == "v"
    assert trigrun.EnvSecrets(environ={})("k") is None
    assert "s3cr3t-val" not in repr(trigrun.EnvSecrets(environ={"TRIGRUN_SECRET_K": "s3cr3t-val"}))


def test_default_secrets_come_from_the_environment(server: LocalServer,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   make_driver: Callable[..., Driver]) -> None:
    monkeypatch.setenv("TRIGRUN_SECRET_AIRFLOW_API_KEY", "Bearer env-value-123")
    server.on("POST", "/hook", Reply(200))
    job = trigrun.JobSpec.model_validate({"name": "env", "request": {
        "url": f"{server.url}/hook", "headers": {"Authorization": "secret://airflow-api-key"}}})
    assert make_driver().fire(job, scheduled_time=SCHEDULED).ok  # no secrets= given
    assert server.requests[0].headers["authorization"] == "Bearer env-value-123"


def _chain_job(server: LocalServer) -> trigrun.JobSpec:
    return trigrun.JobSpec.model_validate({"name": "chain", "request": {
        "url": f"{server.url}/hook",
        "headers": {"X-A": "secret://a", "X-B": "secret://b", "X-C": "secret://c"}}})


def test_resolver_chain_sync(server: LocalServer, clock: FakeClock) -> None:
    server.on("POST", "/hook", Reply(200))
    calls: list[str] = []

    def by_callable(name: str) -> str | None:
        calls.append(name)
        return {"b": "from-callable", "c": "from-callable-too"}.get(name)

    chain = [{"a": "from-mapping"}, by_callable]
    with Driver("sync", clock, secrets=chain) as d:
        assert d.fire(_chain_job(server), scheduled_time=SCHEDULED).ok
    h = server.requests[0].headers
    assert (h["x-a"], h["x-b"], h["x-c"]) == ("from-mapping", "from-callable", "from-callable-too")
    assert calls == ["b", "c"]  # the mapping answered "a" first


def test_resolver_chain_async(server: LocalServer, clock: FakeClock) -> None:
    server.on("POST", "/hook", Reply(200))

    async def from_vault(name: str) -> str | None:
        await asyncio.sleep(0)
        return "from-async" if name == "c" else None

    chain = [{"a": "from-mapping"}, lambda n: "from-callable" if n == "b" else None, from_vault]
    with Driver("async", clock, secrets=chain) as d:
        assert d.fire(_chain_job(server), scheduled_time=SCHEDULED).ok
    h = server.requests[0].headers
    assert (h["x-a"], h["x-b"], h["x-c"]) == ("from-mapping", "from-callable", "from-async")


def test_async_resolver_in_sync_engine_is_a_clear_error(server: LocalServer,
                                                        clock: FakeClock) -> None:
    async def from_vault(name: str) -> str | None:
        return "v"

    with Driver("sync", clock, secrets=[{}, from_vault]) as d, \
            pytest.raises(TypeError, match="use AsyncEngine"):
        d.fire(_chain_job(server), scheduled_time=SCHEDULED)
    assert server.requests == []


def test_secrets_are_resolved_at_send_time(server: LocalServer, clock: FakeClock) -> None:
    # A rotated secret is picked up by the next fire of a long-lived engine.
    server.on("POST", "/hook", Reply(200))
    store = {"a": "first", "b": "b", "c": "c"}
    with Driver("sync", clock, secrets=lambda n: store.get(n)) as d:
        job = _chain_job(server)
        d.fire(job, scheduled_time=SCHEDULED)
        store["a"] = "second"
        d.fire(job, scheduled_time=SCHEDULED)
    assert [r.headers["x-a"] for r in server.requests] == ["first", "second"]
