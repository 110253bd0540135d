"""Firing against a real HTTP server on 127.0.0.1, through Engine and AsyncEngine."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from email.utils import format_datetime
from typing import Any

import pytest

import trigrun
from tests.helpers.clock import FakeClock
from tests.helpers.drive import Driver
from tests.helpers.httpserver import LocalServer, Recorded, Reply, closed_port

pytestmark = pytest.mark.integration

SCHEDULED = FakeClock().now()


def hook_spec(url: str, **over: Any) -> trigrun.JobSpec:
    data: dict[str, Any] = {"name": "ML model retrain", "request": {
        "url": url, "method": "POST", "body": {"model": "recommendations-v3"},
        "timeout_seconds": 5}}
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return trigrun.JobSpec.model_validate(data)


def test_503_503_200_is_three_attempts_and_ok(server: LocalServer, clock: FakeClock,
                                              make_driver: Callable[..., Driver]) -> None:
    server.on("POST", "/train", Reply(503, body="busy"), Reply(503, body="busy"),
              Reply(200, json={"run_id": "abc123", "state": "queued"}))
    result = make_driver().fire(hook_spec(server.url + "/train"), scheduled_time=SCHEDULED)
    assert result.ok
    assert result.status_code == 200
    assert [a.status_code for a in result.attempts] == [503, 503, 200]
    assert [a.number for a in result.attempts] == [1, 2, 3]
    assert result.response == {"run_id": "abc123", "state": "queued"}
    assert len(server.requests_to("/train")) == 3
    # Backoff 1 s then 2 s (random()=0 so no jitter), asked of the injected sleep.
    assert clock.sleeps == [1.0, 2.0]
    assert [a.delay_before_ms for a in result.attempts] == [0.0, 1000.0, 2000.0]
    # Every attempt carried the same idempotency key.
    keys = {r.headers["idempotency-key"] for r in server.requests_to("/train")}
    assert keys == {result.idempotency_key}
    log = result.to_log()
    assert json.loads(json.dumps(log)) == log
    assert log["status"] == 200
    assert len(log["attempts"]) == 3


def test_400_is_one_attempt_with_a_clear_error(server: LocalServer, clock: FakeClock,
                                               make_driver: Callable[..., Driver]) -> None:
    server.on("POST", "/train", Reply(400, json={"detail": "unknown model"}))
    result = make_driver().fire(hook_spec(server.url + "/train"), scheduled_time=SCHEDULED)
    assert not result.ok
    assert result.status_code == 400
    assert len(result.attempts) == 1
    assert len(server.requests) == 1
    assert clock.sleeps == []
    assert result.error is not None
    assert "'ML model retrain'" in result.error
    assert server.url + "/train" in result.error
    assert "HTTP 400" in result.error
    assert "not retried" in result.error
    assert result.response == {"detail": "unknown model"}
    with pytest.raises(trigrun.TriggerFailed, match="HTTP 400") as err:
        result.raise_for_failure()
    assert err.value.result is result


def test_retry_after_seconds_is_waited_for_real(server: LocalServer, engine_kind: str) -> None:
    server.on("POST", "/train", Reply(429, headers={"Retry-After": "2"}),
              Reply(200, json={"ok": True}))
    spec = hook_spec(server.url + "/train", retry_policy={"initial_backoff_seconds": 0.01})
    with Driver(engine_kind) as d:  # real clock and sleep: this test is about real time
        result = d.fire(spec, scheduled_time=SCHEDULED)
    assert result.ok
    assert [a.status_code for a in result.attempts] == [429, 200]
    first, second = server.requests_to("/train")
    assert second.at - first.at >= 2.0
    assert result.attempts[1].delay_before_ms == 2000.0


def test_retry_after_http_date(server: LocalServer, clock: FakeClock,
                               make_driver: Callable[..., Driver]) -> None:
    when = format_datetime(clock.now() + timedelta(seconds=120), usegmt=True)
    server.on("POST", "/train", Reply(503, headers={"Retry-After": when}), Reply(200))
    result = make_driver().fire(hook_spec(server.url + "/train"), scheduled_time=SCHEDULED)
    assert result.ok
    assert clock.sleeps == [120.0]


def test_retry_after_ignored_when_told(server: LocalServer, clock: FakeClock,
                                       make_driver: Callable[..., Driver]) -> None:
    server.on("POST", "/train", Reply(429, headers={"Retry-After": "100"}), Reply(200))
    spec = hook_spec(server.url + "/train", retry_policy={"respect_retry_after": False})
    assert make_driver().fire(spec, scheduled_time=SCHEDULED).ok
    assert clock.sleeps == [1.0]


def test_retry_after_is_capped(server: LocalServer, clock: FakeClock,
                               make_driver: Callable[..., Driver]) -> None:
    server.on("POST", "/train", Reply(429, headers={"Retry-After": "86400"}), Reply(200))
    spec = hook_spec(server.url + "/train", retry_policy={"max_retry_after_seconds": 30})
    assert make_driver().fire(spec, scheduled_time=SCHEDULED).ok
    assert clock.sleeps == [30.0]


def test_refused_connection_is_retried_then_reported(clock: FakeClock,
                                                     make_driver: Callable[..., Driver]) -> None:
    url = f"http://127.0.0.1:{closed_port()}/train"
    result = make_driver().fire(hook_spec(url), scheduled_time=SCHEDULED)
    assert not result.ok
    assert result.status_code is None
    assert len(result.attempts) == 3
    for attempt in result.attempts:
        assert attempt.status_code is None
        assert attempt.error is not None
        assert "connection failed" in attempt.error
    assert clock.sleeps == [1.0, 2.0]
    assert result.error is not None
    assert "'ML model retrain'" in result.error
    assert url in result.error
    assert "connection failed" in result.error
    assert "gave up after 3 attempt(s)" in result.error


def test_refused_connection_not_retried_when_disabled(clock: FakeClock,
                                                      make_driver: Callable[..., Driver]) -> None:
    url = f"http://127.0.0.1:{closed_port()}/train"
    spec = hook_spec(url, retry_policy={"retry_on_network_errors": False})
    result = make_driver().fire(spec, scheduled_time=SCHEDULED)
    assert len(result.attempts) == 1
    assert not result.ok
    assert result.error is not None
    assert "network error is not retried" in result.error


TIMEOUT = 0.5


def _timed_fire(driver: Driver, spec: trigrun.JobSpec) -> tuple[trigrun.TriggerResult, float]:
    t0 = time.monotonic()
    result = driver.fire(spec, scheduled_time=SCHEDULED)
    return result, time.monotonic() - t0


def _assert_cut(result: trigrun.TriggerResult, elapsed: float, timeout: float,
                bound: float) -> None:
    assert not result.ok
    assert len(result.attempts) == 1
    assert result.attempts[0].error is not None
    assert f"timed out after {timeout:g}s" in result.attempts[0].error
    assert result.error is not None
    assert "timed out" in result.error
    # Cut at the timeout, not when the server was done: each test's server takes clearly
    # longer than ``bound``, which leaves a loaded machine slack over the timeout.
    assert timeout * 0.9 <= elapsed < bound, elapsed


def test_timeout_when_headers_are_late(server: LocalServer,
                                       make_driver: Callable[..., Driver]) -> None:
    # The headers come after 3 s: cut well before.
    server.on("POST", "/slow", Reply(200, json={"ok": True}, delay=3))
    spec = hook_spec(server.url + "/slow", request={"timeout_seconds": TIMEOUT},
                     retry_policy={"max_attempts": 1})
    _assert_cut(*_timed_fire(make_driver(), spec), TIMEOUT, bound=TIMEOUT + 1.5)


def test_timeout_when_body_trickles(server: LocalServer,
                                    make_driver: Callable[..., Driver]) -> None:
    # Each piece comes well within the timeout, the whole body takes 4 s.
    server.on("POST", "/slow", Reply(200, chunks=[b"x" * 10] * 20, chunk_delay=0.2))
    spec = hook_spec(server.url + "/slow", request={"timeout_seconds": TIMEOUT},
                     retry_policy={"max_attempts": 1})
    _assert_cut(*_timed_fire(make_driver(), spec), TIMEOUT, bound=TIMEOUT + 1.5)


def test_timeout_when_body_stalls_after_late_headers(server: LocalServer,
                                                     make_driver: Callable[..., Driver]) -> None:
    # Headers just before the deadline, then the body stalls: the per-read timeout alone
    # would allow almost twice the limit (cut at 1.8 + 2.0 = 3.8 s, over the bound of 3 s;
    # the whole exchange's deadline cuts at 2 s).
    timeout = 2.0
    server.on("POST", "/slow", Reply(200, chunks=[b'{"a": ', b"1}"], chunk_delay=3, delay=1.8))
    spec = hook_spec(server.url + "/slow", request={"timeout_seconds": timeout},
                     retry_policy={"max_attempts": 1})
    _assert_cut(*_timed_fire(make_driver(), spec), timeout, bound=3.0)


def test_timeout_is_retried(server: LocalServer, clock: FakeClock,
                            make_driver: Callable[..., Driver]) -> None:
    server.on("POST", "/slow", Reply(200, delay=2), Reply(201, json={"ok": 1}))
    spec = hook_spec(server.url + "/slow", request={"timeout_seconds": TIMEOUT})
    result = make_driver().fire(spec, scheduled_time=SCHEDULED)
    assert result.ok
    assert result.status_code == 201
    assert result.attempts[0].error is not None
    assert result.attempts[0].status_code is None


def test_response_body_is_capped_with_a_note(server: LocalServer,
                                             make_driver: Callable[..., Driver]) -> None:
    server.on("POST", "/big", Reply(200, json={"blob": "x" * 200_000}))
    result = make_driver().fire(hook_spec(server.url + "/big"), scheduled_time=SCHEDULED)
    assert result.ok
    assert result.truncated
    assert isinstance(result.response, str)
    assert result.response.endswith("[truncated: kept 65536 bytes]")
    assert 65536 <= len(result.response.encode()) < 65536 + 100
    log = result.to_log()
    assert log["response_truncated"] is True
    assert len(json.dumps(log)) < 70_000


def test_response_cap_is_configurable(server: LocalServer,
                                      make_driver: Callable[..., Driver]) -> None:
    server.on("POST", "/big", Reply(200, body="y" * 5000))
    result = make_driver().fire(hook_spec(server.url + "/big", max_response_bytes=1024),
                                scheduled_time=SCHEDULED)
    assert result.truncated
    assert isinstance(result.response, str)
    assert result.response.startswith("y" * 1024 + "...")
    assert "kept 1024 bytes" in result.response


def test_small_response_is_not_marked(server: LocalServer,
                                      make_driver: Callable[..., Driver]) -> None:
    server.on("POST", "/small", Reply(200, body="started"))
    result = make_driver().fire(hook_spec(server.url + "/small"), scheduled_time=SCHEDULED)
    assert result.response == "started"
    assert not result.truncated


def test_gzip_body_is_decoded(server: LocalServer, make_driver: Callable[..., Driver]) -> None:
    payload = {"dag_run_id": "manual__2026-03-16T01:00:00", "state": "queued"}
    server.on("POST", "/gz", Reply(200, json=payload, gzip=True))
    result = make_driver().fire(hook_spec(server.url + "/gz"), scheduled_time=SCHEDULED)
    assert result.ok
    assert result.response == payload
    assert "gzip" in server.requests[0].headers.get("accept-encoding", "")


def test_gzip_bomb_is_capped(server: LocalServer, make_driver: Callable[..., Driver]) -> None:
    # 20 MB of zeros compress to ~20 KB: the cap applies to the decoded body.
    server.on("POST", "/gz", Reply(200, body=b"0" * 20_000_000, gzip=True))
    result = make_driver().fire(hook_spec(server.url + "/gz"), scheduled_time=SCHEDULED)
    assert result.ok
    assert result.truncated
    assert isinstance(result.response, str)
    assert len(result.response) < 66_000


def test_request_is_sent_as_specified(server: LocalServer,
                                      make_driver: Callable[..., Driver]) -> None:
    server.on("PUT", "/train", Reply(202))
    spec = hook_spec(server.url + "/train?x=1", request={
        "method": "put", "headers": {"X-Team": "ml"}, "body": {"model": "v3", "n": [1, 2]}})
    result = make_driver().fire(spec, scheduled_time=SCHEDULED)
    assert result.ok
    assert result.status_code == 202
    (req,) = server.requests
    assert req.method == "PUT"
    assert req.query == {"x": ["1"]}
    assert req.headers["x-team"] == "ml"
    assert req.headers["content-type"] == "application/json"
    assert req.json() == {"model": "v3", "n": [1, 2]}


def test_string_body_is_sent_as_is(server: LocalServer,
                                   make_driver: Callable[..., Driver]) -> None:
    server.on("POST", "/raw", Reply(200))
    spec = hook_spec(server.url + "/raw", request={
        "body": "a=1&b=2", "headers": {"Content-Type": "application/x-www-form-urlencoded"}})
    assert make_driver().fire(spec, scheduled_time=SCHEDULED).ok
    assert server.requests[0].body == b"a=1&b=2"
    assert server.requests[0].headers["content-type"] == "application/x-www-form-urlencoded"


def test_dropped_connection_is_a_network_error(server: LocalServer, clock: FakeClock,
                                               make_driver: Callable[..., Driver]) -> None:
    server.on("POST", "/drop", Reply(drop=True), Reply(200))
    result = make_driver().fire(hook_spec(server.url + "/drop"), scheduled_time=SCHEDULED)
    assert result.ok
    assert len(result.attempts) == 2
    assert result.attempts[0].error is not None


def test_fire_many_bounds_concurrency_and_keeps_order(server: LocalServer,
                                                      clock: FakeClock) -> None:
    lock = threading.Lock()
    active = [0, 0]  # now, most at once

    def slow(req: Recorded) -> Reply:
        with lock:
            active[0] += 1
            active[1] = max(active[1], active[0])
        time.sleep(0.15)
        with lock:
            active[0] -= 1
        return Reply(200, json={"job": req.json()["n"]})

    server.on("POST", "/many", slow)
    specs = [hook_spec(server.url + "/many", name=f"job {n}", request={"body": {"n": n}})
             for n in range(6)]

    async def go() -> list[trigrun.TriggerResult]:
        async with trigrun.AsyncEngine(**clock.async_engine_kwargs()) as engine:
            return await engine.fire_many(specs, concurrency=2,
                                          context={"scheduled_time": SCHEDULED})

    results = asyncio.run(go())
    assert [r.response for r in results] == [{"job": n} for n in range(6)]
    assert all(r.ok for r in results)
    assert active[1] == 2


def test_a_scheduled_time_string_with_z_parses_and_a_bad_one_is_a_clear_error(
        server: LocalServer) -> None:
    # datetime.fromisoformat takes a trailing Z only from Python 3.11: the context's
    # scheduled_time (untrusted) is parsed the same on 3.10.
    from datetime import datetime, timezone

    from trigrun._schedule import parse_iso_time

    assert parse_iso_time("2026-01-01T01:00:00Z", "x") == datetime(2026, 1, 1, 1, tzinfo=timezone.utc)
    server.on("POST", "/z", Reply(200, json={"ok": True}))
    spec = hook_spec(server.url + "/z")
    with trigrun.Engine() as engine:
        result = engine.fire(spec, context={"scheduled_time": "2026-01-01T01:00:00Z"})
        assert result.ok
        assert result.scheduled_time == "2026-01-01T01:00:00+00:00"
        with pytest.raises(trigrun.SpecError, match=r"job 'ML model retrain': scheduled_time: "
                                                    r"'yesterday' is not an ISO 8601 time"):
            engine.fire(spec, context={"scheduled_time": "yesterday"})
    assert len(server.requests_to("/z")) == 1
