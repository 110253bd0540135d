"""Five trigrun jobs of one queue, for the pool test (``test_pools.py``). A module of its own:
Dagster's multiprocess executor imports the job in each step's process."""

from __future__ import annotations

import os

import dagster as dg

from trigrun.dagster import TrigRunResource, build_trigrun_asset

URL_ENV = "TRIGRUN_TEST_POOL_URL"
POOL = "warehouse"

BASE = os.environ.get(URL_ENV, "http://127.0.0.1:9")
SPECS = [{"name": f"Load {i}", "request": {"url": f"{BASE}/load/{i}"},
          "wait": {"enabled": False}, "retry_policy": {"max_attempts": 1},
          "queue": {"name": POOL, "concurrency_limit": 2}} for i in range(5)]
ASSETS = [build_trigrun_asset(s) for s in SPECS]


all_loads = dg.define_asset_job(
    "all_loads", selection=dg.AssetSelection.assets(*[a.key for a in ASSETS]),
    # As many step processes as jobs: only the pool holds them back.
    executor_def=dg.multiprocess_executor.configured({"max_concurrent": len(SPECS)}))

defs = dg.Definitions(assets=ASSETS, jobs=[all_loads],
                      resources={"trigrun": TrigRunResource()})


def all_loads_job() -> dg.JobDefinition:
    return defs.resolve_job_def("all_loads")
