"""Trigger and run results as Dagster metadata (everything in them is already redacted)."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit

import dagster as dg

from .._models import JobSpec
from .._results import RunResult, TriggerResult

ASSET_PREFIX = "trigrun"
# The phase of an asset event: "fired" when the trigger went out, "ended" when the run ended.
PHASE = "trigrun_phase"
TRACK = "trigrun_track"


def asset_key_for(spec: JobSpec) -> dg.AssetKey:
    """The asset whose events record this job's fires and downstream runs."""
    return dg.AssetKey([ASSET_PREFIX, spec.slug])


def http_url(value: str | None) -> str | None:
    """Only an http(s) URL becomes a link: run tags and a target's reply are untrusted (a
    ``javascript:`` URL must not be a clickable link in Dagster's UI)."""
    if not value:
        return None
    parts = urlsplit(value)
    return value if parts.scheme in ("http", "https") and parts.netloc else None


def url_value(value: str | None) -> dg.MetadataValue | None:
    """A run URL: a link when it is http(s), else plain text."""
    if value is None:
        return None
    return dg.MetadataValue.url(value) if http_url(value) else dg.MetadataValue.text(value)


def _put(md: dict[str, dg.MetadataValue], key: str, value: dg.MetadataValue | None) -> None:
    if value is not None:
        md[key] = value


def trigger_metadata(result: TriggerResult) -> dict[str, dg.MetadataValue]:
    """Status code, duration, attempts, downstream run id and URL of one fire."""
    md: dict[str, dg.MetadataValue] = {
        "job": dg.MetadataValue.text(result.job),
        "target": dg.MetadataValue.text(result.target),
        "ok": dg.MetadataValue.bool(result.ok),
        "duration_ms": dg.MetadataValue.float(round(result.duration_ms, 1)),
        "attempts": dg.MetadataValue.int(len(result.attempts)),
        "attempt_log": dg.MetadataValue.json([a.to_log() for a in result.attempts]),
        "adopted": dg.MetadataValue.bool(result.adopted),
        "skipped": dg.MetadataValue.bool(result.skipped),
    }
    _put(md, "status_code", None if result.status_code is None
         else dg.MetadataValue.int(result.status_code))
    _put(md, "run_id", None if result.run_id is None else dg.MetadataValue.text(result.run_id))
    _put(md, "run_url", url_value(result.run_url))
    _put(md, "idempotency_key", None if result.idempotency_key is None
         else dg.MetadataValue.text(result.idempotency_key))
    _put(md, "scheduled_time", None if result.scheduled_time is None
         else dg.MetadataValue.text(result.scheduled_time))
    _put(md, "reason", None if result.reason is None else dg.MetadataValue.text(result.reason))
    _put(md, "error", None if result.error is None else dg.MetadataValue.text(result.error))
    if result.response is not None:
        md["response"] = _json_or_text(result.response)
    if result.skipped:
        md["state"] = dg.MetadataValue.text("skipped")
    elif not result.ok:
        md["state"] = dg.MetadataValue.text("trigger_failed")
    return md


def run_metadata(run: RunResult) -> dict[str, dg.MetadataValue]:
    """How the downstream run ended: final state, its id and URL, polls, wait duration."""
    md: dict[str, dg.MetadataValue] = {
        "state": dg.MetadataValue.text(run.state.value),
        "run_id": dg.MetadataValue.text(run.run_id),
        "message": dg.MetadataValue.text(run.message),
        "polls": dg.MetadataValue.int(run.polls),
        "wait_duration_ms": dg.MetadataValue.float(round(run.duration_ms, 1)),
    }
    _put(md, "run_url", url_value(run.run_url))
    if run.raw_status is not None:
        md["raw_status"] = dg.MetadataValue.text(str(run.raw_status))
    return md


def headline(md: dict[str, dg.MetadataValue], started: float) -> dict[str, dg.MetadataValue]:
    """``md`` with the run URL, state and duration first: the entries Dagster's UI shows at
    the top of a materialization, a failure, an output."""
    first: dict[str, dg.MetadataValue] = {}
    if "run_url" in md:
        first["run_url"] = md["run_url"]
    if "state" in md:
        first["state"] = md["state"]
    first["duration_seconds"] = dg.MetadataValue.float(round(time.monotonic() - started, 3))
    return {**first, **{k: v for k, v in md.items() if k not in first}}


def _json_or_text(value: Any) -> dg.MetadataValue:
    if isinstance(value, (dict, list)):
        return dg.MetadataValue.json(value)
    return dg.MetadataValue.text(str(value))
