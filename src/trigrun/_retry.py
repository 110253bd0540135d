"""Pure retry decisions: what to retry and how long to wait. No I/O, no clock."""

from __future__ import annotations

from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

from ._models import RetryPolicy


def backoff_seconds(policy: RetryPolicy, retry_number: int, random_value: float) -> float:
    """Delay before retry ``retry_number`` (1 for the first retry).

    ``base = min(max_backoff, initial * multiplier ** (retry_number - 1))``
    ``delay = base * (1 - jitter * random_value)`` with ``random_value`` uniform in [0, 1).
    """
    base = policy.initial_backoff_seconds * policy.backoff_multiplier ** (retry_number - 1)
    base = min(policy.max_backoff_seconds, base)
    return base * (1.0 - policy.jitter * random_value)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header: delta-seconds or an HTTP-date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    now = now or datetime.now(timezone.utc)
    return max(0.0, (when - now).total_seconds())


def is_retryable(policy: RetryPolicy, status_code: int | None, network_error: bool) -> bool:
    if network_error:
        return policy.retry_on_network_errors
    return status_code is not None and status_code in policy.retry_on_statuses


def next_delay(
    policy: RetryPolicy,
    *,
    attempt: int,
    status_code: int | None,
    network_error: bool,
    retry_after: float | None,
    elapsed: float,
    random_value: float,
    retryable: bool | None = None,
) -> tuple[float | None, str]:
    """After attempt ``attempt`` failed: the delay before the next one, or None and why not.
    ``retryable`` overrides the policy's lists (an idempotency 409 that says "still being
    processed" is retried whatever ``retry_on_statuses`` holds)."""
    if retryable is None:
        retryable = is_retryable(policy, status_code, network_error)
    if not retryable:
        what = "network error" if network_error else f"status {status_code}"
        return None, f"{what} is not retried by retry_policy"
    if attempt >= policy.max_attempts:
        return None, f"gave up after {attempt} attempt(s) (retry_policy.max_attempts)"
    delay = backoff_seconds(policy, attempt, random_value)
    if retry_after is not None and policy.respect_retry_after:
        delay = max(delay, min(retry_after, policy.max_retry_after_seconds))
    if policy.max_elapsed_seconds is not None and elapsed + delay > policy.max_elapsed_seconds:
        return None, (f"gave up after {attempt} attempt(s): the next retry would start past "
                      f"retry_policy.max_elapsed_seconds={policy.max_elapsed_seconds:g}")
    return delay, ""


def poll_error_delay(interval: float, consecutive_errors: int, cap: float = 300.0) -> float:
    """Poll errors back off from the poll interval, doubling, capped."""
    return float(min(cap, max(interval, 1.0) * 2 ** (consecutive_errors - 1)))
