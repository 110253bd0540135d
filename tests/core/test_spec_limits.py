"""The job spec's limits on a fire: ``max_request_bytes``, ``delay_seconds`` (and the TTL that
counts from the delayed time), ``queue``; their validation and their JSON schema."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

import trigrun
from tests.helpers.clock import FakeClock
from tests.helpers.drive import Driver
from tests.helpers.httpserver import LocalServer, Reply
from trigrun._schema import jobs_file_schema

pytestmark = pytest.mark.integration

SCHEDULED = FakeClock().now()


def hook(url: str, **over: Any) -> trigrun.JobSpec:
    return trigrun.JobSpec.model_validate(
        {"name": "Big payload", "request": {"url": url, "body": {"rows": "x" * 100}}, **over})


def test_a_static_body_over_the_limit_is_a_spec_error() -> None:
    # Loading a jobs file (trigrun validate) sees it; the fire refuses it as well (below).
    with pytest.raises(trigrun.SpecError, match=r"job 'J', field request\.body: the body is "
                       r"111 bytes, over max_request_bytes=50"):
        trigrun.parse_jobs({"name": "J", "max_request_bytes": 50, "request": {
            "url": "http://h/x", "body": {"rows": "x" * 100}}})


def invalid(**over: Any) -> str:
    with pytest.raises(trigrun.SpecError) as err:
        trigrun.JobSpec.model_validate({"name": "J", "request": {"url": "http://h/x"}, **over})
    return str(err.value)


# --- max_request_bytes ---------------------------------------------------------------------


def test_a_body_over_max_request_bytes_is_refused_and_nothing_is_sent(
        server: LocalServer, clock: FakeClock, make_driver: Callable[..., Driver]) -> None:
    server.on("POST", "/hook", Reply(200, json={}))
    result = make_driver().fire(hook(server.url + "/hook", max_request_bytes=50),
                                scheduled_time=SCHEDULED)
    assert not result.ok
    assert result.attempts == ()
    assert clock.sleeps == []
    assert server.requests == []
    assert result.error is not None
    assert "job 'Big payload'" in result.error
    assert "max_request_bytes=50" in result.error
    assert "problem in the job spec" in result.error
    assert "nothing was sent" in result.error
    # At the limit it goes out.
    size = len(b'{"rows":"' + b"x" * 100 + b'"}')
    assert make_driver().fire(hook(server.url + "/hook", max_request_bytes=size),
                              scheduled_time=SCHEDULED).ok
    assert len(server.requests_to("/hook")) == 1


def test_the_limit_applies_before_any_lookup(server: LocalServer,
                                             make_driver: Callable[..., Driver]) -> None:
    # Dagster looks for the key's run first and lists active runs for overlap: neither goes out.
    spec = trigrun.JobSpec.model_validate({
        "name": "Dagster job", "overlap": "skip", "max_request_bytes": 100,
        "target": {"type": "dagster", "base_url": server.url, "job_name": "j",
                   "repository_location_name": "p", "run_config": {"ops": {"x": "y" * 200}}}})
    result = make_driver().fire(spec, scheduled_time=SCHEDULED)
    assert not result.ok
    assert "max_request_bytes=100" in (result.error or "")
    assert server.requests == []


def test_secret_values_count_and_never_show(server: LocalServer,
                                            make_driver: Callable[..., Driver]) -> None:
    secret = "s" * 80
    spec = trigrun.JobSpec.model_validate({
        "name": "Secret body", "max_request_bytes": 60,
        "request": {"url": server.url + "/hook", "body": {"token": "secret://tok"}}})
    result = make_driver(secrets={"tok": secret}).fire(spec, scheduled_time=SCHEDULED)
    assert not result.ok
    assert server.requests == []
    assert secret not in str(result.to_log())


def test_max_request_bytes_must_be_positive() -> None:
    msg = invalid(max_request_bytes=0)
    assert "max_request_bytes" in msg
    assert "job 'J'" in msg


# --- delay_seconds ----------------------------------------------------------------------------


def test_the_fire_comes_delay_seconds_after_the_scheduled_time(
        server: LocalServer, clock: FakeClock, make_driver: Callable[..., Driver]) -> None:
    server.on("POST", "/hook", Reply(200, json={}))
    sent_at: list[float] = []
    driver = make_driver(on_event=lambda e: sent_at.append(clock.wall)
                         if e.kind == "attempt" else None)
    called = clock.wall
    result = driver.fire(hook(server.url + "/hook", delay_seconds=5), scheduled_time=clock.now())
    assert result.ok
    assert clock.sleeps == [5.0]
    assert sent_at
    assert sent_at[0] >= called + 5
    # The delay is not the fire's duration, and not part of the retry budget.
    assert result.duration_ms < 1000


def test_a_late_call_waits_only_what_is_left(server: LocalServer, clock: FakeClock,
                                             make_driver: Callable[..., Driver]) -> None:
    server.on("POST", "/hook", Reply(200, json={}))
    scheduled = clock.now() - timedelta(seconds=3)
    assert make_driver().fire(hook(server.url + "/hook", delay_seconds="5s"),
                              scheduled_time=scheduled).ok
    assert clock.sleeps == [pytest.approx(2.0)]


def test_delay_false_fires_at_once(server: LocalServer, clock: FakeClock,
                                   make_driver: Callable[..., Driver]) -> None:
    server.on("POST", "/hook", Reply(200, json={}))
    assert make_driver().fire(hook(server.url + "/hook", delay_seconds="1h"),
                              scheduled_time=clock.now(), delay=False).ok
    assert clock.sleeps == []
    assert len(server.requests_to("/hook")) == 1


def test_ttl_counts_from_the_delayed_time(server: LocalServer, clock: FakeClock,
                                          make_driver: Callable[..., Driver]) -> None:
    server.on("POST", "/hook", Reply(200, json={}))
    spec = hook(server.url + "/hook", delay_seconds=60, ttl_seconds=30)
    scheduled = clock.now()
    clock.advance(80)  # 20 s after the delayed time: within the TTL, though 80 s late
    result = make_driver().fire(spec, scheduled_time=scheduled)
    assert result.ok
    assert not result.skipped
    assert clock.sleeps == []
    clock.advance(20)  # now 40 s after the delayed time
    result = make_driver().fire(spec, scheduled_time=scheduled)
    assert result.skipped
    assert result.reason is not None
    assert "delayed time" in result.reason
    assert "ttl_seconds=30" in result.reason
    assert len(server.requests_to("/hook")) == 1


def test_a_real_delay_on_the_async_engine(server: LocalServer) -> None:
    server.on("POST", "/hook", Reply(200, json={}))

    async def go() -> float:
        async with trigrun.AsyncEngine() as engine:
            t0 = time.monotonic()
            result = await engine.fire(hook(server.url + "/hook", delay_seconds="250ms"))
            assert result.ok
            return t0

    t0 = asyncio.run(go())
    (sent,) = server.requests_to("/hook")
    assert sent.at - t0 >= 0.25


@pytest.mark.parametrize(("given", "seconds"), [
    (0, 0.0), (2.5, 2.5), ("5s", 5.0), ("10m", 600.0), ("1h", 3600.0), ("1h30m", 5400.0),
    ("250ms", 0.25), (" 45 ", 45.0)])
def test_delay_seconds_takes_seconds_or_a_duration(given: Any, seconds: float) -> None:
    spec = trigrun.JobSpec.model_validate({"name": "J", "request": {"url": "http://h/x"},
                                           "delay_seconds": given})
    assert spec.delay_seconds == seconds


@pytest.mark.parametrize("given", ["soon", "5 parsecs", -1, True, "-5s"])
def test_a_bad_delay_names_the_field_and_the_fix(given: Any) -> None:
    msg = invalid(delay_seconds=given)
    assert "job 'J'" in msg
    assert "delay_seconds" in msg


# --- queue -----------------------------------------------------------------------------------


def test_queue_fields() -> None:
    spec = trigrun.JobSpec.model_validate({"name": "J", "request": {"url": "http://h/x"},
                                           "queue": {"name": "warehouse",
                                                     "concurrency_limit": 3}})
    assert spec.queue is not None
    assert spec.queue.concurrency_limit == 3
    assert "queue.concurrency_limit" in invalid(queue={"name": "q", "concurrency_limit": 0})
    assert "queue.name" in invalid(queue={"name": ""})
    assert "queue.limit" in invalid(queue={"name": "q", "limit": 2})


# --- schema ----------------------------------------------------------------------------------


def test_the_schema_has_the_new_fields() -> None:
    schema = jobs_file_schema()
    props = schema["$defs"]["JobSpec"]["properties"]
    assert props["max_request_bytes"]["default"] == 1048576
    assert props["link_upstream"]["default"] is True
    assert {"type": "number", "minimum": 0} in props["delay_seconds"]["anyOf"]
    pattern = next(a["pattern"] for a in props["delay_seconds"]["anyOf"] if "pattern" in a)
    import re

    assert all(re.match(pattern, s) for s in ("5s", "10m", "1h30m", "30", "250ms"))
    assert not any(re.match(pattern, s) for s in ("soon", "5 parsecs", ""))
    queue = schema["$defs"]["QueueSpec"]
    assert queue["additionalProperties"] is False
    assert queue["properties"]["concurrency_limit"]["anyOf"][0]["minimum"] == 1
