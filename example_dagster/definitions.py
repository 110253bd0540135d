"""The example code location. Inside ``example_dagster/``: ``dg check defs``, ``dg list defs``,
``dagster dev`` (its workspace.yaml); from the repository root:
``dagster definitions validate -w example_dagster/workspace.yaml``.

Three ways to declare trigrun jobs, merged into one ``Definitions``:

- ``lesson.py``: the Dagster ETL course's daily schedule pattern (run config from
  ``scheduled_execution_time``), built with ``build_trigrun_job`` / ``build_trigrun_schedule``,
  plus the same written by hand around ``TrigRunResource.fire_and_wait``;
- ``jobs.yaml``: the seed's multi-job pipeline (extract, transform, load, notify), built with
  ``build_trigrun_definitions``: each job an asset that Materialize fires, drawn as the
  lineage Extract -> Transform -> Load dashboards -> Notify team;
- ``example_dagster/defs/nightly_etl/defs.yaml``: a ``TrigRunComponent`` whose secrets are environment
  variable names (shown as such in the UI), waiting through the completion sensor.

Secrets are ``EnvVar``s: read inside runs only. Loading makes no network call.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from example_dagster.lesson import lesson_defs
from trigrun.dagster import TrigRunResource, build_trigrun_definitions

HERE = Path(__file__).resolve().parent

# dagster_url: where this UI is served, for the link each downstream run gets back to the
# Dagster run that started it (default: $DAGSTER_WEBSERVER_URL, else http://localhost:3000).
trigrun = TrigRunResource(secrets={
    "airflow-password": dg.EnvVar("TRIGRUN_EXAMPLE_AIRFLOW_PASSWORD"),
    "dbt-cloud-token": dg.EnvVar("TRIGRUN_EXAMPLE_DBT_CLOUD_TOKEN"),
    "metabase-key": dg.EnvVar("TRIGRUN_EXAMPLE_METABASE_KEY"),
})

defs = dg.Definitions.merge(
    lesson_defs(trigrun),
    build_trigrun_definitions(HERE / "jobs.yaml", resource=trigrun, deps={
        "Transform": ["Extract"], "Load dashboards": ["Transform"],
        "Notify team": ["Load dashboards"]}),
    dg.load_from_defs_folder(path_within_project=HERE),
)
