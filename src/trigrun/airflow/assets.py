"""The Airflow ``Asset`` a trigrun job emits on success, so other DAGs can be scheduled on
"that job's downstream run finished".

Each job has one asset, derived from its name: ``name="trigrun/<job slug>"``,
``uri="trigrun://job/<job slug>"``, ``group="trigrun"``. ``TrigRunOperator(emit_asset=True)``
and ``dags_from_specs`` (on by default) add it to the task's ``outlets``; a consumer schedules on
the same value::

    from trigrun.airflow import job_asset

    with DAG("report", schedule=[job_asset("Nightly dbt build")]): ...

The event's ``extra`` says which run ended how: ``job``, ``run_id``, ``run_url``, ``state``
(``None`` when the task did not wait), ``skipped`` (the fire was skipped: TTL or overlap).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import _compat  # noqa: F401  # first: a clear ImportError without Airflow

# isort: split
from airflow.sdk import Asset

from .. import JobSpec
from .._models import slugify

GROUP = "trigrun"


def job_slug(job: str | JobSpec) -> str:
    return job.slug if isinstance(job, JobSpec) else slugify(job)


def job_asset(job: str | JobSpec) -> Asset:
    """The asset of job ``job`` (its name, or the ``JobSpec``)."""
    slug = job_slug(job)
    return Asset(name=f"trigrun/{slug}", uri=f"trigrun://job/{slug}", group=GROUP)


def asset_extra(log: Mapping[str, Any]) -> dict[str, Any]:
    """The event's ``extra`` from the task's execution log (no secret: the log is redacted)."""
    wait = log.get("wait") or {}
    return {"job": log.get("job"), "run_id": log.get("run_id"), "run_url": log.get("run_url"),
            "state": wait.get("state") if isinstance(wait, Mapping) else None,
            "skipped": bool(log.get("skipped"))}
