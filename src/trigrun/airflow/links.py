"""The task's button to the run it started, named for the target: "Airflow run", "Dagster
run", "dbt Cloud run", "Prefect run", "Downstream run" (webhooks, or a target only known at run
time).

An Airflow link's ``name`` is static per link class, and the serialized DAG stores each link as
``{name: xcom_key}``: the API server draws the button from that pair and reads the URL from
XCom, never importing this module. So there is one class per target kind, the operator's
``operator_extra_links`` returns the one for its target, and every class shares one XCom key
(``_link_TrigRunLink``). The shared key keeps the button working when the target is only known
at run time (a mapped task whose target is expanded from XCom): the DAG file names the link
"Downstream run", the worker stores the URL under the same key whatever class it picked.

The operator pushes the run's URL to XCom (``run_url``) right after the trigger request,
before it defers, and Airflow 3's task runner stores each link's URL when the task finishes or
defers. The provider registers every class (``extra-links``) for tools that list links.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from . import _compat  # noqa: F401  # first: a clear ImportError without Airflow

# isort: split
from airflow.sdk import BaseOperatorLink

from ._compat import get_xcom_value
from ._spec import target_kind

if TYPE_CHECKING:
    from airflow.sdk.types import TaskInstanceKey

XCOM_RUN_ID = "run_id"
XCOM_RUN_URL = "run_url"
XCOM_TRIGGER_LOG = "trigger_log"
LINK_XCOM_KEY = "_link_TrigRunLink"


class TrigRunLink(BaseOperatorLink):
    """Link to the downstream run, for a target not known before run time (or a webhook)."""

    name = "Downstream run"

    @property
    def xcom_key(self) -> str:
        return LINK_XCOM_KEY

    def get_link(self, operator: Any, *, ti_key: TaskInstanceKey) -> str:
        url = get_xcom_value(ti_key, XCOM_RUN_URL)
        return str(url) if url else ""


class AirflowRunLink(TrigRunLink):
    """Link to the Airflow DAG run the task started."""

    name = "Airflow run"


class DagsterRunLink(TrigRunLink):
    """Link to the Dagster run the task started."""

    name = "Dagster run"


class DbtCloudRunLink(TrigRunLink):
    """Link to the dbt Cloud run the task started."""

    name = "dbt Cloud run"


class PrefectRunLink(TrigRunLink):
    """Link to the Prefect flow run the task started."""

    name = "Prefect run"


LINKS: dict[str, type[TrigRunLink]] = {
    "airflow": AirflowRunLink, "dagster": DagsterRunLink, "dbt_cloud": DbtCloudRunLink,
    "prefect": PrefectRunLink,
}
LINK_CLASSES = (TrigRunLink, AirflowRunLink, DagsterRunLink, DbtCloudRunLink, PrefectRunLink)


def link_for(spec: Mapping[str, Any] | None) -> TrigRunLink:
    """The link for a spec dict's target; "Downstream run" when it cannot be told yet."""
    kind = target_kind(spec) if isinstance(spec, Mapping) else None
    return LINKS.get(kind or "", TrigRunLink)()
