"""One DAG per job of a jobs file: trigrun as a backup scheduler inside Airflow.

``jobs/pipeline_jobs.yaml`` holds the seed's four staggered jobs in TrigRun's job-spec format
(the same file ``trigrun validate`` checks in CI and ``trigrun next`` previews). Each job
becomes a DAG ``trigrun_<job slug>`` with the job's cron and time zone as a
``CronTriggerTimetable``, ``max_active_runs=1``, no catchup, the job's tags and owner.

Building the DAGs reads only the file: no connection, variable or network call, so this file
parses in milliseconds per job. A bad spec fails the import with the file, the job and the
field in the message, shown on Airflow's import-errors page.
"""

from __future__ import annotations

from pathlib import Path

from trigrun.airflow import dags_from_specs

globals().update(
    dags_from_specs(
        Path(__file__).parent / "jobs" / "pipeline_jobs.yaml",
        default_args={"retries": 2},
        tags=["example"],
        deferrable=True,
    )
)
