"""Retry math: the published delay formula, caps, and what is never retried."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest
from pydantic import ValidationError
from pytest_httpx import HTTPXMock

import trigrun
from tests.helpers.clock import FakeClock
from tests.helpers.drive import Driver
from trigrun._models import RetryPolicy
from trigrun._retry import backoff_seconds, next_delay, parse_retry_after, poll_error_delay


def policy(**kw: object) -> RetryPolicy:
    return RetryPolicy.model_validate(kw)


@pytest.mark.parametrize(("retry", "rnd", "expected"), [
    # base = min(max_backoff, initial * multiplier ** (retry - 1)); delay = base * (1 - jitter * rnd)
    (1, 0.0, 2.0),
    (2, 0.0, 6.0),
    (3, 0.0, 18.0),
    (4, 0.0, 50.0),  # 54 capped at max_backoff_seconds
    (9, 0.0, 50.0),
    (1, 0.5, 2.0 * (1 - 0.25 * 0.5)),
    (3, 0.999, 18.0 * (1 - 0.25 * 0.999)),
    (4, 1.0, 50.0 * 0.75),
])
def test_backoff_formula(retry: int, rnd: float, expected: float) -> None:
    p = policy(initial_backoff_seconds=2, backoff_multiplier=3, max_backoff_seconds=50, jitter=0.25)
    assert backoff_seconds(p, retry, rnd) == pytest.approx(expected)


def test_default_policy_delays() -> None:
    p = RetryPolicy()
    assert [backoff_seconds(p, n, 0.0) for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert backoff_seconds(p, 1, 0.5) == pytest.approx(0.95)  # jitter 0.1 takes up to 10 % off


def test_zero_jitter_ignores_random() -> None:
    p = policy(jitter=0)
    assert backoff_seconds(p, 2, 0.0) == backoff_seconds(p, 2, 0.99) == 2.0


def _next(p: RetryPolicy, **kw: object) -> tuple[float | None, str]:
    args: dict[str, object] = {"attempt": 1, "status_code": 503, "network_error": False,
                               "retry_after": None, "elapsed": 0.0, "random_value": 0.0}
    args.update(kw)
    return next_delay(p, **args)  # type: ignore[arg-type]


def test_retry_after_wins_when_longer_and_is_capped() -> None:
    p = policy(max_retry_after_seconds=120)
    assert _next(p, retry_after=30.0) == (30.0, "")
    assert _next(p, retry_after=0.5) == (1.0, "")  # never shorter than the backoff
    assert _next(p, retry_after=10_000.0) == (120.0, "")
    assert _next(policy(respect_retry_after=False), retry_after=30.0) == (1.0, "")


def test_max_elapsed_seconds_stops_retries() -> None:
    p = policy(max_elapsed_seconds=100, max_attempts=10)
    assert _next(p, elapsed=98.0)[0] == 1.0
    delay, why = _next(p, elapsed=99.5)
    assert delay is None
    assert "max_elapsed_seconds=100" in why
    # A long Retry-After that would end past the limit stops too, rather than overrun it.
    delay, why = _next(p, retry_after=200.0)
    assert delay is None
    assert "max_elapsed_seconds" in why
    assert _next(policy(max_elapsed_seconds=None), elapsed=1e9)[0] == 1.0


def test_max_attempts_stops_retries() -> None:
    p = policy(max_attempts=3)
    assert _next(p, attempt=2)[0] == 2.0
    delay, why = _next(p, attempt=3)
    assert delay is None
    assert "gave up after 3 attempt(s)" in why


@pytest.mark.parametrize("code", [400, 401, 403, 404, 409, 410, 422])
def test_other_4xx_never_retried(code: int) -> None:
    delay, why = _next(RetryPolicy(), status_code=code)
    assert delay is None
    assert f"status {code} is not retried" in why


@pytest.mark.parametrize("code", [408, 425, 429])
def test_retryable_4xx_may_be_listed(code: int) -> None:
    p = policy(retry_on_statuses=[code, 503])
    assert _next(p, status_code=code)[0] == 1.0
    assert _next(RetryPolicy(), status_code=408)[0] is None  # only when listed


def test_network_errors() -> None:
    assert _next(RetryPolicy(), status_code=None, network_error=True)[0] == 1.0
    delay, why = _next(policy(retry_on_network_errors=False), status_code=None, network_error=True)
    assert delay is None
    assert "network error is not retried" in why


@pytest.mark.parametrize("code", [400, 404, 409, 499])
def test_listing_a_client_error_is_a_spec_error(code: int) -> None:
    with pytest.raises(ValidationError, match=f"Remove {code}"):
        policy(retry_on_statuses=[500, code])
    with pytest.raises(trigrun.SpecError) as err:
        trigrun.parse_jobs({"name": "j", "request": {"url": "https://x.example/y"},
                            "retry_policy": {"retry_on_statuses": [code]}}, source="jobs.yaml")
    (problem,) = err.value.problems
    assert problem.startswith("jobs.yaml: job 'j', field retry_policy.retry_on_statuses: ")
    assert "client error" in problem
    assert f"Remove {code}" in problem


@pytest.mark.parametrize("bad", [99, 600, 1000])
def test_retry_statuses_must_be_http_codes(bad: int) -> None:
    with pytest.raises(ValidationError, match="not an HTTP status code"):
        policy(retry_on_statuses=[bad])


def test_retry_statuses_sorted_and_unique() -> None:
    assert policy(retry_on_statuses=[503, 500, 503]).retry_on_statuses == [500, 503]


def test_parse_retry_after() -> None:
    now = datetime(2026, 3, 16, 1, 0, tzinfo=timezone.utc)
    assert parse_retry_after("2", now) == 2.0
    assert parse_retry_after(" 120 ", now) == 120.0
    assert parse_retry_after(format_datetime(now + timedelta(seconds=90), usegmt=True), now) == 90.0
    assert parse_retry_after(format_datetime(now - timedelta(seconds=90), usegmt=True), now) == 0.0
    for junk in (None, "", "soon", "-5", "1.5e3"):
        assert parse_retry_after(junk, now) is None


def test_poll_error_delay() -> None:
    assert [poll_error_delay(30, n) for n in (1, 2, 3, 4, 5)] == [30, 60, 120, 240, 300]
    assert poll_error_delay(0.01, 1) == 1.0  # never a hot loop, even with a tiny interval
    assert poll_error_delay(5, 3, cap=12) == 12


# -- the same math driven through the engines (pytest-httpx, injected clock) -----------------


@pytest.fixture
def driver(engine_kind: str, clock: FakeClock) -> object:
    with Driver(engine_kind, clock) as d:
        yield d


def _job(**retry: object) -> trigrun.JobSpec:
    return trigrun.JobSpec.model_validate({
        "name": "retry job", "request": {"url": "http://hook.test/x"},
        "retry_policy": {"initial_backoff_seconds": 2, "backoff_multiplier": 3,
                         "max_backoff_seconds": 10, "jitter": 0.5, **retry}})


def test_engine_uses_the_formula_with_injected_random(httpx_mock: HTTPXMock,
                                                      engine_kind: str) -> None:
    for _ in range(4):
        httpx_mock.add_response(url="http://hook.test/x", status_code=502)
    httpx_mock.add_response(url="http://hook.test/x", status_code=200)
    clock = FakeClock(randoms=[0.2, 0.4, 0.6, 0.8])
    with Driver(engine_kind, clock) as d:
        result = d.fire(_job(max_attempts=5), scheduled_time=clock.now())
    assert result.ok
    assert len(result.attempts) == 5
    expected = [2 * 0.9, 6 * 0.8, 10 * 0.7, 10 * 0.6]
    assert clock.sleeps == pytest.approx(expected)
    assert [a.delay_before_ms for a in result.attempts[1:]] == pytest.approx(
        [e * 1000 for e in expected])


def test_engine_stops_at_max_elapsed(httpx_mock: HTTPXMock, engine_kind: str) -> None:
    httpx_mock.add_response(url="http://hook.test/x", status_code=503, is_reusable=True)
    clock = FakeClock()
    with Driver(engine_kind, clock) as d:
        result = d.fire(_job(max_attempts=10, jitter=0, max_elapsed_seconds=20),
                        scheduled_time=clock.now())
    # Retries start at 2, 8 and 18 s; the next would start at 28 s, past the limit.
    assert clock.sleeps == [2.0, 6.0, 10.0]
    assert len(result.attempts) == 4
    assert not result.ok
    assert result.error is not None
    assert "max_elapsed_seconds=20" in result.error


@pytest.mark.parametrize("code", [400, 401, 403, 404, 422])
def test_engine_never_retries_client_errors(httpx_mock: HTTPXMock, engine_kind: str,
                                            code: int) -> None:
    httpx_mock.add_response(url="http://hook.test/x", status_code=code, text="nope")
    clock = FakeClock()
    with Driver(engine_kind, clock) as d:
        result = d.fire(_job(), scheduled_time=clock.now())
    assert not result.ok
    assert len(result.attempts) == 1
    assert clock.sleeps == []
    assert len(httpx_mock.get_requests()) == 1


def test_retry_after_on_503_through_engine(httpx_mock: HTTPXMock, engine_kind: str) -> None:
    httpx_mock.add_response(url="http://hook.test/x", status_code=503,
                            headers={"Retry-After": "33"})
    httpx_mock.add_response(url="http://hook.test/x", status_code=200)
    clock = FakeClock()
    with Driver(engine_kind, clock) as d:
        assert d.fire(_job(), scheduled_time=clock.now()).ok
    assert clock.sleeps == [33.0]
