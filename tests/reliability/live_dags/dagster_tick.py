"""A Dagster code location for ``tests/reliability/test_dagster_daemon.py``: one trigrun job
on a schedule that ticks every minute (running by default), firing the test's local webhook
(``TRIGRUN_REL_HOOK``), which starts one run per idempotency key and counts the requests.
The webhook's credential comes from an environment variable through ``EnvVar``."""

from __future__ import annotations

import os

import dagster as dg

from trigrun.dagster import TrigRunResource, build_trigrun_job, build_trigrun_schedule

HOOK = os.environ.get("TRIGRUN_REL_HOOK", "http://127.0.0.1:9")
SPEC = {
    "name": "reliability daemon tick",
    "schedule": {"cron": "* * * * *"},
    "request": {"url": f"{HOOK}/trigger", "method": "POST",
                "headers": {"Authorization": "Bearer secret://rel_token"},
                "body": {"job": "reliability daemon tick"}, "timeout_seconds": 10},
    "retry_policy": {"max_attempts": 3, "initial_backoff_seconds": 0.2, "jitter": 0},
    "wait": {"enabled": False},
}

job = build_trigrun_job(SPEC)
defs = dg.Definitions(
    jobs=[job],
    schedules=[build_trigrun_schedule(SPEC, job=job,
                                      default_status=dg.DefaultScheduleStatus.RUNNING)],
    resources={"trigrun": TrigRunResource(
        secrets={"rel_token": dg.EnvVar("TRIGRUN_RELIABILITY_TOKEN")}, env_secrets_prefix="")},
)
