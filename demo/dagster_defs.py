"""The demo's Dagster side (served by the Dagster that `make demo` starts).

- ``refresh_dashboards``: the downstream job the Airflow side launches over GraphQL.
- ``trigrun/nightly_warehouse_load``: an executable asset built by trigrun from a job spec
  (Materialize in the UI fires it), its job and schedule; each run triggers the Airflow DAG
  ``warehouse_load`` over REST v2 (JWT from ``/auth/token``) and waits. The Airflow password
  reaches the resource as ``EnvVar``: the UI shows the variable's name.
- ``trigrun_upstream_links``: writes "Triggered by <Airflow task>: <its URL>" into the event log
  of each run trigrun launched here (``refresh_dashboards``), a link on the run's page.
"""


import os
import time

import dagster as dg

from trigrun.dagster import (
    TrigRunResource,
    build_trigrun_asset,
    build_trigrun_asset_job,
    build_trigrun_schedule,
    build_upstream_link_sensor,
)

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

nightly_job = build_trigrun_asset_job(NIGHTLY_LOAD)
defs = dg.Definitions(
    assets=[build_trigrun_asset(NIGHTLY_LOAD)],
    jobs=[refresh_dashboards, nightly_job],
    schedules=[build_trigrun_schedule(NIGHTLY_LOAD, job=nightly_job)],
    sensors=[build_upstream_link_sensor(minimum_interval_seconds=5)],
    resources={"trigrun": TrigRunResource(
        secrets={"airflow-password": dg.EnvVar("TRIGRUN_DEMO_AIRFLOW_PASSWORD")})},
)
