"""A daily-partitioned trigrun asset in the ``warehouse`` pool, served by the live backfill
test (``test_backfill_live.py``); the target's URL comes from the environment."""

from __future__ import annotations

import os

import dagster as dg

from trigrun.dagster import TrigRunResource, build_trigrun_definitions

URL_ENV = "TRIGRUN_TEST_BACKFILL_URL"
POOL = "warehouse"
START = "2026-01-01"

SPEC = {"name": "Nightly load", "schedule": {"cron": "0 0 * * *", "timezone": "UTC"},
        "partitions": {"start": START},
        "request": {"url": os.environ.get(URL_ENV, "http://127.0.0.1:9") + "/load",
                    "method": "POST", "body": {"date": "{{ ds }}",
                                               "partition": "{{ partition_key }}"}},
        "wait": {"enabled": False}, "retry_policy": {"max_attempts": 1},
        "queue": {"name": POOL, "concurrency_limit": 2}}

# A backfill runs each partition in the asset job of the whole location: one step, so in
# process (no step subprocess per partition).
defs = dg.Definitions.merge(build_trigrun_definitions([SPEC], resource=TrigRunResource()),
                            dg.Definitions(executor=dg.in_process_executor))
