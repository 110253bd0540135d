"""``TrigRunLink``: the "Downstream run" button on a TrigRun task, to the run it started.

The operator pushes the run's URL to XCom (key ``run_url``) right after the trigger request,
before it defers, and Airflow 3's task runner stores each link's URL when the task finishes or
defers. The API server shows the stored URL; it never imports this module to draw the link,
but the provider registers the class (``extra-links``) for tools that list links.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import _compat  # noqa: F401  # first: a clear ImportError without Airflow

# isort: split
from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk.types import TaskInstanceKey

XCOM_RUN_ID = "run_id"
XCOM_RUN_URL = "run_url"
XCOM_TRIGGER_LOG = "trigger_log"


class TrigRunLink(BaseOperatorLink):
    """Link to the downstream run (Airflow DAG run, dbt Cloud run, Prefect flow run...)."""

    name = "Downstream run"

    def get_link(self, operator: Any, *, ti_key: TaskInstanceKey) -> str:
        from airflow.sdk.execution_time.xcom import XCom

        url = XCom.get_value(ti_key=ti_key, key=XCOM_RUN_URL)
        return str(url) if url else ""
