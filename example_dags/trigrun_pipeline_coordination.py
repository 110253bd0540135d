"""The seed's pipeline-coordination pattern, as one DAG: extract -> transform -> load -> notify.

TrigRun's use-case page staggers four cron jobs an hour apart (extract 01:00, transform 02:00,
load dashboards 03:00, notify 04:00) and hopes each step is done in time. Inside Airflow the
steps can wait for each other instead:

- **extract**: trigger ``nightly_etl`` on another Airflow 3 deployment and wait for it
  (``trigrun`` connection ``warehouse_airflow``: base URL, username and password; the JWT comes
  from ``/auth/token``). Deferrable: no worker slot is held while the other Airflow works.
- **transform**: run a dbt Cloud job and wait for it (connection ``dbt_cloud``: the API token
  as password, no username, so it is sent as a bearer token).
- **load dashboards**: POST to a BI tool's cache-refresh webhook; fire and forget.
- **notify**: POST a summary to a Slack incoming webhook. The webhook's secret path comes from
  the Airflow variable ``slack_webhook_path`` (``secret://var/...``): it is resolved when the
  request is sent and never shown in the UI, XCom or logs.

Every step is exactly-once per scheduled night: a retried task adopts the run its first try
started instead of starting another.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from airflow.sdk import DAG

# airflow.timetables.trigger: the name every Airflow 3.x has (3.2+ also has it in airflow.sdk).
from airflow.timetables.trigger import CronTriggerTimetable

from trigrun.airflow import TrigRunOperator

with DAG(
    dag_id="trigrun_nightly_pipeline",
    schedule=CronTriggerTimetable("0 1 * * *", timezone="America/New_York"),
    start_date=datetime(2024, 1, 1, tzinfo=ZoneInfo("America/New_York")),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=5)},
    tags=["trigrun", "example"],
    doc_md=__doc__,
):
    extract = TrigRunOperator(
        task_id="extract",
        trigrun_conn_id="warehouse_airflow",
        target={"type": "airflow", "dag_id": "nightly_etl",
                "conf": {"source": "production", "target": "warehouse",
                         "mode": "incremental", "night": "{{ ds }}"}},
        deferrable=True,
        poll_interval=60,
        timeout=4 * 3600,
    )

    transform = TrigRunOperator(
        task_id="transform",
        trigrun_conn_id="dbt_cloud",
        target={"type": "dbt_cloud", "account_id": 12345, "job_id": 67890,
                "cause": "nightly pipeline {{ ds }}"},
        deferrable=True,
        poll_interval=60,
        timeout=2 * 3600,
    )

    load_dashboards = TrigRunOperator(
        task_id="load_dashboards",
        url="https://bi.example.com/api/cache/refresh",
        method="POST",
        headers={"X-Api-Key": "secret://var/bi_api_key"},
        body={"dashboards": ["revenue", "ops"], "night": "{{ ds }}"},
        wait_for_completion=False,
    )

    notify = TrigRunOperator(
        task_id="notify",
        url="https://hooks.slack.com/services/secret://var/slack_webhook_path",
        method="POST",
        body={"text": "Nightly pipeline for {{ ds }} is done: extract run "
                      "{{ ti.xcom_pull(task_ids='extract', key='run_id') }}, dbt run "
                      "{{ ti.xcom_pull(task_ids='transform', key='run_id') }}."},
        wait_for_completion=False,
        trigger_retry_policy={"max_attempts": 5, "retry_on_statuses": [429, 500, 502, 503]},
    )

    extract >> transform >> load_dashboards >> notify
