"""The demo's Dagster side (served by the Dagster that `make demo` starts).

- ``refresh_dashboards``: the downstream job the Airflow side launches over GraphQL.
- ``nightly_warehouse_load`` job and schedule: built by trigrun from a job spec; each tick
  triggers the Airflow DAG ``warehouse_load`` over REST v2 (JWT from ``/auth/token``) and waits.
  The Airflow password reaches the resource as ``EnvVar``: the UI shows the variable's name.
"""


import os
import time

import dagster as dg

from trigrun.dagster import TrigRunResource, build_trigrun_job, build_trigrun_schedule

AIRFLOW_URL = os.environ.get("TRIGRUN_DEMO_AIRFLOW_URL", "http://127.0.0.1:8080")


class RefreshConfig(dg.Config):
    day: str = ""


@dg.op
def refresh(context: dg.OpExecutionContext, config: RefreshConfig) -> None:
    context.log.info(f"refreshing dashboards for {config.day or 'today'}")
    time.sleep(3)  # stands in for the real refresh


@dg.job(executor_def=dg.in_process_executor)
def refresh_dashboards() -> None:
    refresh()


NIGHTLY_LOAD = {
    "name": "Nightly warehouse load",
    "schedule": {"cron": "0 1 * * *", "timezone": "Europe/Berlin"},
    "target": {"type": "airflow", "base_url": AIRFLOW_URL, "dag_id": "warehouse_load",
               "conf": {"day": "{{ ds }}", "source": "dagster"}},
    "auth": {"type": "airflow_password", "username": "admin",
             "password": "secret://airflow-password"},
    "wait": {"poll_interval_seconds": 2, "timeout_seconds": 600},
}

nightly_job = build_trigrun_job(NIGHTLY_LOAD)
defs = dg.Definitions(
    jobs=[refresh_dashboards, nightly_job],
    schedules=[build_trigrun_schedule(NIGHTLY_LOAD, job=nightly_job)],
    resources={"trigrun": TrigRunResource(
        secrets={"airflow-password": dg.EnvVar("TRIGRUN_DEMO_AIRFLOW_PASSWORD")})},
)
